"""Process a whole stream: analyse every frame, write the display video and the tables.

Outputs are written as the stream goes, so that what was processed is kept when a
recording breaks off or the user stops it (Ctrl-C):

* ``frames.csv``   one row per frame, appended and flushed after every frame;
* ``display.mp4``  the display video, one frame per input frame;
* ``lesions.json`` the full result, rewritten atomically every ``checkpoint_s`` seconds
  (less often once rewriting takes long, so it stays under ~5 % of the run time) with
  ``complete: false``, and at the end with ``complete: true``.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hepanav.core import write_json
from hepanav.fluorescence import annotate, display
from hepanav.fluorescence.analyze import FrameAnalyzer, frame_problem
from hepanav.fluorescence.schema import (
    AnalysisResult,
    AnalysisSettings,
    FrameRecord,
    InputDescription,
    LatencyStats,
)
from hepanav.fluorescence.sources import FramePair

CSV_COLUMNS = (
    "frame",
    "time_s",
    "latency_ms",
    "n_lesions",
    "ids",
    "patterns",
    "max_tbr",
    "warnings",
)


@dataclass
class DisplayOptions:
    """How the display video looks.

    Attributes
    ----------
    mode : str
        One of ``display.MODES``.
    colour : str
        Overlay colour (``display.COLOURS``).
    gain : str
        ``auto`` or ``fixed``.
    fixed_range : tuple of float, optional
        NIR window (DN) of fixed gain.
    annotate : bool
        Draw lesion boxes and labels.
    mm_per_px : float, optional
        Pixel size on tissue, mm: a scale bar is drawn.
    """

    mode: str = "overlay"
    colour: str = "cividis"
    gain: str = "auto"
    fixed_range: tuple[float, float] | None = None
    annotate: bool = True
    mm_per_px: float | None = None
    style: display.OverlayStyle = field(default_factory=display.OverlayStyle)


def latency_stats(latencies_ms: list[float]) -> LatencyStats:
    """Median, 99th percentile and maximum of per-frame latencies (ms)."""
    if not latencies_ms:
        return LatencyStats(n_frames=0, median_ms=None, p99_ms=None, max_ms=None)
    arr = np.asarray(latencies_ms)
    return LatencyStats(
        n_frames=int(arr.size),
        median_ms=round(float(np.median(arr)), 3),
        p99_ms=round(float(np.percentile(arr, 99)), 3),
        max_ms=round(float(arr.max()), 3),
    )


class _VideoOut:
    """Lazy ``cv2.VideoWriter`` (size known at the first frame); MJPG/AVI fallback."""

    def __init__(self, path: Path | None, fps: float) -> None:
        self.path, self.fps, self.writer = path, fps, None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if self.path is None:
            return
        if self.writer is None:
            h, w = frame.shape[:2]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = "mp4v" if self.path.suffix.lower() in (".mp4", ".m4v", ".mov") else "MJPG"
            self.writer = cv2.VideoWriter(
                str(self.path), cv2.VideoWriter_fourcc(*fourcc), self.fps, (w, h)
            )
            if not self.writer.isOpened():
                from hepanav.core import InputError

                raise InputError("cannot write a video here (codec or folder problem)", self.path)
            self.size = (w, h)
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size)
        self.writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            self._check_written()

    def _check_written(self) -> None:
        """Read the file back: OpenCV's writer reports no write error (a full disk leaves
        a few kB that no player opens), so count the frames it actually holds."""
        from hepanav.core import HepaNavError

        cap = cv2.VideoCapture(str(self.path))
        try:
            ok = cap.isOpened()
            n = 0
            while ok and n < self.frames:
                ok, _ = cap.read()
                n += int(ok)
        finally:
            cap.release()
        if n < self.frames:
            raise HepaNavError(
                f"{self.path.name}: the video holds {n} of {self.frames} frames after writing "
                "(disk full or a write error)"
            )


def blank_frame(shape: tuple[int, int], mode: str, text: str) -> np.ndarray:
    """A dark display frame with a message, for frames that could not be shown."""
    h, w = shape
    width = 2 * w if mode == "side-by-side" else w
    out = np.zeros((h, width, 3), np.uint8)
    cv2.putText(
        out, text[:60], (10, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 255), 1, cv2.LINE_AA
    )
    return out


def analyze_stream(
    info: dict,
    pairs: Iterator[FramePair],
    out_dir: Path,
    settings: AnalysisSettings,
    options: DisplayOptions,
    input_description: InputDescription,
    video_name: str | None = "display.mp4",
    checkpoint_s: float = 2.0,
    max_frames: int | None = None,
    on_frame: Callable[[FrameRecord], None] | None = None,
) -> tuple[AnalysisResult, np.ndarray | None]:
    """Analyse every frame of a stream and write the outputs into ``out_dir``.

    Parameters
    ----------
    info : dict
        From :func:`hepanav.fluorescence.sources.frame_pairs`.
    pairs : iterator of FramePair
    out_dir : Path
        Output folder (created).
    settings : AnalysisSettings
    options : DisplayOptions
    input_description : InputDescription
    video_name : str or None
        File name of the display video in ``out_dir``; None for no video.
    checkpoint_s : float
        Seconds between intermediate writes of ``lesions.json``.
    max_frames : int, optional
        Stop after this many frames (cameras never end).
    on_frame : callable, optional
        Called with each FrameRecord (progress display).

    Returns
    -------
    result : AnalysisResult
        Also written to ``out_dir/lesions.json``.
    snapshot : ndarray (H, W', 3) uint8 or None
        The annotated display frame with the most lesions (for the report).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    depth = info["bit_depth"]
    analyzer = FrameAnalyzer(settings, depth, info.get("clipped_background", False))
    gain = display.GainControl(bit_depth=depth, mode=options.gain, fixed_range=options.fixed_range)
    options.style.colour = options.colour
    video = _VideoOut(out_dir / video_name if video_name else None, info.get("fps") or 25.0)
    frames: list[FrameRecord] = []
    latencies: list[float] = []
    json_path = out_dir / "lesions.json"
    shape = (info["frame_size_wh"][1], info["frame_size_wh"][0])

    def result(complete: bool) -> AnalysisResult:
        return AnalysisResult(
            complete=complete,
            input=input_description,
            settings=settings,
            background=settings.background,
            latency=latency_stats(latencies),
            n_frames=len(frames),
            n_frames_with_warnings=sum(1 for f in frames if f.warnings),
            frames=frames,
        )

    snapshot, snapshot_count = None, -1
    last_write = time.monotonic()
    interval = checkpoint_s
    csv_path = out_dir / "frames.csv"
    finished = False
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        table = csv.writer(fh)
        table.writerow(CSV_COLUMNS)
        try:
            for pair in pairs:
                record, shown = _process(pair, analyzer, gain, options, shape)
                if pair.nir is not None:
                    latencies.append(record.latency_ms)
                frames.append(record)
                if pair.nir is not None and len(record.lesions) > snapshot_count:
                    snapshot, snapshot_count = shown.copy(), len(record.lesions)
                video.write(shown)
                table.writerow(_csv_row(record))
                fh.flush()
                if on_frame:
                    on_frame(record)
                if time.monotonic() - last_write > interval:
                    started = time.monotonic()
                    write_json(json_path, result(False))
                    last_write = time.monotonic()
                    # Rewriting a growing file: keep it under ~5 % of the run time.
                    interval = max(checkpoint_s, 20 * (last_write - started))
                if max_frames and len(frames) >= max_frames:
                    break
            finished = True
        finally:
            # Also on Ctrl-C or a crash: keep what was processed, marked incomplete.
            video.close()
            final = result(finished)
            write_json(json_path, final)
    return final, snapshot


def _process(
    pair: FramePair,
    analyzer: FrameAnalyzer,
    gain: display.GainControl,
    options: DisplayOptions,
    shape: tuple[int, int],
) -> tuple[FrameRecord, np.ndarray]:
    """Analyse and render one frame pair; never raises for a bad frame."""
    if pair.nir is None:
        rec = FrameRecord(
            index=pair.index, time_s=pair.time_s, latency_ms=0.0, warnings=pair.warnings
        )
        return rec, blank_frame(shape, options.mode, "; ".join(pair.warnings) or "no frame")
    t0 = time.perf_counter()
    analysis = analyzer.analyze(pair.nir, pair.white)
    gain.update(pair.nir)
    level = gain.to_display(pair.nir)
    shown = display.render(options.mode, level, pair.white, options.style)
    latency = (time.perf_counter() - t0) * 1e3
    if options.annotate:
        offset = shown.shape[1] - pair.nir.shape[1] if options.mode == "side-by-side" else 0
        display.draw_lesions(shown, analysis.lesions, offset_x=offset)
    if options.mm_per_px:
        annotate.draw_scale_bar(shown, options.mm_per_px)
    warnings = pair.warnings + analysis.warnings
    rec = FrameRecord(
        index=pair.index,
        time_s=pair.time_s,
        latency_ms=round(latency, 3),
        motion_xy=(round(analysis.motion_xy[0], 2), round(analysis.motion_xy[1], 2)),
        warnings=warnings,
        lesions=analysis.lesions,
    )
    return rec, shown


def _csv_row(rec: FrameRecord) -> list:
    return [
        rec.index,
        "" if rec.time_s is None else f"{rec.time_s:.3f}",
        f"{rec.latency_ms:.2f}",
        len(rec.lesions),
        " ".join(str(les.id) for les in rec.lesions),
        " ".join(les.pattern for les in rec.lesions),
        f"{max((les.tbr for les in rec.lesions if les.tbr is not None), default=0):.2f}",
        " | ".join(rec.warnings),
    ]


def render_stream(
    info: dict,
    pairs: Iterator[FramePair],
    out_path: Path,
    options: DisplayOptions,
    max_frames: int | None = None,
) -> tuple[int, LatencyStats, list[str]]:
    """Write the display video of a stream (no analysis).

    Returns
    -------
    n_frames : int
    latency : LatencyStats
        Display latency per frame (gain + rendering), ms.
    warnings : list of str
        ``frame N: warning`` for every frame with a problem.
    """
    from hepanav.core import InputError, atomic_path

    depth = info["bit_depth"]
    gain = display.GainControl(bit_depth=depth, mode=options.gain, fixed_range=options.fixed_range)
    options.style.colour = options.colour
    shape = (info["frame_size_wh"][1], info["frame_size_wh"][0])
    latencies: list[float] = []
    warnings: list[str] = list(info.get("warnings", []))
    if info.get("timing") is not None and info["timing"].variable:
        warnings.append(
            f"the display video plays at a constant {info.get('fps') or 25.0:.3g} fps; the "
            "input's frame times vary"
        )
    n = 0
    full_scale = (1 << depth) - 1
    try:
        with atomic_path(out_path) as tmp:
            video = _VideoOut(tmp, info.get("fps") or 25.0)
            try:
                for pair in pairs:
                    n += 1
                    if pair.nir is None:
                        warnings.extend(f"frame {pair.index}: {w}" for w in pair.warnings)
                        video.write(blank_frame(shape, options.mode, "; ".join(pair.warnings)))
                    else:
                        problem = frame_problem(pair.nir, full_scale)
                        if problem:
                            warnings.append(f"frame {pair.index}: {problem}")
                        t0 = time.perf_counter()
                        gain.update(pair.nir)
                        shown = display.render(
                            options.mode, gain.to_display(pair.nir), pair.white, options.style
                        )
                        latencies.append((time.perf_counter() - t0) * 1e3)
                        if options.mm_per_px:
                            annotate.draw_scale_bar(shown, options.mm_per_px)
                        video.write(shown)
                    # Skipped frames count too, as in analyze_stream: N frames in, N out.
                    if max_frames and n >= max_frames:
                        break
            finally:
                video.close()
            readable = count_video_frames(tmp)
            if readable != n:
                raise InputError(
                    f"the written video holds {readable} of {n} frames (disk full or codec "
                    "failure?); nothing was kept",
                    out_path,
                )
    except OSError as exc:
        raise InputError(f"cannot write the video: {exc.strerror or exc}", out_path) from None
    return n, latency_stats(latencies), warnings


def count_video_frames(path: Path) -> int:
    """Frames that a player finds in a written video (0 when it cannot be opened).

    Reads the container back with PyAV (packets, no decoding): a file cut short by a
    full disk has no index (``moov`` atom) and counts 0.
    """
    import av

    from hepanav.fluorescence.sources import quiet_native_stderr

    try:
        with quiet_native_stderr(), av.open(str(path)) as container:
            stream = container.streams.video[0]
            return sum(1 for p in container.demux(stream) if p.size)
    except (av.FFmpegError, IndexError, OSError):
        return 0
