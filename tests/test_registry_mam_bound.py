"""Schema 0005: a MAM the image border makes only a bound is stored, exported and marked.

``hepanav margin`` writes ``min_margin_bound`` (lower: zone cut by the image border,
the true MAM may be larger; upper: tumour partly outside the image, it may be
smaller; unknown: both). Before 0005 ``registry import-margin`` dropped it, and a
statistician saw a plain number in ``mam_mm``. Ground truth by construction:
hand-made margin.json files and outcomes rows.
"""

from __future__ import annotations

import html
import json
import re

import pandas as pd
import pytest
from sqlalchemy import inspect, text

from hepanav.core.errors import InputError
from hepanav.registry import db
from hepanav.registry.exporter import export_csv, export_frame
from hepanav.registry.importer import import_file
from hepanav.registry.margin_import import attach_margin
from hepanav.registry.records import history, update_record
from registry_helpers import (  # noqa: F401
    db_url,
    postgres_server,
    registry,
    sqlite_registry,
    stored,
    write_csv,
)

ABLATION = {
    "patient_id": "P1",
    "lesion_id": "L1",
    "procedure_id": "A1",
    "procedure_type": "ablation",
    "procedure_date": "2024-01-03",
}
IDS = ("P1", "A1", "L1")


def _margin_json(path, mam, category, bound, u=0.5, decisive=True, top=None):
    """A margin.json as ``hepanav margin`` writes it (the fields the registry reads)."""
    data = {
        "min_margin_mm": mam,
        "min_margin_bound": bound,
        "shell_coverage_5mm": 0.99,
        "shell_coverage_6mm": 0.98,
        "category": category,
        "uncertainty": {
            "half_width_mm": u,
            "min_margin_interval_mm": None if top is None else [mam - u, top + u],
            "decisive": decisive,
            "rule": "a margin within its uncertainty of 0 mm or of 5 mm is not decisive",
        },
    }
    path.write_text(json.dumps(data))
    return path


def _treatment(engine, lesion, *columns):
    query = f"SELECT {', '.join(columns)} FROM lesion_treatments WHERE lesion_id = '{lesion}'"
    with engine.connect() as conn:
        return tuple(conn.execute(text(query)).one())


def test_migration_0005_up_and_down(db_url):
    from sqlalchemy.exc import IntegrityError

    engine = db.make_engine(db_url)
    db.upgrade(engine, "0004")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO patients (patient_id) VALUES ('P1')"))
        conn.execute(text("INSERT INTO lesions (patient_id, lesion_id) VALUES ('P1', 'L1')"))
        conn.execute(
            text(
                "INSERT INTO procedures (patient_id, procedure_id, procedure_type, procedure_date)"
                " VALUES ('P1', 'A1', 'ablation', '2021-01-02')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO lesion_treatments (patient_id, procedure_id, lesion_id, mam_mm,"
                " mam_decisive) VALUES ('P1', 'A1', 'L1', 3.1, :d)"
            ),
            {"d": False},
        )
    db.upgrade(engine, "0005")
    assert db.current_revision(engine) == "0005"
    columns = {c["name"]: c for c in inspect(engine).get_columns("lesion_treatments")}
    assert "mam_bound" in columns and columns["mam_bound"]["nullable"]
    # A row from before the migration: its provenance is unknown (NULL), data kept.
    assert _treatment(engine, "L1", "mam_mm", "mam_decisive", "mam_bound") == (3.1, False, None)
    for value in ("lower", "upper", "unknown"):
        with engine.begin() as conn:
            conn.execute(text("UPDATE lesion_treatments SET mam_bound = :v"), {"v": value})
        assert _treatment(engine, "L1", "mam_bound") == (value,)
    for bad in ("LOWER", "min", ""):
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text("UPDATE lesion_treatments SET mam_bound = :v"), {"v": bad})
    assert _treatment(engine, "L1", "mam_bound") == ("unknown",)
    db.downgrade(engine, "0004")
    assert db.current_revision(engine) == "0004"
    columns = {c["name"] for c in inspect(engine).get_columns("lesion_treatments")}
    assert "mam_bound" not in columns and "mam_decisive" in columns
    assert stored(engine, "lesion_treatments", "mam_mm") == [3.1]  # data kept
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision() == "0005"
    assert _treatment(engine, "L1", "mam_mm", "mam_bound") == (3.1, None)
    engine.dispose()


