"""Ablation cases: the written folder, its ground truth, and consistency between them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from hepanav import DISCLAIMER
from hepanav.imaging import dice, read_image, resample_mask_like
from hepanav.phantoms.ablation_case import build_case, case_parameters, make_ablation_case
from hepanav.phantoms.lesions import StarShape
from hepanav.phantoms.schema import StarShapeParameters

SPHERES = {
    "tumor": {"radius_mm": 10.0, "axis_ratios": (1, 1, 1), "irregularity": 0.0},
    "zone": {"margin_mm": 6.0, "offset_lps": (0.0, 0.0, 3.0), "irregularity": 0.0},
}


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("case")
    desc = make_ablation_case(out, seed=2, spacing_mm=(2.5, 2.5, 2.5), **SPHERES)
    return out, desc


def voxel_centres(mask: sitk.Image) -> np.ndarray:
    k, j, i = np.nonzero(sitk.GetArrayFromImage(mask))
    return np.array(
        [
            mask.TransformIndexToPhysicalPoint((int(a), int(b), int(c)))
            for a, b, c in zip(i, j, k, strict=True)
        ]
    )


@pytest.mark.slow  # builds and writes the module's case (about 7 s)
def test_folder_layout_and_json(case_dir):
    out, desc = case_dir
    for name in (
        "pre_ct",
        "post_ct",
        "pre_liver",
        "post_liver",
        "pre_tumor",
        "post_ablation",
        "pre_labels",
        "truth/post_tumor",
        "truth/pre_ablation",
        "truth/displacement_post_to_pre",
    ):
        assert (out / f"{name}.nii.gz").is_file(), name
    truth = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    case = json.loads((out / "case.json").read_text(encoding="utf-8"))
    assert truth["disclaimer"] == DISCLAIMER and case["disclaimer"] == DISCLAIMER
    for key in (
        "min_margin_mm",
        "surface_fraction_below_0mm",
        "surface_fraction_below_5mm",
        "shell_coverage_5mm",
        "shell_coverage_6mm",
        "category",
        "tumor_volume_ml",
        "ablation_volume_ml",
        "max_displacement_mm",
        "seed",
    ):
        assert key in truth
    assert case["true_margins"]["min_margin_mm"] == truth["min_margin_mm"]
    assert truth["max_displacement_mm"] == pytest.approx(10.0, abs=0.01)
    pre = pd.read_csv(out / "landmarks_pre.csv")
    post = pd.read_csv(out / "landmarks_post.csv")
    assert list(pre.columns) == ["id", "x", "y", "z"] and len(pre) >= 20
    assert (pre["id"] == post["id"]).all()
    field = sitk.ReadImage(str(out / "truth/displacement_post_to_pre.nii.gz"))
    assert field.GetNumberOfComponentsPerPixel() == 3
    assert field.GetPixelID() == sitk.sitkVectorFloat64
    assert field.GetSize() == read_image(out / "post_ct.nii.gz").GetSize()


def test_sphere_case_margin_matches_geometry(case_dir):
    _, desc = case_dir
    t = desc.true_margins
    assert desc.kind == "procedural"
    # Spheres 10 and 16 mm offset by 3 mm: 3 mm before motion; the smooth motion
    # deforms the tumour slightly (strain of a few per cent over 10 mm).
    assert t.min_margin_mm == pytest.approx(3.0, abs=0.4)
    assert t.category == "0-5mm"
    assert t.tumor_volume_ml == pytest.approx(4 / 3 * np.pi / 1, rel=0.01)  # 4.19 ml


def test_landmarks_follow_the_deformation(case_dir):
    out, _ = case_dir
    pre = pd.read_csv(out / "landmarks_pre.csv")[["x", "y", "z"]].to_numpy()
    post = pd.read_csv(out / "landmarks_post.csv")[["x", "y", "z"]].to_numpy()
    assert np.linalg.norm(post - pre, axis=1).max() > 1.0  # they did move
    field = sitk.ReadImage(str(out / "truth/displacement_post_to_pre.nii.gz"))
    tx = sitk.DisplacementFieldTransform(field)
    back = np.array([tx.TransformPoint(tuple(p)) for p in post])
    assert np.abs(back - pre).max() < 0.1  # p_pre = p_post + d(p_post)
    for space, pts in (("pre", pre), ("post", post)):
        liver = read_image(out / f"{space}_liver.nii.gz")
        arr = sitk.GetArrayFromImage(liver)
        idx = [liver.TransformPhysicalPointToIndex(tuple(p)) for p in pts]
        assert all(arr[k, j, i] for i, j, k in idx), space


def test_masks_agree_with_truth_and_warp(case_dir):
    out, desc = case_dir
    truth = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    tumor = StarShape.from_parameters(StarShapeParameters(**truth["tumor_shape"]))
    pre_tumor = read_image(out / "pre_tumor.nii.gz")
    assert tumor.contains(voxel_centres(pre_tumor)).all()
    vox_ml = sitk.GetArrayFromImage(pre_tumor).sum() * 2.5**3 / 1000
    assert vox_ml == pytest.approx(truth["tumor_volume_ml"], rel=0.1)
    # Warping the pre tumour mask with the true field gives the true post tumour.
    field = sitk.ReadImage(str(out / "truth/displacement_post_to_pre.nii.gz"))
    post_truth = read_image(out / "truth/post_tumor.nii.gz")
    warped = resample_mask_like(pre_tumor, post_truth, sitk.DisplacementFieldTransform(field))
    assert dice(warped, post_truth) > 0.85
    zone = read_image(out / "post_ablation.nii.gz")
    assert sitk.GetArrayFromImage(zone).sum() * 2.5**3 / 1000 == pytest.approx(
        truth["ablation_volume_ml"], rel=0.1
    )


def test_post_ct_shows_hypodense_zone_with_rim(case_dir):
    out, _ = case_dir
    ct = sitk.GetArrayFromImage(read_image(out / "post_ct.nii.gz")).astype(float)
    zone = read_image(out / "post_ablation.nii.gz")
    core = sitk.GetArrayFromImage(sitk.BinaryErode(zone, [2, 2, 2])) > 0
    ring = sitk.GetArrayFromImage(sitk.BinaryDilate(zone, [1, 1, 1]) - zone) > 0
    liver = sitk.GetArrayFromImage(read_image(out / "post_liver.nii.gz")) > 0
    far = liver & ~(sitk.GetArrayFromImage(sitk.BinaryDilate(zone, [6, 6, 6])) > 0)
    liver_hu = np.median(ct[far])
    assert np.median(ct[core]) == pytest.approx(liver_hu - 60, abs=15)
    assert np.median(ct[ring]) > np.median(ct[core]) + 40
    pre = sitk.GetArrayFromImage(read_image(out / "pre_ct.nii.gz")).astype(float)
    tumor = (
        sitk.GetArrayFromImage(sitk.BinaryErode(read_image(out / "pre_tumor.nii.gz"), [1, 1, 1]))
        > 0
    )
    assert np.median(pre[tumor]) == pytest.approx(liver_hu - 45, abs=15)


@pytest.mark.slow  # builds a full phantom case (about 6 s)
def test_incomplete_ablation_without_motion():
    params = case_parameters(
        spacing_mm=(3.0, 3.0, 3.0),
        tumor={"radius_mm": 12.0, "axis_ratios": (1, 1, 1), "irregularity": 0.0},
        zone={"margin_mm": 4.0, "offset_lps": (6.0, 0.0, 0.0), "irregularity": 0.0},
        deformation={"max_displacement_mm": 0.0},
    )
    case = build_case(0, params)
    assert case.truth.min_margin_mm == pytest.approx(-2.0, abs=0.01)
    assert case.truth.category == "incomplete"
    assert case.truth.surface_fraction_below_0mm > 0.05
    # Without motion, the true masks are the masks themselves.
    assert dice(case.truth_post_tumor, case.pre_tumor) == 1.0
    assert np.array_equal(case.landmarks_pre, case.landmarks_post)


def test_chosen_center_outside_liver_is_refused():
    from hepanav.core import InputError

    with pytest.raises(InputError, match="tumor.center_lps"):
        build_case(
            0,
            case_parameters(spacing_mm=(4.0, 4.0, 4.0), tumor={"center_lps": (120.0, 0.0, -60.0)}),
        )
