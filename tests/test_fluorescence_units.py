"""Unit tests of hepanav.fluorescence against values known by construction."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hepanav.fluorescence import detect, display, measure
from hepanav.fluorescence.analyze import FrameAnalyzer, frame_problem
from hepanav.fluorescence.schema import AnalysisSettings, BackgroundDefinition
from hepanav.fluorescence.track import LesionTracker, MotionEstimator
from hepanav.phantoms.fluorescence import (
    Camera,
    FluoroLesion,
    Optics,
    lesion_contrast_patch,
    render_sequence,
)


def _disk(shape, centre, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.hypot(xx - centre[0], yy - centre[1]) <= radius


def test_annulus_covers_the_documented_distances():
    lesion = _disk((200, 200), (100, 100), 20)
    ring = measure.annulus(lesion.astype(np.uint8), None, 3, 10)
    expected = np.pi * ((20 + 10) ** 2 - (20 + 3) ** 2)
    assert ring.sum() == pytest.approx(expected, rel=0.04)
    yy, xx = np.nonzero(ring)
    r = np.hypot(xx - 100, yy - 100)
    assert r.min() > 22.5 and r.max() < 30.8


def test_annulus_leaves_out_pixels_near_other_lesions():
    lesion = _disk((200, 200), (80, 100), 20)
    other = _disk((200, 200), (118, 100), 8)
    ring = measure.annulus(lesion.astype(np.uint8), other, 3, 10)
    d_other = cv2.distanceTransform((~other).astype(np.uint8), cv2.DIST_L2, 5)
    assert ring.any()
    assert d_other[ring].min() > 3


@pytest.mark.parametrize("factor", [1, 2, 3])
def test_tbr_and_cnr_of_a_two_level_image(factor):
    # Lesion 900 DN on liver 300 DN with Gaussian noise SD 10 in the background.
    rng = np.random.default_rng(0)
    size = 60 * factor
    nir = np.full((size, size), 300.0) + rng.normal(0, 10, (size, size))
    lesion_full = _disk(nir.shape, (size / 2, size / 2), 10 * factor)
    nir[lesion_full] = 900
    nir = np.rint(nir).astype(np.uint16)
    working = detect.downscale(nir, factor).astype(np.float32)
    lesion = _disk(working.shape, (29.5, 29.5), 10)
    ring = measure.annulus(lesion.astype(np.uint8), None, 3, 10)
    stats = measure.intensities(nir, working, factor, (0, 0, 60, 60), lesion, lesion, ring, 4095)
    # Reference: the same masks blown up to the input grid, statistics on input pixels.
    cell = np.ones((factor, factor), bool)
    ring_full = np.kron(ring, cell)
    les_full = np.kron(lesion, cell)
    assert stats.background_mean == pytest.approx(nir[ring_full].mean(), rel=1e-6)
    assert stats.background_sd == pytest.approx(nir[ring_full].std(), rel=1e-6)
    # (the working image holds area means rounded to whole DN)
    assert stats.mean_signal == pytest.approx(nir[les_full].mean(), abs=0.05)
    assert stats.area_px == les_full.sum()
    # And against the values by construction (edge cells mix lesion and liver a little).
    assert stats.background_sd == pytest.approx(10.0, rel=0.08)
    assert stats.tbr == pytest.approx(3.0, rel=0.03)
    assert stats.cnr == pytest.approx(60.0, rel=0.1)


def _analyse(lesions, camera=None, seed=3, settings=None):
    camera = camera or Camera(width=384, height=384)
    frame = next(render_sequence(lesions, camera, seed=seed))
    analyzer = FrameAnalyzer(settings or AnalysisSettings(), camera.bit_depth)
    return frame, analyzer.analyze(frame.nir, frame.white)


@pytest.mark.parametrize(
    ("pattern", "extra"),
    [
        ("homogeneous", {}),
        ("rim", {"rim_thickness_mm": 2.0}),
        ("partial", {"partial_floor": 0.45, "partial_angle_deg": 180}),
    ],
)
def test_surface_patterns_are_classified(pattern, extra):
    lesion = FluoroLesion((190, 190), 15.0, depth_mm=0.3, pattern=pattern, surface_tbr=6.0, **extra)
    _, result = _analyse([lesion])
    assert [les.pattern for les in result.lesions] == [pattern]


def test_rim_thickness_of_a_surface_rim():
    camera = Camera(width=384, height=384, mm_per_px=0.1)
    lesion = FluoroLesion(
        (190, 190), 20.0, depth_mm=0.0, pattern="rim", surface_tbr=6.0, rim_thickness_mm=2.5
    )
    _, result = _analyse([lesion], camera, settings=AnalysisSettings(mm_per_px=0.1))
    (les,) = result.lesions
    assert les.pattern == "rim"
    # 2.5 mm ring; the 35 % contour of the (slightly blurred) ring widens it a little.
    assert les.rim_thickness_mm == pytest.approx(2.5, abs=0.4)
    assert les.area_mm2 == pytest.approx(np.pi * 10.0**2, rel=0.08)


def test_strong_vignetting_and_no_lesion_gives_no_detection():
    camera = Camera(width=512, height=384, vignetting=0.6)
    frames = list(render_sequence([], camera, n_frames=5, seed=4))
    analyzer = FrameAnalyzer(AnalysisSettings(), camera.bit_depth)
    assert sum(len(analyzer.analyze(f.nir, f.white).lesions) for f in frames) == 0


def test_depth_attenuates_and_blurs_as_specified():
    optics, camera = Optics(), Camera(mm_per_px=0.2)
    shallow, _ = lesion_contrast_patch(FluoroLesion((0, 0), 30.0, depth_mm=0.0), camera, optics)
    deep, _ = lesion_contrast_patch(FluoroLesion((0, 0), 30.0, depth_mm=5.0), camera, optics)
    # A 30 mm disk is much larger than the 2.3 mm blur: the centre keeps exp(-mu d).
    assert deep.max() / shallow.max() == pytest.approx(np.exp(-0.3 * 5.0), rel=0.02)
    assert optics.sigma_mm(10.0) == pytest.approx(0.15 + 4.2)


def test_tracker_keeps_ids_under_known_motion():
    tracker = LesionTracker(gate_px=10)
    a = np.array([[100.0, 100.0], [300.0, 120.0]])
    radii = np.array([20.0, 20.0])
    first = tracker.update(a, radii, (0, 0))
    # Camera moved: all content shifted by (+30, -5); detections come in swapped order.
    second = tracker.update(a[::-1] + [30, -5], radii, (30, -5))
    assert second == first[::-1]
    new = tracker.update(np.array([[500.0, 400.0]]), np.array([10.0]), (0, 0))
    assert new[0] not in first


def test_phase_correlation_measures_the_camera_shift():
    camera = Camera(width=320, height=256)
    lesions = [FluoroLesion((150, 120), 10.0)]
    frames = list(
        render_sequence(lesions, camera, n_frames=2, drift_px_per_frame=(4.0, -2.0), seed=1)
    )
    motion = MotionEstimator()
    motion.update(frames[0].white)
    dx, dy = motion.update(frames[1].white)
    # Camera offset grows by (4, -2) + wobble; the scene moves the other way.
    true = np.subtract(frames[0].offset_xy, frames[1].offset_xy)
    assert dx == pytest.approx(true[0], abs=0.5)
    assert dy == pytest.approx(true[1], abs=0.5)


@pytest.mark.parametrize(("drift", "n_frames"), [((2.0, 1.0), 25), ((-8.0, -4.0), 10)])
def test_ids_stay_the_same_over_a_moving_sequence(drift, n_frames):
    camera = Camera(width=384, height=320)
    lesions = [
        FluoroLesion((100, 100), 10.0, depth_mm=1.0),
        FluoroLesion((250, 110), 9.0, depth_mm=0.5, pattern="rim"),
        FluoroLesion((170, 220), 12.0, depth_mm=2.0, pattern="partial"),
    ]
    frames = list(
        render_sequence(lesions, camera, n_frames=n_frames, drift_px_per_frame=drift, seed=5)
    )
    analyzer = FrameAnalyzer(AnalysisSettings(), 12)
    ids_per_lesion = {0: set(), 1: set(), 2: set()}
    for frame in frames:
        result = analyzer.analyze(frame.nir, frame.white)
        for rec in result.lesions:
            x, y = (int(round(v)) for v in rec.centroid_xy)
            for j, m in enumerate(frame.lesion_masks):
                if m[y, x]:
                    ids_per_lesion[j].add(rec.id)
    assert all(len(ids) == 1 for ids in ids_per_lesion.values())
    assert len(set().union(*ids_per_lesion.values())) == 3


def test_user_background_roi():
    nir = np.full((100, 100), 200, np.uint16)
    nir[40:60, 40:60] = 800
    settings = AnalysisSettings(
        background=BackgroundDefinition(kind="roi", roi_xywh=(0, 0, 20, 20))
    )
    result = FrameAnalyzer(settings, 12).analyze(nir)
    (les,) = result.lesions
    assert les.background_mean == 200 and les.tbr == pytest.approx(4.0, rel=0.02)
    assert settings.background.description.startswith("user rectangle")


def test_frame_problems():
    assert frame_problem(np.zeros((64, 64), np.uint16), 4095).startswith("all_black")
    assert frame_problem(np.full((64, 64), 4095, np.uint16), 4095).startswith("saturated")
    assert frame_problem(np.full((64, 64), 300, np.uint16), 4095) is None
    # 300 DN is below 1 % of 16-bit full scale: black, with the hint about 12-bit data.
    assert "--bit-depth 12" in frame_problem(np.full((64, 64), 300, np.uint16), 65535)
    assert "--bit-depth" not in frame_problem(np.zeros((64, 64), np.uint16), 4095)


def test_fixed_gain_maps_the_window_with_gamma():
    gain = display.GainControl(bit_depth=12, mode="fixed", fixed_range=(100, 1100), gamma=0.5)
    gain.update(np.zeros((4, 4), np.uint16))
    nir = np.array([[0, 100, 350, 1100, 4000]], np.uint16)
    level = gain.to_display(nir)
    assert level.tolist() == [[0, 0, round(255 * 0.5), 255, 255]]


def test_auto_gain_is_smoothed_over_time():
    gain = display.GainControl(bit_depth=12, smoothing=0.8)
    dark = np.full((64, 64), 100, np.uint16)
    dark[0, 0] = 1000
    gain.update(dark)
    first = gain.window
    bright = dark * 3
    gain.update(bright)
    lo, hi = gain.window
    # One step moves 20 % of the way to the new percentiles.
    assert lo == pytest.approx(0.8 * first[0] + 0.2 * 300, rel=1e-6)
    assert first[1] < hi < np.percentile(bright[::8, ::8], 99.8)


def test_overlay_blending_values():
    white = np.full((2, 2, 3), (40, 60, 150), np.uint8)
    level = np.array([[0, 60], [255, 255]], np.uint8)
    style = display.OverlayStyle(colour="green", threshold=60, alpha_max=0.8)
    out = display.overlay(white, level, style).astype(int)
    assert out[0, 0].tolist() == [40, 60, 150]  # below threshold: untouched
    assert out[0, 1].tolist() == [40, 60, 150]
    expected = np.array([40, 60, 150]) * 0.2 + np.array([0, 255, 0]) * 0.8
    assert np.abs(out[1, 1] - expected).max() <= 1


@pytest.mark.parametrize("mode", display.MODES)
def test_display_modes_shapes(mode):
    white = np.zeros((30, 40, 3), np.uint8)
    level = np.zeros((30, 40), np.uint8)
    out = display.render(mode, level, white, display.OverlayStyle(colour="viridis"))
    assert out.shape == ((30, 80, 3) if mode == "side-by-side" else (30, 40, 3))


def test_overlay_without_white_light_is_the_colour_map():
    level = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = display.render("overlay", level, None, display.OverlayStyle(colour="green"))
    assert np.array_equal(out, display.colour_mapped(level, "inferno"))
    out = display.render("overlay", level, None, display.OverlayStyle())  # cividis
    assert np.array_equal(out, display.colour_mapped(level, "cividis"))


@pytest.mark.parametrize("colour", ["green", "magenta", "viridis"])
def test_overlay_equals_float_blend_and_skips_empty_rows(colour):
    rng = np.random.default_rng(2)
    white = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    level = np.zeros((64, 48), np.uint8)
    level[10:20] = rng.integers(0, 256, (10, 48))
    level[50:52, 5:9] = 255
    style = display.OverlayStyle(colour=colour)
    out = display.overlay(white, level, style).astype(float)
    alpha = style.alpha_max * np.clip(
        (level.astype(float) - style.threshold) / (255 - style.threshold), 0, 1
    )
    colours = display.colour_table(colour).reshape(256, 3).astype(float)[level]
    expected = white * (1 - alpha[..., None]) + colours * alpha[..., None]
    assert np.abs(out - expected).max() <= 2.0
    assert np.array_equal(out[:10], white[:10]) and np.array_equal(out[20:50], white[20:50])


def test_lesion_cut_by_the_frame_edge_is_flagged():
    camera = Camera(width=256, height=256)
    lesions = [FluoroLesion((5, 128), 10.0), FluoroLesion((150, 128), 10.0)]
    _, result = _analyse(lesions, camera)
    flags = sorted((les.centroid_xy[0], les.touches_border) for les in result.lesions)
    assert [f for _, f in flags] == [True, False]
