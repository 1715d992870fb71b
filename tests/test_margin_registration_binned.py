"""The quadratic local stage's forward model of binned post voxels, ``local_binned_model``.

``acquired_grid`` bins a fine post scan into block means (1.5 mm -> 3 mm here: 2 x 2 x 2
voxels); without the model the fit compares each block MEAN with the pre CT at the
block's CENTRE, which differ wherever the intensity curves. Known answer by construction:
post = pre resampled (linearly) through a known translation onto a 1.5 mm grid, a fine
texture (Gaussian of 1 voxel) with sharp-edged balls ("vessels", +120 HU), no voxel
near the window bounds. Started AT the true
transform, the model's correction must vanish (its metric is exact there); the block-
centre comparison is measurably biased (this test's second case: it fails on that
model). Also: the model's analytic gradient against central differences, and a known
offset recovered at the tumour surface inside the excluded hole.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from hepanav.margin import registration as reg
from hepanav.margin.registration import RING_QUADRATIC, RegistrationSettings, local_stage

SHIFT_MM = np.array([1.1, -0.7, 1.9])
QUADRATIC = {"local_transform": "quadratic", "local_quadratic_harmonic": True}


@pytest.fixture(scope="module")
def fine_pair():
    """(pre CT, pre tumour, post CT on 1.5 mm voxels, post zone, true post -> pre)."""
    rng = np.random.default_rng(5)
    n = 72
    texture = ndimage.gaussian_filter(rng.normal(size=(n, n, n)), 1.0)
    zz, yy, xx = np.mgrid[:n, :n, :n] * 1.5 - 54.0
    # Sharp-edged "vessels": balls of 2-4 mm radius, +120 HU, voxelised without blur.
    vessels = np.zeros((n, n, n), bool)
    centres, radii = rng.uniform(-40, 40, (120, 3)), rng.uniform(2, 4, 120)
    for (cx, cy, cz), radius in zip(centres, radii, strict=True):
        vessels |= (xx - cx) ** 2 + (yy - cy) ** 2 + (zz - cz) ** 2 <= radius**2
    hu = 60.0 + 8.0 * texture / texture.std() + 120.0 * vessels
    pre = sitk.GetImageFromArray(np.clip(hu, -90.0, 240.0).astype(np.float32))
    pre.SetSpacing((1.5, 1.5, 1.5))
    pre.SetOrigin((-54.0, -54.0, -54.0))
    tumour = sitk.GetImageFromArray((np.sqrt(xx**2 + yy**2 + zz**2) <= 9.0).astype(np.uint8))
    tumour.CopyInformation(pre)
    grid = sitk.Image([56, 56, 56], sitk.sitkFloat32)
    grid.SetSpacing((1.5, 1.5, 1.5))
    # Post voxels land 0.4 mm off the pre voxels: on whole or half pre voxels, trilinear
    # interpolation at a block's centre would equal the block's mean and hide the bias.
    grid.SetOrigin((-42.0 + 0.4 - SHIFT_MM).tolist())
    truth = sitk.TranslationTransform(3, SHIFT_MM.tolist())
    post = sitk.Resample(pre, grid, truth, sitk.sitkLinear, -1000.0)
    zone = sitk.Resample(tumour, grid, truth, sitk.sitkNearestNeighbor, 0)
    zone = sitk.Cast(sitk.BinaryDilate(zone, [2, 2, 2]), sitk.sitkUInt8)
    return pre, tumour, post, zone, truth


def _tumour_move(correction: sitk.Transform, kept: bool) -> float:
    """Largest |correction(x) - x| over 200 points of the post tumour surface, mm."""
    if not kept:
        return 0.0
    points = np.random.default_rng(0).normal(size=(200, 3))
    points = 9.0 * points / np.linalg.norm(points, axis=1)[:, None] - SHIFT_MM
    moved = np.array([correction.TransformPoint(p.tolist()) for p in points])
    return float(np.linalg.norm(moved - points, axis=1).max())


def test_binned_model_stays_at_the_truth(fine_pair):
    pre, tumour, post, zone, truth = fine_pair
    settings = RegistrationSettings(**QUADRATIC, local_binned_model=True)
    correction, info = local_stage(pre, post, zone, tumour, truth, settings)
    assert _tumour_move(correction, info.accepted) < 0.05, info.note


def test_block_centre_comparison_is_biased_at_the_truth(fine_pair):
    """The reason for the model: without it the same fit moves the tumour at the truth."""
    pre, tumour, post, zone, truth = fine_pair
    settings = RegistrationSettings(**QUADRATIC, local_binned_model=False)
    correction, info = local_stage(pre, post, zone, tumour, truth, settings)
    assert info.accepted and _tumour_move(correction, True) > 0.1, info.note


def test_binned_model_recovers_a_known_offset(fine_pair):
    pre, tumour, post, zone, truth = fine_pair
    offset = sitk.Euler3DTransform((2.0, -1.0, 0.5), np.radians(1.0), 0.0, np.radians(-1.5))
    offset.SetTranslation((0.9, -0.6, 0.7))
    start = sitk.CompositeTransform([truth, offset])
    settings = RegistrationSettings(**QUADRATIC, local_binned_model=True)
    correction, info = local_stage(pre, post, zone, tumour, start, settings)
    assert info.accepted, info.note
    points = np.random.default_rng(1).normal(size=(200, 3))
    points = 9.0 * points / np.linalg.norm(points, axis=1)[:, None] - SHIFT_MM
    final = sitk.CompositeTransform([start, correction])
    mapped = np.array([final.TransformPoint(p.tolist()) for p in points])
    assert np.linalg.norm(mapped - points - SHIFT_MM, axis=1).max() < 0.15


def test_binned_model_gradient_is_exact(fine_pair):
    """The metric's analytic gradient with sub-voxel averaging, against central
    differences of the same metric (the fit's inputs as ``local_stage`` builds them)."""
    pre, tumour, post, zone, truth = fine_pair
    settings = RegistrationSettings(**QUADRATIC, local_binned_model=True)
    fixed = reg.acquired_grid(post, settings.local_min_spacing_mm)
    assert fixed.GetSpacing() == (3.0, 3.0, 3.0)
    zone3 = reg.resample_mask_like(zone, fixed)
    region = sitk.And(
        reg.soft_tissue_region(fixed, zone3, 30.0),
        sitk.Not(reg.dilate_mm(zone3, settings.exclusion_mm)),
    )
    moving_mask = sitk.Not(reg.dilate_mm(tumour, settings.exclusion_mm))
    initial = reg._as_displacement_field(truth, fixed)
    variant = reg._LocalMetric.build(fixed, region, pre, moving_mask, initial, settings)
    binned = reg._binned_inputs(post, variant)
    assert binned[1].shape == (8, 3)
    assert np.allclose(np.abs(binned[1]), 0.75)  # sub-voxel centres at +-0.75 mm
    grid = reg.resample_isotropic(sitk.Cast(zone3, sitk.sitkFloat32), 2.0)
    ring = sitk.GetArrayViewFromImage(variant.region) > 0
    fit = reg._QuadraticFit.build(
        variant, ring, truth, grid, reg._centroid_lps(zone3), True, binned
    )
    theta = np.random.default_rng(2).normal(scale=0.2, size=27)
    _, gradient = fit.metric(theta)
    for k in (0, 4, 13, 26):
        step = np.zeros(27)
        step[k] = 1e-6
        numeric = (fit.metric(theta + step)[0] - fit.metric(theta - step)[0]) / 2e-6
        assert numeric == pytest.approx(gradient[k], rel=1e-4, abs=1e-9)


def test_fallback_runs_the_bspline_when_the_quadratic_is_refused():
    """With no ring to fit (``local_ring_mm`` below a voxel) the quadratic is refused and
    the B-spline stage runs instead: kept, named, and it halves a 1.22 mm offset."""
    from test_margin_registration_clamp import SHIFT_MM, _tumour_error, make_pair

    pre, tumour, post, zone, _ = make_pair(texture_hu=25.0, noise_hu=12.0)
    start = sitk.TranslationTransform(3, (SHIFT_MM + [0.8, 0.6, -0.7]).tolist())
    assert _tumour_error(start, start, False) > 1.2
    settings = RegistrationSettings(**RING_QUADRATIC, local_ring_mm=0.5)
    correction, info = local_stage(pre, post, zone, tumour, start, settings)
    assert info.accepted and info.family == "bspline", info.note
    assert info.note.startswith("quadratic refused (too few voxels in the ring"), info.note
    assert "; B-spline kept" in info.note
    assert _tumour_error(start, correction, info.accepted) < 0.6
    no_fallback = RegistrationSettings(
        **{**RING_QUADRATIC, "local_quadratic_fallback": False}, local_ring_mm=0.5
    )
    _, info = local_stage(pre, post, zone, tumour, start, no_fallback)
    assert not info.accepted and info.family == "quadratic"


def test_crossval_refuses_a_fit_to_one_halfs_noise(tmp_path):
    """The make-demo phantom of seed 7 (12 HU independent noise in each scan, a flat
    liver around the zone), started AT the true transform: the quadratic fit without the
    cross-check is kept and moves the tumour (measured 0.23 / 0.37 mm mean / max); the
    half fits do not carry over to each other, so with it the quadratic is refused."""
    from hepanav.phantoms.ablation_case import make_ablation_case

    make_ablation_case(tmp_path, seed=7, truth_displacement=True)

    def read(name):
        return sitk.ReadImage(str(tmp_path / f"{name}.nii.gz"))

    field = sitk.Cast(read("truth/displacement_post_to_pre"), sitk.sitkVectorFloat64)
    truth = sitk.DisplacementFieldTransform(field)
    scans = read("pre_ct"), read("post_ct"), read("post_ablation"), read("pre_tumor")
    plain = RegistrationSettings(
        **{**RING_QUADRATIC, "local_quadratic_crossval": False, "local_quadratic_fallback": False}
    )
    correction, info = local_stage(*scans, truth, plain)
    assert info.accepted, info.note
    points = np.argwhere(sitk.GetArrayViewFromImage(read("truth/post_tumor")) > 0)[::50, ::-1]
    image = read("truth/post_tumor")
    points = [image.TransformIndexToPhysicalPoint([int(v) for v in p]) for p in points]
    moved = max(np.linalg.norm(np.subtract(correction.TransformPoint(p), p)) for p in points)
    assert moved > 0.15
    checked = RegistrationSettings(**{**RING_QUADRATIC, "local_quadratic_fallback": False})
    _, info = local_stage(*scans, truth, checked)
    assert not info.accepted and "does not carry over" in info.note, info.note
