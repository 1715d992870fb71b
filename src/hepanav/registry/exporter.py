"""Export registry tables to CSV/XLSX in the import templates' columns (round-trips).

Text cells that a spreadsheet would run as a formula (starting with ``=``,
``+``, ``-``, ``@``, tab or carriage return) are neutralised as the OWASP
"CSV Injection" guidance says: prefixed with a single quote in CSV, and written
as explicit string cells (never formulas) in XLSX. Numbers stay numbers (a
negative MAM is not a formula); the importer removes the quote again, so
exports re-import unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, select

from hepanav.core.atomic import atomic_path
from hepanav.core.errors import InputError
from hepanav.registry import dataset, models
from hepanav.registry.schema import ROW_MODELS


def export_frame(engine: Engine, kind: str) -> pd.DataFrame:
    """A registry table as a DataFrame with the template's columns, in template order."""
    if kind not in ROW_MODELS:
        raise InputError(f"unknown kind {kind!r}; choose from {list(ROW_MODELS)}", "--kind")
    columns = list(ROW_MODELS[kind].model_fields)
    if kind == "outcomes":
        frame = dataset.treatments(engine)
        frame["procedure_date"] = frame["procedure_date"].dt.date
    else:
        table = (models.FollowUpEvent if kind == "events" else models.Complication).__table__
        with engine.connect() as conn:
            frame = pd.read_sql(select(*(table.c[c] for c in columns)).order_by(table.c.id), conn)
    frame = frame[columns].copy()
    model = ROW_MODELS[kind]
    for name, info in model.model_fields.items():
        if name in frame and info.annotation in (bool | None, bool):
            frame[name] = frame[name].map({True: "true", False: "false"})
    for col in ("year_of_birth", "asa_class", "n_applicators"):
        if col in frame:
            frame[col] = frame[col].astype("Int64")
    return frame


FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value):
    """A text cell a spreadsheet cannot execute: ``'=HYPERLINK(..)`` (OWASP CSV injection)."""
    if isinstance(value, str) and value.startswith(FORMULA_LEADS):
        return "'" + value
    return value


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Every text (object) column of ``frame`` passed through :func:`neutralise_cell`."""
    frame = frame.copy()
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].astype(object).map(neutralise_cell)
    return frame


def write_xlsx_tables(tables: dict[str, pd.DataFrame], out: Path) -> Path:
    """Write DataFrames as sheets of one workbook; text cells are strings, never formulas."""
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, frame in tables.items():
        sheet = book.create_sheet(title=name[:31])
        sheet.append([str(c) for c in frame.columns])
        for row in frame.itertuples(index=False):
            sheet.append([_xlsx_value(v) for v in row])
        for cells in sheet.iter_rows(min_row=2):
            for cell in cells:
                if cell.data_type == "f":  # openpyxl reads "=..." as a formula
                    cell.data_type = "s"
                    cell.quotePrefix = True
    _save_book(book, out)
    return out


def _xlsx_value(value):
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _check_file_name(out: Path) -> None:
    if out.is_dir():
        raise InputError("is a folder; give a file name", out)


def export_csv(engine: Engine, kind: str, out: str | Path) -> Path:
    """Write a registry table as a template CSV or XLSX (atomically); return the path.

    Formula-leading text cells are neutralised (see the module docstring).
    """
    out = Path(out)
    _check_file_name(out)
    frame = export_frame(engine, kind)
    if out.suffix.lower() == ".xlsx":
        return write_xlsx_tables({kind: frame}, out)
    with atomic_path(out) as tmp:
        # CRLF line ends (RFC 4180): a CR inside a cell is then quoted as well.
        neutralise_frame(frame).to_csv(tmp, index=False, lineterminator="\r\n")
    return out


UNITS = {"_mm": "mm", "_pct": "% (0-100)", "_w": "W", "_min": "min", "_ng_ml": "ng/mL"}


def field_dictionary(kind: str) -> pd.DataFrame:
    """One row per template field: type, required, codes, range, unit, description."""
    from hepanav.registry.mapping import _codes_of, _kind_of

    rows = []
    for name, info in ROW_MODELS[kind].model_fields.items():
        codes = _codes_of(info.annotation)
        low = high = None
        for meta in info.metadata:
            for bound in ("ge", "gt"):
                if getattr(meta, bound, None) is not None:
                    low = f"{'>=' if bound == 'ge' else '>'} {getattr(meta, bound)}"
            for bound in ("le", "lt"):
                if getattr(meta, bound, None) is not None:
                    high = f"{'<=' if bound == 'le' else '<'} {getattr(meta, bound)}"
        unit = next((u for suffix, u in UNITS.items() if name.endswith(suffix)), "")
        kind_ = _kind_of(info.annotation)
        if kind == "events" and name == "event_type":
            from hepanav.registry.vocabulary import EVENT_TYPES

            codes, kind_ = EVENT_TYPES, "radio"
        if kind == "complications" and name in ("grading_system", "grade"):
            from hepanav.registry.schema import CODE_SETS

            codes, kind_ = CODE_SETS[name], "radio"
        rows.append(
            {
                "field": name,
                "type": {"radio": "code", "yesno": "true/false", "date": "date YYYY-MM-DD"}.get(
                    kind_, kind_
                ),
                "required": "yes" if info.is_required() else "",
                "codes": ", ".join(codes) if codes else "",
                "range": " and ".join(x for x in (low, high) if x),
                "unit": unit,
                "description": info.description or "",
            }
        )
    return pd.DataFrame(rows)


def write_xlsx_template(kind: str, out: Path) -> Path:
    """An XLSX template: drop-downs for coded fields, units in header comments, and a
    ``dictionary`` sheet describing every field (the data sheet comes first)."""
    import openpyxl
    from openpyxl.comments import Comment
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    info = field_dictionary(kind)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = kind
    codes_sheet = book.create_sheet("codes")
    sheet.append(list(info["field"]))
    code_column = 0
    for i, row in enumerate(info.itertuples(), start=1):
        cell = sheet.cell(row=1, column=i)
        note = "; ".join(
            x
            for x in (
                f"unit: {row.unit}" if row.unit else "",
                row.type,
                f"range {row.range}" if row.range else "",
                "required" if row.required else "",
                row.description,
            )
            if x
        )
        cell.comment = Comment(note, "HepaNav")
        letter = get_column_letter(i)
        choices = None
        if row.codes:
            choices = row.codes.split(", ")
        elif row.type == "true/false":
            choices = ["true", "false"]
        if choices:
            code_column += 1
            code_letter = get_column_letter(code_column)
            codes_sheet.cell(row=1, column=code_column, value=row.field)
            for k, code in enumerate(choices, start=2):
                codes_sheet.cell(row=k, column=code_column, value=code).data_type = "s"
            source = f"codes!${code_letter}$2:${code_letter}${len(choices) + 1}"
            check = DataValidation(type="list", formula1=source, allow_blank=True)
            check.error = f"{row.field}: choose one of the codes"
            check.errorTitle = "Not a HepaNav code"
            sheet.add_data_validation(check)
            check.add(f"{letter}2:{letter}10000")
        elif row.type == "date YYYY-MM-DD":
            sheet.column_dimensions[letter].number_format = "yyyy-mm-dd"
        sheet.column_dimensions[letter].width = max(12, len(row.field) + 2)
    dictionary = book.create_sheet("dictionary")
    dictionary.append(list(info.columns))
    for values in info.itertuples(index=False):
        dictionary.append(list(values))
    _save_book(book, out)
    return out


def write_template(kind: str, out: str | Path) -> Path:
    """Write an empty template (header row only) as ``.csv`` or ``.xlsx``.

    The XLSX template adds drop-down lists for coded fields, units and ranges in
    the header comments and a data-dictionary sheet (:func:`write_xlsx_template`).
    """
    out = Path(out)
    if kind not in ROW_MODELS:
        raise InputError(f"unknown kind {kind!r}; choose from {list(ROW_MODELS)}", "KIND")
    frame = pd.DataFrame(columns=list(ROW_MODELS[kind].model_fields))
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise InputError("expected a .csv or .xlsx file name", out)
    _check_file_name(out)
    if suffix == ".xlsx":
        return write_xlsx_template(kind, out)
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
    return out


def _save_book(book, out: Path) -> None:
    """Save an openpyxl workbook to ``out`` atomically.

    Built in memory, then written: openpyxl leaves its ZipFile open when a write fails
    (full disk), and the interpreter's clean-up then printed a traceback past the one
    error line.
    """
    import io

    buffer = io.BytesIO()
    book.save(buffer)
    with atomic_path(out) as tmp:
        Path(tmp).write_bytes(buffer.getvalue())
