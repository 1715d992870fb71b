"""Several seeds (one lesion per click), the --exclude guarantee and stale outputs of a
rerun, on an analytic CT: hypodense spheres of known centre and radius (LPS mm) in a
liver-like block inside a body outline (docs/segmentation.md "Several seeds")."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cli_helpers import one_line_error
from hepanav.phantoms.lesions import paint_shape, rasterize

sys.path.insert(0, str(Path(__file__).parent))
from segmentation_helpers import LIVER_HU, liver_block, sphere  # noqa: E402

# Two lesions 40 mm apart (centre to centre), 45 HU darker than the liver.
C1, R1 = (-20.0, 0.0, 0.0), 7.0
C2, R2 = (20.0, 0.0, 0.0), 5.5


def _seed(p) -> str:
    return ",".join(f"{v:.2f}" for v in p)


@pytest.fixture(scope="module")
def two_lesions(tmp_path_factory):
    """(CT path, grid, truth arrays of lesion 1 and 2 (z, y, x bool)): spheres painted
    with partial volume into 105 HU + noise 10 HU; air and fat outside a box body."""
    grid, hu = liver_block(size=(112, 80, 48), spacing=(1.0, 1.0, 1.25))
    truths = []
    for c, r in ((C1, R1), (C2, R2)):
        shape = sphere(r, center=c, irregularity=0.0)
        paint_shape(hu, grid, shape, LIVER_HU - 45.0)
        truths.append(rasterize(grid, shape) > 0)
    _, y, x = np.indices(grid.shape)
    ry, rx = np.abs(y - grid.shape[1] / 2), np.abs(x - grid.shape[2] / 2)
    hu[(ry > 34) | (rx > 52)] = -100.0  # subcutaneous fat
    hu[(ry > 37) | (rx > 55)] = -1000.0  # air around the body
    folder = tmp_path_factory.mktemp("seeds")
    path = folder / "ct.nii.gz"
    sitk.WriteImage(sitk.Cast(grid.image(hu.astype(np.float32)), sitk.sitkInt16), str(path))
    return path, grid, truths


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b)))


def _at(mask: np.ndarray, image: sitk.Image, lps) -> int:
    i, j, k = image.TransformPhysicalPointToIndex(tuple(float(v) for v in lps))
    return int(mask[k, j, i])


def test_a_seed_per_lesion_segments_each_on_its_own(cli, two_lesions, tmp_path):
    path, _, truths = two_lesions
    out = tmp_path / "t.nii.gz"
    code, stdout, err = cli(
        "segment", "tumor", "--ct", path, "--seed", _seed(C1), "--seed", _seed(C2), "--out", out
    )
    assert code == 0, err
    image = sitk.ReadImage(str(out))
    mask = sitk.GetArrayFromImage(image) > 0
    assert _at(mask, image, C1) and _at(mask, image, C2)  # no seed left outside
    # each lesion as if it were the only seed: same Dice as one seed, against the truth
    near1 = np.zeros_like(mask)
    near1[:, :, : mask.shape[2] // 2] = True  # x < 0: lesion 1's half
    assert _dice(mask & near1, truths[0]) >= 0.85
    assert _dice(mask & ~near1, truths[1]) >= 0.8
    one = tmp_path / "one.nii.gz"
    assert cli("segment", "tumor", "--ct", path, "--seed", _seed(C1), "--out", one)[0] == 0
    alone = sitk.GetArrayFromImage(sitk.ReadImage(str(one))) > 0
    assert np.array_equal(alone, mask & near1)
    record = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))
    lesions = record["lesions"]
    assert [len(x["seeds"]) for x in lesions] == [1, 1]
    assert lesions[0]["seeds"][0].startswith("--seed -20")
    for lesion, r in zip(lesions, (R1, R2), strict=True):
        assert lesion["volume_ml"] == pytest.approx(4 / 3 * np.pi * r**3 / 1000, rel=0.25)
    assert record["volume_ml"] == pytest.approx(sum(x["volume_ml"] for x in lesions))
    assert "2 separate tumours segmented" in " ".join(record["notes"])
    # one size in the output, the final mask's (the note once gave the radius grown first)
    assert not re.search(r"equivalent radius \d", " ".join(record["notes"]))
    d = 2 * (3 * record["volume_ml"] * 1000 / (4 * np.pi)) ** (1 / 3)
    assert record["equivalent_diameter_mm"] == pytest.approx(d)
    assert f"{d:.1f} mm sphere-equivalent diameter" in stdout
    assert "lesion 2:" in stdout and "sphere-equivalent diameter" in stdout
    assert "lesion 2" in (tmp_path / "t.html").read_text(encoding="utf-8")


def test_seeds_in_one_lesion_refine_it(cli, two_lesions, tmp_path):
    path, _, truths = two_lesions
    out = tmp_path / "t.nii.gz"
    inside = (C1[0] + 3.0, C1[1], C1[2])
    code, _, err = cli(
        "segment", "tumor", "--ct", path, "--seed", _seed(C1), "--seed", _seed(inside), "--out", out
    )
    assert code == 0, err
    record = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))
    assert [len(x["seeds"]) for x in record["lesions"]] == [2]
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(out))) > 0
    assert _dice(mask, truths[0]) >= 0.85


def test_exclude_point_and_its_side_are_never_in_the_mask(cli, two_lesions, tmp_path):
    path, grid, _ = two_lesions
    out = tmp_path / "t.nii.gz"
    x = (C1[0] + 4.0, C1[1], C1[2])  # inside lesion 1, 4 mm from the seed
    code, _, err = cli(
        "segment", "tumor", "--ct", path, "--seed", _seed(C1), "--exclude", _seed(x), "--out", out
    )
    assert code == 0, err
    image = sitk.ReadImage(str(out))
    mask = sitk.GetArrayFromImage(image) > 0
    assert not _at(mask, image, x) and _at(mask, image, C1)
    # the cut by construction: voxels closer to the exclude point than to the seed
    # (x > C1 + 2 mm) are all out; the seed's side (x < C1 + 1 mm) keeps the lesion
    k, j, i = np.nonzero(mask)
    lps = np.asarray([image.TransformIndexToPhysicalPoint((int(a), int(b), int(c)))
                      for a, b, c in zip(i, j, k, strict=True)])  # fmt: skip
    assert lps[:, 0].max() <= C1[0] + 2.0 + 1e-6
    assert np.count_nonzero(lps[:, 0] < C1[0] + 1.0) > 0.4 * 4 / 3 * np.pi * R1**3 / 1.25
    record = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))
    assert any(n.startswith("--exclude: ") and "mm^3 cut" in n for n in record["notes"])
    fraction = sitk.ReadImage(str(tmp_path / "t.fraction.nii.gz"))
    i0, j0, k0 = image.TransformPhysicalPointToIndex(fraction.GetOrigin())
    n = fraction.GetSize()
    box = mask[k0 : k0 + n[2], j0 : j0 + n[1], i0 : i0 + n[0]]
    assert np.array_equal(sitk.GetArrayViewFromImage(fraction) >= 0.5, box)


def test_rerun_without_report_removes_the_old_report(cli, two_lesions, tmp_path):
    path, _, _ = two_lesions
    out = tmp_path / "st.nii.gz"
    assert cli("segment", "tumor", "--ct", path, "--seed", _seed(C2), "--out", out)[0] == 0
    assert (tmp_path / "st.html").is_file()
    code, _, err = cli(
        "segment", "tumor", "--ct", path, "--seed", _seed(C2), "--out", out, "--no-report"
    )
    assert code == 0, err
    assert not (tmp_path / "st.html").exists()
    assert json.loads((tmp_path / "st.json").read_text(encoding="utf-8"))["report"] is None
    # a refused rerun leaves the previous set as it was
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    code, _, err = cli(
        "segment", "tumor", "--ct", path, "--seed", "0,0,0", "--out", out, "--max-radius-mm", "3"
    )
    one_line_error(code, err)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_margin_segments_a_tumour_per_seed(two_lesions, tmp_path):
    from hepanav.segmentation.pipeline import masks_for_margin

    path, _, truths = two_lesions
    tumor, _ = masks_for_margin(tmp_path, path, None, None, None, [_seed(C1), _seed(C2)], [])
    image = sitk.ReadImage(str(tumor))
    mask = sitk.GetArrayFromImage(image) > 0
    assert _at(mask, image, C1) and _at(mask, image, C2)
    assert _dice(mask, truths[0] | truths[1]) >= 0.85
    record = json.loads(tumor.with_name("tumor.json").read_text(encoding="utf-8"))
    assert len(record["lesions"]) == 2
    # graded with a zone (R 14 mm) around lesion 1 only: lesion 2 (40 mm away, r 5.5 mm)
    # is residual tumour, MAM = -(40 + 5.5 - 14) = -31.5 mm by construction
    from hepanav.margin.pipeline import MarginInputs, run_margin

    _, grid, _ = two_lesions
    zone = tmp_path / "zone.nii.gz"
    sitk.WriteImage(grid.image(rasterize(grid, sphere(14.0, center=C1)).astype(np.uint8)), zone)
    result = run_margin(
        MarginInputs(tumor=tumor, ablation=zone, from_seeds={"tumor": tumor}),
        tmp_path / "m",
        report=False,
    ).result
    assert result.min_margin_mm == pytest.approx(-31.5, abs=1.5)
    (region,) = result.residual_regions
    assert region.centroid_lps_mm == pytest.approx(C2, abs=1.0)
    # its whole segmented volume is residual: the mask component holding C2, voxel count
    from scipy import ndimage

    labels, _ = ndimage.label(mask)
    lesion2_ml = np.count_nonzero(labels == _at(labels, image, C2)) * np.prod(image.GetSpacing())
    assert result.residual_volume_ml == pytest.approx(lesion2_ml / 1000, rel=1e-6)
    assert region.volume_ml == pytest.approx(result.residual_volume_ml)
    assert not result.residual_volume_is_lower_bound
    (note,) = [n for r in result.inputs if r.role == "tumor" for n in r.notes if "lesion" in n]
    assert "2 lesions" in note and "lesion 2 from --tumor-seed 20" in note


def test_a_seed_outside_every_lesion_is_refused_by_name(two_lesions):
    """Whatever the segmenter returns, a seed outside the united mask is an error naming
    it (here a stand-in segmenter that always outlines lesion 1, so seed 2 is lost)."""
    from hepanav.core.errors import InputError
    from hepanav.segmentation.multi import segment_lesions
    from hepanav.segmentation.result import Segmentation
    from hepanav.segmentation.seeds import make_seeds

    path, grid, _ = two_lesions
    ct = sitk.ReadImage(str(path))
    only_1 = grid.image(rasterize(grid, sphere(R1, center=C1)).astype(np.uint8))

    def segment_one(seeds, include, exclude):
        return Segmentation(mask=only_1, structure="tumor", method="stand-in", seeds=seeds)

    seeds = make_seeds(ct, [_seed(C1), _seed(C2)])
    with pytest.raises(InputError, match="outside the tumour") as err:
        segment_lesions(ct, seeds, [], [], segment_one)
    assert "--seed 20" in str(err.value)


def test_a_zone_per_ablation_click(two_lesions, tmp_path):
    """The zone takes the same path: two clicks on two hypodense spheres, two zones."""
    from hepanav.segmentation.pipeline import segment_file

    path, _, truths = two_lesions
    result, seg = segment_file(
        "ablation", path, tmp_path / "z.nii.gz", seeds=[_seed(C1), _seed(C2)], report=False
    )
    assert [x.seeds for x in result.lesions] == [["--seed -20,0,0"], ["--seed 20,0,0"]]
    mask = sitk.GetArrayFromImage(seg.mask) > 0
    assert _dice(mask, truths[0] | truths[1]) >= 0.8
    for lesion, r in zip(result.lesions, (R1, R2), strict=True):
        assert lesion.volume_ml == pytest.approx(4 / 3 * np.pi * r**3 / 1000, rel=0.25)


def test_lesion_volumes_are_those_of_the_final_mask(cli, two_lesions, tmp_path):
    """An exclude point in lesion 2 cuts lesion 2's listed volume too: each lesion's
    volume is its voxels of the written mask (x < 0: lesion 1, x > 0: lesion 2, by
    construction 40 mm apart), and the lesions' volumes sum to the total."""
    path, _, _ = two_lesions
    out = tmp_path / "t.nii.gz"
    x = (C2[0] + 3.0, C2[1], C2[2])  # inside lesion 2, 3 mm from its seed
    code, stdout, err = cli(
        "segment", "tumor", "--ct", path, "--seed", _seed(C1), "--seed", _seed(C2),
        "--exclude", _seed(x), "--out", out,
    )  # fmt: skip
    assert code == 0, err
    image = sitk.ReadImage(str(out))
    mask = sitk.GetArrayFromImage(image) > 0
    ml = float(np.prod(image.GetSpacing())) / 1000
    half = mask.shape[2] // 2
    record = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))
    lesions = record["lesions"]
    assert lesions[0]["volume_ml"] == pytest.approx(np.count_nonzero(mask[:, :, :half]) * ml)
    assert lesions[1]["volume_ml"] == pytest.approx(np.count_nonzero(mask[:, :, half:]) * ml)
    assert lesions[1]["volume_ml"] < 0.8 * 4 / 3 * np.pi * R2**3 / 1000  # the cut shows
    assert sum(x["volume_ml"] for x in lesions) == pytest.approx(record["volume_ml"])
    assert f"lesion 2: {lesions[1]['volume_ml']:.2f} ml" in stdout
    assert all(x["border_faces"] == [] for x in lesions)


