"""Regression tests of tester5's fluorescence defects (F1-F7), on synthetic frames whose
TBR and CNR are known by construction: discs of 2000 DN on a 500 DN liver with
Gaussian noise of SD 10 DN have TBR 4 and CNR (2000 - 500) / 10 = 150."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from hepanav.fluorescence import display, sources
from hepanav.fluorescence.analyze import FrameAnalyzer
from hepanav.fluorescence.margin import check_frame
from hepanav.fluorescence.schema import AnalysisSettings, BackgroundDefinition
from hepanav.fluorescence.track import MotionEstimator

SIZE = 512
LIVER, LESION, NOISE = 500.0, 2000.0, 10.0
TRUE_TBR, TRUE_CNR = LESION / LIVER, (LESION - LIVER) / NOISE


def _frame(discs, seed=1, size=SIZE, liver=LIVER, noise=NOISE, dtype=np.uint16, top=4095):
    """Liver with noise and discs ``(cx, cy, r, level)``; integer codes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size), liver) + rng.normal(0, noise, (size, size))
    for cx, cy, r, level in discs:
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        img[inside] = level + rng.normal(0, noise, int(inside.sum()))
    return np.clip(np.rint(img), 0, top).astype(dtype)


def _analyzer(bit_depth=12, **settings):
    return FrameAnalyzer(AnalysisSettings(bit_depth=bit_depth, **settings), bit_depth)


def _assert_true_values(lesion):
    # 3.92 on such discs: the smoothed edge puts a few liver pixels in the mask.
    assert lesion.tbr == pytest.approx(TRUE_TBR, rel=0.04)
    assert 0.8 * TRUE_CNR < lesion.cnr < 1.2 * TRUE_CNR


# F1 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("gap", [6, 12])
def test_two_equal_lesions_a_few_pixels_apart_are_both_reported(gap):
    # Old code: at a 6 px gap the blurred edges joined the discs into one region, the
    # smaller piece was dropped and counted as background of the other (CNR 5).
    left, right = 256 - 30 - gap // 2, 256 + 30 + gap - gap // 2
    nir = _frame([(left, 256, 30, LESION), (right, 256, 30, LESION)])
    result = _analyzer().analyze(nir)
    assert len(result.lesions) == 2, result.warnings
    xs = sorted(les.centroid_xy[0] for les in result.lesions)
    assert xs == pytest.approx([left, right], abs=1.5)
    for les in result.lesions:
        assert les.centroid_xy[1] == pytest.approx(256, abs=1.5)
        _assert_true_values(les)


@pytest.mark.parametrize("gap", [0, 2])
def test_touching_lesions_measured_as_one_are_named(gap):
    # Closer than about 3 working px the two discs stay one region at the outline level:
    # they cannot be split, but the waist of the outline is reported.
    left, right = 256 - 30 - gap // 2, 256 + 30 + gap - gap // 2
    result = _analyzer().analyze(_frame([(left, 256, 30, LESION), (right, 256, 30, LESION)]))
    assert len(result.lesions) == 1
    assert len(result.warnings) == 1 and "two touching lesions" in result.warnings[0]
    assert _analyzer().analyze(_frame([(256, 256, 30, LESION)])).warnings == []


def test_a_bright_speck_too_small_for_a_lesion_is_never_background():
    # A 5 px speck at 4000 DN, 7 px beyond the lesion edge (inside the 3-10 px annulus):
    # not a lesion (below the 12 px minimum diameter) but it must not be background.
    nir = _frame([(256, 256, 30, LESION), (256 + 30 + 7 + 2, 256, 2.5, 4000.0)])
    result = _analyzer().analyze(nir)
    assert len(result.lesions) == 1
    les = result.lesions[0]
    _assert_true_values(les)
    assert les.background_sd == pytest.approx(NOISE, rel=0.15)


# F3 ---------------------------------------------------------------------------------------