def test_import_margin_stores_each_bound_and_names_it(registry, tmp_path):
    url, engine = registry
    rows = [{**ABLATION, "lesion_id": f"L{i}"} for i in range(1, 5)]
    import_file(engine, write_csv(tmp_path / "o.csv", rows))
    # L1: zone cut by the border at the MAM point, interval [2.6, 5.8] holds 5 mm.
    lower = _margin_json(tmp_path / "l.json", 3.1, "0-5mm", "lower", decisive=False, top=5.3)
    with pytest.raises(InputError) as refused:
        attach_margin(engine, lower, "P1", "A1", "L1")
    message = str(refused.value)
    assert "the MAM 3.10 mm is a LOWER bound (zone cut by the image border" in message
    assert "NOT decisive" in message and "--accept-not-decisive" in message
    assert _treatment(engine, "L1", "mam_mm", "mam_bound") == (None, None)
    _, changes = attach_margin(engine, lower, "P1", "A1", "L1", accept_not_decisive=True)
    assert ("mam_bound", None, "lower") in changes
    # L2: tumour partly outside the image, MAM -3 mm: an upper bound clear of 0 (decisive).
    upper = _margin_json(tmp_path / "u.json", -3.0, "incomplete", "upper")
    attach_margin(engine, upper, "P1", "A1", "L2")
    # L3: both; L4: a measurement (null).
    both = _margin_json(tmp_path / "b.json", 6.0, "5-10mm", "unknown", decisive=False)
    with pytest.raises(InputError, match="6.00 mm is a bound of unknown direction"):
        attach_margin(engine, both, "P1", "A1", "L3")
    attach_margin(engine, both, "P1", "A1", "L3", accept_not_decisive=True)
    attach_margin(engine, _margin_json(tmp_path / "m.json", 7.0, "5-10mm", None), "P1", "A1", "L4")
    assert stored(engine, "lesion_treatments", "mam_bound") == ["lower", "upper", "unknown", None]
    got = {
        lesion: _treatment(engine, lesion, "mam_mm", "mam_decisive", "mam_bound")
        for lesion in ("L1", "L2", "L3", "L4")
    }
    assert got == {
        "L1": (3.1, False, "lower"),
        "L2": (-3.0, True, "upper"),
        "L3": (6.0, False, "unknown"),
        "L4": (7.0, True, None),
    }
    logged = [h for h in history(engine) if h["field"] == "mam_bound"]
    assert [(h["record_key"][-2:], h["old_value"], h["new_value"]) for h in logged] == [
        ("L1", None, "lower"),
        ("L2", None, "upper"),
        ("L3", None, "unknown"),
    ]
    assert "MAM is a LOWER bound" in logged[0]["reason"]


def test_upsert_from_a_bound_to_a_measurement_is_in_the_history(registry, tmp_path):
    url, engine = registry
    import_file(engine, write_csv(tmp_path / "o.csv", [ABLATION]))
    lower = _margin_json(tmp_path / "l.json", 5.6, "5-10mm", "lower", top=8.0)
    attach_margin(engine, lower, *IDS, user="u1")
    assert _treatment(engine, "L1", "mam_bound") == ("lower",)
    # A new post scan covers the zone: the same MAM, now a measurement. Only the bound
    # changes, and that is a change of a stored value: --upsert needed.
    measured = _margin_json(tmp_path / "m.json", 5.6, "5-10mm", None)
    with pytest.raises(InputError) as refused:
        attach_margin(engine, measured, *IDS)
    assert "already has MAM 5.6 mm, a LOWER bound" in str(refused.value)
    assert "--upsert" in str(refused.value)
    _, changes = attach_margin(engine, measured, *IDS, upsert=True, user="u2", reason="rescan")
    assert changes == [("mam_bound", "lower", None)]
    assert _treatment(engine, "L1", "mam_mm", "mam_bound") == (5.6, None)
    logged = [
        (h["changed_by"], h["old_value"], h["new_value"], h["reason"]) for h in history(engine)
    ]
    assert ("u2", "lower", None, "rescan") in logged
    # The same file again changes nothing.
    assert attach_margin(engine, measured, *IDS, upsert=True)[1] == []