def test_touching_lesions_partition_the_final_mask():
    """Overlapping lesion regions, a cut final mask: each voxel of the final mask goes to
    the lesion whose region holds it, the shared ones to the nearest seed (by
    construction: two boxes overlapping on columns 8-11, seeds at columns 4 and 15)."""
    from hepanav.segmentation.multi import LesionPart, lesion_records
    from hepanav.segmentation.result import Segmentation
    from hepanav.segmentation.seeds import Seed

    shape = (6, 6, 20)  # z, y, x; 1 x 1 x 2 mm voxels
    ref = sitk.Image(shape[2], shape[1], shape[0], sitk.sitkUInt8)
    ref.SetSpacing((1.0, 1.0, 2.0))

    def image(arr):
        out = sitk.GetImageFromArray(arr.astype(np.uint8))
        out.CopyInformation(ref)
        return out

    a, b = np.zeros(shape, bool), np.zeros(shape, bool)
    a[1:5, 1:5, 1:12] = True
    b[1:5, 1:5, 8:19] = True
    final = a | b
    final[:, :, 17:] = False  # the exclude cut, after the union
    parts = []
    for arr, col in ((a, 4), (b, 15)):
        s = Seed((float(col), 2.0, 4.0), (col, 2, 2), f"--seed {col}")
        seg = Segmentation(mask=image(arr), structure="tumor", method="test", seeds=[s])
        parts.append(LesionPart([s], seg))
    records = lesion_records(image(final), parts)
    ml = 2.0 / 1000
    # shared columns 8-11: 8, 9 nearer seed 4 (lesion 1), 10, 11 nearer seed 15
    assert records[0]["volume_ml"] == pytest.approx(16 * 9 * ml)  # columns 1-9
    assert records[1]["volume_ml"] == pytest.approx(16 * 7 * ml)  # columns 10-16
    assert sum(r["volume_ml"] for r in records) == pytest.approx(np.count_nonzero(final) * ml)
    assert [r["border_faces"] for r in records] == [[], []]


