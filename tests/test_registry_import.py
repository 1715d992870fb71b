"""Import and export of the CSV/XLSX templates: validation, all-or-nothing, round trip."""

from __future__ import annotations

import pandas as pd
import pytest

from hepanav.core.errors import InputError
from hepanav.registry.cohort import generate_cohort
from hepanav.registry.exporter import export_csv, export_frame, write_template
from hepanav.registry.importer import import_file
from registry_helpers import (  # noqa: F401
    count_rows,
    db_url,
    outcome_rows,
    postgres_server,
    registry,
    write_csv,
)


def test_one_bad_row_imports_nothing_and_every_bad_row_is_listed(registry, tmp_path):
    _, engine = registry
    rows = outcome_rows(5, 2)
    rows[3]["margin_mm"] = "-1"  # spreadsheet row 5
    rows[6]["margin_status"] = "R5"  # row 8
    rows[7]["procedure_date"] = "2021-13-40"  # row 9
    rows[8]["margin_mm"] = 0.4  # row 10: R0 with 0.4 mm contradicts R0 >= 1 mm
    path = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(InputError) as err:
        import_file(engine, path)
    message = str(err.value)
    assert message.startswith(f"{path}: nothing imported: 4 bad row(s)")
    assert "row 5 margin_mm: must be greater than or equal to 0" in message
    assert "row 8 margin_status: Value error, margin_status must be one of" not in message
    assert "row 8 margin_status: must be 'R0', 'R1', 'R1_parenchymal'" in message
    assert "row 9 procedure_date:" in message
    assert "row 10 margin_status: margin_status R0 contradicts margin_mm 0.4" in message
    for table in ("patients", "lesions", "procedures", "lesion_treatments", "import_batches"):
        assert count_rows(engine, table) == 0


def test_only_one_bad_row_among_many_imports_nothing(registry, tmp_path):
    _, engine = registry
    rows = outcome_rows(200, 3)
    rows[-1]["procedure_type"] = "surgery"
    with pytest.raises(InputError, match="1 bad row"):
        import_file(engine, write_csv(tmp_path / "bad.csv", rows))
    assert count_rows(engine, "lesion_treatments") == 0
    assert count_rows(engine, "patients") == 0


def test_identifier_columns_are_refused(registry, tmp_path):
    _, engine = registry
    frame = pd.DataFrame(outcome_rows(2, 1))
    frame["Patient Name"] = ["Ann Smith", "Bob Jones"]
    frame["Date of birth"] = ["1950-01-02", "1960-03-04"]
    frame["MRN"] = ["123", "456"]
    with pytest.raises(InputError, match="look like direct identifiers") as err:
        import_file(engine, write_csv(tmp_path / "ids.csv", frame))
    assert "patient_name" in str(err.value) and "date_of_birth" in str(err.value)
    assert "'mrn'" in str(err.value)
    assert count_rows(engine, "patients") == 0


def test_missing_and_unknown_columns_are_refused(registry, tmp_path):
    _, engine = registry
    frame = pd.DataFrame(outcome_rows(2, 1)).drop(columns=["procedure_date"])
    frame["colour"] = "red"
    with pytest.raises(InputError) as err:
        import_file(engine, write_csv(tmp_path / "cols.csv", frame))
    assert "unknown columns ['colour']" in str(err.value)
    assert "missing required columns ['procedure_date']" in str(err.value)


def test_conflicting_repeated_attributes_are_refused(registry, tmp_path):
    _, engine = registry
    rows = outcome_rows(1, 2)
    rows[1]["procedure_date"] = "2021-05-05"  # same procedure, other date
    with pytest.raises(InputError, match=r"row 3 procedure_date: .*2021.*on row 2"):
        import_file(engine, write_csv(tmp_path / "c.csv", rows))


def test_reimporting_the_same_file_imports_nothing_more(registry, tmp_path):
    _, engine = registry
    path = write_csv(tmp_path / "a.csv", outcome_rows(3, 2))
    assert import_file(engine, path).rows == 6
    with pytest.raises(
        InputError,
        match="row 2 lesion_id: patient P00000 procedure S1 lesion L1 is already in the registry",
    ):
        import_file(engine, path)
    assert count_rows(engine, "lesion_treatments") == 6
    assert count_rows(engine, "import_batches") == 1


def test_events_must_refer_to_known_lesions(registry, tmp_path):
    _, engine = registry
    import_file(engine, write_csv(tmp_path / "o.csv", outcome_rows(1, 1)))
    events = [
        {
            "patient_id": "P00000",
            "lesion_id": "L1",
            "event_type": "local_progression",
            "event_date": "2022-01-01",
        },
        {
            "patient_id": "P00000",
            "lesion_id": "L9",
            "event_type": "local_progression",
            "event_date": "2022-01-01",
        },
        {
            "patient_id": "P99999",
            "lesion_id": "",
            "event_type": "death",
            "event_date": "2022-01-01",
        },
        {
            "patient_id": "P00000",
            "lesion_id": "",
            "event_type": "local_progression",
            "event_date": "2022-01-01",
        },
    ]
    with pytest.raises(InputError) as err:
        import_file(engine, write_csv(tmp_path / "e.csv", events), "events")
    assert "row 5 lesion_id: lesion_id is required for local_progression" in str(err.value)
    del events[3]
    with pytest.raises(InputError) as err:
        import_file(engine, write_csv(tmp_path / "e.csv", events), "events")
    assert "row 3 lesion_id: unknown lesion" in str(err.value)
    assert "row 4 patient_id: unknown patient" in str(err.value)
    assert count_rows(engine, "follow_up_events") == 0


