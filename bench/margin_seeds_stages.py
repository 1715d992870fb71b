"""Wall and CPU seconds per stage of ``hepanav margin`` from two CTs and two seeds.

The same command as ``python -m bench margin_seeds`` (the ``make demo`` phantom case, no
masks), run in this process with the main stages wrapped: for each, the wall time
(``time.perf_counter``) and the CPU time of the whole process (``time.process_time``,
every thread included). CPU seconds are the figure to compare under load; wall seconds
are noisy on a shared machine. Stages nest (the registration's own stages are inside
``register``). Comparing two versions: run this module once per checkout
(``PYTHONPATH=OTHER/src`` puts another worktree's package first), alternating.

Run: ``.venv/bin/python -m bench.margin_seeds_stages [--cprofile FILE]``.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import tempfile
import time
from pathlib import Path

# (module, attribute): the stages timed, where the caller looks them up.
STAGES = (
    ("hepanav.segmentation.pipeline", "read_image"),
    ("hepanav.segmentation.pipeline", "segment_image"),
    ("hepanav.segmentation.pipeline", "write_outputs"),
    ("hepanav.segmentation.pipeline", "masks_for_margin"),
    ("hepanav.margin.pipeline", "read_inputs"),
    ("hepanav.margin.pipeline", "register_pre_to_post"),
    ("hepanav.margin.registration", "_working_grid"),
    ("hepanav.margin.registration", "_working_grids"),
    ("hepanav.margin.registration", "_region_mask"),
    ("hepanav.margin.registration", "_region_masks"),
    ("hepanav.margin.registration", "_run"),
    ("hepanav.margin.registration", "_as_displacement_field"),
    ("hepanav.margin.registration", "local_stage"),
    ("hepanav.margin.pipeline", "measure_margin"),
    ("hepanav.margin.pipeline", "margin_uncertainty"),
    ("hepanav.margin.pipeline", "write_segments"),
    ("hepanav.margin.mesh", "write_surface_meshes"),
    ("hepanav.margin.report", "write_report"),
)


def _wrap(table: dict, name: str, fn):
    @functools.wraps(fn)
    def timed(*args, **kwargs):
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            entry = table.setdefault(name, [0.0, 0.0, 0])
            entry[0] += time.perf_counter() - w0
            entry[1] += time.process_time() - c0
            entry[2] += 1

    return timed


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cprofile", type=Path, help="also write a cProfile file here")
    args = parser.parse_args(argv)

    import hepanav
    from hepanav.phantoms.ablation_case import make_ablation_case

    case = Path(tempfile.gettempdir()) / "hepanav-bench-margin-demo"
    if not (case / "case.json").is_file():
        make_ablation_case(case, seed=0, truth_displacement=False)  # as bench margin_seeds
    truth = json.loads((case / "truth.json").read_text(encoding="utf-8"))
    table: dict[str, list] = {}
    import hepanav.margin.mesh  # noqa: F401  (imported lazily by the pipeline)
    import hepanav.margin.report  # noqa: F401

    for module, attr in STAGES:
        mod = importlib.import_module(module)
        if hasattr(mod, attr):
            setattr(mod, attr, _wrap(table, attr, getattr(mod, attr)))
    from hepanav.cli import app

    out = Path(tempfile.mkdtemp(prefix="hepanav-stages-")) / "out"
    command = [
        "margin", "--pre", str(case / "pre_ct.nii.gz"), "--post", str(case / "post_ct.nii.gz"),
        "--tumor-seed", ",".join(map(str, truth["tumor_center_pre_lps"])),
        "--ablation-seed", ",".join(map(str, truth["zone_center_post_lps"])),
        "--out", str(out),
    ]  # fmt: skip
    profiler = None
    if args.cprofile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        app(command, standalone_mode=False)
    finally:
        total = (time.perf_counter() - w0, time.process_time() - c0)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(args.cprofile))
    result = json.loads((out / "margin.json").read_text(encoding="utf-8"))
    print(f"hepanav from {Path(hepanav.__file__).parent}")
    print(f"{'stage':<26}{'calls':>6}{'wall s':>9}{'CPU s':>9}")
    for name, (wall, cpu, calls) in table.items():
        print(f"{name:<26}{calls:>6}{wall:>9.1f}{cpu:>9.1f}")
    print(f"{'TOTAL (command)':<26}{'':>6}{total[0]:>9.1f}{total[1]:>9.1f}")
    reg = result["registration"]
    print(
        f"MAM {result['min_margin_mm']:.2f} mm (true {truth['min_margin_mm']:.2f}); "
        f"registration {reg['mode']}, {reg['seconds']:.1f} s: {reg['method']}"
    )
    return {"stages": table, "total": total, "mam_mm": result["min_margin_mm"]}


if __name__ == "__main__":
    main()
