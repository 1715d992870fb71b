"""Geometry checks in physical space (LPS, mm)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hepanav.core.errors import InputError


def same_grid(a: sitk.Image, b: sitk.Image, tol_mm: float = 1e-3) -> bool:
    """True when ``a`` and ``b`` share size, spacing, origin and direction.

    ``tol_mm`` bounds the difference of spacing and origin (mm); directions
    must agree to 1e-5.
    """
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tol_mm)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tol_mm)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-5)
    )


def index_to_lps_matrix(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Affine ``(A, o)`` with ``lps = A @ [i, j, k] + o`` (continuous index, x-y-z order)."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    return direction * np.asarray(image.GetSpacing(), dtype=float), np.asarray(image.GetOrigin())


def voxel_to_lps(image: sitk.Image, index_xyz: np.ndarray) -> np.ndarray:
    """Map continuous indices, shape (N, 3) in (i, j, k) = (x, y, z) order, to LPS mm."""
    a, o = index_to_lps_matrix(image)
    return np.asarray(index_xyz, dtype=float) @ a.T + o


def lps_to_voxel(image: sitk.Image, points_lps: np.ndarray) -> np.ndarray:
    """Map LPS points in mm, shape (N, 3), to continuous (i, j, k) indices."""
    a, o = index_to_lps_matrix(image)
    return (np.asarray(points_lps, dtype=float) - o) @ np.linalg.inv(a).T


def physical_extent(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned LPS box (min, max) in mm covering every voxel to its outer edge."""
    size = np.asarray(image.GetSize(), dtype=float)
    corners = np.array(
        [
            [x, y, z]
            for x in (-0.5, size[0] - 0.5)
            for y in (-0.5, size[1] - 0.5)
            for z in (-0.5, size[2] - 0.5)
        ]
    )
    lps = voxel_to_lps(image, corners)
    return lps.min(axis=0), lps.max(axis=0)


def require_overlap(
    moving: sitk.Image, reference: sitk.Image, source: str | Path, min_fraction: float = 0.0
) -> float:
    """Check that two images overlap in physical space; return the overlapping volume in ml.

    Raises ``InputError`` naming ``source`` when the boxes are disjoint (for example
    a mask from another patient, or a flipped origin), so that nothing is
    resampled into emptiness.
    """
    lo_a, hi_a = physical_extent(moving)
    lo_b, hi_b = physical_extent(reference)
    overlap = np.clip(np.minimum(hi_a, hi_b) - np.maximum(lo_a, lo_b), 0, None)
    volume_ml = float(np.prod(overlap)) / 1000.0
    ref_ml = float(np.prod(hi_b - lo_b)) / 1000.0
    if volume_ml <= 0 or volume_ml < min_fraction * ref_ml:
        raise InputError(
            "does not overlap the image in physical space (its box "
            f"{_box(lo_a, hi_a)} vs the image's {_box(lo_b, hi_b)} LPS mm); "
            "check origin and direction",
            source,
        )
    return volume_ml


def mask_outside_ml(mask: sitk.Image, reference: sitk.Image) -> tuple[float, float]:
    """How much of a mask lies outside ``reference``'s field of view, in physical space.

    A voxel of ``mask`` (non-zero) is outside when its centre lies outside the box of
    ``reference``'s voxels (continuous index below -0.5 or above size - 0.5 on any axis,
    any direction matrix): resampling onto ``reference`` would drop it.

    Returns
    -------
    (float, float)
        Volume outside and whole volume of the mask, ml (voxel count x ``mask``'s voxel
        volume); (0, total) on the same grid.
    """
    array = sitk.GetArrayViewFromImage(mask)
    voxel_ml = float(np.prod(mask.GetSpacing())) / 1000.0
    count = int(np.count_nonzero(array))
    if same_grid(mask, reference) or not count:
        return 0.0, count * voxel_ml
    idx = np.argwhere(array)[:, ::-1]  # (N, 3) in (i, j, k) order
    ijk = lps_to_voxel(reference, voxel_to_lps(mask, idx))
    size = np.asarray(reference.GetSize(), dtype=float)
    tol = 1e-3
    out = np.any((ijk < -0.5 - tol) | (ijk > size - 0.5 + tol), axis=1)
    return int(out.sum()) * voxel_ml, count * voxel_ml


