"""Sign-off end to end: a DICOM case, the margin job, then sign-off in the browser stores
SEG + SR (+ SC) in a real Orthanc and the MAM on the lesion in the registry."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from orthanc_helpers import orthanc  # noqa: F401 - fixture
from web_helpers import PASSWORD, dicom_case, login, new_server, registry_with_ablation

pytestmark = pytest.mark.slow
CASE = "dicom-case-001"
STUDY = "1.2.826.0.1.3680043.8.498.7001"


def test_signoff_stores_dicom_in_pacs_and_margin_in_registry(
    tmp_path,
    phantom_case,
    orthanc,
    browser,
):
    orthanc.clear()
    server = new_server(tmp_path / "srv", phantom_case)
    dicom_case(phantom_case, server.data_dir / "cases" / CASE, STUDY)
    registry_url = f"sqlite:///{server.data_dir / 'registry.sqlite'}"
    lesion = registry_with_ablation(registry_url, tmp_path / "cohort")
    server.extra_env = orthanc.env("dicomweb")
    server.start()
    try:
        with httpx.Client(base_url=server.url, follow_redirects=False, timeout=60) as http:
            http.post("/login", data={"username": "test-radiologist", "password": PASSWORD})
            page = http.get("/therapy", headers={"accept": "text/html"}).text
            token = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page).group(1)
            form = {
                "csrf_token": token,
                "pre": "pre_ct",
                "post": "post_ct",
                "tumor_mask": "pre_tumor.nii.gz",
                "ablation_mask": "post_ablation.nii.gz",
                "liver_pre": "pre_liver.nii.gz",
                "liver_post": "post_liver.nii.gz",
            }
            r = http.post(f"/cases/{CASE}/margin", data=form)
            assert r.status_code == 303, r.text
            job_id = int(r.headers["location"].rsplit("/", 1)[1])
            deadline = time.monotonic() + 900
            while (state := http.get(f"/api/jobs/{job_id}").json()["state"]) not in (
                "done",
                "failed",
            ):
                assert time.monotonic() < deadline
                time.sleep(1)
            assert state == "done", http.get(f"/api/jobs/{job_id}").json()

        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        page.set_default_timeout(120_000)
        login(page, server, "radiologist")
        page.goto(f"{server.url}/jobs/{job_id}")
        page.check("#send_pacs")
        for field, value in lesion.items():
            page.fill(f"#{field}", value)
        page.click("#signoff")
        page.wait_for_url(re.compile(r".*/jobs/\d+$"))
        page.wait_for_function(
            "['done','failed'].includes(document.getElementById('job-status').dataset.state)",
            timeout=600_000,
        )
        assert page.locator("#signoff-done").count() == 1, page.text_content("main")
        page.goto(f"{server.url}/jobs/{job_id}")
        assert "Signed off by test-radiologist" in page.text_content("#signed")

        # In Orthanc: a SEG and an SR in the study, the SR's MAM = margin.json's.
        margin = json.loads(
            next(
                (server.data_dir / "jobs").glob(f"job-{job_id:06d}/result/margin/margin.json")
            ).read_text()
        )
        modalities = {
            orthanc.rest(f"/series/{s}")["MainDicomTags"].get("Modality")
            for s in orthanc.rest("/series")
        }
        assert {"SEG", "SR"} <= modalities
        # In the registry: the MAM on that lesion.
        from sqlalchemy import create_engine, text

        engine = create_engine(registry_url)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM lesion_treatments")).mappings().all()
            changes = (
                conn.execute(
                    text(
                        "SELECT changed_by, field, reason FROM record_changes"
                        " WHERE field = 'mam_mm'"
                    )
                )
                .mappings()
                .all()
            )
        engine.dispose()
        # The stored MAM was replaced by the signing clinician, the change in the history.
        assert any(
            c["reason"].startswith("web sign-off of job") and "radiologist" in c["changed_by"]
            for c in changes
        ), changes
        stored = [
            r
            for r in rows
            if str(r.get("lesion_id")) == lesion["lesion_id"]
            and str(r.get("patient_id")) == lesion["patient_id"]
        ]
        assert stored and any(
            r.get("mam_mm") is not None and abs(float(r["mam_mm"]) - margin["min_margin_mm"]) < 0.05
            for r in stored
        ), stored
        # With the MAM, its uncertainty and decisive flag (schema 0004), not only the history.
        u = margin["uncertainty"]
        assert any(
            r.get("mam_decisive") is not None
            and bool(r["mam_decisive"]) == u["decisive"]
            and abs(float(r["mam_uncertainty_mm"]) - u["half_width_mm"]) < 1e-9
            for r in stored
        ), stored
        page.close()
    finally:
        server.stop()
