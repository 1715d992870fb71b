"""A real Orthanc PACS for the tests: generated config, loopback ports, temporary storage.

Use the ``orthanc`` fixture (session scope, registered with ``pytest_plugins`` or by
importing it into a test module). It starts ``Orthanc`` with the DICOMweb plugin
from /usr/share/orthanc/plugins on free loopback ports (HTTP and DICOM), a known AE
title, HTTP basic auth and a C-MOVE destination for our AE; it waits until Orthanc
answers and stops it after the session. Without Orthanc the tests skip with the
reason, except under CI=true, where a missing Orthanc is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
AET = "ORTHANC"
OUR_AET = "HEPANAV"
USER, PASSWORD = "hepanav", "test-only-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class OrthancServer:
    """A running Orthanc and the settings that reach it."""

    http_port: int
    dicom_port: int
    move_port: int
    folder: Path
    process: subprocess.Popen = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def env(self, protocol: str, retrieve: str = "get") -> dict[str, str]:
        """``HEPANAV_PACS_*`` environment for ``protocol`` ('dicomweb' or 'dimse')."""
        return {
            "HEPANAV_PACS_PROTOCOL": protocol,
            "HEPANAV_PACS_URL": self.dicomweb_url,
            "HEPANAV_PACS_USERNAME": USER,
            "HEPANAV_PACS_PASSWORD": PASSWORD,
            "HEPANAV_PACS_HOST": "127.0.0.1",
            "HEPANAV_PACS_PORT": str(self.dicom_port),
            "HEPANAV_PACS_CALLED_AE": AET,
            "HEPANAV_PACS_CALLING_AE": OUR_AET,
            "HEPANAV_PACS_RETRIEVE": retrieve,
            "HEPANAV_PACS_MOVE_PORT": str(self.move_port),
            "HEPANAV_PACS_TIMEOUT_S": "20",
        }

    def rest(self, path: str, method: str = "GET", **kwargs):
        """Orthanc REST API call (JSON answer)."""
        r = requests.request(
            method, f"{self.url}{path}", auth=(USER, PASSWORD), timeout=30, **kwargs
        )
        r.raise_for_status()
        return r.json() if r.content else None

    def clear(self) -> None:
        """Delete every study (tests start from an empty archive)."""
        for study in self.rest("/studies"):
            self.rest(f"/studies/{study}", method="DELETE")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def orthanc_missing() -> str | None:
    """Why Orthanc cannot run here, or None."""
    if shutil.which("Orthanc") is None:
        return "Orthanc is not installed (Debian 'orthanc'; make sysdeps)"
    if not PLUGIN.is_file():
        return f"Orthanc DICOMweb plugin missing at {PLUGIN} (Debian 'orthanc-dicomweb')"
    return None


def start_orthanc(folder: Path) -> OrthancServer:
    """Start Orthanc with a generated configuration in ``folder``; wait until it answers."""
    folder.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port, move_port = free_port(), free_port(), free_port()
    config = {
        "Name": "hepanav-test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": AET,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        "Plugins": [str(PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "Full"},
        "DicomCheckCalledAet": True,
        "DicomCheckModalityHost": False,
        "DicomModalities": {
            OUR_AET: {
                "AET": OUR_AET,
                "Host": "127.0.0.1",
                "Port": move_port,
                "AllowGet": True,
                "AllowMove": True,
                "AllowFind": True,
                "AllowStore": True,
                "AllowEcho": True,
            }
        },
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "HttpTimeout": 60,
        "StableAge": 1,
        "ConcurrentJobs": 1,
        "HttpThreadsCount": 8,
        "SaveJobs": False,
    }
    path = folder / "orthanc.json"
    path.write_text(json.dumps(config, indent=1))
    log = open(folder / "orthanc.log", "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        ["Orthanc", str(path)], stdout=log, stderr=subprocess.STDOUT, cwd=folder
    )
    server = OrthancServer(http_port, dicom_port, move_port, folder, process)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited: {(folder / 'orthanc.log').read_text()[-2000:]}")
        try:
            server.rest("/system")
            plugins = server.rest("/plugins")
            assert "dicom-web" in plugins, plugins
            return server
        except requests.exceptions.ConnectionError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError("Orthanc did not answer within 60 s")


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    """A running Orthanc (session); skipped with the reason when absent, failed under CI."""
    missing = orthanc_missing()
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {missing}")
        pytest.skip(missing)
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def pacs_env(monkeypatch):
    """Set ``HEPANAV_PACS_*`` from a mapping for one test (no settings file)."""

    def apply(env: dict[str, str]) -> None:
        monkeypatch.delenv("HEPANAV_PACS_CONFIG", raising=False)
        for key in list(os.environ):
            if key.startswith("HEPANAV_PACS_"):
                monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)

    return apply
