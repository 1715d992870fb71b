"""``hepanav fluoro`` end to end on generated data, and every bad-input case of issue 3."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from cli_helpers import one_line_error
from hepanav import DISCLAIMER
from hepanav.phantoms.fluorescence import (
    Camera,
    FluoroLesion,
    render_sequence,
    save_frames,
    vendor_overlay,
)

CAMERA = Camera(width=256, height=224, mm_per_px=0.2)
LESIONS = [
    FluoroLesion((80, 80), 9.0, depth_mm=0.5, pattern="rim", surface_tbr=6.0, rim_thickness_mm=1.6),
    FluoroLesion((180, 150), 7.0, depth_mm=0.5, pattern="homogeneous", surface_tbr=5.0),
]


@pytest.fixture(scope="module")
def frames():
    return list(render_sequence(LESIONS, CAMERA, n_frames=6, drift_px_per_frame=(1.0, 0.5), seed=3))


@pytest.fixture(scope="module")
def sequence(frames, tmp_path_factory):
    return save_frames(frames, tmp_path_factory.mktemp("seq"))


def _write_video(path, images):
    h, w = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    for im in images:
        writer.write(im if im.ndim == 3 else cv2.cvtColor(im, cv2.COLOR_GRAY2BGR))
    writer.release()


def test_analyze_sequence_writes_json_csv_video_report(cli, sequence, tmp_path):
    nir_dir, white_dir = sequence
    out = tmp_path / "out"
    code, stdout, err = cli(
        "fluoro",
        "analyze",
        "--nir",
        nir_dir,
        "--white",
        white_dir,
        "--bit-depth",
        "12",
        "--mm-per-px",
        "0.2",
        "--out",
        out,
        "--quiet",
    )
    assert code == 0, err
    data = json.loads((out / "lesions.json").read_text(encoding="utf-8"))
    assert data["disclaimer"] == DISCLAIMER and data["complete"] is True
    assert data["n_frames"] == 6
    assert "3 to 10 px beyond the lesion edge" in data["background"]["description"]
    assert data["tbr_definition"].startswith("TBR = mean")
    assert (
        data["latency"]["median_ms"] > 0
        and data["latency"]["p99_ms"] >= data["latency"]["median_ms"]
    )
    ids = set()
    for frame in data["frames"]:
        assert len(frame["lesions"]) == 2
        for les in frame["lesions"]:
            for key in ("id", "centroid_xy", "bbox_xywh", "area_px", "pattern", "tbr", "cnr"):
                assert key in les
            ids.add(les["id"])
        patterns = {les["pattern"] for les in frame["lesions"]}
        assert patterns == {"rim", "homogeneous"}
    assert len(ids) == 2  # the same two ids throughout
    rows = (out / "frames.csv").read_text(encoding="utf-8").strip().splitlines()
    assert len(rows) == 7
    cap = cv2.VideoCapture(str(out / "display.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    assert DISCLAIMER in (out / "report.html").read_text(encoding="utf-8")


def test_analyze_8bit_video(cli, frames, tmp_path):
    video = tmp_path / "nir.avi"
    _write_video(video, [(f.nir >> 4).astype(np.uint8) for f in frames])
    out = tmp_path / "out"
    code, _, err = cli("fluoro", "analyze", "--nir", video, "--out", out, "--quiet", "--no-report")
    assert code == 0, err
    data = json.loads((out / "lesions.json").read_text(encoding="utf-8"))
    assert data["input"]["bit_depth"] == 8 and data["n_frames"] == 6
    assert all(len(f["lesions"]) == 2 for f in data["frames"])


def test_analyze_side_by_side_and_vendor_overlay(cli, frames, tmp_path):
    sbs = tmp_path / "sbs"
    sbs.mkdir()
    ov = tmp_path / "ov"
    ov.mkdir()
    for f in frames:
        nir8 = cv2.cvtColor((f.nir >> 4).astype(np.uint8), cv2.COLOR_GRAY2BGR)
        cv2.imwrite(str(sbs / f"{f.index:03d}.png"), np.hstack([f.white, nir8]))
        blended, _ = vendor_overlay(f.white, f.nir, 1.4 * CAMERA.background_dn, float(f.nir.max()))
        cv2.imwrite(str(ov / f"{f.index:03d}.png"), blended)
    for layout, src in (("side-by-side", sbs), ("overlay", ov)):
        out = tmp_path / layout
        code, _, err = cli(
            "fluoro", "analyze", "--nir", src, "--layout", layout, "--out", out, "--quiet"
        )
        assert code == 0, err
        data = json.loads((out / "lesions.json").read_text(encoding="utf-8"))
        assert data["input"]["frame_size_wh"] == [256, 224]
        found = data["frames"][0]["lesions"]
        assert len(found) == 2, layout
        xs = sorted(les["centroid_xy"][0] for les in found)
        assert xs[0] == pytest.approx(80, abs=4) and xs[1] == pytest.approx(180, abs=4)
        # The tower's threshold removed the liver background: no ratio can be formed.
        clipped = layout == "overlay"
        assert all((les["tbr"] is None) == clipped for les in found)


def test_bad_frames_are_warnings_and_the_rest_is_kept(cli, frames, tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for f in frames:
        cv2.imwrite(str(folder / f"f{f.index:03d}.png"), f.nir)
    cv2.imwrite(str(folder / "f001.png"), np.zeros_like(frames[0].nir))  # all black
    cv2.imwrite(str(folder / "f002.png"), np.full_like(frames[0].nir, 4095))  # saturated
    (folder / "f003.png").write_bytes(b"not a png")  # unreadable in the middle
    out = tmp_path / "out"
    code, _, err = cli(
        "fluoro", "analyze", "--nir", folder, "--bit-depth", "12", "--out", out, "--quiet"
    )
    assert code == 0, err
    data = json.loads((out / "lesions.json").read_text(encoding="utf-8"))
    warn = {f["index"]: " ".join(f["warnings"]) for f in data["frames"]}
    assert warn[1].startswith("all_black") and warn[2].startswith("saturated")
    assert "unreadable image f003.png" in warn[3]
    assert data["n_frames"] == 6 and data["n_frames_with_warnings"] == 3
    assert [len(f["lesions"]) for f in data["frames"]] == [2, 0, 0, 0, 2, 2]
    csv_rows = (out / "frames.csv").read_text(encoding="utf-8").splitlines()
    assert "all_black" in csv_rows[2] and "saturated" in csv_rows[3]


def test_interrupted_stream_keeps_what_was_processed(frames, tmp_path):
    from hepanav.fluorescence.schema import AnalysisSettings, InputDescription
    from hepanav.fluorescence.sources import FramePair
    from hepanav.fluorescence.stream import DisplayOptions, analyze_stream

    def pairs():
        for f in frames[:3]:
            yield FramePair(f.index, f.nir, f.white)
        raise KeyboardInterrupt

    info = {"frame_size_wh": (256, 224), "bit_depth": 12, "fps": None}
    desc = InputDescription(nir="gen", layout="separate")
    with pytest.raises(KeyboardInterrupt):
        analyze_stream(info, pairs(), tmp_path, AnalysisSettings(), DisplayOptions(), desc)
    data = json.loads((tmp_path / "lesions.json").read_text(encoding="utf-8"))
    assert data["complete"] is False and data["n_frames"] == 3
    assert len((tmp_path / "frames.csv").read_text(encoding="utf-8").splitlines()) == 4


def test_missing_unreadable_and_empty_videos(cli, tmp_path):
    out = tmp_path / "out"
    code, _, err = cli("fluoro", "analyze", "--nir", tmp_path / "nope.mp4", "--out", out)
    one_line_error(code, err, "nope.mp4", "not found")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    code, _, err = cli("fluoro", "analyze", "--nir", empty, "--out", out)
    one_line_error(code, err, "empty.mp4", "empty")
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"\x00garbage" * 100)
    code, _, err = cli("fluoro", "analyze", "--nir", junk, "--out", out)
    one_line_error(code, err, "junk.avi")
    folder = tmp_path / "nothing"
    folder.mkdir()
    code, _, err = cli("fluoro", "analyze", "--nir", folder, "--out", out)
    one_line_error(code, err, "no images")


def test_nir_and_white_of_different_sizes(cli, sequence, tmp_path):
    nir_dir, _ = sequence
    white = tmp_path / "white.png"
    cv2.imwrite(str(white), np.zeros((100, 120, 3), np.uint8))
    code, _, err = cli(
        "fluoro", "analyze", "--nir", nir_dir, "--white", white, "--out", tmp_path / "o"
    )
    one_line_error(code, err, "120x100", "256x224")


def test_wrong_bit_depth(cli, frames, tmp_path):
    big = tmp_path / "big.png"
    img = frames[0].nir.copy()
    img[0, 0] = 60000
    cv2.imwrite(str(big), img)
    code, _, err = cli(
        "fluoro", "analyze", "--nir", big, "--bit-depth", "12", "--out", tmp_path / "o"
    )
    one_line_error(code, err, "60000", "12 bit")
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), (frames[0].nir >> 4).astype(np.uint8))
    code, _, err = cli(
        "fluoro", "analyze", "--nir", small, "--bit-depth", "16", "--out", tmp_path / "o"
    )
    one_line_error(code, err, "8-bit")
    floaty = tmp_path / "float.tiff"
    cv2.imwrite(str(floaty), frames[0].nir.astype(np.float32))
    code, _, err = cli("fluoro", "analyze", "--nir", floaty, "--out", tmp_path / "o")
    one_line_error(code, err, "float32")
    code, _, err = cli(
        "fluoro", "analyze", "--nir", small, "--bit-depth", "10", "--out", tmp_path / "o"
    )
    one_line_error(code, err, "--bit-depth")


def test_margin_check_verdicts_and_bad_masks(cli, frames, tmp_path):
    nir = tmp_path / "nir.png"
    cv2.imwrite(str(nir), frames[0].nir)
    lesion = frames[0].lesion_masks[1]
    ys, xs = np.nonzero(lesion)
    crossing = np.zeros(lesion.shape, np.uint8)
    crossing[:, int(xs.mean()) - 4 : int(xs.mean()) + 4] = 255  # a cut through lesion 2
    clear = np.zeros(lesion.shape, np.uint8)
    clear[:, 0:20] = 255  # a cut far from both lesions
    for name, mask, risk in (("cross", crossing, True), ("clear", clear, False)):
        path = tmp_path / f"{name}.png"
        cv2.imwrite(str(path), mask)
        out = tmp_path / name
        code, stdout, err = cli(
            "fluoro", "margin-check", "--nir", nir, "--surface", path, "--out", out
        )
        assert code == 0, err
        data = json.loads((out / "margin.json").read_text(encoding="utf-8"))
        assert data["at_risk"] is risk and data["disclaimer"] == DISCLAIMER
        # The saved background definition is the margin check's own (no highlights).
        description = data["background"]["description"]
        assert "3 to 10 px beyond the spot edge" in description and "highlight" not in description
        assert f"at_risk={str(risk).lower()}" in stdout
        if risk:
            spot = data["frames"][0]["spots"][0]
            assert spot["tbr"] > 2 and spot["cnr"] >= 3 and spot["area_px"] > 20
            assert spot["centroid_xy"][1] == pytest.approx(ys.mean(), abs=4)
    wrong = tmp_path / "wrong.png"
    cv2.imwrite(str(wrong), np.full((10, 10), 255, np.uint8))
    code, _, err = cli(
        "fluoro", "margin-check", "--nir", nir, "--surface", wrong, "--out", tmp_path / "w"
    )
    one_line_error(code, err, "wrong.png", "10x10")
    empty = tmp_path / "emptymask.png"
    cv2.imwrite(str(empty), np.zeros(lesion.shape, np.uint8))
    code, _, err = cli(
        "fluoro", "margin-check", "--nir", nir, "--surface", empty, "--out", tmp_path / "w"
    )
    one_line_error(code, err, "empty")


@pytest.mark.parametrize("mode", ["overlay", "mono", "side-by-side"])
def test_render_writes_the_display_video(cli, sequence, tmp_path, mode):
    nir_dir, white_dir = sequence
    out = tmp_path / f"{mode}.mp4"
    code, stdout, err = cli(
        "fluoro",
        "render",
        "--nir",
        nir_dir,
        "--white",
        white_dir,
        "--display",
        mode,
        "--colour",
        "cividis",
        "--out",
        out,
    )
    assert code == 0, err
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == (512 if mode == "side-by-side" else 256)


def test_render_bad_options(cli, sequence, tmp_path):
    nir_dir, _ = sequence
    code, _, err = cli(
        "fluoro", "render", "--nir", nir_dir, "--display", "hologram", "--out", tmp_path / "a.mp4"
    )
    one_line_error(code, err, "--display")
    code, _, err = cli("fluoro", "render", "--nir", nir_dir, "--out", tmp_path / "a.gif")
    one_line_error(code, err, ".mp4")


def test_user_background_rectangle(cli, sequence, tmp_path):
    nir_dir, _ = sequence
    out = tmp_path / "roi"
    code, _, err = cli(
        "fluoro",
        "analyze",
        "--nir",
        nir_dir,
        "--bg-roi",
        "110,10,40,30",
        "--out",
        out,
        "--quiet",
        "--no-video",
        "--no-report",
    )
    assert code == 0, err
    data = json.loads((out / "lesions.json").read_text(encoding="utf-8"))
    assert data["background"]["kind"] == "roi" and data["background"]["roi_xywh"] == [
        110,
        10,
        40,
        30,
    ]
    les = data["frames"][0]["lesions"][0]
    assert les["background_px"] == 1200
    # TBR and CNR use exactly the rectangle's input pixels (x 110-149, y 10-39).
    first = cv2.imread(str(sorted(nir_dir.iterdir())[0]), cv2.IMREAD_UNCHANGED)
    patch = first[10:40, 110:150].astype(float)
    assert les["background_mean"] == pytest.approx(patch.mean(), rel=1e-6)
    assert les["background_sd"] == pytest.approx(patch.std(), rel=1e-6)
    assert les["tbr"] == pytest.approx(les["mean_signal"] / patch.mean(), rel=1e-6)
    assert les["cnr"] == pytest.approx((les["mean_signal"] - patch.mean()) / patch.std(), rel=1e-6)
    code, _, err = cli(
        "fluoro", "analyze", "--nir", nir_dir, "--bg-roi", "250,10,40,30", "--out", out
    )
    one_line_error(code, err, "--bg-roi", "leaves")
    code, _, err = cli("fluoro", "analyze", "--nir", nir_dir, "--bg-roi", "1,2,3", "--out", out)
    one_line_error(code, err, "--bg-roi", "4 comma-separated")


def test_missing_camera(cli, tmp_path):
    code, _, err = cli("fluoro", "analyze", "--nir", "camera:97", "--out", tmp_path / "o")
    one_line_error(code, err, "camera:97", "cannot open this camera")


def test_option_values_that_would_be_silently_ignored(cli, sequence, tmp_path):
    nir_dir, _ = sequence
    out = tmp_path / "o"
    # 0 used to mean "no limit" and a negative count was taken as none.
    for command in ("analyze", "margin-check", "render"):
        extra = ("--surface", tmp_path / "m.png") if command == "margin-check" else ()
        target = tmp_path / "v.mp4" if command == "render" else out
        code, _, err = cli(
            "fluoro", command, "--nir", nir_dir, *extra, "--max-frames", "0", "--out", target
        )
        one_line_error(code, err, "--max-frames", "at least 1")
    # A fixed window with auto gain would be ignored, spoiling a quantification.
    code, _, err = cli(
        "fluoro", "render", "--nir", nir_dir, "--gain-range", "0,4095", "--out", tmp_path / "a.mp4"
    )
    one_line_error(code, err, "--gain-range", "--gain fixed")
    mask = tmp_path / "mask.png"
    cv2.imwrite(str(mask), np.full((224, 256), 255, np.uint8))
    code, _, err = cli(
        "fluoro",
        "margin-check",
        "--nir",
        nir_dir,
        "--surface",
        mask,
        "--min-area-px",
        "-1",
        "--out",
        out,
    )
    one_line_error(code, err, "--min-area-px")


def test_render_max_frames_counts_skipped_frames(cli, frames, tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for f in frames:
        cv2.imwrite(str(folder / f"f{f.index:03d}.png"), f.nir)
    (folder / "f001.png").write_bytes(b"not a png")  # skipped frame 2 of the first 2
    out = tmp_path / "r.mp4"
    code, stdout, err = cli(
        "fluoro", "render", "--nir", folder, "--bit-depth", "12", "--max-frames", "2", "--out", out
    )
    assert code == 0, err
    assert stdout.startswith("2 frames")
    assert "frame 1: skipped: unreadable image f001.png" in err
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 2


def test_frame_too_small(cli, tmp_path):
    # A frame one pixel wide used to crash the motion estimate with an OpenCV traceback.
    thin = tmp_path / "thin.png"
    cv2.imwrite(str(thin), np.full((64, 1), 50, np.uint8))
    for command in ("analyze", "render", "margin-check"):
        extra = ("--surface", thin) if command == "margin-check" else ()
        target = tmp_path / "v.mp4" if command == "render" else tmp_path / "o"
        code, _, err = cli("fluoro", command, "--nir", thin, *extra, "--out", target)
        one_line_error(code, err, "thin.png", "1x64 px", "at least 16 px")


def test_broken_mp4_gives_one_line_on_the_real_stderr(tmp_path):
    # FFmpeg writes its own complaint ("moov atom not found") to file descriptor 2,
    # past the in-process runner: only a child process sees it.
    import subprocess
    import sys

    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00garbage" * 100)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hepanav",
            "fluoro",
            "analyze",
            "--nir",
            str(junk),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    one_line_error(proc.returncode, proc.stderr, "junk.mp4", "cannot open this video")


@pytest.mark.parametrize("content", [b"", b"frame,tbr\n1,2.5\n"])
def test_a_table_given_as_nir_is_named_not_called_a_video(cli, tmp_path, content):
    """A .csv (empty or not) passed as --nir: the error says it is not a video or image,
    not "video file is empty" / "cannot open this video"; nothing is written."""
    table = tmp_path / "readings.csv"
    table.write_bytes(content)
    out = tmp_path / "o"
    code, _, err = cli("fluoro", "analyze", "--nir", table, "--out", out)
    one_line_error(code, err, "readings.csv", "a .csv file is not a video or image")
    assert not out.exists()
