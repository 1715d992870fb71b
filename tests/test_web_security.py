"""Security of the web application: login everywhere, roles, CSRF, cookies, rate limit,
audit log, escaping. In-process (FastAPI TestClient) with a real SQLite database."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from hepanav.web.app import create_app
from hepanav.web.models import AuditEvent, User
from hepanav.web.settings import WebSettings
from web_helpers import PASSWORD, make_users

PUBLIC = {"/login", "/health"}


@pytest.fixture()
def app(tmp_path):
    settings = WebSettings(
        data_dir=tmp_path / "data",
        db=f"sqlite:///{tmp_path / 'web.sqlite'}",
        registry_db=f"sqlite:///{tmp_path / 'registry.sqlite'}",
        cookie_secure=True,
        login_attempts=3,
    )
    (settings.data_dir / "cases" / "case-001").mkdir(parents=True)
    make_users(settings.db)
    return create_app(settings, start_jobs=False)


def client_for(app, role: str | None) -> TestClient:
    # base_url https so that the Secure cookie is sent back, as a browser would.
    client = TestClient(app, base_url="https://testserver", follow_redirects=False)
    if role:
        r = client.post("/login", data={"username": f"test-{role}", "password": PASSWORD})
        assert r.status_code == 303, r.text
    return client


def csrf_of(client: TestClient) -> str:
    page = client.get("/therapy", headers={"accept": "text/html"}).text
    return re.search(r'name="csrf-token" content="([0-9a-f]+)"', page).group(1)


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path).replace("{path:path}", "x")


def routes(app):
    for route in app.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            for method in route.methods:
                yield method, route.path


def test_every_endpoint_needs_a_login(app):
    client = client_for(app, None)
    checked = 0
    for method, path in routes(app):
        if path in PUBLIC:
            continue
        r = client.request(method, concrete(path), headers={"accept": "text/html"})
        assert r.status_code in (303, 401), (method, path, r.status_code)
        if r.status_code == 303:
            assert r.headers["location"].endswith("/login")
        checked += 1
    assert checked >= 15
    # The OpenAPI description is behind the login too, and the API answers 401.
    assert client.get("/api/openapi.json").status_code == 401
    assert client.get("/health").json()["status"] == "ok"


def test_openapi_describes_every_endpoint(app):
    spec = client_for(app, "admin").get("/api/openapi.json").json()
    described = {(m.lower(), p) for p, ops in spec["paths"].items() for m in ops}
    for method, path in routes(app):
        assert (method.lower(), path.replace(":path}", "}")) in described


def test_roles_are_enforced(app):
    coordinator = client_for(app, "coordinator")
    assert coordinator.get("/cases/case-001").status_code == 403
    assert coordinator.get("/cases/case-001/margin").status_code == 403
    assert coordinator.get("/admin/audit").status_code == 403
    assert coordinator.get("/fluoro").status_code == 403
    surgeon = client_for(app, "surgeon")
    assert surgeon.get("/fluoro").status_code == 200
    assert surgeon.get("/cases/case-001/margin").status_code == 403
    token = csrf_of(surgeon)
    r = surgeon.post(
        "/registry/import", data={"csrf_token": token}, files={"file": ("x.csv", b"a,b\n1,2\n")}
    )
    assert r.status_code == 403
    assert client_for(app, "radiologist").get("/cases/case-001/margin").status_code == 200
    assert client_for(app, "admin").get("/admin/audit").status_code == 200


def test_state_changing_requests_need_the_csrf_token(app):
    client = client_for(app, "admin")
    mutating = [
        (m, p) for m, p in routes(app) if m in ("POST", "PUT", "DELETE", "PATCH") and p != "/login"
    ]
    assert len(mutating) >= 5
    for method, path in mutating:
        r = client.request(method, concrete(path), data={"csrf_token": "0" * 64})
        assert r.status_code == 403, (method, path, r.status_code)
        r = client.request(method, concrete(path))
        assert r.status_code in (403, 422), (method, path, r.status_code)
    # With the token the same request gets through the check (and is then judged on its data).
    token = csrf_of(client)
    r = client.post("/therapy", data={"csrf_token": token, "case_text": "a: ["})
    assert r.status_code == 400
    assert "not valid YAML" in r.text


def test_session_cookie_flags_and_password_hash(app, tmp_path):
    client = TestClient(app, base_url="https://testserver", follow_redirects=False)
    r = client.post("/login", data={"username": "test-admin", "password": PASSWORD})
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" in cookie
    with Session(app.state.engine) as db:
        stored = db.scalar(select(User).where(User.username == "test-admin")).password_hash
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_login_is_rate_limited(app):
    client = client_for(app, None)
    for _ in range(3):
        r = client.post("/login", data={"username": "test-admin", "password": "wrong-password"})
        assert r.status_code == 401
    # Even the right password is refused while the window is full.
    r = client.post("/login", data={"username": "test-admin", "password": PASSWORD})
    assert r.status_code == 429
    # Another user from the same client is not blocked by the first one's failures.
    r = client.post("/login", data={"username": "test-surgeon", "password": PASSWORD})
    assert r.status_code == 303


def test_logout_ends_the_session(app):
    client = client_for(app, "surgeon")
    token = csrf_of(client)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/therapy").status_code == 401


def test_audit_log_records_actions_without_patient_data(app):
    client = client_for(app, "radiologist")
    client.get("/cases/case-001")
    client.post("/login", data={"username": "test-admin", "password": "nope-nope-nope"})
    app.state.audit.flush()  # written off the request path
    with Session(app.state.engine) as db:
        events = [
            (e.username, e.action, e.target, e.outcome)
            for e in db.scalars(select(AuditEvent)).all()
        ]
    assert ("test-radiologist", "login", "", "ok") in events
    assert ("test-radiologist", "view", "case:case-001", "ok") in events
    assert ("test-admin", "login", "", "failed") in events


def test_user_text_is_escaped(app):
    client = client_for(app, "surgeon")
    token = csrf_of(client)
    attack = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    r = client.post(
        "/therapy", data={"csrf_token": token, "case_text": attack}, headers={"accept": "text/html"}
    )
    assert "<script>alert(1)" not in r.text and "<img src=x" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    r = client.get("/cases/%3Cscript%3E", headers={"accept": "text/html"})
    assert "<script>" not in r.text.split("</header>", 1)[1].replace('<script src="/static', "")


def test_bad_upload_is_refused_with_one_message(app):
    client = client_for(app, "coordinator")
    token = csrf_of(client)
    r = client.post(
        "/registry/import",
        data={"csrf_token": token},
        files={"file": ("notes.txt", b"hello")},
        headers={"accept": "text/html"},
    )
    assert r.status_code == 400
    assert "expected a .csv, .xlsx file" in r.text
    assert "Traceback" not in r.text
    assert not list((app.state.settings.uploads_dir).iterdir())


def test_dose_check_page_values_roles_csrf_and_audit(app):
    """The dose check: verdicts computed by hand from the tables, clinicians only, CSRF,
    audited, and what was typed comes back escaped."""
    assert client_for(app, "coordinator").get("/therapy/dose").status_code == 403
    client = client_for(app, "surgeon")
    assert client.get("/therapy/dose").status_code == 200
    form = {
        "regimen": "ctace-doxorubicin",
        "dose": "100",
        "unit": "mg",
        "per": "session",
        "height_cm": "170",
        "weight_kg": "70",
    }
    assert client.post("/therapy/dose", data=form).status_code == 403  # no token
    token = csrf_of(client)
    # Mosteller BSA sqrt(170 * 70 / 3600) = 1.82 m2; 25-75 mg/m2 -> 45-136 mg: 100 mg within.
    r = client.post("/therapy/dose", data={**form, "csrf_token": token})
    assert r.status_code == 200
    verdict = re.search(r'id="dose-verdict"[^>]*><strong>(\w+)</strong>', r.text).group(1)
    assert verdict == "WITHIN" and "BSA 1.82 m²" in r.text and "Llovet" in r.text
    # the protocol range in mg for this patient: 25 x 1.8181 = 45.45, 75 x 1.8181 = 136.4
    assert "= 45.45-136.4 mg for this patient" in r.text
    assert "UNVERIFIED source:" in r.text  # the range is not in the source's text found
    r = client.post("/therapy/dose", data={**form, "dose": "150", "csrf_token": token})
    assert re.search(r'id="dose-verdict"[^>]*><strong>(\w+)</strong>', r.text).group(1) == "ABOVE"
    # The historical table: cisplatin 60-100 mg intra-arterial, 50 mg is below.
    r = client.post(
        "/therapy/dose",
        data={
            "drug": "cisplatin",
            "dose": "50",
            "unit": "mg",
            "route": "intra-arterial",
            "csrf_token": token,
        },
    )
    assert re.search(r'id="dose-verdict"[^>]*><strong>(\w+)</strong>', r.text).group(1) == "BELOW"
    assert "60–100 mg" in r.text and "not a dosing protocol" in r.text
    # A refused input: one message naming the form field, what was typed kept and escaped.
    attack = "<img src=x onerror=alert(1)>"
    r = client.post(
        "/therapy/dose",
        data={"drug": attack, "dose": "1e", "csrf_token": token},
        headers={"accept": "text/html"},
    )
    assert r.status_code == 400
    assert "dose: not a number" in r.text and "Traceback" not in r.text
    assert "<img src=x" not in r.text and "&lt;img src=x" in r.text
    r = client.post("/therapy/dose", data={"dose": "10", "csrf_token": token})
    assert "give regimen (sourced protocol) or drug (historical table)" in r.text
    app.state.audit.flush()  # written off the request path
    with Session(app.state.engine) as db:
        events = [
            (e.username, e.action, e.target, e.outcome)
            for e in db.scalars(select(AuditEvent)).all()
        ]
    assert events.count(("test-surgeon", "run", "therapy-dose", "ok")) == 3
    assert events.count(("test-surgeon", "run", "therapy-dose", "refused")) == 2


def test_audit_events_written_off_the_request_path_are_kept_at_shutdown(app):
    """Page views queue their audit events; a clean shutdown writes every one of them."""
    app.state.audit.interval_s = 3600  # the writer thread would not write them in this test

    def written() -> int:
        with Session(app.state.engine) as db:
            return len(db.scalars(select(AuditEvent)).all())

    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        assert (
            client.post(
                "/login", data={"username": "test-radiologist", "password": PASSWORD}
            ).status_code
            == 303
        )
        for _ in range(40):
            assert client.get("/cases/case-001").status_code == 200
        assert written() == 0  # queued, not written by the requests themselves
    # The lifespan ended (clean shutdown): nothing may still be queued.
    with Session(app.state.engine) as db:
        views = db.scalars(select(AuditEvent).where(AuditEvent.target == "case:case-001")).all()
    assert len(views) == 40 and all(e.username == "test-radiologist" for e in views)
    assert [e.at for e in views] == sorted(e.at for e in views)  # times of the views


def test_therapy_page_marks_verdicts_resting_on_unverified_sources(app):
    # Issue 15: a verdict whose deciding rule has no verified sentence says so in the page.
    client = client_for(app, "surgeon")
    token = csrf_of(client)
    case_text = (
        "primary: net\nnet_grade: G1\nsstr_positive: true\nextrahepatic_disease: false\n"
        "resectable: true\nbilirubin_mg_dl: 3.0\n"
    )
    r = client.post(
        "/therapy",
        data={"csrf_token": token, "case_text": case_text},
        headers={"accept": "text/html"},
    )
    assert r.status_code == 200
    assert "rests on an unverified source: TARE-02" in r.text  # bilirubin > 2, SIR 2017
    assert "UNVERIFIED source" in r.text