#: Patient side of the + and - direction of each LPS axis.
_LPS_SIDES = (("left", "right"), ("posterior", "anterior"), ("superior", "inferior"))


def axis_sides(image: sitk.Image) -> list[tuple[str, str]]:
    """Per index axis (i, j, k) of ``image``: the patient side (LPS names: left/right,
    posterior/anterior, superior/inferior) of its low end (index 0) and of its high end
    (index size - 1), from the dominant component of the axis' direction."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    sides = []
    for a in range(3):
        column = direction[:, a]
        c = int(np.argmax(np.abs(column)))
        plus, minus = _LPS_SIDES[c]
        sides.append((minus, plus) if column[c] > 0 else (plus, minus))
    return sides


def beyond_field_of_view(points_lps: np.ndarray, reference: sitk.Image) -> dict[str, float]:
    """How far points lie beyond ``reference``'s field of view, per patient side, mm.

    A point is beyond a side when its continuous index on that axis lies outside the
    box of ``reference``'s voxels (below -0.5 or above size - 0.5, as
    :func:`mask_outside_ml`); the distance is measured along the axis from the
    outermost voxel centres on that side (for the slice axis: from the first or last
    slice). Sides are named by :func:`axis_sides`.

    Returns
    -------
    dict
        Side ('superior', 'inferior', 'left', ...) -> largest distance, mm; empty when
        every point lies inside.
    """
    points = np.asarray(points_lps, dtype=float).reshape(-1, 3)
    if not len(points):
        return {}
    ijk = lps_to_voxel(reference, points)
    size = np.asarray(reference.GetSize(), dtype=float)
    spacing = np.asarray(reference.GetSpacing(), dtype=float)
    tol = 1e-3
    out: dict[str, float] = {}
    for a, (low, high) in enumerate(axis_sides(reference)):
        below = ijk[:, a] < -0.5 - tol
        above = ijk[:, a] > size[a] - 0.5 + tol
        if below.any():
            out[low] = float(-ijk[below, a].min() * spacing[a])
        if above.any():
            out[high] = float((ijk[above, a].max() - (size[a] - 1)) * spacing[a])
    return out


def mask_beyond_field_of_view(mask: sitk.Image, reference: sitk.Image) -> dict[str, float]:
    """:func:`beyond_field_of_view` of the voxel centres of ``mask`` (non-zero)."""
    if same_grid(mask, reference):
        return {}
    idx = np.argwhere(sitk.GetArrayViewFromImage(mask))[:, ::-1]
    return beyond_field_of_view(voxel_to_lps(mask, idx), reference)


def describe_beyond(beyond: dict[str, float], reference: sitk.Image, what: str = "CT") -> str:
    """``beyond`` (:func:`beyond_field_of_view`) in words: '6.0 mm inferior of the CT's
    inferior-most slice (LPS z 40.0 mm)'; the LPS z of that slice is given for the
    superior/inferior sides, several sides are joined by 'and'."""
    edge = edge_slice_z(reference)
    parts = []
    for side, mm in beyond.items():
        if side in edge:
            parts.append(
                f"{mm:.1f} mm {side} of the {what}'s {side}-most slice (LPS z {edge[side]:.1f} mm)"
            )
        else:
            parts.append(f"{mm:.1f} mm {side} of the {what}'s {side}-most voxels")
    return " and ".join(parts)


def edge_slice_z(reference: sitk.Image) -> dict[str, float]:
    """LPS z of the centre of the superior-most and inferior-most voxel plane, when the
    image's slices are axial (the axis pointing superior-inferior is its k axis)."""
    sides = axis_sides(reference)[2]
    if set(sides) != {"superior", "inferior"}:
        return {}
    size = np.asarray(reference.GetSize(), dtype=float)
    centre = (size - 1) / 2
    ends = np.array([[centre[0], centre[1], 0.0], [centre[0], centre[1], size[2] - 1]])
    z = voxel_to_lps(reference, ends)[:, 2]
    return {sides[0]: float(z[0]), sides[1]: float(z[1])}


def _box(lo: np.ndarray, hi: np.ndarray) -> str:
    return "[" + ", ".join(f"{a:.0f}..{b:.0f}" for a, b in zip(lo, hi, strict=True)) + "]"
