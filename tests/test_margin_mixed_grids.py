"""Masks in one space on different voxel grids (tester6 defect 7).

Known by construction: concentric balls, tumour r 8 mm, zone r 12.6 mm (true MAM 4.6 mm,
within u of 5 mm: NOT decisive), both voxelised on a 1.5 mm grid. The same tumour mask
upsampled nearest-neighbour onto 1 mm (what an export onto another grid does) measured
3.53 mm with u 0.75 mm, "decisive" and an interval [2.78, 4.28] that misses the truth.
With the tumour on another lattice than the zone, u's voxel term is half the coarsest
voxel's diagonal (1.30 mm), the result is not decisive, the interval holds the truth,
and a warning names both grids and how they were combined.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from hepanav.margin.pipeline import run_margin_pipeline
from hepanav.margin.uncertainty import mixed_grid_half_width_mm, same_lattice
from margin_helpers import ball, voxelise

TRUE_MAM_MM = 4.6


def _masks():
    tumour = voxelise(ball((0, 0, 0), 8.0), (1.5, 1.5, 1.5), extent_mm=50)
    zone = voxelise(ball((0, 0, 0), 8.0 + TRUE_MAM_MM), (1.5, 1.5, 1.5), extent_mm=50)
    fine = sitk.Image([50, 50, 50], sitk.sitkUInt8)
    fine.SetSpacing((1.0, 1.0, 1.0))
    fine.SetOrigin(tumour.GetOrigin())
    upsampled = sitk.Resample(tumour, fine, sitk.Transform(), sitk.sitkNearestNeighbor)
    return tumour, zone, upsampled


def test_lattice_check():
    tumour, zone, upsampled = _masks()
    assert same_lattice(tumour, zone)
    assert same_lattice(tumour, tumour[3:20, 2:30, 5:25])  # a crop of the same grid
    assert not same_lattice(upsampled, zone)
    assert np.isclose(mixed_grid_half_width_mm(upsampled, zone), 0.75 * np.sqrt(3))


def test_upsampled_tumour_mask_is_not_decisive_and_says_so(tmp_path):
    tumour, zone, upsampled = _masks()
    native = run_margin_pipeline(tumour, zone, tmp_path / "native", report=False).result
    mixed = run_margin_pipeline(upsampled, zone, tmp_path / "mixed", report=False).result
    assert not native.uncertainty.decisive
    assert native.uncertainty.half_width_mm == 0.75
    assert not any("grid" in w for w in native.warnings)
    # The staircase of the upsampled mask does move the MAM (the defect's premise).
    assert mixed.min_margin_mm < native.min_margin_mm - 0.3
    assert not mixed.uncertainty.decisive
    assert np.isclose(mixed.uncertainty.half_width_mm, 0.5 + 0.75 * np.sqrt(3))
    low, high = mixed.uncertainty.min_margin_interval_mm
    assert low <= TRUE_MAM_MM <= high
    notes = [w for w in mixed.warnings if "grid" in w]
    assert len(notes) == 1
    assert "1 x 1 x 1 mm" in notes[0] and "1.5 x 1.5 x 1.5 mm" in notes[0]
    assert "resampled trilinearly" in notes[0]
    assert "different grids" in mixed.uncertainty.source
