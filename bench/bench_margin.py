"""Ablation-margin benchmark: 512 x 512 x 300 grid (0.8 x 0.8 x 1.0 mm), 3 cm tumour.

1. Margin figures from aligned masks (true post-space tumour and the ablation
   zone on the full post grid): ``hepanav.margin.measure.measure_margin`` against
   the baseline that runs SciPy's Euclidean distance transform (with the voxel
   spacing) on the full volume, inside and outside the zone, and reads the signed
   distance at the tumour's boundary voxels. Target <= 2 s.
2. The whole pipeline from files with deformable registration (read, register,
   measure, write margin.json, margin map and report) against the same pipeline
   with the volume baseline: the pre tumour resampled onto the full post grid
   through the registration, then the full-volume distance transform. Target <= 60 s.

3. Registration on 1 core against 2 cores (``RegistrationSettings.threads``), both
   modes (liver-driven, lesion-region), same inputs, same run: the speed-up from the
   threads (the default is every core the machine offers).
4. ``hepanav margin`` from two CTs and two clicks (``--tumor-seed``/``--ablation-seed``,
   no masks: segmentation, lesion-region registration, measurement, report) on the
   ``make demo`` phantom case, end to end in a subprocess, pinned to one core
   (``sched_setaffinity``; HepaNav then runs every stage on 1 thread) and on every core
   (the default), same run. Target <= 60 s. ``python -m bench margin_seeds`` runs only this.

Run: ``.venv/bin/python -m bench margin``. The case is generated once by
``hepanav.phantoms`` into ``$TMPDIR/hepanav-bench-margin`` and reused.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

SIZE = (512, 512, 300)
SPACING = (0.8, 0.8, 1.0)
CASE = Path(tempfile.gettempdir()) / "hepanav-bench-margin"


def make_case() -> Path:
    """The benchmark case (generated on first use; a 3 cm tumour, radius 15 mm)."""
    from hepanav.phantoms.ablation_case import make_ablation_case

    if not (CASE / "case.json").is_file():
        print(f"generating the {SIZE} case in {CASE} (once) ...")
        make_ablation_case(CASE, seed=0, spacing_mm=SPACING, size=SIZE, tumor={"radius_mm": 15.0})
    return CASE


def edt_baseline(tumor: sitk.Image, zone: sitk.Image) -> float:
    """MAM (mm) by full-volume distance transforms of the zone, read at tumour boundary voxels.

    The usual approach: signed distance at voxel centres (positive inside the zone),
    sampled on the tumour's boundary voxels (tumour voxels with a background
    6-neighbour). Both masks on the same grid.
    """
    sampling = tuple(reversed(zone.GetSpacing()))
    inside = sitk.GetArrayViewFromImage(zone) > 0
    signed = ndimage.distance_transform_edt(inside, sampling=sampling)
    signed -= ndimage.distance_transform_edt(~inside, sampling=sampling)
    t = sitk.GetArrayViewFromImage(tumor) > 0
    boundary = t & ~ndimage.binary_erosion(t)
    return float(signed[boundary].min())


def _clock(fn, *args, **kwargs):
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - started


def bench_aligned(case: Path, truth: dict) -> dict:
    from hepanav.margin.measure import measure_margin

    tumor = sitk.ReadImage(str(case / "truth" / "post_tumor.nii.gz"))
    zone = sitk.ReadImage(str(case / "post_ablation.nii.gz"))
    measure_margin(tumor, zone)  # warm-up (imports, caches)
    runs = [_clock(measure_margin, tumor, zone) for _ in range(3)]
    ours, seconds = runs[0][0], float(np.median([s for _, s in runs]))
    base_mam, base_seconds = _clock(edt_baseline, tumor, zone)
    out = {
        "seconds": round(seconds, 3),
        "baseline_seconds": round(base_seconds, 3),
        "speedup": round(base_seconds / seconds, 1),
        "mam_mm": round(ours.min_margin_mm, 3),
        "baseline_mam_mm": round(base_mam, 3),
        "true_mam_mm": round(truth["min_margin_mm"], 3),
    }
    print(
        f"aligned masks: {seconds:.2f} s (median of 3) vs full-volume EDT {base_seconds:.2f} s "
        f"-> {out['speedup']}x; MAM {out['mam_mm']} mm, baseline {out['baseline_mam_mm']} mm, "
        f"truth {out['true_mam_mm']} mm"
    )
    return out


def bench_pipeline(case: Path, truth: dict) -> dict:
    from hepanav.imaging.resample import resample_mask_like
    from hepanav.margin.demo import phantom_case_inputs
    from hepanav.margin.pipeline import run_margin

    inputs = phantom_case_inputs(case)
    marks: dict[str, float] = {}

    def step(name: str) -> None:
        marks[name] = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        run, seconds = _clock(run_margin, inputs, Path(tmp) / "out", step=step)
    reg_seconds = run.registration.seconds
    # Baseline: the same reading and registration, then the volume approach on the full
    # post grid (the pre tumour resampled through the registration, full-volume EDT).
    read_and_register = marks["measure"] - marks["read"]

    def volume_baseline():
        tumor_post = resample_mask_like(
            run.images["tumor"], run.images["ablation"], run.registration.transform
        )
        return edt_baseline(tumor_post, run.images["ablation"])

    base_mam, base_extra = _clock(volume_baseline)
    base_seconds = read_and_register + base_extra
    r = run.result
    out = {
        "seconds": round(seconds, 1),
        "registration_seconds": round(reg_seconds, 1),
        "baseline_seconds": round(base_seconds, 1),
        "speedup": round(base_seconds / seconds, 2),
        "liver_dice": round(r.registration.liver_dice, 4),
        "tre_mean_mm": round(r.registration.tre_mm["mean"], 2),
        "tre_max_mm": round(r.registration.tre_mm["max"], 2),
        "mam_mm": round(r.min_margin_mm, 2),
        "baseline_mam_mm": round(base_mam, 2),
        "true_mam_mm": round(truth["min_margin_mm"], 2),
    }
    print(
        f"whole pipeline: {seconds:.1f} s (registration {reg_seconds:.1f} s) vs volume "
        f"baseline {base_seconds:.1f} s -> {out['speedup']}x; liver Dice {out['liver_dice']}, "
        f"TRE {out['tre_mean_mm']} (max {out['tre_max_mm']}) mm; MAM {out['mam_mm']} mm, "
        f"baseline {out['baseline_mam_mm']} mm, truth {out['true_mam_mm']} mm"
    )
    return out


def bench_threads(case: Path, truth: dict) -> dict:
    """Registration wall time on 1 and on 2 ITK threads, liver and lesion-region modes."""
    from hepanav.margin.measure import measure_margin
    from hepanav.margin.registration import RegistrationSettings, register_pre_to_post

    def read(name):
        return sitk.ReadImage(str(case / f"{name}.nii.gz"))

    pre, post = read("pre_ct"), read("post_ct")
    tumor, zone = read("pre_tumor"), read("post_ablation")
    livers = {"liver": (read("pre_liver"), read("post_liver")), "lesion_region": (None, None)}
    out = {}
    for mode, (lp, lq) in livers.items():
        seconds = {}
        for threads in (1, 2):
            settings = RegistrationSettings(threads=threads)
            reg, seconds[threads] = _clock(
                register_pre_to_post, pre, post, lp, lq, zone, tumor, settings
            )
        mam = measure_margin(tumor, zone, tumor_transform=reg.transform).min_margin_mm
        out[mode] = {
            "seconds_1_thread": round(seconds[1], 1),
            "seconds_2_threads": round(seconds[2], 1),
            "speedup_1_to_2": round(seconds[1] / seconds[2], 2),
            "mam_mm": round(mam, 2),
            "true_mam_mm": round(truth["min_margin_mm"], 2),
        }
        print(
            f"registration ({mode}): 1 thread {seconds[1]:.1f} s, 2 threads {seconds[2]:.1f} s "
            f"-> {out[mode]['speedup_1_to_2']}x; MAM {mam:.2f} mm (truth "
            f"{truth['min_margin_mm']:.2f})"
        )
    return out


def bench_seeds_cli() -> dict:
    """``hepanav margin`` from two CTs and two seeds: wall time on 1 core and on all cores."""
    import json
    import os
    import subprocess
    import sys

    from hepanav.phantoms.ablation_case import make_ablation_case

    case = Path(tempfile.gettempdir()) / "hepanav-bench-margin-demo"
    if not (case / "case.json").is_file():
        make_ablation_case(case, seed=0, truth_displacement=False)  # the make-demo case
    truth = json.loads((case / "truth.json").read_text(encoding="utf-8"))
    cores = sorted(os.sched_getaffinity(0))
    out = {"cores_available": len(cores), "true_mam_mm": round(truth["min_margin_mm"], 2)}
    for label, allowed in (("1_core", cores[:1]), ("all_cores", cores)):
        target = Path(tempfile.mkdtemp(prefix="hepanav-bench-seeds-")) / "out"
        command = [
            sys.executable, "-m", "hepanav", "margin",
            "--pre", str(case / "pre_ct.nii.gz"), "--post", str(case / "post_ct.nii.gz"),
            "--tumor-seed", ",".join(map(str, truth["tumor_center_pre_lps"])),
            "--ablation-seed", ",".join(map(str, truth["zone_center_post_lps"])),
            "--out", str(target),
        ]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(
            command, check=True, capture_output=True,
            preexec_fn=lambda a=tuple(allowed): os.sched_setaffinity(0, a),
        )  # fmt: skip
        seconds = time.perf_counter() - started
        result = json.loads((target / "margin.json").read_text(encoding="utf-8"))
        out[label] = {
            "seconds": round(seconds, 1),
            "registration_seconds": round(result["registration"]["seconds"], 1),
            "mode": result["registration"]["mode"],
            "mam_mm": round(result["min_margin_mm"], 2),
        }
        print(f"margin from two seeds ({label}): {out[label]}", flush=True)
    out["speedup_1_to_all"] = round(out["1_core"]["seconds"] / out["all_cores"]["seconds"], 2)
    print(f"margin from two seeds: 1 core -> {len(cores)} cores {out['speedup_1_to_all']}x")
    return out


def main() -> dict:
    """Run both benchmarks; print and return the figures."""
    import json

    case = make_case()
    truth = json.loads((case / "truth.json").read_text(encoding="utf-8"))
    return {
        "grid": {"size": SIZE, "spacing_mm": SPACING},
        "aligned_masks": bench_aligned(case, truth),
        "pipeline": bench_pipeline(case, truth),
        "threads": bench_threads(case, truth),
        "seeds_cli": bench_seeds_cli(),
    }


if __name__ == "__main__":
    main()