def test_export_carries_mam_bound_and_the_csv_takes_it(sqlite_registry, tmp_path):
    url, engine = sqlite_registry
    rows = [
        {**ABLATION, "mam_mm": 3.1, "margin_category": "0-5mm", "mam_bound": "lower"},
        {**ABLATION, "lesion_id": "L2", "mam_mm": -2.0, "mam_bound": "Upper"},
        {**ABLATION, "lesion_id": "L3", "mam_mm": 6.0, "mam_bound": "unknown"},
        {**ABLATION, "lesion_id": "L4", "mam_mm": 7.0},
    ]
    import_file(engine, write_csv(tmp_path / "o.csv", rows))
    frame = export_frame(engine, "outcomes").set_index("lesion_id")
    assert list(frame.columns).index("mam_bound") > list(frame.columns).index("mam_mm")
    assert frame["mam_bound"].tolist()[:3] == ["lower", "upper", "unknown"]
    assert pd.isna(frame.loc["L4", "mam_bound"])
    out = export_csv(engine, "outcomes", tmp_path / "x.csv")
    assert pd.read_csv(out)["mam_bound"].tolist()[:3] == ["lower", "upper", "unknown"]
    # The export re-imports unchanged into an empty registry.
    url2 = f"sqlite:///{tmp_path / 'second.sqlite'}"
    db.upgrade(db.make_engine(url2))
    second = db.open_registry(url2)
    import_file(second, out)
    assert stored(second, "lesion_treatments", "mam_bound") == ["lower", "upper", "unknown", None]
    second.dispose()

    for extra, message in (
        ({"mam_mm": 3.0, "mam_bound": "sideways"}, "mam_bound"),
        ({"mam_bound": "lower"}, "mam_bound given without mam_mm"),
    ):
        with pytest.raises(InputError, match=message):
            bad = write_csv(tmp_path / "bad.csv", [{**ABLATION, "patient_id": "P9", **extra}])
            import_file(engine, bad)

    # A corrected MAM without its bound: the old bound described the old MAM (NULL now).
    key = {"patient_id": "P1", "procedure_id": "A1", "lesion_id": "L1"}
    diff = update_record(engine, "lesion_treatments", key, {"mam_mm": 4.0}, "u1", "re-read")
    assert ("mam_bound", "lower", None) in diff
    assert _treatment(engine, "L1", "mam_bound") == (None,)
    # --upsert of a new MAM with an empty bound cell: NULL, not the old bound.
    again = {**ABLATION, "lesion_id": "L3", "mam_mm": 8.0}
    import_file(engine, write_csv(tmp_path / "u.csv", [again]), upsert=True)
    assert _treatment(engine, "L3", "mam_mm", "mam_bound") == (8.0, None)


def test_report_counts_and_marks_bounds(registry, tmp_path):
    """8 ablated lesions, 3 of them bounds (2 lower, 1 upper), every one followed up."""
    from hepanav.registry.audit import build_audit
    from hepanav.registry.report import audit_tables, write_audit_report

    url, engine = registry
    mams = [3.1, 7.4, -2.0, 2.0, 4.0, 6.0, 8.0, 12.0]
    bounds = ["lower", "lower", "upper", None, None, None, None, None]
    category = {3.1: "0-5mm", 7.4: "5-10mm", -2.0: "incomplete", 12.0: ">=10mm"}
    rows, events = [], []
    for i, (mam, bound) in enumerate(zip(mams, bounds, strict=True)):
        pid = f"P{i}"
        rows.append(
            {
                **ABLATION,
                "patient_id": pid,
                "mam_mm": mam,
                "margin_category": category.get(mam, "0-5mm" if mam < 5 else "5-10mm"),
                "mam_bound": bound,
            }
        )
        kind = "local_progression" if i % 3 == 0 else "last_contact"
        events.append(
            {"patient_id": pid, "lesion_id": "L1", "event_type": kind, "event_date": "2024-09-01"}
        )
    import_file(engine, write_csv(tmp_path / "o.csv", rows))
    import_file(engine, write_csv(tmp_path / "e.csv", events), "events")

    audit = build_audit(engine)
    by_name = {d.analysis: d for d in audit.mam_decisiveness}
    for name in ("ablation MAM percentiles", "Cox LTP on MAM"):
        d = by_name[name]
        assert (d.n_mam, d.lower_bound, d.upper_bound, d.unknown_bound) == (8, 2, 1, 0), name
    assert audit.cox_local_progression.n == 8
    assert audit.cox_local_progression_excluding_mam_bounds.n == 5
    assert "3 MAM bounds excluded" in audit.cox_local_progression_excluding_mam_bounds.model
    a = audit.outcomes.ablation
    for d in a.mam_decisiveness:
        assert (d.lower_bound, d.upper_bound, d.unknown_bound) == (2, 1, 0), d.analysis
    assert a.cox_ltp_on_mam.n == 8 and a.cox_ltp_on_mam_excluding_bounds.n == 5
    listed = {x.patient_id: x.mam_bound for x in audit.lesions}
    assert [listed[f"P{i}"] for i in range(8)] == bounds
    tables = audit_tables(audit)
    assert [None if pd.isna(v) else v for v in tables["lesions"]["mam_bound"]] == bounds
    assert "3 MAM bounds excluded" in " ".join(map(str, tables["models"]["model"]))

    html_path, json_path = write_audit_report(engine, tmp_path / "audit")
    # The page as a reader sees it: tags removed, entities resolved.
    page = html.unescape(re.sub(r"<[^>]+>", "", html_path.read_text(encoding="utf-8")))
    # The lesion listing marks exactly the three bounds, in patient order.
    marked = re.findall(
        r"([≥≤] -?\d+\.\d|-?\d+\.\d) \(((?:lower|upper) bound|bound, direction unknown)\)", page
    )
    assert marked == [
        ("≥ 3.1", "lower bound"),
        ("≥ 7.4", "lower bound"),
        ("≤ -2.0", "upper bound"),
    ]
    assert "Ablation MAM percentiles and histogram: 3 of its 8 MAMs are only bounds" in page
    assert "2 lower: the true MAM may be larger; 1 upper: the true MAM may be smaller" in page
    assert "3 MAM bounds excluded; n = 5 lesions" in page
    assert "3 only bounds (2 lower, 1 upper, 0 of unknown direction)" in page
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert [x["mam_bound"] for x in data["lesions"]] == bounds


