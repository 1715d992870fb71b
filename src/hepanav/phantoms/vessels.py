"""Branching vessel trees (portal and hepatic veins) grown inside an implicit liver.

Each tree starts from a root segment and bifurcates recursively. Child radii
follow Murray's law (r^3 = r1^3 + r2^3; Murray 1926, PNAS 12:207), the thinner
child leaves at the wider angle, and each child direction is chosen among
random candidates to stay deep inside the liver and away from branches already
grown, so that the trees fill the organ. Segments are tapered capsules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hepanav.phantoms.grid import Grid, partial_volume


@dataclass(frozen=True)
class Segment:
    """A tapered capsule from ``start`` to ``end`` (LPS mm) with radii in mm."""

    start: np.ndarray
    end: np.ndarray
    r_start: float
    r_end: float


@dataclass
class Tree:
    """Segments of one vessel tree and the bifurcation points (LPS mm) it made."""

    segments: list[Segment] = field(default_factory=list)
    bifurcations: list[np.ndarray] = field(default_factory=list)


def _turn(d: np.ndarray, angle: np.ndarray, azimuth: np.ndarray) -> np.ndarray:
    """Unit vectors (N, 3) at ``angle`` (rad) from unit ``d``, rotated by ``azimuth`` around it."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(d, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(d, e1)
    side = np.cos(azimuth)[:, None] * e1 + np.sin(azimuth)[:, None] * e2
    return np.cos(angle)[:, None] * d + np.sin(angle)[:, None] * side


def grow_tree(
    rng: np.random.Generator,
    start: np.ndarray,
    direction: np.ndarray,
    radius_mm: float,
    length_mm: float,
    depth_fn: Callable[[np.ndarray], np.ndarray],
    *,
    min_radius_mm: float = 0.8,
    max_generations: int = 8,
    others: list[np.ndarray] | None = None,
) -> Tree:
    """Grow one tree from a root segment.

    Parameters
    ----------
    rng : numpy Generator
    start, direction : ndarray, shape (3,)
        Root start (LPS mm) and direction (normalised here).
    radius_mm, length_mm : float
        Root radius and length, mm.
    depth_fn : callable
        Maps points (N, 3) in LPS mm to their depth inside the liver in mm
        (negative outside); branches must end at a depth above their radius.
    min_radius_mm : float
        Branches thinner than this are not grown.
    others : list of ndarray, optional
        Node points of trees already grown, which new branches keep away from.
    """
    tree = Tree()
    nodes: list[np.ndarray] = list(others or [])
    direction = np.asarray(direction, float) / np.linalg.norm(direction)
    stack = [(np.asarray(start, float), direction, radius_mm, length_mm, 0)]
    while stack:
        p0, d, r, length, gen = stack.pop()
        p1 = p0 + d * length
        tree.segments.append(Segment(p0, p1, r, 0.93 * r))
        nodes.append(p1)
        if gen >= max_generations:
            continue
        f = rng.uniform(0.72, 0.88)
        radii = (0.93 * r * f, 0.93 * r * (1 - f**3) ** (1 / 3))
        angles = (np.radians(rng.uniform(15, 32)), np.radians(rng.uniform(38, 65)))
        # Score 12 candidate azimuths at once: children must end deep inside the liver
        # (depth above their radius) and away from nodes already grown.
        # Candidates: 12 azimuths x 3 length scales (shorter branches fit thin liver parts).
        n = 36
        azimuths = np.repeat(rng.uniform(0, 2 * np.pi, 12), 3)
        scale = np.tile([1.0, 0.6, 0.35], 12)
        lengths = (np.asarray(radii) * rng.uniform(7, 11, (n, 2)) + 4.0) * scale[:, None]
        dirs = np.stack(
            [_turn(d, np.full(n, angles[k]), azimuths + k * np.pi) for k in range(2)], axis=1
        )  # (n, 2, 3)
        tips = p1 + dirs[:, :, None, :] * (
            lengths[:, :, None, None] * np.array([0.5, 1.0])[None, None, :, None]
        )  # (n, 2, 2, 3)
        depth = depth_fn(tips.reshape(-1, 3)).reshape(n, 2, 2).min(axis=2) - np.array(radii)
        node_arr = np.asarray(nodes)
        crowd = np.linalg.norm(tips[:, :, 1, None, :] - node_arr[None, None], axis=-1).min(-1)
        score = (
            np.minimum(depth, 12.0) + 0.5 * np.minimum(crowd, 20.0) - 100.0 * (depth < 0.5)
        ).sum(axis=1)
        b = int(np.argmax(score))
        best = [(dirs[b, k], radii[k], lengths[b, k], depth[b, k]) for k in range(2)]
        tree.bifurcations.append(p1)
        for dk, rk, lk, dep in best:
            if dep >= 0.5 and rk >= min_radius_mm:
                stack.append((p1, dk, rk, lk, gen + 1))
    return tree


def paint_segments(
    hu: np.ndarray,
    labels: np.ndarray,
    grid: Grid,
    segments: list[Segment],
    value_hu: float,
    label: int | None,
    label_min_radius_mm: float = 0.0,
    wall: tuple[float, float] | None = None,
) -> None:
    """Blend tapered capsules into ``hu`` (z, y, x) in place and label their voxels.

    Parameters
    ----------
    hu : ndarray, float32, shape (nz, ny, nx)
    labels : ndarray, uint8/uint16, shape (nz, ny, nx)
    grid : Grid
        Axis-aligned geometry of both arrays.
    segments : list of Segment
    value_hu : float
        Lumen attenuation, HU.
    label : int or None
        Label of voxels whose centre lies inside a segment of radius at least
        ``label_min_radius_mm`` (small branches stay part of the organ, as in
        segmentations of real scans).
    wall : (thickness_mm, wall_hu), optional
        A wall painted under the lumen (bowel).
    """
    voxel = float(np.cbrt(np.prod(grid.spacing)))
    for seg in segments:
        rmax = max(seg.r_start, seg.r_end) + (wall[0] if wall else 0.0)
        lo = np.minimum(seg.start, seg.end) - rmax - 2 * voxel
        hi = np.maximum(seg.start, seg.end) + rmax + 2 * voxel
        block = grid.box(lo, hi)
        if block is None:
            continue
        x, y, z = grid.axes(block)
        axis = seg.end - seg.start
        length2 = max(float(axis @ axis), 1e-9)
        dx, dy, dz = x - seg.start[0], y - seg.start[1], z - seg.start[2]
        t = np.clip((dx * axis[0] + dy * axis[1] + dz * axis[2]) / length2, 0.0, 1.0)
        ex, ey, ez = dx - t * axis[0], dy - t * axis[1], dz - t * axis[2]
        dist = np.sqrt(ex * ex + ey * ey + ez * ez)
        sd = dist - (seg.r_start + t * (seg.r_end - seg.r_start))
        view = hu[block]
        if wall is not None:
            fw = partial_volume(sd - wall[0], voxel)
            view[...] = view + (wall[1] - view) * fw
            if label is not None:
                labels[block][sd - wall[0] < 0] = label
        frac = partial_volume(sd, voxel)
        view[...] = view + (value_hu - view) * frac
        if label is not None and min(seg.r_start, seg.r_end) >= label_min_radius_mm:
            labels[block][sd < 0] = label
