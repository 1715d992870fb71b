"""Re-apply the LOCAL registration stage to dumped global transforms (issue 12).

``bench_margin_pairs`` with ``HEPANAV_PAIR_DUMP=DIR`` writes each registration's
transform to ``DIR/seed<N>_<mode>.h5``: rigid -> B-spline 80 -> B-spline 40 (the global
stages) [-> local field]. This script keeps the global stages, runs
``registration.local_stage`` again (with the settings or the module patch of a variant)
and reports, per pair and mode, the MAM error (total and registration part), the error
at the tumour surface and the local stage's outcome and CPU time: the local stage can be
studied without re-running the global stages (minutes each).

Run: ``HEPANAV_TEST_DATA=/work/shared/data .venv/bin/python -m bench.local_stage_replay
DIR [seeds] [modes]`` (seeds ``0,1,...``, default all dumped; modes ``liver,lesion_region``).
The pairs are cached in ``DIR/cache/`` (pickled) on first use. ``HEPANAV_LOCAL_SETTINGS``
(JSON, e.g. ``{"local_unclamped_only": true}``) overrides ``RegistrationSettings`` fields;
``HEPANAV_POST_NOISE_HU=10`` adds independent Gaussian noise (SD in HU, seeded per pair)
to the post CT before the local stage (the global transforms stay the dumped ones).
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def cached_pair(dump: Path, seed: int):
    """(case, pair, true transform, measurement-only MAM error) of ``seed``, cached."""
    from bench.bench_margin_pairs import pair_case
    from hepanav.margin.measure import measure_margin
    from hepanav.phantoms.realistic_pair import true_post_to_pre

    path = dump / "cache" / f"seed{seed}.pkl"
    if path.is_file():
        with path.open("rb") as f:
            case, pair, m_true = pickle.load(f)
    else:
        case, pair = pair_case(seed)
        truth = true_post_to_pre(case, pair)
        m_true = measure_margin(pair.pre_tumor, pair.post_ablation, tumor_transform=truth)
        m_true = float(m_true.min_margin_mm)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            pickle.dump((case, pair, m_true), f)
    return case, pair, true_post_to_pre(case, pair), m_true


def global_stages(dump: Path, seed: int, mode: str) -> sitk.Transform:
    """The dumped registration without its local stage (its first three transforms)."""
    full = sitk.ReadTransform(str(dump / f"seed{seed}_{mode}.h5"))
    composite = sitk.CompositeTransform(full)
    n = composite.GetNumberOfTransforms()
    parts = [composite.GetNthTransform(i) for i in range(min(n, 3))]
    return sitk.CompositeTransform(parts)


def replay(dump: Path, seed: int, mode: str, settings=None) -> dict:
    """The local stage on the dumped global transform of ``seed``/``mode``: figures."""
    from bench.bench_margin_pairs import tumour_surface_tre
    from hepanav.imaging.orient import lps_order
    from hepanav.margin.measure import measure_margin
    from hepanav.margin.registration import RegistrationSettings, local_stage

    settings = settings or RegistrationSettings()
    case, pair, truth, m_true = cached_pair(dump, seed)
    noise_hu = float(os.environ.get("HEPANAV_POST_NOISE_HU", "0"))
    if noise_hu > 0:
        # Independent acquisition noise on the post CT (a realistic pair's post is a
        # deterministic function of the pre CT; a patient's two scans are not).
        post = sitk.GetArrayFromImage(pair.post_ct).astype(np.float32)
        post += np.random.default_rng(1000 + seed).normal(0.0, noise_hu, post.shape)
        noisy = sitk.GetImageFromArray(np.round(post).astype(np.int16))
        noisy.CopyInformation(pair.post_ct)
        pair = replace(pair, post_ct=noisy)
    base = global_stages(dump, seed, mode)
    # As register_pre_to_post runs it: inputs in LPS storage order (the base scan of the
    # pairs is stored RAS-first; the sampling lattice follows the array axes).
    images = [
        lps_order(image)
        for image in (pair.pre_ct, pair.post_ct, pair.post_ablation, pair.pre_tumor)
    ]
    cpu = time.process_time()
    correction, info = local_stage(*images, base, settings)
    cpu = time.process_time() - cpu
    final = sitk.CompositeTransform([base, correction]) if info.accepted else base
    m = measure_margin(pair.pre_tumor, pair.post_ablation, tumor_transform=final)
    tre_g = tumour_surface_tre(case, pair, base)
    tre = tumour_surface_tre(case, pair, final)
    return {
        "seed": seed,
        "mode": mode,
        "measurement_mm": round(m_true - pair.true_mam_mm, 2),
        "total_mm": round(float(m.min_margin_mm) - pair.true_mam_mm, 2),
        "registration_part_mm": round(float(m.min_margin_mm) - m_true, 2),
        "tre_global": (tre_g["mean"], tre_g["max"]),
        "tre_after": (tre["mean"], tre["max"]),
        "kept": info.accepted,
        "metric": (round(info.metric_before, 4), round(info.metric_after, 4)),
        "largest_mm": round(info.max_correction_mm, 2),
        "samples": info.samples,
        "wall_s": round(info.seconds, 1),
        "cpu_s": round(cpu, 1),
    }


def main(argv: list[str]) -> list[dict]:
    dump = Path(argv[0])
    seeds = (
        [int(s) for s in argv[1].split(",")]
        if len(argv) > 1
        else sorted({int(p.name[4:].split("_")[0]) for p in dump.glob("seed*_*.h5")})
    )
    modes = argv[2].split(",") if len(argv) > 2 else ["liver", "lesion_region"]
    from hepanav.margin.registration import RegistrationSettings

    settings = RegistrationSettings(**json.loads(os.environ.get("HEPANAV_LOCAL_SETTINGS", "{}")))
    print(f"settings: {os.environ.get('HEPANAV_LOCAL_SETTINGS', '{}')}", flush=True)
    rows = []
    for seed in seeds:
        for mode in modes:
            if not (dump / f"seed{seed}_{mode}.h5").is_file():
                continue
            row = replay(dump, seed, mode, settings)
            print(row, flush=True)
            rows.append(row)
    parts = np.array([r["registration_part_mm"] for r in rows])
    if len(parts):
        print(
            f"registration part: max |part| {np.abs(parts).max():.2f} mm, mean "
            f"{parts.mean():+.2f} mm, {int((parts > 0).sum())} + / {int((parts < 0).sum())} -; "
            f"local CPU {sum(r['cpu_s'] for r in rows):.1f} s ({os.getloadavg()[0]:.1f} load)"
        )
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