def test_background_rectangle_over_a_lesion_gives_no_tbr_and_a_warning():
    nir = _frame([(256, 256, 30, LESION)])
    over = BackgroundDefinition(kind="roi", roi_xywh=(200, 200, 120, 120))
    result = _analyzer(background=over).analyze(nir)
    assert len(result.lesions) == 1
    assert result.lesions[0].tbr is None and result.lesions[0].cnr is None
    assert len(result.warnings) == 1 and result.warnings[0].startswith("--bg-roi 200,200,120,120")
    # A user rectangle is used as given: the JSON must not claim lesions are left out.
    assert over.excludes_other_lesions is False
    clear = BackgroundDefinition(kind="roi", roi_xywh=(20, 20, 100, 100))
    result = _analyzer(background=clear).analyze(nir)
    assert result.warnings == []
    _assert_true_values(result.lesions[0])


def test_background_rectangle_over_a_lesion_cli_says_so_in_one_line(cli, tmp_path):
    cv2.imwrite(str(tmp_path / "nir.png"), _frame([(256, 256, 30, LESION)]))
    out = tmp_path / "o"
    code, _, err = cli(
        "fluoro", "analyze", "--nir", tmp_path / "nir.png", "--bit-depth", "12",
        "--bg-roi", "200,200,120,120", "--out", out, "--quiet", "--no-video", "--no-report",
    )  # fmt: skip
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--bg-roi" in lines[0] and "overlaps" in lines[0]
    data = json.loads((out / "lesions.json").read_text(encoding="utf-8"))
    assert data["background"]["excludes_other_lesions"] is False
    assert data["frames"][0]["lesions"][0]["tbr"] is None


# F6 ---------------------------------------------------------------------------------------


def _sat8():
    """8-bit data (liver 60, lesion saturated at 255) stored in 16-bit pixels."""
    return _frame([(256, 256, 30, 300.0)], liver=60.0, noise=3.0, top=255)


def test_8bit_data_in_16bit_pixels_with_bit_depth_8():
    img = _sat8()
    assert img.dtype == np.uint16 and img.max() == 255
    image, decision = sources.decide_depth(img, 8, "nir.png")
    assert decision.depth == 8 and image.dtype == np.uint8
    assert "--bit-depth 8" in decision.note
    assert np.array_equal(sources.check_nir(img, decision, "nir.png"), img.astype(np.uint8))
    result = FrameAnalyzer(AnalysisSettings(bit_depth=8), 8).analyze(image)
    assert any("saturated at code 255" in w for w in result.warnings)
    with pytest.raises(sources.InputError, match="does not fit 8 bit"):
        sources.decide_depth(img + 1000, 8, "nir.png")
    # Without --bit-depth the plateau at 255 is pointed out.
    _, auto = sources.decide_depth(img, None, "nir.png")
    assert auto.depth == 12 and "--bit-depth 8" in auto.warning


