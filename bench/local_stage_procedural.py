"""The local registration stage on a procedural realistic pair, from the true transform.

The pair of ``tests/test_margin_registration_near.py`` (a procedural ablation case, 2 mm
voxels, 3 mm post slices, made into a realistic pair: independent noise in each scan, the
zone and its rim painted in the post scan only). For each JSON line of
``RegistrationSettings`` fields given on the command line, the local stage is run (a)
started AT the true transform (a sound stage refuses there or stays within ~0.3 mm) and
(b) from the true transform with a known 1.9 mm error; printed: kept or refused and the
error at the tumour surface (``realistic_pair.tumour_surface_error``, mean/max mm).

Run: ``.venv/bin/python -m bench.local_stage_procedural '{}' '{"local_smooth_mm": 1.5}'``.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import SimpleITK as sitk


def main(argv: list[str]) -> None:
    from hepanav.margin.registration import RegistrationSettings, local_stage
    from hepanav.phantoms.ablation_case import build_case, case_parameters
    from hepanav.phantoms.realistic_pair import (
        realistic_pair,
        true_post_to_pre,
        tumour_surface_error,
    )

    params = case_parameters(
        spacing_mm=(2.0, 2.0, 2.0),
        post_spacing_mm=(2.0, 2.0, 3.0),
        deformation={"max_displacement_mm": 12.0},
    )
    case = build_case(3, params)
    pair = realistic_pair(case, np.random.default_rng(3), fov_half_mm=70.0)
    truth = true_post_to_pre(case, pair)
    shifted = sitk.CompositeTransform([truth, sitk.TranslationTransform(3, [1.2, -1.2, 1.0])])
    for line in argv or ["{}"]:
        settings = RegistrationSettings(**json.loads(line))
        out = []
        for name, start in (("at truth", truth), ("1.9 mm off", shifted)):
            correction, info = local_stage(
                pair.pre_ct, pair.post_ct, pair.post_ablation, pair.pre_tumor, start, settings
            )
            final = sitk.CompositeTransform([start, correction]) if info.accepted else start
            error = tumour_surface_error(case, pair, final)
            kept = "kept" if info.accepted else "refused"
            out.append(f"{name}: {kept}, error {error['mean']:.2f}/{error['max']:.2f} mm")
        print(f"{line}: " + "; ".join(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
