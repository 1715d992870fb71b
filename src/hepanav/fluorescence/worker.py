"""Analysis of the live display in a separate process (its own interpreter and GIL).

The live display (:class:`hepanav.fluorescence.live.LiveDisplay`) shows every frame at
once and draws the newest finished findings; the analysis (detection, measurement,
tracking, margin check: ~20-30 ms per 1080p frame on the 2-core reference machine) runs
beside it. In a thread it shares the display's interpreter lock and delays the display
thread each time it holds it; in this process it does not.

Protocol (one slot, **newest frame wins**):

* the display copies a frame (NIR and white light) into one block of shared memory
  (:mod:`multiprocessing.shared_memory`) only while the process is idle, and sends a
  short message (frame index, shapes, dtypes) over a pipe;
* the process analyses it and sends the findings back over the same pipe; only then
  may the display write the next frame into the block. Frames that arrive while the
  process is busy are not queued: when it is free, it gets the newest frame.

The process lowers its own scheduling priority (``nice`` + :data:`NICE_INCREMENT` on
POSIX) so that on a busy machine the display thread gets a core first; the findings
are then later, never the video. The process is started with the ``spawn`` method (no
fork of a process that runs OpenCV threads); starting it takes about a second, during
which frames are shown without findings.

Errors: an exception in the analysis is re-raised in the display process as
:class:`AnalysisProcessError` with the child's message; a process that ends
unexpectedly raises the same error.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

from hepanav.core import HepaNavError

NICE_INCREMENT = 5  # scheduling priority of the analysis process, relative to the display


class AnalysisProcessError(HepaNavError):
    """The analysis process failed (its message says why, in one line; the child's
    traceback is in :attr:`details`) or ended unexpectedly."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


@dataclass
class _Job:
    """Message to the process: where frame ``index`` lies in the shared block."""

    index: int
    received: float
    shm_name: str
    nir_shape: tuple[int, ...]
    nir_dtype: str
    white_shape: tuple[int, ...] | None


def _serve(conn, settings, bit_depth, clipped_background, surface, rule, nice) -> None:
    """Child process: analyse each job's frame and send back its findings (or an error)."""
    from hepanav.fluorescence.live import LiveDisplay
    from hepanav.fluorescence.sources import FramePair

    if nice and hasattr(os, "nice"):
        try:
            os.nice(nice)
        except OSError:
            pass
    # The same analysis code as the synchronous and thread modes (LiveDisplay._findings).
    analyst = LiveDisplay(
        settings, bit_depth, surface=surface, rule=rule, clipped_background=clipped_background
    )
    _warm_up(settings, bit_depth, clipped_background, surface, rule)
    shm, name = None, None
    conn.send(("ready", None))
    try:
        while True:
            try:
                job = conn.recv()
            except EOFError:
                return
            if job is None:
                return
            if name != job.shm_name:
                if shm is not None:
                    shm.close()
                # The display process owns (and unlinks) the block; a spawned process
                # shares its resource tracker, so attaching registers nothing new.
                shm = shared_memory.SharedMemory(name=job.shm_name)
                name = job.shm_name
            nir = np.ndarray(job.nir_shape, np.dtype(job.nir_dtype), buffer=shm.buf)
            white = None
            if job.white_shape is not None:
                white = np.ndarray(job.white_shape, np.uint8, buffer=shm.buf, offset=nir.nbytes)
            try:
                found = analyst._findings(FramePair(job.index, nir, white), job.received)
                del nir, white  # no view may outlive the block
                conn.send(("findings", found))
            except Exception:  # noqa: BLE001 - reported to the display, which re-raises
                del nir, white
                conn.send(("error", traceback.format_exc(limit=4)))
    finally:
        if shm is not None:
            shm.close()


def _warm_up(settings, bit_depth, clipped_background, surface, rule) -> None:
    """Run the analysis once on a dark frame before saying "ready", on a throwaway
    display (no state carried over): the first real frame then does not pay for the
    modules the analysis imports lazily (a tester saw the first ~24 frames of a fast
    replay shown without findings). A failure here is left to the real frames to report."""
    from hepanav.fluorescence.live import LiveDisplay
    from hepanav.fluorescence.sources import FramePair

    shape = surface.shape if surface is not None else (64, 64)
    try:
        LiveDisplay(
            settings, bit_depth, surface=surface, rule=rule, clipped_background=clipped_background
        )._findings(FramePair(-1, np.zeros(shape, np.uint16), None), 0.0)
    except Exception:  # noqa: BLE001 - only a warm-up
        pass


