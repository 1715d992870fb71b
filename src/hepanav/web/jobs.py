"""Jobs of the web application: database state + Dask execution + a monitor thread.

The database row is the truth a page shows; the Dask future only runs the work.
On start-up every job left ``queued`` or ``running`` by a previous server is
submitted again (``attempts`` + 1); ``hepanav.core.jobs.run_cli_steps`` reuses a
result that was completed before the restart, so a result never appears twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hepanav.core.jobs import JobCluster, JobFailed, read_progress
from hepanav.web.models import Job, utcnow

log = logging.getLogger("hepanav.web.jobs")


class JobManager:
    """Submit jobs, follow them, and recover after a restart."""

    def __init__(self, engine: Engine, jobs_dir: Path, cluster: JobCluster) -> None:
        self.engine = engine
        self.jobs_dir = jobs_dir
        self.cluster = cluster
        self._futures: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="hepanav-jobs", daemon=True)

    def job_dir(self, job_id: int) -> Path:
        return self.jobs_dir / f"job-{job_id:06d}"

    def start(self) -> None:
        """Re-queue jobs a previous server left unfinished, then follow all jobs."""
        with Session(self.engine) as db:
            stale = db.scalars(select(Job).where(Job.state.in_(("queued", "running")))).all()
            for job in stale:
                log.info("re-queueing job %s after restart", job.id)
                self._submit(db, job)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def create(
        self,
        kind: str,
        case_id: str,
        steps: Sequence[tuple[str, Sequence[str]]],
        params: dict[str, Any],
        user: str,
    ) -> int:
        """Store a new job and submit it; returns its id."""
        with Session(self.engine) as db:
            job = Job(
                kind=kind,
                case_id=case_id,
                params={**params, "steps": [[label, list(argv)] for label, argv in steps]},
                created_by=user,
            )
            db.add(job)
            db.commit()
            self._submit(db, job)
            return job.id

    def _submit(self, db: Session, job: Job) -> None:
        job.attempts += 1
        job.state = "queued"
        job.message = ""
        db.commit()
        steps = [(label, argv) for label, argv in job.params["steps"]]
        future = self.cluster.submit(
            f"hepanav-job-{job.id}-{job.attempts}", str(self.job_dir(job.id)), steps, job.attempts
        )
        with self._lock:
            self._futures[job.id] = future

    def status(self, job_id: int) -> dict[str, Any]:
        """State, progress in [0, 1], current step label and message of a job."""
        with Session(self.engine) as db:
            job = db.get(Job, job_id)
            if job is None:
                return {}
            record = read_progress(self.job_dir(job_id))
            of = max(int(record.get("of", 1) or 1), 1)
            step = int(record.get("step", 0) or 0)
            state = job.state
            if state == "queued" and record.get("state") == "running":
                state = "running"
            fraction = 1.0 if state == "done" else min(step / of, 0.99)
            return {
                "id": job.id,
                "kind": job.kind,
                "state": state,
                "progress": round(fraction, 3),
                "step": record.get("label", "waiting for a worker"),
                "message": job.message,
            }

    def _publish_case(self, job: Job) -> None:
        """A study fetched from PACS becomes a worklist case (a link to the job's result)."""
        target = self.job_dir(job.id) / "result" / "series"
        link = self.jobs_dir.parent / "cases" / job.params["case"]
        if target.is_dir() and not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target.resolve(), target_is_directory=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.3):
            with self._lock:
                items = list(self._futures.items())
            for job_id, future in items:
                if not future.done():
                    continue
                with self._lock:
                    self._futures.pop(job_id, None)
                self._finish(job_id, future)

    def _page_message(self, job: Job, message: str) -> str:
        """A failed step's one-line error as the page shows it (``web.messages``)."""
        from hepanav.web.messages import for_the_page

        steps = job.params.get("steps") or []
        index = int(read_progress(self.job_dir(job.id)).get("step", -1) or 0)
        argv = steps[index][1] if 0 <= index < len(steps) else None
        return for_the_page(message, self.jobs_dir.parent, argv, job.id)

    def _finish(self, job_id: int, future: Any) -> None:
        with Session(self.engine) as db:
            job = db.get(Job, job_id)
            if job is None:
                return
            try:
                future.result()
                job.state, job.progress, job.message = "done", 1.0, ""
                if job.kind == "fetch":
                    self._publish_case(job)
                signs_off = job.params.get("signs_off") if job.kind == "signoff" else None
                if signs_off is not None:
                    # Every store succeeded: only now is the result signed off.
                    parent = db.get(Job, int(signs_off))
                    if parent is not None and not parent.signed_off_by:
                        parent.signed_off_by = job.created_by
            except JobFailed as exc:
                # The CLI's line in the page's words (no server paths, no option names);
                # the line as the CLI wrote it stays in job.log and the server log.
                log.info("job %s failed: %s", job_id, exc)
                job.state, job.message = "failed", self._page_message(job, str(exc))
            except Exception as exc:  # a worker crash or a bug: the log has the traceback
                log.exception("job %s failed", job_id)
                job.state = "failed"
                job.message = f"internal error ({type(exc).__name__}); see the server log"
            job.finished_at = utcnow()
            db.commit()
