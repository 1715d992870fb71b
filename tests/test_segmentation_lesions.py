"""Tumour and ablation-zone segmentation against analytic lesions known by construction."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from hepanav.core.errors import InputError
from hepanav.segmentation.ablation import segment_ablation
from hepanav.segmentation.metrics import dice, mean_surface_distance_mm
from hepanav.segmentation.seeds import make_seeds
from hepanav.segmentation.tumor import segment_tumor
from segmentation_helpers import LIVER_HU, image, lesion_case, paint_cylinder


@pytest.mark.parametrize("radius", [4.0, 12.0])
@pytest.mark.parametrize("contrast", [-45.0, 50.0])
def test_tumor_hypo_and_hyper_sizes(radius, contrast):
    ct, truth, shape, _, _ = lesion_case(radius=radius, contrast=contrast)
    seg = segment_tumor(ct, make_seeds(ct, [shape.center]))
    assert seg.appearance == ("hypo" if contrast < 0 else "hyper")
    assert dice(seg.mask, truth) >= 0.90
    assert mean_surface_distance_mm(seg.mask, truth) <= 1.0
    assert abs(seg.parenchyma_hu - LIVER_HU) < 8


def test_forced_appearance_against_the_image_is_refused():
    """Refused naming the seed's HU against the tissue around it (before: "leaked")."""
    ct, _, shape, _, _ = lesion_case(radius=8.0, contrast=-45.0)
    with pytest.raises(
        InputError, match="--appearance hyper: the seed .* is darker than the tissue"
    ):
        segment_tumor(ct, make_seeds(ct, [shape.center]), appearance="hyper")


def test_hyper_tumor_does_not_follow_an_attached_vessel():
    ct, truth, shape, grid, hu = lesion_case(radius=10.0, contrast=55.0)
    # A 3 mm vessel as bright as the lesion, touching it tangentially.
    radial = paint_cylinder(
        hu, grid, shape.center + np.array([0.0, 11.0, 0.0]), (1, 0, 0), 1.5, LIVER_HU + 60.0
    )
    ct = image(grid, hu)
    seg = segment_tumor(ct, make_seeds(ct, [shape.center]))
    vessel = (radial < 1.0) & (sitk.GetArrayViewFromImage(truth) == 0)
    leaked = np.count_nonzero(sitk.GetArrayViewFromImage(seg.mask)[vessel])
    assert leaked <= 0.02 * np.count_nonzero(vessel)
    assert dice(seg.mask, truth) >= 0.88


def test_zone_with_rim_gas_and_tract_counts_them_in():
    from hepanav.phantoms.zone_features import paint_tract_and_gas

    ct, truth, shape, grid, hu = lesion_case(radius=12.0, contrast=-60.0, rim=1.5)
    paint_tract_and_gas(hu, grid, shape, 2.0, 8.0, 3, np.random.default_rng(4))
    ct = image(grid, hu)
    seg = segment_ablation(ct, make_seeds(ct, [shape.center]))  # the click is on the tract
    assert dice(seg.mask, truth) >= 0.90
    assert mean_surface_distance_mm(seg.mask, truth) <= 1.0
    gas = (sitk.GetArrayViewFromImage(ct) < -300) & (sitk.GetArrayViewFromImage(truth) > 0)
    assert gas.any()
    # All but the tract's exit through the surface (a voxel or two) is counted in.
    assert np.mean(sitk.GetArrayViewFromImage(seg.mask)[gas] > 0) >= 0.9
    # The tract beyond the zone surface is not zone.
    outside = (sitk.GetArrayViewFromImage(ct) < -100) & (sitk.GetArrayViewFromImage(truth) == 0)
    assert outside.any()
    assert np.count_nonzero(sitk.GetArrayViewFromImage(seg.mask)[outside]) <= 0.1 * outside.sum()


