"""Small tumours outlined by the fitted blurred step (grow.fit_small_lesion), against
lesions known by construction: hyperdense ones too, and ones beside a vessel (the
step's background is read locally, beside each edge voxel)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from hepanav.phantoms.lesions import paint_shape, rasterize
from hepanav.segmentation import grow
from hepanav.segmentation.metrics import dice, mean_surface_distance_mm
from hepanav.segmentation.seeds import make_seeds
from hepanav.segmentation.tumor import segment_tumor
from segmentation_helpers import LIVER_HU, image, liver_block, paint_cylinder, sphere


def _fitted(seg) -> bool:
    return "blurred-step model" in " ".join(seg.notes)


def _small_on_3mm(contrast: float, seed: int):
    """(Dice, MSD mm, volume / truth, segmentation) of a 7 mm sphere of ``contrast`` HU in
    105 HU liver with 12 HU white noise on 3 mm voxels, centre at a random sub-voxel
    offset (holdout 3 mm 120: ~32 truth voxels, nearly all of them edge voxels)."""
    grid, hu = liver_block(size=(20, 20, 20), spacing=(3.0, 3.0, 3.0), noise=12.0, seed=seed)
    centre = np.random.default_rng(seed + 100).uniform(-1.5, 1.5, 3)
    shape = sphere(7.0, center=centre, irregularity=0.0, seed=seed + 1)
    paint_shape(hu, grid, shape, LIVER_HU + contrast)
    ct, truth = image(grid, hu), grid.image(rasterize(grid, shape))
    seg = segment_tumor(ct, make_seeds(ct, [shape.center]))
    n_seg = np.count_nonzero(sitk.GetArrayViewFromImage(seg.mask))
    n_true = np.count_nonzero(sitk.GetArrayViewFromImage(truth))
    return dice(seg.mask, truth), mean_surface_distance_mm(seg.mask, truth), n_seg / n_true, seg


def test_small_hyper_tumour_on_3mm_voxels_from_the_fitted_step(monkeypatch):
    """A 14 mm hyperdense sphere (+45 HU) on 3 mm voxels, 4 noise draws: the fitted step
    decides its edge voxels together (per-voxel thresholds take liver voxels read high
    by the noise), as for hypodense ones."""
    fitted = [_small_on_3mm(45.0, seed) for seed in range(4)]
    assert all(_fitted(r[3]) for r in fitted)
    dices = [r[0] for r in fitted]
    assert min(dices) >= 0.88
    assert np.mean(dices) >= 0.92
    assert max(r[1] for r in fitted) <= 0.8
    assert all(0.8 <= r[2] <= 1.2 for r in fitted)
    monkeypatch.setattr(grow, "SMALL_FIT_HYPER", False)
    per_voxel = [_small_on_3mm(45.0, seed)[0] for seed in range(4)]
    assert np.mean(per_voxel) <= np.mean(dices) - 0.02


def _beside_vessel(seed: int, contrast: float = -30.0):
    """(Dice, MSD mm, segmentation) of a 10 mm hypodense sphere (holdout procedural 110:
    -30 HU, 12 HU noise, 1.5 mm voxels) touching a 5 mm vessel 50 HU brighter than the
    liver: the edge voxels on the vessel's side blend the lesion with the vessel, not
    with the liver."""
    grid, hu = liver_block(size=(40, 40, 40), spacing=(1.5, 1.5, 1.5), noise=12.0, seed=seed)
    centre = np.random.default_rng(seed + 100).uniform(-0.75, 0.75, 3)
    shape = sphere(5.0, center=centre, irregularity=0.0, seed=seed + 1)
    paint_cylinder(hu, grid, centre + np.array([0.0, 5.0 + 2.5, 0.0]), (1, 0, 0.3), 2.5, 155.0)
    paint_shape(hu, grid, shape, LIVER_HU + contrast)
    ct, truth = image(grid, hu), grid.image(rasterize(grid, shape))
    seg = segment_tumor(ct, make_seeds(ct, [shape.center]))
    return dice(seg.mask, truth), mean_surface_distance_mm(seg.mask, truth), seg


def test_small_hypo_tumour_beside_a_vessel_reads_its_background_locally():
    """With the background of the fitted step read beside each edge voxel (normalised
    convolution of the CT beyond the region), the vessel is background: the edge towards
    it is placed as well as the rest (Dice 0.956-0.969 for these draws; the former
    background linear in the direction gave 0.962-0.987 on this white-noise block, so
    this asserts the local background's accuracy, not a gain over it)."""
    local = [_beside_vessel(seed) for seed in range(3)]
    assert all(_fitted(r[2]) for r in local)
    assert min(r[0] for r in local) >= 0.93
    assert max(r[1] for r in local) <= 0.5


@pytest.mark.parametrize("seed", [0, 3])
def test_small_hyper_tumour_wedged_between_brighter_vessels_does_not_leak(seed, monkeypatch):
    """An 8 mm hyperdense tumour (+50 HU) on 1.5 mm voxels wedged between two 5 mm vessels
    15 HU brighter touching it on opposite sides (dev procedural 10 +50): the fitted
    step (with its local background: a vessel is background, not lesion) takes no more
    of the vessels than the grown mask does, and keeps the Dice against the ball (0.90 and
    0.92 without the fit for seed 0)."""
    radius, vessel = 4.0, 2.5
    spacing = (1.5, 1.5, 1.5)

    def run():
        grid, hu = liver_block(size=(40, 40, 40), spacing=spacing, seed=seed)
        shape = sphere(radius, seed=seed + 1)
        paint_shape(hu, grid, shape, LIVER_HU + 50.0)
        radial = np.full(grid.shape, np.inf)
        for side in (1.0, -1.0):
            offset = np.array([0.0, side * (radius + vessel), 0.0])
            r = paint_cylinder(hu, grid, offset, (1, 0, 0.3), vessel, LIVER_HU + 65.0)
            radial = np.minimum(radial, r)
        ct, truth = image(grid, hu), grid.image(rasterize(grid, shape))
        seg = segment_tumor(ct, make_seeds(ct, [shape.center]))
        got = sitk.GetArrayViewFromImage(seg.mask) > 0
        dist = np.linalg.norm(grid.points(tuple(slice(0, n) for n in grid.shape)), axis=-1)
        beyond = dist > radius + 0.5 * max(spacing)
        taken = int(np.count_nonzero(got & (radial < vessel) & beyond))
        return taken, dice(seg.mask, truth), seg

    taken, d, _ = run()
    monkeypatch.setattr(grow, "SMALL_FIT", False)
    taken_grown, _, _ = run()
    assert taken <= taken_grown + 1
    assert taken <= 4
    assert d >= 0.88


def test_a_diverging_step_fit_keeps_the_grown_mask():
    """The analytic torso phantom's 30 mm tumour (uniform, near-noiseless, 2.5 x 2.5 x 3 mm
    voxels: radius under SMALL_FIT_VOXELS voxels, so the fit is tried): the fit diverged to
    inf/NaN and SciPy raised ValueError, which reached the user as an 'unexpected
    ValueError'. A fit that does not converge keeps the grown mask; the tumour is then
    the painted one (Dice >= 0.95 against the phantom's own mask)."""
    from hepanav.phantoms.planning import make_planning_case

    case = make_planning_case("torso", 30.0, seed=0)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(case.tumor > 0, sitk.sitkUInt8))
    seg = segment_tumor(case.ct, make_seeds(case.ct, [stats.GetCentroid(1)]))
    truth = sitk.Cast(case.tumor > 0, sitk.sitkUInt8)
    assert dice(seg.mask, truth) >= 0.95


def test_small_lesion_note_gives_physical_size_and_the_slice_axis():
    """tester4: on 0.8 x 0.8 x 5 mm voxels a 27 mm tumour was noted as a "small lesion
    ... under 5.5 voxels, 27.5 mm" (5.5 voxels of 5 mm, read as in-plane voxels). The
    note must name the 5 mm slice axis and the limit in mm, and not call it small;
    on isotropic voxels it stays "small", with voxels of their size."""
    from hepanav.segmentation.grow import small_lesion_note

    aniso = small_lesion_note("hypo", (0.8, 0.8, 5.0), 55.0, 106.0)
    assert aniso.startswith("hypodense lesion few voxels across along the 5 mm slice axis")
    assert "5.5 x 5 mm = 27.5 mm" in aniso and "0.8 mm voxels across the finest axis" in aniso
    assert "small" not in aniso and "under 5.5 voxels," not in aniso
    iso = small_lesion_note("hyper", (1.5, 1.5, 1.5), 160.0, 106.0)
    assert iso.startswith("small hyperdense lesion")
    assert "under 5.5 voxels of 1.5 mm, 8.2 mm" in iso