def test_a_lesion_cut_by_the_border_is_a_lower_bound(cli, two_lesions, tmp_path):
    """A CT cropped through lesion 2's centre (x = 20 mm): lesion 2 touches its last
    column, lesion 1 nothing; lesion 2 alone is '>=' and named in the warning."""
    path, _, _ = two_lesions
    full = sitk.ReadImage(str(path))
    i2 = full.TransformPhysicalPointToIndex(C2)[0]
    cut = tmp_path / "cut.nii.gz"
    sitk.WriteImage(full[: i2 + 1, :, :], str(cut))
    out = tmp_path / "t.nii.gz"
    code, stdout, err = cli(
        "segment", "tumor", "--ct", cut, "--seed", _seed(C1), "--seed", _seed(C2), "--out", out
    )
    assert code == 0, err
    record = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))
    lesions = record["lesions"]
    assert lesions[0]["border_faces"] == []
    assert len(lesions[1]["border_faces"]) == 1 and "last column" in lesions[1]["border_faces"][0]
    assert record["border_faces"] == lesions[1]["border_faces"]
    assert f"lesion 1: {lesions[0]['volume_ml']:.2f} ml" in stdout
    assert f"lesion 2: >= {lesions[1]['volume_ml']:.2f} ml, >= " in stdout
    assert len(record["warnings"]) == 1 and "lesion 2 of 2" in record["warnings"][0]
    assert "lesion 2 of 2" in err and "LOWER BOUNDS" in err
    html = (tmp_path / "t.html").read_text(encoding="utf-8")
    row = next(line for line in html.splitlines() if "<td>lesion 2 of 2</td>" in line)
    assert "&ge;" in row and "cut by the image border" in row