def test_enhancing_vessel_crossing_the_zone_is_not_zone():
    ct, truth, shape, grid, hu = lesion_case(radius=12.0, contrast=-60.0, rim=1.5)
    radial = paint_cylinder(
        hu, grid, shape.center + np.array([0, 4.0, 0]), (1, 0, 0.3), 2.0, LIVER_HU + 70.0
    )
    ct = image(grid, hu)
    seg = segment_ablation(ct, make_seeds(ct, [shape.center - np.array([0, 4.0, 0])]))
    channel = (radial < 1.2) & (sitk.GetArrayViewFromImage(truth) > 0)
    assert channel.sum() > 50
    inside = np.count_nonzero(sitk.GetArrayViewFromImage(seg.mask)[channel])
    assert inside <= 0.05 * channel.sum()
    expected = (sitk.GetArrayViewFromImage(truth) > 0) & (radial >= 2.0)
    got = sitk.GetArrayViewFromImage(seg.mask) > 0
    assert 2 * np.count_nonzero(expected & got) / (expected.sum() + got.sum()) >= 0.90


def test_seed_in_inner_half_agrees_with_centre_seed():
    ct, _, shape, _, _ = lesion_case(radius=10.0, contrast=-45.0, irregularity=0.1)
    centre = segment_tumor(ct, make_seeds(ct, [shape.center]))
    u = np.array([[1.0, 1.0, 0.5], [-0.3, 0.4, -1.0]])
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    for p in shape.center + 0.5 * (shape.surface_point(u) - shape.center):
        other = segment_tumor(ct, make_seeds(ct, [p]))
        assert dice(other.mask, centre.mask) >= 0.85


def test_leak_past_max_radius_and_parenchyma_seed_refused():
    ct, _, shape, _, _ = lesion_case(radius=12.0, contrast=-45.0)
    # Within 6 mm of the seed there is only tumour: its parenchyma lies beyond, a leak.
    with pytest.raises(InputError, match="leaked.*--max-radius-mm 6"):
        segment_tumor(ct, make_seeds(ct, [shape.center]), max_radius_mm=6.0)
    with pytest.raises(InputError, match="does not look like|leaked") as info:
        segment_tumor(ct, make_seeds(ct, [shape.center + np.array([22.0, 0, 0])]))
    assert "--seed" in str(info.value)


def test_exclude_point_cuts_a_neighbour_off():
    ct, truth, shape, grid, hu = lesion_case(radius=8.0, contrast=-45.0)
    # A second hypodense lesion touching the first.
    from hepanav.phantoms.lesions import paint_shape, rasterize
    from segmentation_helpers import sphere

    other = sphere(7.0, center=shape.center + np.array([0, 14.0, 0]), seed=9)
    paint_shape(hu, grid, other, LIVER_HU - 45.0)
    ct = image(grid, hu)
    seg = segment_tumor(
        ct,
        make_seeds(ct, [shape.center]),
        exclude=make_seeds(ct, [other.center], option="--exclude"),
    )
    second = rasterize(grid, other) > 0
    assert np.count_nonzero(sitk.GetArrayViewFromImage(seg.mask)[second]) <= 0.1 * second.sum()


def test_ellipsoid_tumour_edge_is_unbiased_on_anisotropic_voxels():
    """A hyperattenuating ellipsoid (20 x 14 x 11 mm, rotated) on 1 x 1 x 1.25 mm voxels:
    the edge at the deblurred midpoint gives the true volume (Gaussian smoothing alone
    shrinks a curved edge by sigma^2 x curvature)."""
    from hepanav.phantoms.lesions import StarShape, paint_shape, rasterize
    from segmentation_helpers import liver_block

    grid, hu = liver_block(seed=3)
    shape = StarShape.random(
        np.random.default_rng(7), np.zeros(3), np.array([10.0, 7.0, 5.5]), 0.05, (20, 30, 10)
    )
    paint_shape(hu, grid, shape, LIVER_HU + 50.0)
    ct, truth = image(grid, hu), grid.image(rasterize(grid, shape))
    seg = segment_tumor(ct, make_seeds(ct, [shape.center]))
    assert dice(seg.mask, truth) >= 0.92
    assert mean_surface_distance_mm(seg.mask, truth) <= 0.6
    n_seg = np.count_nonzero(sitk.GetArrayViewFromImage(seg.mask))
    n_true = np.count_nonzero(sitk.GetArrayViewFromImage(truth))
    assert abs(n_seg / n_true - 1.0) <= 0.06


