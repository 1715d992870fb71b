"""Straight needle trajectories: candidate directions, angle limits, exact clearance checks."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from hepanav.planning.schema import TrajectoryRules


def fibonacci_directions(count: int) -> np.ndarray:
    """``count`` nearly uniform unit vectors on the sphere, shape (count, 3), LPS."""
    i = np.arange(count) + 0.5
    z = 1.0 - 2.0 * i / count
    r = np.sqrt(1.0 - z * z)
    phi = np.pi * (1.0 + 5**0.5) * i
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def angle_from_axial_deg(direction: np.ndarray) -> np.ndarray:
    """Angle (deg) between needle directions (…, 3) and the axial plane (z = S axis in LPS)."""
    d = np.asarray(direction, dtype=float)
    return np.degrees(np.arcsin(np.clip(np.abs(d[..., 2]), 0.0, 1.0)))


def allowed_directions(rules: TrajectoryRules) -> np.ndarray:
    """Needle directions (entry -> tip), shape (N, 3), meeting the angle and approach rules."""
    dirs = fibonacci_directions(rules.direction_count)
    keep = angle_from_axial_deg(dirs) <= rules.max_angle_from_axial_deg + 1e-9
    if rules.forbidden_approach_lps is not None:
        side = np.asarray(rules.forbidden_approach_lps, dtype=float)
        side /= np.linalg.norm(side)
        # The entry lies at -direction from the target.
        cos_entry = (-dirs) @ side
        keep &= cos_entry < np.cos(np.radians(rules.forbidden_approach_half_angle_deg))
    return dirs[keep]


def perpendicular_basis(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors (u, v) completing ``direction`` to a right-handed orthonormal frame."""
    d = np.asarray(direction, dtype=float)
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(d, helper)
    u /= np.linalg.norm(u)
    return u, np.cross(d, u)


def rasterise_segment(
    entry_lps: np.ndarray, tip_lps: np.ndarray, lps_to_index, step_mm: float = 0.25
) -> np.ndarray:
    """Unique voxel indices (N, 3) in (z, y, x) order that the segment passes through.

    ``lps_to_index`` maps LPS points (N, 3) to continuous (i, j, k) = (x, y, z) indices,
    e.g. ``lambda p: hepanav.imaging.lps_to_voxel(image, p)``.
    """
    length = float(np.linalg.norm(np.asarray(tip_lps) - np.asarray(entry_lps)))
    t = np.linspace(0.0, 1.0, max(2, int(np.ceil(length / step_mm)) + 1))
    points = np.asarray(entry_lps) + t[:, None] * (np.asarray(tip_lps) - np.asarray(entry_lps))
    ijk = np.rint(lps_to_index(points)).astype(np.int64)
    return np.unique(ijk[:, ::-1], axis=0)


def segment_distances(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray) -> np.ndarray:
    """Smallest distances (mm) between segments p0-p1 and q0-q1, shapes (N, 3) -> (N,).

    Closest points of the two lines, clamped to the segments (clamp s, solve t, clamp t,
    re-solve s), as in Ericson, Real-Time Collision Detection, 5.1.9.
    """
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a = np.einsum("ij,ij->i", d1, d1)
    e = np.einsum("ij,ij->i", d2, d2)
    f = np.einsum("ij,ij->i", d2, r)
    c = np.einsum("ij,ij->i", d1, r)
    b = np.einsum("ij,ij->i", d1, d2)
    denom = a * e - b * b
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(denom > 1e-9, np.clip((b * f - c * e) / denom, 0, 1), 0.0)
        t = (b * s + f) / np.maximum(e, 1e-12)
        t_c = np.clip(t, 0, 1)
        s = np.where(t != t_c, np.clip((b * t_c - c) / np.maximum(a, 1e-12), 0, 1), s)
    diff = (p0 + s[:, None] * d1) - (q0 + t_c[:, None] * d2)
    return np.linalg.norm(diff, axis=1)


def conflicting_pairs(
    entries: np.ndarray, tips: np.ndarray, min_distance_mm: float
) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, of segments entry-tip (N, 3) passing closer than ``min_distance_mm``."""
    n = len(entries)
    pairs: list[tuple[int, int]] = []
    if n < 2 or min_distance_mm <= 0:
        return pairs
    for i in range(n - 1):
        j = np.arange(i + 1, n)
        dist = segment_distances(
            np.repeat(entries[i : i + 1], j.size, 0),
            np.repeat(tips[i : i + 1], j.size, 0),
            entries[j],
            tips[j],
        )
        pairs.extend((i, int(k)) for k in j[dist < min_distance_mm])
    return pairs


def clearance_along(
    voxels_zyx: np.ndarray,
    labels_zyx: np.ndarray,
    spacing_zyx: np.ndarray,
    rule_of: np.ndarray,
    clearances: list[float],
    search_mm: float,
) -> tuple[dict[int, float], list[int]]:
    """Exact clearance of rasterised needle voxels on the full-resolution label grid.

    Distance is measured between voxel centres (the metric of a Euclidean distance
    transform with ``sampling=spacing``), for every no-go label found within
    ``search_mm`` of the needle.

    Parameters
    ----------
    voxels_zyx : ndarray of int, shape (N, 3)
        Voxels the needle passes through.
    labels_zyx : ndarray (z, y, x)
        Full-resolution label map.
    spacing_zyx : ndarray (3,)
        Voxel size in mm.
    rule_of : ndarray
        ``rule_of[label]`` = index of its no-go rule or -1.
    clearances : list of float
        Clearance (mm) per rule.
    search_mm : float
        Only labels within this distance are measured.

    Returns
    -------
    (dict label -> min distance mm, list of labels violated)
    """
    shape = np.asarray(labels_zyx.shape)
    pad = np.ceil(search_mm / spacing_zyx).astype(int)
    result: dict[int, float] = {}
    violated: list[int] = []
    # Boxes around pieces of about 20 mm of needle: for an oblique needle one box around
    # all of it would hold many times more voxels than the tube that matters. The voxels
    # of a straight segment sorted by (z, y, x) are in order along it.
    piece = max(8, int(20.0 / float(spacing_zyx.min())))
    chunks_p, chunks_v = [], []
    for start in range(0, len(voxels_zyx), piece):
        part = voxels_zyx[start : start + piece]
        lo = np.maximum(part.min(axis=0) - pad, 0)
        hi = np.minimum(part.max(axis=0) + pad + 1, shape)
        box = labels_zyx[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        rules = rule_of[np.minimum(box, rule_of.size - 1)]
        hits = np.nonzero(rules >= 0)
        if hits[0].size:
            chunks_p.append((np.stack(hits, axis=1) + lo) * spacing_zyx)
            chunks_v.append(box[hits])
    if not chunks_p:
        return result, violated
    points = np.concatenate(chunks_p)
    values = np.concatenate(chunks_v)
    order = np.argsort(values, kind="stable")
    points, values = points[order], values[order]
    labels, starts = np.unique(values, return_index=True)
    ends = np.append(starts[1:], values.size)
    needle = voxels_zyx * spacing_zyx
    for label, a, b in zip(labels, starts, ends, strict=True):
        dist = float(cKDTree(points[a:b]).query(needle, distance_upper_bound=search_mm)[0].min())
        if np.isfinite(dist):
            result[int(label)] = dist
            if dist < clearances[int(rule_of[label])] - 1e-6:
                violated.append(int(label))
    return result, violated