def test_8bit_data_in_16bit_png_cli(cli, tmp_path):
    cv2.imwrite(str(tmp_path / "nir.png"), _sat8())
    out = tmp_path / "o"
    code, _, err = cli(
        "fluoro", "analyze", "--nir", tmp_path / "nir.png", "--bit-depth", "8",
        "--out", out, "--quiet", "--no-video", "--no-report",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads((out / "lesions.json").read_text(encoding="utf-8"))
    assert data["input"]["bit_depth"] == 8
    assert any("--bit-depth 8" in n for n in data["input"]["notes"])
    assert any("saturated at code 255" in w for w in data["frames"][0]["warnings"])


# F2 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bgr, warning",
    [((80, 90, 170), None), ((170, 90, 80), "R and B"), ((235, 235, 235), "specular")],
)
def test_white_light_with_swapped_or_white_colours_keeps_the_lesion(bgr, warning):
    # Old code: blue > 150 was "highlight", so R/B-swapped liver (blue 170) hid everything.
    nir = _frame([(256, 256, 30, LESION)])
    rng = np.random.default_rng(3)
    white = np.clip(np.array(bgr) + rng.normal(0, 6, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    result = _analyzer().analyze(nir, white)
    assert len(result.lesions) == 1
    _assert_true_values(result.lesions[0])
    if warning is None:
        assert result.warnings == []
    else:
        assert any(warning in w for w in result.warnings), result.warnings


# F4 ---------------------------------------------------------------------------------------


def test_featureless_white_light_keeps_lesion_ids():
    # Noise-only white light: the phase-correlation "shift" is random (tens of px). The
    # lesion moves 3 px per frame and must keep its id.
    rng = np.random.default_rng(5)
    analyzer = _analyzer()
    ids, shifts = [], []
    for i in range(4):
        nir = _frame([(200 + 3 * i, 256, 30, LESION)], seed=10 + i)
        white = np.clip(np.array((80, 90, 170)) + rng.normal(0, 6, (SIZE, SIZE, 3)), 0, 255).astype(
            np.uint8
        )
        result = analyzer.analyze(nir, white)
        ids.append([les.id for les in result.lesions])
        shifts.append(result.motion_xy)
        if i:
            assert any(w.startswith("motion:") for w in result.warnings), result.warnings
    assert ids == [[1]] * 4
    # The NIR (which has the lesion) gives the shift instead: 3 px to the right.
    for dx, dy in shifts[1:]:
        assert dx == pytest.approx(3, abs=1) and dy == pytest.approx(0, abs=1)


def test_motion_of_pure_noise_is_unreliable_and_zero():
    rng = np.random.default_rng(0)
    motion = MotionEstimator()
    motion.update(rng.normal(100, 5, (256, 256)).astype(np.float32))
    shift = motion.update(rng.normal(100, 5, (256, 256)).astype(np.float32))
    assert not motion.reliable and shift == (0.0, 0.0)


# F5 ---------------------------------------------------------------------------------------


def test_margin_summary_counts_only_spots_meeting_the_criterion(cli, tmp_path):
    # One spot with CNR 150 and three faint ones (+15 DN: CNR about 1.5 < 3) on the band.
    faint = [(100 + 80 * k, 256, 5, LIVER + 15) for k in range(3)]
    nir = _frame([(400, 256, 8, LESION), *faint])
    surface = np.zeros((SIZE, SIZE), np.uint8)
    surface[236:277, :] = 255
    frame = check_frame(0, nir, surface > 0, AnalysisSettings(bit_depth=12), 4095)
    meets = [s for s in frame.spots if s.meets_criterion]
    assert len(meets) == 1 and meets[0].cnr > 100
    assert len(frame.spots) >= 4  # the faint ones are detected and listed
    cv2.imwrite(str(tmp_path / "nir.png"), nir)
    cv2.imwrite(str(tmp_path / "surface.png"), surface)
    code, out, err = cli(
        "fluoro", "margin-check", "--nir", tmp_path / "nir.png", "--surface",
        tmp_path / "surface.png", "--bit-depth", "12", "--out", tmp_path / "m",
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("at_risk=true: 1 spot(s) with CNR >= 3 and area >= 20 px"), out
    data = json.loads((tmp_path / "m" / "margin.json").read_text(encoding="utf-8"))
    assert sum(s["meets_criterion"] for s in data["frames"][0]["spots"]) == 1


# F7 ---------------------------------------------------------------------------------------


def test_default_overlay_colour_is_colour_blind_safe():
    assert display.OverlayStyle().colour == "cividis"


def test_render_draws_a_scale_bar_with_mm_per_px(cli, tmp_path):
    (tmp_path / "nir").mkdir()
    (tmp_path / "white").mkdir()
    for i in range(2):
        cv2.imwrite(str(tmp_path / "nir" / f"f{i}.png"), _frame([(256, 256, 30, LESION)]))
        cv2.imwrite(
            str(tmp_path / "white" / f"f{i}.png"), np.full((SIZE, SIZE, 3), (80, 90, 170), np.uint8)
        )
    first = {}
    for name, extra in (("plain", []), ("bar", ["--mm-per-px", "0.1"])):
        path = tmp_path / f"{name}.mp4"
        code, _, err = cli(
            "fluoro", "render", "--nir", tmp_path / "nir", "--white", tmp_path / "white",
            "--bit-depth", "12", "--out", path, *extra,
        )  # fmt: skip
        assert code == 0, err
        ok, first[name] = cv2.VideoCapture(str(path)).read()
        assert ok
    # 0.1 mm/px on 512 px: a 10 mm bar of 100 px, bottom left (white on black).
    corner = (slice(int(0.9 * SIZE), SIZE), slice(0, SIZE // 3))
    assert (first["bar"][corner].min(axis=2) > 200).sum() > 200
    assert (first["plain"][corner].min(axis=2) > 200).sum() == 0
