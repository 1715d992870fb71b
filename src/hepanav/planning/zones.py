"""Predicted ablation zones: ellipsoids on the needle axis, trimmed by the heat sink."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from hepanav.planning.schema import Device


def zone_center(tip_lps: np.ndarray, direction: np.ndarray, device: Device) -> np.ndarray:
    """Zone centre (…, 3) LPS mm: ``tip_to_center_mm`` back from the tip along the needle."""
    return np.asarray(tip_lps) - device.tip_to_center_mm * np.asarray(direction)


def inside_zones(
    points: np.ndarray,
    centers: np.ndarray,
    directions: np.ndarray,
    axes_mm: tuple[float, float, float],
    shrink_mm: float = 0.0,
) -> np.ndarray:
    """Which points lie inside at least one ellipsoidal zone.

    Parameters
    ----------
    points : ndarray, shape (N, 3)
        LPS mm.
    centers, directions : ndarray, shape (M, 3)
        Zone centres (LPS mm) and unit long-axis directions.
    axes_mm : (float, float, float)
        Zone diameters (along, across, across) in mm.
    shrink_mm : float
        Reduce each semi-axis by this much (conservative planning).

    Returns
    -------
    ndarray of bool, shape (N,)
    """
    a_long = axes_mm[0] / 2.0 - shrink_mm
    a_short = axes_mm[1] / 2.0 - shrink_mm
    covered = np.zeros(len(points), dtype=bool)
    for c, d in zip(np.atleast_2d(centers), np.atleast_2d(directions), strict=True):
        rel = points - c
        w = rel @ d
        r2 = np.einsum("ij,ij->i", rel, rel) - w * w
        covered |= (w / a_long) ** 2 + r2 / a_short**2 <= 1.0
    return covered


def ellipsoid_element(radius_mm: float, spacing_zyx: np.ndarray) -> np.ndarray:
    """Boolean ball of ``radius_mm`` on a grid of ``spacing_zyx`` (a structuring element in mm)."""
    half = np.floor(radius_mm / np.asarray(spacing_zyx)).astype(int)
    axes = [np.arange(-h, h + 1) * s for h, s in zip(half, spacing_zyx, strict=True)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    return zz**2 + yy**2 + xx**2 <= radius_mm**2 + 1e-9


def large_vessels(
    vessels: np.ndarray, spacing_zyx: np.ndarray, min_diameter_mm: float
) -> np.ndarray:
    """Parts of a vessel mask wider than ``min_diameter_mm``: a morphological opening.

    The structuring element is a ball of that diameter built in millimetres, so the
    opening respects anisotropic voxels: thinner branches vanish, wider ones remain.

    Parameters
    ----------
    vessels : ndarray of bool (z, y, x)
    spacing_zyx : ndarray (3,)
        Voxel size in mm, (z, y, x) order.
    min_diameter_mm : float

    Returns
    -------
    ndarray of bool (z, y, x)
    """
    if not vessels.any():
        return vessels.copy()
    ball = ellipsoid_element(min_diameter_mm / 2.0, spacing_zyx)
    return ndimage.binary_opening(vessels, structure=ball)


def heat_sink_band(vessels: np.ndarray, spacing_zyx: np.ndarray, device: Device) -> np.ndarray:
    """Tissue predicted NOT ablated because a large vessel cools it (Lu 2002).

    Voxels within ``device.heat_sink_trim_mm`` of a vessel wider than
    ``device.heat_sink_vessel_mm`` (and the vessel itself); (z, y, x) bool.
    """
    big = large_vessels(vessels, spacing_zyx, device.heat_sink_vessel_mm)
    if not big.any() or device.heat_sink_trim_mm <= 0:
        return big
    return ndimage.binary_dilation(
        big, structure=ellipsoid_element(device.heat_sink_trim_mm, spacing_zyx)
    )
