"""Issue 9 (video timing, bit depth, saturation) and issue 10 (hostile input) for
``hepanav fluoro``: every case reads right or is refused with one line."""

from __future__ import annotations

import json
import resource
import signal

import cv2
import numpy as np
import pytest

from cli_helpers import one_line_error
from fluorescence_helpers import generated_frames, run_hepanav, write_av_video


@pytest.fixture(scope="module")
def frames():
    return generated_frames(4)


def _load(out):
    return json.loads((out / "lesions.json").read_text(encoding="utf-8"))


# --- issue 9: frame times -------------------------------------------------------------


def test_variable_frame_rate_video_gets_container_timestamps(cli, frames, tmp_path):
    times = [0.0, 0.040, 0.500, 1.700]  # uneven: 40, 460, 1200 ms
    video = write_av_video(tmp_path / "vfr.mkv", [f.nir for f in frames], times)
    out = tmp_path / "out"
    code, _, err = cli("fluoro", "analyze", "--nir", video, "--out", out, "--quiet", "--no-video")
    assert code == 0, err
    data = _load(out)
    assert [f["time_s"] for f in data["frames"]] == pytest.approx(times, abs=1e-6)
    assert data["input"]["frame_times"] == "container timestamps"
    assert data["input"]["variable_frame_rate"] is True
    assert data["input"]["frame_interval_ms"] == pytest.approx([40, 460, 1200])
    assert any("variable frame rate" in w for w in data["input"]["warnings"])
    assert "variable frame rate" in (out / "report.html").read_text(encoding="utf-8")
    # The average rate would put frame 3 at 3 / (4 / 1.7 s) = 1.275 s: 0.43 s off.
    assert data["frames"][3]["time_s"] == pytest.approx(1.7)


def test_constant_frame_rate_video_has_no_warning(cli, frames, tmp_path):
    video = write_av_video(tmp_path / "cfr.mkv", [f.nir for f in frames], rate=25)
    out = tmp_path / "out"
    code, _, err = cli("fluoro", "analyze", "--nir", video, "--out", out, "--quiet", "--no-video")
    assert code == 0, err
    data = _load(out)
    assert [f["time_s"] for f in data["frames"]] == pytest.approx([0, 0.04, 0.08, 0.12])
    assert data["input"]["variable_frame_rate"] is False and data["input"]["warnings"] == []
    assert data["input"]["fps"] == pytest.approx(25)


def test_opencv_fallback_takes_times_from_the_stream_position(frames, tmp_path):
    from hepanav.fluorescence.sources import FrameSource

    video = write_av_video(tmp_path / "v.mkv", [f.nir for f in frames], [0, 0.1, 0.2, 0.7])
    src = FrameSource(video)
    src._kind = "cvvideo"  # as when PyAV cannot open the file
    times = [raw.time_s for raw in src]
    # OpenCV reads 16-bit grey FFV1 at 8 bit, but the times are the container's.
    assert times[:2] == pytest.approx([0.0, 0.1], abs=1e-3)


# --- issue 9: bit depth, MSB alignment, saturation -------------------------------------


def test_16bit_ffv1_video_is_decoded_at_full_depth(cli, frames, tmp_path):
    images = [(f.nir.astype(np.uint32) * 13).astype(np.uint16) for f in frames]  # > 4095
    video = write_av_video(tmp_path / "nir16.mkv", images)
    from hepanav.fluorescence.sources import frame_pairs

    info, pairs = frame_pairs(video)
    decoded = [p.nir for p in pairs]
    assert info["bit_depth"] == 16 and info["codec"] == "ffv1" and info["lossy"] is False
    for got, want in zip(decoded, images, strict=True):
        np.testing.assert_array_equal(got, want)


