"""`hepanav phantom`: a procedural case, real-CT implants, and bad input (exit 2, one line)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from cli_helpers import one_line_error
from hepanav import DISCLAIMER
from hepanav.imaging import dice, read_image, resample_labels_like
from hepanav.phantoms.schema import AblationCase


def write(array: np.ndarray, path, origin=(0.0, 0.0, 0.0)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0, 2.0, 2.0))
    image.SetOrigin(origin)
    sitk.WriteImage(image, str(path))
    return path


@pytest.fixture()
def small_ct(tmp_path):
    # a CT in HU (the base CT is read through load_ct): 60 HU tissue, 10 HU noise, air
    ct = np.random.default_rng(0).normal(60.0, 10.0, (30, 30, 30)).round().astype(np.int16)
    ct[:, :2] = -1000
    liver = np.zeros((30, 30, 30), np.uint8)
    liver[5:25, 5:25, 5:25] = 1
    return (
        write(ct, tmp_path / "ct.nii.gz"),
        write(liver, tmp_path / "liver.nii.gz"),
        write(np.zeros_like(liver), tmp_path / "empty.nii.gz"),
        write(liver, tmp_path / "far.nii.gz", origin=(500.0, 500.0, 500.0)),
    )


@pytest.mark.slow
def test_procedural_case(cli, tmp_path):
    code, out, err = cli(
        "phantom",
        "--out",
        tmp_path / "c",
        "--seed",
        "1",
        "--spacing",
        "3",
        "--tumor-radius",
        "8",
        "--margin",
        "6",
    )
    assert code == 0, err
    assert "true MAM" in out
    desc = AblationCase.model_validate_json(
        (tmp_path / "c" / "case.json").read_text(encoding="utf-8")
    )
    assert desc.kind == "procedural" and desc.seed == 1
    assert desc.parameters.tumor.radius_mm == 8.0
    assert read_image(tmp_path / "c" / "pre_ct.nii.gz").GetSpacing() == (3.0, 3.0, 3.0)
    html = (tmp_path / "c" / "case.html").read_text(encoding="utf-8")
    assert desc.report == "case.html" and DISCLAIMER in html and "data:image/png" in html
    assert f"{desc.true_margins.min_margin_mm:.2f} mm" in html


def test_missing_base_ct(cli, tmp_path, small_ct):
    _, liver, _, _ = small_ct
    code, _, err = cli(
        "phantom",
        "--out",
        tmp_path / "o",
        "--base-ct",
        tmp_path / "nope.nii.gz",
        "--base-liver",
        liver,
    )
    one_line_error(code, err, "nope.nii.gz", "does not exist")


def test_base_ct_without_liver(cli, tmp_path, small_ct):
    ct, _, _, _ = small_ct
    code, _, err = cli("phantom", "--out", tmp_path / "o", "--base-ct", ct)
    one_line_error(code, err, "--base-liver")


def test_empty_base_liver(cli, tmp_path, small_ct):
    ct, _, empty, _ = small_ct
    code, _, err = cli("phantom", "--out", tmp_path / "o", "--base-ct", ct, "--base-liver", empty)
    one_line_error(code, err, "empty.nii.gz", "empty")


def test_base_liver_not_overlapping(cli, tmp_path, small_ct):
    ct, _, _, far = small_ct
    code, _, err = cli("phantom", "--out", tmp_path / "o", "--base-ct", ct, "--base-liver", far)
    one_line_error(code, err, "far.nii.gz", "overlap")


def test_label_map_without_liver(cli, tmp_path, small_ct):
    ct, _, _, _ = small_ct
    labels = np.zeros((30, 30, 30), np.uint8)
    labels[5:10], labels[12:20] = 1, 2  # spleen and right kidney, no liver (5)
    path = write(labels, tmp_path / "labels.nii.gz")
    code, _, err = cli("phantom", "--out", tmp_path / "o", "--base-ct", ct, "--base-liver", path)
    one_line_error(code, err, "labels.nii.gz", "liver label 5")


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("--size", "0", "10", "10"), "size"),
        (("--spacing", "0"), "spacing_mm"),
        (("--spacing", "0.1"), "size: grid of 3600 x 2600 x 1900"),  # 17.8 G voxels
        (("--size", "1000", "1000", "1000"), "exceeds the limit"),
    ],
)
def test_bad_grid(cli, tmp_path, args, field):
    code, _, err = cli("phantom", "--out", tmp_path / "o", *args)
    one_line_error(code, err, field)


def test_negative_seed(cli, tmp_path):
    code, _, err = cli("phantom", "--out", tmp_path / "o", "--seed", "-1")
    one_line_error(code, err, "--seed", "an integer from 0 to 4294967295")
    assert not (tmp_path / "o").exists()


def test_liver_label_without_base_scan(cli, tmp_path):
    code, _, err = cli("phantom", "--out", tmp_path / "o", "--liver-label", "3")
    one_line_error(code, err, "--liver-label", "real base scan")


def test_liver_label_not_in_the_map(cli, tmp_path, small_ct):
    ct, liver, _, _ = small_ct
    args = ("--base-ct", ct, "--base-liver", liver, "--liver-label", "7")
    code, _, err = cli("phantom", "--out", tmp_path / "o", *args)
    one_line_error(code, err, "liver.nii.gz", "liver label 7 is not in the label map")


def test_displacement_over_25mm(cli, tmp_path):
    code, _, err = cli("phantom", "--out", tmp_path / "o", "--max-displacement", "30")
    one_line_error(code, err, "max_displacement_mm")


@pytest.mark.slow
@pytest.mark.realdata
def test_implant_into_3mm_ct(cli, tmp_path, shared_data):
    base = shared_data / "ct-abdomen-3mm"
    code, _, err = cli(
        "phantom",
        "--out",
        tmp_path / "r",
        "--base-ct",
        base / "ct.nii.gz",
        "--base-liver",
        base / "liver.nii.gz",
        "--seed",
        "4",
    )
    assert code == 0, err
    out = tmp_path / "r"
    ct = read_image(base / "ct.nii.gz")
    pre = read_image(out / "pre_ct.nii.gz")
    # Same grid as the real scan, including its non-identity direction.
    assert pre.GetDirection() == pytest.approx(ct.GetDirection())
    assert pre.GetOrigin() == pytest.approx(ct.GetOrigin())
    liver = sitk.GetArrayFromImage(read_image(out / "pre_liver.nii.gz")) > 0
    tumor = sitk.GetArrayFromImage(read_image(out / "pre_tumor.nii.gz")) > 0
    assert tumor.sum() > 50 and liver[tumor].all()
    # Outside the lesion the pre scan is the real scan, untouched.
    a, b = sitk.GetArrayFromImage(pre), sitk.GetArrayFromImage(ct)
    far = ~(
        sitk.GetArrayFromImage(sitk.BinaryDilate(read_image(out / "pre_tumor.nii.gz"), [4, 4, 4]))
        > 0
    )
    assert np.array_equal(a[far], b[far])
    truth = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    # Recorded by name (and a hash when outside the working folder), never an absolute path.
    assert truth["base_ct"].startswith("ct.nii.gz") and not truth["base_ct"].startswith("/")
    assert not (out / "pre_labels.nii.gz").exists()


@pytest.mark.slow
@pytest.mark.realdata
def test_implant_into_dicom_with_flipped_labels(shared_data):
    from hepanav.phantoms.ablation_case import build_case, case_parameters
    from hepanav.phantoms.implant import load_base_scan

    base = shared_data / "ct-abdomen-dicom"
    ct = read_image(base / "series")
    scan = load_base_scan(base / "series", base / "labels.nii.gz")
    assert scan.labels.shape == scan.liver.shape == sitk.GetArrayViewFromImage(ct).shape
    liver = sitk.GetImageFromArray(scan.liver)
    liver.CopyInformation(ct)
    # Labels were resampled in physical space: the liver label is the liver mask, and it
    # matches an independent physical-space resampling, not the raw (row-flipped) array.
    assert (
        dice(
            sitk.Cast(sitk.GetImageFromArray((scan.labels == 5).astype(np.uint8)), sitk.sitkUInt8),
            sitk.GetImageFromArray(scan.liver),
        )
        > 0.98
    )
    raw = read_image(base / "labels.nii.gz")
    ref = resample_labels_like(raw, ct)
    assert dice(sitk.Cast(ref == 5, sitk.sitkUInt8), liver) > 0.98
    flipped = sitk.GetImageFromArray(sitk.GetArrayFromImage(raw))
    flipped.CopyInformation(ct)
    assert dice(sitk.Cast(flipped == 5, sitk.sitkUInt8), liver) < 0.9
    assert 80 < scan.liver_hu < 110  # README: liver about 93 HU
    # The implanted tumour is darker than the liver, and the post zone darker still.
    case = build_case(
        1,
        case_parameters(tumor={"radius_mm": 8.0}, zone={"margin_mm": 5.0}),
        base / "series",
        base / "labels.nii.gz",
    )
    assert case.pre_labels is not None and case.truth.base_ct.endswith("series")
    pre = sitk.GetArrayFromImage(case.pre_ct).astype(float)
    post = sitk.GetArrayFromImage(case.post_ct).astype(float)
    tumor = sitk.GetArrayFromImage(case.pre_tumor) > 0
    zone = sitk.GetArrayFromImage(sitk.BinaryErode(case.post_ablation, [1, 1, 1])) > 0
    assert tumor.sum() > 50 and scan.liver[tumor].all()
    assert np.median(pre[tumor]) < scan.liver_hu - 25
    assert np.median(post[zone]) < np.median(pre[tumor])


@pytest.mark.realdata
def test_zone_outside_the_field_of_view(cli, tmp_path, shared_data):
    # The DICOM example is a 38 mm slab: a 3 cm tumour with a 7 mm margin moved by
    # 10 mm of breathing cannot stay inside it.
    base = shared_data / "ct-abdomen-dicom"
    code, _, err = cli(
        "phantom",
        "--out",
        tmp_path / "o",
        "--base-ct",
        base / "series",
        "--base-liver",
        base / "labels.nii.gz",
    )
    one_line_error(code, err, "field of view")
