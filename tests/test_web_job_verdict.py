"""The web job page of a margin shows the verdict the terminal and the report give: MAM
with its interval, category, NOT decisive and why, also beside the sign-off button
(tester6 defect 3: the page showed "4.8 mm | 0-5mm" for a NOT decisive MAM).

In-process (FastAPI TestClient, real SQLite); the margin.json is a real ``hepanav
margin`` run on concentric balls whose MAM is known by construction.
"""

from __future__ import annotations

import json
import re

import pytest
import SimpleITK as sitk
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from hepanav.web.app import create_app
from hepanav.web.jobs import JobManager
from hepanav.web.models import Job, make_web_engine
from hepanav.web.settings import WebSettings
from margin_helpers import ball, voxelise
from web_helpers import PASSWORD, make_users

CASE = "case-001"


@pytest.fixture()
def app(tmp_path):
    settings = WebSettings(
        data_dir=tmp_path / "data",
        db=f"sqlite:///{tmp_path / 'web.sqlite'}",
        registry_db=f"sqlite:///{tmp_path / 'registry.sqlite'}",
        cookie_secure=True,
    )
    (settings.data_dir / "cases" / CASE).mkdir(parents=True)
    make_users(settings.db)
    app = create_app(settings, start_jobs=False)
    # Pages of finished jobs need only the job folders, not a scheduler.
    app.state.jobs = JobManager(make_web_engine(settings.db), settings.jobs_dir, None)
    app.state.settings_for_test = settings
    return app


def _margin_job(app, cli, tmp_path, zone_radius_mm: float) -> tuple[int, dict]:
    """A finished margin job: tumour ball r 6 mm, zone ball concentric (MAM = r - 6 mm)."""
    settings = app.state.settings_for_test
    tumour = voxelise(ball((0.3, -0.2, 0.45), 6.0), (1.0, 1.0, 1.0))
    zone = voxelise(ball((0.3, -0.2, 0.45), zone_radius_mm), (1.0, 1.0, 1.0))
    sitk.WriteImage(tumour, str(tmp_path / "t.nii.gz"))
    sitk.WriteImage(zone, str(tmp_path / "z.nii.gz"))
    engine = make_web_engine(settings.db)
    with Session(engine) as db:
        job = Job(kind="margin", case_id=CASE, params={"pre": "", "post": ""}, state="done")
        db.add(job)
        db.commit()
        job_id = job.id
    out = app.state.jobs.job_dir(job_id) / "result" / "margin"
    code, _, err = cli(
        "margin", "--tumor", tmp_path / "t.nii.gz", "--ablation", tmp_path / "z.nii.gz",
        "--out", out,
    )  # fmt: skip
    assert code == 0, err
    return job_id, json.loads((out / "margin.json").read_text())


def _page(app, job_id: int) -> str:
    client = TestClient(app, base_url="https://testserver", follow_redirects=False)
    r = client.post("/login", data={"username": "test-radiologist", "password": PASSWORD})
    assert r.status_code == 303, r.text
    page = client.get(f"/jobs/{job_id}")
    assert page.status_code == 200, page.text
    return page.text


def _text(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</(td|p)>', html, re.S)
    assert match, f"no #{element_id} on the page"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def test_not_decisive_mam_is_shown_with_its_interval_and_why(app, cli, tmp_path):
    job_id, result = _margin_job(app, cli, tmp_path, zone_radius_mm=11.0)  # MAM ~5 mm
    u = result["uncertainty"]
    assert (
        not u["decisive"] and u["min_margin_interval_mm"][0] <= 5 <= u["min_margin_interval_mm"][1]
    )
    html = _page(app, job_id)
    mam, half = result["min_margin_mm"], u["half_width_mm"]
    assert _text(html, "mam") == f"{mam:.1f} mm ± {half:.1f} mm"
    assert _text(html, "category") == result["category"]
    low, high = u["min_margin_interval_mm"]
    assert _text(html, "decisive") == (
        f"NOT decisive: the interval {low:.1f} to {high:.1f} mm (± {half:.1f} mm) includes 5 mm"
    )
    # Beside the sign-off button: the verdict the user signs.
    signoff = _text(html, "signoff-verdict")
    assert signoff.startswith(f"You sign off: MAM {mam:.1f} mm ± {half:.1f} mm (")
    assert f"({result['category']}, NOT decisive: the interval" in signoff
    assert html.index('id="signoff-verdict"') < html.index('id="signoff"')


def test_decisive_mam_is_shown_as_decisive(app, cli, tmp_path):
    job_id, result = _margin_job(app, cli, tmp_path, zone_radius_mm=14.0)  # MAM ~8 mm
    assert result["uncertainty"]["decisive"] and result["category"] == "5-10mm"
    html = _page(app, job_id)
    assert _text(html, "decisive") == "decisive"
    assert "NOT decisive" not in html
    assert _text(html, "signoff-verdict").startswith(
        f"You sign off: MAM {result['min_margin_mm']:.1f} mm ± "
    )
