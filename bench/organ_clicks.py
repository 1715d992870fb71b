"""Misplaced clicks: a seed in each labelled organ, does `segment tumor|ablation` refuse it?

For every labelled structure of the phantom (seed 0, procedural; the tumour and zone
truths as positive controls) and of the real DICOM series (TotalSegmentator labels
resampled onto the CT in physical space, nearest neighbour) one click at the organ's
deepest voxel (largest distance to its boundary) is given to the tumour and the
ablation-zone segmentation. Printed per click: accepted (volume, share inside the
clicked organ) or refused (the one-line message). A click in any organ but a lesion
must be refused; the liver itself is refused as "no lesion" (no contrast or a leak).
Vessel clicks (tester4, 2026-12-01): the phantom's hepatic and portal veins inside the
liver (the tester's points and each vessel label's deepest voxel), the heart, IVC and
aorta, and the real DICOM portal-venous confluence (voxel 201,265,8), each also given to
`segment liver`: every one must be refused (or, for the liver, never grow outside it).

    HEPANAV_TEST_DATA=/work/shared/data .venv/bin/python -m bench.organ_clicks
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("HEPANAV_TEST_DATA", ROOT.parent / "shared" / "data"))
MIN_ORGAN_ML = 2.0


def deepest_point(labels: sitk.Image, value: int) -> tuple[float, float, float] | None:
    """LPS mm of the voxel of ``value`` farthest from the label's boundary."""
    mask = sitk.Cast(labels == value, sitk.sitkUInt8)
    arr = sitk.GetArrayViewFromImage(mask)
    if arr.sum() * np.prod(labels.GetSpacing()) / 1000.0 < MIN_ORGAN_ML:
        return None
    dist = sitk.GetArrayFromImage(
        sitk.SignedMaurerDistanceMap(mask, insideIsPositive=True, useImageSpacing=True)
    )
    k, j, i = np.unravel_index(int(np.argmax(np.where(arr > 0, dist, -np.inf))), arr.shape)
    return tuple(float(v) for v in labels.TransformIndexToPhysicalPoint((int(i), int(j), int(k))))


def click(ct, labels, point, organ_value, structure):
    from hepanav.core.errors import InputError
    from hepanav.segmentation.ablation import segment_ablation
    from hepanav.segmentation.liver import segment_liver
    from hepanav.segmentation.seeds import make_seeds
    from hepanav.segmentation.tumor import segment_tumor

    try:
        seeds = make_seeds(ct, lps=[point])
        fn = {"tumor": segment_tumor, "ablation": segment_ablation, "liver": segment_liver}[
            structure
        ]
        seg = fn(ct, seeds)
    except InputError as err:
        return {"result": "refused", "why": err.reason}
    mask = sitk.GetArrayViewFromImage(seg.mask) > 0
    ml = float(mask.sum() * np.prod(ct.GetSpacing()) / 1000.0)
    inside = None
    if labels is not None and organ_value is not None:
        lab = sitk.GetArrayViewFromImage(labels)
        inside = float(np.mean(lab[mask] == organ_value)) if mask.any() else 0.0
    return {"result": "accepted", "ml": round(ml, 2), "in_organ": inside}


def phantom_clicks() -> list[dict]:
    from hepanav.phantoms.ablation_case import build_case

    case = build_case(0)
    rows = []
    for value, name in sorted(case.label_names.items()):
        point = deepest_point(case.pre_labels, value)
        if point is None:
            continue
        for structure in ("tumor", "ablation"):
            rows.append(
                {"ct": "phantom pre", "organ": name, "structure": structure, "seed": point}
                | click(case.pre_ct, case.pre_labels, point, value, structure)
            )
    # Vessel clicks, also as liver clicks (tester4's points and the vessels' deepest voxels).
    ids = {name: value for value, name in case.label_names.items()}
    vessels = [
        ("hepatic_veins", (-57.75, 13.5, 38.0)),
        ("portal_vein_and_splenic_vein", (-51.75, 3.0, -5.5)),
    ]
    for name in ("hepatic_veins", "portal_vein_and_splenic_vein", "heart"):
        vessels.append((name, deepest_point(case.pre_labels, ids[name])))
    for name in ("inferior_vena_cava", "aorta"):
        vessels.append((name, deepest_point(case.pre_labels, ids[name])))
    for name, point in vessels:
        for structure in ("tumor", "ablation", "liver"):
            if structure != "liver" and point == deepest_point(case.pre_labels, ids[name]):
                continue  # the organ loop above gave it to tumour and zone already
            rows.append(
                {"ct": "phantom pre", "organ": f"vessel {name}", "structure": structure}
                | {"seed": point}
                | click(case.pre_ct, case.pre_labels, point, ids[name], structure)
            )
    controls = (
        ("tumor", case.pre_ct, case.truth.tumor_center_pre_lps, "phantom pre"),
        ("ablation", case.post_ct, case.truth.zone_center_post_lps, "phantom post"),
    )
    for structure, ct, point, where in controls:
        rows.append(
            {
                "ct": where,
                "organ": f"true {structure}",
                "structure": structure,
                "seed": tuple(point),
            }
            | click(ct, None, tuple(point), None, structure)
        )
    return rows


def dicom_clicks() -> list[dict]:
    from hepanav.imaging.io import read_image

    folder = DATA / "ct-abdomen-dicom"
    if not folder.is_dir():
        return []
    ct = read_image(folder / "series")
    raw = sitk.ReadImage(str(folder / "labels.nii.gz"))
    labels = sitk.Resample(raw, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0, raw.GetPixelID())
    names = {int(k): v for k, v in json.loads((folder / "labels.json").read_text()).items()}
    rows = []
    for value, name in sorted(names.items()):
        point = deepest_point(labels, value)
        if point is None:
            continue
        for structure in ("tumor", "ablation"):
            rows.append(
                {"ct": "dicom", "organ": name, "structure": structure, "seed": point}
                | click(ct, labels, point, value, structure)
            )
    # The real portal-venous confluence inside the liver (voxel 201,265,8; before: a
    # 2.97 ml "tumour", 80 % in the vein), and the same point as a liver click.
    portal = tuple(ct.TransformIndexToPhysicalPoint((201, 265, 8)))
    value = int(sitk.GetArrayViewFromImage(labels)[8, 265, 201])
    for structure in ("tumor", "ablation", "liver"):
        rows.append(
            {"ct": "dicom", "organ": f"vessel confluence ({names.get(value, value)})"}
            | {"structure": structure, "seed": portal}
            | click(ct, labels, portal, value, structure)
        )
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("phantom", "dicom"))
    args = parser.parse_args(argv)
    rows = []
    if args.only != "dicom":
        rows += phantom_clicks()
    if args.only != "phantom":
        rows += dicom_clicks()
    for r in rows:
        seed = ",".join(f"{v:.1f}" for v in r["seed"])
        if r["result"] == "accepted":
            share = "" if r["in_organ"] is None else f", {100 * r['in_organ']:.0f} % in organ"
            what = f"ACCEPTED {r['ml']:.2f} ml{share}"
        else:
            what = "refused: " + r["why"][:110]
        print(f"{r['ct']:12s} {r['organ']:28s} {r['structure']:8s} {seed:24s} {what}")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
