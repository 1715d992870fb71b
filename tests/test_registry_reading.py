"""Issue 9, item 4: import files read as the spreadsheet meant them, or refused."""

from __future__ import annotations

import datetime as dt

import openpyxl
import pytest

from hepanav.core.errors import InputError
from hepanav.registry import dataset, stats
from hepanav.registry.importer import import_file
from registry_helpers import HEADER, sqlite_registry, stored  # noqa: F401


def _write(path, text: str, encoding: str = "utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_semicolon_file_with_decimal_commas(sqlite_registry, tmp_path):
    _, engine = sqlite_registry
    text = (
        HEADER.replace(",", ";")
        + "\nP1;L1;S1;resection;2021-05-04;2,5;R0\nP2;L1;S1;resection;2021-05-04;0,4;R1\n"
    )
    summary = import_file(engine, _write(tmp_path / "eu.csv", text))
    assert stored(engine, "lesion_treatments", "margin_mm") == [2.5, 0.4]
    assert "semicolon-separated" in summary.notes
    assert "decimal commas read in ['margin_mm']" in summary.notes


def test_tab_separated_file(sqlite_registry, tmp_path):
    _, engine = sqlite_registry
    text = HEADER.replace(",", "\t") + "\nP1\tL1\tS1\tresection\t2021-05-04\t3,25\tR0\n"
    summary = import_file(engine, _write(tmp_path / "tab.csv", text))
    assert stored(engine, "lesion_treatments", "margin_mm") == [3.25]
    assert "tab-separated" in summary.notes


def test_decimal_comma_in_a_comma_file_is_refused(sqlite_registry, tmp_path):
    _, engine = sqlite_registry
    text = HEADER + '\nP1,L1,S1,resection,2021-05-04,"2,5",R0\n'
    with pytest.raises(InputError, match="row 2 margin_mm: decimal comma in a comma-separated"):
        import_file(engine, _write(tmp_path / "c.csv", text))


def test_a_column_mixing_decimal_commas_and_points_is_refused(sqlite_registry, tmp_path):
    _, engine = sqlite_registry
    text = HEADER.replace(",", ";") + (
        "\nP1;L1;S1;resection;2021-05-04;2,5;R0\nP2;L1;S1;resection;2021-05-04;1.234;R0\n"
    )
    with pytest.raises(InputError, match="row 3 margin_mm: the column mixes decimal commas"):
        import_file(engine, _write(tmp_path / "m.csv", text))


@pytest.mark.parametrize("value", ["44320", "44320.0"])
def test_excel_serial_date_in_a_csv_is_refused(sqlite_registry, tmp_path, value):
    """pydantic alone would read 44320 as Unix seconds: 1970-01-01."""
    _, engine = sqlite_registry
    text = HEADER + f"\nP1,L1,S1,resection,{value},2,R0\n"
    with pytest.raises(InputError) as err:
        import_file(engine, _write(tmp_path / "s.csv", text))
    assert "row 2 procedure_date" in str(err.value) and "use YYYY-MM-DD" in str(err.value)
    assert "Excel serial date" in str(err.value)


@pytest.mark.parametrize("value", ["04.05.2021", "04/05/2021", "4-5-2021", "05/04/21"])
def test_day_first_dates_are_refused_naming_the_format(sqlite_registry, tmp_path, value):
    _, engine = sqlite_registry
    text = HEADER + f"\nP1,L1,S1,resection,{value},2,R0\n"
    with pytest.raises(InputError) as err:
        import_file(engine, _write(tmp_path / "d.csv", text))
    message = str(err.value)
    assert "row 2 procedure_date" in message and "use YYYY-MM-DD (ISO 8601)" in message
    assert value not in message  # dates are not echoed


def _workbook(path, rows, formats=None, epoch=None):
    book = openpyxl.Workbook()
    if epoch is not None:
        book.epoch = epoch
    sheet = book.active
    for row in rows:
        sheet.append(row)
    for (r, c), fmt in (formats or {}).items():
        sheet.cell(row=r, column=c).number_format = fmt
    book.save(path)
    return path


COLUMNS = HEADER.split(",") + ["ki67_pct", "primary_type", "shell_coverage_6mm_pct"]


def test_xlsx_serial_dates_are_converted_with_the_workbook_date_system(sqlite_registry, tmp_path):
    _, engine = sqlite_registry
    # 1900 system: day 0 is 1899-12-30 (Excel's 1900 leap-year bug); 1904 system: 1904-01-01.
    path = _workbook(
        tmp_path / "d1900.xlsx",
        [HEADER.split(","), ["P1", "L1", "S1", "resection", 44320, 2, "R0"]],
    )
    summary = import_file(engine, path)
    (day,) = stored(engine, "procedures", "procedure_date")
    assert str(day) == str(dt.date(1899, 12, 30) + dt.timedelta(days=44320)) == "2021-05-04"
    assert any("workbook date system 1900" in n for n in summary.notes)
    from openpyxl.utils.datetime import CALENDAR_MAC_1904

    path = _workbook(
        tmp_path / "d1904.xlsx",
        [HEADER.split(","), ["P2", "L1", "S1", "resection", 42858, 2, "R0"]],
        epoch=CALENDAR_MAC_1904,
    )
    summary = import_file(engine, path)
    dates = stored(engine, "procedures", "procedure_date")
    assert str(dates[1]) == str(dt.date(1904, 1, 1) + dt.timedelta(days=42858)) == "2021-05-04"
    assert any("workbook date system 1904" in n for n in summary.notes)


def test_xlsx_percent_cells_are_stored_as_percent(sqlite_registry, tmp_path):
    """Shown 95 %, stored 0.95: the registry keeps 95 (not 0.95 %)."""
    _, engine = sqlite_registry
    rows = [
        COLUMNS,
        ["P1", "L1", "S1", "resection", "2021-05-04", 2, "R0", 0.95, "NET", None],
        ["P2", "L1", "A1", "ablation", "2021-05-04", None, None, 12, "NET", 0.925],
    ]
    formats = {(2, 8): "0%", (3, 10): "0.0%"}  # P2's Ki-67 12 is a plain number: stays 12
    summary = import_file(engine, _workbook(tmp_path / "p.xlsx", rows, formats))
    assert stored(engine, "primary_tumours", "ki67_pct") == [95.0, 12.0]
    assert stored(engine, "lesion_treatments", "shell_coverage_6mm_pct") == [None, 92.5]
    assert any("percent-formatted cells" in n for n in summary.notes)


def test_percent_format_outside_a_percentage_column_is_refused(sqlite_registry, tmp_path):
    _, engine = sqlite_registry
    rows = [HEADER.split(","), ["P1", "L1", "S1", "resection", "2021-05-04", 0.02, "R0"]]
    path = _workbook(tmp_path / "bad.xlsx", rows, {(2, 6): "0%"})
    with pytest.raises(InputError, match="row 2 margin_mm: cell is formatted as a percentage"):
        import_file(engine, path)


def test_empty_rows_are_skipped_counted_and_rows_keep_their_numbers(sqlite_registry, tmp_path):
    _, engine = sqlite_registry
    text = (
        HEADER.replace(",", ";")
        + "\nP1;L1;S1;resection;2021-05-04;2;R0\n;;;;;;\n   \n"
        + "\nP2;L1;S1;resection;2021-05-04;2;R0\n"
    )
    summary = import_file(engine, _write(tmp_path / "e.csv", text))
    assert summary.rows == 2 and "3 empty row(s) skipped" in summary.notes
    bad = text.replace("P2;L1;S1;resection;2021-05-04;2;R0", "P2;L1;S1;resection;2021-05-04;-2;R0")
    with pytest.raises(InputError, match="row 6 margin_mm"):  # the spreadsheet's row 6
        import_file(
            engine, _write(tmp_path / "e2.csv", bad.replace("P1", "P9").replace("P2", "P8"))
        )


def test_unambiguous_windows_1252_is_read_and_said(sqlite_registry, tmp_path):
    _, engine = sqlite_registry
    text = HEADER + ",ablation_device\nP1,L1,A1,ablation,2021-05-04,,,Sonde Médicale µ\n"
    summary = import_file(engine, _write(tmp_path / "w.csv", text, "cp1252"))
    assert stored(engine, "procedures", "ablation_device") == ["Sonde Médicale µ"]
    assert any("read as Windows-1252" in n for n in summary.notes)


def test_ambiguous_8bit_file_is_refused_with_the_remedy(sqlite_registry, tmp_path):
    """0xE8 is è in Windows-1252 but č in Windows-1250: refuse, say how to fix."""
    _, engine = sqlite_registry
    text = HEADER + ",ablation_device\nP1,L1,A1,ablation,2021-05-04,,,Thermosphère\n"
    with pytest.raises(InputError, match="save it as 'CSV UTF-8'"):
        import_file(engine, _write(tmp_path / "a.csv", text, "cp1252"))


def test_utf16_with_bom_is_read(sqlite_registry, tmp_path):
    _, engine = sqlite_registry
    text = HEADER.replace(",", "\t") + "\nP1\tL1\tS1\tresection\t2021-05-04\t2\tR0\n"
    import_file(engine, _write(tmp_path / "u16.csv", text, "utf-16"))
    assert stored(engine, "patients", "patient_id") == ["P1"]


def test_plain_r1_is_accepted_and_counted_as_positive(sqlite_registry, tmp_path):
    _, engine = sqlite_registry
    text = HEADER + (
        ",icg_used\nP1,L1,S1,resection,2021-05-04,0.5,R1,true\nP2,L1,S1,resection,2021-05-04,2,R0,true"
        "\nP3,L1,S1,resection,2021-05-04,0.2,R1_vascular,false\nP4,L1,S1,resection,2021-05-04,3,R0,false\n"
    )
    import_file(engine, _write(tmp_path / "r1.csv", text))
    assert sorted(stored(engine, "lesion_treatments", "margin_status")) == [
        "R0",
        "R0",
        "R1",
        "R1_vascular",
    ]
    result = stats.margin_comparison(dataset.treatments(engine), "icg_used", "lesion")
    assert {c.group: (c.negative, c.positive) for c in result.counts} == {
        "yes": (1, 1),
        "no": (1, 1),
    }
    bad = HEADER + "\nP9,L1,S1,resection,2021-05-04,2,R1\n"
    with pytest.raises(InputError, match="margin_status R1 contradicts margin_mm 2"):
        import_file(engine, _write(tmp_path / "r1bad.csv", bad))


def test_a_point_in_another_column_of_a_decimal_comma_file_is_refused(
    sqlite_registry,
    tmp_path,
):
    """margin_mm has decimal commas, so 1.234 in cea_ng_ml may be 1234: refused, not 1.234."""
    _, engine = sqlite_registry
    header = HEADER.replace(",", ";") + ";cea_ng_ml"
    text = header + (
        "\nP1;L1;S1;resection;2021-05-04;2,5;R0;1.234\nP2;L1;S1;resection;2021-05-04;0,4;R1;7.5\n"
    )
    with pytest.raises(InputError, match="row 2 cea_ng_ml: 1.234: thousands separator or decimal"):
        import_file(engine, _write(tmp_path / "eu.csv", text))
    assert stored(engine, "lesion_treatments", "margin_mm") == []
    # 7.5 cannot be a thousands separator: read as a decimal point.
    ok = text.replace(";1.234\n", ";1234\n")
    import_file(engine, _write(tmp_path / "eu2.csv", ok))
    assert stored(engine, "lesion_treatments", "margin_mm") == [2.5, 0.4]
    assert sorted(stored(engine, "procedures", "cea_ng_ml")) == [7.5, 1234.0]


def test_thousands_like_point_in_a_semicolon_file_without_decimal_evidence_is_refused(
    sqlite_registry,
    tmp_path,
):
    """A semicolon file (what a European Excel writes) with cea_ng_ml 1.234 and no decimal
    comma: 1.234 may be 1234 (thousands separator); refused, nothing stored. Once another
    value shows decimal points (2.5), 1.234 is read as 1.234."""
    _, engine = sqlite_registry
    header = HEADER.replace(",", ";") + ";cea_ng_ml"
    text = header + (
        "\nP1;L1;S1;resection;2021-05-04;2;R0;1.234\nP2;L1;S1;resection;2021-05-04;4;R0;12\n"
    )
    with pytest.raises(
        InputError,
        match="row 2 cea_ng_ml: 1.234: thousands separator or decimal point\\? this "
        "semicolon-separated file shows no other decimal point",
    ):
        import_file(engine, _write(tmp_path / "eu.csv", text))
    assert stored(engine, "lesion_treatments", "margin_mm") == []
    # 1.5 (margin_mm) cannot be a thousands separator: the file's points are decimal.
    evident = text.replace(";4;R0;12\n", ";1.5;R0;12\n")
    import_file(engine, _write(tmp_path / "eu2.csv", evident))
    assert sorted(stored(engine, "procedures", "cea_ng_ml")) == [1.234, 12.0]
    assert sorted(stored(engine, "lesion_treatments", "margin_mm")) == [1.5, 2.0]
