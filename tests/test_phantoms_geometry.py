"""Lesion shapes, the deformation and the true margins against analytic values."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from hepanav.phantoms.deformation import RespiratoryDeformation
from hepanav.phantoms.grid import Grid
from hepanav.phantoms.lesions import StarShape, fibonacci_sphere
from hepanav.phantoms.schema import DeformationSpec
from hepanav.phantoms.truth import true_margins

NO_LOBES = np.zeros((0, 6))


def sphere(center, radius) -> StarShape:
    return StarShape(np.asarray(center, float), np.full(3, float(radius)), np.eye(3), 0.0, NO_LOBES)


def translation(vector) -> RespiratoryDeformation:
    """A pure translation: plateau so wide that its weight is 1 everywhere that matters."""
    z = np.zeros((0, 3))
    return RespiratoryDeformation(
        np.zeros(3), np.full(3, 1e7), np.asarray(vector, float), z, z, np.zeros(0)
    )


def test_sphere_geometry_is_exact():
    s = sphere((1.0, -2.0, 3.0), 10.0)
    assert s.volume_mm3(20000) == pytest.approx(4 / 3 * np.pi * 1000, rel=1e-3)
    pts = np.array([[1.0, -2.0, 3.0 + 9.9], [1.0, -2.0, 3.0 + 10.1], [14.0, -2.0, 3.0]])
    assert s.contains(pts).tolist() == [True, False, False]
    assert s.signed_distance(pts) == pytest.approx([-0.1, 0.1, 3.0])


def test_irregular_shape_volume_matches_monte_carlo():
    rng = np.random.default_rng(4)
    s = StarShape.random(rng, np.zeros(3), np.array([15.0, 11.0, 8.0]), 0.2)
    pts = rng.uniform(-20, 20, (400_000, 3))
    mc = s.contains(pts).mean() * 40.0**3
    assert s.volume_mm3() == pytest.approx(mc, rel=0.02)
    # Lobulation really changes the outline (more than 1 mm somewhere).
    plain = StarShape(s.center, s.semi_axes, s.rotation, 0.0, NO_LOBES)
    u = fibonacci_sphere(500)
    assert np.max(np.abs(np.linalg.norm(s.surface_point(u) - plain.surface_point(u), axis=1))) > 1


def test_deformation_is_invertible_and_scaled():
    grid = Grid.centered(np.zeros(3), (4.0, 4.0, 4.0), (80, 60, 50))
    spec = DeformationSpec(max_displacement_mm=15.0)
    d = RespiratoryDeformation.random(
        np.random.default_rng(1), spec, np.zeros(3), np.array([80.0, 70.0, 60.0]), grid
    )
    assert d.max_displacement(grid) == pytest.approx(15.0)
    assert d.min_jacobian(grid) > 0.5
    p = np.random.default_rng(2).uniform(-100, 100, (500, 3))
    q = d.to_post(p)
    assert np.abs(d.to_pre(q) - p).max() < 1e-5
    assert np.linalg.norm(q - p, axis=1).max() <= 15.0 + 1e-9
    # The ITK transform used to warp images agrees with the analytic inverse.
    tx = d.transform(grid)
    itk = np.array([tx.TransformPoint(tuple(v)) for v in q[:50]])
    assert np.abs(itk - p[:50]).max() < 0.05


def test_deformation_over_25mm_is_refused():
    with pytest.raises(ValidationError):
        DeformationSpec(max_displacement_mm=30)


def test_zero_motion_direction_is_refused():
    with pytest.raises(ValidationError, match="zero vector"):
        DeformationSpec(direction_lps=(0.0, 0.0, 0.0), local_fraction=0.0)


def test_true_margin_of_offset_spheres():
    a, b, off = 10.0, 15.0, 2.0
    m = true_margins(
        sphere((0, 0, 0), a), sphere((off, 0, 0), b), RespiratoryDeformation.identity()
    )
    assert m.min_margin_mm == pytest.approx(b - a - off, abs=0.01)
    assert m.category == "0-5mm"
    # Tumour surface point at polar angle t from +x: distance to the zone centre
    # sqrt(a^2 + off^2 - 2 a off cos t); margin < 5 where it exceeds b - 5.
    c5 = (a * a + off * off - (b - 5) ** 2) / (2 * a * off)
    assert m.surface_fraction_below_5mm == pytest.approx((1 + c5) / 2, abs=0.003)
    assert m.surface_fraction_below_0mm == 0.0
    assert m.tumor_volume_ml == pytest.approx(4 / 3 * np.pi * a**3 / 1000, rel=1e-3)
    assert m.ablation_volume_ml == pytest.approx(4 / 3 * np.pi * b**3 / 1000, rel=1e-3)


def test_shell_coverage_of_concentric_spheres():
    a, b = 10.0, 14.0
    m = true_margins(sphere((0, 0, 0), a), sphere((0, 0, 0), b), RespiratoryDeformation.identity())
    # The zone covers the shell out to b: fraction of each shell's volume.
    for w, got in ((5.0, m.shell_coverage_5mm), (6.0, m.shell_coverage_6mm)):
        assert got == pytest.approx((b**3 - a**3) / ((a + w) ** 3 - a**3), abs=0.005)
    assert m.min_margin_mm == pytest.approx(4.0, abs=0.01)


def test_incomplete_ablation_and_moving_tumour():
    a, b = 10.0, 12.0
    shift = np.array([0.0, -3.0, -12.0])
    # The tumour moves with the deformation; the zone sits 5 mm off its moved centre.
    m = true_margins(sphere((0, 0, 0), a), sphere(shift + [5.0, 0, 0], b), translation(shift))
    assert m.min_margin_mm == pytest.approx(b - a - 5.0, abs=0.01)
    assert m.category == "incomplete"
    c0 = (a * a + 25.0 - b * b) / (2 * a * 5.0)
    assert m.surface_fraction_below_0mm == pytest.approx((1 + c0) / 2, abs=0.003)
