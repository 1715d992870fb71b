"""Subcapsular lesions (analytic phantom): a tumour or ablation zone at the liver
capsule has up to half its surroundings outside the liver, and must still be accepted
by the embedded-in-liver check (``MIN_EMBEDDED``), with its truth known by construction."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from hepanav.phantoms.grid import Grid
from hepanav.phantoms.lesions import paint_shape, rasterize
from hepanav.segmentation import lesion
from hepanav.segmentation import tumor as tumor_module
from hepanav.segmentation.ablation import segment_ablation
from hepanav.segmentation.seeds import make_seeds
from hepanav.segmentation.tumor import segment_tumor
from segmentation_helpers import LIVER_HU, sphere

RADIUS_MM = 12.0


def subcapsular_case(depth_mm, contrast, wall, seed=0):
    """Liver (105 HU + noise) at x < 0 mm (LPS), ``wall`` beyond the capsule plane x = 0:
    (from mm, to mm, HU) layers. A 12 mm lesion centred ``depth_mm`` inside the capsule
    (12: tangent to it, 6: bulging 6 mm through it). Returns (ct, truth, seed point)."""
    grid = Grid.centered(np.zeros(3), (1.0, 1.0, 1.25), (96, 96, 72))
    rng = np.random.default_rng(seed)
    hu = (LIVER_HU + rng.normal(0, 10, grid.shape)).astype(np.float32)
    x = grid.points(tuple(slice(0, n) for n in grid.shape))[..., 0]
    for x0, x1, value in wall:
        layer = (x >= x0) & (x < x1)
        hu[layer] = value + rng.normal(0, 10, int(layer.sum()))
    centre = (-float(depth_mm), 0.0, 0.0)
    shape = sphere(RADIUS_MM, center=centre, irregularity=0.06, seed=seed + 1)
    paint_shape(hu, grid, shape, LIVER_HU + contrast)
    return grid.image(hu), grid.image(rasterize(grid, shape)), centre


FAT = [(0.0, 99.0, -100.0)]
LUNG = [(0.0, 99.0, -850.0)]
ABDOMINAL_WALL = [(0.0, 3.0, -100.0), (3.0, 15.0, 50.0), (15.0, 99.0, -100.0)]


@pytest.mark.parametrize(
    ("structure", "contrast", "wall", "depth_mm"),
    [
        ("tumor", -45.0, FAT, 6.0),
        ("ablation", -65.0, FAT, 6.0),
        ("tumor", -45.0, LUNG, 6.0),
        ("ablation", -65.0, LUNG, 6.0),
        ("tumor", -45.0, ABDOMINAL_WALL, 12.0),
        ("ablation", -65.0, ABDOMINAL_WALL, 12.0),
    ],
)
def test_subcapsular_lesion_is_accepted(structure, contrast, wall, depth_mm):
    ct, truth, centre = subcapsular_case(depth_mm, contrast, wall)
    segment = segment_tumor if structure == "tumor" else segment_ablation
    seg = segment(ct, make_seeds(ct, lps=[centre]))
    got = sitk.GetArrayFromImage(seg.mask) > 0
    want = sitk.GetArrayFromImage(truth) > 0
    dice = 2 * np.sum(got & want) / (got.sum() + want.sum())
    # measured 0.90-0.99 (tumour), 0.86-0.99 (zone: the fat-side partial volume joins it)
    assert dice >= (0.85 if structure == "tumor" else 0.8)


def test_subcapsular_share_is_measured_below_a_deep_lesion(monkeypatch):
    """The shell outside the liver lowers the embedded share: a lesion bulging 6 mm
    through the capsule measures clearly less than one tangent to it, and both stay
    above the limit (the figures the limit was set from)."""
    seen = []
    real = lesion.check_embedded

    def spy(ct, grown, seeds, what):
        seen.append(lesion.embedded_share(ct, grown))
        return real(ct, grown, seeds, what)

    monkeypatch.setattr(tumor_module, "check_embedded", spy)
    shares = {}
    for depth in (6.0, 12.0):
        ct, _, centre = subcapsular_case(depth, -45.0, FAT)
        segment_tumor(ct, make_seeds(ct, lps=[centre]))
        shares[depth] = seen[-1]
    assert lesion.MIN_EMBEDDED < shares[6.0] < shares[12.0] - 0.05
    assert shares[6.0] < 0.65
