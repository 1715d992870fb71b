"""Liver from one RANDOM click on the two real scans, against their liver labels.

Clicks: ``--n`` liver voxels drawn at random (fixed RNG seed) among those at least
``--depth`` mm from the liver label's boundary (the scan's edge does not count: a click
on the first or last slice is allowed, as a user may make it), plus up to
``--n-left`` deep clicks left of the body's midline (the left lobe, which must still
be accepted) and, on the DICOM scan, the deepest spleen voxel (which must be refused).
Prints one line per click (LPS mm, Dice or the refusal) and a summary per scan.

Run (real data in ``../shared/data`` or ``$HEPANAV_TEST_DATA``)::

    .venv/bin/python -m bench.eval_liver_clicks [--n 12] [--depth 12] [--only dicom]

"Before" figures: the same command with ``PYTHONPATH=<checkout of the old code>/src``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

SCANS = {
    "3mm": ("ct-abdomen-3mm/ct.nii.gz", "ct-abdomen-3mm/liver.nii.gz", None),
    "dicom": ("ct-abdomen-dicom/series", "ct-abdomen-dicom/labels.nii.gz", 5),
}
SPLEEN_ID = 1  # TotalSegmentator v2 (labels.json of the DICOM scan)


def _data_root() -> Path:
    env = os.environ.get("HEPANAV_TEST_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _lps(image: sitk.Image, kji) -> tuple[float, float, float]:
    k, j, i = (int(v) for v in kji)
    return tuple(round(float(v), 2) for v in image.TransformIndexToPhysicalPoint((i, j, k)))


def _one(ct, truth, point):
    from hepanav.core.errors import InputError
    from hepanav.segmentation.body import body_mask, inside_body
    from hepanav.segmentation.liver import segment_liver
    from hepanav.segmentation.metrics import dice
    from hepanav.segmentation.seeds import make_seeds

    seeds = make_seeds(ct, [point])
    t0 = time.perf_counter()
    try:
        # As the CLI does (pipeline.segment_in_memory): the body-outline check first.
        if not inside_body(body_mask(ct), seeds[0].index):
            raise InputError("outside the body outline", seeds[0].describe())
        seg = segment_liver(ct, seeds)
    except InputError as exc:
        return {"refused": str(exc).split("mm: ", 1)[-1][:110]}
    return {
        "dice": round(dice(seg.mask, truth), 3),
        "ml": round(seg.volume_ml(), 1),
        "hu": seg.parenchyma_hu,
        "s": round(time.perf_counter() - t0, 1),
    }


def run_scan(name: str, n: int, depth_mm: float, n_left: int, rng_seed: int) -> dict:
    from hepanav.imaging import binarize, read_image, resample_mask_like
    from hepanav.segmentation.body import body_mask

    root = _data_root()
    ct_rel, liver_rel, label = SCANS[name]
    ct = read_image(root / ct_rel)
    labels = read_image(root / liver_rel)
    truth = resample_mask_like(binarize(labels, label), ct)
    arr = sitk.GetArrayFromImage(truth) > 0
    depth = ndimage.distance_transform_edt(arr, sampling=ct.GetSpacing()[::-1])
    rng = np.random.default_rng(rng_seed)
    deep = np.argwhere(depth >= depth_mm)
    clicks = [("random", _lps(ct, deep[i])) for i in rng.choice(len(deep), n, replace=False)]
    # Left lobe: deep liver voxels left (+x LPS) of the body's midline on their slice.
    body = sitk.GetArrayFromImage(body_mask(ct)) > 0
    x_mm = np.array([ct.TransformIndexToPhysicalPoint((i, 0, 0))[0] for i in range(arr.shape[2])])
    mid = {
        k: float(x_mm[np.nonzero(body[k].any(axis=0))[0]].mean())
        for k in range(arr.shape[0])
        if body[k].any()
    }
    cand = np.argwhere(depth >= 8.0)
    mids = np.array([mid.get(int(k), np.inf) for k in range(arr.shape[0])])
    left = cand[x_mm[cand[:, 2]] > mids[cand[:, 0]]]
    for i in rng.choice(len(left), min(n_left, len(left)), replace=False) if len(left) else []:
        clicks.append(("left lobe", _lps(ct, left[i])))
    if label is not None:
        spleen = resample_mask_like(binarize(labels, SPLEEN_ID), ct)
        s = sitk.GetArrayFromImage(spleen) > 0
        if s.any():
            d = ndimage.distance_transform_edt(s, sampling=ct.GetSpacing()[::-1])
            clicks.append(("spleen", _lps(ct, np.unravel_index(int(np.argmax(d)), d.shape))))
    rows = []
    for kind, point in clicks:
        row = {"scan": name, "kind": kind, "seed": point, **_one(ct, truth, point)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    liver_rows = [r for r in rows if r["kind"] != "spleen"]
    dices = [r.get("dice", 0.0) for r in liver_rows]
    summary = {
        "scan": name,
        "clicks": len(liver_rows),
        "dice>=0.90": sum(d >= 0.90 for d in dices),
        "refused": sum("refused" in r for r in liver_rows),
        "accepted_below_0.90": sum("dice" in r and r["dice"] < 0.90 for r in liver_rows),
        "min_dice_accepted": min((r["dice"] for r in liver_rows if "dice" in r), default=None),
        "median_dice": float(np.median(dices)),
        "spleen": next((r for r in rows if r["kind"] == "spleen"), None),
    }
    print(json.dumps(summary), flush=True)
    return summary


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--n-left", type=int, default=3)
    ap.add_argument("--depth", type=float, default=12.0)
    ap.add_argument("--rng", type=int, default=12)
    ap.add_argument("--only", choices=sorted(SCANS), action="append")
    args = ap.parse_args(argv)
    return {
        name: run_scan(name, args.n, args.depth, args.n_left, args.rng)
        for name in (args.only or sorted(SCANS))
    }


if __name__ == "__main__":
    main()
