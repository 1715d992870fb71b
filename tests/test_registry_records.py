"""Issue 15: corrections with history, upsert re-import, REDCap, schema 0003 up and down."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import text

from hepanav.core.errors import InputError
from hepanav.registry import records
from hepanav.registry.importer import import_file
from hepanav.registry.mapping import redcap_dictionary
from registry_helpers import (  # noqa: F401
    count_rows,
    db_url,
    outcome_rows,
    postgres_server,
    registry,
    sqlite_registry,
    stored,
    write_csv,
)


def test_create_update_delete_keep_a_history(registry, tmp_path):
    _, engine = registry
    records.create_record(engine, "patients", {"patient_id": "P1", "sex": "f"}, "anna", "new")
    records.create_record(
        engine, "lesions", {"patient_id": "P1", "lesion_id": "L1", "size_mm": "21.5"}, "anna", "new"
    )
    diff = records.update_record(
        engine,
        "lesions",
        {"patient_id": "P1", "lesion_id": "L1"},
        {"size_mm": "23"},
        "ben",
        "re-measured on the portal phase",
    )
    assert diff == [("size_mm", 21.5, 23.0)]
    assert (
        records.get_record(engine, "lesions", {"patient_id": "P1", "lesion_id": "L1"})["size_mm"]
        == 23.0
    )
    # Nothing changes, nothing is logged.
    assert (
        records.update_record(
            engine, "lesions", {"patient_id": "P1", "lesion_id": "L1"}, {"size_mm": 23}, "ben", "x"
        )
        == []
    )
    records.delete_record(
        engine, "lesions", {"patient_id": "P1", "lesion_id": "L1"}, "cem", "duplicate"
    )
    log = records.history(engine, "lesions:P1/L1")
    assert [
        (h["action"], h["changed_by"], h["field"], h["old_value"], h["new_value"]) for h in log
    ] == [
        ("create", "anna", "patient_id", None, "P1"),
        ("create", "anna", "lesion_id", None, "L1"),
        ("create", "anna", "size_mm", None, "21.5"),
        ("update", "ben", "size_mm", "21.5", "23.0"),
        ("delete", "cem", "patient_id", "P1", None),
        ("delete", "cem", "lesion_id", "L1", None),
        ("delete", "cem", "segment", None, None),
        ("delete", "cem", "size_mm", "23.0", None),
        ("delete", "cem", "depth_mm", None, None),
        ("delete", "cem", "vessel_contact", None, None),
    ]
    assert log[3]["reason"] == "re-measured on the portal phase"
    assert records.history(engine, "patients:P1")[1]["new_value"] == "F"  # code canonicalised


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("size_mm", "nan", "finite"),
        ("size_mm", "1e300", "less than or equal to 400"),
        ("segment", "Smith", "looks like a person's name (value not shown)"),
        ("segment", "9", "Input should be"),
    ],
)
def test_corrections_are_validated(sqlite_registry, field, value, message):
    _, engine = sqlite_registry
    records.create_record(engine, "patients", {"patient_id": "P1"}, "anna", "new")
    records.create_record(engine, "lesions", {"patient_id": "P1", "lesion_id": "L1"}, "anna", "new")
    with pytest.raises(InputError) as err:
        records.update_record(
            engine, "lesions", {"patient_id": "P1", "lesion_id": "L1"}, {field: value}, "b", "r"
        )
    assert message in str(err.value) and (value not in str(err.value) or value == "9")


def test_reimport_names_row_and_key_and_upsert_dry_run_lists_changes(cli, registry, tmp_path):
    url, engine = registry
    rows = outcome_rows(3, 2)
    path = write_csv(tmp_path / "o.csv", rows)
    import_file(engine, path)
    with pytest.raises(InputError) as err:
        import_file(engine, path)
    assert (
        "row 2 lesion_id: patient P00000 procedure S1 lesion L1 is already in the registry"
        in str(err.value)
    )
    corrected = [dict(r) for r in rows]
    corrected[3]["margin_mm"] = 0.5  # row 5: P00001/L2
    corrected[3]["margin_status"] = "R1"
    corrected.append({**rows[0], "lesion_id": "L3"})  # row 8: a new lesion of P00000
    fixed = write_csv(tmp_path / "fixed.csv", corrected)
    code, out, err = cli("registry", "import", fixed, "--upsert", "--dry-run", "--db", url)
    assert code == 0, err
    assert "row 5 lesion_treatments P00001/S1/L2: margin_mm: 2 -> 0.5" in out
    assert "row 5 lesion_treatments P00001/S1/L2: margin_status: R0 -> R1" in out
    assert "row 8 lesions P00000/L3: new record" in out
    assert "row 8 lesion_treatments P00000/S1/L3: new record" in out
    assert "would change: 2 record(s) created, 2 field(s) updated" in out
    assert stored(engine, "lesion_treatments", "margin_status").count("R1") == 0  # dry run
    code, out, err = cli(
        "registry",
        "import",
        fixed,
        "--upsert",
        "--user",
        "dora",
        "--reason",
        "path review",
        "--db",
        url,
    )
    assert code == 0 and "changed: 2 record(s) created, 2 field(s) updated" in out
    assert stored(engine, "lesion_treatments", "margin_status").count("R1") == 1
    assert count_rows(engine, "lesion_treatments") == 7
    log = records.history(engine, "lesion_treatments:P00001/S1/L2")
    assert [
        (h["changed_by"], h["field"], h["old_value"], h["new_value"], h["reason"]) for h in log
    ] == [
        ("dora", "margin_mm", "2", "0.5", "path review"),
        ("dora", "margin_status", "R0", "R1", "path review"),
    ]
    code, out, _ = cli(
        "registry", "history", "--record", "lesion_treatments:P00001/S1/L2", "--db", url
    )
    assert "dora update lesion_treatments:P00001/S1/L2 margin_status: R0 -> R1 (path review)" in out


def test_cli_update_and_delete(cli, sqlite_registry, tmp_path):
    url, engine = sqlite_registry
    import_file(engine, write_csv(tmp_path / "o.csv", outcome_rows(1, 1)))
    code, out, err = cli(
        "registry",
        "update",
        "lesion_treatments",
        "--key",
        "patient_id=P00000",
        "--key",
        "procedure_id=S1",
        "--key",
        "lesion_id=L1",
        "--set",
        "margin_mm=3.5",
        "--reason",
        "typo",
        "--user",
        "eve",
        "--db",
        url,
    )
    assert code == 0 and "margin_mm: 2.0 -> 3.5" in out, err
    code, out, err = cli(
        "registry",
        "delete",
        "patients",
        "--key",
        "patient_id=P00000",
        "--reason",
        "withdrew consent",
        "--db",
        url,
    )
    assert code == 0 and count_rows(engine, "lesion_treatments") == 0  # cascade


REDCAP_HEADER = (
    "record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,"
    "redcap_data_access_group,year_of_birth,sex,primary_type,ras_status,lesion_id,procedure_id,"
    "procedure_type,procedure_date,margin_mm,margin_status,mam_mm,chemo___1,chemo___2,"
    "technical_success,patient_complete,lesion_treatment_complete"
)
REDCAP = (
    REDCAP_HEADER
    + """
