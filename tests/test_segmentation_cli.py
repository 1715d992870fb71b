"""``hepanav segment`` and ``hepanav margin --tumor-seed/--ablation-seed`` end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cli_helpers import one_line_error

sys.path.insert(0, str(Path(__file__).parent))
from segmentation_helpers import lesion_case  # noqa: E402


@pytest.fixture(scope="module")
def body_ct(tmp_path_factory):
    """A lesion in a liver block inside a body (fat, air around, a bone rod)."""
    ct, truth, shape, grid, hu = lesion_case(radius=8.0, contrast=-45.0)
    z, y, x = np.indices(grid.shape)
    centre = np.asarray(grid.shape) / 2
    r = np.sqrt((y - centre[1]) ** 2 + (x - centre[2]) ** 2)
    hu = hu.copy()
    hu[r > 29] = -1000.0  # air outside the body
    hu[(r > 26) & (r <= 29)] = -100.0  # subcutaneous fat
    hu[:, 4:8, 30:34] = 900.0  # a bone rod inside the body
    folder = tmp_path_factory.mktemp("segcli")
    path = folder / "ct.nii.gz"
    sitk.WriteImage(sitk.Cast(grid.image(hu.astype(np.float32)), sitk.sitkInt16), str(path))
    sitk.WriteImage(truth, str(folder / "truth.nii.gz"))
    return path, shape, grid


def _seed(p):
    return ",".join(f"{v:.2f}" for v in p)


def test_segment_tumor_writes_mask_json_report(cli, body_ct, tmp_path):
    from hepanav.segmentation.metrics import dice

    path, shape, _ = body_ct
    out = tmp_path / "tumor.nii.gz"
    code, stdout, err = cli(
        "segment", "tumor", "--ct", path, "--seed", _seed(shape.center), "--out", out
    )
    assert code == 0, err
    assert "hypodense" in stdout
    mask = sitk.ReadImage(str(out))
    assert dice(mask, sitk.ReadImage(str(path.parent / "truth.nii.gz"))) >= 0.9
    record = json.loads((tmp_path / "tumor.json").read_text(encoding="utf-8"))
    assert record["structure"] == "tumor" and record["appearance"] == "hypo"
    assert record["seeds"][0]["lps_mm"] == pytest.approx(list(shape.center), abs=0.01)
    expected_ml = float(sitk.GetArrayViewFromImage(mask).sum()) * 1.25 / 1000
    assert record["volume_ml"] == pytest.approx(expected_ml)
    html = (tmp_path / "tumor.html").read_text(encoding="utf-8")
    assert "NOT a medical device" in html and "data:image/png" in html
    # the seed's voxel (0-based, as --seed-voxel) and its slice (1-based, as the captions)
    i, j, k = record["seeds"][0]["voxel"]
    assert f"voxel {i}, {j}, {k} (i, j, k counted from 0" in html
    assert f"CT slice {k + 1} counted from 1" in html
    # the edge fractions beside the mask (for the margin's sub-voxel surface): a box of
    # the CT grid, >= 0.5 exactly where the mask is 1
    fraction = sitk.ReadImage(str(tmp_path / "tumor.fraction.nii.gz"))
    assert fraction.GetSpacing() == pytest.approx(mask.GetSpacing())
    i, j, k = mask.TransformPhysicalPointToIndex(fraction.GetOrigin())
    n = fraction.GetSize()
    box = sitk.GetArrayViewFromImage(mask)[k : k + n[2], j : j + n[1], i : i + n[0]]
    values = sitk.GetArrayViewFromImage(fraction)
    assert np.array_equal(values >= 0.5, box != 0) and box.sum() == expected_ml * 1000 / 1.25
    assert 0 < np.count_nonzero((values > 0) & (values < 1)) and values.min() >= 0


def test_segment_report_screenshot(cli, body_ct, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian chromium not installed at /usr/bin/chromium")
    path, shape, _ = body_ct
    out = tmp_path / "t.nii.gz"
    code, _, err = cli(
        "segment", "tumor", "--ct", path, "--seed", _seed(shape.center), "--out", out
    )
    assert code == 0, err
    shot = tmp_path / "segmentation_report.png"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto((tmp_path / "t.html").as_uri())
        # the three planes through the seed and the contour on every slice of the mask
        assert page.locator("img").count() == 2
        assert page.locator("img").first.evaluate("e => e.naturalWidth") > 500
        montage = page.locator("img.montage")
        assert montage.evaluate("e => e.complete && e.naturalHeight") > 500
        text = page.inner_text("body")
        assert "Every one of them is shown below" in text
        assert "each captioned with its position (LPS z, mm), its DICOM instance" in text
        assert "W 400 / L" in text
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 20000


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--seed", "500,0,0"], ["--seed", "(500.0, 0.0, 0.0)", "outside the image"]),
        (
            ["--seed-voxel", "1,1,1"],
            ["--seed-voxel 1,1,1", "in air or lung (-1000 HU", "outside the body"],
        ),
        (["--seed", "1,2"], ["--seed", "three comma-separated"]),
        (["--seed-voxel", "32,5,28"], ["--seed-voxel 32,5,28", "bone"]),
        (["--seed", "12,12,0"], ["--seed 12,12,0", "does not look like"]),
        (["--seed", "0,0,0", "--max-radius-mm", "-3"], ["--max-radius-mm"]),
        (["--seed", "0,0,0", "--appearance", "weird"], ["--appearance"]),
    ],
)
def test_bad_seeds_one_line_exit_2_nothing_written(cli, body_ct, tmp_path, args, fragments):
    path, _, _ = body_ct
    out = tmp_path / "m.nii.gz"
    code, _, err = cli("segment", "tumor", "--ct", path, *args, "--out", out)
    one_line_error(code, err, *fragments)
    assert list(tmp_path.iterdir()) == []


def test_seed_in_air_inside_image(cli, body_ct, tmp_path):
    path, _, grid = body_ct
    # Voxel (1, 32, 28): outside the body cylinder, in air.
    code, _, err = cli(
        "segment",
        "ablation",
        "--ct",
        path,
        "--seed-voxel",
        "1,32,28",
        "--out",
        tmp_path / "z.nii.gz",
    )
    one_line_error(code, err, "--seed-voxel 1,32,28")
    assert not (tmp_path / "z.nii.gz").exists()


def test_liver_seed_on_a_lesion_is_refused(cli, body_ct, tmp_path):
    path, shape, _ = body_ct
    code, _, err = cli(
        "segment",
        "liver",
        "--ct",
        path,
        "--seed",
        _seed(shape.center),
        "--out",
        tmp_path / "l.nii.gz",
    )
    line = one_line_error(code, err, "--seed")
    assert "not in liver parenchyma" in line or "does not look like the liver" in line
    assert not (tmp_path / "l.nii.gz").exists()


def test_margin_seed_and_mask_together_refused(cli, tmp_path):
    code, _, err = cli(
        "margin",
        "--tumor",
        tmp_path / "t.nii.gz",
        "--tumor-seed",
        "0,0,0",
        "--pre",
        tmp_path / "pre.nii.gz",
        "--post",
        tmp_path / "post.nii.gz",
        "--ablation-seed",
        "0,0,0",
        "--out",
        tmp_path / "o",
    )
    one_line_error(code, err, "--tumor-seed")
    code, _, err = cli(
        "margin",
        "--tumor-seed",
        "0,0,0",
        "--ablation",
        tmp_path / "z.nii.gz",
        "--out",
        tmp_path / "o",
    )
    one_line_error(code, err, "--tumor-seed", "--pre")
    assert not (tmp_path / "o").exists()


def test_segment_record_holds_no_absolute_path(cli, body_ct, tmp_path, monkeypatch):
    """The JSON and report name the CT relative to the working folder (or by name and
    hash) and the mask and report by name: an absolute path may name a patient's folder."""
    path, shape, _ = body_ct
    monkeypatch.chdir(path.parent)
    out = tmp_path / "patient-Smith" / "tumor.nii.gz"
    code, _, err = cli("segment", "tumor", "--ct", path, "--seed", _seed(shape.center),
                       "--out", out)  # fmt: skip
    assert code == 0, err
    record = json.loads((out.parent / "tumor.json").read_text(encoding="utf-8"))
    assert record["ct"] == "ct.nii.gz" and record["mask"] == "tumor.nii.gz"
    assert record["report"] == "tumor.html"
    for text in (out.parent / "tumor.json", out.parent / "tumor.html"):
        content = text.read_text(encoding="utf-8")
        assert str(tmp_path) not in content and str(path.parent) not in content


