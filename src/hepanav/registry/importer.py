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
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Engine, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from hepanav.core import privacy
from hepanav.core.errors import InputError
from hepanav.registry import models
from hepanav.registry.db import database_errors, run_with_retry, write_transaction
from hepanav.registry.reading import decimal_commas, normalise_column, read_table
from hepanav.registry.schema import (
    REQUIRED_COLUMNS,
    ROW_MODELS,
    ImportSummary,
    OutcomeRow,
    RowError,
    UpsertChange,
)

CHUNK_ROWS = 5_000
MAX_LISTED_ERRORS = 50

__all__ = ["normalise_column", "import_file", "read_table"]


def column_roles(kind: str) -> dict[str, tuple[str, ...]]:
    """Columns of a template by type: dates, numbers, percentages, codes, ids."""
    from hepanav.registry.schema import CODE_SETS, ID_COLUMNS

    model = ROW_MODELS[kind]
    dates, numbers = [], []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        args = set(typing.get_args(annotation)) | {annotation}
        if dt.date in args or any(dt.date in typing.get_args(a) for a in args):
            dates.append(name)
        elif args & {float, int}:
            numbers.append(name)
    fields = set(model.model_fields)
    return {
        "dates": tuple(dates),
        "numbers": tuple(numbers),
        "percent": tuple(n for n in numbers if n.endswith("_pct")),
        "codes": tuple(c for c in CODE_SETS if c in fields),
        "ids": tuple(c for c in ID_COLUMNS if c in fields),
    }


def screen_identifiers(kind: str, table) -> list[RowError]:
    """Cells that look like names, birth dates, phone or record numbers, e-mails.

    Each error names column and row, never the value (:mod:`hepanav.core.privacy`).
    """
    from hepanav.registry.schema import CODE_SETS

    roles = column_roles(kind)
    findings = privacy.screen_records(
        table.records,
        table.row_numbers,
        code_sets={c: CODE_SETS[c] for c in roles["codes"]},
        id_columns=roles["ids"],
        date_columns=roles["dates"],
        number_columns=roles["numbers"],
    )
    return [
        RowError(
            row=f.row,
            column=f.column,
            reason=f"looks like {f.kind} (value not shown); the registry keeps "
            "pseudonymous codes only",
        )
        for f in findings
    ]


def check_columns(kind: str, columns: Sequence[str], source: Path) -> None:
    """Refuse identifier-like, unknown, duplicate or missing columns (one message for all)."""
    model = ROW_MODELS[kind]
    problems = []
    identifiers = [c for c in columns if privacy.identifier_column(c)]
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


#: Pydantic's wording for a constraint -> the registry's ("must ...", no regex).
_PLAIN_WORDS = {
    "string_pattern_mismatch": (
        "must hold only letters A-Z / a-z, digits, '.', '_' or '-' (no spaces or accents), "
        "starting with a letter or digit"
    ),
    "string_too_long": "must be at most {max_length} characters",
    "string_too_short": "must not be empty",
    "missing": "is required",
}


def plain_reason(err: dict[str, Any]) -> str:
    """One pydantic error as a reason a study nurse reads: "must ..." instead of the
    validator's wording ("String should match pattern '^[A-Za-z0-9]...'", "Input should
    be 'a' or 'b'"); the rules' own messages ("Value error, ...") without the prefix."""
    template = _PLAIN_WORDS.get(err.get("type", ""))
    if template is not None:
        return template.format(**(err.get("ctx") or {}))
    message = str(err["msg"]).removeprefix("Value error, ")
    return message.replace("Input should be", "must be", 1)


