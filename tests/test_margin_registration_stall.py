"""The B-spline stages' stall rule (``RegistrationSettings.bspline_stall_*``).

Known answer by construction: the moving image is the fixed image shifted by a known
translation ``d`` (mm), so the post -> pre transform is ``x -> x + d`` everywhere.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from hepanav.margin import registration
from hepanav.margin.registration import RegistrationSettings, StallRule

SHIFT_MM = (1.6, -1.1, 0.7)


def _pair() -> tuple[sitk.Image, sitk.Image]:
    """Smooth random texture (40^3 voxels of 2 mm, HU-like range) and its shift by SHIFT_MM."""
    rng = np.random.default_rng(3)
    texture = ndimage.gaussian_filter(rng.normal(size=(40, 40, 40)), 2.5)
    texture = 100.0 * texture / texture.std()
    fixed = sitk.GetImageFromArray(texture.astype(np.float32))
    fixed.SetSpacing((2.0, 2.0, 2.0))
    fixed.SetOrigin((-40.0, -40.0, -40.0))
    # moving(x) = fixed(x - d): a point x of fixed is found at x + d in moving.
    moving = sitk.Resample(
        fixed, fixed, sitk.TranslationTransform(3, [-s for s in SHIFT_MM]), sitk.sitkBSpline
    )
    return fixed, moving


def _register(settings: RegistrationSettings, monkeypatch) -> tuple[sitk.Transform, list]:
    """One B-spline stage as ``register_pre_to_post`` runs it; the stall rules it used."""
    rules: list[StallRule] = []

    class Recorded(StallRule):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            rules.append(self)

    monkeypatch.setattr(registration, "StallRule", Recorded)
    return _stage(settings), rules


def _stage(settings: RegistrationSettings) -> sitk.Transform:
    """One B-spline stage of :func:`_pair` as ``register_pre_to_post`` runs it."""
    fixed, moving = _pair()
    # Metric on the inner 56 mm cube only (a shifted point near the edge leaves the image).
    mask = sitk.Cast(fixed * 0, sitk.sitkUInt8)
    mask[6:34, 6:34, 6:34] = 1
    reg = registration._method(settings, mask, mask, rigid=False)
    bspline = sitk.BSplineTransformInitializer(fixed, [2, 2, 2], order=3)
    return registration._run(reg, fixed, moving, bspline, None, settings)


def _recovered(transform: sitk.Transform) -> np.ndarray:
    """Displacement of the transform at points within 20 mm of the centre, shape (N, 3)."""
    grid = np.stack(np.meshgrid(*[np.linspace(-20, 20, 5)] * 3, indexing="ij"), -1)
    points = grid.reshape(-1, 3)
    mapped = np.array([transform.TransformPoint(p.tolist()) for p in points])
    return mapped - points


def test_stall_rule_fires_and_keeps_the_known_translation(monkeypatch):
    settings = RegistrationSettings(sampling_fraction=0.3, bspline_iterations=40)
    assert settings.bspline_stall_iterations > 0  # on by default
    transform, rules = _register(settings, monkeypatch)
    (rule,) = rules
    # It fired before the iteration limit, at the first iteration whose K preceding
    # iterations gained less than the tolerance (iterations counted, not time).
    k, tol = settings.bspline_stall_iterations, settings.bspline_stall_tolerance
    assert rule.fired_at is not None
    assert k < rule.fired_at < settings.bspline_iterations
    best = rule.best_at_end
    stalled = [n for n in range(k + 1, rule.fired_at + 1) if best[n - 1 - k] - best[n - 1] < tol]
    assert stalled == [rule.fired_at]
    # The result is the known translation within 0.3 mm at every point (0.22 mm measured;
    # 0.10 mm with the rule off: stopping early costs accuracy here, see the next test).
    error = np.abs(_recovered(transform) - np.asarray(SHIFT_MM))
    assert error.max() < 0.3


def test_stall_rule_off_runs_on(monkeypatch):
    settings = RegistrationSettings(
        sampling_fraction=0.3, bspline_iterations=40, bspline_stall_iterations=0
    )
    transform, rules = _register(settings, monkeypatch)
    (rule,) = rules
    assert rule.fired_at is None
    error = np.abs(_recovered(transform) - np.asarray(SHIFT_MM))
    assert error.max() < 0.15


def test_stall_rule_is_a_setting():
    with pytest.raises(ValueError):
        RegistrationSettings(bspline_stall_iterations=-1)
    with pytest.raises(ValueError):
        RegistrationSettings(bspline_stall_tolerance=-1e-5)


def _with_observer(monkeypatch, observe) -> list:
    """Make every StallRule also register ``observe(rule)`` as an iteration observer
    (added after the rule's own, so it runs after it at each iteration)."""
    rules: list[StallRule] = []

    class Observed(StallRule):
        def __init__(self, reg, *args, **kwargs):
            super().__init__(reg, *args, **kwargs)
            rules.append(self)
            reg.AddCommand(sitk.sitkIterationEvent, lambda: observe(self))

    monkeypatch.setattr(registration, "StallRule", Observed)
    return rules


def test_stderr_stays_live_and_the_rules_stop_is_silent(monkeypatch, capsys):
    """What is written to sys.stderr during a registration (the CLI's progress bar,
    warnings) reaches it at once, not after the stage; the rule's own stop prints no
    traceback; sys.excepthook is restored afterwards."""
    hook = sys.excepthook
    live: list[bool] = []

    def tick(rule: StallRule) -> None:
        sys.stderr.write(f"tick {len(live)}\n")
        live.append(f"tick {len(live)}" in capsys.readouterr().err)  # there already?

    rules = _with_observer(monkeypatch, tick)
    settings = RegistrationSettings(sampling_fraction=0.3, bspline_iterations=40)
    transform = _stage(settings)
    (rule,) = rules
    assert rule.fired_at is not None  # the stop happened (the rule's exception)
    assert len(live) > settings.bspline_stall_iterations and all(live)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "_Stalled" not in err
    assert sys.excepthook is hook
    # the result is the rule's best position, as before
    assert transform.GetParameters() == pytest.approx(rule._position, abs=0)


def test_an_unexpected_observer_error_is_printed_and_raised(monkeypatch, capsys):
    hook = sys.excepthook

    def fail(rule: StallRule) -> None:
        if rule.reg.GetOptimizerIteration() == 2:
            raise ValueError("an observer's own bug")

    _with_observer(monkeypatch, fail)
    settings = RegistrationSettings(sampling_fraction=0.3, bspline_iterations=40)
    with pytest.raises(RuntimeError, match="Python Callable"):
        _stage(settings)
    err = capsys.readouterr().err
    assert "Traceback" in err and "ValueError: an observer's own bug" in err
    assert sys.excepthook is hook


def test_a_misspelt_setting_is_refused():
    """An unknown field (a typo in a bench's settings JSON) must not silently run the
    defaults."""
    with pytest.raises(ValueError, match="local_holdout_block"):
        RegistrationSettings(local_holdout_block=10.0)
