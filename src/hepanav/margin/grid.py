"""The local analysis grid: a crop of the reference image, subdivided, around the tumour.

Margins depend only on what lies within a few centimetres of the tumour, so every
surface and volume computation runs on one local grid instead of the full scan.
The grid is the reference (post-procedure / ablation-zone) grid cropped to the
tumour, its shells and the nearby zone, with each voxel split into ``m`` equal
parts along each axis. Because sub-voxel centres sit symmetrically inside each
original voxel, nearest-neighbour resampling of a mask on that grid reproduces
its voxel boxes exactly, for any (anisotropic) spacing and direction.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from hepanav.imaging import lps_to_voxel

# Keep the local grid under this many voxels (about 24 MB as float32): subdivision
# is reduced if a huge zone would otherwise need more.
MAX_GRID_VOXELS = 6_000_000


def foreground_index_box(mask: sitk.Image) -> tuple[np.ndarray, np.ndarray] | None:
    """Inclusive index box ``(lo, hi)`` (x, y, z order) of the non-zero voxels, or None
    (:func:`hepanav.imaging.border.foreground_box`)."""
    from hepanav.imaging.border import foreground_box

    return foreground_box(mask)


def grown_index_box(
    inside: np.ndarray, spacing_zyx: tuple[float, ...], reach_mm: float, pad_voxels: int = 1
) -> tuple[np.ndarray, tuple[slice, ...]]:
    """The box of ``inside`` (a boolean array, z, y, x) grown by ``reach_mm`` plus
    ``pad_voxels`` voxels per axis, clipped to the array.

    Returns the box's first index (z, y, x) and its slices; for an empty ``inside`` the
    whole array. Used to run a distance transform on the part of a grid where it equals
    the whole grid's (everything within ``reach_mm`` of ``inside`` is in the box).
    """
    if not inside.any():
        return np.zeros(3, int), tuple(slice(0, n) for n in inside.shape)
    lo, hi = [], []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(np.any(inside, axis=other))
        grow = int(np.ceil(reach_mm / spacing_zyx[axis])) + pad_voxels
        lo.append(max(int(hit[0]) - grow, 0))
        hi.append(min(int(hit[-1]) + grow, inside.shape[axis] - 1))
    return np.array(lo), tuple(slice(a, b + 1) for a, b in zip(lo, hi, strict=True))


def box_corners_lps(image: sitk.Image, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """LPS mm of the 8 outer corners (voxel edges) of the index box ``lo..hi``; shape (8, 3)."""
    corners = [
        [x, y, z]
        for x in (lo[0] - 0.5, hi[0] + 0.5)
        for y in (lo[1] - 0.5, hi[1] + 0.5)
        for z in (lo[2] - 0.5, hi[2] + 0.5)
    ]
    return np.array([image.TransformContinuousIndexToPhysicalPoint(c) for c in corners])


def subdivided_grid(
    reference: sitk.Image,
    points_lps: np.ndarray,
    pad_mm: float,
    target_step_mm: float | np.ndarray,
) -> sitk.Image:
    """A crop of ``reference`` covering ``points_lps`` + ``pad_mm``, voxels split to ~target step.

    Parameters
    ----------
    reference : SimpleITK.Image
        The grid to crop and subdivide (the ablation-zone image).
    points_lps : ndarray, shape (N, 3)
        Points (LPS mm) the grid must contain, e.g. corners of mask boxes.
    pad_mm : float
        Margin added on every side, mm. The crop may extend beyond the image:
        masks are zero there, which closes surfaces at the image border.
    target_step_mm : float or array of 3 floats (x, y, z)
        Largest wanted sub-voxel size, mm (one value, or one per axis of
        ``reference``); each voxel is split into ``ceil(spacing / target_step_mm)``
        parts per axis, rounded up to an odd number.

    Returns
    -------
    SimpleITK.Image
        Zero-filled float32 image whose geometry is the grid (spacing ``s / m``,
        same direction as ``reference``).
    """
    spacing = np.asarray(reference.GetSpacing(), dtype=float)
    index = lps_to_voxel(reference, points_lps)
    pad = np.ceil(pad_mm / spacing)
    lo = np.floor(index.min(axis=0) + 0.5) - pad  # voxel containing the lowest point
    hi = np.floor(index.max(axis=0) + 0.5) + pad
    n_voxels = hi - lo + 1
    target = np.broadcast_to(np.asarray(target_step_mm, dtype=float), 3)
    factor = np.maximum(np.ceil(spacing / target - 1e-9), 1)
    # Odd factors keep a sub-voxel centre on every original voxel centre, where the
    # interpolated signed distance has its kinks (hepanav.margin.surface): marching
    # cubes then follows the piecewise-linear interpolation exactly.
    factor += factor % 2 == 0
    while np.prod(n_voxels * factor) > MAX_GRID_VOXELS and factor.max() > 1:
        factor[np.argmax(factor)] -= 2
    size = (n_voxels * factor).astype(int)
    grid = sitk.Image([int(n) for n in size], sitk.sitkFloat32)
    grid.SetSpacing((spacing / factor).tolist())
    grid.SetDirection(reference.GetDirection())
    # First sub-voxel centre: half a sub-voxel inside the lower edge of voxel ``lo``.
    first = lo - 0.5 + 0.5 / factor
    grid.SetOrigin(reference.TransformContinuousIndexToPhysicalPoint(first.tolist()))
    return grid