def validate_rows(
    kind: str, records: list[dict[str, Any]], row_numbers: Sequence[int] | None = None
) -> tuple[list, list[RowError]]:
    """Validate all rows at once; return the models and every error (row, column, reason).

    ``row_numbers`` gives each record's spreadsheet row (default index + 2).
    """
    adapter = TypeAdapter(list[ROW_MODELS[kind]])
    try:
        return adapter.validate_python(records), []
    except ValidationError as exc:
        errors = []
        fields = ROW_MODELS[kind].model_fields
        for err in exc.errors(include_url=False):
            loc = err["loc"]
            message = plain_reason(err)
            # Row-level checks start their message with the column they blame.
            first_word = message.split(" ", 1)[0]
            column = str(loc[1]) if len(loc) > 1 else first_word
            column = column if column in fields else "row"
            index = int(loc[0])
            row = row_numbers[index] if row_numbers is not None else index + 2
            errors.append(RowError(row=row, column=column, reason=message))
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
_PRIMARY = ("primary_type", "net_grade", "ki67_pct", "ras_status", "braf_status")
_LESION = ("segment", "size_mm", "depth_mm", "vessel_contact")
_PROCEDURE = (
    "procedure_type",
    "procedure_date",
    "approach",
    "icg_used",
    "ablation_device",
    "ablation_energy",
    "ablation_power_w",
    "ablation_time_min",
    "centre",
    "asa_class",
    "cea_ng_ml",
    "prior_chemo",
    "neoadjuvant_chemo",
)
_TREATMENT = (
    "margin_mm",
    "margin_status",
    "mam_mm",
    "shell_coverage_5mm_pct",
    "shell_coverage_6mm_pct",
    "margin_category",
    "n_applicators",
    "margin_confirmation",
    "technical_success",
    "complete_at_first_follow_up",
    "mam_uncertainty_mm",
    "mam_decisive",
    "mam_bound",
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
    # Rows in primary-key order: two imports then take their row locks in the
    # same order, so on PostgreSQL they queue instead of deadlocking.
    key = [c.name for c in table.primary_key.columns if c.name in records[0]]
    if key:
        records = sorted(records, key=lambda r: tuple(str(r[k]) for k in key))
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


_TABLE_FIELDS = (
    ("patients", ("patient_id",), _PATIENT),
    ("primary_tumours", ("patient_id",), _PRIMARY),
    ("lesions", ("patient_id", "lesion_id"), _LESION),
    ("procedures", ("patient_id", "procedure_id"), _PROCEDURE),
    ("lesion_treatments", ("patient_id", "procedure_id", "lesion_id"), _TREATMENT),
)


def _existing(conn, table: Table, key: Sequence[str], patients: list[str]) -> dict:
    found = {}
    for start in range(0, len(patients), 1000):
        part = patients[start : start + 1000]
        for row in conn.execute(select(table).where(table.c.patient_id.in_(part))).mappings():
            found[tuple(row[k] for k in key)] = dict(row)
    return found


def plan_upsert(conn, rows: Sequence[OutcomeRow], numbers: Sequence[int]) -> list[UpsertChange]:
    """What re-importing ``rows`` would change: records created and fields updated.

    A blank cell never erases a stored value (use ``registry update`` for that).
    """
    from hepanav.registry.records import _same

    frame = _frame(rows)
    first_row: dict[tuple, int] = {}
    patients = sorted(set(frame["patient_id"]))
    changes = []
    for name, key, fields in _TABLE_FIELDS:
        table = models.Base.metadata.tables[name]
        for i, values in enumerate(zip(*(frame[k] for k in key), strict=True)):
            first_row.setdefault((name, values), numbers[i])
        if name == "lesion_treatments":
            records = _records(frame[list(key) + list(fields)])
        else:
            records = _first_per_key(frame, list(key), fields)
        if name == "primary_tumours":
            records = [r for r in records if r["primary_type"]]
        existing = _existing(conn, table, key, patients)
        for record in records:
            k = tuple(record[c] for c in key)
            where = dict(table=name, key="/".join(k), row=first_row[(name, k)])
            old = existing.get(k)
            if old is None:
                changes.append(UpsertChange(action="create", **where))
                continue
            stale = ()
            if name == "lesion_treatments" and _new_mam(old, record):
                # A changed MAM without its certainty: the stored u / decisive / bound
                # describe the old MAM, so they become NULL rather than silently stay.
                stale = MAM_CERTAINTY
            for field in fields:
                new = record[field]
                if new is None and field in stale and old[field] is not None:
                    changes.append(
                        UpsertChange(
                            action="update", field=field, old=_shown(old[field]), new=None, **where
                        )
                    )
                if new is not None and not _same(old[field], new):
                    changes.append(
                        UpsertChange(
                            action="update",
                            field=field,
                            old=_shown(old[field]),
                            new=_shown(new),
                            **where,
                        )
                    )
    return changes


# The columns that describe the stored MAM (schemas 0004, 0005): they go with it.
MAM_CERTAINTY = ("mam_uncertainty_mm", "mam_decisive", "mam_bound")


def _new_mam(old: dict, record: dict) -> bool:
    from hepanav.registry.records import _same

    return record["mam_mm"] is not None and not _same(old["mam_mm"], record["mam_mm"])


def _shown(value) -> str | None:
    from hepanav.registry.records import _text

    if isinstance(value, float) and value.is_integer():
        value = int(value) if abs(value) < 1e15 else value
    return _text(value)


def _apply_upsert(conn, rows, changes: list[UpsertChange], user: str, reason: str) -> None:
    from hepanav.registry.records import _log, check_outcome_rules, outcome_problems

    touched = sorted({c.key.split("/")[0] for c in changes if c.action == "update"})
    before = {patient: outcome_problems(conn, patient) for patient in touched}
    _write_outcomes(conn, rows, skip_existing=True)
    keys = {name: key for name, key, _ in _TABLE_FIELDS}
    for change in changes:
        if change.action != "update":
            continue
        table = models.Base.metadata.tables[change.table]
        where = None
        for column, value in zip(keys[change.table], change.key.split("/"), strict=True):
            term = table.c[column] == value
            where = term if where is None else where & term
        row = next(r for r in rows if _matches(r, keys[change.table], change.key))
        conn.execute(update(table).where(where).values({change.field: getattr(row, change.field)}))
    # A blank cell keeps the stored value: the merged records get the import's rules again.
    for patient in touched:
        check_outcome_rules(conn, patient, before[patient])
    for change in changes:
        _log(
            conn,
            user,
            change.action,
            change.table,
            f"{change.table}:{change.key}",
            [(change.field, change.old, change.new)],
            reason,
        )


def _matches(row, key, joined: str) -> bool:
    return "/".join(str(getattr(row, k)) for k in key) == joined


def _already_there(conn, rows: Sequence[OutcomeRow], numbers: Sequence[int]) -> list[RowError]:
    """Row errors for lesion treatments already in the registry (plain import)."""
    table = models.LesionTreatment.__table__
    key = ("patient_id", "procedure_id", "lesion_id")
    existing = _existing(conn, table, key, sorted({r.patient_id for r in rows}))
    return [
        RowError(
            row=numbers[i],
            column="lesion_id",
            reason=f"patient {r.patient_id} procedure {r.procedure_id} lesion {r.lesion_id} "
            "is already in the registry; re-import with --upsert to correct it",
        )
        for i, r in enumerate(rows)
        if (r.patient_id, r.procedure_id, r.lesion_id) in existing
    ]


def _write_outcomes(conn, rows: Sequence[OutcomeRow], skip_existing: bool = False) -> None:
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
    treatments = _records(frame[key + list(_TREATMENT)])
    _insert(conn, models.LesionTreatment.__table__, treatments, skip_existing)


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


def import_file(
    engine: Engine,
    path: str | Path,
    kind: str = "outcomes",
    *,
    upsert: bool = False,
    dry_run: bool = False,
    user: str = "import",
    reason: str | None = None,
    mapping: str | Path | None = None,
) -> ImportSummary:
    """Validate a CSV/XLSX template and write it to the registry in one transaction.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        An open registry (:func:`hepanav.registry.db.open_registry`).
    path : str or Path
        CSV or XLSX file with a header row (see docs/registry.md for templates).
    kind : {"outcomes", "events", "complications"}
        Which template the file follows.
    upsert : bool
        Outcomes only: re-import of a corrected file. Records are matched by
        their keys (patient, lesion, procedure); new ones are created, changed
        fields updated, and every change logged in the history with ``user``
        and ``reason``. Without it, a lesion treatment already in the registry
        is an error naming its row and key.
    dry_run : bool
        With ``upsert``: list what would change (``ImportSummary.changes``),
        write nothing.
    mapping : str or Path, optional
        ``"redcap"`` for a REDCap raw export, or a YAML mapping file
        (:mod:`hepanav.registry.mapping`).

    Raises
    ------
    InputError
        Listing every bad row with its column and reason; nothing is written.
    """
    path = Path(path)
    if kind not in ROW_MODELS:
        raise InputError(f"unknown kind {kind!r}; choose from {list(ROW_MODELS)}", "--kind")
    roles = column_roles(kind)
    table = read_table(path, roles["dates"], roles["percent"])
    if mapping is not None:
        from hepanav.registry.mapping import apply_mapping

        table = apply_mapping(table, mapping, kind, path)
    check_columns(kind, table.columns, path)
    if not table.records:
        raise InputError("nothing imported: the file has no data rows", path)
    # Identifiers first: later messages may quote a cell, this one never does.
    errors = screen_identifiers(kind, table)
    if errors:
        raise format_errors(errors, path)
    numbers = table.row_numbers
    errors = [RowError(**e) for e in decimal_commas(table, roles["numbers"], path)]
    if errors:
        raise format_errors(errors, path)
    rows, errors = validate_rows(kind, table.records, numbers)
    if not errors and kind == "outcomes":
        errors = _renumber(check_outcome_consistency(rows), numbers)
    if errors:
        raise format_errors(errors, path)
    # The file's hash identifies it in the audit trail; its name (which may name
    # a patient's folder) is not stored.
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()

    if (upsert or dry_run) and kind != "outcomes":
        raise InputError("--upsert/--dry-run apply to outcomes files (keyed records)", "--kind")
    if dry_run and not upsert:
        raise InputError("--dry-run lists what an --upsert would change; add --upsert", "--dry-run")
    planned: list[UpsertChange] = []
    why = reason or f"re-import of file sha256:{sha256[:16]}"

    def write() -> None:
        nonlocal planned
        with write_transaction(engine) as conn:
            if kind == "outcomes" and upsert:
                planned = plan_upsert(conn, rows, numbers)
                if dry_run:
                    conn.rollback()
                    return
                _apply_upsert(conn, rows, planned, user, why)
                _check_procedure_dates(conn, rows, numbers, path)
            elif kind == "outcomes":
                there = _already_there(conn, rows, numbers)
                if there:
                    raise format_errors(there, path)
                _write_outcomes(conn, rows)
                _check_procedure_dates(conn, rows, numbers, path)
            else:
                missing = _missing_parents(
                    conn, rows, with_lesion=kind == "events", with_procedure=kind != "events"
                )
                if missing:
                    raise format_errors(_renumber(missing, numbers), path)
                if kind == "events":
                    _check_event_dates(conn, rows, numbers, path)
                table_ = models.FollowUpEvent if kind == "events" else models.Complication
                _insert(conn, table_.__table__, [r.model_dump() for r in rows])
            conn.execute(
                insert(models.ImportBatch.__table__),
                {
                    "kind": kind,
                    "source": f"sha256:{sha256[:16]}",
                    "sha256": sha256,
                    "n_rows": len(rows),
                    "imported_at": dt.datetime.now(dt.UTC),
                },
            )

    try:
        with database_errors(engine):
            run_with_retry(write)
    except IntegrityError as exc:
        detail = str(exc.orig).strip().splitlines()[0]
        raise InputError(
            f"nothing imported: conflicts with the registry (already imported? use "
            f"`registry import --upsert`): {detail}",
            path,
        ) from None
    return ImportSummary(
        kind=kind,
        source=path.name,
        rows=len(rows),
        patients=len({r.patient_id for r in rows}),
        sha256=sha256,
        notes=table.notes,
        dry_run=dry_run,
        changes=planned,
    )


def _timeline_errors(found) -> list[RowError]:
    errors = [RowError(row=item.label, column=item.field, reason=why) for item, why in found]
    return sorted(errors, key=lambda e: e.row)


def _check_event_dates(conn, rows: Sequence, numbers: Sequence[int], path: Path) -> None:
    """Events after the patient's death, deaths before a procedure: refused by row."""
    from hepanav.registry import timeline

    new = [
        timeline.Dated(r.patient_id, r.event_type, r.event_date, r.lesion_id or "", number)
        for r, number in zip(rows, numbers, strict=True)
    ]
    found = timeline.problems(timeline.stored(conn, {r.patient_id for r in rows}) + new)
    if found:
        raise format_errors(_timeline_errors(found), path)


def _check_procedure_dates(conn, rows: Sequence, numbers: Sequence[int], path: Path) -> None:
    """Procedures (as now stored) dated after their patient's death: refused by row."""
    from hepanav.registry import timeline

    first_row: dict[tuple[str, str], int] = {}
    for r, number in zip(rows, numbers, strict=True):
        first_row.setdefault((r.patient_id, r.procedure_id), number)
    items = [
        i.__class__(i.patient_id, i.kind, i.date, i.name, first_row.get((i.patient_id, i.name)))
        if i.kind == "procedure"
        else i
        for i in timeline.stored(conn, {p for p, _ in first_row})
    ]
    found = timeline.problems(items)
    if found:
        raise format_errors(_timeline_errors(found), path)


def _renumber(errors: Sequence[RowError], numbers: Sequence[int]) -> list[RowError]:
    """Map errors numbered index + 2 onto the spreadsheet rows (empty rows skipped)."""
    return [e.model_copy(update={"row": numbers[e.row - 2]}) for e in errors]