def test_small_tumour_is_not_shrunk():
    """An 8 mm hypodense tumour: the volume within 10 % of the truth (the old 1 mm
    Gaussian threshold lost a fifth of it on 1.5 mm voxels)."""
    ct, truth, shape, _, _ = lesion_case(radius=4.0, contrast=-45.0, seed=5)
    seg = segment_tumor(ct, make_seeds(ct, [shape.center]))
    n_seg = np.count_nonzero(sitk.GetArrayViewFromImage(seg.mask))
    n_true = np.count_nonzero(sitk.GetArrayViewFromImage(truth))
    assert abs(n_seg / n_true - 1.0) <= 0.10
    assert dice(seg.mask, truth) >= 0.90


def test_hyper_tumour_touching_a_vessel_as_thick_as_it_is_deep():
    """A 12 mm hypervascular tumour touching a 5 mm vessel of the same attenuation: an
    opening cannot cut a vessel that thick; the robust star-shaped bound does."""
    ct, truth, shape, grid, hu = lesion_case(radius=6.0, contrast=55.0, seed=2)
    radial = paint_cylinder(
        hu, grid, shape.center + np.array([0.0, 8.0, 0.0]), (1, 0, 0.2), 2.5, LIVER_HU + 55.0
    )
    ct = image(grid, hu)
    seg = segment_tumor(ct, make_seeds(ct, [shape.center]))
    vessel = (radial < 2.0) & (sitk.GetArrayViewFromImage(truth) == 0)
    got = sitk.GetArrayViewFromImage(seg.mask) > 0
    # The vessel runs 30 mm each way; at most the part beside the tumour may be taken.
    assert np.count_nonzero(got[vessel]) <= 0.05 * np.count_nonzero(vessel)
    assert dice(seg.mask, truth) >= 0.85


def test_zone_seed_in_inner_half_agrees_with_centre_seed():
    """Zone with rim, tract and gas: clicks at half the radius give the same zone."""
    from hepanav.phantoms.zone_features import paint_tract_and_gas

    ct, truth, shape, grid, hu = lesion_case(radius=12.0, contrast=-60.0, rim=1.5, seed=4)
    paint_tract_and_gas(hu, grid, shape, 2.0, 8.0, 3, np.random.default_rng(4))
    ct = image(grid, hu)
    centre = segment_ablation(ct, make_seeds(ct, [shape.center]))
    assert dice(centre.mask, truth) >= 0.90
    u = np.array([[0.8, -0.5, 0.3], [-0.2, 0.9, -0.4], [0.1, 0.1, 1.0]])
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    for p in shape.center + 0.5 * (shape.surface_point(u) - shape.center):
        other = segment_ablation(ct, make_seeds(ct, [p]))
        assert dice(other.mask, centre.mask) >= 0.85


def test_lesion_hu_is_the_cluster_mean_not_pulled_by_gas_beside_the_click():
    from hepanav.segmentation.grow import biweight_location, histogram_mode

    rng = np.random.default_rng(3)
    zone = rng.normal(45.0, 12.0, 80)  # ~80 voxels of a 3 mm ball on 3 mm slices
    # Gas beside the click and its partial-volume ring (one side of the histogram only).
    ring = rng.uniform(-65.0, 10.0, 30)
    values = np.concatenate([zone, ring])
    start = histogram_mode(values, 6.0)[0]
    got = biweight_location(values, start)
    assert abs(got - 45.0) < 5.0
    # A start off by a noise SD still converges onto the cluster.
    assert abs(biweight_location(values, 60.0) - 45.0) < 5.0
    # Without contamination it is (nearly) the sample mean: a mean's precision, where
    # the mode of 2 HU bins wanders by about a noise SD.
    assert abs(biweight_location(zone, histogram_mode(zone, 6.0)[0]) - zone.mean()) < 1.5


