"""Fixtures for the web application: a real server process, users, and Debian's Chromium.

The server runs as ``hepanav serve`` in a subprocess on a free loopback port with a
temporary data folder (SQLite application database, LocalCluster); Chromium is
Debian's ``/usr/bin/chromium`` driven by Playwright (never a downloaded browser).
Under ``CI=true`` a missing Chromium fails the tests instead of skipping them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from browser_helpers import CHROMIUM, WEBGL_ARGS
from browser_helpers import CHROMIUM_ARGS as BASE_ARGS
from browser_helpers import need_chromium as need_browser
from hepanav.web.harness import PASSWORD, ROLES, Server, free_port, make_users  # noqa: F401

# One Chromium set-up for every browser test (browser_helpers), with WebGL for NiiVue.
CHROMIUM_ARGS = [*BASE_ARGS, *WEBGL_ARGS]
PROJECT = Path(__file__).resolve().parents[1]
NIIVUE = PROJECT / "src/hepanav/web/static/vendor/niivue.umd.js"


def need_chromium() -> None:
    """Chromium (browser_helpers' check) and the NiiVue asset the pages load."""
    need_browser()
    if not NIIVUE.exists():
        reason = f"NiiVue asset missing at {NIIVUE} (make web-assets installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def phantom_case(tmp_path_factory) -> Path:
    """A synthetic ablation case written once per session by ``hepanav phantom``."""
    out = tmp_path_factory.mktemp("web-case") / "case"
    subprocess.run(
        [sys.executable, "-m", "hepanav", "phantom", "--out", str(out)],
        check=True,
        capture_output=True,
    )
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


def registry_with_ablation(url: str, folder) -> dict[str, str]:
    """A registry holding a generated cohort; returns the ids of one ablated lesion."""
    from hepanav.registry.cohort import generate_cohort

    cohort = generate_cohort(12, seed=5)
    paths = cohort.write(folder)
    run = [sys.executable, "-m", "hepanav", "registry"]
    subprocess.run([*run, "init", "--db", url], check=True, capture_output=True)
    for kind in ("outcomes", "events", "complications"):
        subprocess.run(
            [*run, "import", str(paths[kind]), "--kind", kind, "--db", url],
            check=True,
            capture_output=True,
        )
    row = cohort.outcomes[cohort.outcomes.procedure_type == "ablation"].iloc[0]
    return {
        "patient_id": str(row.patient_id),
        "procedure_id": str(row.procedure_id),
        "lesion_id": str(row.lesion_id),
    }


def dicom_case(
    phantom_case: Path,
    folder: Path,
    study_uid: str,
    masks: tuple[str, ...] = ("pre_tumor", "post_ablation", "pre_liver", "post_liver"),
) -> None:
    """The phantom's pre/post CT as two DICOM series of one study, masks as NIfTI."""
    import SimpleITK as sitk

    from dicom_helpers import write_ct_series

    folder.mkdir(parents=True)
    tags = {
        "0020|000d": study_uid,
        "0010|0020": "SYNTH-001",
        "0010|0010": "Synthetic^Phantom",
        "0020|0052": study_uid + ".2",
        "0008|0020": "20260101",
        "0008|1030": "Synthetic ablation phantom",
    }
    for k, name in enumerate(("pre_ct", "post_ct")):
        image = sitk.ReadImage(str(phantom_case / f"{name}.nii.gz"))
        write_ct_series(
            folder / name,
            sitk.GetArrayFromImage(image),
            spacing_xyz=image.GetSpacing(),
            origin_xyz=image.GetOrigin(),
            series_uid=f"{study_uid}.1{k + 1}",
            extra_tags=tags,
        )
    for mask in masks:
        shutil.copy(phantom_case / f"{mask}.nii.gz", folder / f"{mask}.nii.gz")


def screenshots_folder(tmp_path: Path) -> Path:
    """``$HEPANAV_SCREENSHOTS`` (kept for a person to look at) or a temporary folder."""
    root = os.environ.get("HEPANAV_SCREENSHOTS")
    folder = Path(root) if root else tmp_path / "screens"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