def test_segment_output_onto_its_ct_is_refused(cli, body_ct, tmp_path):
    """--out ct.nii.gz --ct ct.nii.gz would replace the CT by the mask."""
    path, shape, _ = body_ct
    ct = tmp_path / "ct.nii.gz"
    ct.write_bytes(path.read_bytes())
    code, _, err = cli("segment", "tumor", "--ct", ct, "--seed", _seed(shape.center),
                       "--out", ct)  # fmt: skip
    one_line_error(code, err, "ct.nii.gz")
    assert ct.read_bytes() == path.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nii.gz"]


def test_segment_write_error_leaves_no_partial_set(cli, body_ct, tmp_path, monkeypatch):
    """A write error after the mask (disk full while writing the JSON): exit 2, one line,
    and neither the mask nor its JSON or report (the three are one set)."""
    import errno

    import hepanav.segmentation.pipeline as pipeline

    path, shape, _ = body_ct

    def full(*_, **__):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pipeline, "write_json", full)
    out = tmp_path / "seg" / "tumor.nii.gz"
    code, _, err = cli("segment", "tumor", "--ct", path, "--seed", _seed(shape.center),
                       "--out", out)  # fmt: skip
    one_line_error(code, err, "No space left on device")
    assert not out.parent.exists()  # the folder the set created is removed again


