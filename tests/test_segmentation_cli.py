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
        assert page.locator("img").count() == 1
        assert page.locator("img").evaluate("e => e.naturalWidth") > 500
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 20000


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--seed", "500,0,0"], ["--seed", "(500.0, 0.0, 0.0)", "outside the image"]),
        (["--seed-voxel", "1,1,1"], ["--seed-voxel 1,1,1", "outside the body"]),
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
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