def test_complication_grades_follow_their_system(registry, tmp_path):
    _, engine = registry
    import_file(engine, write_csv(tmp_path / "o.csv", outcome_rows(1, 1)))
    rows = [
        {
            "patient_id": "P00000",
            "procedure_id": "S1",
            "grading_system": "clavien_dindo",
            "grade": "IIIb",
        },
        {"patient_id": "P00000", "procedure_id": "S1", "grading_system": "CIRSE", "grade": "7"},
    ]
    with pytest.raises(InputError, match=r"row 3 grade: grade \(cirse\) must be one of 1, 2"):
        import_file(engine, write_csv(tmp_path / "c.csv", rows), "complications")
    rows[1]["grade"] = "3"
    assert import_file(engine, write_csv(tmp_path / "c.csv", rows), "complications").rows == 2


def test_export_round_trips_a_generated_cohort(registry, tmp_path, db_url):
    _, engine = registry
    cohort = generate_cohort(40, seed=3)
    paths = cohort.write(tmp_path / "in")
    for kind in ("outcomes", "events", "complications"):
        import_file(engine, paths[kind], kind)
    exported = {k: export_csv(engine, k, tmp_path / "out" / f"{k}.csv") for k in paths}
    for kind in paths:
        original = pd.read_csv(paths[kind], dtype=str, keep_default_na=False)
        again = pd.read_csv(exported[kind], dtype=str, keep_default_na=False)
        key = [
            c
            for c in ("patient_id", "procedure_id", "lesion_id", "event_type", "grade")
            if c in original
        ]
        original = original.sort_values(key).reset_index(drop=True)
        again = again[original.columns].sort_values(key).reset_index(drop=True)
        for column in original.columns:
            a, b = original[column], again[column]
            if column.endswith(("_mm", "_w", "_min", "_pct")):
                a, b = pd.to_numeric(a), pd.to_numeric(b)
                pd.testing.assert_series_equal(a, b, check_names=False)
            else:
                assert list(a) == list(b), column


def test_xlsx_import_and_templates(registry, tmp_path):
    _, engine = registry
    template = write_template("outcomes", tmp_path / "t.xlsx")
    frame = pd.read_excel(template)
    assert list(frame.columns[:8]) == [
        "patient_id",
        "lesion_id",
        "procedure_id",
        "procedure_type",
        "procedure_date",
        "icg_used",
        "margin_mm",
        "margin_status",
    ]
    data = pd.DataFrame(outcome_rows(2, 2))
    data["procedure_date"] = pd.Timestamp("2021-05-04")  # Excel stores real dates
    data["margin_mm"] = 2.5
    data.to_excel(tmp_path / "o.xlsx", index=False)
    assert import_file(engine, tmp_path / "o.xlsx").rows == 4
    out = export_frame(engine, "outcomes")
    assert set(out["procedure_date"].astype(str)) == {"2021-05-04"}
    assert set(out["margin_mm"]) == {2.5}
    # Numeric cells are read as text, like CSV: numeric ids and segments validate.
    numeric = pd.DataFrame(outcome_rows(1, 2)).assign(
        patient_id=1001, lesion_id=[1, 2], procedure_id=7.0, segment=[4, 8], year_of_birth=1960.0
    )
    numeric.to_excel(tmp_path / "n.xlsx", index=False)
    assert import_file(engine, tmp_path / "n.xlsx").rows == 2
    out = export_frame(engine, "outcomes")
    mine = out[out.patient_id == "1001"]
    assert list(mine.lesion_id) == ["1", "2"] and set(mine.procedure_id) == {"7"}
    assert list(mine.segment) == ["4", "8"] and set(mine.year_of_birth) == {1960}


def test_spreadsheet_style_headers_and_codes_are_normalised(registry, tmp_path):
    _, engine = registry
    text = (
        "Patient ID,Lesion ID,Procedure ID,Procedure type,Procedure date,ICG used,"
        "Margin (mm),Margin status\n"
        "P1,L1,S1,Resection,2022-03-04,yes,1.5, r0 \n"
        "P1,L2,S1,resection,2022-03-04,yes,0,r1_vascular\n"
    )
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # Excel's "CSV UTF-8" adds a BOM
    assert import_file(engine, path).rows == 2
    out = export_frame(engine, "outcomes")
    assert list(out["margin_status"]) == ["R0", "R1_vascular"]
    assert list(out["procedure_type"]) == ["resection", "resection"]
    assert list(out["icg_used"]) == ["true", "true"]


def test_contradictory_and_impossible_rows_are_refused_by_row(tmp_path):
    """MAM vs its category, a procedure in the future, a birth after the procedure."""
    from hepanav.registry.schema import OutcomeRow

    base = {
        "patient_id": "P1",
        "lesion_id": "L1",
        "procedure_id": "A1",
        "procedure_type": "ablation",
        "procedure_date": "2023-05-02",
    }
    cases = [
        ({"mam_mm": 4.2, "margin_category": ">=10mm"}, "contradicts mam_mm"),
        ({"mam_mm": -3, "margin_category": "0-5mm"}, "contradicts mam_mm"),
        ({"procedure_date": "2999-04-01"}, "lies in the future"),
        ({"year_of_birth": 2030}, "year_of_birth is after"),
    ]
    for extra, message in cases:
        with pytest.raises(ValueError, match=message):
            OutcomeRow.model_validate({**base, **extra})
    # Consistent rows and a MAM rounded onto a boundary are accepted.
    for mam, category in (
        (4.2, "0-5mm"),
        (-0.5, "incomplete"),
        (5.0, "5-10mm"),
        (5.02, "0-5mm"),
        (12, ">=10mm"),
    ):
        OutcomeRow.model_validate({**base, "mam_mm": mam, "margin_category": category})