# --- Misplaced clicks on the abdominal phantom (`hepanav phantom`, seed 0) ----------------


@pytest.fixture(scope="module")
def abdomen(tmp_path_factory):
    """``hepanav phantom --seed 0``: its folder (pre-procedure CT, liver and tumour masks)
    and label map (z, y, x)."""
    from typer.testing import CliRunner

    from hepanav.cli import app

    folder = tmp_path_factory.mktemp("misclick") / "ph"
    result = CliRunner().invoke(app, ["phantom", "--out", str(folder), "--seed", "0"])
    assert result.exit_code == 0, result.stderr
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "pre_labels.nii.gz")))
    return folder, labels


def _deepest_voxel(labels, ids):
    """``I,J,K`` of the voxel of ``ids`` farthest from the label's boundary, on the
    label's middle axial slice (the centre of a vertebral body, the aorta's lumen,
    the stomach's content), found from the label map, not hard-coded."""
    from scipy import ndimage

    inside = np.isin(labels, ids)
    ks = np.nonzero(inside.any(axis=(1, 2)))[0]
    k = int(ks[len(ks) // 2])
    depth = ndimage.distance_transform_edt(inside[k])
    j, i = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return f"{i},{j},{k}"


def _label_id(name):
    from hepanav.phantoms.schema import LABEL_IDS

    return LABEL_IDS[name]


@pytest.mark.parametrize(
    ("structure", "where", "fragments"),
    [
        # The vertebral body (trabecular, ~230 HU, brighter than liver): before, a
        # "hyperdense tumour" of 24 ml, all vertebra; its cortex encloses the region.
        ("tumor", "vertebrae_L2", ["boundary is bone (> 400 HU", "not in the liver"]),
        # The aorta (~180 HU): before, a 16 ml "tumour" along the aorta.
        ("tumor", "aorta", ["tubular", "a vessel"]),
        # Stomach content (~15 HU): before, a 156 ml "liver" with Dice 0.
        ("liver", "stomach", ["water-density fluid", "below 25 HU"]),
        # The aorta: before, 1.7 l of aorta + liver (356 ml outside the liver).
        ("liver", "aorta", ["brighter than the region it grew into", "vessel"]),
        # The kidney's medulla (~120 HU) inside its cortex (~180 HU, in the liver's HU
        # range): before, a "hypodense tumour" of 21 ml, all kidney, and a zone too.
        ("tumor", "kidney_right", ["tumour in the liver", "the seed is in another organ"]),
        ("ablation", "kidney_right", ["ablation zone in the liver", "in another organ"]),
        ("ablation", "kidney_left", ["ablation zone in the liver", "in another organ"]),
        # Vertebral body: the zone path ran none of the focal-lesion checks before.
        ("ablation", "vertebrae_L2", ["ablation zone", "not darker than the tissue around"]),
    ],
)
def test_misplaced_click_refused(cli, abdomen, tmp_path, structure, where, fragments):
    folder, labels = abdomen
    voxel = _deepest_voxel(labels, [_label_id(where)])
    i, j, k = (int(v) for v in voxel.split(","))
    assert labels[k, j, i] == _label_id(where)
    out = tmp_path / "m.nii.gz"
    code, _, err = cli(
        "segment",
        structure,
        "--ct",
        folder / "pre_ct.nii.gz",
        f"--seed-voxel={voxel}",
        "--out",
        out,
    )
    one_line_error(code, err, f"--seed-voxel {voxel} (", ") mm", *fragments)
    assert list(tmp_path.iterdir()) == []


def test_correct_clicks_on_the_phantom_still_segment(cli, abdomen, tmp_path):
    """The new checks refuse neither the tumour nor the liver clicked where they are."""
    from hepanav.segmentation.metrics import dice

    folder, labels = abdomen
    truth = sitk.ReadImage(str(folder / "pre_tumor.nii.gz"))
    tumour = sitk.GetArrayFromImage(truth) > 0
    k, j, i = (int(np.median(a)) for a in np.nonzero(tumour))
    assert tumour[k, j, i]
    out = tmp_path / "t.nii.gz"
    code, _, err = cli(
        "segment",
        "tumor",
        "--ct",
        folder / "pre_ct.nii.gz",
        f"--seed-voxel={i},{j},{k}",
        "--out",
        out,
        "--no-report",
    )
    assert code == 0, err
    assert dice(sitk.ReadImage(str(out)), truth) >= 0.85
    liver = _deepest_voxel(labels, [_label_id("liver")])
    out = tmp_path / "l.nii.gz"
    code, _, err = cli(
        "segment",
        "liver",
        "--ct",
        folder / "pre_ct.nii.gz",
        f"--seed-voxel={liver}",
        "--out",
        out,
        "--no-report",
    )
    assert code == 0, err
    true_liver = sitk.ReadImage(str(folder / "pre_liver.nii.gz"))
    assert dice(sitk.ReadImage(str(out)), true_liver) >= 0.85


def test_correct_zone_click_on_the_phantom_still_segments(cli, abdomen, tmp_path):
    """The zone checks (focal lesion, embedded in liver) refuse no zone clicked in it."""
    from hepanav.segmentation.metrics import dice

    folder, _ = abdomen
    truth = sitk.ReadImage(str(folder / "post_ablation.nii.gz"))
    zone = sitk.GetArrayFromImage(truth) > 0
    k, j, i = (int(np.median(a)) for a in np.nonzero(zone))
    assert zone[k, j, i]
    out = tmp_path / "z.nii.gz"
    code, _, err = cli(
        "segment",
        "ablation",
        "--ct",
        folder / "post_ct.nii.gz",
        f"--seed-voxel={i},{j},{k}",
        "--out",
        out,
        "--no-report",
    )
    assert code == 0, err
    assert dice(sitk.ReadImage(str(out)), truth) >= 0.85


def test_small_max_radius_on_a_large_tumour_is_a_leak(cli, abdomen, tmp_path):
    """A 3 mm --max-radius-mm inside the phantom's ~27 mm tumour: only tumour within it,
    so the region reaches the limit (the documented leak error), not "no contrast"
    (the parenchyma was measured inside the limit only)."""
    folder, _ = abdomen
    tumour = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "pre_tumor.nii.gz"))) > 0
    k, j, i = (int(np.median(a)) for a in np.nonzero(tumour))
    code, _, err = cli(
        "segment",
        "tumor",
        "--ct",
        folder / "pre_ct.nii.gz",
        f"--seed-voxel={i},{j},{k}",
        "--max-radius-mm",
        "3",
        "--out",
        tmp_path / "t.nii.gz",
    )
    one_line_error(code, err, f"--seed-voxel {i},{j},{k} (", "leaked", "--max-radius-mm 3")
    assert "not darker" not in err
    assert list(tmp_path.iterdir()) == []
