"""Issue 13 items 5 and 6: findings drawn on the image (margin check, analysis report) and
the live display, checked off-screen and in headless Chromium screenshots."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from cli_helpers import one_line_error
from fluorescence_helpers import generated_frames, write_av_video
from fluorescence_screens import screenshot
from hepanav.fluorescence import annotate

KEEP = Path("/tmp/fluo")  # copies of the pictures for a person to look at (not asserted)


def _keep(path: Path) -> None:
    try:
        KEEP.mkdir(exist_ok=True)
        shutil.copy(path, KEEP / path.name)
    except OSError:
        pass


@pytest.fixture(scope="module")
def frames():
    return generated_frames(3)


def _surfaces(frame):
    lesion = frame.lesion_masks[1]
    ys, xs = np.nonzero(lesion)
    crossing = np.zeros(lesion.shape, bool)
    crossing[:, int(xs.mean()) - 4 : int(xs.mean()) + 4] = True  # a cut through lesion 2
    clear = np.zeros(lesion.shape, bool)
    clear[:, 0:20] = True
    return crossing, clear


def _near(image, colour, tol=12):
    return np.all(np.abs(image.astype(int) - np.array(colour)) <= tol, axis=-1)


def test_live_frame_shows_overlay_labels_margin_warning_and_latency(frames, tmp_path):
    from hepanav.fluorescence.live import LiveDisplay
    from hepanav.fluorescence.schema import AnalysisSettings
    from hepanav.fluorescence.sources import FramePair

    crossing, clear = _surfaces(frames[0])
    shots = {}
    for name, surface in (("risk", crossing), ("clear", clear)):
        live = LiveDisplay(AnalysisSettings(mm_per_px=0.2), 12, surface=surface)
        f = frames[0]
        shot = live.compose(FramePair(f.index, f.nir, f.white, 0.0))
        shots[name] = shot
        cv2.imwrite(str(tmp_path / f"live_{name}.png"), shot.image)
        _keep(tmp_path / f"live_{name}.png")
    risk, clear_shot = shots["risk"], shots["clear"]
    img = risk.image
    assert img.shape == (224, 256, 3) and risk.latency_ms > 0
    # Margin warning: a vermillion band across the top exactly when at risk.
    assert risk.at_risk is True and clear_shot.at_risk is False
    assert _near(img[2:6], annotate.VERMILLION).mean() > 0.5
    assert _near(clear_shot.image[2:6], annotate.VERMILLION).mean() < 0.05
    # Surface outline (sky blue) along the cut's edge.
    x_edge = int(np.nonzero(crossing[0])[0][0])
    assert _near(img[60:200, x_edge - 3 : x_edge + 3], annotate.SKY_BLUE).any()
    # Each lesion: a white box on its outline and a label above it (on the frame where no
    # margin drawing covers them).
    assert len(risk.lesions) == 2
    img = clear_shot.image
    for les in clear_shot.lesions:
        x, y, w, h = les.bbox_xywh
        perimeter = np.concatenate(
            [img[y, x : x + w], img[y + h, x : x + w], img[y : y + h, x], img[y : y + h, x + w]]
        )
        assert (perimeter.min(axis=1) > 200).mean() > 0.6, les.id
        label = img[max(0, y - 20) : y, x : x + 60]
        assert (label.min(axis=2) > 200).any(), les.id
    rim = next(les for les in risk.lesions if les.pattern == "rim")
    assert rim.tbr_rim is not None
    img = risk.image
    # Latency label (yellow) bottom right; scale bar (white) bottom left.
    corner = img[-25:, -140:].astype(int)
    yellowish = (corner[..., 2] > 150) & (corner[..., 1] > 130) & (corner[..., 0] < 140)
    assert yellowish.sum() > 10 and (corner.max(axis=2) == 0).sum() > 100  # text on its box
    assert (img[-20:, 5:70].min(axis=2) > 240).sum() > 30
    # The spot on the surface is circled (vermillion) near lesion 2's centre.
    cx, cy = (int(v) for v in risk.lesions[1].centroid_xy)
    assert _near(img[cy - 40 : cy + 40, cx - 40 : cx + 40], annotate.VERMILLION).sum() > 20


def test_jpeg_frames_are_served_as_multipart_mjpeg(frames):
    from hepanav.fluorescence.live import (
        MJPEG_BOUNDARY,
        LiveDisplay,
        jpeg_frames,
        live_frames,
        mjpeg_multipart,
    )
    from hepanav.fluorescence.schema import AnalysisSettings
    from hepanav.fluorescence.sources import FramePair

    live = LiveDisplay(AnalysisSettings(), 12)
    pairs = (FramePair(f.index, f.nir, f.white, None) for f in frames)
    body = b"".join(mjpeg_multipart(jpeg_frames(live_frames(pairs, live))))
    parts = body.split(f"--{MJPEG_BOUNDARY}\r\n".encode())[1:]
    assert len(parts) == 3
    for i, part in enumerate(parts):
        head, data = part.split(b"\r\n\r\n", 1)
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        assert headers["Content-Type"] == "image/jpeg"
        assert int(headers["X-Frame-Index"]) == i and float(headers["X-Latency-Ms"]) > 0
        jpeg = data[: int(headers["Content-Length"])]
        assert data[len(jpeg) :] == b"\r\n"
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (224, 256, 3)


def test_live_command_writes_frames_or_says_why_no_window(cli, frames, tmp_path, monkeypatch):
    video = write_av_video(tmp_path / "rec.mkv", [f.nir for f in frames])
    surface = tmp_path / "surface.png"
    cv2.imwrite(str(surface), _surfaces(frames[0])[0].astype(np.uint8) * 255)
    out = tmp_path / "frames"
    code, stdout, err = cli(
        "fluoro",
        "live",
        "--source",
        video,
        "--surface",
        surface,
        "--frames-out",
        out,
        "--no-pace",
        "--sync",
    )
    assert code == 0, err
    assert sorted(p.name for p in out.glob("*.jpg")) == [f"frame_{i:06d}.jpg" for i in range(3)]
    rows = (out / "latency.csv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 4 and rows[1].endswith(",0,true")
    assert "added latency p99" in stdout
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    code, _, err = cli("fluoro", "live", "--source", video)
    one_line_error(code, err, "no window can be opened", "--frames-out")
    code, _, err = cli("fluoro", "live", "--source", video, "--min-cnr", "nan", "--frames-out", out)
    one_line_error(code, err, "--min-cnr")
    code, _, err = cli(
        "fluoro", "live", "--source", video, "--analysis-interval-ms", "-1", "--frames-out", out
    )
    one_line_error(code, err, "--analysis-interval-ms")
    code, _, err = cli(
        "fluoro", "live", "--source", video, "--analysis-worker", "gpu", "--frames-out", out
    )
    one_line_error(code, err, "--analysis-worker")
    # --preload: decoded into memory, replayed at the recorded 30 fps like a camera.
    out2 = tmp_path / "preloaded"
    code, stdout, err = cli(
        "fluoro", "live", "--source", video, "--preload", "--frames-out", out2, "--max-frames", "3"
    )
    assert code == 0, err
    rows = (out2 / "latency.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "frame,time_s,added_latency_ms,n_lesions,dropped_total,at_risk"
    shown = [int(r.split(",")[0]) for r in rows[1:]]
    dropped = int(rows[-1].split(",")[4])
    assert shown[0] == 0 and shown == sorted(shown)
    assert (dropped > 0) == ("frames dropped" in stdout)
    # The default worker process: every frame shown was analysed or counted as not.
    analysed, skipped = (
        int(v) for v in re.search(r"(\d+) analysed, (\d+) shown without analysis", stdout).groups()
    )
    assert analysed + skipped == len(shown) and analysed >= 1
    assert dropped == shown[-1] - (len(shown) - 1)  # every frame not shown was counted


def test_margin_check_draws_surface_and_numbered_spots_on_nir_and_white(cli, frames, tmp_path):
    f = frames[0]
    nir, white, surface = tmp_path / "nir.png", tmp_path / "white.png", tmp_path / "surf.png"
    cv2.imwrite(str(nir), f.nir)
    cv2.imwrite(str(white), f.white)
    crossing, _ = _surfaces(f)
    cv2.imwrite(str(surface), crossing.astype(np.uint8) * 255)
    out = tmp_path / "margin"
    code, _, err = cli(
        "fluoro",
        "margin-check",
        "--nir",
        nir,
        "--white",
        white,
        "--surface",
        surface,
        "--mm-per-px",
        "0.2",
        "--out",
        out,
    )
    assert code == 0, err
    data = json.loads((out / "margin.json").read_text(encoding="utf-8"))
    assert data["at_risk"] is True and data["input"]["white"] == "white.png"
    page = screenshot(out / "margin.html", tmp_path / "margin_report.png")
    _keep(tmp_path / "margin_report.png")
    alts = [alt for _, _, alt in page["images"]]
    assert any(a.startswith("NIR, frame 0") for a in alts)
    assert any(a.startswith("White light, frame 0") for a in alts)
    assert all(w == 256 and h == 224 for w, h, _ in page["images"])
    assert "AT RISK" in page["text"] and "spot (number on the image)" in page["text"]
    # The pictures themselves: surface outline and a numbered vermillion circle.
    from hepanav.fluorescence.margin import margin_pictures
    from hepanav.fluorescence.schema import AnalysisSettings, MarginCriterion, MarginFrame

    frame = MarginFrame.model_validate(data["frames"][0])
    pics = margin_pictures(
        f.nir, f.white, crossing, frame, MarginCriterion(), AnalysisSettings(mm_per_px=0.2)
    )
    for image in pics.values():
        assert _near(image, annotate.SKY_BLUE).sum() > 100
        cx, cy = (int(v) for v in frame.spots[0].centroid_xy)
        assert _near(image[cy - 40 : cy + 40, cx - 40 : cx + 40], annotate.VERMILLION).sum() > 20


def test_analysis_report_shows_annotated_frame_scale_bar_rim_tbr_and_8bit_warning(
    cli, frames, tmp_path
):
    rgb = [cv2.cvtColor((f.nir >> 4).astype(np.uint8), cv2.COLOR_GRAY2RGB) for f in frames]
    video = write_av_video(
        tmp_path / "lossy.mkv", rgb, codec="mpeg4", pix_fmt="yuv420p", in_format="rgb24"
    )
    out = tmp_path / "out"
    code, _, err = cli(
        "fluoro", "analyze", "--nir", video, "--mm-per-px", "0.2", "--out", out, "--quiet"
    )
    assert code == 0, err
    page = screenshot(out / "report.html", tmp_path / "analysis_report.png")
    _keep(tmp_path / "analysis_report.png")
    text = page["text"]
    assert "8-bit data" in text and "lossy codec (mpeg4)" in text
    assert "rim TBR" in text
    frame_img = [i for i in page["images"] if i[2].startswith("Display frame")]
    assert frame_img and frame_img[0][:2] == [256, 224]
    assert "scale bar 10 mm" in frame_img[0][2]
    # Lossless 12-bit input: no quantification warning.
    folder = tmp_path / "seq"
    folder.mkdir()
    for f in frames:
        cv2.imwrite(str(folder / f"{f.index}.png"), f.nir)
    out2 = tmp_path / "out2"
    code, _, err = cli("fluoro", "analyze", "--nir", folder, "--out", out2, "--quiet")
    assert code == 0, err
    html = (out2 / "report.html").read_text(encoding="utf-8")
    assert "8-bit data" not in html and "lossy codec" not in html
    assert "no scale bar (pixel size unknown" in html


def test_scale_bar_length_is_round_and_true_to_the_pixel_size():
    image = np.zeros((200, 500, 3), np.uint8)
    length = annotate.draw_scale_bar(image, 0.2)  # 100 px target = 20 mm
    assert length == 20
    row = image[int(200 - 0.05 * 200) - 1]
    white = np.nonzero(row.min(axis=1) == 255)[0]
    assert white.max() - white.min() + 1 == pytest.approx(20 / 0.2, abs=1)


def test_asynchronous_live_display_never_waits_for_the_analysis(frames):
    from hepanav.fluorescence.live import LiveDisplay
    from hepanav.fluorescence.schema import AnalysisSettings
    from hepanav.fluorescence.sources import FramePair

    crossing, _ = _surfaces(frames[0])
    live = LiveDisplay(AnalysisSettings(), 12, surface=crossing, asynchronous=True)
    try:
        f0, f1 = frames[0], frames[1]
        first = live.compose(FramePair(0, f0.nir, f0.white, 0.0))
        # Frame 0 is shown before any analysis finished: no labels, no verdict yet.
        assert first.findings_index is None and first.lesions == [] and first.at_risk is None
        live.wait_for_analysis()
        second = live.compose(FramePair(1, f1.nir, f1.white, 1 / 30))
        # Frame 1 carries frame 0's findings, drawn, and says how old they are.
        assert second.findings_index == 0 and len(second.lesions) == 2
        assert second.at_risk is True
        assert _near(second.image[2:6], annotate.VERMILLION).mean() > 0.5
        live.wait_for_analysis()
        third = live.compose(FramePair(2, f1.nir, f1.white, 2 / 30))
        assert third.findings_index == 1
    finally:
        live.close()


# ---------------------------------------------------------------- fast display path (issue 13)
@pytest.fixture(scope="module")
def hd_frame():
    """One 960 x 540 frame (12-bit NIR + white light; analysed on a 2x downscaled working
    grid, as 1080p is on a 3x one) with four lesions of known centre and TBR (the bench's
    scene at half size), camera at rest."""
    from hepanav.phantoms.fluorescence import Camera, FluoroLesion, render_sequence

    w, h = 960, 540
    camera = Camera(width=w, height=h, mm_per_px=115.0 / w, specular_count=12)
    lesions = [
        FluoroLesion((0.25 * w, 0.3 * h), 14.0, 0.5, "rim", 7.0, rim_thickness_mm=2.0),
        FluoroLesion((0.7 * w, 0.3 * h), 10.0, 1.0, "homogeneous", 5.0),
        FluoroLesion((0.3 * w, 0.72 * h), 12.0, 2.0, "partial", 6.0),
        FluoroLesion((0.72 * w, 0.7 * h), 18.0, 3.0, "rim", 9.0, rim_thickness_mm=2.5),
    ]
    return camera, next(render_sequence(lesions, camera, n_frames=1, seed=1))


def test_fast_overlay_matches_the_float_reference_pixel_for_pixel(hd_frame):
    """The live overlay (16-bit LUT in OpenCV, blending only the boxes holding overlay)
    equals the same maths in float64 over the whole frame within 2 levels (integer
    rounding), and outside the overlay it is the white light unchanged."""
    from hepanav.fluorescence import display

    _, f = hd_frame
    gain = display.GainControl(bit_depth=12)
    gain.update(f.nir)
    level = gain.to_display(f.nir)
    lo, hi = gain.window
    ref_level = np.rint(255 * np.clip((f.nir.astype(np.float64) - lo) / (hi - lo), 0, 1) ** 0.6)
    assert np.abs(level.astype(int) - ref_level).max() <= 1
    style = display.OverlayStyle(colour="green")
    fast = display.overlay(f.white, level, style)
    alpha = 0.85 * np.clip((level.astype(np.float64) - 60) / 195, 0, 1)[..., None]
    ref = f.white * (1 - alpha) + np.array([0.0, 255.0, 0.0]) * alpha
    diff = np.abs(fast.astype(int) - np.rint(ref))
    assert diff.max() <= 2
    shown = alpha[..., 0] > 0
    assert 0.01 < shown.mean() < 0.5  # the lesions are a part of the frame
    assert np.array_equal(fast[~shown], f.white[~shown])
    # The whole-frame blend (the reference implementation) gives the same picture.
    assert np.array_equal(fast, display._blend(f.white, level, style))


def test_fast_live_labels_carry_the_reference_analysis_at_the_known_positions(hd_frame):
    """Asynchronous live display on a camera-like replay from memory: the labels drawn
    come from the worker's analysis and equal the synchronous reference analysis of the
    same frame; every lesion is labelled at its known position with its TBR within 10 %
    of the true TBR (noise-free image, true mask, 3-10 px annulus: the definition of
    test_fluorescence_metrics)."""
    from hepanav.fluorescence import measure
    from hepanav.fluorescence.analyze import FrameAnalyzer
    from hepanav.fluorescence.live import LiveDisplay, live_frames
    from hepanav.fluorescence.schema import AnalysisSettings
    from hepanav.fluorescence.sources import FramePair, MemoryReplay

    camera, f = hd_frame
    settings = AnalysisSettings(mm_per_px=camera.mm_per_px)
    reference = FrameAnalyzer(settings, 12).analyze(f.nir, f.white).lesions
    assert len(reference) == 4
    live = LiveDisplay(settings, 12, asynchronous=True)
    try:
        replay = MemoryReplay([FramePair(0, f.nir, f.white)], fps=30.0, n_frames=2)
        frames = live_frames(replay, live, fps=30.0)
        first = next(frames)
        live.wait_for_analysis()
        second = next(frames)
    finally:
        live.close()
    assert first.findings_index is None and second.findings_index == 0
    got = sorted(second.lesions, key=lambda r: r.centroid_xy)
    ref = sorted(reference, key=lambda r: r.centroid_xy)
    for g, r in zip(got, ref, strict=True):
        assert g.bbox_xywh == r.bbox_xywh and g.pattern == r.pattern
        assert g.tbr == pytest.approx(r.tbr, rel=1e-9)
    img = second.image
    for lesion in f.lesions:
        cx = lesion.centre_xy[0] - f.offset_xy[0]
        cy = lesion.centre_xy[1] - f.offset_xy[1]
        hit = [
            r
            for r in got
            if r.bbox_xywh[0] <= cx <= r.bbox_xywh[0] + r.bbox_xywh[2]
            and r.bbox_xywh[1] <= cy <= r.bbox_xywh[1] + r.bbox_xywh[3]
        ]
        assert len(hit) == 1, lesion
        r = hit[0]
        assert abs(r.centroid_xy[0] - cx) < 0.25 * r.bbox_xywh[2]
        assert abs(r.centroid_xy[1] - cy) < 0.25 * r.bbox_xywh[3]
        j = f.lesions.index(lesion)
        others = np.zeros(f.nir.shape, bool)
        for k, other in enumerate(f.lesion_masks):
            if k != j:
                others |= other
        ring = measure.annulus(f.lesion_masks[j].astype(np.uint8), others, 3, 10)
        true_tbr = f.nir_clean[f.lesion_masks[j]].mean() / f.nir_clean[ring].mean()
        assert r.tbr == pytest.approx(true_tbr, rel=0.10), (lesion.pattern, true_tbr)
        # Its box (white) is drawn on the frame and its label text above it.
        x, y, w, h = r.bbox_xywh
        assert (img[y, x : x + w].min(axis=1) > 200).mean() > 0.6
        assert (img[max(0, y - 40) : y, x : x + 200].min(axis=2) > 200).any()


def test_memory_replay_drops_frames_like_a_camera_and_the_screen_says_so(frames):
    """A reader slower than the source: the replay skips to the newest frame, counts the
    ones lost, and the live display shows the count (orange, bottom right)."""
    import time as _time

    from hepanav.fluorescence.live import LiveDisplay, live_frames
    from hepanav.fluorescence.schema import AnalysisSettings
    from hepanav.fluorescence.sources import FramePair, MemoryReplay

    pairs = [FramePair(f.index, f.nir, f.white) for f in frames]
    fps = 100.0
    replay = MemoryReplay(pairs, fps, n_frames=12)
    live = LiveDisplay(AnalysisSettings(), 12)
    shown = []
    for frame in live_frames(replay, live, fps=fps):
        shown.append(frame)
        _time.sleep(4 / fps)  # each frame is shown for 4 source periods: 3+ frames lost
    indices = [fr.index for fr in shown]
    gaps = int(sum(b - a - 1 for a, b in zip(indices, indices[1:], strict=False)))
    # Accounting, whatever the machine's speed: every source frame is shown or counted.
    assert len(shown) + replay.dropped == 12 and replay.dropped > 0 and gaps == live.dropped
    assert replay.dropped == indices[0] + gaps  # every frame not shown was counted
    assert shown[0].dropped == indices[0] and shown[-1].dropped == live.dropped > 0
    corner = shown[-1].image[-60:, -200:].astype(int)
    orange = (np.abs(corner - np.array(annotate.ORANGE)) <= 40).all(axis=-1)
    assert orange.sum() > 10
    # A display that keeps up sees every frame, and no warning.
    replay = MemoryReplay(pairs, 2.0, n_frames=3)
    live = LiveDisplay(AnalysisSettings(), 12)
    kept = list(live_frames(replay, live, fps=2.0))
    assert [fr.index for fr in kept] == [0, 1, 2] and replay.dropped == 0 == live.dropped


# ---------------------------------------------------------------- analysis worker process
def test_overlay_found_on_the_nir_frame_equals_the_full_frame_overlay(hd_frame):
    """The live path maps only the boxes holding overlay to display levels (boxes found
    on the NIR codes through the monotone gain table): the picture is the full-frame
    overlay's, pixel for pixel, in every colour; a frame without signal above the
    threshold is the white light unchanged."""
    from hepanav.fluorescence import display

    _, f = hd_frame
    for colour in ("green", "viridis", "magenta"):
        gain = display.GainControl(bit_depth=12)
        gain.update(f.nir)
        style = display.OverlayStyle(colour=colour)
        full = display.overlay(f.white, gain.to_display(f.nir), style)
        fast = display.overlay_nir(f.white, f.nir, gain, style)
        assert np.array_equal(fast, full), colour
        assert not np.array_equal(fast, f.white)  # the lesions are overlaid
    gain = display.GainControl(bit_depth=12, mode="fixed", fixed_range=(0.0, 4095.0))
    dark = np.full(f.nir.shape, 10, np.uint16)  # level 255 * (10/4095)^0.6 = 7 < 60
    assert np.array_equal(display.overlay_nir(f.white, dark, gain, style), f.white)


@pytest.mark.parametrize("worker", ["process", "thread"])
def test_worker_findings_equal_the_synchronous_analysis_frame_by_frame(frames, worker):
    """Every frame handed to the worker (waiting for it each time): the findings drawn on
    the next frame are the synchronous display's for that frame (same lesions, ids,
    TBR, margin verdict, spots), and every frame is accounted for."""
    from hepanav.fluorescence.live import LiveDisplay
    from hepanav.fluorescence.schema import AnalysisSettings
    from hepanav.fluorescence.sources import FramePair

    crossing, _ = _surfaces(frames[0])
    order = [0, 1, 2, 1, 0]
    pairs = [FramePair(i, frames[k].nir, frames[k].white, i / 30) for i, k in enumerate(order)]
    sync = LiveDisplay(AnalysisSettings(), 12, surface=crossing)
    reference = [sync.compose(p) for p in pairs]
    live = LiveDisplay(AnalysisSettings(), 12, surface=crossing, asynchronous=True, worker=worker)
    shown = []
    try:
        for p in pairs + [FramePair(len(pairs), frames[0].nir, frames[0].white, 1.0)]:
            shown.append(live.compose(p))
            live.wait_for_analysis()
    finally:
        live.close()
    assert shown[0].findings_index is None
    for i, ref in enumerate(reference):
        got = shown[i + 1]
        assert got.findings_index == i
        assert got.at_risk == ref.at_risk and got.warnings == ref.warnings
        assert [les.model_dump() for les in got.lesions] == [
            les.model_dump() for les in ref.lesions
        ]
    assert reference[0].at_risk is True and len(reference[0].lesions) == 2
    # One slot, waited for every time: all frames analysed, all findings back.
    assert live.analyses_started == live.analyses_finished == len(pairs) + 1
    assert live.frames_not_analysed == 0


def test_process_worker_accounts_for_every_frame_and_frees_its_shared_memory(frames):
    """A camera-like replay faster than the analysis: newest frame wins. Every frame
    shown is either handed to the worker or counted as not analysed; findings never
    come from a frame not yet shown and never go back in time; the shared block is
    gone after close."""
    from multiprocessing import shared_memory

    from hepanav.fluorescence.live import LiveDisplay, live_frames
    from hepanav.fluorescence.schema import AnalysisSettings
    from hepanav.fluorescence.sources import FramePair, MemoryReplay

    crossing, _ = _surfaces(frames[0])
    pairs = [FramePair(f.index, f.nir, f.white) for f in frames]
    live = LiveDisplay(AnalysisSettings(), 12, surface=crossing, asynchronous=True)
    live.start()
    replay = MemoryReplay(pairs, 200.0, n_frames=60)
    shown = []
    try:
        for frame in live_frames(replay, live, fps=200.0):
            shown.append((frame.index, frame.findings_index, frame.at_risk))
        name = live._process._shm.name
        live.wait_for_analysis()
    finally:
        live.close()
    assert len(shown) + replay.dropped == 60
    assert live.analyses_started + live.frames_not_analysed == len(shown)
    assert live.analyses_finished == live.analyses_started >= 1
    seen = [i for i, _, _ in shown]
    behind = [(i, k) for i, k, _ in shown if k is not None]
    assert all(k in seen and k < i for i, k in behind)
    assert all(a[1] <= b[1] for a, b in zip(behind, behind[1:], strict=False))
    assert all(risk is True for _, k, risk in shown if k is not None)
    with pytest.raises(FileNotFoundError):
        shared_memory.SharedMemory(name=name)


def test_analysis_process_reports_a_failed_analysis_with_its_message():
    """An analysis that raises in the worker process is re-raised in the display process
    with the worker's message (never a silent display without findings)."""
    from hepanav.fluorescence.schema import AnalysisSettings, MarginCriterion
    from hepanav.fluorescence.sources import FramePair
    from hepanav.fluorescence.worker import AnalysisProcess, AnalysisProcessError

    surface = np.zeros((32, 32), bool)  # a surface of another size than the frame
    proc = AnalysisProcess(AnalysisSettings(), 12, False, surface, MarginCriterion())
    try:
        proc.wait_ready()
        nir = np.full((64, 64), 2000, np.uint16)
        nir[20:40, 20:40] = 4000
        assert proc.submit(FramePair(0, nir, None), 0.0)
        assert not proc.submit(FramePair(1, nir, None), 0.0)  # one slot: busy
        with pytest.raises(AnalysisProcessError, match="worker process") as failed:
            proc.wait()
        assert "\n" not in str(failed.value) and "Traceback" in failed.value.details
        assert proc.started == proc.finished == 1
    finally:
        proc.close()
