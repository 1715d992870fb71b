"""Run a HepaNav server in a subprocess on a loopback port (for tests and benchmarks).

``Server(...).start()`` runs ``hepanav serve`` with its own data folder and waits for
``/health``; ``kill()`` is a crash (SIGKILL to the whole process group, workers
included), ``stop()`` a normal shutdown.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PASSWORD = "correct-horse-battery-staple"
ROLES = ("radiologist", "surgeon", "coordinator", "admin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_users(db_url: str, prefix: str = "test") -> None:
    """One user per role, named ``PREFIX-ROLE``, all with ``PASSWORD``."""
    from sqlalchemy.orm import Session

    from hepanav.web.models import make_web_engine
    from hepanav.web.security import create_user

    engine = make_web_engine(db_url)
    with Session(engine) as session:
        for role in ROLES:
            create_user(session, f"{prefix}-{role}", PASSWORD, role)
    engine.dispose()


class _PortTaken(RuntimeError):
    """The server could not bind its port (taken since it was chosen)."""


@dataclass
class Server:
    url: str
    data_dir: Path
    db: str
    port: int
    process: subprocess.Popen | None = None
    log: Path | None = None
    extra_env: dict[str, str] | None = None

    def start(self) -> None:
        """Start ``hepanav serve`` and wait for ``/health``. A port taken between
        :func:`free_port` and the bind (another test's server or Orthanc, in parallel) is
        replaced by a new free port, up to 3 times."""
        for attempt in range(3):
            try:
                return self._start_once()
            except _PortTaken:
                if attempt == 2:
                    raise
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"

    def _start_once(self) -> None:
        env = dict(
            os.environ,
            HEPANAV_WEB_COOKIE_SECURE="false",
            HEPANAV_WEB_REGISTRY_DB=f"sqlite:///{self.data_dir / 'registry.sqlite'}",
            **(self.extra_env or {}),
        )
        self.log = self.data_dir / "server.log"
        offset = self.log.stat().st_size if self.log.is_file() else 0  # this attempt's part
        handle = open(self.log, "ab")  # noqa: SIM115 - kept open for the process's lifetime
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hepanav",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--db",
                self.db,
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        import httpx

        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.log.read_bytes()[offset:].decode(errors="replace")[-2000:]
                if "address already in use" in log:
                    raise _PortTaken(log)
                raise RuntimeError(f"server exited: {log}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("server did not answer /health within 120 s")

    def kill(self) -> None:
        """SIGKILL the server and its process group (workers too): a crash, not a stop."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
