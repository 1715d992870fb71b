"""Live display for the operating room: overlay, lesion labels, margin warning, latency.

One frame composition (:class:`LiveDisplay.compose`) serves every output, so what the
tests check off-screen is what the surgeon sees:

**Synchronous or asynchronous analysis.** Synchronously, every frame waits for its own
analysis. Asynchronously (the live command's default), the frame is shown at once with
the newest finished findings while a worker analyses the newest frame; labels may then
be a few frames old (their age is shown on screen), the video never is. The worker is a
separate process by default (``worker="process"``: its own interpreter, the frame handed
over in shared memory, lower scheduling priority than the display; see
:mod:`hepanav.fluorescence.worker`) or a thread (``worker="thread"``). A frame is handed
to the worker only after its display frame is ready, and only when the worker is idle:
the newest frame wins, frames that arrive meanwhile are shown without being analysed
(counted in :attr:`LiveDisplay.frames_not_analysed`).

* an OpenCV HighGUI window (``hepanav fluoro live``; needs an OpenCV build with GUI
  support, not ``opencv-python-headless``);
* annotated JPEG frames with their latency (:func:`jpeg_frames`), which a web server
  serves as a ``multipart/x-mixed-replace`` MJPEG stream (:func:`mjpeg_multipart`), or
  which ``--frames-out`` writes to a folder.

**Added latency** is the time from the moment a frame is handed over by the capture
(decoded, in memory) to the moment its composed display frame is ready (analysis,
rendering, labels, margin check; plus JPEG encoding for the web stream). It is shown on
screen (last frame and p99 of the last 300 frames) and returned with every frame.
File sources are paced to their frame times (the camera's rate as recorded), so a
recording plays as it was captured.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from hepanav.fluorescence import annotate, display
from hepanav.fluorescence.analyze import FrameAnalyzer
from hepanav.fluorescence.schema import AnalysisSettings, LesionRecord, MarginCriterion
from hepanav.fluorescence.sources import FramePair

MJPEG_BOUNDARY = "hepanavframe"
_WINDOW = 300  # frames of the rolling p99 shown on screen
_SWITCH_INTERVAL_S = 0.0005  # GIL switch interval while the analysis worker runs, s
WORKERS = ("process", "thread")


@dataclass
class _Findings:
    """What the analysis found on one frame (drawn on this or a later display frame)."""

    index: int
    received: float
    lesions: list
    margin: object | None
    risky: set
    at_risk: bool | None
    warnings: list


@dataclass
class LiveFrame:
    """One composed display frame.

    Attributes
    ----------
    index : int
        Input frame number.
    time_s : float or None
        Input frame time, s.
    image : ndarray, (H, W', 3) uint8 BGR
        What the window shows.
    latency_ms : float
        Added latency of this frame (see module docstring), ms.
    lesions : list of LesionRecord
    at_risk : bool or None
        Margin verdict of this frame; None without a surface mask.
    warnings : list of str
    findings_index : int or None
        Input frame whose findings are drawn (None: no analysis finished yet).
    dropped : int
        Source frames lost so far because the display could not keep the source's
        frame rate (shown on screen when > 0).
    """

    index: int
    time_s: float | None
    image: np.ndarray
    latency_ms: float
    lesions: list[LesionRecord] = field(default_factory=list)
    at_risk: bool | None = None
    warnings: list[str] = field(default_factory=list)
    findings_index: int | None = None
    dropped: int = 0


class LiveDisplay:
    """Compose live display frames (stateful: tracking, gain smoothing, latency window).

    Parameters
    ----------
    settings : AnalysisSettings
    bit_depth : int
        NIR bit depth (8, 12, 16).
    mode, colour : str
        Display mode and colour (see :mod:`.display`).
    surface : ndarray, (H, W) bool, optional
        Transection surface mask: each frame is margin-checked on it and a banner
        ``MARGIN AT RISK`` is shown while a spot meets ``rule``.
    rule : MarginCriterion, optional
    clipped_background : bool
        Input unmixed from a vendor overlay (no TBR).
    asynchronous : bool
        Analyse in a worker (see module docstring).
    analysis_interval_s : float
        Asynchronous mode: start a new analysis at most every this many seconds (0 = as
        soon as the previous one is done). A lower analysis rate leaves more of the CPU
        to the display; labels are then up to that much older (their age is shown).
    worker : str
        Asynchronous mode: ``process`` (default) or ``thread``.

    Attributes
    ----------
    analyses_started : int
        Asynchronous mode: frames handed to the worker.
    analyses_finished : int
        Findings received back from the worker.
    frames_not_analysed : int
        Asynchronous mode: frames shown but not handed to the worker (it was busy, or
        ``analysis_interval_s`` had not passed). After :meth:`close` (or
        :meth:`wait_for_analysis`), every frame composed with a NIR image is in exactly
        one of ``analyses_started`` and ``frames_not_analysed``.
    """

    def __init__(
        self,
        settings: AnalysisSettings,
        bit_depth: int,
        mode: str = "overlay",
        colour: str = "cividis",
        surface: np.ndarray | None = None,
        rule: MarginCriterion | None = None,
        clipped_background: bool = False,
        asynchronous: bool = False,
        analysis_interval_s: float = 0.0,
        worker: str = "process",
    ) -> None:
        if worker not in WORKERS:
            raise ValueError(f"worker must be one of {WORKERS}, not {worker!r}")
        self.settings = settings
        self.bit_depth = bit_depth
        self.mode = mode
        self.analyzer = FrameAnalyzer(settings, bit_depth, clipped_background)
        self.gain = display.GainControl(bit_depth=bit_depth)
        self.style = display.OverlayStyle(colour=colour)
        self.surface = surface
        self.rule = rule or MarginCriterion()
        self.latencies: deque[float] = deque(maxlen=_WINDOW)
        self._surface_working: np.ndarray | None = None
        self.asynchronous = asynchronous
        self._pool = None
        self._pending = None
        self._latest: _Findings | None = None
        self.analysis_interval_s = float(analysis_interval_s)
        self._last_submit = -np.inf
        self.worker = worker
        self.clipped_background = clipped_background
        self._process = None  # AnalysisProcess (worker="process")
        self._handoff: tuple[FramePair, float] | None = None  # composed, not handed over
        self.analyses_started = 0
        self.analyses_finished = 0
        self.frames_not_analysed = 0
        # The surface does not move: its outline is traced once, not on every frame.
        self._contours = None if surface is None else annotate.surface_contours(surface)
        self.dropped = 0  # source frames lost (set by live_frames), shown on screen
        self.source_fps: float | None = None

    def compose(self, pair: FramePair, received: float | None = None) -> LiveFrame:
        """Analyse one frame pair and draw everything on its display frame.

        Synchronous mode: the findings drawn are this frame's. Asynchronous mode: the frame
        is displayed at once with the newest finished findings (of an earlier frame,
        marked on screen with their age); this frame is handed to the worker (process or
        thread) by :meth:`handoff` if the worker is idle: the video is never held back by
        the analysis.

        Raises
        ------
        hepanav.fluorescence.worker.AnalysisProcessError
            Asynchronous mode with the worker process: the analysis failed there (its
            message) or the process ended.

        Parameters
        ----------
        pair : FramePair
        received : float, optional
            ``time.perf_counter()`` when the capture handed the frame over (default: now).
        """
        received = time.perf_counter() if received is None else received
        if pair.nir is None:
            h, w = self.surface.shape if self.surface is not None else (480, 640)
            image = np.zeros((h, w, 3), np.uint8)
            annotate.banner(image, "NO SIGNAL: " + "; ".join(pair.warnings)[:60], annotate.BLUE)
            return LiveFrame(pair.index, pair.time_s, image, 0.0, warnings=list(pair.warnings))
        if self.asynchronous:
            findings = self._async_findings(pair, received)
        else:
            findings = self._findings(pair, received)
        self.gain.update(pair.nir)
        if self.mode == "overlay" and pair.white is not None:
            # Only the boxes holding overlay are mapped to display levels and blended.
            image = display.overlay_nir(pair.white, pair.nir, self.gain, self.style)
        else:
            level = self.gain.to_display(pair.nir)
            image = display.render(self.mode, level, pair.white, self.style)
        offset = image.shape[1] - pair.nir.shape[1] if self.mode == "side-by-side" else 0
        lesions, at_risk, warnings = [], None, list(pair.warnings)
        if findings is not None:
            lesions, at_risk = findings.lesions, findings.at_risk
            warnings += findings.warnings
            annotate.draw_lesion_labels(image, lesions, offset_x=offset)
            if findings.margin is not None:
                view = image[:, offset:] if offset else image
                risky = findings.risky
                annotate.draw_surface_and_spots(
                    view, self.surface, findings.margin.spots, risky, self._contours
                )
                if findings.at_risk:
                    annotate.banner(
                        image,
                        f"MARGIN AT RISK: {len(risky)} fluorescent spot(s) on the surface",
                        annotate.VERMILLION,
                    )
        if self.dropped:
            self._dropped_label(image)
        latency = (time.perf_counter() - received) * 1e3
        self.latencies.append(latency)
        age = None
        if findings is not None and findings.index != pair.index:
            age = (time.perf_counter() - findings.received) * 1e3
        self._latency_label(image, latency, age)
        # The scale bar last (a few microseconds, not in the latency): on a small frame a
        # long latency label must not cover it.
        if self.settings.mm_per_px and self.mode != "side-by-side":
            annotate.draw_scale_bar(image, self.settings.mm_per_px)
        frame = LiveFrame(pair.index, pair.time_s, image, latency, lesions, at_risk, warnings)
        frame.findings_index = None if findings is None else findings.index
        frame.dropped = self.dropped
        return frame

    def _async_findings(self, pair: FramePair, received: float):
        """Newest finished findings; remember ``pair`` for the worker (handed over by
        :meth:`handoff` once its display frame is ready)."""
        self.handoff()  # a previous frame not handed over yet (direct compose callers)
        self._collect()
        self._handoff = (pair, received)
        return self._latest

    def start(self) -> None:
        """Asynchronous mode: start the worker now and wait until it is ready (else it
        starts with the first frame, and the first second or so is shown without
        findings while the process imports its modules)."""
        if not self.asynchronous:
            return
        self._collect()
        if self._process is not None:
            self._process.wait_ready()

    def _collect(self) -> None:
        """Take the worker's findings if they are back (never waits)."""
        if self.worker == "process":
            if self._process is None:
                from hepanav.fluorescence.worker import AnalysisProcess

                self._process = AnalysisProcess(
                    self.settings,
                    self.bit_depth,
                    self.clipped_background,
                    self.surface,
                    self.rule,
                )
            found = self._process.poll()
            if found is not None:
                self._latest = found
                self.analyses_finished += 1
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hepanav-live")
            # The worker's Python steps hold the GIL; the display thread, back from each
            # OpenCV call, would wait up to the switch interval (5 ms by default) for it.
            # A shorter interval bounds that wait; restored by close().
            self._switch = sys.getswitchinterval()
            sys.setswitchinterval(min(self._switch, _SWITCH_INTERVAL_S))
        if self._pending is not None and self._pending.done():
            self._latest = self._pending.result()
            self._pending = None
            self.analyses_finished += 1

    def handoff(self) -> None:
        """Asynchronous mode: hand the last composed frame to the worker if it is idle
        (newest frame wins), else count it in :attr:`frames_not_analysed`.

        Called by :func:`live_frames` after the consumer has taken the display frame, so
        the copy into shared memory is not in that frame's latency (it is in the CPU
        time of the display thread); :meth:`compose` calls it too.
        """
        if self._handoff is None:
            return
        pair, received = self._handoff
        self._handoff = None
        now = time.perf_counter()
        if now - self._last_submit < self.analysis_interval_s:
            self.frames_not_analysed += 1
            return
        self._collect()
        if self.worker == "process":
            ok = self._process.submit(pair, received)
        elif self._pending is None:
            # No copies: sources hand over a new array per frame and nothing here writes
            # into the input (a caller that reuses its buffers must copy them).
            self._pending = self._pool.submit(self._findings, pair, received)
            ok = True
        else:
            ok = False
        if ok:
            self._last_submit = now
            self.analyses_started += 1
        else:
            self.frames_not_analysed += 1

    def wait_for_analysis(self) -> None:
        """Asynchronous mode: hand over the last composed frame (waiting for the worker to
        start, not to be idle) and block until the running analysis is done (tests,
        shutdown)."""
        if self.worker == "process" and self._process is not None:
            self._process.wait_ready()
            found = self._process.poll()
            if found is not None:
                self._latest = found
                self.analyses_finished += 1
        self.handoff()
        if self._process is not None:
            found = self._process.wait()
            if found is not None:
                self._latest = found
                self.analyses_finished += 1
        if self._pending is not None:
            self._latest = self._pending.result()
            self._pending = None
            self.analyses_finished += 1

    def close(self) -> None:
        """Stop the analysis worker (a frame composed but not handed over is counted in
        :attr:`frames_not_analysed`)."""
        if self._handoff is not None:
            self._handoff = None
            self.frames_not_analysed += 1
        if self._process is not None:
            self._process.close()
            self._process = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
            sys.setswitchinterval(self._switch)

    def _findings(self, pair: FramePair, received: float) -> _Findings:
        """Analysis and margin check of one frame (no drawing)."""
        analysis = self.analyzer.analyze(pair.nir, pair.white)
        warnings = list(analysis.warnings)
        margin, risky = None, set()
        if self.surface is not None:
            margin = self._margin(pair, analysis)
            warnings += margin.warnings
            from hepanav.fluorescence.margin import at_risk_spots

            risky = at_risk_spots(margin, self.rule.min_cnr, self.rule.min_area_px)
        return _Findings(
            pair.index,
            received,
            analysis.lesions,
            margin,
            risky,
            None if margin is None else margin.at_risk,
            warnings,
        )

    def _margin(self, pair: FramePair, analysis):
        from hepanav.fluorescence import detect
        from hepanav.fluorescence.margin import check_frame

        full_scale = (1 << self.bit_depth) - 1
        # The analysis's working frame serves the margin check too (same grid and noise
        # floor, unless the background is clipped); the surface's is computed once.
        working = None if self.analyzer.clipped_background else analysis.working
        if working is not None and self._surface_working is None:
            self._surface_working = (
                detect.downscale(self.surface.astype(np.uint8), working.factor) > 0
            )
        return check_frame(
            pair.index,
            pair.nir,
            self.surface,
            self.settings,
            full_scale,
            self.rule.min_cnr,
            self.rule.min_area_px,
            working,
            self._surface_working if working is not None else None,
        )

    def _latency_label(self, image: np.ndarray, latency: float, age: float | None) -> None:
        p99 = float(np.percentile(np.fromiter(self.latencies, float), 99))
        label = f"+{latency:.1f} ms (p99 {p99:.1f})"
        if age is not None:
            label += f" labels {age:.0f} ms old"
        scale = annotate.font_scale(image) * 0.8
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        h, w = image.shape[:2]
        annotate.text(image, label, (w - tw - 10, h - 10), scale, annotate.YELLOW)

    def _dropped_label(self, image: np.ndarray) -> None:
        rate = f"{self.source_fps:g} fps" if self.source_fps else "frame rate"
        label = f"{self.dropped} frames dropped: source {rate} not kept"
        scale = annotate.font_scale(image) * 0.8
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        h, w = image.shape[:2]
        annotate.text(image, label, (w - tw - 10, h - 2 * th - 24), scale, annotate.ORANGE)

    def p99_ms(self) -> float | None:
        """p99 of the added latency over the last frames, ms."""
        if not self.latencies:
            return None
        return float(np.percentile(np.fromiter(self.latencies, float), 99))


def live_frames(
    pairs: Iterator[FramePair],
    live: LiveDisplay,
    pace: bool = False,
    max_frames: int | None = None,
    fps: float | None = None,
) -> Iterator[LiveFrame]:
    """Compose every frame of ``pairs`` (as they come) into a :class:`LiveFrame`.

    Frames the display could not keep up with are counted in ``live.dropped`` and the
    count is shown on every later frame (``N frames dropped: source F fps not kept``):
    a gap of more than 1.5 frame periods between consecutive ``time_s`` (a camera or
    :class:`~hepanav.fluorescence.sources.MemoryReplay` that moved on), or, with
    ``pace``, a recorded frame skipped because the next one was already due.

    Parameters
    ----------
    pairs : iterator of FramePair
        From :func:`hepanav.fluorescence.sources.frame_pairs` or a
        :class:`~hepanav.fluorescence.sources.MemoryReplay`. A pair's ``received``
        (when the source made it available) is the start of its latency; without it,
        the moment it is read here.
    live : LiveDisplay
    pace : bool
        Wait until each frame's time (``time_s``) has come: a file plays at the rate it
        was recorded; when the display falls behind, frames whose successor is due are
        skipped (dropped) rather than played late. A camera paces itself.
    max_frames : int, optional
        Stop after this many frames shown.
    fps : float, optional
        Source frame rate, frames/s (``info["fps"]``): needed to count the frames a
        source dropped; None = only the frames skipped here are counted.
    """
    period = 1.0 / fps if fps else None
    live.source_fps = fps
    start = None
    shown = 0
    last_time = None
    for pair in pairs:
        received = pair.received if pair.received is not None else time.perf_counter()
        if pace and pair.time_s is not None:
            if start is None:
                start = received - pair.time_s
            wait = start + pair.time_s - received
            step = period or (
                pair.time_s - last_time
                if last_time is not None and pair.time_s > last_time
                else None
            )
            if step and wait < -step:
                # The next frame is already due: show that one instead of this one.
                if period is None:
                    live.dropped += 1
                continue
            if wait > 0:
                time.sleep(wait)
                received = time.perf_counter()
        if period and pair.time_s is not None and last_time is not None:
            gap = pair.time_s - last_time
            if gap > 1.5 * period:
                live.dropped += int(round(gap / period)) - 1
        if pair.time_s is not None:
            last_time = pair.time_s
        yield live.compose(pair, received)
        # The consumer has shown the frame: now hand it to the analysis worker.
        live.handoff()
        shown += 1
        if max_frames and shown >= max_frames:
            break


def jpeg_frames(
    frames: Iterator[LiveFrame], quality: int = 80
) -> Iterator[tuple[bytes, LiveFrame]]:
    """JPEG bytes of each live frame; the encoding time is added to ``latency_ms``.

    For a web server: ``StreamingResponse(mjpeg_multipart(jpeg_frames(...)),
    media_type=f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}")``.
    """
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    for frame in frames:
        t0 = time.perf_counter()
        ok, buf = cv2.imencode(".jpg", frame.image, params)
        frame.latency_ms += (time.perf_counter() - t0) * 1e3
        yield buf.tobytes(), frame


def mjpeg_multipart(jpegs: Iterator[tuple[bytes, LiveFrame]]) -> Iterator[bytes]:
    """``multipart/x-mixed-replace`` parts (boundary :data:`MJPEG_BOUNDARY`), one per frame.

    Each part carries the headers ``Content-Type: image/jpeg``, ``Content-Length`` and
    ``X-Latency-Ms`` (the frame's added latency).
    """
    for data, frame in jpegs:
        head = (
            f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n"
            f"X-Frame-Index: {frame.index}\r\nX-Latency-Ms: {frame.latency_ms:.2f}\r\n\r\n"
        )
        yield head.encode("ascii") + data + b"\r\n"


def window_available() -> bool:
    """True when this OpenCV build can open a HighGUI window (not the headless wheel)."""
    import os
    import sys

    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False  # GTK/Qt would abort the process without a display
    try:
        cv2.namedWindow("hepanav-probe", cv2.WINDOW_NORMAL)
        cv2.destroyWindow("hepanav-probe")
        return True
    except cv2.error:
        return False
