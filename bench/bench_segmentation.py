"""Segmentation benchmark on a 512 x 512 x 300 CT (0.8 x 0.8 x 1.0 mm), 3 cm tumour.

1. Tumour (pre CT) and ablation zone (post CT) from a click at the centre,
   against the baseline SimpleITK ``ConnectedThreshold`` from the same seed with a
   fixed HU window on the full CT. Target <= 3 s on 2 cores.
2. Liver from one click (deepest liver point). Target <= 10 s on 2 cores.
3. ``hepanav margin`` from the two CTs and two clicks, no masks (segment, lesion-region
   registration, measure, write). Target <= 60 s.
Each segmentation is timed with ITK on 1 and on 2 threads (the 1 -> 2 core
speed-up); by default HepaNav uses every core.

Run: ``.venv/bin/python -m bench segmentation`` (``python -m bench.bench_segmentation
--lesions``: tumour and zone only). The case is generated once into
``$TMPDIR/hepanav-bench-segmentation`` and reused.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SIZE = (512, 512, 300)
SPACING = (0.8, 0.8, 1.0)
CASE = Path(tempfile.gettempdir()) / "hepanav-bench-segmentation"


def make_case() -> Path:
    from hepanav.phantoms.ablation_case import make_ablation_case

    if not (CASE / "case.json").is_file():
        print(f"generating the {SIZE} case in {CASE} (once) ...", flush=True)
        make_ablation_case(
            CASE,
            seed=0,
            spacing_mm=SPACING,
            size=SIZE,
            tumor={"radius_mm": 15.0},
            truth_displacement=False,
        )
    return CASE


def _clock(fn, *args, **kwargs):
    t0 = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - t0


def baseline(ct: sitk.Image, index, window) -> sitk.Image:
    """SimpleITK ConnectedThreshold from the seed with a fixed HU window, full CT."""
    return sitk.ConnectedThreshold(ct, seedList=[index], lower=window[0], upper=window[1])


def main(lesions_only: bool = False) -> dict:
    from hepanav.segmentation.ablation import segment_ablation
    from hepanav.segmentation.liver import segment_liver
    from hepanav.segmentation.metrics import dice
    from hepanav.segmentation.seeds import make_seeds
    from hepanav.segmentation.tumor import segment_tumor

    case = make_case()
    truth = json.loads((case / "truth.json").read_text(encoding="utf-8"))
    pre = sitk.ReadImage(str(case / "pre_ct.nii.gz"))
    post = sitk.ReadImage(str(case / "post_ct.nii.gz"))
    liver = sitk.ReadImage(str(case / "pre_liver.nii.gz"))
    t_seed = make_seeds(pre, [truth["tumor_center_pre_lps"]])
    z_seed = make_seeds(post, [truth["zone_center_post_lps"]])
    arr = sitk.GetArrayFromImage(liver) > 0
    from scipy import ndimage

    depth = ndimage.distance_transform_edt(arr[::4, ::4, ::4])
    k, j, i = (np.asarray(np.unravel_index(np.argmax(depth), depth.shape)) * 4).tolist()
    l_seed = make_seeds(pre, None, [(i, j, k)])
    results = {"cores_available": os.cpu_count()}
    for threads in (1, 2):
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
        tum, t_t = _clock(segment_tumor, pre, t_seed)
        base_t, b_t = _clock(baseline, pre, t_seed[0].index, (-30, 80))
        zone, t_z = _clock(segment_ablation, post, z_seed)
        base_z, b_z = _clock(baseline, post, z_seed[0].index, (-50, 75))
        if lesions_only:
            liv, t_l, base_l, b_l = None, float("nan"), None, float("nan")
        else:
            liv, t_l = _clock(segment_liver, pre, l_seed)
            base_l, b_l = _clock(baseline, pre, l_seed[0].index, (75, 135))
        results[f"threads_{threads}"] = {
            "tumor_s": t_t,
            "tumor_baseline_s": b_t,
            "tumor_ratio": t_t / b_t,
            "zone_s": t_z,
            "zone_baseline_s": b_z,
            "zone_ratio": t_z / b_z,
            "liver_s": t_l,
            "liver_baseline_s": b_l,
            "liver_ratio": t_l / b_l,
            "tumor_dice": dice(tum.mask, sitk.ReadImage(str(case / "pre_tumor.nii.gz"))),
            "tumor_dice_baseline": dice(base_t, sitk.ReadImage(str(case / "pre_tumor.nii.gz"))),
            "zone_dice": dice(zone.mask, sitk.ReadImage(str(case / "post_ablation.nii.gz"))),
            "zone_dice_baseline": dice(base_z, sitk.ReadImage(str(case / "post_ablation.nii.gz"))),
            "liver_dice": dice(liv.mask, liver) if liv else None,
            "liver_dice_baseline": dice(base_l, liver) if liv else None,
        }
        print(json.dumps({threads: results[f"threads_{threads}"]}, default=float), flush=True)
    one, two = results["threads_1"], results["threads_2"]
    results["speedup_1_to_2"] = {
        k: one[f"{k}_s"] / two[f"{k}_s"] for k in ("tumor", "zone", "liver")
    }
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(os.cpu_count() or 1)
    if lesions_only:
        print(json.dumps(results, indent=2, default=float))
        return results
    # Margin from two CTs and two clicks, end to end (all cores, the default).
    from hepanav.margin.pipeline import MarginInputs, run_margin
    from hepanav.segmentation.pipeline import masks_for_margin

    out = Path(tempfile.mkdtemp(prefix="hepanav-bench-seg-margin-"))
    t0 = time.perf_counter()
    seed_t = ",".join(map(str, truth["tumor_center_pre_lps"]))
    seed_z = ",".join(map(str, truth["zone_center_post_lps"]))
    tumor, zone = masks_for_margin(
        out, case / "pre_ct.nii.gz", case / "post_ct.nii.gz", None, None, [seed_t], [seed_z]
    )
    run = run_margin(
        MarginInputs(
            tumor=tumor, ablation=zone, pre=case / "pre_ct.nii.gz", post=case / "post_ct.nii.gz"
        ),
        out,
    )
    results["margin_from_seeds_s"] = time.perf_counter() - t0
    results["margin_from_seeds_mam_mm"] = run.result.min_margin_mm
    results["margin_true_mam_mm"] = truth["min_margin_mm"]
    print(json.dumps(results, indent=2, default=float))
    return results


if __name__ == "__main__":
    import sys

    main(lesions_only="--lesions" in sys.argv[1:])
