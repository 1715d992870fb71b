"""Tumour-only Dice / MSD on the cached phantom cases of ``bench.eval_segmentation``.

For developing the tumour path quickly (no zone, no margin): one line per case with
the voxel counts and false positives / negatives. Module constants of
``hepanav.segmentation.grow`` can be overridden for an experiment as NAME=VALUE.

Run: ``HEPANAV_TEST_DATA=/work/shared/data .venv/bin/python -m bench.tumour_quick dev
[SEED ...] [SMALL_FIT_VOXELS=4.0 ...]`` (docs/segmentation.md, "Small tumours").
"""

from __future__ import annotations

import ast
import sys
import time

import numpy as np
import SimpleITK as sitk


def main(argv: list[str] | None = None) -> None:
    from bench import eval_segmentation as ev
    from hepanav.segmentation import grow
    from hepanav.segmentation.seeds import make_seeds
    from hepanav.segmentation.tumor import segment_tumor

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    args = list(sys.argv[1:] if argv is None else argv)
    for a in [a for a in args if "=" in a]:
        name, value = a.split("=", 1)
        setattr(grow, name, type(getattr(grow, name))(ast.literal_eval(value)))
        print("set", name, getattr(grow, name))
    args = [a for a in args if "=" not in a]
    only = {int(s) for s in args[1:]}
    for case in ev.cases(args[0] if args else "dev"):
        if only and case["seed"] not in only:
            continue
        data = ev.build(case)
        t0 = time.perf_counter()
        label = (
            f"{case['base']:10s} {case['seed']:4d} r={case['radius']:5.1f} "
            f"c={case['contrast']:+5.0f}"
        )
        try:
            seg = segment_tumor(data.pre_ct, make_seeds(data.pre_ct, [data.tumor.center]))
        except Exception as exc:  # noqa: BLE001 - a refused case is a result
            print(label, "ERROR", exc, flush=True)
            continue
        d, m = ev.agreement(seg.mask, data.pre_tumor)
        a = sitk.GetArrayViewFromImage(seg.mask) > 0
        t = sitk.GetArrayViewFromImage(data.pre_tumor) > 0
        print(
            f"{label} dice={d:.3f} msd={m:.2f} n={int(a.sum())} truth={int(t.sum())} "
            f"fp={int(np.sum(a & ~t))} fn={int(np.sum(~a & t))} "
            f"{'PASS' if d >= 0.9 and m <= 1.0 else 'fail'} {time.perf_counter() - t0:.1f}s",
            flush=True,
        )


if __name__ == "__main__":
    main()
