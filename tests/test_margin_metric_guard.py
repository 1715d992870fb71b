"""The metric guard of ``register_pre_to_post``: after the rigid + B-spline stages, the
result is kept only if it beats, on the stages' metric, both its start (the initial
alignment) and the identity; else the better of those two is kept and ``method`` says so.

Known answers by construction (lesion-region mode, no liver masks): the pre CT is the
post CT's texture moved by ``SHIFT`` (whole voxels: no interpolation), so the true post ->
pre map is ``x -> x + SHIFT``; the tumour's centre is the zone's centre moved by ``SHIFT +
OFFSET`` (both balls centred on voxel centres: their voxel centroids are the centres), so
the stages' start (tumour centroid mapped onto zone centroid) is ``x -> x + SHIFT +
OFFSET``. Forcing the global stages to a result 15 mm off makes the guard keep the start
(or, when the start is further off than the identity, the identity). The last two tests
show a defect of the guard, fixed: a candidate meeting the metric region in a sliver of
the pre scan won on a correlation over a few points.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from hepanav.margin import registration
from hepanav.margin.registration import RegistrationSettings, register_pre_to_post

N, SPACING = 48, 3.0
ORIGIN = -(N - 1) * SPACING / 2  # voxel centres at -70.5 + 3 k mm
CENTRE = np.array([-1.5, -1.5, -1.5])  # the zone's centre, a voxel centre
ZONE_MM, TUMOUR_MM = 15.0, 9.0
WRONG_MM = np.array([15.0, 0.0, 0.0])  # the forced error of the global stages
KEPT = "was kept instead"
# Start 4.2 mm off, identity 12.4 mm off: the start is the better of the two.
START_BETTER = {"shift": (9.0, -6.0, 6.0), "offset": (3.0, 0.0, -3.0)}
# Start 10.8 mm off, identity 3 mm off: the identity is the better of the two.
IDENTITY_BETTER = {"shift": (3.0, 0.0, 0.0), "offset": (9.0, -6.0, 0.0)}
# Points near the zone (post space, LPS mm) where the transforms are compared.
POINTS = CENTRE + np.array(
    [[0, 0, 0], [20, 0, 0], [0, -20, 10], [-15, 15, -15], [10, 10, 25]], dtype=float
)


def _image(array: np.ndarray, origin_shift=(0.0, 0.0, 0.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((SPACING,) * 3)
    image.SetOrigin(tuple(ORIGIN + s for s in origin_shift))
    return image


def _ball(centre, radius_mm: float) -> np.ndarray:
    """Ball on the N^3 lattice (z, y, x array); ``centre`` relative to the lattice, mm."""
    xyz = np.indices((N,) * 3)[::-1].reshape(3, -1).T * SPACING + ORIGIN
    inside = np.linalg.norm(xyz - np.asarray(centre), axis=1) <= radius_mm
    return inside.reshape((N,) * 3)


def _pair(shift, offset, frame=(0.0, 0.0, 0.0)):
    """``(pre_ct, post_ct, post_zone, pre_tumour)``: smooth soft-tissue texture (50 +- 40 HU,
    ~6 mm grain) 48^3 x 3 mm; pre(x + shift) = post(x) outside the zone and tumour (a
    constant 30 HU zone on post, 80 HU tumour on pre). ``frame`` moves the pre scan's
    origin (another frame of reference): the true map is then ``x -> x + shift + frame``."""
    step = np.rint(np.asarray(shift) / SPACING).astype(int)
    assert np.allclose(step * SPACING, shift)
    pad = 8
    rng = np.random.default_rng(7)
    texture = ndimage.gaussian_filter(rng.normal(size=(N + 2 * pad,) * 3), 2.0)
    texture = 50.0 + 40.0 * texture / texture.std()
    post = texture[pad : pad + N, pad : pad + N, pad : pad + N].copy()
    z, y, x = pad - step[2], pad - step[1], pad - step[0]
    pre = texture[z : z + N, y : y + N, x : x + N].copy()
    zone = _ball(CENTRE, ZONE_MM)
    tumour = _ball(CENTRE + np.asarray(shift) + np.asarray(offset), TUMOUR_MM)
    post[zone], pre[tumour] = 30.0, 80.0
    return (
        _image(pre.astype(np.float32), frame),
        _image(post.astype(np.float32)),
        _image(zone.astype(np.uint8)),
        _image(tumour.astype(np.uint8), frame),
    )


def _moved(transform: sitk.Transform, points=POINTS) -> np.ndarray:
    """Displacement ``T(p) - p`` at ``points``, shape (N, 3)."""
    return np.array([transform.TransformPoint(p.tolist()) for p in points]) - points


def _wrong_global_stages(monkeypatch, translation=None) -> list[str]:
    """Replace ``_run`` (both global stages): the rigid stage ends 15 mm off its start, or
    at ``translation`` (mm) when given (updated in place, as the real one), the B-splines
    at their initial (zero) parameters. Returns the kinds of transform it was called with."""
    calls: list[str] = []

    def run(reg, fixed, moving, initial, moving_initial, settings=None):
        calls.append(type(initial).__name__)
        if isinstance(initial, sitk.Euler3DTransform):
            to = np.asarray(initial.GetTranslation()) + WRONG_MM
            initial.SetTranslation((to if translation is None else translation).tolist())
        return initial

    monkeypatch.setattr(registration, "_run", run)
    return calls


def _register(pair, **settings) -> registration.RegistrationResult:
    pre, post, zone, tumour = pair
    return register_pre_to_post(
        pre, post, None, None, zone, tumour, RegistrationSettings(spacing_mm=3.0, **settings)
    )


@pytest.mark.parametrize(
    ("case", "best", "kept"),
    [
        (START_BETTER, "start", "initial alignment"),
        (IDENTITY_BETTER, "identity", "identity"),
    ],
)
def test_guard_keeps_the_better_of_start_and_identity(monkeypatch, case, best, kept):
    calls = _wrong_global_stages(monkeypatch)
    result = _register(_pair(**case), local_stage=False)
    # Both global stages ran (through the fake): rigid, then the two B-splines.
    assert calls == ["Euler3DTransform", "BSplineTransform", "BSplineTransform"]
    assert result.mode == "lesion_region" and result.local is None
    expected = np.add(case["shift"], case["offset"]) if best == "start" else np.zeros(3)
    assert np.abs(_moved(result.transform) - expected).max() < 1e-6
    assert f"did not improve the metric over the {best} (" in result.method
    assert result.method.endswith(f"the {kept} {KEPT}")


def test_local_stage_runs_on_top_of_the_kept_start(monkeypatch):
    _wrong_global_stages(monkeypatch)
    seen: list[sitk.Transform] = []
    local_stage = registration.local_stage

    def spy(pre_ct, post_ct, zone, tumour, transform, settings):
        seen.append(transform)
        return local_stage(pre_ct, post_ct, zone, tumour, transform, settings)

    monkeypatch.setattr(registration, "local_stage", spy)
    case = START_BETTER
    start = np.add(case["shift"], case["offset"])
    result = _register(_pair(**case))
    # The local stage started from the kept start, not from the 15 mm result.
    (given,) = seen
    assert np.abs(_moved(given) - start).max() < 1e-6
    assert result.local is not None and result.local.accepted, result.local
    assert "the initial alignment was kept instead" in result.method
    # Beyond its region the local correction is none: the start, exactly.
    far = CENTRE + np.array([[60.0, 60.0, 0.0], [-60.0, 0.0, -60.0]])
    assert np.abs(_moved(result.transform, far) - start).max() < 1e-6
    # At the zone it took the start (4.2 mm off) to the truth (0.23 mm measured).
    error = np.linalg.norm(_moved(result.transform, POINTS[:1]) - case["shift"])
    assert error < 1.0, error


def test_guard_keeps_a_result_that_improves_the_metric(monkeypatch):
    scores: dict[str, float] = {}
    metric_value = registration._metric_value
    names = {"CompositeTransform": "result", "Euler3DTransform": "start"}

    def spy(*args):
        name = names.get(type(args[-1]).__name__, "identity")
        scores[name] = metric_value(*args)
        return scores[name]

    monkeypatch.setattr(registration, "_metric_value", spy)
    case = START_BETTER
    result = _register(_pair(**case))
    assert KEPT not in result.method
    # The guard did compare: the result beat the start and the identity.
    assert sorted(scores) == ["identity", "result", "start"], scores
    assert scores["result"] < min(scores["start"], scores["identity"]), scores
    # The true translation is recovered (the start was 4.2 mm off).
    assert np.abs(_moved(result.transform) - np.asarray(case["shift"])).max() < 1.0


# The pre scan in another frame of reference, (57, 0, 141) mm away: at the identity the
# post metric region reaches only a sliver at the pre scan's corner (a few sample points).
SLIVER_FRAME = (57.0, 0.0, 141.0)


def _on_its_own_points(pair, settings: RegistrationSettings, transform) -> float:
    """A candidate's score as the guard computed it before: the lesion-region working
    grids and masks of ``register_pre_to_post``, each candidate on the sample points IT
    maps inside the moving region."""
    pre, post, zone, tumour = pair
    settings = settings.model_copy(update={"sampling_fraction": settings.region_sampling_fraction})
    pad = settings.region_radius_mm + 20.0
    fixed_ct, fixed_zone = registration._working_grid(post, zone, settings, pad)
    moving_ct, moving_tumour = registration._working_grid(pre, tumour, settings, pad + 20.0)
    return registration._metric_value(
        settings,
        registration._windowed(fixed_ct),
        registration._windowed(moving_ct),
        registration._region_mask(fixed_ct, fixed_zone, settings),
        registration._region_mask(moving_ct, moving_tumour, settings, radius_extra_mm=20.0),
        transform,
    )


def test_guard_ignores_an_identity_that_overlaps_a_few_points():
    """Defect (fixed): candidates were scored each on its own valid points, so an identity
    that maps only a sliver of the region onto the pre scan scored a correlation of -1.0
    (a few points) and replaced a registration accurate to 0.05 mm: 161 mm off."""
    case = START_BETTER
    pair = _pair(**case, frame=SLIVER_FRAME)
    settings = RegistrationSettings(spacing_mm=3.0, local_stage=False)
    # Premise: on its own few points the identity scores a perfect correlation.
    assert _on_its_own_points(pair, settings, sitk.TranslationTransform(3)) <= -1.0 + 1e-9
    result = _register(pair, local_stage=False)
    assert KEPT not in result.method
    truth = np.add(case["shift"], SLIVER_FRAME)
    assert np.abs(_moved(result.transform) - truth).max() < 1.0


def test_guard_drops_a_result_that_overlaps_a_few_points(monkeypatch):
    """The same defect the other way: global stages that diverged to where the region meets
    the pre scan in a sliver scored -1.0 there and were kept, 161 mm off; now the result is
    not comparable and the start is kept."""
    case = START_BETTER
    pair = _pair(**case)
    diverged = -np.asarray(SLIVER_FRAME)  # the sliver geometry of the test above
    settings = RegistrationSettings(spacing_mm=3.0, local_stage=False)
    own = _on_its_own_points(pair, settings, sitk.TranslationTransform(3, diverged.tolist()))
    assert own <= -1.0 + 1e-9  # premise: better than any real registration
    _wrong_global_stages(monkeypatch, diverged)
    result = _register(pair, local_stage=False)
    start = np.add(case["shift"], case["offset"])
    assert np.abs(_moved(result.transform) - start).max() < 1e-6
    assert "not comparable: the initial alignment was kept instead" in result.method
