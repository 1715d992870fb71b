"""Background jobs on Dask distributed: a cluster handle and a job made of CLI steps.

A job is a list of ``hepanav`` command lines run one after the other in a job
folder (the same commands a person would type, so the web application and the
CLI cannot drift apart). Each step's one-line error becomes the job's error; its
full stderr goes to ``job.log`` beside it. Results are written into
``.work-<attempt>`` and renamed to ``result`` only when every step succeeded, so a
job whose worker died leaves no half result, and a re-run after a restart never
produces a second one (the rename of a folder onto an existing ``result`` fails).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULT = "result"
PROGRESS = "progress.json"
LOG = "job.log"


class JobFailed(RuntimeError):
    """A job step failed; the message is the step's one-line error (no traceback)."""


def _write_progress(job_dir: Path, **fields: Any) -> None:
    tmp = job_dir / f".{PROGRESS}.tmp"
    tmp.write_text(json.dumps(fields))
    os.replace(tmp, job_dir / PROGRESS)


def read_progress(job_dir: str | Path) -> dict[str, Any]:
    """The last progress record of a job folder (``{}`` before the job started)."""
    try:
        return json.loads((Path(job_dir) / PROGRESS).read_text())
    except (OSError, ValueError):
        return {}


def run_cli_steps(
    job_dir: str, steps: Sequence[tuple[str, Sequence[str]]], attempt: int = 1
) -> dict[str, Any]:
    """Run ``hepanav`` command lines in order; the body of every job.

    Parameters
    ----------
    job_dir : str
        Job folder (created if missing). ``{work}`` in a step's arguments is replaced by
        the attempt's working folder, whose content becomes ``job_dir/result``.
    steps : sequence of (label, argv)
        A short label shown as progress and the arguments after ``hepanav``.
    attempt : int
        Attempt number (a restart re-runs the job as attempt 2, ...).

    Returns
    -------
    dict
        ``{"result": path, "reused": bool}``.

    Raises
    ------
    JobFailed
        With the failing step's one-line error.
    """
    root = Path(job_dir)
    root.mkdir(parents=True, exist_ok=True)
    result = root / RESULT
    if result.is_dir():
        _write_progress(root, step=len(steps), of=len(steps), label="done", state="done")
        return {"result": str(result), "reused": True}
    # Working folders of earlier attempts (a crash) are dropped: only a whole result counts.
    for stale in root.glob(".work-*"):
        shutil.rmtree(stale, ignore_errors=True)
    work = root / f".work-{attempt}"
    work.mkdir()
    with open(root / LOG, "a", encoding="utf-8") as log:
        for index, (label, argv) in enumerate(steps):
            _write_progress(root, step=index, of=len(steps), label=label, state="running")
            args = [str(a).replace("{work}", str(work)) for a in argv]
            log.write(f"$ hepanav {' '.join(args)}\n")
            log.flush()
            proc = subprocess.run(  # noqa: S603 - fixed interpreter, argv list, no shell
                [sys.executable, "-m", "hepanav", *args],
                cwd=work,
                capture_output=True,
                text=True,
            )
            log.write(proc.stdout)
            log.write(proc.stderr)
            if proc.returncode != 0:
                lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
                message = (
                    lines[0].removeprefix("error:").strip()
                    if lines
                    else (f"step '{label}' failed (exit {proc.returncode}); see {LOG}")
                )
                _write_progress(root, step=index, of=len(steps), label=label, state="failed")
                shutil.rmtree(work, ignore_errors=True)
                raise JobFailed(message)
    try:
        os.rename(work, result)
    except OSError:
        # Another attempt finished first: keep its result, drop ours.
        shutil.rmtree(work, ignore_errors=True)
    _write_progress(root, step=len(steps), of=len(steps), label="done", state="done")
    return {"result": str(result), "reused": False}


class JobCluster:
    """A Dask client: an external scheduler by address, else a LocalCluster.

    Parameters
    ----------
    scheduler : str or None
        ``tcp://host:port`` of a running scheduler; ``None`` starts a LocalCluster.
    workers : int or None
        Worker processes of the LocalCluster; default ``max(1, cpu_count // 2)``. Each job
        step is a process that itself uses every core (ITK threads), so two concurrent jobs
        per two cores keep a laptop responsive.
    """

    def __init__(self, scheduler: str | None = None, workers: int | None = None) -> None:
        from distributed import Client, LocalCluster

        self.cluster = None
        if scheduler:
            self.client = Client(scheduler, timeout="10s")
        else:
            n = workers or max(1, (os.cpu_count() or 2) // 2)
            self.cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=40,
            )
            self.client = Client(self.cluster)

    def submit(self, key: str, job_dir: str, steps, attempt: int = 1):
        """Submit one job; returns its Dask future."""
        return self.client.submit(
            run_cli_steps, job_dir, steps, attempt, key=key, pure=False, retries=0
        )

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