def _bulge_into_vessel(radius_mm, spacing, vessel_radius_mm, seed):
    """(mask voxels in the vessel and outside the analytic ball farther than half a voxel
    from it, Dice) for a small hyperdense tumour (+50 HU) touching a brighter vessel
    (+65 HU) tangentially, on ``spacing`` voxels."""
    from hepanav.phantoms.lesions import paint_shape, rasterize
    from segmentation_helpers import liver_block, sphere

    grid, hu = liver_block(size=(48, 48, 48), spacing=spacing, seed=seed)
    shape = sphere(radius_mm, seed=seed + 1)
    paint_shape(hu, grid, shape, LIVER_HU + 50.0)
    offset = np.array([0.0, radius_mm + vessel_radius_mm, 0.0])
    radial = paint_cylinder(
        hu, grid, shape.center + offset, (1, 0, 0.3), vessel_radius_mm, LIVER_HU + 65.0
    )
    truth = grid.image(rasterize(grid, shape))
    ct = image(grid, hu)
    seg = segment_tumor(ct, make_seeds(ct, [shape.center]))
    got = sitk.GetArrayViewFromImage(seg.mask) > 0
    outside = np.linalg.norm(grid.points(tuple(slice(0, n) for n in grid.shape)), axis=-1)
    beyond = outside > radius_mm + 0.5 * max(spacing)
    return int(np.count_nonzero(got & (radial < vessel_radius_mm) & beyond)), dice(seg.mask, truth)


@pytest.mark.parametrize("seed", [0, 3])
def test_small_hyper_tumour_does_not_bulge_into_a_touching_brighter_vessel(seed):
    """An 8 mm hyperdense tumour (+50 HU) touching a 5 mm vessel 15 HU brighter on 1.5 mm
    voxels (dev procedural 10/12 +50): no voxel of the vessel farther than half a voxel
    beyond the analytic ball is taken (the growth bound's 1.5 mm pad used to let the
    tumour bulge a voxel into the vessel), and the Dice against the ball holds."""
    taken, d = _bulge_into_vessel(4.0, (1.5, 1.5, 1.5), 2.5, seed)
    assert taken <= 2
    assert d >= 0.88


def test_small_hypo_tumour_on_3mm_voxels_from_the_fitted_step(monkeypatch):
    """A 10 mm hypodense sphere (-45 HU, 12 HU white noise) on 3 mm voxels, centre at a
    random sub-voxel offset, 4 noise draws: ~20 truth voxels, nearly all of them edge.
    Per-voxel thresholds took liver voxels read low by the noise (volume 1.25-1.42 x
    the truth, Dice 0.83-0.87); the blurred-step model fitted to the neighbourhood
    (grow.fit_small_lesion) decides the edge voxels together. Minimum 0.87: with the
    step's background read locally (grow.SMALL_FIT_LOCAL_BACKGROUND, branch tum90) draw 3
    gives 0.878 (0.905 with the former background linear in the direction; over 12 draws
    of this white-noise block mean 0.942 against 0.953, with correlated noise 0.862
    against 0.856)."""
    from hepanav.phantoms.lesions import paint_shape, rasterize
    from hepanav.segmentation import grow
    from segmentation_helpers import liver_block, sphere

    def run(seed):
        grid, hu = liver_block(size=(20, 20, 20), spacing=(3.0, 3.0, 3.0), noise=12.0, seed=seed)
        centre = np.random.default_rng(seed + 100).uniform(-1.5, 1.5, 3)
        shape = sphere(5.0, center=centre, irregularity=0.0, seed=seed + 1)
        paint_shape(hu, grid, shape, LIVER_HU - 45.0)
        ct, truth = image(grid, hu), grid.image(rasterize(grid, shape))
        seg = segment_tumor(ct, make_seeds(ct, [shape.center]))
        n_seg = np.count_nonzero(sitk.GetArrayViewFromImage(seg.mask))
        n_true = np.count_nonzero(sitk.GetArrayViewFromImage(truth))
        return dice(seg.mask, truth), mean_surface_distance_mm(seg.mask, truth), n_seg / n_true, seg

    fitted = [run(seed) for seed in range(4)]
    assert all("blurred-step model" in " ".join(r[3].notes) for r in fitted)
    dices = [r[0] for r in fitted]
    assert min(dices) >= 0.87
    assert np.mean(dices) >= 0.93
    assert max(r[1] for r in fitted) <= 0.8
    assert all(0.8 <= r[2] <= 1.25 for r in fitted)
    monkeypatch.setattr(grow, "SMALL_FIT", False)
    per_voxel = [run(seed)[0] for seed in range(4)]
    assert np.mean(per_voxel) <= np.mean(dices) - 0.05