def test_no_bound_means_no_bound_sensitivity(sqlite_registry, tmp_path):
    from hepanav.registry import dataset
    from hepanav.registry.outcomes import ltp_comparison, outcomes_by_procedure

    url, engine = sqlite_registry
    rows = [{**ABLATION, "patient_id": f"P{i}", "mam_mm": 6.0 + i} for i in range(3)]
    events = [
        {"patient_id": f"P{i}", "event_type": "last_contact", "event_date": "2025-01-03"}
        for i in range(3)
    ]
    import_file(engine, write_csv(tmp_path / "o.csv", rows))
    import_file(engine, write_csv(tmp_path / "e.csv", events), "events")
    treated, follow_up = dataset.treatments(engine), dataset.events(engine)
    a = outcomes_by_procedure(treated, follow_up).ablation
    assert a.cox_ltp_on_mam_excluding_bounds is None
    assert all(d.lower_bound + d.upper_bound + d.unknown_bound == 0 for d in a.mam_decisiveness)
    update_record(
        engine,
        "lesion_treatments",
        {"patient_id": "P1", "procedure_id": "A1", "lesion_id": "L1"},
        {"mam_bound": "upper"},
        "u1",
        "tumour cut by the border",
    )
    treated = dataset.treatments(engine)
    comparison = ltp_comparison(treated, follow_up, "margin_category", "ablation")
    assert comparison.mam_decisiveness.upper_bound == 1


def test_cli_import_margin_says_bound_and_history_and_api_show_it(cli, tmp_path):
    from hepanav.registry.records import get_record

    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    assert cli("registry", "init", "--db", url)[0] == 0
    assert cli("registry", "import", write_csv(tmp_path / "o.csv", [ABLATION]), "--db", url)[0] == 0
    lower = _margin_json(tmp_path / "l.json", 3.1, "0-5mm", "lower", decisive=False, top=5.3)
    args = ("--patient-id", "P1", "--procedure-id", "A1", "--lesion-id", "L1", "--db", url)
    code, out, err = cli("registry", "import-margin", lower, *args)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "the MAM 3.10 mm is a LOWER bound (zone cut by the image border" in err
    code, out, err = cli("registry", "import-margin", lower, *args, "--accept-not-decisive")
    assert code == 0, err
    assert "P1/A1/L1: MAM at least 3.1 mm (0-5mm, LOWER BOUND, NOT decisive)" in out
    code, out, _ = cli("registry", "history", "--db", url)
    assert code == 0 and "mam_bound: None -> lower (registry import-margin; MAM is a LOWER" in out
    engine = db.open_registry(url)
    key = {"patient_id": "P1", "procedure_id": "A1", "lesion_id": "L1"}
    assert (
        get_record(engine, "lesion_treatments", key)["mam_bound"] == "lower"
    )  # what the API returns
    engine.dispose()
