"""Candidate set: straight trajectories checked against the risk map, and their zones.

For each allowed direction, a lattice of parallel lines crosses the target. Every line
is walked back from the target to the skin on the working grid: the entry is where it
leaves the body outline; the deepest admissible tip is limited by the first sample
within a no-go clearance, by leaving the body, and by the needle length. Zones sit at
pull-back positions along the line; each zone's coverage of the target points and its
healthy-liver volume are found with a KD-tree in coordinates where the ellipsoid is a
sphere.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from hepanav.core.limits import check_memory
from hepanav.planning.approach import ApproachContext
from hepanav.planning.grid import WorkGrid
from hepanav.planning.schema import Device
from hepanav.planning.trajectories import perpendicular_basis

SKIN_AIR_MM = (3.0, 6.0)  # air must lie this far outside an entry (needle_table.entry_on_skin)
SKIN_GAP_MM = 5.0  # a zone's proximal end stays this far inside the skin entry (assumption)


@dataclass
class CandidateSet:
    """Lines (trajectories) and zones (ablation positions) with the coverage matrix.

    ``cover`` is a sparse (rows x zones) boolean matrix over ``rows`` (target points, LPS).
    """

    entry: np.ndarray  # (L, 3) LPS
    direction: np.ndarray  # (L, 3)
    direction_id: np.ndarray  # (L,)
    zone_line: np.ndarray  # (Z,)
    zone_tip: np.ndarray  # (Z, 3)
    zone_center: np.ndarray  # (Z, 3)
    zone_cost_ml: np.ndarray  # (Z,) healthy liver ablated by the zone alone
    cover: sparse.csc_matrix  # (R, Z)
    rows: np.ndarray  # (R, 3)
    lines_checked: int = 0
    reasons: Counter = field(default_factory=Counter)


@dataclass
class TargetPoints:
    """Points of tumour + margin to cover and healthy liver points (working grid)."""

    rows: np.ndarray  # (R, 3) LPS, coverable (outside the heat-sink band)
    liver: np.ndarray  # (H, 3) LPS, healthy liver near the target
    voxel_ml: float  # volume one liver point stands for
    center: np.ndarray  # (3,)
    radius: float  # of the bounding sphere of the rows


def _nearest_label_namer(grid: WorkGrid):
    idx = np.argwhere(grid.nogo_label > 0)
    if not len(idx):
        return lambda p: 0
    tree = cKDTree(grid.to_lps(idx))
    labels = grid.nogo_label[tuple(idx.T)]
    return lambda p: int(labels[tree.query(p)[1]])


def build_candidates(
    grid: WorkGrid,
    target: TargetPoints,
    directions: np.ndarray,
    device: Device,
    lateral_step_mm: float,
    shrink_mm: float,
    approach: ApproachContext | None = None,
) -> CandidateSet:
    """Enumerate lines and zones and compute which target points each zone covers.

    Parameters
    ----------
    grid : WorkGrid
    target : TargetPoints
    directions : ndarray (D, 3)
        Allowed unit needle directions (entry -> tip).
    device : Device
    lateral_step_mm : float
        Spacing of the parallel lines of one direction, mm.
    shrink_mm : float
        Semi-axes reduction for coverage (conservative between grid points), mm.
    approach : ApproachContext, optional
        Approach rules on the entry (ipsilateral, subcostal) and the maximum depth.
    """
    length_axis, width_axis, _ = device.zone_axes_mm
    a_long, a_short = length_axis / 2.0 - shrink_mm, width_axis / 2.0 - shrink_mm
    h = 0.5 * float(grid.spacing.min())
    reach = target.radius + a_long + device.tip_to_center_mm
    s = np.arange(-(device.needle_length_mm + target.radius + h), reach + h, h)
    name_of = _nearest_label_namer(grid)
    zone_step = device.pullback_step_mm

    entries, dirs, dir_ids, z_line, z_tip, z_center, z_cost = [], [], [], [], [], [], []
    cols: list[np.ndarray] = []
    reasons: Counter = Counter()
    checked = 0
    body_last = np.asarray(grid.body.shape) - 1
    rel_rows = target.rows - target.center
    rel_liver = target.liver - target.center
    for d_id, d in enumerate(directions):
        u, v = perpendicular_basis(d)
        ru, rv, rw = rel_rows @ u, rel_rows @ v, rel_rows @ d
        extent = np.sqrt(ru**2 + rv**2).max() + a_short
        n = int(np.ceil(extent / lateral_step_mm))
        # Estimate before allocating: the lateral grid x the samples along each line, as
        # points (3 float64), indices (3 float64) and two sampled fields.
        check_memory(
            (2 * n + 1) ** 2 * len(s) * 8 * 8.0,
            "the candidate needle paths",
            "trajectory.lateral_step_mm",
        )
        gi, gj = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
        lat = np.stack([gi.ravel(), gj.ravel()], axis=1) * lateral_step_mm
        tree2d = cKDTree(np.stack([ru, rv], axis=1))
        near = tree2d.query_ball_point(lat, r=a_short)
        useful = [k for k, lst in enumerate(near) if lst]
        if not useful:
            continue
        lat = lat[useful]
        s_front = np.array([rw[near[k]].min() for k in useful])
        anchors = target.center + lat[:, :1] * u + lat[:, 1:] * v  # (L, 3)
        pts = anchors[:, None, :] + s[None, :, None] * d  # (L, S, 3)
        inside = grid.sample(grid.body, pts, order=0, cval=0) > 0
        zyx = grid.to_index(pts)
        in_volume = np.all((zyx > -0.5) & (zyx < np.asarray(grid.body.shape) - 0.5), axis=-1)
        slack = grid.sample(grid.slack, pts, order=1, cval=1e6)
        checked += len(anchors)

        # rows / liver in the frame of this direction; ellipsoid -> sphere of radius a_short
        scale = a_short / a_long
        rows_t = cKDTree(np.stack([ru, rv, rw * scale], axis=1))
        liver_t = cKDTree(np.stack([rel_liver @ u, rel_liver @ v, (rel_liver @ d) * scale], axis=1))
        for li in range(len(anchors)):
            before = np.nonzero((~inside[li]) & (s < s_front[li]))[0]
            if not before.size:
                reasons["skin farther than the needle length"] += 1
                continue
            k_e = before[-1]
            if not in_volume[li, k_e]:
                # The line leaves the scan before it reaches the skin: where it enters the
                # body is unknown (e.g. a thin slab), so it cannot be planned.
                reasons["leaves the scanned volume before reaching the skin"] += 1
                continue
            s_e = s[k_e] + h / 2.0
            # The skin must be in the scan: outside the entry (3 and 6 mm back along the
            # line, as needle_table.entry_on_skin checks) the scan holds air. A line that
            # leaves a thin slab through its top or bottom face has its "entry" there,
            # inside tissue, within half a coarse voxel of the volume's edge.
            back = anchors[li] + (s_e - np.array(SKIN_AIR_MM))[:, None] * d
            zyx_b = grid.to_index(back)
            if (
                not np.all((zyx_b >= 0) & (zyx_b <= body_last))
                or grid.sample(grid.body, back, order=0, cval=1).any()
            ):
                reasons["entry not at the skin (no air outside it in the scan)"] += 1
                continue
            if grid.entry_allowed is not None and not grid.sample(
                grid.entry_allowed, anchors[li] + s_e * d, order=0, cval=0
            ):
                reasons["entry outside the allowed skin region"] += 1
                continue
            if approach is not None:
                why = approach.entry_reason(anchors[li] + s_e * d)
                if why:
                    reasons[why] += 1
                    continue
            limit = min(s_e + device.needle_length_mm, s[-1])
            too_deep = False
            if approach is not None and approach.max_depth_mm is not None:
                too_deep = s_e + approach.max_depth_mm < limit
                limit = min(limit, s_e + approach.max_depth_mm)
            after = np.nonzero(~(inside[li, k_e + 1 :] & in_volume[li, k_e + 1 :]))[0]
            if after.size:
                limit = min(limit, s[k_e + 1 + after[0]] - h)
            bad = np.nonzero(slack[li, k_e + 1 :] < 0)[0]
            blocked_at = None
            if bad.size:
                k_b = k_e + 1 + bad[0]
                limit = min(limit, s[k_b] - h)
                blocked_at = pts[li, k_b]
            # zone centres on the pull-back lattice (aligned to s = 0)
            lo_c = max(s_e + SKIN_GAP_MM + a_long + shrink_mm, s_front[li] - a_long)
            hi_c = limit - device.tip_to_center_mm
            if hi_c < lo_c:
                if blocked_at is not None and s[k_e + 1 + bad[0]] < s_front[li] + a_long:
                    reasons[f"blocked by {name_of(blocked_at)}"] += 1  # label id, named later
                elif too_deep:
                    reasons["target deeper than the maximum depth"] += 1
                elif s_e + device.needle_length_mm < s_front[li]:
                    reasons["skin farther than the needle length"] += 1
                else:
                    reasons["no room for a zone inside the body"] += 1
                continue
            s_c = np.arange(np.ceil(lo_c / zone_step), np.floor(hi_c / zone_step) + 1) * zone_step
            if not s_c.size:
                s_c = np.array([hi_c])
            centers_t = np.stack(
                [np.full(s_c.size, lat[li, 0]), np.full(s_c.size, lat[li, 1]), s_c * scale], axis=1
            )
            covered = rows_t.query_ball_point(centers_t, r=a_short)
            cost = liver_t.query_ball_point(centers_t, r=a_short, return_length=True)
            line_id = len(entries)
            kept = 0
            for k, lst in enumerate(covered):
                if not lst:
                    continue
                kept += 1
                cols.append(np.asarray(lst, dtype=np.int64))
                z_line.append(line_id)
                centre = anchors[li] + s_c[k] * d
                z_center.append(centre)
                z_tip.append(centre + device.tip_to_center_mm * d)
                z_cost.append(float(cost[k]) * target.voxel_ml)
            if kept:
                entries.append(anchors[li] + s_e * d)
                dirs.append(d)
                dir_ids.append(d_id)
            else:
                reasons["zones cover no target point"] += 1

    n_rows = len(target.rows)
    if cols:
        indptr = np.cumsum([0] + [c.size for c in cols])
        data = np.ones(int(indptr[-1]), dtype=np.int8)
        cover = sparse.csc_matrix((data, np.concatenate(cols), indptr), shape=(n_rows, len(cols)))
    else:
        cover = sparse.csc_matrix((n_rows, 0), dtype=np.int8)
    as_arr = lambda x, w: np.asarray(x, dtype=float).reshape(-1, w)  # noqa: E731
    return CandidateSet(
        entry=as_arr(entries, 3),
        direction=as_arr(dirs, 3),
        direction_id=np.asarray(dir_ids, dtype=np.int64),
        zone_line=np.asarray(z_line, dtype=np.int64),
        zone_tip=as_arr(z_tip, 3),
        zone_center=as_arr(z_center, 3),
        zone_cost_ml=np.asarray(z_cost, dtype=float),
        cover=cover,
        rows=target.rows,
        lines_checked=checked,
        reasons=reasons,
    )
