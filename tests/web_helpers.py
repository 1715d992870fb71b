"""Fixtures for the web application: a real server process, users, and Debian's Chromium.

The server runs as ``hepanav serve`` in a subprocess on a free loopback port with a
temporary data folder (SQLite application database, LocalCluster); Chromium is
Debian's ``/usr/bin/chromium`` driven by Playwright (never a downloaded browser).
Under ``CI=true`` a missing Chromium fails the tests instead of skipping them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # WebGL (NiiVue) in headless mode without a GPU: SwiftShader through ANGLE.
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
PASSWORD = "correct-horse-battery-staple"
ROLES = ("radiologist", "surgeon", "coordinator", "admin")
PROJECT = Path(__file__).resolve().parents[1]
NIIVUE = PROJECT / "src/hepanav/web/static/vendor/niivue.umd.js"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need_chromium() -> None:
    if not Path(CHROMIUM).exists():
        reason = f"Debian Chromium not found at {CHROMIUM} (make sysdeps installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    if not NIIVUE.exists():
        reason = f"NiiVue asset missing at {NIIVUE} (make web-assets installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def make_users(db_url: str) -> None:
    from sqlalchemy.orm import Session

    from hepanav.web.models import make_web_engine
    from hepanav.web.security import create_user

    engine = make_web_engine(db_url)
    with Session(engine) as session:
        for role in ROLES:
            create_user(session, f"test-{role}", PASSWORD, role)
    engine.dispose()


@dataclass
class Server:
    url: str
    data_dir: Path
    db: str
    port: int
    process: subprocess.Popen | None = None
    log: Path | None = None

    def start(self) -> None:
        env = dict(os.environ, HEPANAV_WEB_COOKIE_SECURE="false",
                   HEPANAV_WEB_REGISTRY_DB=f"sqlite:///{self.data_dir / 'registry.sqlite'}")
        self.log = self.data_dir / "server.log"
        handle = open(self.log, "ab")  # noqa: SIM115 - kept open for the process's lifetime
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hepanav", "serve", "--port", str(self.port),
             "--data-dir", str(self.data_dir), "--db", self.db],
            stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        deadline = time.monotonic() + 120
        import httpx

        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
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


@pytest.fixture(scope="session")
def phantom_case(tmp_path_factory) -> Path:
    """A synthetic ablation case written once per session by ``hepanav phantom``."""
    out = tmp_path_factory.mktemp("web-case") / "case"
    subprocess.run([sys.executable, "-m", "hepanav", "phantom", "--out", str(out)],
                   check=True, capture_output=True)
    return out


def new_server(root: Path, phantom_case: Path) -> Server:
    data = root / "data"
    (data / "cases").mkdir(parents=True)
    shutil.copytree(phantom_case, data / "cases" / "demo-ablation-001")
    port = free_port()
    server = Server(f"http://127.0.0.1:{port}", data, f"sqlite:///{data / 'web.sqlite'}", port)
    make_users(server.db)
    return server


@pytest.fixture(scope="module")
def web_server(tmp_path_factory, phantom_case):
    """A running HepaNav server with the demo case and one user per role."""
    server = new_server(tmp_path_factory.mktemp("web"), phantom_case)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def login(page, server: Server, role: str) -> None:
    page.goto(server.url + "/login")
    page.fill("input[name=username]", f"test-{role}")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/")
