"""CPU seconds of ``measure_margin`` on a realistic pair (true transform), the coarse-grid
local sphere fit (``hepanav.margin.surface.LOCAL_SPHERE``) off and on, interleaved twice
in one process (docs/margin.md, "Local sphere fit on coarse grids").

Run: ``HEPANAV_TEST_DATA=/work/shared/data .venv/bin/python -m bench.margin_local_sphere_speed 2``
(the pair's seed; default 2).
"""

from __future__ import annotations

import sys
import time


def main(argv: list[str]) -> None:
    import hepanav.margin.surface as surface
    from bench.bench_margin_pairs import pair_case
    from hepanav.margin.measure import measure_margin
    from hepanav.phantoms.realistic_pair import true_post_to_pre

    seed = int(argv[0]) if argv else 2
    case, pair = pair_case(seed)
    truth = true_post_to_pre(case, pair)
    runs: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    for _ in range(2):
        for flag in (False, True):
            surface.LOCAL_SPHERE = flag
            cpu, wall = time.process_time(), time.perf_counter()
            m = measure_margin(pair.pre_tumor, pair.post_ablation, tumor_transform=truth)
            runs[flag].append(
                (time.process_time() - cpu, time.perf_counter() - wall, m.min_margin_mm)
            )
    for flag, v in runs.items():
        print(
            f"LOCAL_SPHERE {flag}: cpu s {[round(a, 2) for a, _, _ in v]}, "
            f"wall s {[round(b, 2) for _, b, _ in v]}, MAM {v[0][2]:.2f} mm "
            f"(true {pair.true_mam_mm:.2f})",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
