"""The mask options on the commands: one-line refusals, notes in margin.json and the report."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

from cli_helpers import one_line_error


def _label_map(path, spacing=(1.0, 1.0, 1.0), size=40):
    grid = (np.indices((size,) * 3) - (size - 1) / 2) * np.asarray(spacing)[::-1, None, None, None]
    r = np.sqrt((grid**2).sum(axis=0))
    labels = np.where(r <= 8.0, 1, np.where(r <= 15.0, 2, 0)).astype(np.uint8)
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def test_margin_label_options_and_notes(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    labels = _label_map(tmp_path / "labels.nii.gz")
    code, _, err = cli("margin", "--tumor", labels, "--ablation", labels, "--out", tmp_path / "a")
    one_line_error(code, err, "labels.nii.gz", "label map with labels 1, 2", "--ablation-label")
    assert not (tmp_path / "a").exists()
    code, _, err = cli(
        "margin",
        "--tumor",
        labels,
        "--ablation",
        labels,
        "--tumor-label",
        "1,,2",
        "--out",
        tmp_path / "a",
    )
    one_line_error(code, err, "--tumor-label", "empty item")
    # A float fraction map as zone: thresholded with a note that reaches JSON and report.
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(labels)))
    fraction = sitk.GetImageFromArray(np.where(array > 0, 0.8, 0.1).astype(np.float32))
    fraction.CopyInformation(sitk.ReadImage(str(labels)))
    sitk.WriteImage(fraction, str(tmp_path / "zone.nii.gz"))  # a probability map with a floor
    code, out, err = cli(
        "margin",
        "--tumor",
        labels,
        "--tumor-label",
        "1",
        "--ablation",
        labels,
        "--ablation-label",
        "1,2",
        "--out",
        tmp_path / "b",
    )
    assert code == 0, err
    result = json.loads((tmp_path / "b" / "margin.json").read_text())
    assert abs(result["min_margin_mm"] - 7.0) <= 0.5
    assert [i["segment"] for i in result["inputs"]] == ["1, 2", "1"]
    assert all(i["file"] == "labels.nii.gz" for i in result["inputs"])
    code, out, err = cli(
        "margin",
        "--tumor",
        labels,
        "--tumor-label",
        "1",
        "--ablation",
        "zone.nii.gz",
        "--mask-threshold",
        "0.6",
        "--out",
        tmp_path / "c",
    )
    assert code == 0, err
    result = json.loads((tmp_path / "c" / "margin.json").read_text())
    notes = result["inputs"][0]["notes"]
    assert notes == ["non-binary float mask thresholded at 0.6 (--mask-threshold)"]
    assert abs(result["min_margin_mm"] - 7.0) <= 0.5
    html = (tmp_path / "c" / "report.html").read_text()
    assert "Inputs" in html and "thresholded at 0.6" in html
    assert str(tmp_path) not in json.dumps(result)  # no absolute paths
    _screenshot(tmp_path / "c" / "report.html", tmp_path / "report.png")


def _screenshot(html, png):
    """Look at the Inputs table (headless Debian Chromium); kept for inspection."""
    chromium = "/usr/bin/chromium"
    if not os.path.exists(chromium):
        pytest.skip("no /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
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
        page.goto(html.as_uri())
        page.locator("h2", has_text="Inputs").scroll_into_view_if_needed()
        page.screenshot(path=str(png))
        browser.close()
    assert png.stat().st_size > 10_000
    keep = os.environ.get("HEPANAV_SCREENSHOTS")
    if keep:
        import shutil

        shutil.copy(png, keep)


def test_plan_tumour_label_map_needs_a_label(tmp_path, cli):
    # a CT in HU (the planning CT is read through load_ct): soft tissue, air at one side
    hu = np.random.default_rng(0).normal(40.0, 10.0, (20, 20, 20))
    hu[:, :3] = -1000.0
    ct = sitk.GetImageFromArray(hu.round().astype(np.int16))
    sitk.WriteImage(ct, str(tmp_path / "ct.nii.gz"))
    organs = sitk.Image([20, 20, 20], sitk.sitkUInt8) + 5
    sitk.WriteImage(organs, str(tmp_path / "organs.nii.gz"))
    array = np.zeros((20, 20, 20), np.uint8)
    array[5:8] = 1
    array[10:12] = 2
    sitk.WriteImage(sitk.GetImageFromArray(array), str(tmp_path / "lesions.nii.gz"))
    code, _, err = cli(
        "plan",
        "--ct",
        tmp_path / "ct.nii.gz",
        "--tumor",
        tmp_path / "lesions.nii.gz",
        "--labels",
        tmp_path / "organs.nii.gz",
        "--out",
        tmp_path / "out",
    )
    one_line_error(code, err, "lesions.nii.gz", "labels 1, 2", "--tumor-label")
    code, _, err = cli(
        "plan",
        "--ct",
        tmp_path / "ct.nii.gz",
        "--tumor",
        tmp_path / "lesions.nii.gz",
        "--tumor-label",
        "3",
        "--labels",
        tmp_path / "organs.nii.gz",
        "--out",
        tmp_path / "out",
    )
    one_line_error(code, err, "label 3 not present; labels present: 1, 2")
