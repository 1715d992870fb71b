"""What the pages offer for a case, and what a failed step tells a web user (tester6
defects 19 and 20).

In-process (FastAPI TestClient, real SQLite database); the jobs are the real ``hepanav``
command lines, run by the real ``run_cli_steps`` in the test's process instead of a Dask
worker. The case is the phantom (NIfTI CTs, a multi-organ label map ``pre_labels``).

* a NIfTI case: the sign-off form's PACS choice is disabled with its reason; a sign-off
  with the PACS part anyway is refused before anything is written (no job, the registry
  unchanged, the result not signed off), and the same sign-off without PACS stores the
  margin in the registry;
* the tumour, zone and liver pickers leave out the label map; posting it is refused;
* a job's error names series by their name and fields by their label: no server path,
  no CLI option.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import Future
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from hepanav.core.jobs import run_cli_steps
from hepanav.web.app import create_app
from hepanav.web.jobs import JobManager
from hepanav.web.messages import for_the_page
from hepanav.web.models import Job
from hepanav.web.settings import WebSettings
from web_helpers import PASSWORD, dicom_case, make_users, registry_with_ablation

CASE = "demo-ablation-001"


class InlineCluster:
    """Runs a job's command lines at once in this process (a Dask worker's stand-in)."""

    def submit(self, key, job_dir, steps, attempt=1):
        future: Future = Future()
        try:
            future.set_result(run_cli_steps(job_dir, steps, attempt))
        except Exception as exc:  # noqa: BLE001 - handed to the job monitor as a worker would
            future.set_exception(exc)
        return future

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def margin_result(tmp_path_factory, phantom_case) -> Path:
    """A real margin result of the phantom (masks mode, pre CT space)."""
    out = tmp_path_factory.mktemp("margin") / "margin"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "hepanav",
            "margin",
            "--tumor",
            str(phantom_case / "pre_tumor.nii.gz"),
            "--ablation",
            str(phantom_case / "truth" / "pre_ablation.nii.gz"),
            "--ct",
            str(phantom_case / "pre_ct.nii.gz"),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture()
def server(tmp_path, phantom_case, monkeypatch):
    for name in ("HEPANAV_PACS_URL", "HEPANAV_PACS_HOST", "HEPANAV_PACS_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    settings = WebSettings(
        data_dir=tmp_path / "data",
        db=f"sqlite:///{tmp_path / 'web.sqlite'}",
        registry_db=f"sqlite:///{tmp_path / 'registry.sqlite'}",
        cookie_secure=True,
    )
    shutil.copytree(phantom_case, settings.data_dir / "cases" / CASE)
    make_users(settings.db)
    app = create_app(settings, start_jobs=False)
    manager = JobManager(app.state.engine, settings.jobs_dir, InlineCluster())
    app.state.jobs = manager
    manager.start()
    client = TestClient(app, base_url="https://testserver", follow_redirects=False)
    r = client.post("/login", data={"username": "test-radiologist", "password": PASSWORD})
    assert r.status_code == 303, r.text
    page = client.get("/therapy", headers={"accept": "text/html"}).text
    client.csrf = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page).group(1)
    client.settings, client.manager = settings, manager
    yield client
    manager.stop()


def done_margin_job(client, margin_result: Path, case: str = CASE, post="post_ct.nii.gz") -> int:
    """A finished margin job of ``case`` whose result is ``margin_result``."""
    with Session(client.app.state.engine) as db:
        job = Job(
            kind="margin",
            case_id=case,
            params={"pre": "pre_ct.nii.gz", "post": post, "steps": []},
            state="done",
            progress=1.0,
            created_by="test-radiologist",
        )
        db.add(job)
        db.commit()
        job_id = job.id
    shutil.copytree(margin_result, client.manager.job_dir(job_id) / "result" / "margin")
    return job_id


def job_count(client) -> int:
    with Session(client.app.state.engine) as db:
        return db.scalar(select(func.count()).select_from(Job))


def wait_for(client, job_id: int) -> dict:
    deadline = time.monotonic() + 300
    while (status := client.get(f"/api/jobs/{job_id}").json())["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    return status


def assert_no_server_path(message: str, data_dir: Path) -> None:
    assert str(data_dir) not in message and str(data_dir.resolve()) not in message, message
    assert not re.search(r"(?<![\w.:/])/(tmp|home|root|work|var)/", message), message
    assert not re.search(r"(?<![\w-])--[a-z]", message), message  # no CLI option


def test_nifti_case_offers_no_active_pacs_checkbox(server, margin_result):
    job_id = done_margin_job(server, margin_result)
    page = server.get(f"/jobs/{job_id}", headers={"accept": "text/html"}).text
    box = re.search(r'<input type="checkbox"[^>]*id="send_pacs"[^>]*>', page).group(0)
    assert "disabled" in box and 'name="send_pacs"' not in box, box
    reason = re.search(r'id="pacs-reason">([^<]*)<', page).group(1)
    assert "the CTs of this case are not DICOM" in reason and "post_ct.nii.gz" in reason
    assert "nothing to reference" in reason


def test_dicom_case_pacs_checkbox_follows_the_pacs_configuration(
    server, margin_result, phantom_case, monkeypatch
):
    dicom_case(
        phantom_case, server.settings.cases_dir / "dicom-001", "1.2.826.0.1.3680043.8.498.71"
    )
    job_id = done_margin_job(server, margin_result, case="dicom-001", post="post_ct")
    page = server.get(f"/jobs/{job_id}", headers={"accept": "text/html"}).text
    assert "no PACS is configured on this server" in page  # DICOM, but no PACS
    assert 'name="send_pacs"' not in page
    monkeypatch.setenv("HEPANAV_PACS_URL", "http://127.0.0.1:9/dicom-web")
    page = server.get(f"/jobs/{job_id}", headers={"accept": "text/html"}).text
    box = re.search(r'<input type="checkbox"[^>]*id="send_pacs"[^>]*>', page).group(0)
    assert "disabled" not in box and 'name="send_pacs"' in box
    assert 'id="pacs-reason"' not in page


def test_signoff_with_an_impossible_pacs_part_writes_nothing(server, margin_result, tmp_path):
    lesion = registry_with_ablation(server.settings.registry_db, tmp_path / "cohort")
    job_id = done_margin_job(server, margin_result)
    before = job_count(server)
    form = {"csrf_token": server.csrf, "send_pacs": "true", **lesion}
    r = server.post(f"/jobs/{job_id}/signoff", data=form, headers={"accept": "text/html"})
    assert r.status_code == 400, r.text
    message = re.search(r'id="error-message">([^<]*)<', r.text).group(1)
    assert "not DICOM" in message and "registry only" in message, message
    assert_no_server_path(message, server.settings.data_dir)
    assert "Traceback" not in r.text
    # Nothing written: no sign-off job, the result not signed off, the registry unchanged.
    assert job_count(server) == before
    with Session(server.app.state.engine) as db:
        assert db.get(Job, job_id).signed_off_by is None
    registry = create_engine(server.settings.registry_db)
    query = text("SELECT count(*) FROM record_changes WHERE reason LIKE 'web sign-off%'")
    with registry.connect() as conn:
        assert conn.execute(query).scalar() == 0

    # Without PACS the same sign-off stores the margin in the registry.
    form.pop("send_pacs")
    r = server.post(f"/jobs/{job_id}/signoff", data=form)
    assert r.status_code == 303, r.text
    signoff_id = int(r.headers["location"].rsplit("/", 1)[1])
    assert wait_for(server, signoff_id)["state"] == "done"
    deadline = time.monotonic() + 10  # the monitor thread records the sign-off
    while True:
        with Session(server.app.state.engine) as db:
            if db.get(Job, job_id).signed_off_by == "test-radiologist":
                break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    with registry.connect() as conn:
        assert conn.execute(query).scalar() >= 1
    registry.dispose()


def test_mask_pickers_leave_out_the_label_map(server):
    page = server.get(f"/cases/{CASE}/margin", headers={"accept": "text/html"}).text
    for field in ("tumor_mask", "ablation_mask", "liver_pre", "liver_post"):
        select_ = re.search(rf'<select name="{field}".*?</select>', page, re.S).group(0)
        options = re.findall(r"<option>([^<]*)</option>", select_)
        assert "pre_labels.nii.gz" not in options, (field, options)
        assert "pre_tumor.nii.gz" in options and "post_ablation.nii.gz" in options
    assert "pre_labels.nii.gz" in re.search(r'id="label-maps-left-out">([^<]*)<', page).group(1)
    plan = server.get(f"/cases/{CASE}/plan", headers={"accept": "text/html"}).text
    tumour = re.search(r'<select name="tumor".*?</select>', plan, re.S).group(0)
    assert "pre_labels.nii.gz" not in tumour and "pre_tumor.nii.gz" in tumour
    labels = re.search(r'<select name="labels".*?</select>', plan, re.S).group(0)
    assert "pre_labels.nii.gz" in labels  # the risk structures do take a label map

    # Posted anyway: refused in the page's words, before any job.
    before = job_count(server)
    form = {
        "csrf_token": server.csrf,
        "pre": "pre_ct.nii.gz",
        "post": "post_ct.nii.gz",
        "tumor_mask": "pre_labels.nii.gz",
        "ablation_mask": "post_ablation.nii.gz",
    }
    r = server.post(f"/cases/{CASE}/margin", data=form, headers={"accept": "text/html"})
    assert r.status_code == 400
    message = re.search(r'id="error-message">([^<]*)<', r.text).group(1)
    assert message.startswith("Tumour mask (pre): pre_labels.nii.gz is a label map"), message
    assert job_count(server) == before


def test_a_failed_job_names_no_server_path_and_no_cli_option(server):
    # A label map under a mask's name (the pickers classify by name): the CLI refuses it
    # naming its absolute path and --tumor-label; the page shows neither.
    cases = server.settings.cases_dir / CASE
    shutil.copy(cases / "pre_labels.nii.gz", cases / "tumor_all.nii.gz")
    form = {
        "csrf_token": server.csrf,
        "pre": "pre_ct.nii.gz",
        "post": "post_ct.nii.gz",
        "tumor_mask": "tumor_all.nii.gz",
        "ablation_mask": "post_ablation.nii.gz",
    }
    r = server.post(f"/cases/{CASE}/margin", data=form)
    assert r.status_code == 303, r.text
    job_id = int(r.headers["location"].rsplit("/", 1)[1])
    status = wait_for(server, job_id)
    assert status["state"] == "failed"
    message = status["message"]
    assert message.startswith("tumor_all.nii.gz: is a label map with labels 1, 2"), message
    assert "choose a mask of that structure alone" in message
    assert_no_server_path(message, server.settings.data_dir)
    page = server.get(f"/jobs/{job_id}", headers={"accept": "text/html"}).text
    assert re.search(r'id="job-error">([^<]*)<', page).group(1) == message
    # The CLI's own line, with the path, stays in the job's log on the server.
    log = (server.manager.job_dir(job_id) / "job.log").read_text()
    assert f"{cases / 'tumor_all.nii.gz'}: is a label map" in log and "--tumor-label" in log


@pytest.mark.parametrize(
    ("line", "argv", "shown"),
    [
        (  # tester6 defect 19
            "{d}/jobs/job-000002/result/margin: give the CT series the result was computed on"
            " with --source (a DICOM folder)",
            ["dicom", "export"],
            "the result (margin): give the CT series the result was computed on as a DICOM"
            " series (the case has none for it)",
        ),
        (  # tester6 defect 20
            "{d}/cases/demo-ablation-001/pre_labels.nii.gz: is a label map with labels 1, 2;"
            " choose with --tumor-label (one or several numbers or names)",
            ["margin", "--pre"],
            "pre_labels.nii.gz: is a label map with labels 1, 2; choose a mask of that"
            " structure alone (the pages take no labels)",
        ),
        (  # one option, two fields: the zone's seed in the zone's segmentation
            "--seed 900.00,18.00,26.00 (900.0, 18.0, 26.0) mm: outside the image",
            ["segment", "ablation", "--ct"],
            "the zone seed 900.00,18.00,26.00 (900.0, 18.0, 26.0) mm: outside the image",
        ),
        (
            "unexpected IndexError in 'hepanav plan' while handling its inputs (--ct"
            " /srv/x/pre_ct.nii.gz) (a HepaNav defect; please report it with the log);"
            " details in ~/.local/state/hepanav/logs/hepanav-1.log",
            ["plan", "--ct"],
            "unexpected IndexError in 'hepanav plan' while handling its inputs (the planning"
            " CT pre_ct.nii.gz) (a HepaNav defect; please report it with the log); details"
            " in the server log (job 7)",
        ),
        (  # URLs and units are not paths
            "PACS DICOMweb http://127.0.0.1:18042/dicom-web: refused; 75 mg/m² per cycle",
            None,
            "PACS DICOMweb http://127.0.0.1:18042/dicom-web: refused; 75 mg/m² per cycle",
        ),
        ("{d}/uploads/3f2a.csv: row 4: bad date", None, "the uploaded file: row 4: bad date"),
        (  # the /fluoro form's words for the analysis's options
            "{d}/uploads/upload-1.mp4: NIR data are 8-bit (the codec, h264 yuv420p, stores 8"
            " bit) but --bit-depth 16 was given",
            ["fluoro", "analyze", "--nir"],
            "the uploaded file: NIR data are 8-bit (the codec, h264 yuv420p, stores 8 bit) but"
            " the bit depth 16 was given",
        ),
    ],
)
def test_cli_lines_in_the_pages_words(tmp_path, line, argv, shown):
    data = tmp_path / "web data"  # a space in the server's path
    assert for_the_page(line.format(d=data), data, argv, job_id=7) == shown
