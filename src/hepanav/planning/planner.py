"""The planner: from CT, tumour and label map to a checked multi-needle plan.

Steps: validate inputs (physical space) -> working grid and no-go distance maps ->
target points (tumour + margin, heat-sink band removed) -> candidate lines and zones ->
MILP set cover with lazily added target rows, needle-spacing conflicts and exact
full-resolution clearance checks -> coverage, clearance and robustness figures.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from skimage.measure import block_reduce

from hepanav.core.errors import InputError
from hepanav.imaging.geometry import lps_to_voxel, require_overlap, same_grid, voxel_to_lps
from hepanav.imaging.resample import resample_labels_like, resample_mask_like
from hepanav.planning.approach import approach_context
from hepanav.planning.candidates import CandidateSet, TargetPoints, build_candidates
from hepanav.planning.grid import block_factors, build_work_grid, roi_box
from hepanav.planning.optimise import (
    Selection,
    greedy_cover,
    milp_cover,
    pool_status,
    reduced_milp_cover,
)
from hepanav.planning.risk import label_lookup, structure_name
from hepanav.planning.robustness import coverage_under_error
from hepanav.planning.schema import Device, Needle, PlanResult, Probe, RiskMap
from hepanav.planning.trajectories import (
    allowed_directions,
    angle_from_axial_deg,
    clearance_along,
    conflicting_pairs,
    rasterise_segment,
)
from hepanav.planning.zones import heat_sink_band, inside_zones

MAX_ROUNDS = 6
REPORT_RANGE_MM = 15.0  # clearances reported for structures up to this far beyond the largest
MAX_START_ROWS = 2500  # rows of the first set-cover round; uncovered ones are added


@dataclass
class PlanningInputs:
    """CT, tumour mask and label map on ONE grid (the CT's), with names."""

    ct: sitk.Image
    tumor: sitk.Image
    labels: sitk.Image
    label_names: dict[int, str]
    entry_region: sitk.Image | None = None  # allowed skin entry region (uint8, CT grid)


@dataclass
class EvalRegion:
    """Full-resolution crop around the target for coverage figures (arrays z, y, x)."""

    box: tuple[slice, ...]
    tumor: np.ndarray
    target: np.ndarray
    liver: np.ndarray
    band: np.ndarray  # heat-sink band (not ablatable)
    spacing_zyx: np.ndarray

    def points(self, ct: sitk.Image, mask: np.ndarray) -> np.ndarray:
        """LPS centres (N, 3) of the voxels of ``mask`` (crop coordinates)."""
        idx = np.argwhere(mask) + np.array([s.start for s in self.box])
        return index_to_lps_points(ct, idx)


def index_to_lps_points(ct: sitk.Image, idx_zyx: np.ndarray) -> np.ndarray:
    """Voxel indices (N, 3) in (z, y, x) order of ``ct`` -> LPS mm (N, 3)."""
    return voxel_to_lps(ct, idx_zyx[:, ::-1])


@dataclass
class PlanOutput:
    """The JSON result plus the geometry the report and the verifier need."""

    result: PlanResult
    inputs: PlanningInputs
    region: EvalRegion
    zone_centers: np.ndarray
    zone_dirs: np.ndarray
    zone_needle: np.ndarray
    mc_target: np.ndarray


# ----------------------------------------------------------------------------- inputs
def align_inputs(
    ct: sitk.Image,
    tumor: sitk.Image,
    labels: sitk.Image,
    label_names: dict[int, str],
    risk: RiskMap,
    *,
    tumor_source: str = "--tumor",
    labels_source: str = "--labels",
) -> PlanningInputs:
    """Bring tumour and labels onto the CT grid in physical space and check them.

    The returned ``ct`` is the CT in axial array order (a coronal or sagittal stack is
    permuted exactly, :func:`hepanav.imaging.orient.axial_order`; an axial CT is kept as
    it is): the body outline is filled per axial slice by array index.

    Raises
    ------
    InputError
        Empty label map or tumour, no overlap with the CT, no liver label, tumour
        outside the liver; an oblique CT (more than 5 degrees off the patient axes).
    """
    from hepanav.imaging.orient import axial_order

    ct = axial_order(ct, "planning CT")[0]
    labels = _integer_labels(labels, labels_source)
    if not np.any(sitk.GetArrayViewFromImage(labels)):
        raise InputError("label map is empty (no non-zero voxel)", labels_source)
    if not np.any(sitk.GetArrayViewFromImage(tumor)):
        raise InputError("tumour mask is empty (no non-zero voxel)", tumor_source)
    if not same_grid(labels, ct):
        require_overlap(labels, ct, labels_source)
        labels = resample_labels_like(labels, ct)
        if not np.any(sitk.GetArrayViewFromImage(labels)):
            raise InputError("label map lies outside the CT after resampling", labels_source)
    tumor = sitk.Cast(tumor != 0, sitk.sitkUInt8)
    if not same_grid(tumor, ct):
        require_overlap(tumor, ct, tumor_source)
        tumor = resample_mask_like(tumor, ct)
        if not np.any(sitk.GetArrayViewFromImage(tumor)):
            raise InputError("tumour lies outside the CT after resampling", tumor_source)
    lab = sitk.GetArrayViewFromImage(labels)
    present = np.nonzero(np.bincount(lab.ravel()))[0]
    if not set(risk.liver_labels) & set(present.tolist()):
        raise InputError(
            f"no liver label ({', '.join(map(str, risk.liver_labels))}) in the label map",
            labels_source,
        )
    # Check around the tumour only (the grids can be 512 x 512 x 300).
    tum_full = sitk.GetArrayViewFromImage(tumor) > 0
    box = roi_box(tum_full, ct.GetSpacing(), 5.0, tum_full.shape)
    tum, liver = tum_full[box], np.isin(lab[box], risk.liver_labels)
    # A tumour may bulge beyond the liver capsule; most of it must lie in the liver
    # (the segmentation may also have cut it out: grow the liver by 3 mm).
    grown = ndimage.distance_transform_edt(~liver, sampling=ct.GetSpacing()[::-1]) <= 3.0
    inside = float(grown[tum].mean())
    if inside < 0.5:
        raise InputError(
            f"tumour lies outside the liver (only {100 * inside:.0f}% of its voxels are in "
            f"or within 3 mm of liver label {risk.liver_labels})",
            tumor_source,
        )
    nogo = [x for r in risk.structures for x in r.labels]
    if np.isin(lab[box][tum], nogo).mean() > 0.5:
        raise InputError("tumour mask lies mostly inside a no-go structure", tumor_source)
    return PlanningInputs(ct=ct, tumor=tumor, labels=labels, label_names=label_names)


def _integer_labels(labels: sitk.Image, source: str) -> sitk.Image:
    """The label map as uint16: label ids are whole numbers in 0..65535.

    Float label maps holding whole numbers (some converters write them) are accepted; the
    clearance lookup tables are indexed by label value, so negative or fractional values
    would silently pick the wrong rule.
    """
    arr = sitk.GetArrayViewFromImage(labels)
    if labels.GetPixelID() == sitk.sitkUInt16:
        return labels
    if arr.dtype.kind == "f" and not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
        raise InputError("label map has non-integer values; expected label ids", source)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if lo < 0 or hi > 65535:
        raise InputError(f"label ids must lie in 0..65535, found {lo:g}..{hi:g}", source)
    return sitk.Cast(labels, sitk.sitkUInt16)


# ----------------------------------------------------------------------------- target
def evaluation_region(
    inp: PlanningInputs, risk: RiskMap, device: Device, margin_mm: float
) -> EvalRegion:
    """Crop around tumour + margin + one zone: tumour, target, healthy liver, heat-sink band."""
    tum_full = sitk.GetArrayViewFromImage(inp.tumor) > 0
    spacing_zyx = np.asarray(inp.ct.GetSpacing())[::-1]
    # a zone reaches at most one zone length beyond the target
    pad = margin_mm + device.zone_axes_mm[0] + 3.0
    box = roi_box(tum_full, inp.ct.GetSpacing(), pad, tum_full.shape)
    tumor = tum_full[box]
    lab = sitk.GetArrayViewFromImage(inp.labels)[box]
    # tumour + margin from a distance map of the tumour box only (cheaper than the crop)
    inner = roi_box(tumor, inp.ct.GetSpacing(), margin_mm + 1.0, tumor.shape)
    target = np.zeros_like(tumor)
    target[inner] = ndimage.distance_transform_edt(~tumor[inner], sampling=spacing_zyx) <= margin_mm
    liver = np.isin(lab, risk.liver_labels) | tumor
    vessel_labels = [x for r in risk.structures if r.heat_sink for x in r.labels]
    band = heat_sink_band(np.isin(lab, vessel_labels), spacing_zyx, device)
    return EvalRegion(box, tumor, target, liver, band, spacing_zyx)


def target_points(inp: PlanningInputs, region: EvalRegion, f_xyz) -> TargetPoints:
    """Working-grid points: coverable target blocks and healthy liver blocks (LPS)."""
    f_zyx = tuple(f_xyz[::-1])
    want = block_reduce(region.target & ~region.band, f_zyx, np.max, cval=0)
    frac_liver = block_reduce(
        (region.liver & ~region.target).astype(np.float32), f_zyx, np.mean, cval=0
    )
    start = np.array([s.start for s in region.box])
    offset = (np.asarray(f_zyx) - 1) / 2.0

    def centres(mask):
        return index_to_lps_points(inp.ct, np.argwhere(mask) * np.asarray(f_zyx) + start + offset)

    rows = centres(want > 0)
    if not len(rows):
        raise InputError(
            "the whole tumour + margin lies in the heat-sink band of large vessels", "--tumor"
        )
    center = rows.mean(axis=0)
    voxel_ml = float(np.prod(inp.ct.GetSpacing()) * np.prod(f_xyz)) / 1000.0
    return TargetPoints(
        rows=rows,
        liver=centres(frac_liver >= 0.5),
        voxel_ml=voxel_ml,
        center=center,
        radius=float(np.linalg.norm(rows - center, axis=1).max()),
    )


# ----------------------------------------------------------------------------- checks
def exact_clearance(
    inp: PlanningInputs,
    risk: RiskMap,
    entry: np.ndarray,
    tip: np.ndarray,
    report_range_mm: float = 1.0,
) -> tuple[dict[int, float], list[int]]:
    """Clearance (mm) of one trajectory to each no-go label on the full-resolution grid.

    Labels farther than the largest clearance + ``report_range_mm`` are not measured.
    """
    lab = sitk.GetArrayViewFromImage(inp.labels)
    rule_of = label_lookup(risk, 65535 if lab.dtype.itemsize > 1 else 255)
    voxels = rasterise_segment(entry, tip, lambda p: lps_to_voxel(inp.ct, p))
    inside = np.all((voxels >= 0) & (voxels < np.asarray(lab.shape)), axis=1)
    search = max(r.clearance_mm for r in risk.structures) + report_range_mm
    return clearance_along(
        voxels[inside],
        lab,
        np.asarray(inp.ct.GetSpacing())[::-1],
        rule_of,
        [r.clearance_mm for r in risk.structures],
        search,
    )


def _deepest_tips(cand: CandidateSet, sel: Selection) -> dict[int, np.ndarray]:
    tips: dict[int, np.ndarray] = {}
    for z in sel.zones:
        line = int(cand.zone_line[z])
        depth = float((cand.zone_tip[z] - cand.entry[line]) @ cand.direction[line])
        if line not in tips or depth > float(
            (tips[line] - cand.entry[line]) @ cand.direction[line]
        ):
            tips[line] = cand.zone_tip[z]
    return tips


# ----------------------------------------------------------------------------- main
def plan(
    inp: PlanningInputs,
    risk: RiskMap,
    device: Device,
    margin_mm: float,
    *,
    solver: str = "milp",
    paths: dict[str, str] | None = None,
) -> PlanOutput:
    """Plan needles for ``inp`` (all images on the CT grid; see :func:`align_inputs`).

    Parameters
    ----------
    inp : PlanningInputs
    risk : RiskMap
    device : Device
    margin_mm : float
        Safety margin around the tumour, mm (>= 0).
    solver : {"milp", "greedy"}
    paths : dict, optional
        Input file names recorded in the result.
    """
    if not np.isfinite(margin_mm) or margin_mm < 0:
        raise InputError(f"margin must be a finite number >= 0 mm, got {margin_mm:g}", "--margin")
    t0 = time.perf_counter()
    rules = risk.trajectory
    region = evaluation_region(inp, risk, device, margin_mm)
    f_xyz = block_factors(inp.ct.GetSpacing(), rules.grid_mm)
    target = target_points(inp, region, f_xyz)

    lab = sitk.GetArrayViewFromImage(inp.labels)
    tum_full = sitk.GetArrayViewFromImage(inp.tumor) > 0
    roi = roi_box(
        tum_full, inp.ct.GetSpacing(), device.needle_length_mm + margin_mm + 10.0, tum_full.shape
    )
    entry = None if inp.entry_region is None else sitk.GetArrayViewFromImage(inp.entry_region) > 0
    grid = build_work_grid(inp.ct, lab, roi, risk, rules.grid_mm, entry)
    half_diag = 0.5 * float(np.linalg.norm(grid.spacing))
    lateral = rules.lateral_step_mm or 0.4 * device.zone_axes_mm[1]
    cand = build_candidates(
        grid,
        target,
        allowed_directions(rules),
        device,
        lateral,
        shrink_mm=0.5 * half_diag,
        approach=approach_context(grid, rules, target.center),
    )

    coverable = np.asarray(cand.cover.sum(axis=1)).ravel() > 0
    sel, rows_used, solve_time = _solve(inp, risk, cand, coverable, device, solver)
    problem = _Problem(inp, risk, device, margin_mm, region, cand, coverable)
    solved = _Solved(sel, rows_used, solve_time)
    return _assemble(problem, solved, time.perf_counter() - t0, paths or {})


#: Note on a plan shaped by the optimiser's wall-clock budget (``optimiser_time_limited``).
TIME_LIMITED_NOTE = (
    "the optimiser stopped at its time limit (optimiser_time_limit_s = {limit:g} s), so the "
    "plan is not reproducible: a rerun (or a faster or less loaded machine) may give a "
    "different plan, possibly with fewer needles."
)


def start_rows(points: np.ndarray, candidates: np.ndarray, limit: int) -> np.ndarray:
    """Rows of the first set-cover round: a sub-lattice, then the target's outer layer.

    A regular sub-lattice of the working grid first (every 2nd, 3rd, ... point so that it
    takes at most 60% of ``limit``; it leaves smaller gaps than a random sample), then
    boundary rows (a missing neighbour), where zones fail to cover first, then the rest.

    Parameters
    ----------
    points : ndarray (R, 3)
        All rows (working-grid points, LPS mm).
    candidates : ndarray of int
        Indices of the coverable rows.
    limit : int
    """
    if candidates.size <= limit:
        return candidates
    p = points[candidates]
    step = np.array(
        [
            np.min(np.diff(np.unique(np.round(p[:, a], 3))), initial=1.0)
            if np.unique(np.round(p[:, a], 3)).size > 1
            else 1.0
            for a in range(3)
        ]
    )
    idx = np.rint((p - p.min(axis=0)) / step).astype(np.int64)
    shape = idx.max(axis=0) + 3
    grid = np.zeros(shape, dtype=bool)
    grid[tuple((idx + 1).T)] = True
    interior = ndimage.binary_erosion(grid)[tuple((idx + 1).T)]
    stride = 2  # coarsen the lattice until it takes at most 60% of the rows
    while np.all(idx % stride == 0, axis=1).sum() > 0.6 * limit:
        stride += 1
    lattice = np.all(idx % stride == 0, axis=1)
    rng = np.random.default_rng(0)  # spread each group over the whole target
    order = np.concatenate(
        [
            np.nonzero(lattice)[0],
            rng.permutation(np.nonzero(~interior & ~lattice)[0]),
            rng.permutation(np.nonzero(interior & ~lattice)[0]),
        ]
    )
    return candidates[order[:limit]]


def line_conflicts(cand: CandidateSet, min_spacing_mm: float) -> list[tuple[int, int]]:
    """Candidate lines whose segments (entry -> deepest candidate tip) pass too close."""
    if not len(cand.entry):
        return []
    deepest = cand.entry.copy()
    depth = np.einsum(
        "ij,ij->i", cand.zone_tip - cand.entry[cand.zone_line], cand.direction[cand.zone_line]
    )
    order = np.argsort(depth)
    deepest[cand.zone_line[order]] = cand.zone_tip[order]  # the last write is the deepest
    return conflicting_pairs(cand.entry, deepest, min_spacing_mm)


def _solve(inp, risk, cand, coverable, device, solver):
    """Set cover with lazily added rows and lazily banned lines (exact clearance check)."""
    rules = risk.trajectory
    rows_all = np.nonzero(coverable)[0]
    if not rows_all.size:
        return Selection(np.zeros(0, int), np.zeros(0, int), "no candidate", 0.0, solver), 0, 0.0
    active = np.zeros(len(cand.rows), dtype=bool)
    active[start_rows(cand.rows, rows_all, MAX_START_ROWS)] = True
    conflicts = line_conflicts(cand, rules.min_needle_spacing_mm)
    banned: set[int] = set()
    checked: dict[tuple, bool] = {}  # exact clearance results, by line and tip
    total = 0.0
    budget = rules.optimiser_time_limit_s
    sel = None
    time_limited = False  # did the wall-clock budget shape any MILP stage?
    for round_no in range(MAX_ROUNDS):
        rows = np.nonzero(active & coverable)[0]
        remaining = budget - total
        if solver == "greedy":
            sel = greedy_cover(
                cand,
                rows,
                device.max_positions,
                banned,
                conflicts=conflicts,
                parallel=rules.parallel,
            )
        elif round_no == 0 or sel is None or not sel.zones.size:
            # The MILP gets the whole budget once; later rounds only add a few rows or
            # drop a needle that failed the exact clearance check: repaired greedily.
            greedy = greedy_cover(
                cand,
                rows,
                device.max_positions,
                banned,
                conflicts=conflicts,
                parallel=rules.parallel,
            )
            sel = reduced_milp_cover(
                cand,
                rows,
                device.max_positions,
                greedy,
                banned_lines=banned,
                conflicts=conflicts,
                parallel=rules.parallel,
                time_limit_s=remaining,
                previous=None if sel is None else sel.lines,
            )
            time_limited |= sel.time_limited
            if not sel.zones.size or sel.key(cand.zone_cost_ml) > greedy.key(cand.zone_cost_ml):
                sel = Selection(
                    greedy.zones,
                    greedy.lines,
                    f"greedy (milp: {sel.status})",
                    sel.time_s + greedy.time_s,
                    "greedy",
                )
        else:
            # keep the MILP choice (minus banned needles) and cover the added rows greedily
            repaired = greedy_cover(
                cand,
                rows,
                device.max_positions,
                banned,
                initial=None if sel is None else sel.zones,
                conflicts=conflicts,
                parallel=rules.parallel,
            )
            sel = Selection(
                repaired.zones,
                repaired.lines,
                f"{sel.status}; repaired: {repaired.status}",
                repaired.time_s,
                repaired.solver,
                uncovered=repaired.uncovered,
            )
        total += sel.time_s
        changed = False
        covered = np.asarray(cand.cover[:, sel.zones].sum(axis=1)).ravel() > 0
        missing = coverable & ~covered & ~active
        if missing.any():
            active |= missing
            changed = True
        for line, tip in _deepest_tips(cand, sel).items():
            if _violates(inp, risk, cand, checked, line, tip):
                banned.add(line)
                changed = True
        if not changed:
            break
        # newly banned lines may leave rows uncoverable
        ok_z = ~np.isin(cand.zone_line, list(banned))
        coverable = coverable & (np.asarray(cand.cover[:, ok_z].sum(axis=1)).ravel() > 0)
    if sel is not None and banned:
        # never return a needle that failed the exact clearance check (rounds ran out)
        keep = ~np.isin(cand.zone_line[sel.zones], list(banned))
        if not keep.all():
            zones = sel.zones[keep]
            sel = Selection(
                zones,
                np.unique(cand.zone_line[zones]),
                "incomplete",
                sel.time_s,
                sel.solver,
                uncovered=max(1, sel.uncovered),
            )
    if solver != "greedy" and sel is not None:
        # Keep the MILP-based plan only if greedy on the final rows (lines checked exactly,
        # violators banned) is not better: complete first, then fewer needles, then less
        # healthy liver.
        rows = np.nonzero(active & coverable)[0]
        for _ in range(MAX_ROUNDS):
            greedy = greedy_cover(
                cand,
                rows,
                device.max_positions,
                banned,
                conflicts=conflicts,
                parallel=rules.parallel,
            )
            bad = [
                line
                for line, tip in _deepest_tips(cand, greedy).items()
                if _violates(inp, risk, cand, checked, line, tip)
            ]
            if not bad:
                break
            banned.update(bad)
        else:
            greedy = None

        if (
            greedy is not None
            and greedy.zones.size
            and greedy.key(cand.zone_cost_ml) < sel.key(cand.zone_cost_ml)
        ):
            sel = Selection(
                greedy.zones,
                greedy.lines,
                "greedy: a better cover (fewer uncovered points, needles or liver ml) "
                f"than the MILP's ({sel.status})",
                sel.time_s + greedy.time_s,
                "greedy",
            )
        # Polish: the MILP over the needles of both (all checked exactly) on the final rows.
        pool = sel.lines if greedy is None else np.union1d(sel.lines, greedy.lines)
        pool = np.setdiff1d(pool, list(banned))
        if pool.size:
            keep = np.nonzero(np.isin(cand.zone_line, pool))[0]
            polished = milp_cover(
                cand,
                rows,
                device.max_positions,
                max(1, pool.size),
                banned_lines=banned,
                conflicts=conflicts,
                parallel=rules.parallel,
                time_limit_s=max(2.0, 0.5 * budget),
                keep_zones=keep,
            )
            total += polished.time_s
            time_limited |= polished.time_limited
            if polished.zones.size and polished.key(cand.zone_cost_ml) < sel.key(cand.zone_cost_ml):
                polished.status = pool_status(
                    polished.status,
                    "the final needles",
                    pool.size,
                    int(np.unique(cand.zone_line).size),
                )
                sel = polished
    if sel is not None:
        sel.time_limited = time_limited
    return sel, int((active & coverable).sum()), total


def _violates(inp, risk, cand, checked: dict, line: int, tip: np.ndarray) -> bool:
    """Exact clearance check of one candidate line up to ``tip``, cached in ``checked``."""
    key = (line, tuple(np.round(tip, 2)))
    if key not in checked:
        checked[key] = bool(exact_clearance(inp, risk, cand.entry[line], tip)[1])
    return checked[key]


def blocked_by_group(reasons: Counter, names: dict[int, str], risk: RiskMap) -> Counter:
    """Rejections "blocked by <label id>" added up per risk-map group, as
    ``Counter({(group text, clearance text): n})``.

    A TotalSegmentator map gives every rib its own label (rib_left_1 ... rib_right_12):
    counted per label, 14 ribs that together block most trajectories each stay below the
    other reasons. Counted per group (the grouping of the absent-structure list), the
    group is named with the structures that blocked (:func:`describe_label_ids`, e.g.
    "bone: ribs right 6-12, costal cartilages"). A label in no group keeps its own name.
    """
    from hepanav.imaging.labels import describe_label_ids
    from hepanav.planning.risk import TOTALSEGMENTATOR_NAMES

    table = {**TOTALSEGMENTATOR_NAMES, **names}
    per_group: dict[str, tuple[object, Counter]] = {}
    for why, n in reasons.items():
        if not why.startswith("blocked by "):
            continue
        label = int(why.removeprefix("blocked by "))
        rule = next((r for r in risk.structures if label in r.labels), None)
        key = rule.name if rule is not None else structure_name(label, names, risk)
        per_group.setdefault(key, (rule, Counter()))[1][label] += n
    out: Counter = Counter()
    for key, (rule, labels) in per_group.items():
        if rule is None:
            text, clearance = key, ""
        else:
            text = f"{key}: {describe_label_ids(labels, table)}"
            clearance = f" (clearance {rule.clearance_mm:g} mm)"
        # "; " separates the reasons (the report splits on it): none inside a name.
        out[(text.replace(";", ","), clearance)] = sum(labels.values())
    return out


def _behind_text(cand: CandidateSet, names: dict[int, str], risk: RiskMap) -> str:
    """' The tumour lies behind X from most entries.' when one structure group (risk-map
    group, :func:`blocked_by_group`) blocks most lines."""
    blocked = blocked_by_group(cand.reasons, names, risk)
    total = sum(cand.reasons.values())
    if not blocked or not total:
        return ""
    (name, _), n = blocked.most_common(1)[0]
    if n < 0.5 * total:
        return ""
    share = "every" if n == total else "most"
    return f" The tumour lies behind {name} from {share} entries."


def _reason_text(cand: CandidateSet, names: dict[int, str], risk: RiskMap) -> str:
    """The "Of N candidate trajectories, rejected: a% why; b% why; ..." text (the 4 commonest
    reasons; structures counted per risk-map group, :func:`blocked_by_group`)."""
    total = sum(cand.reasons.values())
    if not total:
        return ""
    named: Counter = Counter(
        {why: n for why, n in cand.reasons.items() if not why.startswith("blocked by ")}
    )
    for (text, clearance), n in blocked_by_group(cand.reasons, names, risk).items():
        named[f"cross or pass within clearance of {text}{clearance}"] += n
    parts = [f"{100 * n / total:.0f}% {why}" for why, n in named.most_common(4)]
    return f"Of {cand.lines_checked} candidate trajectories, rejected: " + "; ".join(parts)


@dataclass
class _Problem:
    """What the optimiser was given: inputs, rules, crop and candidate set."""

    inp: PlanningInputs
    risk: RiskMap
    device: Device
    margin_mm: float
    region: EvalRegion
    cand: CandidateSet
    coverable: np.ndarray  # (R,) bool: target rows some admissible zone covers


@dataclass
class _Solved:
    """What the optimiser returned."""

    sel: Selection
    rows_used: int  # target rows in the final set-cover round
    solve_time_s: float


def _assemble(problem: _Problem, solved: _Solved, elapsed: float, paths: dict) -> PlanOutput:
    """Needles, probes, coverage, clearance and robustness figures of the chosen zones."""
    inp, risk, device, margin_mm = problem.inp, problem.risk, problem.device, problem.margin_mm
    region, cand, coverable = problem.region, problem.cand, problem.coverable
    sel, rows_used, solve_time = solved.sel, solved.rows_used, solved.solve_time_s
    rules = risk.trajectory
    axes = device.zone_axes_mm
    tips = _deepest_tips(cand, sel)
    order = sorted(tips, key=lambda ln: tuple(cand.entry[ln]))
    needle_no = {ln: i + 1 for i, ln in enumerate(order)}
    needles, probes = [], []
    overall_min = None
    for ln in order:
        entry, tip, d = cand.entry[ln], tips[ln], cand.direction[ln]
        per_label, _ = exact_clearance(inp, risk, entry, tip, report_range_mm=REPORT_RANGE_MM)
        named = {
            structure_name(k, inp.label_names, risk): round(v, 2) for k, v in per_label.items()
        }
        mins = min(per_label.values()) if per_label else float("inf")
        overall_min = mins if overall_min is None else min(overall_min, mins)
        needles.append(
            Needle(
                needle=needle_no[ln],
                entry_lps_mm=tuple(entry),
                tip_lps_mm=tuple(tip),
                direction=tuple(d),
                length_mm=float(np.linalg.norm(tip - entry)),
                angle_from_axial_deg=float(angle_from_axial_deg(d)),
                min_clearance_mm=float(mins) if np.isfinite(mins) else None,
                clearance_mm=named,
            )
        )
        zones = [z for z in sel.zones if cand.zone_line[z] == ln]
        zones.sort(key=lambda z: -float((cand.zone_tip[z] - entry) @ d))
        for pos, z in enumerate(zones, start=1):
            probes.append(
                Probe(
                    needle=needle_no[ln],
                    position=pos,
                    entry_lps_mm=tuple(entry),
                    tip_lps_mm=tuple(cand.zone_tip[z]),
                    zone_center_lps_mm=tuple(cand.zone_center[z]),
                    zone_axes_mm=axes,
                    zone_direction=tuple(d),
                    device=device.name,
                )
            )
    centers = np.array([p.zone_center_lps_mm for p in probes]).reshape(-1, 3)
    dirs = np.array([p.zone_direction for p in probes]).reshape(-1, 3)
    needle_of = np.array([p.needle for p in probes], dtype=int)

    tumor_pts = region.points(inp.ct, region.tumor)
    target_pts = region.points(inp.ct, region.target)
    band_t = region.band[region.tumor]
    band_g = region.band[region.target]

    def covered(points, band):  # heat-sink band voxels never count as ablated
        if not len(centers):
            return 0.0
        return float((inside_zones(points, centers, dirs, axes) & ~band).mean())

    cov_tumor = covered(tumor_pts, band_t)
    cov_target = covered(target_pts, band_g)
    healthy = region.liver & ~region.tumor & ~region.band
    # Healthy liver volume on every 2nd voxel per axis when the crop is large (error << 1 ml)
    stride = 2 if healthy.sum() > 300_000 else 1
    sub = np.zeros_like(healthy)
    sub[::stride, ::stride, ::stride] = healthy[::stride, ::stride, ::stride]
    healthy_pts = region.points(inp.ct, sub)
    voxel_ml = float(np.prod(inp.ct.GetSpacing())) * stride**3 / 1000.0
    healthy_ml = (
        float(inside_zones(healthy_pts, centers, dirs, axes).sum()) * voxel_ml
        if len(centers)
        else 0.0
    )

    rng = np.random.default_rng(1)
    pick_g = rng.choice(len(target_pts), size=min(len(target_pts), 4000), replace=False)
    pick_t = rng.choice(len(tumor_pts), size=min(len(tumor_pts), 4000), replace=False)

    def under_error(points, band, without_error):  # coverage per Monte Carlo draw
        if not len(centers) or rules.placement_error_sd_mm <= 0:
            return np.full(1, without_error)
        return coverage_under_error(
            points,
            centers,
            dirs,
            needle_of,
            axes,
            rules.placement_error_sd_mm,
            rules.monte_carlo_draws,
            band,
        )

    mc_g = under_error(target_pts[pick_g], band_g[pick_g], cov_target)
    mc_t = under_error(tumor_pts[pick_t], band_t[pick_t], cov_tumor)

    band_fraction = float(band_g.mean())
    feasible = bool(needles) and cov_target >= rules.coverage_goal
    reasons = _reason_text(cand, inp.label_names, risk)
    if not needles:
        message = (
            f"No feasible plan: no trajectory reaches tumour + {margin_mm:g} mm within the "
            f"constraints (needle {device.needle_length_mm:g} mm, angle <= "
            f"{rules.max_angle_from_axial_deg:g} deg from axial, clearances of the risk "
            f"map). {reasons}." + _behind_text(cand, inp.label_names, risk)
        )
    elif not feasible:
        unreachable = 1.0 - float(coverable.mean()) if len(coverable) else 1.0
        message = (
            f"No feasible plan covering tumour + {margin_mm:g} mm: the best plan "
            f"({len(needles)} needles) covers {100 * cov_target:.1f}% (goal "
            f"{100 * rules.coverage_goal:.0f}%). {100 * unreachable:.1f}% of the target "
            f"cannot be reached by any admissible zone; {100 * band_fraction:.1f}% lies in "
            f"the heat-sink band of large vessels. {reasons}."
        )
    else:
        message = (
            f"{len(needles)} needle(s), {len(probes)} ablation position(s) cover "
            f"{100 * cov_target:.1f}% of tumour + {margin_mm:g} mm "
            f"({100 * cov_tumor:.1f}% of the tumour)."
        )
    result = PlanResult(
        feasible=feasible,
        message=message,
        device=device,
        margin_mm=margin_mm,
        probes=probes,
        needles=needles,
        needle_count=len(needles),
        coverage_tumor=cov_tumor,
        coverage_target=cov_target,
        min_clearance_mm=None
        if overall_min is None or not np.isfinite(overall_min)
        else float(overall_min),
        healthy_liver_ablated_ml=healthy_ml,
        heat_sink_limited_fraction=band_fraction,
        placement_error_sd_mm=rules.placement_error_sd_mm,
        coverage_probability=float((mc_g >= rules.coverage_goal).mean()),
        coverage_target_mean_under_error=float(mc_g.mean()),
        coverage_tumor_probability=float((mc_t >= rules.coverage_goal).mean()),
        candidate_lines=cand.lines_checked,
        candidate_lines_valid=int(len(cand.entry)),
        candidate_zones=int(cand.cover.shape[1]),
        target_points=rows_used,
        optimiser=sel.solver,
        optimiser_time_s=solve_time,
        optimiser_status=sel.status,
        optimiser_time_limited=sel.time_limited,
        planning_time_s=elapsed,
        rules=rules,
        inputs=paths,
    )
    if sel.time_limited and needles:
        # A NOTE in the message (and the flag), not in ``warnings``: those are doubts
        # about the inputs; this one is about the run.
        result.message += " NOTE: " + TIME_LIMITED_NOTE.format(limit=rules.optimiser_time_limit_s)
    return PlanOutput(
        result=result,
        inputs=inp,
        region=region,
        zone_centers=centers,
        zone_dirs=dirs,
        zone_needle=needle_of,
        mc_target=mc_g,
    )
