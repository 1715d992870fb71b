"""Per-stage diagnosis of dumped pair registrations (issue 12, branch reg4).

For each dumped transform ``DIR/seed<N>_<mode>.h5`` (rigid -> B-spline 80 -> B-spline 40
[-> local field], written by ``bench_margin_pairs`` with ``HEPANAV_PAIR_DUMP``), the
composite is cut after each stage and evaluated: the registration error at the tumour
surface (mean/max mm, and its mean VECTOR in LPS mm: the systematic part), the error in
shells around the tumour (soft tissue, 10-25 and 25-50 mm from the tumour centre), and
the MAM error (measured through that stage minus the truth).

Run: ``HEPANAV_TEST_DATA=/work/shared/data .venv/bin/python -m bench.registration_stage_diag
DIR [seeds] [modes]``; the pairs are cached like ``bench.local_stage_replay``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

STAGES = ("rigid", "+B80", "+B40", "+local")


def stage_transforms(dump: Path, seed: int, mode: str) -> list[sitk.Transform]:
    """The dumped composite cut after each of its stages (1..n transforms)."""
    full = sitk.CompositeTransform(sitk.ReadTransform(str(dump / f"seed{seed}_{mode}.h5")))
    parts = [full.GetNthTransform(i) for i in range(full.GetNumberOfTransforms())]
    return [sitk.CompositeTransform(parts[: i + 1]) for i in range(len(parts))]


def error_vectors(case, pair, transform, points_pre: np.ndarray) -> np.ndarray:
    """``T(true post point) - pre point`` (N, 3) LPS mm for pre points."""
    from hepanav.phantoms.realistic_pair import to_pair_post

    post = to_pair_post(pair, case.deformation.to_post(points_pre))
    mapped = np.array([transform.TransformPoint(p) for p in post.tolist()])
    return mapped - points_pre


def main(argv: list[str]) -> None:
    from bench.local_stage_replay import cached_pair
    from hepanav.margin.measure import measure_margin

    dump = Path(argv[0])
    seeds = [int(s) for s in argv[1].split(",")]
    modes = argv[2].split(",") if len(argv) > 2 else ["liver", "lesion_region"]
    for seed in seeds:
        case, pair, truth, m_true = cached_pair(dump, seed)
        pre_points, _ = case.tumor.surface_mesh(2000)
        centre = np.asarray(case.tumor.center, float)
        rng = np.random.default_rng(0)
        d = rng.normal(size=(800, 3))
        d /= np.linalg.norm(d, axis=1)[:, None]
        shells = {
            "10-25": centre + d * rng.uniform(10, 25, 800)[:, None],
            "25-50": centre + d * rng.uniform(25, 50, 800)[:, None],
        }
        print(
            f"seed {seed}: true MAM {pair.true_mam_mm:.2f}, measurement only "
            f"{m_true - pair.true_mam_mm:+.2f}",
            flush=True,
        )
        for mode in modes:
            for name, t in zip(STAGES, stage_transforms(dump, seed, mode), strict=False):
                e = error_vectors(case, pair, t, pre_points)
                mag = np.linalg.norm(e, axis=1)
                shell = {
                    k: float(np.linalg.norm(error_vectors(case, pair, t, p), axis=1).mean())
                    for k, p in shells.items()
                }
                m = measure_margin(pair.pre_tumor, pair.post_ablation, tumor_transform=t)
                mean_vec = e.mean(axis=0)
                print(
                    f"  {mode:13s} {name:7s} tumour {mag.mean():.2f}/{mag.max():.2f} "
                    f"mean vec LPS ({mean_vec[0]:+.2f},{mean_vec[1]:+.2f},{mean_vec[2]:+.2f}) "
                    f"resid {np.linalg.norm(e - mean_vec, axis=1).mean():.2f}; "
                    f"shells 10-25 {shell['10-25']:.2f} 25-50 {shell['25-50']:.2f}; "
                    f"MAM total {m.min_margin_mm - pair.true_mam_mm:+.2f} "
                    f"(reg part {m.min_margin_mm - m_true:+.2f})",
                    flush=True,
                )


if __name__ == "__main__":
    main(sys.argv[1:])
