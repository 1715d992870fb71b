"""Liver from one click on a 512 x 512 x 300 CT (0.8 x 0.8 x 1.0 mm), the case of
``bench segmentation``, against the baseline SimpleITK ``ConnectedThreshold`` from the
same seed with a fixed HU window on the full CT, with ITK on 1 and on 2 threads (the
1 -> 2 core speed-up). Target <= 10 s on 2 cores.

Run: ``.venv/bin/python -m bench liver`` (the liver part of ``bench segmentation``
alone; the case is generated once into ``$TMPDIR/hepanav-bench-segmentation``).
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import SimpleITK as sitk

from bench.bench_segmentation import _clock, baseline, make_case

REPEATS = 3  # median of 3 runs per thread count (the machine is shared)


def liver_seed(pre: sitk.Image, liver: sitk.Image):
    """The deepest liver voxel (on a 4-voxel subgrid): one click."""
    from scipy import ndimage

    from hepanav.segmentation.seeds import make_seeds

    arr = sitk.GetArrayFromImage(liver) > 0
    depth = ndimage.distance_transform_edt(arr[::4, ::4, ::4])
    k, j, i = (np.asarray(np.unravel_index(np.argmax(depth), depth.shape)) * 4).tolist()
    return make_seeds(pre, None, [(i, j, k)])


def main() -> dict:
    from hepanav.segmentation.liver import segment_liver
    from hepanav.segmentation.metrics import dice

    case = make_case()
    pre = sitk.ReadImage(str(case / "pre_ct.nii.gz"))
    liver = sitk.ReadImage(str(case / "pre_liver.nii.gz"))
    seed = liver_seed(pre, liver)
    results: dict = {"cores_available": os.cpu_count(), "ct_size": list(pre.GetSize())}
    for threads in (1, 2):
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
        times, base_times, cpu = [], [], []
        for _ in range(REPEATS):
            c0 = time.process_time()
            seg, t = _clock(segment_liver, pre, seed)
            cpu.append(time.process_time() - c0)
            base, b = _clock(baseline, pre, seed[0].index, (75, 135))
            times.append(t)
            base_times.append(b)
        t, b = float(np.median(times)), float(np.median(base_times))
        results[f"threads_{threads}"] = {
            "liver_s": t,
            # CPU seconds of this process (all its threads): on a machine shared with
            # other jobs the wall time grows with the load, the CPU time does not.
            "liver_cpu_s": float(np.median(cpu)),
            "liver_baseline_s": b,
            "liver_ratio": t / b,
            "liver_dice": dice(seg.mask, liver),
            "liver_dice_baseline": dice(base, liver),
        }
        print(json.dumps({threads: results[f"threads_{threads}"]}, default=float), flush=True)
    results["speedup_1_to_2"] = results["threads_1"]["liver_s"] / results["threads_2"]["liver_s"]
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(os.cpu_count() or 1)
    print(json.dumps(results, indent=2, default=float))
    return results


if __name__ == "__main__":
    main()