class AnalysisProcess:
    """The analysis of a :class:`LiveDisplay` in a separate process (see module docstring).

    Parameters
    ----------
    settings : AnalysisSettings
    bit_depth : int
    clipped_background : bool
    surface : ndarray, (H, W) bool, optional
        Transection surface mask (sent once, at start).
    rule : MarginCriterion
    nice : int
        Priority increment of the process (POSIX ``nice``); 0 = same as the display.

    Attributes
    ----------
    started : int
        Frames handed over for analysis.
    finished : int
        Findings received back (``started - finished`` is 0 or 1: one slot).
    """

    def __init__(
        self, settings, bit_depth, clipped_background, surface, rule, nice: int = NICE_INCREMENT
    ) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve,
            args=(child, settings, bit_depth, clipped_background, surface, rule, nice),
            name="hepanav-live-analysis",
            daemon=True,
        )
        self._proc.start()
        child.close()
        self._ready = False
        self._busy = False
        self._shm: shared_memory.SharedMemory | None = None
        self.started = 0
        self.finished = 0

    @property
    def busy(self) -> bool:
        """True while a frame is being analysed (or the process is still starting)."""
        return self._busy or not self._ready

    def submit(self, pair, received: float) -> bool:
        """Copy ``pair`` into the shared block and start its analysis; False (nothing done)
        while the process is busy or starting, or for a pair without NIR."""
        if self.busy or pair.nir is None:
            return False
        nir, white = pair.nir, pair.white
        size = nir.nbytes + (white.nbytes if white is not None else 0)
        if self._shm is None or self._shm.size < size:
            self._release()
            self._shm = shared_memory.SharedMemory(create=True, size=size)
        view = np.ndarray(nir.shape, nir.dtype, buffer=self._shm.buf)
        np.copyto(view, nir)
        if white is not None:
            wview = np.ndarray(white.shape, np.uint8, buffer=self._shm.buf, offset=nir.nbytes)
            np.copyto(wview, white)
            del wview
        del view
        self._conn.send(
            _Job(
                pair.index,
                received,
                self._shm.name,
                tuple(nir.shape),
                nir.dtype.str,
                None if white is None else tuple(white.shape),
            )
        )
        self._busy = True
        self.started += 1
        return True

    def poll(self, timeout: float = 0.0):
        """The findings of the frame in analysis if they are back (else None); waits up to
        ``timeout`` s. Raises AnalysisProcessError if the analysis failed."""
        while self._conn.poll(timeout) if timeout else self._conn.poll():
            try:
                kind, payload = self._conn.recv()
            except (EOFError, OSError):
                raise AnalysisProcessError("the analysis process ended unexpectedly") from None
            if kind == "ready":
                self._ready = True
                continue
            self._busy = False
            self.finished += 1
            if kind == "error":
                last = payload.strip().splitlines()[-1] if payload.strip() else "unknown error"
                raise AnalysisProcessError(
                    f"analysis failed in the worker process: {last}", payload
                )
            return payload
        if not self._proc.is_alive():
            raise AnalysisProcessError(
                f"the analysis process ended unexpectedly (exit code {self._proc.exitcode})"
            )
        return None

    def wait(self, timeout: float = 120.0):
        """Block until the running analysis is back (starting the process included);
        return its findings, or None if nothing was running."""
        import time

        deadline = time.monotonic() + timeout
        while not self._ready or self._busy:
            if time.monotonic() > deadline:
                raise AnalysisProcessError(f"no answer from the analysis process in {timeout} s")
            found = self.poll(timeout=0.05)
            if found is not None:
                return found
            if self._ready and not self._busy:
                return None
        return None

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until the process has started (imports done)."""
        import time

        deadline = time.monotonic() + timeout
        while not self._ready:
            if time.monotonic() > deadline:
                raise AnalysisProcessError(f"the analysis process did not start in {timeout} s")
            self.poll(timeout=0.05)

    def close(self) -> None:
        """Stop the process (after the running analysis) and free the shared block."""
        try:
            self._conn.send(None)
        except (OSError, ValueError):
            pass
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=5)
        self._conn.close()
        self._release()

    def _release(self) -> None:
        if self._shm is not None:
            self._shm.close()
            try:
                self._shm.unlink()
            except FileNotFoundError:
                pass
            self._shm = None
