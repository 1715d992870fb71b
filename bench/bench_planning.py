"""Benchmark of ``hepanav.planning``: 3 cm and 5 cm tumours (+5 mm) on a 512 x 512 x 300 scan.

The MILP planner (HiGHS via scipy.optimize.milp, time-limited) is compared in the same
run with the obvious baseline, a greedy set cover on the SAME candidate set: ratio of
planning time and of needle count. Run: ``.venv/bin/python -m bench planning``.
"""

from __future__ import annotations

import time

from hepanav.phantoms.planning import TORSO_LABELS, make_torso, place_tumor
from hepanav.planning.devices import load_device
from hepanav.planning.planner import align_inputs, plan
from hepanav.planning.risk import load_risk_map

SIZE = (512, 512, 300)
SPACING = (0.8, 0.8, 1.0)


def main() -> dict:
    t0 = time.perf_counter()
    ct, labels, _ = make_torso(SIZE, SPACING, seed=0)
    print(f"scan {SIZE} voxels at {SPACING} mm generated in {time.perf_counter() - t0:.1f} s")
    risk = load_risk_map()
    device = load_device("neuwave-pr-65w-10min")
    results = {}
    for diameter in (30.0, 50.0):
        ct_t, tumor, centre = place_tumor(ct, labels, diameter, seed=1)
        inp = align_inputs(ct_t, tumor, labels, TORSO_LABELS, risk)
        row = {}
        for solver in ("milp", "greedy"):
            t = time.perf_counter()
            res = plan(inp, risk, device, 5.0, solver=solver).result
            row[solver] = {
                "total_s": round(time.perf_counter() - t, 2),
                "optimiser_s": round(res.optimiser_time_s, 2),
                "status": res.optimiser_status,
                "needles": res.needle_count,
                "positions": len(res.probes),
                "coverage_target": round(res.coverage_target, 4),
                "healthy_liver_ml": round(res.healthy_liver_ablated_ml, 1),
                "candidate_lines": res.candidate_lines,
                "candidate_lines_valid": res.candidate_lines_valid,
                "candidate_zones": res.candidate_zones,
                "target_rows": res.target_points,
            }
        m, g = row["milp"], row["greedy"]
        row["time_ratio_milp_over_greedy"] = round(m["total_s"] / g["total_s"], 2)
        row["needle_ratio_milp_over_greedy"] = round(m["needles"] / max(g["needles"], 1), 2)
        print(
            f"{diameter:.0f} mm tumour at {tuple(round(c) for c in centre)}: "
            f"MILP {m['total_s']} s (optimiser {m['optimiser_s']} s, {m['status']}), "
            f"{m['needles']} needles / {m['positions']} positions, coverage "
            f"{100 * m['coverage_target']:.1f}%; greedy {g['total_s']} s, {g['needles']} "
            f"needles; candidates {m['candidate_lines']} lines checked, "
            f"{m['candidate_lines_valid']} valid, {m['candidate_zones']} zones, "
            f"{m['target_rows']} rows; ratios time {row['time_ratio_milp_over_greedy']}, "
            f"needles {row['needle_ratio_milp_over_greedy']}"
        )
        results[f"{diameter:.0f}mm"] = row
    return results


if __name__ == "__main__":
    main()