101,baseline_arm_1,,,site_a,1956,1,1,2,,,,,,,,,,,2,
101,baseline_arm_1,lesion_treatment,1,site_a,,,,,L1,S1,1,2021-05-04,2.5,1,,1,0,,,2
101,baseline_arm_1,lesion_treatment,2,site_a,,,,,L2,S1,1,2021-05-04,0.5,2,,1,0,,,2
102,baseline_arm_1,,,site_b,1960,2,1,1,,,,,,,,,,,2,
102,follow_up_arm_1,lesion_treatment,1,site_b,,,,,L1,A1,2,2022-01-10,,,6.5,0,1,1,,2
"""
)


def test_a_redcap_export_with_repeat_instruments_and_checkboxes_imports_exactly(
    cli,
    sqlite_registry,
    tmp_path,
):
    url, engine = sqlite_registry
    path = tmp_path / "redcap.csv"
    path.write_text(REDCAP)
    code, out, err = cli("registry", "import", path, "--mapping", "redcap", "--db", url)
    assert code == 0, err
    assert "imported 3 outcomes rows (2 patients)" in out
    with engine.connect() as conn:
        got = conn.execute(
            text(
                "SELECT t.patient_id, t.lesion_id, p.procedure_type, t.margin_mm, t.margin_status, "
                "t.mam_mm, t.technical_success, p.centre, p.prior_chemo, p.neoadjuvant_chemo, "
                "x.sex, x.year_of_birth, pt.ras_status FROM lesion_treatments t "
                "JOIN procedures p USING (patient_id, procedure_id) "
                "JOIN patients x USING (patient_id) JOIN primary_tumours pt USING (patient_id) "
                "ORDER BY t.patient_id, t.lesion_id"
            )
        ).all()
    assert [tuple(r) for r in got] == [
        ("101", "L1", "resection", 2.5, "R0", None, None, "site_a", 1, 0, "F", 1956, "mutant"),
        ("101", "L2", "resection", 0.5, "R1", None, None, "site_a", 1, 0, "F", 1956, "mutant"),
        ("102", "L1", "ablation", None, None, 6.5, 1, "site_b", 0, 1, "M", 1960, "wild_type"),
    ]


def test_redcap_errors_name_the_export_row(sqlite_registry, tmp_path):
    _, engine = sqlite_registry
    path = tmp_path / "redcap.csv"
    path.write_text(REDCAP.replace("2021-05-04,0.5", "04.05.2021,0.5"))
    with pytest.raises(InputError, match="row 4 procedure_date"):
        import_file(engine, path, mapping="redcap")


def test_redcap_dictionary_describes_every_field():
    dd = redcap_dictionary()
    names = dd["Variable / Field Name"].tolist()
    assert names[0] == "record_id" and "chemo" in names and "redcap_event_name" not in names
    row = dd.set_index("Variable / Field Name").loc["margin_status"]
    assert row["Field Type"] == "radio" and row["Form Name"] == "lesion_treatment"
    assert row["Choices, Calculations, OR Slider Labels"].startswith(
        "1, R0 | 2, R1 | 3, R1_parenchymal"
    )
    mam = dd.set_index("Variable / Field Name").loc["mam_mm"]
    assert (
        mam["Text Validation Type OR Show Slider Number"],
        mam["Text Validation Min"],
        mam["Text Validation Max"],
    ) == ("number", -100, 100)
    assert (
        dd.set_index("Variable / Field Name").loc["procedure_date"][
            "Text Validation Type OR Show Slider Number"
        ]
        == "date_ymd"
    )


def test_yaml_mapping(sqlite_registry, tmp_path):
    _, engine = sqlite_registry
    (tmp_path / "map.yaml").write_text(
        "columns: {Pat-ID: patient_id, Herd: lesion_id, OP: procedure_id, Art: procedure_type,"
        " Datum: procedure_date, Rand (mm): margin_mm, R-Status: margin_status}\n"
        "codes: {margin_status: {'0': R0, '1': R1}, procedure_type: {Leberresektion: resection}}\n"
        "drop: [Bemerkung]\n"
    )
    pd.DataFrame(
        {
            "Pat-ID": ["X1"],
            "Herd": ["H1"],
            "OP": ["O1"],
            "Art": ["Leberresektion"],
            "Datum": ["2020-02-03"],
            "Rand (mm)": ["0.3"],
            "R-Status": ["1"],
            "Bemerkung": ["ok"],
        }
    ).to_csv(tmp_path / "centre.csv", index=False)
    import_file(engine, tmp_path / "centre.csv", mapping=tmp_path / "map.yaml")
    assert stored(engine, "lesion_treatments", "margin_status") == ["R1"]


def test_migration_0003_up_and_down(db_url):
    from sqlalchemy import inspect

    from hepanav.registry import db

    engine = db.make_engine(db_url)
    db.upgrade(engine, "0002")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO patients (patient_id, sex) VALUES ('P1', 'F')"))
        conn.execute(
            text(
                "INSERT INTO procedures (patient_id, procedure_id, procedure_type, procedure_date)"
                " VALUES ('P1', 'S1', 'resection', '2021-01-02')"
            )
        )
    db.upgrade(engine, "0003")
    columns = {c["name"] for c in inspect(engine).get_columns("procedures")}
    assert {"centre", "asa_class", "cea_ng_ml", "prior_chemo", "neoadjuvant_chemo"} <= columns
    assert "record_changes" in inspect(engine).get_table_names()
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE procedures SET asa_class = 7"))
    db.downgrade(engine, "0002")
    columns = {c["name"] for c in inspect(engine).get_columns("procedures")}
    assert "centre" not in columns and "record_changes" not in inspect(engine).get_table_names()
    assert stored(engine, "procedures", "procedure_id") == ["S1"]  # data kept
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()
    engine.dispose()