def test_high_bit_colour_video_is_refused_with_the_reason(cli, frames, tmp_path):
    rgb = [cv2.cvtColor((f.nir >> 4).astype(np.uint8), cv2.COLOR_GRAY2RGB) for f in frames]
    video = write_av_video(tmp_path / "yuv10.mkv", rgb, pix_fmt="yuv420p10le", in_format="rgb24")
    code, _, err = cli("fluoro", "analyze", "--nir", video, "--out", tmp_path / "o")
    one_line_error(code, err, "yuv10.mkv", "10-bit yuv420p10le", "gray16le", "--bit-depth 8")
    code, _, err = cli(
        "fluoro",
        "analyze",
        "--nir",
        video,
        "--bit-depth",
        "8",
        "--out",
        tmp_path / "o",
        "--quiet",
        "--no-video",
        "--no-report",
    )
    assert code == 0, err
    assert _load(tmp_path / "o")["input"]["bit_depth"] == 8
    eight = write_av_video(
        tmp_path / "h8.mkv", rgb, codec="mpeg4", pix_fmt="yuv420p", in_format="rgb24"
    )
    code, _, err = cli(
        "fluoro", "analyze", "--nir", eight, "--bit-depth", "12", "--out", tmp_path / "o"
    )
    one_line_error(code, err, "8-bit", "mpeg4", "--bit-depth 12")


def _saturate(nir, mask, code):
    out = nir.copy()
    out[mask] = code
    return out


