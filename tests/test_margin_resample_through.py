"""Resampling a mask's signed distance through a registration transform (issue 12 Speed).

``hepanav.margin.surface.resample_through`` replaces the transform by its displacement
field away from the surface. Known by construction: the exact resampling
(``sitk.Resample`` through the transform itself), computed here on the same grid; within
``EXACT_BAND_MM`` of the surface the two must be equal, everywhere on the same side of
the surface, and elsewhere within ``FIELD_TOLERANCE_MM``.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from hepanav.margin import surface
from hepanav.margin.surface import EXACT_BAND_MM, FIELD_TOLERANCE_MM, mask_field
from margin_helpers import ball, voxelise


def _registration_like(control_mm: float, amplitude_mm: float, seed: int) -> sitk.Transform:
    """Euler (3 degrees, 4 mm) then a cubic B-spline over an 80 mm box, random coefficients."""
    rigid = sitk.Euler3DTransform((0.0, 0.0, 0.0), 0.02, -0.03, 0.05, (2.0, -3.0, 1.5))
    box = sitk.Image([41, 41, 41], sitk.sitkFloat32)
    box.SetSpacing([2.0] * 3)
    box.SetOrigin([-40.0] * 3)
    mesh = [max(1, int(round(80.0 / control_mm)))] * 3
    bspline = sitk.BSplineTransformInitializer(box, mesh, order=3)
    rng = np.random.default_rng(seed)
    bspline.SetParameters(rng.uniform(-amplitude_mm, amplitude_mm, bspline.GetNumberOfParameters()))
    return sitk.CompositeTransform([rigid, bspline])


def _grid(half_mm: float, step_mm: float) -> sitk.Image:
    grid = sitk.Image([int(2 * half_mm / step_mm)] * 3, sitk.sitkFloat32)
    grid.SetSpacing([step_mm] * 3)
    grid.SetOrigin([-half_mm + 0.13, -half_mm - 0.21, -half_mm + 0.07])
    return grid


def _both(monkeypatch, mask, grid, transform):
    fast = mask_field(mask, grid, transform)
    with monkeypatch.context() as m:
        m.setattr(surface, "resample_through", surface._resample_exact)
        exact = mask_field(mask, grid, transform)
    return fast, exact


def test_equal_near_the_surface_and_same_side_elsewhere(monkeypatch):
    mask = voxelise(ball((1.0, -2.0, 0.5), 12.0), (1.5, 1.5, 1.5), extent_mm=60.0)
    grid = _grid(25.0, 0.5)  # 1 M points: the field path (FIELD_MIN_POINTS)
    assert np.prod(grid.GetSize()) >= surface.FIELD_MIN_POINTS
    fast, exact = _both(monkeypatch, mask, grid, _registration_like(40.0, 3.0, 0))
    near = np.abs(exact - 0.5) < EXACT_BAND_MM
    assert near.any() and not near.all()
    np.testing.assert_array_equal(fast[near], exact[near])
    assert np.any(fast != exact)  # the field path ran (no fall-back to exact)
    np.testing.assert_array_equal(fast >= 0.5, exact >= 0.5)
    finite = np.abs(exact) < 0.5 * surface.FAR_MM
    assert np.max(np.abs(fast - exact)[finite]) <= FIELD_TOLERANCE_MM


def test_falls_back_to_exact_when_the_field_is_too_coarse(monkeypatch):
    # A 5 mm control grid with +-4 mm coefficients bends far within a 2 mm field cell:
    # the check on the band's box fails and the whole grid is resampled exactly.
    mask = voxelise(ball((0.0, 0.0, 0.0), 10.0), (1.5, 1.5, 1.5), extent_mm=60.0)
    grid = _grid(25.0, 0.5)
    fast, exact = _both(monkeypatch, mask, grid, _registration_like(5.0, 4.0, 1))
    np.testing.assert_array_equal(fast, exact)


def test_small_grids_are_resampled_exactly(monkeypatch):
    mask = voxelise(ball((0.0, 0.0, 0.0), 6.0), (1.5, 1.5, 1.5), extent_mm=40.0)
    grid = _grid(10.0, 0.5)  # 8,000 points
    fast, exact = _both(monkeypatch, mask, grid, _registration_like(40.0, 3.0, 2))
    np.testing.assert_array_equal(fast, exact)


@pytest.mark.parametrize("step", [0.5, 0.3])
def test_field_nodes_cover_the_last_grid_node(step):
    # Points beyond a displacement field get no displacement in ITK: the field must
    # reach the grid's last node along every axis, whatever the stride.
    size = np.array([101, 77, 64])
    stride = np.maximum(1, np.floor(surface.FIELD_STEP_MM / step + 1e-9)).astype(int)
    nodes = (size - 1 + stride - 1) // stride + 1
    assert np.all((nodes - 1) * stride >= size - 1)
    assert np.all((nodes - 2) * stride < size - 1)
