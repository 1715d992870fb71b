"""Import CSV/XLSX templates into the registry: validate every row, then one transaction.

An import is all or nothing: every row is validated first (Pydantic) and every
problem is reported with its spreadsheet row and column; only a clean file is
written, in a single transaction, with bulk ``INSERT``s (SQLAlchemy Core
``executemany``). A process killed half-way leaves the database as it was,
because nothing is committed before the last row is in.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Engine, Table, insert, select
from sqlalchemy.exc import IntegrityError

from hepanav.core.errors import InputError
from hepanav.registry import models
from hepanav.registry.db import write_transaction
from hepanav.registry.schema import (
    REQUIRED_COLUMNS,
    ROW_MODELS,
    ImportSummary,
    OutcomeRow,
    RowError,
)

CHUNK_ROWS = 5_000
MAX_LISTED_ERRORS = 50

# Column names that suggest a direct identifier (GDPR Art. 4(1) / HIPAA Safe Harbor
# identifiers: names, record numbers, full dates of birth, addresses, contacts).
_IDENTIFIER = re.compile(
    r"(^|_)(name|names|surname|forename|firstname|lastname|initials|mrn|nhs|ssn|"
    r"dob|birthdate|birthday|address|street|postcode|zip|zipcode|phone|telephone|"
    r"email|mail|insurance|passport)(_|$)"
    r"|record_?n(umbe)?r|hospital_?n(umbe)?r|patient_?n(umbe)?r|date_?of_?birth|"
    r"birth_?date|social_?security|postal_?code"
)


def normalise_column(name: Any) -> str:
    """``"Margin (mm)"`` -> ``"margin_mm"``: lower case, runs of non-alphanumerics -> ``_``."""
    return re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")


#: Largest CSV/XLSX accepted by ``registry import`` (bytes): 1 GiB is millions of rows.
MAX_IMPORT_BYTES = 1 << 30


def read_table(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Read a CSV or XLSX file as strings; empty cells become ``None``.

    Returns
    -------
    columns : list of str
        Normalised header names.
    records : list of dict
        One dict per data row (spreadsheet row ``i + 2``).
    """
    from hepanav.core.validation import check_input_file

    if not path.exists():
        raise InputError("file not found", path)
    # A regular file (a FIFO would block pandas forever), at most MAX_IMPORT_BYTES.
    check_input_file(path, "import file", MAX_IMPORT_BYTES)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        elif suffix in (".xlsx", ".xlsm"):
            frame = pd.read_excel(path, dtype=object, engine="openpyxl")
        else:
            raise InputError("expected a .csv or .xlsx file", path)
    except InputError:
        raise
    except Exception as exc:  # pandas/openpyxl raise many types for a damaged file
        raise InputError(f"cannot read the table ({type(exc).__name__}: {exc})", path) from None
    columns = [normalise_column(c) for c in frame.columns]
    seen: dict[str, int] = {}
    for i, name in enumerate(columns):
        if name in seen:
            # "margin_mm" and "Margin (mm)" are one column: which value counts would be a
            # guess, so refuse, naming both headers (header names are not patient data).
            raise InputError(
                f"columns {seen[name] + 1} and {i + 1} both mean {name!r} "
                f"({str(frame.columns[seen[name]])!r}, {str(frame.columns[i])!r}); keep one",
                path,
            )
        seen[name] = i
    frame.columns = columns
    if suffix == ".csv":
        # Vectorised clean-up (all cells are strings): strip; blank cells become None.
        frame = frame.apply(lambda col: col.str.strip())
        return columns, _records(frame.where(frame != ""))
    records = [{k: _cell(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
    return columns, records


def _cell(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN from empty Excel cells
        return None
    if isinstance(value, dt.datetime):  # Excel dates arrive as datetimes at midnight
        return value.date().isoformat()
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    ):
        # Numbers become text as in a CSV, so numeric ids (patient 1001, lesion 1,
        # segment 4) validate; Excel stores 4 as 4.0, hence no ".0".
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def check_columns(kind: str, columns: Sequence[str], source: Path) -> None:
    """Refuse identifier-like, unknown, duplicate or missing columns (one message for all)."""
    model = ROW_MODELS[kind]
    problems = []
    identifiers = [c for c in columns if _IDENTIFIER.search(c)]
    if identifiers:
        problems.append(
            f"columns {identifiers} look like direct identifiers (names, record numbers, "
            "birth dates, addresses); the registry keeps pseudonymous ids and year of "
            "birth only: remove them"
        )
    unknown = [c for c in columns if c not in model.model_fields and c not in identifiers]
    if unknown:
        problems.append(f"unknown columns {unknown}; allowed: {list(model.model_fields)}")
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        problems.append(f"duplicated columns {duplicated}")
    missing = [c for c in REQUIRED_COLUMNS[kind] if c not in columns]
    if missing:
        problems.append(f"missing required columns {missing}")
    if problems:
        raise InputError("nothing imported: " + "; ".join(problems), source)


def validate_rows(kind: str, records: list[dict[str, Any]]) -> tuple[list, list[RowError]]:
    """Validate all rows at once; return the models and every error (row, column, reason)."""
    adapter = TypeAdapter(list[ROW_MODELS[kind]])
    try:
        return adapter.validate_python(records), []
    except ValidationError as exc:
        errors = []
        fields = ROW_MODELS[kind].model_fields
        for err in exc.errors(include_url=False):
            loc = err["loc"]
            message = err["msg"].removeprefix("Value error, ")
            # Row-level checks start their message with the column they blame.
            first_word = message.split(" ", 1)[0]
            column = str(loc[1]) if len(loc) > 1 else first_word
            column = column if column in fields else "row"
            errors.append(RowError(row=int(loc[0]) + 2, column=column, reason=message))
        return [], errors


def _frame(rows: Sequence[OutcomeRow]) -> pd.DataFrame:
    return pd.DataFrame([r.__dict__ for r in rows], columns=list(OutcomeRow.model_fields))


def _conflicts(frame: pd.DataFrame, key: list[str], fields: tuple[str, ...]) -> list[RowError]:
    """Rows that repeat a key (patient, lesion, procedure) with different attributes."""
    errors = []
    grouped = frame.groupby(key, sort=False)
    for field in fields:
        # Missing values never conflict: a later row may leave a repeated cell blank.
        varying = grouped[field].transform("nunique") > 1
        if not varying.any():
            continue
        first = grouped[field].transform("first")
        present_rows = frame.index.to_series().where(frame[field].notna())
        first_row = present_rows.groupby([frame[k] for k in key], sort=False).transform("min")
        bad = varying & frame[field].notna() & (frame[field] != first)
        for i in np.flatnonzero(bad.to_numpy()):
            k = "/".join(str(frame.at[i, c]) for c in key)
            errors.append(
                RowError(
                    row=i + 2,
                    column=field,
                    reason=f"{first.iat[i]!r} on row {int(first_row.iat[i]) + 2} but "
                    f"{frame.at[i, field]!r} here for the same {'/'.join(key)} {k}",
                )
            )
    return errors


def check_outcome_consistency(rows: Sequence[OutcomeRow]) -> list[RowError]:
    """Patient, lesion and procedure attributes must agree on all rows that repeat them."""
    frame = _frame(rows)
    errors = _conflicts(frame, ["patient_id"], _PATIENT + _PRIMARY)
    errors += _conflicts(frame, ["patient_id", "lesion_id"], _LESION)
    errors += _conflicts(frame, ["patient_id", "procedure_id"], _PROCEDURE)
    key = ["patient_id", "procedure_id", "lesion_id"]
    repeated = frame.duplicated(key, keep="first")
    first_row = frame.index.to_series().groupby([frame[k] for k in key]).transform("min")
    for i in np.flatnonzero(repeated.to_numpy()):
        errors.append(
            RowError(
                row=i + 2,
                column="lesion_id",
                reason=f"lesion {frame.at[i, 'lesion_id']} of procedure "
                f"{frame.at[i, 'procedure_id']} already on row {int(first_row.iat[i]) + 2}",
            )
        )
    return sorted(errors, key=lambda e: e.row)


_PATIENT = ("year_of_birth", "sex")
_PRIMARY = ("primary_type", "net_grade", "ki67_pct")
_LESION = ("segment", "size_mm", "depth_mm")
_PROCEDURE = (
    "procedure_type",
    "procedure_date",
    "approach",
    "icg_used",
    "ablation_device",
    "ablation_energy",
    "ablation_power_w",
    "ablation_time_min",
)
_TREATMENT = (
    "margin_mm",
    "margin_status",
    "mam_mm",
    "shell_coverage_5mm_pct",
    "shell_coverage_6mm_pct",
    "margin_category",
)


def _records(frame: pd.DataFrame) -> list[dict]:
    """DataFrame rows as dicts of Python values, ``None`` (not NaN) for missing values."""
    # Column-wise .tolist() is ~5x faster than DataFrame.to_dict("records").
    columns = list(frame.columns)
    values = [frame[c].astype(object).where(frame[c].notna(), None).tolist() for c in columns]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


def _first_per_key(frame: pd.DataFrame, key: list[str], fields: tuple[str, ...]) -> list[dict]:
    # Merge repeated rows: the first non-empty value of each attribute wins
    # (conflicting values were refused by check_outcome_consistency).
    merged = frame.groupby(key, sort=False)[list(fields)].first()
    return _records(merged.reset_index())


def _execute_chunk(conn, statement, chunk: list[dict]) -> None:
    """One bulk ``executemany``; a module-level function so tests can interrupt it."""
    conn.execute(statement, chunk)


def _insert(conn, table: Table, records: list[dict], skip_existing: bool = False) -> None:
    if not records:
        return
    statement = insert(table)
    if skip_existing:
        # Patients, lesions and procedures may already be in the registry (an
        # earlier file, or a concurrent import): keep the row that is there.
        dialect = conn.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        statement = dialect_insert(table).on_conflict_do_nothing()
    for start in range(0, len(records), CHUNK_ROWS):
        _execute_chunk(conn, statement, records[start : start + CHUNK_ROWS])


def _write_outcomes(conn, rows: Sequence[OutcomeRow]) -> None:
    frame = _frame(rows)
    patient = ["patient_id"]
    _insert(conn, models.Patient.__table__, _first_per_key(frame, patient, _PATIENT), True)
    primaries = [r for r in _first_per_key(frame, patient, _PRIMARY) if r["primary_type"]]
    _insert(conn, models.PrimaryTumour.__table__, primaries, True)
    lesions = _first_per_key(frame, ["patient_id", "lesion_id"], _LESION)
    _insert(conn, models.Lesion.__table__, lesions, True)
    procedures = _first_per_key(frame, ["patient_id", "procedure_id"], _PROCEDURE)
    _insert(conn, models.Procedure.__table__, procedures, True)
    key = ["patient_id", "procedure_id", "lesion_id"]
    _insert(conn, models.LesionTreatment.__table__, _records(frame[key + list(_TREATMENT)]))


def _missing_parents(conn, rows: Sequence, with_lesion: bool, with_procedure: bool):
    """Row errors for events/complications whose patient, lesion or procedure is unknown."""
    patients = {r.patient_id for r in rows}
    known_patients, known_lesions, known_procedures = set(), set(), set()
    ids = sorted(patients)
    for start in range(0, len(ids), 1000):
        part = ids[start : start + 1000]
        p = models.Patient.__table__
        known_patients |= {
            r[0] for r in conn.execute(select(p.c.patient_id).where(p.c.patient_id.in_(part)))
        }
        if with_lesion:
            t = models.Lesion.__table__
            q = select(t.c.patient_id, t.c.lesion_id).where(t.c.patient_id.in_(part))
            known_lesions |= {tuple(r) for r in conn.execute(q)}
        if with_procedure:
            t = models.Procedure.__table__
            q = select(t.c.patient_id, t.c.procedure_id).where(t.c.patient_id.in_(part))
            known_procedures |= {tuple(r) for r in conn.execute(q)}
    errors = []
    for i, r in enumerate(rows):
        if r.patient_id not in known_patients:
            errors.append(RowError(row=i + 2, column="patient_id", reason="unknown patient"))
        elif with_lesion and r.lesion_id and (r.patient_id, r.lesion_id) not in known_lesions:
            errors.append(RowError(row=i + 2, column="lesion_id", reason="unknown lesion"))
        elif with_procedure and (r.patient_id, r.procedure_id) not in known_procedures:
            errors.append(RowError(row=i + 2, column="procedure_id", reason="unknown procedure"))
    return errors


class ImportRejected(InputError):
    """A refused import; ``errors`` holds every bad row (the message lists up to 50)."""

    def __init__(self, message: str, source: str | Path, errors: Sequence[RowError]) -> None:
        super().__init__(message, source)
        self.errors = list(errors)


def format_errors(errors: Sequence[RowError], source: Path) -> ImportRejected:
    """All row errors as one error: ``nothing imported: 2 bad row(s): row 3 margin_mm: ...``."""
    rows = sorted({e.row for e in errors})
    shown = "; ".join(f"row {e.row} {e.column}: {e.reason}" for e in errors[:MAX_LISTED_ERRORS])
    more = len(errors) - MAX_LISTED_ERRORS
    tail = f"; ... and {more} more (--errors-out FILE lists them all)" if more > 0 else ""
    message = f"nothing imported: {len(rows)} bad row(s): {shown}{tail}"
    return ImportRejected(message, source, errors)


def write_errors_csv(errors: Sequence[RowError], out: str | Path) -> Path:
    """Write every row error as CSV (``row, column, reason``), atomically."""
    from hepanav.core.atomic import atomic_path

    out = Path(out)
    frame = pd.DataFrame([e.model_dump() for e in errors], columns=["row", "column", "reason"])
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
    return out


def import_file(engine: Engine, path: str | Path, kind: str = "outcomes") -> ImportSummary:
    """Validate a CSV/XLSX template and write it to the registry in one transaction.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        An open registry (:func:`hepanav.registry.db.open_registry`).
    path : str or Path
        CSV or XLSX file with a header row (see docs/registry.md for templates).
    kind : {"outcomes", "events", "complications"}
        Which template the file follows.

    Raises
    ------
    InputError
        Listing every bad row with its column and reason; nothing is written.
    """
    path = Path(path)
    if kind not in ROW_MODELS:
        raise InputError(f"unknown kind {kind!r}; choose from {list(ROW_MODELS)}", "--kind")
    columns, records = read_table(path)
    check_columns(kind, columns, path)
    if not records:
        raise InputError("nothing imported: the file has no data rows", path)
    rows, errors = validate_rows(kind, records)
    if not errors and kind == "outcomes":
        errors = check_outcome_consistency(rows)
    if errors:
        raise format_errors(errors, path)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        with write_transaction(engine) as conn:
            if kind == "outcomes":
                _write_outcomes(conn, rows)
            else:
                errors = _missing_parents(
                    conn, rows, with_lesion=kind == "events", with_procedure=kind != "events"
                )
                if errors:
                    raise format_errors(errors, path)
                table = models.FollowUpEvent if kind == "events" else models.Complication
                _insert(conn, table.__table__, [r.model_dump() for r in rows])
            conn.execute(
                insert(models.ImportBatch.__table__),
                {
                    "kind": kind,
                    "source": path.name[:255],
                    "sha256": sha256,
                    "n_rows": len(rows),
                    "imported_at": dt.datetime.now(dt.UTC),
                },
            )
    except IntegrityError as exc:
        detail = str(exc.orig).splitlines()[0]
        raise InputError(
            f"nothing imported: conflicts with the registry (already imported?): {detail}",
            path,
        ) from None
    return ImportSummary(
        kind=kind,
        source=str(path),
        rows=len(rows),
        patients=len({r.patient_id for r in rows}),
        sha256=sha256,
    )
