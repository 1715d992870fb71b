"""Fresh-user defects (tester2, 2026-11-30), against ground truth known by construction:

* a mask cut by the image border is said (faces named, volume/diameter lower bounds) by
  ``segment`` and ``margin`` alike (one function: :mod:`hepanav.imaging.border`);
* a label map given as ``--ct`` is refused (one line, exit 2, nothing written), while
  integer CTs cropped into one organ (no air) and the real scans pass;
* a zone smaller than the tumour (pre/post swapped) is a red plausibility warning;
* missing label ids are named and grouped; the vena cava is said when not derived.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cli_helpers import one_line_error

sys.path.insert(0, str(Path(__file__).parent))
from segmentation_helpers import in_body, lesion_case, liver_block  # noqa: E402


def _seed(p):
    return ",".join(f"{v:.2f}" for v in p)


# --- border faces ------------------------------------------------------------------------


def test_border_faces_named_by_lps_side_and_index():
    from hepanav.imaging.border import border_faces

    arr = np.zeros((5, 6, 7), np.uint8)  # z, y, x
    arr[1:3, 2:4, 0:3] = 1  # touches i = 0 only
    mask = sitk.GetImageFromArray(arr)
    assert border_faces(mask) == ["right (first column, i = 0)"]  # identity: -x is right
    arr[4, 2, 3] = 1  # and the last slice (k = 4): +z is superior
    mask = sitk.GetImageFromArray(arr)
    assert border_faces(mask) == ["right (first column, i = 0)", "superior (last slice, k = 4)"]
    mask.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))  # NIfTI-style flip: i = 0 is left
    assert border_faces(mask)[0] == "left (first column, i = 0)"
    inside = np.zeros((5, 6, 7), np.uint8)
    inside[1:4, 1:5, 1:6] = 1
    assert border_faces(sitk.GetImageFromArray(inside)) == []
    all_faces = sitk.GetImageFromArray(np.ones((7, 7, 7), np.uint8))  # tester's 7^3 crop
    assert len(border_faces(all_faces)) == 6


@pytest.fixture(scope="module")
def cut_ct(tmp_path_factory):
    """A 10 mm hypodense lesion in a body, the CT cut in x 2 mm beyond its centre: the
    true lesion volume inside the crop is known (voxel count of the painted truth)."""
    ct, truth, shape, grid, hu = lesion_case(radius=10.0, contrast=-45.0, irregularity=0.0)
    hu = in_body(hu, grid)
    image = grid.image(hu.astype(np.float32))
    image = sitk.Cast(sitk.Round(image), sitk.sitkInt16)
    i0 = image.TransformPhysicalPointToIndex(tuple(shape.center))[0] - 2
    cut = image[i0:, :, :]
    truth_cut = truth[i0:, :, :]
    folder = tmp_path_factory.mktemp("cut")
    sitk.WriteImage(cut, str(folder / "ct.nii.gz"))
    voxel_ml = float(np.prod(grid.spacing)) / 1000.0
    whole_ml = float(sitk.GetArrayFromImage(truth).sum()) * voxel_ml
    cut_ml = float(sitk.GetArrayFromImage(truth_cut).sum()) * voxel_ml
    seed = np.asarray(shape.center) + np.array([3.0, 0.0, 0.0])
    return folder / "ct.nii.gz", seed, whole_ml, cut_ml


def test_segment_tumour_cut_by_border_is_a_lower_bound(cli, cut_ct, tmp_path):
    path, seed, whole_ml, cut_ml = cut_ct
    out = tmp_path / "t.nii.gz"
    code, stdout, err = cli("segment", "tumor", "--ct", path, "--seed", _seed(seed), "--out", out)
    assert code == 0, err
    record = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))
    assert record["border_faces"] == ["right (first column, i = 0)"]
    # what is inside the image is found; the whole lesion is not
    assert record["volume_ml"] == pytest.approx(cut_ml, rel=0.15)
    assert record["volume_ml"] < 0.7 * whole_ml
    assert (
        "LOWER BOUNDS" in record["warnings"][0] and "right (first column" in record["warnings"][0]
    )
    assert ">= " in stdout and "WARNING: the tumour touches the image border" in err
    html = (tmp_path / "t.html").read_text(encoding="utf-8")
    assert 'class="bad border-warning"' in html and "lower bound" in html


def test_segment_whole_tumour_has_no_border_warning(cli, tmp_path):
    ct, _, shape, grid, hu = lesion_case(radius=8.0, contrast=-45.0)
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(
        sitk.Cast(grid.image(in_body(hu, grid).astype(np.float32)), sitk.sitkInt16), str(path)
    )
    out = tmp_path / "t.nii.gz"
    code, stdout, err = cli(
        "segment", "tumor", "--ct", path, "--seed", _seed(shape.center), "--out", out
    )
    assert code == 0, err
    record = json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))
    assert record["border_faces"] == [] and record["warnings"] == []
    assert ">=" not in stdout and "WARNING" not in err


# --- label map as CT ---------------------------------------------------------------------


def _label_map() -> np.ndarray:
    """32 organ labels 0..117 in blocks, no air (as a TotalSegmentator labels file)."""
    arr = np.zeros((20, 40, 40), np.uint8)
    values = np.linspace(1, 117, 31).astype(np.uint8)
    for n, v in enumerate(values):
        arr[2 + (n % 4) * 4 : 5 + (n % 4) * 4, (n // 4) * 5 : (n // 4) * 5 + 4, 5:35] = v
    return arr


def test_label_map_given_as_ct_is_refused(cli, tmp_path):
    path = tmp_path / "labels.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(_label_map()), str(path))
    for structure in ("tumor", "liver"):
        out = tmp_path / f"{structure}.nii.gz"
        code, _, err = cli(
            "segment", structure, "--ct", path, "--seed-voxel", "20,12,3", "--out", out
        )
        line = one_line_error(code, err, "labels.nii.gz", "looks like a label map", "32 distinct")
        assert "no air below -500 HU" in line
        assert list(tmp_path.iterdir()) == [path]  # nothing written


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_integer_ct_cropped_into_the_liver_is_not_a_label_map(dtype):
    """No air and integer values (< 512 distinct), but CT noise: neighbours differ."""
    from hepanav.imaging.ctcheck import label_map_reason, require_hu_ct

    _, hu = liver_block(size=(30, 30, 20), noise=8.0)
    arr = np.round(hu).astype(dtype)
    assert arr.min() > -500 and len(np.unique(arr)) < 512
    assert label_map_reason(arr) is None
    require_hu_ct(sitk.GetImageFromArray(arr), "crop.nii.gz")


def test_noiseless_phantom_with_air_is_not_a_label_map():
    from hepanav.imaging.ctcheck import label_map_reason

    arr = np.full((10, 20, 20), -1000, np.int16)
    arr[:, 5:15, 5:15] = 60
    arr[:, 8:11, 8:11] = 200
    assert label_map_reason(arr) is None


def test_real_scans_pass_and_their_label_map_is_refused(shared_data):
    from hepanav.core.errors import InputError
    from hepanav.imaging import read_image
    from hepanav.imaging.ctcheck import require_hu_ct

    for ct in (
        shared_data / "ct-abdomen-3mm" / "ct.nii.gz",
        shared_data / "ct-abdomen-dicom" / "series",
    ):
        require_hu_ct(read_image(ct), ct)
    labels = shared_data / "ct-abdomen-dicom" / "labels.nii.gz"
    with pytest.raises(InputError, match="looks like a label map"):
        require_hu_ct(read_image(labels), labels)


# --- margin plausibility -----------------------------------------------------------------

SPACING = (1.0, 1.0, 1.0)


def _sphere(centre, radius, size=(44, 44, 44), origin=(-21.5, -21.5, -21.5)) -> sitk.Image:
    idx = np.indices(size[::-1]).reshape(3, -1)[::-1].T.astype(float)
    points = idx * np.asarray(SPACING) + np.asarray(origin)
    inside = np.linalg.norm(points - np.asarray(centre), axis=1) <= radius
    image = sitk.GetImageFromArray(inside.reshape(size[::-1]).astype(np.uint8))
    image.SetSpacing(SPACING)
    image.SetOrigin(origin)
    return image


def _margin(cli, tmp_path, tumour, zone):
    paths = {}
    for name, image in (("tumor", tumour), ("ablation", zone)):
        paths[name] = tmp_path / f"{name}.nii.gz"
        sitk.WriteImage(image, str(paths[name]))
    out = tmp_path / "out"
    code, stdout, err = cli(
        "margin", "--tumor", paths["tumor"], "--ablation", paths["ablation"], "--out", out
    )
    assert code == 0, err
    result = json.loads((out / "margin.json").read_text(encoding="utf-8"))
    return result, stdout, (out / "report.html").read_text(encoding="utf-8")


def test_zone_smaller_than_tumour_is_a_red_warning_beside_the_verdict(cli, tmp_path):
    # "swapped": the 'tumour' is the big zone (r 12 mm), the 'zone' the small tumour (r 7)
    result, stdout, html = _margin(cli, tmp_path, _sphere((0, 0, 0), 12.0), _sphere((0, 0, 0), 7.0))
    assert result["category"] == "incomplete"
    assert len(result["plausibility"]) == 1
    assert "SMALLER than the tumour" in result["plausibility"][0]
    assert "swapped" in result["plausibility"][0]
    assert "WARNING: the ablation zone" in stdout
    assert 'class="bad plausibility"' in html and "swapped" in html


def test_plausible_margin_has_no_plausibility_warning(cli, tmp_path):
    result, stdout, html = _margin(cli, tmp_path, _sphere((0, 0, 0), 7.0), _sphere((0, 0, 0), 13.0))
    assert (
        result["plausibility"] == []
        and "plausibility" not in html.split("<h2>Result</h2>")[1][:2000]
    )
    assert result["category"] == "5-10mm"


def test_tumour_cut_by_the_border_is_graded_only_inside(cli, tmp_path):
    # tumour r 8 centred 4 mm inside the x = -21.5 face of a 44 mm grid: cut by it
    tumour = _sphere((-17.5, 0, 0), 8.0)
    result, stdout, html = _margin(cli, tmp_path, tumour, _sphere((-17.5, 0, 0), 14.0))
    assert result["border"]["tumor_cut_by_border"]
    assert any("cut by the image border" in p for p in result["plausibility"])
    assert "grades only the part inside the image" in html


# --- planning: names of missing labels, vena cava ----------------------------------------


def test_missing_label_ids_are_named_and_grouped():
    from hepanav.imaging.labels import describe_label_ids

    ids = list(range(29, 35)) + list(range(92, 104)) + [116, 999]
    assert describe_label_ids(ids) == "ribs left 1-12, vertebrae T10-L3, sternum, label 999"
    assert describe_label_ids([104, 105, 107]) == "ribs right 1-2, 4"


def test_partly_given_bone_group_is_named_not_numbered():
    """A TotalSegmentator folder with ribs left 6-12 and T11-T12 only (tester2's folder
    had ~40 bone ids missing, listed as bare numbers in the plan warning)."""
    from hepanav.planning.risk import load_risk_map, partly_given_groups

    given = {5} | set(range(97, 104)) | {32, 33}
    partial = {a.name: a for a in partly_given_groups(given, given, load_risk_map())}
    named = partial["bone"].labels_named
    assert "ribs left 1-5" in named and "ribs right 1-12" in named
    assert "vertebrae C1-T10, L1-S1" in named and "sternum" in named
    assert "92" not in partial["bone"].message and "ribs left 1-5" in partial["bone"].message


def test_vena_cava_as_dense_as_the_liver_is_said_not_derived():
    """Procedural phantom (portal venous, IVC 149 HU vs liver 105 HU): derived, no note.
    The same CT with the IVC voxels (truth label 63) set to the liver's HU: the note."""
    pytest.importorskip("hepanav.phantoms.abdomen")
    from hepanav.phantoms.planning import make_planning_case
    from hepanav.segmentation.anatomy import derive_planning_labels

    case = make_planning_case("procedural", 30.0, seed=0)
    derived = derive_planning_labels(case.ct, case.tumor)
    assert not any("vena cava NOT derived" in n for n in derived.notes)
    assert any("vena cava only if enhancing" in k for k in derived.derived)
    truth = sitk.GetArrayFromImage(case.labels)
    arr = sitk.GetArrayFromImage(case.ct)
    liver_hu = np.median(arr[truth == 5])
    rng = np.random.default_rng(0)
    ivc = truth == 63
    arr[ivc] = np.round(liver_hu + rng.normal(0, 10, int(ivc.sum()))).astype(arr.dtype)
    flat = sitk.GetImageFromArray(arr)
    flat.CopyInformation(case.ct)
    derived = derive_planning_labels(flat, case.tumor)
    assert any("vena cava NOT derived" in n for n in derived.notes)
