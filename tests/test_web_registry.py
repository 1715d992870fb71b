"""The registry dashboard's audit figures against hand counts on a small seeded registry,
filtered by period, procedure type and centre (in-process server, real SQLite)."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from hepanav.registry.importer import import_file
from hepanav.web.app import create_app
from hepanav.web.settings import WebSettings
from registry_helpers import sqlite_registry, write_csv  # noqa: F401
from test_registry_audit import COMPLICATIONS
from test_registry_outcomes import EVENTS, OUTCOMES
from web_helpers import PASSWORD, make_users

MONTH_DAYS = 30.4375


@pytest.fixture()
def client(sqlite_registry, tmp_path):
    url, engine = sqlite_registry
    # Patients PA, PB at centre C1, the others at C2.
    rows = [dict(r, centre="C1" if r["patient_id"] in ("PA", "PB") else "C2") for r in OUTCOMES]
    import_file(engine, write_csv(tmp_path / "o.csv", rows))
    events = pd.DataFrame(EVENTS, columns=["patient_id", "lesion_id", "event_type", "event_date"])
    import_file(engine, write_csv(tmp_path / "e.csv", events), "events")
    comp = pd.DataFrame(
        COMPLICATIONS, columns=["patient_id", "procedure_id", "grading_system", "grade"]
    )
    import_file(engine, write_csv(tmp_path / "c.csv", comp), "complications")
    settings = WebSettings(
        data_dir=tmp_path / "data",
        db=f"sqlite:///{tmp_path / 'web.sqlite'}",
        registry_db=url,
        cookie_secure=True,
    )
    make_users(settings.db)
    client = TestClient(
        create_app(settings, start_jobs=False),
        base_url="https://testserver",
        follow_redirects=False,
    )
    assert (
        client.post(
            "/login", data={"username": "test-coordinator", "password": PASSWORD}
        ).status_code
        == 303
    )
    return client


def _rows(html: str, table: str, header: bool = True) -> list[list[str]]:
    body = re.search(rf'<table id="{table}">(.*?)</table>', html, re.S).group(1)
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S)[int(header) :]:
        cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", tr, re.S)
        rows.append([" ".join(re.sub(r"<[^>]+>", "", c).split()) for c in cells])
    return rows


def test_dashboard_figures_match_hand_counts(client):
    html = client.get("/registry").text
    flow = {r[0]: (int(r[1]), int(r[2])) for r in _rows(html, "flow")}
    assert flow["in the registry"] == (6, 9)
    assert flow["first treated by ablation"] == (4, 6)
    assert flow["first treated by resection"] == (2, 3)
    comp = {r[0]: r[1:] for r in _rows(html, "complications")}
    # Ablations PA/A1, PB/A1, PB/A2, PC/A1, PD/A1: CIRSE 2 on PA/A1, CIRSE 3 on PB/A1.
    assert comp["ablation"] == ["5", "2 / 5 = 40 %", "1 / 5 = 20 %", "0 / 5 = 0 %"]
    assert comp["resection"] == ["2", "1 / 2 = 50 %", "1 / 2 = 50 %", "0 / 2 = 0 %"]
    # Reverse Kaplan-Meier median: 517 days (see test_registry_audit).
    assert (
        f"median follow-up (reverse Kaplan-Meier, Schemper &amp; Smith 1996) "
        f"{517 / MONTH_DAYS:.1f} months" in " ".join(html.split())
    )
    ltp = {r[0]: r[1:] for r in _rows(html, "ltp")}
    # 0-5 mm: PA/L1, PB/L1, PC/L2 (3 patients), 2 LTP, 1 death first; CIF 1/3 at 12 and
    # 2/3 at 24 months.
    assert ltp["0-5mm"] == ["3", "3", "2", "1", "33 %", "67 %"]
    resection = dict(_rows(html, "resection", header=False))
    assert resection["R0 per lesion"].startswith("2 / 3 = 67 %")
    assert resection["R0 per patient (all lesions R0)"].startswith("1 / 2 = 50 %")
    ablation = dict(_rows(html, "ablation", header=False))
    assert ablation["Technical success"].startswith("4 / 5 = 80 %")
    assert "(1 not recorded)" in ablation["Technical success"]


def test_dashboard_filters_by_procedure_centre_and_period(client):
    html = client.get("/registry?procedure_type=resection").text
    flow = {r[0]: (int(r[1]), int(r[2])) for r in _rows(html, "flow")}
    assert flow["with a recorded treatment in the selection (resection)"] == (2, 3)
    assert 'id="ablation"' not in html and 'id="ltp"' not in html
    assert [r[0] for r in _rows(html, "complications")] == ["resection"]

    html = client.get("/registry?centre=C1").text
    by = {r[0]: r[1:] for r in _rows(html, "by-procedure")}
    assert list(by) == ["ablation"] and by["ablation"][:2] == ["2", "3"]
    comp = {r[0]: r[1:] for r in _rows(html, "complications")}
    # PA/A1, PB/A1, PB/A2; PB died 274 and 214 days after them: none within 90 days.
    assert comp["ablation"] == ["3", "2 / 3 = 67 %", "1 / 3 = 33 %", "0 / 3 = 0 %"]
    ablation = dict(_rows(html, "ablation", header=False))
    assert ablation["Technical success"].startswith("3 / 3 = 100 %")
    # PA alive at 547 days, PB died (censored for follow-up): median 547 days.
    assert f"{547 / MONTH_DAYS:.1f} months" in html

    html = client.get("/registry?date_from=2020-02-01&date_to=2020-12-31").text
    flow = {r[0]: (int(r[1]), int(r[2])) for r in _rows(html, "flow")}
    assert flow["first treated by ablation"] == (1, 1)  # PB/L1's repeat on 2020-03-01

    r = client.get("/registry?date_from=2020-13-01", headers={"accept": "text/html"})
    assert r.status_code == 400 and "from: use YYYY-MM-DD" in r.text


def test_dashboard_follows_a_change_of_the_registry(client, sqlite_registry, tmp_path):
    """The figures are reused while the registry is unchanged, recomputed after an import."""
    _, engine = sqlite_registry
    first = client.get("/registry").text
    assert client.get("/registry").text == first  # same figures, same computation time
    flow = {r[0]: (int(r[1]), int(r[2])) for r in _rows(first, "flow")}
    assert flow["first treated by resection"] == (2, 3)
    row = dict(OUTCOMES[-1], patient_id="PG", centre="C2")
    import_file(engine, write_csv(tmp_path / "more.csv", [row]))
    flow = {r[0]: (int(r[1]), int(r[2])) for r in _rows(client.get("/registry").text, "flow")}
    assert flow["first treated by resection"] == (3, 4)
    assert flow["in the registry"] == (7, 10)


def test_dashboard_ltp_past_the_follow_up_is_not_estimable(client):
    """Centre C1: the 5-10 mm lesion PA/L2 is followed 547 days (18.0 months), no LTP.

    CIF at 12 months is 0; at 24 months nobody is at risk: not estimable (the old
    code showed 0 % carried forward). 0-5 mm (PA/L1 LTP, PB/L1 death) had an event
    on every lesion, so its curve is final: 1/2 at 12 and 24 months.
    """
    html = client.get("/registry?centre=C1").text
    ltp = {r[0]: r[1:] for r in _rows(html, "ltp")}
    ends = "not estimable (follow-up ends at 18.0 months)"
    assert ltp["5-10mm"] == ["1", "1", "0", "0", "0 %", ends]
    assert ltp["0-5mm"] == ["2", "2", "1", "1", "50 %", "50 %"]


def test_dashboard_counts_not_decisive_mams_and_shows_the_sensitivity(client, sqlite_registry):
    """PC/L2 (MAM 3.0 mm, LTP) marked NOT decisive; the other 6 ablation MAMs are unknown."""
    from hepanav.registry.records import update_record

    _, engine = sqlite_registry
    html = " ".join(client.get("/registry").text.split())
    assert 'id="sensitivity"' not in html  # no NOT decisive MAM yet
    assert "(0 of 7 NOT decisive, 7 unknown)" in html
    key = {"patient_id": "PC", "procedure_id": "A1", "lesion_id": "L2"}
    update_record(
        engine,
        "lesion_treatments",
        key,
        {"mam_uncertainty_mm": 0.75, "mam_decisive": False},
        "u1",
        "seeded masks",
    )
    html = " ".join(client.get("/registry").text.split())
    by = {r[0]: r[1:] for r in _rows(html, "by-procedure")}
    # MAM percentiles: 7 ablation rows (PB/L1's repeat included), 1 NOT decisive.
    assert by["ablation"][-1].endswith("(1 of 7 NOT decisive, 6 unknown)")
    text = re.sub(r"<[^>]+>", "", html)
    # 6 ablated lesions with follow-up; PC/L2 left out of the sensitivity analysis.
    assert "LTP by margin category: 1 of 6 (5 of unknown certainty)" in text
    assert "Without the 1 NOT decisive MAMs: Gray's test" in text


def test_dashboard_counts_mams_that_are_only_bounds(client, sqlite_registry):
    """Schema 0005: two ablation MAMs made bounds by hand (PC/L1 lower, PA/L1 upper)."""
    from hepanav.registry.records import update_record

    _, engine = sqlite_registry
    assert "only bounds" not in client.get("/registry").text
    for patient, bound in (("PC", "lower"), ("PA", "upper")):
        key = {"patient_id": patient, "procedure_id": "A1", "lesion_id": "L1"}
        update_record(engine, "lesion_treatments", key, {"mam_bound": bound}, "u1", "border")
    html = client.get("/registry").text
    # The MAM percentiles (summary row) and both MAM analyses of the ablation outcomes.
    assert html.count("2 only bounds (1 lower, 1 upper)") == 3
