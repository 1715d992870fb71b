"""Live display (issue 13): added latency at 1080p60 against the raw loop, same run.

``python -m bench live`` runs only this part of ``bench fluorescence``
(:func:`bench.bench_fluorescence.live_latency`; see its docstring). OpenCV keeps its
default thread count (all cores), as the live command does.

Environment: ``HEPANAV_BENCH_LIVE_SECONDS`` (default 20), ``HEPANAV_BENCH_LIVE_INTERVAL_S``
(``analysis_interval_s``, default 0), ``HEPANAV_BENCH_LIVE_MODES`` (comma-separated from
``async`` = worker process, ``thread``, ``sync``; default all three),
``HEPANAV_BENCH_LIVE_FILE_FRAMES`` (frames of the FFV1 file-source line, 0 = skip it;
default 90).
"""

from __future__ import annotations

import os
import sys


def main() -> dict:
    from bench.bench_fluorescence import display_breakdown, live_latency

    seconds = float(os.environ.get("HEPANAV_BENCH_LIVE_SECONDS", "20"))
    interval = float(os.environ.get("HEPANAV_BENCH_LIVE_INTERVAL_S", "0"))
    out = {"display_steps_cpu_ms": display_breakdown()}
    modes = tuple(os.environ.get("HEPANAV_BENCH_LIVE_MODES", "async,thread,sync").split(","))
    files = int(os.environ.get("HEPANAV_BENCH_LIVE_FILE_FRAMES", "90"))
    out.update(
        live_latency(seconds=seconds, analysis_interval_s=interval, modes=modes, file_frames=files)
    )
    return out


if __name__ == "__main__":
    print(main(), file=sys.stdout)
