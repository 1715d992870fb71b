"""Choose needles and ablation positions: set cover as a mixed-integer linear program.

Variables: ``y_l`` (needle along candidate line l is used) and ``x_z`` (zone z is
ablated). Minimise, lexicographically, the number of needles and then the healthy liver
the zones ablate (a linear proxy: the sum of each zone's healthy volume), subject to

* every active target point covered by at least one chosen zone,
* a zone only on a chosen needle (``x_z <= y_l``), at most ``max_positions`` per needle,
* pairs of needles that would pass too close are exclusive (``y_a + y_b <= 1``),
* optionally all needles parallel (one direction variable chosen).

The lexicographic order is exact for plans with at most ``needle_bound`` needles: the
healthy-volume term is scaled so that it sums to less than half a needle. Solved by
HiGHS through ``scipy.optimize.milp``. :func:`greedy_cover` is the classic greedy
set-cover heuristic on the same candidates (baseline for the benchmark, fallback).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from hepanav.planning.candidates import CandidateSet


@dataclass
class Selection:
    """Chosen zones (indices into the candidate zones), their lines, solver figures."""

    zones: np.ndarray
    lines: np.ndarray
    status: str
    time_s: float
    solver: str
    line_value: dict[int, float] | None = None  # LP relaxation: value of each needle variable
    uncovered: int = 0  # rows the solution leaves uncovered (soft cover)
    # True when the wall-clock budget shaped the result (HiGHS stopped at its time limit,
    # or a stage was cut short or skipped for lack of time): a rerun may differ.
    time_limited: bool = False

    def key(self, cost_ml: np.ndarray) -> tuple:
        """Lexicographic quality: uncovered rows, needles, healthy liver (lower is better)."""
        return (self.uncovered, self.lines.size, float(cost_ml[self.zones].sum()))


def _lines_of(cand: CandidateSet, zones: np.ndarray) -> np.ndarray:
    return np.unique(cand.zone_line[zones]) if zones.size else np.zeros(0, dtype=np.int64)


def greedy_cover(
    cand: CandidateSet,
    rows: np.ndarray,
    max_positions: int,
    banned_lines: set[int] | frozenset[int] = frozenset(),
    initial: np.ndarray | None = None,
    conflicts: list[tuple[int, int]] | None = None,
    parallel: bool = False,
) -> Selection:
    """Greedy set cover: repeatedly take the zone covering the most uncovered rows.

    Parameters
    ----------
    cand : CandidateSet
    rows : ndarray of int
        Row indices that must be covered (each must be coverable).
    max_positions : int
        Zones per needle at most.
    banned_lines : set of int
    initial : ndarray of int, optional
        Zones already chosen (e.g. a MILP solution to repair after rows were added).
    conflicts : list of (line, line), optional
        Needle pairs that must not both be used.
    parallel : bool
        All needles along the direction of the first one chosen.
    """
    t0 = time.perf_counter()
    if parallel and initial is None:
        # one greedy cover per direction; keep the best (complete, fewest needles, least liver)
        best = None
        for d in np.unique(cand.direction_id):
            others = set(np.nonzero(cand.direction_id != d)[0].tolist())
            sel = greedy_cover(
                cand, rows, max_positions, set(banned_lines) | others, conflicts=conflicts
            )
            if sel.zones.size and (
                best is None or sel.key(cand.zone_cost_ml) < best.key(cand.zone_cost_ml)
            ):
                best = sel
        if best is not None:
            best.time_s = time.perf_counter() - t0
            return best
    cover = cand.cover[rows].tocsc().astype(np.int32)
    allowed = ~np.isin(cand.zone_line, list(banned_lines))
    clash: dict[int, list[int]] = {}
    for a, b in conflicts or []:
        clash.setdefault(a, []).append(b)
        clash.setdefault(b, []).append(a)
    uncovered = np.ones(len(rows), dtype=np.int32)
    used = np.zeros(cover.shape[1], dtype=bool)
    per_line: dict[int, int] = {}
    chosen: list[int] = []
    for z in [] if initial is None else initial:
        if cand.zone_line[z] in banned_lines:
            continue
        chosen.append(int(z))
        used[z] = True
        per_line[int(cand.zone_line[z])] = per_line.get(int(cand.zone_line[z]), 0) + 1
        uncovered[cover[:, z].nonzero()[0]] = 0
        if clash.get(int(cand.zone_line[z])):
            allowed &= ~np.isin(cand.zone_line, clash[int(cand.zone_line[z])])
        if parallel:
            allowed &= cand.direction_id[cand.zone_line] == cand.direction_id[cand.zone_line[z]]
    while uncovered.any():
        gain = (cover.T @ uncovered).astype(float)
        ok = allowed & ~used
        full = [ln for ln, k in per_line.items() if k >= max_positions]
        if full:
            ok &= ~np.isin(cand.zone_line, full)
        # prefer positions on needles already placed (no extra needle), then less healthy liver
        bonus = np.where(np.isin(cand.zone_line, list(per_line)), 1.25, 1.0)
        score = np.where(ok, gain * bonus - 1e-3 * cand.zone_cost_ml, -np.inf)
        best = int(np.argmax(score))
        if not np.isfinite(score[best]) or gain[best] <= 0:
            break
        chosen.append(best)
        used[best] = True
        line = int(cand.zone_line[best])
        if parallel:
            allowed &= cand.direction_id[cand.zone_line] == cand.direction_id[line]
        if line not in per_line and clash.get(line):
            allowed &= ~np.isin(cand.zone_line, clash[line])
        per_line[line] = per_line.get(line, 0) + 1
        uncovered[cover[:, best].nonzero()[0]] = 0
    zones = np.asarray(chosen, dtype=np.int64)
    status = "covered" if not uncovered.any() else "incomplete"
    solver = "greedy" if initial is None else "milp + greedy repair"
    return Selection(
        zones,
        _lines_of(cand, zones),
        status,
        time.perf_counter() - t0,
        solver,
        uncovered=int(uncovered.sum()),
    )


def milp_cover(
    cand: CandidateSet,
    rows: np.ndarray,
    max_positions: int,
    needle_bound: int,
    *,
    banned_lines: set[int] | frozenset[int] = frozenset(),
    conflicts: list[tuple[int, int]] | None = None,
    parallel: bool = False,
    time_limit_s: float = 8.0,
    keep_zones: np.ndarray | None = None,
    integral: bool = True,
) -> Selection:
    """Exact (within the time limit) lexicographic set cover with HiGHS.

    Parameters
    ----------
    cand : CandidateSet
    rows : ndarray of int
        Rows that must be covered (each coverable by an allowed zone).
    max_positions : int
    needle_bound : int
        An upper bound of the needle count (e.g. the greedy solution's); scales the
        secondary objective so that it never outweighs one needle.
    banned_lines : set of int
    conflicts : list of (line, line)
    parallel : bool
    time_limit_s : float
    keep_zones : ndarray of int, optional
        Restrict the model to these zones (see :func:`reduced_milp_cover`).
    integral : bool
        False solves the LP relaxation (``Selection.zones`` then holds every zone
        with a positive value).
    """
    t0 = time.perf_counter()
    allowed = ~np.isin(cand.zone_line, list(banned_lines))
    if keep_zones is not None:
        allowed &= np.isin(np.arange(allowed.size), keep_zones)
    allowed_z = np.nonzero(allowed)[0]
    lines, line_of_z = np.unique(cand.zone_line[allowed_z], return_inverse=True)
    n_y, n_x = len(lines), len(allowed_z)
    dir_ids, dir_of_line = np.unique(cand.direction_id[lines], return_inverse=True)
    n_d = len(dir_ids) if parallel else 0
    n = n_y + n_x + n_d

    max_cost = max(float(cand.zone_cost_ml[allowed_z].max(initial=0.0)), 1e-6)
    eps = 0.5 / (max(needle_bound, 1) * max_positions * max_cost + 1.0)
    c = np.concatenate([np.ones(n_y), eps * cand.zone_cost_ml[allowed_z] + 1e-6, np.zeros(n_d)])

    blocks, lbs, ubs = [], [], []
    a_cover = cand.cover[rows][:, allowed_z].astype(float)
    blocks.append(
        sparse.hstack(
            [sparse.csr_matrix((len(rows), n_y)), a_cover, sparse.csr_matrix((len(rows), n_d))]
        )
    )
    lbs.append(np.ones(len(rows)))
    ubs.append(np.full(len(rows), np.inf))
    # x_z - y_l <= 0
    link = sparse.csr_matrix(
        (
            np.concatenate([np.ones(n_x), -np.ones(n_x)]),
            (
                np.concatenate([np.arange(n_x)] * 2),
                np.concatenate([n_y + np.arange(n_x), line_of_z]),
            ),
        ),
        shape=(n_x, n),
    )
    blocks.append(link)
    lbs.append(np.full(n_x, -np.inf))
    ubs.append(np.zeros(n_x))
    # sum_z x_z - P y_l <= 0
    cap = sparse.csr_matrix(
        (
            np.concatenate([np.ones(n_x), -np.full(n_y, float(max_positions))]),
            (
                np.concatenate([line_of_z, np.arange(n_y)]),
                np.concatenate([n_y + np.arange(n_x), np.arange(n_y)]),
            ),
        ),
        shape=(n_y, n),
    )
    blocks.append(cap)
    lbs.append(np.full(n_y, -np.inf))
    ubs.append(np.zeros(n_y))
    position = {int(ln): i for i, ln in enumerate(lines)}
    pairs = [
        (position[a], position[b]) for a, b in conflicts or [] if a in position and b in position
    ]
    if pairs:
        r = np.repeat(np.arange(len(pairs)), 2)
        cidx = np.asarray(pairs, dtype=np.int64).ravel()
        blocks.append(sparse.csr_matrix((np.ones(r.size), (r, cidx)), shape=(len(pairs), n)))
        lbs.append(np.full(len(pairs), -np.inf))
        ubs.append(np.ones(len(pairs)))
    if parallel:
        par = sparse.csr_matrix(
            (
                np.concatenate([np.ones(n_y), -np.ones(n_y)]),
                (
                    np.concatenate([np.arange(n_y)] * 2),
                    np.concatenate([np.arange(n_y), n_y + n_x + dir_of_line]),
                ),
            ),
            shape=(n_y, n),
        )
        blocks += [
            par,
            sparse.csr_matrix(
                (np.ones(n_d), (np.zeros(n_d), n_y + n_x + np.arange(n_d))), shape=(1, n)
            ),
        ]
        lbs += [np.full(n_y, -np.inf), np.array([-np.inf])]
        ubs += [np.zeros(n_y), np.array([1.0])]

    # at most as many needles as the bound (the greedy solution's count)
    blocks.append(sparse.csr_matrix((np.ones(n_y), (np.zeros(n_y), np.arange(n_y))), shape=(1, n)))
    lbs.append(np.array([-np.inf]))
    ubs.append(np.array([float(max(needle_bound, 1))]))
    # Soft cover: a slack per row, dearer than one more needle, so an instance whose rows
    # cannot all be covered together (needle conflicts) still gives the maximal coverage.
    n_r = len(rows)
    matrix = sparse.vstack(blocks).tocsr()
    slack = sparse.vstack(
        [sparse.identity(n_r, format="csr"), sparse.csr_matrix((matrix.shape[0] - n_r, n_r))]
    )
    matrix = sparse.hstack([matrix, slack]).tocsr()
    c = np.concatenate([c, np.full(n_r, float(max(needle_bound, 1) + 1))])
    integrality = np.concatenate([np.full(n, 1 if integral else 0), np.zeros(n_r)])
    constraint = LinearConstraint(matrix, np.concatenate(lbs), np.concatenate(ubs))
    res = milp(
        c,
        integrality=integrality,
        bounds=Bounds(0, 1),
        constraints=constraint,
        options={"time_limit": time_limit_s, "mip_rel_gap": 1e-4, "presolve": True},
    )
    elapsed = time.perf_counter() - t0
    hit_limit = res.status == 1  # iteration or time limit reached
    if res.x is None:
        return Selection(
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.int64),
            f"no solution ({res.message})",
            elapsed,
            "milp",
            time_limited=hit_limit,
        )
    x = res.x[n_y : n_y + n_x] > (0.5 if integral else 1e-6)
    zones = allowed_z[x]
    values = {int(ln): float(v) for ln, v in zip(lines, res.x[:n_y], strict=True) if v > 1e-6}
    if res.status == 0:
        status = "optimal"
    else:
        gap = getattr(res, "mip_gap", None)
        status = "time limit, best found" + (f" (gap {gap:.2g})" if gap is not None else "")
    left_out = int(np.count_nonzero(res.x[n:] > 0.5)) if integral else 0
    if left_out:
        status += f", {left_out} rows cannot be covered together"
    return Selection(
        zones,
        _lines_of(cand, zones),
        status,
        elapsed,
        "milp",
        values,
        left_out,
        time_limited=hit_limit,
    )


def pool_status(status: str, pool: str, size: int, total: int) -> str:
    """Status of a MILP solved over a restricted pool of ``size`` of ``total`` needles.

    HiGHS's "optimal" then only holds within the pool: the wording says so, e.g.
    "optimal within the restricted pool of the greedy needles (8 of 218 candidate
    needles); not proven optimal over all 218 candidates".
    """
    text = f"{status} within the restricted pool of {pool} ({size} of {total} candidate needles)"
    if status.startswith("optimal") and size < total:
        text += f"; not proven optimal over all {total} candidates"
    return text


def reduced_milp_cover(
    cand: CandidateSet,
    rows: np.ndarray,
    max_positions: int,
    greedy: Selection,
    *,
    banned_lines: set[int] | frozenset[int] = frozenset(),
    conflicts: list[tuple[int, int]] | None = None,
    parallel: bool = False,
    time_limit_s: float = 8.0,
    previous: np.ndarray | None = None,
) -> Selection:
    """MILP on an LP-reduced candidate set (a standard column-reduction heuristic).

    Stage A solves the MILP over the greedy solution's needles and the ``previous``
    round's (every zone on them): small, usually optimal within a fraction of a second,
    never worse than greedy. Stage B solves the LP relaxation of the full model (without
    the needle conflicts, which only slow it down), adds the needles it uses most (at most
    three times the greedy count) and solves the MILP on that larger set with the time
    left; the better of the two is returned. The status says on which set and whether
    HiGHS proved optimality there or stopped at the time limit (:func:`pool_status`);
    ``time_limited`` is set when the wall-clock budget shaped the result (a stage hit the
    time limit or was skipped for lack of time).
    """
    t0 = time.perf_counter()
    bound = max(1, greedy.lines.size)
    total = np.unique(cand.zone_line).size
    common = dict(banned_lines=banned_lines, conflicts=conflicts, parallel=parallel)

    def restricted(lines: np.ndarray, limit: float, label: str) -> Selection:
        keep = np.nonzero(np.isin(cand.zone_line, lines))[0]
        sel = milp_cover(
            cand, rows, max_positions, bound, time_limit_s=limit, keep_zones=keep, **common
        )
        sel.status = pool_status(sel.status, label, lines.size, total)
        return sel

    # Stage A: re-optimise over the greedy (and last round's) needles: small, usually
    # solved to optimality in a fraction of a second, never worse than greedy.
    base = greedy.lines
    if previous is not None:  # the last round's needles: a few added rows rarely need new ones
        base = np.union1d(base, np.setdiff1d(previous, list(banned_lines)))
    best = restricted(base, 0.3 * time_limit_s, "the greedy needles")
    time_limited = best.time_limited
    # Stage B: add the needles the LP relaxation uses most (at most 3x the greedy count).
    left = time_limit_s - (time.perf_counter() - t0)
    if left <= 1.0:
        time_limited = True  # stage B skipped for lack of time
    else:
        lp = milp_cover(
            cand,
            rows,
            max_positions,
            bound,
            banned_lines=banned_lines,
            conflicts=None,  # only ranks needles; conflict rows slow it down
            parallel=parallel,
            time_limit_s=0.5 * left,
            integral=False,
        )
        time_limited |= lp.time_limited
        ranked = sorted((lp.line_value or {}).items(), key=lambda kv: -kv[1])
        top = np.array([ln for ln, _ in ranked[: 3 * bound]], dtype=np.int64)
        left = time_limit_s - (time.perf_counter() - t0)
        if top.size and left <= 0.5:
            time_limited = True  # the wider MILP skipped for lack of time
        if top.size and left > 0.5:
            wider = restricted(
                np.union1d(top, np.union1d(base, best.lines)), left, "the LP-reduced set"
            )
            time_limited |= wider.time_limited
            if wider.zones.size and (
                not best.zones.size or wider.key(cand.zone_cost_ml) < best.key(cand.zone_cost_ml)
            ):
                best = wider
    best.time_s = time.perf_counter() - t0
    best.time_limited = time_limited
    return best
