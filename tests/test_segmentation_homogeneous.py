"""The homogeneous-parenchyma check (``lesion.check_embedded``, ``MIN_HOMOGENEOUS``) on
analytic phantoms, truths known by construction: a fluid pocket in a patchwork of
tissues that only passes through the liver's HU range (stomach content, a fat-and-organ
gap) is refused as tumour and as zone; a lesion in homogeneous liver beside vessels,
and one at the capsule, are accepted."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from hepanav.core.errors import InputError
from hepanav.phantoms.grid import Grid
from hepanav.phantoms.lesions import paint_shape, rasterize
from hepanav.segmentation import lesion
from hepanav.segmentation import tumor as tumor_module
from hepanav.segmentation.ablation import segment_ablation
from hepanav.segmentation.seeds import make_seeds
from hepanav.segmentation.tumor import segment_tumor
from segmentation_helpers import LIVER_HU, paint_cylinder, sphere

SIZE = (96, 96, 72)
SPACING = (1.0, 1.0, 1.25)


def patchwork_case(seed=0, cell_mm=6.0, low=50.0, high=130.0, pocket_hu=10.0, radius=8.0):
    """A pocket of fluid (``pocket_hu``, radius mm, at the origin) in a patchwork of
    cubes ``cell_mm`` wide, each of one HU drawn uniformly from ``low``-``high`` (+ noise
    5 HU): tissue whose HU spans the liver's range without being one organ (the stomach
    content around a fluid pocket on the DICOM scan). Returns (ct, truth, centre)."""
    grid = Grid.centered(np.zeros(3), SPACING, SIZE)
    rng = np.random.default_rng(seed)
    p = grid.points(tuple(slice(0, n) for n in grid.shape))
    cells = np.floor(p / cell_mm).astype(int)
    cells -= cells.reshape(-1, 3).min(axis=0)
    dims = cells.reshape(-1, 3).max(axis=0) + 1
    table = rng.uniform(low, high, tuple(dims))
    hu = table[cells[..., 0], cells[..., 1], cells[..., 2]] + rng.normal(0, 5, grid.shape)
    hu = hu.astype(np.float32)
    shape = sphere(radius, irregularity=0.05, seed=seed + 1)
    paint_shape(hu, grid, shape, pocket_hu)
    return grid.image(hu), grid.image(rasterize(grid, shape)), (0.0, 0.0, 0.0)


def vessel_case(contrast, seed=0, radius=10.0, gap_mm=0.0):
    """Homogeneous liver (105 HU + noise 10) with a lesion (radius mm, at the origin) and
    two portal-venous vessels (160 HU): one of radius 3 mm passing ``gap_mm`` from the
    lesion's surface, one of radius 5 mm 15 mm from it (in the 10-20 mm shell)."""
    grid = Grid.centered(np.zeros(3), SPACING, SIZE)
    rng = np.random.default_rng(seed)
    hu = (LIVER_HU + rng.normal(0, 10, grid.shape)).astype(np.float32)
    paint_cylinder(hu, grid, (radius + gap_mm + 3.0, 0.0, 0.0), (0, 0, 1), 3.0, 160.0)
    paint_cylinder(hu, grid, (0.0, -(radius + 15.0 + 5.0), 0.0), (1, 0, 0.3), 5.0, 160.0)
    shape = sphere(radius, irregularity=0.06, seed=seed + 1)
    paint_shape(hu, grid, shape, LIVER_HU + contrast)
    return grid.image(hu), grid.image(rasterize(grid, shape)), (0.0, 0.0, 0.0)


def _dice(seg, truth) -> float:
    got = sitk.GetArrayFromImage(seg.mask) > 0
    want = sitk.GetArrayFromImage(truth) > 0
    return float(2 * np.sum(got & want) / (got.sum() + want.sum()))


@pytest.mark.parametrize("structure", ["tumor", "ablation"])
def test_fluid_pocket_in_a_tissue_mixture_is_refused(structure):
    ct, _, centre = patchwork_case()
    segment = segment_tumor if structure == "tumor" else segment_ablation
    with pytest.raises(InputError, match="not homogeneous parenchyma") as info:
        segment(ct, make_seeds(ct, lps=[centre]))
    message = str(info.value)
    assert message.startswith("--seed 0,0,0")
    assert "\n" not in message


def test_mixture_is_refused_by_homogeneity_not_by_the_share(monkeypatch):
    """The patchwork passes the embedded share (its HU range is the liver's) and fails
    only the homogeneity: its liver-like voxels are spread flat (uniform 50-130 HU
    around the edge's ~90 HU): measured 0.52, 12 / 25 = 0.48 before the smoothing."""
    seen = {}
    real = lesion.check_embedded

    def spy(ct, grown, seeds, what):
        values = lesion._embedding_shell(ct, grown)
        seen["share"] = lesion.embedded_share(ct, grown)
        seen["homogeneity"] = lesion.homogeneity(values, grown.parenchyma_hu)
        return real(ct, grown, seeds, what)

    monkeypatch.setattr(tumor_module, "check_embedded", spy)
    ct, _, centre = patchwork_case()
    with pytest.raises(InputError):
        segment_tumor(ct, make_seeds(ct, lps=[centre]))
    assert seen["share"] > 0.8
    assert 0.4 < seen["homogeneity"] < lesion.MIN_HOMOGENEOUS - 0.05


def test_homogeneity_of_known_distributions():
    """A single peak (noise SD 7 HU) gives P(|x| <= 12) / P(|x| <= 25) = 0.91; a flat
    spread over +-30 HU gives 12 / 25 = 0.48."""
    rng = np.random.default_rng(0)
    peak = rng.normal(90.0, 7.0, 200_000)
    flat = rng.uniform(60.0, 120.0, 200_000)
    assert lesion.homogeneity(peak, 90.0) == pytest.approx(0.914, abs=0.01)
    assert lesion.homogeneity(flat, 90.0) == pytest.approx(0.48, abs=0.01)
    assert np.isnan(lesion.homogeneity(np.array([500.0]), 90.0))


@pytest.mark.parametrize(
    ("structure", "contrast", "gap_mm"),
    [("tumor", -45.0, 0.0), ("ablation", -65.0, 0.0), ("tumor", 50.0, 3.0)],
)
def test_lesion_beside_vessels_is_accepted(structure, contrast, gap_mm):
    ct, truth, centre = vessel_case(contrast, gap_mm=gap_mm)
    segment = segment_tumor if structure == "tumor" else segment_ablation
    seg = segment(ct, make_seeds(ct, lps=[centre]))
    assert _dice(seg, truth) >= 0.85