def test_12bit_without_bit_depth_keeps_the_saturation_warning(cli, frames, tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for f in frames:  # lesion 2 at the 12-bit top code, stored LSB-aligned in 16 bit
        cv2.imwrite(str(folder / f"{f.index}.png"), _saturate(f.nir, f.lesion_masks[1], 4095))
    out = tmp_path / "out"
    code, _, err = cli("fluoro", "analyze", "--nir", folder, "--out", out, "--quiet", "--no-video")
    assert code == 0, err
    data = _load(out)
    assert data["input"]["bit_depth"] == 12 and data["input"]["msb_aligned"] is False
    assert "fit 12 bit" in data["input"]["notes"][0]
    for f in data["frames"]:
        assert any("saturated at code 4095" in w for w in f["warnings"]), f["warnings"]


def test_msb_aligned_12bit_is_detected_or_declared(cli, frames, tmp_path):
    plain, msb = tmp_path / "plain", tmp_path / "msb"
    plain.mkdir()
    msb.mkdir()
    for f in frames:
        sat = _saturate(f.nir, f.lesion_masks[1], 4095)
        cv2.imwrite(str(plain / f"{f.index}.png"), sat)
        cv2.imwrite(str(msb / f"{f.index}.png"), sat << 4)
    results = {}
    for name, folder, extra in (
        ("plain", plain, ("--bit-depth", "12")),
        ("detected", msb, ()),
        ("declared", msb, ("--msb-aligned",)),
    ):
        out = tmp_path / f"out_{name}"
        code, _, err = cli(
            "fluoro", "analyze", "--nir", folder, *extra, "--out", out, "--quiet", "--no-video"
        )
        assert code == 0, err
        results[name] = _load(out)
    for name in ("detected", "declared"):
        data = results[name]
        assert data["input"]["msb_aligned"] is True and data["input"]["bit_depth"] == 12
        # Same codes after the shift: the same measurements as the plain 12-bit data.
        for fa, fb in zip(data["frames"], results["plain"]["frames"], strict=True):
            assert [x["tbr"] for x in fa["lesions"]] == [x["tbr"] for x in fb["lesions"]]
            assert any("saturated at code 4095" in w for w in fa["warnings"])
    not_msb = tmp_path / "odd.png"
    cv2.imwrite(str(not_msb), frames[0].nir | 1)
    code, _, err = cli(
        "fluoro", "analyze", "--nir", not_msb, "--msb-aligned", "--out", tmp_path / "o"
    )
    one_line_error(code, err, "odd.png", "not all multiples of 16")


def test_saturation_below_the_set_fraction_is_not_warned(frames):
    from hepanav.fluorescence.analyze import FrameAnalyzer
    from hepanav.fluorescence.schema import AnalysisSettings

    f = frames[0]
    mask = f.lesion_masks[1]
    ys, xs = np.nonzero(mask)
    few = f.nir.copy()
    few[ys[:3], xs[:3]] = 4095  # 3 px of ~1200: below 1 %
    many = _saturate(f.nir, mask, 4095)
    for image, warned in ((few, False), (many, True)):
        analysis = FrameAnalyzer(AnalysisSettings(), 12).analyze(image, f.white)
        assert any("saturated" in w for w in analysis.warnings) is warned


# --- issue 10: numbers refused in the schema -------------------------------------------


@pytest.mark.parametrize(
    ("command", "args", "option"),
    [
        ("margin-check", ("--min-cnr", "nan"), "--min-cnr"),
        ("margin-check", ("--min-cnr", "inf"), "--min-cnr"),
        ("analyze", ("--mm-per-px", "nan"), "--mm-per-px"),
        ("analyze", ("--mm-per-px", "1e-300"), "--mm-per-px"),
        ("analyze", ("--mm-per-px", "inf"), "--mm-per-px"),
        ("analyze", ("--gain", "fixed", "--gain-range", "nan,100"), "--gain-range"),
        ("render", ("--gain", "fixed", "--gain-range", "0,inf"), "--gain-range"),
        ("analyze", ("--bg-roi", "nan,0,10,10"), "--bg-roi"),
        ("analyze", ("--bg-roi", "1e300,0,10,10"), "--bg-roi"),
        ("analyze", ("--bg-outer-px", "inf"), "--bg-outer-px"),
        ("margin-check", ("--bg-inner-px", "nan"), "--bg-inner-px"),
    ],
)
def test_non_finite_and_absurd_numbers_are_refused(cli, frames, tmp_path, command, args, option):
    nir = tmp_path / "nir.png"
    cv2.imwrite(str(nir), frames[0].nir)
    extra = ()
    if command == "margin-check":
        surface = tmp_path / "s.png"
        cv2.imwrite(str(surface), np.full(frames[0].nir.shape, 255, np.uint8))
        extra = ("--surface", surface)
    target = tmp_path / "v.mp4" if command == "render" else tmp_path / "o"
    code, _, err = cli("fluoro", command, "--nir", nir, *extra, *args, "--out", target)
    one_line_error(code, err, option)
    assert not (tmp_path / "o").exists() and not target.exists()


# --- issue 10: files that libraries complain about -------------------------------------


def test_bad_image_files_give_one_line_and_no_library_chatter(frames, tmp_path):
    nir = tmp_path / "nir.png"
    cv2.imwrite(str(nir), frames[0].nir)
    floaty = tmp_path / "white.tiff"
    cv2.imwrite(str(floaty), frames[0].white.astype(np.float32))
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(nir.read_bytes()[: nir.stat().st_size // 2])
    wide = tmp_path / "wide.png"
    cv2.imwrite(str(wide), np.zeros((16, 12000), np.uint8))
    cases = [
        (("--nir", nir, "--white", floaty), ("white.tiff", "float32")),
        (("--nir", truncated), ("cut.png", "unreadable")),
        (("--nir", wide), ("wide.png", "12000x16", "8192")),
    ]
    for args, fragments in cases:
        code, _, err = run_hepanav("fluoro", "analyze", *args, "--out", tmp_path / "o")
        one_line_error(code, err, *fragments)
    # A truncated frame in the middle of a sequence: a warning, still no chatter.
    folder = tmp_path / "seq"
    folder.mkdir()
    for f in frames:
        cv2.imwrite(str(folder / f"{f.index}.png"), f.nir)
    (folder / "1.png").write_bytes(truncated.read_bytes())
    code, _, err = run_hepanav(
        "fluoro",
        "analyze",
        "--nir",
        folder,
        "--out",
        tmp_path / "o2",
        "--quiet",
        "--no-video",
        "--no-report",
    )
    assert code == 0 and err.strip() == "", err
    assert "unreadable image 1.png" in _load(tmp_path / "o2")["frames"][1]["warnings"][0]


def _limit_file_size(limit: int):
    def apply():
        # Writes past the limit fail with EFBIG (a full disk for the writer) instead of
        # killing the process with SIGXFSZ.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_render_on_a_full_disk_is_an_error_not_success(frames, tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for f in frames:
        cv2.imwrite(str(folder / f"{f.index}.png"), f.nir)
    ok = tmp_path / "ok.mp4"
    code, _, err = run_hepanav("fluoro", "render", "--nir", folder, "--out", ok)
    assert code == 0, err
    from hepanav.fluorescence.stream import count_video_frames

    assert count_video_frames(ok) == 4
    full = tmp_path / "full.mp4"
    code, out, err = run_hepanav(
        "fluoro",
        "render",
        "--nir",
        folder,
        "--out",
        full,
        preexec_fn=_limit_file_size(ok.stat().st_size // 3),
    )
    one_line_error(code, err, "full.mp4", "of 4 frames")
    assert "frames ->" not in out
    assert not full.exists() and [p.name for p in tmp_path.glob(".full*")] == []


def test_render_output_that_is_the_input_is_refused_before_any_work(cli, frames, tmp_path):
    rec = write_av_video(tmp_path / "rec.mp4", [f.nir for f in frames], codec="ffv1")
    before = rec.read_bytes()
    (tmp_path / "sub").mkdir()
    for target in (rec, tmp_path / "." / "rec.mp4", tmp_path / "sub" / ".." / "rec.mp4"):
        code, _, err = cli("fluoro", "render", "--nir", rec, "--out", target)
        one_line_error(code, err, "would overwrite the input rec.mp4")
        assert rec.read_bytes() == before
    white = tmp_path / "white.png"
    cv2.imwrite(str(white), frames[0].white)
    nir = tmp_path / "nir.png"
    cv2.imwrite(str(nir), frames[0].nir)
    code, _, err = cli("fluoro", "analyze", "--nir", nir, "--white", white, "--out", tmp_path)
    # An output folder is replaced as a whole (docs/reliability.md): it may not hold inputs.
    one_line_error(code, err, "holds the input")
    code, _, err = cli("fluoro", "analyze", "--nir", tmp_path / "report.html", "--out", tmp_path)
    one_line_error(code, err, "would overwrite the input report.html")


def test_results_name_inputs_without_absolute_paths(cli, frames, tmp_path, monkeypatch):
    work = tmp_path / "work"
    (work / "rec").mkdir(parents=True)
    patient = tmp_path / "Doe_John_1961"
    patient.mkdir()
    for f in frames[:2]:
        cv2.imwrite(str(work / "rec" / f"{f.index}.png"), f.nir)
        cv2.imwrite(str(patient / f"{f.index}.png"), f.nir)
    surface = patient / "surface.png"
    cv2.imwrite(str(surface), np.full(frames[0].nir.shape, 255, np.uint8))
    monkeypatch.chdir(work)
    code, _, err = cli("fluoro", "analyze", "--nir", work / "rec", "--out", "o1", "--quiet")
    assert code == 0, err
    code, _, err = cli("fluoro", "analyze", "--nir", patient, "--out", "o2", "--quiet")
    assert code == 0, err
    nir0 = patient / "0.png"
    code, _, err = cli("fluoro", "margin-check", "--nir", nir0, "--surface", surface, "--out", "o3")
    assert code == 0, err
    assert _load(work / "o1")["input"]["nir"] == "rec"
    assert _load(work / "o2")["input"]["nir"] == "Doe_John_1961"
    margin = json.loads((work / "o3" / "margin.json").read_text(encoding="utf-8"))
    assert margin["input"]["nir"] == "0.png" and margin["surface"] == "surface.png"
    for out in ("o1", "o2", "o3"):
        for path in (work / out).iterdir():
            if path.suffix in (".json", ".html", ".csv"):
                assert str(tmp_path) not in path.read_text(encoding="utf-8"), path
