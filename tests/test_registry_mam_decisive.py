"""Schema 0004: the MAM's uncertainty and NOT decisive flag are stored, exported and counted.

Before 0004 a NOT decisive MAM (accepted with ``--accept-not-decisive``) survived
only in the history text; every statistic treated it as a plain MAM.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import inspect, text

from hepanav.core.errors import InputError
from hepanav.registry import db
from hepanav.registry.cohort import MAM_UNCERTAINTY_MM, generate_cohort
from hepanav.registry.exporter import export_frame
from hepanav.registry.importer import import_file
from hepanav.registry.margin_import import attach_margin
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


def _margin_json(path, mam, category, u=None, decisive=None, seeded=False):
    data = {
        "min_margin_mm": mam,
        "shell_coverage_5mm": 0.99,
        "shell_coverage_6mm": 0.98,
        "category": category,
    }
    if decisive is not None:
        data["uncertainty"] = {
            "half_width_mm": u,
            "min_margin_interval_mm": None if seeded else [mam - u, mam + u],
            "decisive": decisive,
            "rule": "a margin within its uncertainty of 0 mm or of 5 mm is not decisive",
        }
    path.write_text(json.dumps(data))
    return path


def _treatment(engine, *columns):
    query = f"SELECT {', '.join(columns)} FROM lesion_treatments WHERE lesion_id = 'L1'"
    with engine.connect() as conn:
        return tuple(conn.execute(text(query)).one())


def test_migration_0004_up_and_down(db_url):
    from sqlalchemy.exc import IntegrityError

    engine = db.make_engine(db_url)
    db.upgrade(engine, "0003")
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
                "INSERT INTO lesion_treatments (patient_id, procedure_id, lesion_id, mam_mm)"
                " VALUES ('P1', 'A1', 'L1', 4.8)"
            )
        )
    db.upgrade(engine, "0004")
    assert db.current_revision(engine) == "0004"
    columns = {c["name"]: c for c in inspect(engine).get_columns("lesion_treatments")}
    assert {"mam_uncertainty_mm", "mam_decisive"} <= set(columns)
    assert columns["mam_uncertainty_mm"]["nullable"] and columns["mam_decisive"]["nullable"]
    # A row from before the migration: its MAM's certainty is unknown (NULL), not decisive.
    assert _treatment(engine, "mam_mm", "mam_uncertainty_mm", "mam_decisive") == (4.8, None, None)
    with engine.begin() as conn:
        conn.execute(text("UPDATE lesion_treatments SET mam_uncertainty_mm = 0.75"))
        conn.execute(text("UPDATE lesion_treatments SET mam_decisive = :v"), {"v": False})
    assert _treatment(engine, "mam_uncertainty_mm", "mam_decisive") == (0.75, False)
    for bad in ("-0.1", "100.5", "'NaN'" if engine.dialect.name == "postgresql" else "1e999"):
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(f"UPDATE lesion_treatments SET mam_uncertainty_mm = {bad}"))
    db.downgrade(engine, "0003")
    assert db.current_revision(engine) == "0003"
    columns = {c["name"] for c in inspect(engine).get_columns("lesion_treatments")}
    assert "mam_uncertainty_mm" not in columns and "mam_decisive" not in columns
    assert stored(engine, "lesion_treatments", "mam_mm") == [4.8]  # data kept
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision() == "0005"
    assert _treatment(engine, "mam_mm", "mam_decisive") == (4.8, None)
    engine.dispose()


def test_import_margin_stores_not_decisive_and_u(registry, tmp_path):
    url, engine = registry
    import_file(engine, write_csv(tmp_path / "o.csv", [ABLATION]))
    ids = ("P1", "A1", "L1")
    margin = _margin_json(tmp_path / "m.json", 4.84, "0-5mm", u=0.75, decisive=False)
    with pytest.raises(InputError, match="NOT decisive"):
        attach_margin(engine, margin, *ids)
    assert _treatment(engine, "mam_mm", "mam_decisive") == (None, None)

    _, changes = attach_margin(engine, margin, *ids, accept_not_decisive=True, user="u1")
    assert ("mam_decisive", None, False) in changes
    assert ("mam_uncertainty_mm", None, 0.75) in changes
    got = _treatment(engine, "mam_mm", "margin_category", "mam_uncertainty_mm", "mam_decisive")
    assert got == (4.84, "0-5mm", 0.75, False)
    row = export_frame(engine, "outcomes").iloc[0]
    assert row["mam_decisive"] == "false" and row["mam_uncertainty_mm"] == 0.75

    # A reviewed mask: the same lesion, a decisive 6.2 +- 0.6 mm, replaces it with --upsert.
    better = _margin_json(tmp_path / "b.json", 6.2, "5-10mm", u=0.6, decisive=True)
    with pytest.raises(InputError, match="--upsert"):
        attach_margin(engine, better, *ids)
    attach_margin(engine, better, *ids, upsert=True)
    assert _treatment(engine, "mam_mm", "mam_uncertainty_mm", "mam_decisive") == (6.2, 0.6, True)
    assert export_frame(engine, "outcomes").iloc[0]["mam_decisive"] == "true"

    # An older margin.json without an uncertainty block: certainty unknown, not kept from before.
    old = _margin_json(tmp_path / "o.json", 7.0, "5-10mm")
    attach_margin(engine, old, *ids, upsert=True)
    assert _treatment(engine, "mam_mm", "mam_uncertainty_mm", "mam_decisive") == (7.0, None, None)


def test_import_margin_fills_the_certainty_of_a_typed_in_mam_without_upsert(
    sqlite_registry,
    tmp_path,
):
    url, engine = sqlite_registry
    row = {**ABLATION, "mam_mm": 4.84, "margin_category": "0-5mm"}
    import_file(engine, write_csv(tmp_path / "o.csv", [row]))
    # 4.84 mm within u = 1.2 mm of 5 mm is NOT decisive (decisive true would contradict the
    # template's rule, which import-margin applies too since 2026-12-01).
    margin = _margin_json(tmp_path / "m.json", 4.84, "0-5mm", u=1.2, decisive=False, seeded=True)
    # Fills only empty fields (u, decisive, coverage): no --upsert needed.
    _, changes = attach_margin(engine, margin, "P1", "A1", "L1", accept_not_decisive=True)
    assert {c[0] for c in changes} == {
        "mam_uncertainty_mm",
        "mam_decisive",
        "shell_coverage_5mm_pct",
        "shell_coverage_6mm_pct",
    }
    assert _treatment(engine, "mam_uncertainty_mm", "mam_decisive") == (1.2, False)


def test_csv_round_trip_and_refused_contradictions(sqlite_registry, tmp_path):
    url, engine = sqlite_registry
    rows = [
        {**ABLATION, "mam_mm": 0.4, "mam_uncertainty_mm": 0.8, "mam_decisive": "false"},
        {
            **ABLATION,
            "lesion_id": "L2",
            "mam_mm": 7.5,
            "mam_uncertainty_mm": 0.8,
            "mam_decisive": "true",
        },
        {**ABLATION, "lesion_id": "L3", "mam_mm": 2.0},  # certainty unknown
    ]
    import_file(engine, write_csv(tmp_path / "o.csv", rows))
    out = export_frame(engine, "outcomes").set_index("lesion_id")
    assert out.loc["L1", "mam_decisive"] == "false" and out.loc["L1", "mam_uncertainty_mm"] == 0.8
    assert out.loc["L2", "mam_decisive"] == "true"
    assert pd.isna(out.loc["L3", "mam_decisive"]) and pd.isna(out.loc["L3", "mam_uncertainty_mm"])
    # The export re-imports unchanged into an empty registry.
    out.reset_index().to_csv(tmp_path / "x.csv", index=False)
    url2 = f"sqlite:///{tmp_path / 'second.sqlite'}"
    db.upgrade(db.make_engine(url2))
    second = db.open_registry(url2)
    import_file(second, tmp_path / "x.csv")
    assert stored(second, "lesion_treatments", "mam_decisive") == [False, True, None]
    second.dispose()

    bad = [
        ({"mam_decisive": "true"}, "mam_decisive given without mam_mm"),
        ({"mam_mm": 0.3, "mam_uncertainty_mm": 0.75, "mam_decisive": "true"}, "contradicts"),
        ({"mam_mm": 5.5, "mam_uncertainty_mm": 0.75, "mam_decisive": "true"}, "contradicts"),
        ({"mam_mm": 3.0, "mam_uncertainty_mm": -0.5}, "mam_uncertainty_mm"),
    ]
    for extra, message in bad:
        row = {**ABLATION, "patient_id": "P9", **extra}
        with pytest.raises(InputError, match=message):
            import_file(engine, write_csv(tmp_path / "bad.csv", [row]))
    # Rounded to 0.1 mm, a decisive MAM at the edge of u stays accepted (0.1 mm slack).
    ok = {
        **ABLATION,
        "patient_id": "P8",
        "mam_mm": 0.8,
        "mam_uncertainty_mm": 0.8,
        "mam_decisive": "true",
    }
    import_file(engine, write_csv(tmp_path / "ok.csv", [ok]))


def test_audit_counts_and_sensitivity_known_by_construction(registry, tmp_path):
    """Generated cohort: u = 0.75 mm, NOT decisive within 0.75 mm of 0 or 5 mm."""
    from hepanav.registry.audit import build_audit, dashboard
    from hepanav.registry.report import audit_tables

    url, engine = registry
    cohort = generate_cohort(150, seed=11)
    paths = cohort.write(tmp_path)
    for kind in ("outcomes", "events", "complications"):
        import_file(engine, paths[kind], kind)
    o = cohort.outcomes[cohort.outcomes.procedure_type == "ablation"]
    mam = o["mam_mm"].to_numpy()
    bad = (np.abs(mam) <= MAM_UNCERTAINTY_MM) | (np.abs(mam - 5.0) <= MAM_UNCERTAINTY_MM)
    n_abl, n_bad = len(o), int(bad.sum())
    assert 0 < n_bad < n_abl  # the draw has both kinds
    # One lesion per patient-lesion key, one procedure each, every patient followed up
    # (death or last contact after the procedure): every ablated lesion is in every analysis.
    expected = {
        "n_lesions": n_abl,
        "n_mam": n_abl,
        "decisive": n_abl - n_bad,
        "not_decisive": n_bad,
        "unknown": 0,
    }

    audit = build_audit(engine)
    by_name = {d.analysis: d for d in audit.mam_decisiveness}
    for name in ("ablation MAM percentiles", "Cox LTP on MAM"):
        got = by_name[name].model_dump()
        assert {k: got[k] for k in expected} == expected, name
    assert audit.cox_local_progression.n == n_abl
    sens = audit.cox_local_progression_excluding_not_decisive
    assert sens.n == n_abl - n_bad and f"{n_bad} NOT decisive" in sens.model

    a = audit.outcomes.ablation
    for d in a.mam_decisiveness:
        assert {k: d.model_dump()[k] for k in expected} == expected, d.analysis
    s = a.sensitivity_excluding_not_decisive
    assert s.excluded_not_decisive == n_bad
    assert s.cox_ltp_on_mam.n == n_abl - n_bad
    # Category groups without the NOT decisive lesions, counted from the cohort itself.
    kept = o[~bad]
    assert {g.group: g.n_lesions for g in s.ltp_by_margin_category} == (
        kept["margin_category"].value_counts().to_dict()
    )
    ltp = cohort.events[cohort.events.event_type == "local_progression"]
    kept_ltp = kept.merge(ltp, on=["patient_id", "lesion_id"])
    assert sum(g.events for g in s.ltp_by_margin_category) == len(kept_ltp)
    assert sum(g.events for g in a.ltp_by_margin_category) == len(
        o.merge(ltp, on=["patient_id", "lesion_id"])
    )

    # Listing, audit.xlsx tables and the dashboard carry the same.
    flags = {(x.patient_id, x.lesion_id): x.mam_decisive for x in audit.lesions}
    for row, is_bad in zip(o.itertuples(), bad, strict=True):
        assert flags[(row.patient_id, row.lesion_id)] is (not is_bad)
    tables = audit_tables(audit)
    assert set(tables["mam_decisiveness"]["not_decisive"]) == {n_bad}
    assert any("NOT decisive" in str(m) for m in tables["models"]["model"])
    board = dashboard(engine, procedure_type="ablation")
    assert board.mam_decisiveness.not_decisive == n_bad
    assert board.outcomes.ablation.sensitivity_excluding_not_decisive.excluded_not_decisive == n_bad


def test_no_not_decisive_mam_means_no_sensitivity_and_unknown_counted(
    sqlite_registry,
    tmp_path,
):
    from hepanav.registry import dataset
    from hepanav.registry.outcomes import ltp_comparison, outcomes_by_procedure

    url, engine = sqlite_registry
    rows = [
        {
            **ABLATION,
            "patient_id": f"P{i}",
            "mam_mm": 2.0 + i,
            "margin_category": "0-5mm" if 2.0 + i < 5 else "5-10mm",
            **({"mam_uncertainty_mm": 0.5, "mam_decisive": "true"} if i % 2 else {}),
        }
        for i in range(6)
    ]
    # 2+i: 2, 3, 4, 5, 6, 7; odd i (3, 5, 7 mm) decisive with u 0.5: 5 mm is within u of 5.
    rows[5]["mam_mm"], rows[5]["margin_category"] = 8.0, "5-10mm"
    rows[3]["mam_mm"] = 6.0
    events = [
        {"patient_id": f"P{i}", "event_type": "last_contact", "event_date": "2025-01-03"}
        for i in range(6)
    ]
    import_file(engine, write_csv(tmp_path / "o.csv", rows))
    import_file(engine, write_csv(tmp_path / "e.csv", events), "events")
    treated, follow_up = dataset.treatments(engine), dataset.events(engine)
    a = outcomes_by_procedure(treated, follow_up).ablation
    assert a.sensitivity_excluding_not_decisive is None
    d = a.mam_decisiveness[0]
    assert (d.n_lesions, d.n_mam, d.decisive, d.not_decisive, d.unknown) == (6, 6, 3, 0, 3)
    comparison = ltp_comparison(treated, follow_up, "margin_category", "ablation")
    assert comparison.mam_decisiveness.unknown == 3


def test_a_corrected_mam_does_not_keep_the_old_mams_certainty(registry, tmp_path):
    """Correction and --upsert re-import: u / decisive of the old MAM become unknown."""
    from hepanav.registry.records import history, update_record

    url, engine = registry
    row = {**ABLATION, "mam_mm": 4.8, "mam_uncertainty_mm": 0.75, "mam_decisive": "false"}
    import_file(engine, write_csv(tmp_path / "o.csv", [row]))
    key = {"patient_id": "P1", "procedure_id": "A1", "lesion_id": "L1"}
    # Changing other fields keeps them.
    update_record(engine, "lesion_treatments", key, {"n_applicators": 2}, "u1", "typo")
    assert _treatment(engine, "mam_uncertainty_mm", "mam_decisive") == (0.75, False)
    diff = update_record(engine, "lesion_treatments", key, {"mam_mm": 7.2}, "u1", "re-measured")
    assert ("mam_decisive", False, None) in diff and ("mam_uncertainty_mm", 0.75, None) in diff
    assert _treatment(engine, "mam_mm", "mam_uncertainty_mm", "mam_decisive") == (7.2, None, None)
    logged = {(h["field"], h["old_value"], h["new_value"]) for h in history(engine)}
    assert ("mam_decisive", "false", None) in logged
    # Decisive true for a MAM within u of 5 mm is refused; certainty without a MAM too.
    with pytest.raises(InputError, match="contradicts"):
        update_record(
            engine,
            "lesion_treatments",
            key,
            {"mam_mm": 5.3, "mam_uncertainty_mm": 0.75, "mam_decisive": True},
            "u1",
            "x",
        )
    with pytest.raises(InputError, match="without mam_mm"):
        update_record(
            engine, "lesion_treatments", key, {"mam_mm": None, "mam_decisive": False}, "u1", "x"
        )
    assert _treatment(engine, "mam_mm") == (7.2,)

    # --upsert re-import of a new MAM with empty certainty cells: unknown, not the old u.
    update_record(
        engine,
        "lesion_treatments",
        key,
        {"mam_uncertainty_mm": 0.6, "mam_decisive": True},
        "u1",
        "from margin.json",
    )
    again = {**ABLATION, "mam_mm": 8.1}
    import_file(engine, write_csv(tmp_path / "u.csv", [again]), upsert=True)
    assert _treatment(engine, "mam_mm", "mam_uncertainty_mm", "mam_decisive") == (8.1, None, None)
    # The same MAM re-imported with empty cells keeps a stored certainty (blank never erases).
    update_record(
        engine,
        "lesion_treatments",
        key,
        {"mam_uncertainty_mm": 0.6, "mam_decisive": True},
        "u",
        "x",
    )
    import_file(engine, write_csv(tmp_path / "s.csv", [again]), upsert=True)
    assert _treatment(engine, "mam_uncertainty_mm", "mam_decisive") == (0.6, True)
