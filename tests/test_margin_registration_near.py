"""Registration near the lesion (issue 12): the true transform of a realistic pair, the
registration error AT THE TUMOUR against it, and the cores the registration uses.

Ground truth by construction: ``hepanav.phantoms.realistic_pair`` moves the post scan of
an ablation case rigidly (20-38 mm, 5-10 degrees) after the case's analytic
respiratory-like deformation, so the true post -> pre map is known everywhere.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import SimpleITK as sitk

from hepanav.core.limits import _cgroup_quota_cores, available_cores
from hepanav.margin.registration import RegistrationSettings, register_pre_to_post, set_threads


@pytest.fixture(scope="module")
def procedural_pair():
    """A procedural ablation case (3 mm post slices) made into a realistic pair."""
    from hepanav.phantoms.ablation_case import build_case, case_parameters
    from hepanav.phantoms.realistic_pair import realistic_pair

    params = case_parameters(
        spacing_mm=(2.0, 2.0, 2.0),
        post_spacing_mm=(2.0, 2.0, 3.0),
        deformation={"max_displacement_mm": 12.0},
    )
    case = build_case(3, params)
    return case, realistic_pair(case, np.random.default_rng(3), fov_half_mm=70.0)


def test_true_transform_of_a_realistic_pair_maps_landmarks(procedural_pair):
    from hepanav.phantoms.realistic_pair import to_pair_post, true_post_to_pre

    case, pair = procedural_pair
    truth = true_post_to_pre(case, pair)
    post = to_pair_post(pair, case.landmarks_post)
    mapped = np.array([truth.TransformPoint(p) for p in post.tolist()])
    error = np.linalg.norm(mapped - case.landmarks_pre, axis=1)
    # The deformation's field is linear between 4 mm lattice points (< 0.05 mm).
    assert error.max() < 0.1
    # ... and the motion is real: without undoing it the landmarks are 20+ mm off.
    moved_only = np.linalg.norm(post - case.landmarks_post, axis=1)
    assert moved_only.min() > 5.0 and pair.motion_mm >= 20.0


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["liver", "lesion_region"])
def test_known_deformation_near_the_lesion_is_recovered(procedural_pair, mode):
    from hepanav.phantoms.realistic_pair import tumour_surface_error

    case, pair = procedural_pair
    livers = (pair.pre_liver, pair.post_liver) if mode == "liver" else (None, None)
    reg = register_pre_to_post(
        pair.pre_ct,
        pair.post_ct,
        *livers,
        pair.post_ablation,
        pair.pre_tumor,
        RegistrationSettings(spacing_mm=3.0),
    )
    assert reg.mode == mode
    error = tumour_surface_error(case, pair, reg.transform)
    # Bound from docs/margin.md ("Realistic pairs"): the tumour-surface error of both
    # modes on the phantom pair, with headroom for thread-count rounding.
    assert error["mean"] <= 1.5 and error["max"] <= 2.0, error
    # The test can fail: the identity leaves the tumour tens of mm off.
    assert tumour_surface_error(case, pair, sitk.Transform())["mean"] > 10.0


def test_cgroup_quota_caps_the_cores(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n", encoding="ascii")
    assert _cgroup_quota_cores(str(tmp_path)) == 2  # 1.5 cores of quota -> 2 threads
    (tmp_path / "cpu.max").write_text("max 100000\n", encoding="ascii")
    assert _cgroup_quota_cores(str(tmp_path)) is None
    (tmp_path / "cpu.max").unlink()
    v1 = tmp_path / "cpu"
    v1.mkdir()
    (v1 / "cpu.cfs_quota_us").write_text("400000\n", encoding="ascii")
    (v1 / "cpu.cfs_period_us").write_text("100000\n", encoding="ascii")
    assert _cgroup_quota_cores(str(tmp_path)) == 4
    (v1 / "cpu.cfs_quota_us").write_text("-1\n", encoding="ascii")
    assert _cgroup_quota_cores(str(tmp_path)) is None
    assert _cgroup_quota_cores(str(tmp_path / "absent")) is None


def test_registration_threads_default_to_every_available_core():
    expected = available_cores()
    assert 1 <= expected <= (os.cpu_count() or 1)
    set_threads(1)
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 1
    set_threads(None)  # the default: not a fixed count, every core this process may use
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == expected


def _shifted(transform: sitk.Transform, shift_mm) -> sitk.Transform:
    """``x -> transform(x + shift)``: a known registration error of ``|shift|`` mm."""
    shift = sitk.TranslationTransform(3, [float(s) for s in shift_mm])
    return sitk.CompositeTransform([transform, shift])


@pytest.mark.slow
def test_local_stage_removes_a_known_error_near_the_zone(procedural_pair):
    """The true transform with a 1.9 mm error: the local stage at least halves it at the
    tumour, and its correction is none beyond the region."""
    from hepanav.margin.registration import local_stage
    from hepanav.phantoms.realistic_pair import true_post_to_pre, tumour_surface_error

    case, pair = procedural_pair
    off = _shifted(true_post_to_pre(case, pair), (1.2, -1.2, 1.0))
    before = tumour_surface_error(case, pair, off)
    assert before["mean"] == pytest.approx(np.sqrt(1.2**2 + 1.2**2 + 1.0**2), abs=0.1)
    settings = RegistrationSettings()
    correction, info = local_stage(
        pair.pre_ct, pair.post_ct, pair.post_ablation, pair.pre_tumor, off, settings
    )
    assert info.accepted, info
    assert info.metric_after < info.metric_before
    after = tumour_surface_error(case, pair, sitk.CompositeTransform([off, correction]))
    # Measured 0.69 / 0.99 mm from 1.93 mm (procedural pair, noise in both scans).
    assert after["mean"] <= 0.5 * before["mean"] and after["max"] <= 1.2, (before, after, info)
    # Beyond local_radius_mm of the zone the correction is zero.
    zone = sitk.GetArrayViewFromImage(pair.post_ablation) > 0
    centre = pair.post_ablation.TransformContinuousIndexToPhysicalPoint(
        np.argwhere(zone).mean(axis=0)[::-1].tolist()
    )
    reach = settings.local_radius_mm + 25.0  # + the zone's radius
    far = (np.asarray(centre) + np.array([reach, 0.0, 0.0])).tolist()
    assert np.allclose(correction.TransformPoint(far), far, atol=1e-9)


@pytest.mark.slow
def test_local_stage_is_refused_when_it_does_not_help(procedural_pair):
    """From the true transform there is nothing to gain: refused, or kept within 0.3 mm."""
    from hepanav.margin.registration import local_stage
    from hepanav.phantoms.realistic_pair import true_post_to_pre, tumour_surface_error

    case, pair = procedural_pair
    truth = true_post_to_pre(case, pair)
    correction, info = local_stage(
        pair.pre_ct,
        pair.post_ct,
        pair.post_ablation,
        pair.pre_tumor,
        truth,
        RegistrationSettings(),
    )
    result = sitk.CompositeTransform([truth, correction]) if info.accepted else truth
    assert tumour_surface_error(case, pair, result)["max"] <= 0.3, info
    # A cap below what the stage needs refuses it and says so.
    off = _shifted(truth, (2.0, 0.0, 0.0))
    _, capped = local_stage(
        pair.pre_ct,
        pair.post_ct,
        pair.post_ablation,
        pair.pre_tumor,
        off,
        RegistrationSettings(local_max_correction_mm=0.5),
    )
    assert not capped.accepted and "refused" in capped.note, capped
