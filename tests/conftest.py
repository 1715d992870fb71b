"""Shared test fixtures: where the real CT scans are, and a CLI runner."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Logs of failing commands go to a temporary folder during tests, not ~/.local/state.
os.environ.setdefault("HEPANAV_LOG_DIR", str(Path(tempfile.gettempdir()) / "hepanav-test-logs"))

# Fixture modules shared by several test files.
pytest_plugins = ("web_helpers",)


def shared_data_dir() -> Path:
    """The real CT scans: ``$HEPANAV_TEST_DATA`` or ``../shared/data`` from the project root."""
    env = os.environ.get("HEPANAV_TEST_DATA")
    return Path(env) if env else PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of the real CT scans; skips the test with the reason when they are absent."""
    root = shared_data_dir()
    if not (root / "ct-abdomen-3mm" / "ct.nii.gz").is_file():
        pytest.skip(
            f"real CT data not found at {root} (set HEPANAV_TEST_DATA or place "
            "../shared/data beside the project; see ../shared/data/README.md)"
        )
    return root


@pytest.fixture()
def cli():
    """Invoke ``hepanav`` in-process; returns ``(exit_code, stdout, stderr)``."""
    from typer.testing import CliRunner

    from hepanav.cli import app

    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return invoke
