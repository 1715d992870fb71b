"""Where the automatic MAM lies and why (issue 12 diagnosis).

For each evaluation case (``bench.eval_segmentation`` cases, by phantom seed): segment
tumour and zone from centre clicks, measure the MAM from the automatic masks with the
TRUE deformation, and at the MAM point report

- the automatic tumour surface's signed distance to the TRUE tumour surface there
  (positive: the automatic tumour bulges OUT, mm) and the true tumour HU profile;
- the automatic zone surface's signed distance to the TRUE zone surface at the foot of
  the minimum (negative: the automatic zone is dented IN, mm);
- the worst outward bump of the whole automatic tumour surface and the worst inward
  dent of the whole automatic zone surface (phantom signed distances), and the MAM
  from (auto tumour, true zone) and (true tumour, auto zone) to split the blame.

Run: ``.venv/bin/python -m bench.mam_where --set dev --only 12 14``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def diagnose(case: dict) -> dict:
    import SimpleITK as sitk

    from bench.eval_segmentation import build
    from hepanav.margin.distance import distance_to_mesh
    from hepanav.margin.measure import measure_margin
    from hepanav.margin.surface import extract_surface
    from hepanav.phantoms.grid import Grid
    from hepanav.segmentation.ablation import segment_ablation
    from hepanav.segmentation.seeds import make_seeds
    from hepanav.segmentation.tumor import segment_tumor

    data = build(case)
    seg_t = segment_tumor(data.pre_ct, make_seeds(data.pre_ct, [data.tumor.center]))
    seg_z = segment_ablation(data.post_ct, make_seeds(data.post_ct, [data.zone.center]))
    tumor, zone = seg_t.mask, seg_z.mask
    occ = {"tumor": seg_t.fraction, "ablation": seg_z.fraction}
    occ = {k: v for k, v in occ.items() if v is not None}
    transform = data.deformation.transform(Grid.of(data.post_ct))
    m = measure_margin(tumor, zone, None, transform)
    p_post = np.asarray(m.mam_point_lps_mm)
    p_pre = data.deformation.to_pre(p_post[None])[0]
    zone_mesh = extract_surface(m.zone_field, m.grid)
    _, foot = distance_to_mesh(p_post[None], zone_mesh)
    foot = foot[0]
    # Tumour surface (in post space) -> pre space -> signed distance to the true tumour
    # (StarShape.signed_distance: positive OUTSIDE? checked below on the centre).
    sd_sign = -1.0 if data.tumor.signed_distance(data.tumor.center[None])[0] > 0 else 1.0
    t_pre = data.deformation.to_pre(m.tumor_mesh.vertices)
    t_out = sd_sign * data.tumor.signed_distance(t_pre)  # >0 outside the true tumour
    z_out = sd_sign * data.zone.signed_distance(zone_mesh.vertices)  # >0 outside true zone
    row = {
        "seed": case["seed"],
        "radius": case["radius"],
        "contrast": case["contrast"],
        "mam_true": data.truth.min_margin_mm,
        "mam_auto": m.min_margin_mm,
        "mam_point_post": p_post.round(1).tolist(),
        "tumour_out_at_mam": float(sd_sign * data.tumor.signed_distance(p_pre[None])[0]),
        "zone_out_at_foot": float(sd_sign * data.zone.signed_distance(foot[None])[0]),
        "true_margin_at_mam_point": float(-sd_sign * data.zone.signed_distance(p_post[None])[0]),
        "tumour_mean_out": float(np.average(t_out, weights=m.tumor_mesh.vertex_area)),
        "zone_mean_out": float(np.average(z_out, weights=zone_mesh.vertex_area)),
        "tumour_max_bump": float(t_out.max()),
        "tumour_p99_bump": float(np.percentile(t_out, 99)),
        "zone_max_dent": float(z_out.min()),
        "zone_p1_dent": float(np.percentile(z_out, 1)),
        "mam_auto_tumour_true_zone": measure_margin(
            tumor, data.post_ablation, None, transform
        ).min_margin_mm,
        "mam_true_tumour_auto_zone": measure_margin(
            data.pre_tumor, zone, None, transform
        ).min_margin_mm,
        "mam_auto_fractions": measure_margin(
            tumor, zone, None, transform, occupancies=occ
        ).min_margin_mm,
        "mam_auto_tumour_frac_true_zone": measure_margin(
            tumor, data.post_ablation, None, transform, occupancies={"tumor": occ["tumor"]}
        ).min_margin_mm
        if "tumor" in occ
        else None,
        "mam_true_tumour_auto_zone_frac": measure_margin(
            data.pre_tumor, zone, None, transform, occupancies={"ablation": occ["ablation"]}
        ).min_margin_mm
        if "ablation" in occ
        else None,
        "mam_truth_masks": measure_margin(
            data.pre_tumor, data.post_ablation, None, transform
        ).min_margin_mm,
    }
    # HU of the pre CT along the outward normal of the true tumour at the MAM point.
    c = data.tumor.center
    u = (p_pre - c) / np.linalg.norm(p_pre - c)
    pts = p_pre[None] + np.arange(-4, 6.5, 1.0)[:, None] * u[None]
    pre = data.pre_ct
    idx = [pre.TransformPhysicalPointToIndex(tuple(map(float, q))) for q in pts]
    arr = sitk.GetArrayViewFromImage(pre)
    row["pre_hu_profile_-4..6mm"] = [int(arr[k, j, i]) for i, j, k in idx]
    post = data.post_ct
    arr = sitk.GetArrayViewFromImage(post)
    cz = data.zone.center
    uz = (foot - cz) / np.linalg.norm(foot - cz)
    pts = foot[None] + np.arange(-4, 6.5, 1.0)[:, None] * uz[None]
    idx = [post.TransformPhysicalPointToIndex(tuple(map(float, q))) for q in pts]
    row["post_hu_profile_foot_-4..6mm"] = [int(arr[k, j, i]) for i, j, k in idx]
    # Worst zone dent and worst tumour bump: where, and what the CT shows there.
    for key, verts, vals, ct, shape, sign in (
        ("zone_dent", zone_mesh.vertices, z_out, post, data.zone, -1),
        ("tumour_bump", t_pre, t_out, pre, data.tumor, 1),
    ):
        n = int(np.argmin(vals)) if sign < 0 else int(np.argmax(vals))
        q = verts[n]
        u = (q - shape.center) / np.linalg.norm(q - shape.center)
        pts = q[None] + np.arange(-4, 6.5, 1.0)[:, None] * u[None]
        idx = [ct.TransformPhysicalPointToIndex(tuple(map(float, x))) for x in pts]
        arr = sitk.GetArrayViewFromImage(ct)
        row[key + "_at"] = q.round(1).tolist()
        row[key + "_dir"] = u.round(2).tolist()
        row[key + "_profile_-4..6mm"] = [int(arr[k, j, i]) for i, j, k in idx]
        row[key + "_count_beyond_1mm"] = int(np.count_nonzero(sign * vals > 1.0))
    return row


def main(argv=None) -> None:
    from bench.eval_segmentation import _worker_init, cases

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", default="dev", choices=("dev", "holdout", "all"))
    p.add_argument("--only", type=int, nargs="*")
    p.add_argument("--contrast", type=float, help="only cases of this tumour contrast")
    p.add_argument("--param", nargs="*", default=[], help="grow.NAME=VALUE overrides")
    a = p.parse_args(argv)
    _worker_init()
    from hepanav.segmentation import grow

    for kv in a.param:
        name, value = kv.split("=")
        setattr(grow, name, type(getattr(grow, name))(value))
    for c in cases(a.set):
        if a.only and c["seed"] not in a.only:
            continue
        if a.contrast is not None and c["contrast"] != a.contrast:
            continue
        try:
            r = diagnose(c)
        except Exception as exc:  # noqa: BLE001 - a failed case is reported
            r = {"seed": c["seed"], "error": f"{type(exc).__name__}: {exc}"}
        print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
