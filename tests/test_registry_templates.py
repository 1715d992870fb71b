"""Issue 15, item 6: XLSX templates with drop-downs, units in header comments, dictionary."""

from __future__ import annotations

import openpyxl

from hepanav.registry.exporter import write_template
from hepanav.registry.importer import import_file
from hepanav.registry.vocabulary import MARGIN_STATUSES
from registry_helpers import sqlite_registry, stored  # noqa: F401


def test_xlsx_template_has_dropdowns_units_and_a_dictionary(sqlite_registry, tmp_path):
    out = write_template("outcomes", tmp_path / "t.xlsx")
    book = openpyxl.load_workbook(out)
    assert book.sheetnames[0] == "outcomes" and "dictionary" in book.sheetnames
    sheet = book["outcomes"]
    header = [c.value for c in sheet[1]]
    col = {name: i for i, name in enumerate(header)}
    assert "unit: mm" in sheet.cell(row=1, column=col["margin_mm"] + 1).comment.text
    assert "range >= -100 and <= 100" in sheet.cell(row=1, column=col["mam_mm"] + 1).comment.text
    assert "% (0-100)" in sheet.cell(row=1, column=col["ki67_pct"] + 1).comment.text
    letter = openpyxl.utils.get_column_letter(col["margin_status"] + 1)
    (check,) = [v for v in sheet.data_validations.dataValidation if f"{letter}2" in str(v.sqref)]
    sheet_name, cells = check.formula1.split("!")
    codes = book[sheet_name]
    first, last = cells.replace("$", "").split(":")
    values = [c.value for row in codes[first:last] for c in row]
    assert values == list(MARGIN_STATUSES)
    dictionary = {r[0].value: [c.value for c in r] for r in book["dictionary"].iter_rows(min_row=2)}
    assert dictionary["procedure_date"][1] == "date YYYY-MM-DD"
    assert dictionary["patient_id"][2] == "yes"
    # A filled template imports (the data sheet is the first one).
    for k, v in enumerate(["P1", "L1", "S1", "resection", "2021-05-04"], start=1):
        sheet.cell(row=2, column=k, value=v)
    sheet.cell(row=2, column=col["margin_mm"] + 1, value=2.5)
    sheet.cell(row=2, column=col["margin_status"] + 1, value="R0")
    book.save(tmp_path / "filled.xlsx")
    _, engine = sqlite_registry
    import_file(engine, tmp_path / "filled.xlsx")
    assert stored(engine, "lesion_treatments", "margin_mm") == [2.5]


def test_events_template_lists_event_types(tmp_path):
    book = openpyxl.load_workbook(write_template("events", tmp_path / "e.xlsx"))
    rows = {r[0].value: r[3].value for r in book["dictionary"].iter_rows(min_row=2)}
    assert "local_progression" in rows["event_type"]
