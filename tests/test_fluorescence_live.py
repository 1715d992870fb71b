"""Issue 13 items 5 and 6: findings drawn on the image (margin check, analysis report) and
the live display, checked off-screen and in headless Chromium screenshots."""

from __future__ import annotations

import json
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
    assert len(rows) == 4 and rows[1].endswith(",true")
    assert "added latency p99" in stdout
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    code, _, err = cli("fluoro", "live", "--source", video)
    one_line_error(code, err, "no window can be opened", "--frames-out")
    code, _, err = cli("fluoro", "live", "--source", video, "--min-cnr", "nan", "--frames-out", out)
    one_line_error(code, err, "--min-cnr")


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
