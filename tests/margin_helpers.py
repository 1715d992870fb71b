"""Analytic shapes voxelised on chosen grids, and the voxel-centre EDT baseline (margin tests).

Every mask is built from an ``inside(points_lps) -> bool`` predicate evaluated at
voxel centres, so the exact margin is known from the shapes' formulas.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage


def voxelise(inside, spacing, extent_mm=44.0, phase=(0.3, -0.2, 0.45), direction=None):
    """uint8 mask of ``inside`` on a grid of ``spacing`` (x, y, z, mm) covering a cube.

    The grid is centred on ``phase`` (mm), so voxel centres do not sit symmetrically
    around the shapes (no symmetric luck); ``phase`` moves the slices.
    """
    size = [int(np.ceil(extent_mm / s)) for s in spacing]
    image = sitk.Image(size, sitk.sitkUInt8)
    image.SetSpacing(tuple(float(s) for s in spacing))
    if direction is not None:
        image.SetDirection(direction)
    d = np.asarray(image.GetDirection()).reshape(3, 3)
    half = (np.asarray(size) - 1) * np.asarray(spacing) / 2
    origin = np.asarray(phase, float) - d @ half
    image.SetOrigin(tuple(float(v) for v in origin))
    idx = np.indices(size[::-1]).reshape(3, -1)[::-1].T.astype(float)  # x, y, z
    points = (idx * np.asarray(spacing)) @ d.T + origin
    array = inside(points).reshape(size[::-1]).astype(np.uint8)
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(image)
    return mask


def ball(centre, radius):
    centre = np.asarray(centre, float)
    return lambda p: np.linalg.norm(p - centre, axis=1) <= radius


def ellipsoid(centre, semi_axes, rotation=np.eye(3)):
    centre, semi_axes = np.asarray(centre, float), np.asarray(semi_axes, float)
    return lambda p: np.sum((((p - centre) @ rotation) / semi_axes) ** 2, axis=1) <= 1.0


def cylinder(point, axis, radius):
    """Infinite cylinder through ``point`` along ``axis`` (mm)."""
    point = np.asarray(point, float)
    axis = np.asarray(axis, float) / np.linalg.norm(axis)

    def inside(p):
        v = p - point
        return np.linalg.norm(v - np.outer(v @ axis, axis), axis=1) <= radius

    return inside


def minus(a, b):
    return lambda p: a(p) & ~b(p)


def voxel_centre_mam(tumor: sitk.Image, zone: sitk.Image) -> float | None:
    """MAM (mm) of the usual voxel-centre method, or None when it cannot measure.

    Signed Euclidean distance transform of the zone at voxel centres (with the
    voxel spacing; positive inside), read at the tumour's boundary voxels (tumour
    voxels with a background 6-neighbour, or at the image border). Same grid.
    """
    t = sitk.GetArrayViewFromImage(tumor) > 0
    if not t.any():
        return None
    sampling = tuple(reversed(zone.GetSpacing()))
    inside = sitk.GetArrayViewFromImage(zone) > 0
    signed = ndimage.distance_transform_edt(inside, sampling=sampling)
    signed -= ndimage.distance_transform_edt(~inside, sampling=sampling)
    boundary = t & ~ndimage.binary_erosion(t, border_value=0)
    return float(signed[boundary].min())
