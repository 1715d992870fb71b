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
    ct, _, shape, _, _ = lesion_case(radius=8.0, contrast=-45.0)
    with pytest.raises(InputError, match="does not look like|leaked"):
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
    # Within 6 mm of the seed there is only tumour: grown past it, or no parenchyma seen.
    with pytest.raises(InputError, match="leaked|not darker than its surroundings"):
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
