"""bench.registration_stage_diag cuts a dumped composite after each of its stages."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk


def test_stage_transforms_apply_the_first_stages_only(tmp_path):
    from bench.registration_stage_diag import stage_transforms

    shifts = [(1.0, 0.0, 0.0), (0.0, 2.0, 0.0), (0.0, 0.0, 4.0)]
    composite = sitk.CompositeTransform([sitk.TranslationTransform(3, s) for s in shifts])
    sitk.WriteTransform(composite, str(tmp_path / "seed3_liver.h5"))
    stages = stage_transforms(tmp_path, 3, "liver")
    assert len(stages) == 3
    # Translations commute: stage k moves a point by the sum of the first k shifts.
    for k, stage in enumerate(stages, start=1):
        moved = np.array(stage.TransformPoint((10.0, 20.0, 30.0)))
        expected = np.array((10.0, 20.0, 30.0)) + np.sum(shifts[:k], axis=0)
        np.testing.assert_allclose(moved, expected, atol=1e-9)
