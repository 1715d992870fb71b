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
    with atomic_path(out) as tmp:
        book.save(tmp)
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


def write_template(kind: str, out: str | Path) -> Path:
    """Write an empty template (header row only) as ``.csv`` or ``.xlsx``."""
    out = Path(out)
    if kind not in ROW_MODELS:
        raise InputError(f"unknown kind {kind!r}; choose from {list(ROW_MODELS)}", "KIND")
    frame = pd.DataFrame(columns=list(ROW_MODELS[kind].model_fields))
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise InputError("expected a .csv or .xlsx file name", out)
    _check_file_name(out)
    with atomic_path(out) as tmp:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_excel(tmp, index=False, engine="openpyxl")
    return out
