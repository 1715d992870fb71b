"""Create, correct and delete registry records, keeping every change in a history.

Each change writes one ``record_changes`` row per field (who, when, field, old,
new, reason) in the same transaction as the change itself, so the history can
never disagree with the data. Values are validated with the same field rules as
the import templates (:mod:`hepanav.registry.schema`) and screened for direct
identifiers (:mod:`hepanav.core.privacy`), whose values are never echoed.

Tables and their keys (pseudonymous ids; events and complications by number)::

    patients            patient_id
    primary_tumours     patient_id
    lesions             patient_id, lesion_id
    procedures          patient_id, procedure_id
    lesion_treatments   patient_id, procedure_id, lesion_id
    follow_up_events    id
    complications       id
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Connection, Engine, Table, delete, insert, select, update

from hepanav.core import privacy
from hepanav.core.errors import InputError
from hepanav.core.validation import canonical_code, first_error
from hepanav.registry import models, timeline
from hepanav.registry.db import database_errors, write_transaction
from hepanav.registry.schema import (
    CODE_SETS,
    ID_COLUMNS,
    ComplicationRow,
    EventRow,
    OutcomeRow,
)

TABLES: dict[str, type[models.Base]] = {
    "patients": models.Patient,
    "primary_tumours": models.PrimaryTumour,
    "lesions": models.Lesion,
    "procedures": models.Procedure,
    "lesion_treatments": models.LesionTreatment,
    "follow_up_events": models.FollowUpEvent,
    "complications": models.Complication,
}
MAX_TEXT = 200
# Date columns (ISO dates, parsed by the template's rule): not screened as dates of birth.
DATE_FIELDS = ("procedure_date", "event_date")


def table_of(name: str) -> Table:
    if name not in TABLES:
        raise InputError(f"unknown table {name!r}; choose from {', '.join(TABLES)}", "table")
    return TABLES[name].__table__


def key_columns(name: str) -> tuple[str, ...]:
    """Primary-key column names of a registry table."""
    return tuple(c.name for c in table_of(name).primary_key.columns)


def record_key(name: str, key: Mapping[str, Any]) -> str:
    """``lesions:P1/L1``: the history's name for a record."""
    return f"{name}:" + "/".join(str(key[k]) for k in key_columns(name))


def _field_info(name: str, field: str):
    for model in (OutcomeRow, EventRow, ComplicationRow):
        info = model.model_fields.get(field)
        if info is not None:
            return info
    raise InputError(f"{field!r} is not a field of table {name}", field)


def validate_value(table: str, field: str, value: Any) -> Any:
    """One field's value checked with the import template's rule (codes canonicalised).

    Raises
    ------
    InputError
        Naming the field; identifier-like values are refused without echo.
    """
    columns = table_of(table).columns
    if field not in columns or field == "id":
        raise InputError(f"{field!r} is not a field of table {table}", field)
    if value is None or value == "":
        if not columns[field].nullable or columns[field].primary_key:
            raise InputError("is required", field)
        return None
    role = (
        "code"
        if field in CODE_SETS
        else "id"
        if field in ID_COLUMNS
        else "date"  # a procedure/event date is expected to look like a date
        if field in DATE_FIELDS
        else "number"
        if isinstance(value, int | float)
        else "free_text"
    )
    kind = privacy.screen_value(
        value if isinstance(value, str) else None, role, CODE_SETS.get(field)
    )
    if kind:
        raise InputError(
            f"looks like {kind} (value not shown); keep pseudonymous codes only", field
        )
    if isinstance(value, str) and field in CODE_SETS:
        value = canonical_code(value, CODE_SETS[field])
    if isinstance(value, str | float) and _not_finite(value):
        raise InputError("must be a finite number", field)
    info = _field_info(table, field)
    try:
        checked = TypeAdapter(Annotated[info.annotation, info]).validate_python(value)
    except ValidationError as exc:
        raise InputError(first_error(exc, field).removeprefix(f"{field}: "), field) from None
    if isinstance(checked, float) and not math.isfinite(checked):
        raise InputError("must be a finite number", field)
    return checked


def _not_finite(value: str | float) -> bool:
    try:
        return not math.isfinite(float(value))
    except ValueError:
        return False


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)[:MAX_TEXT]


def _log(conn: Connection, user: str, action: str, table: str, key: str, changes, reason):
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "changed_at": now,
            "changed_by": user,
            "action": action,
            "table_name": table,
            "record_key": key,
            "field": field,
            "old_value": _text(old),
            "new_value": _text(new),
            "reason": reason,
        }
        for field, old, new in changes
    ]
    if rows:
        conn.execute(insert(models.RecordChange.__table__), rows)


def _check_actor(user: str, reason: str) -> None:
    if not user or len(user) > 64:
        raise InputError("who makes the change must be given (1-64 characters)", "user")
    if not reason or not reason.strip() or len(reason) > MAX_TEXT:
        raise InputError(f"a reason (1-{MAX_TEXT} characters) is required", "reason")
    if privacy.screen_value(reason):
        raise InputError("looks like it holds an identifier (value not shown)", "reason")


def _where(table: Table, name: str, key: Mapping[str, Any]):
    missing = [k for k in key_columns(name) if k not in key]
    if missing:
        raise InputError(f"the key of {name} needs {missing}", "key")
    clause = None
    for k in key_columns(name):
        term = table.c[k] == key[k]
        clause = term if clause is None else clause & term
    return clause


def get_record(engine: Engine, table: str, key: Mapping[str, Any]) -> dict[str, Any]:
    """One record as a dict; InputError if there is none."""
    t = table_of(table)
    with engine.connect() as conn:
        row = conn.execute(select(t).where(_where(t, table, key))).mappings().first()
    if row is None:
        raise InputError(f"no record {record_key(table, key)}", "key")
    return dict(row)


def create_record(
    engine: Engine, table: str, values: Mapping[str, Any], user: str, reason: str
) -> dict[str, Any]:
    """Insert a record (every value validated) and log each field as created."""
    _check_actor(user, reason)
    t = table_of(table)
    clean = {f: validate_value(table, f, v) for f, v in values.items()}
    if table == "lesion_treatments":
        _mam_certainty({c.name: None for c in t.columns}, clean, [])
    with database_errors(engine), write_transaction(engine) as conn:
        before = outcome_problems(conn, clean.get("patient_id"))
        try:
            result = conn.execute(insert(t).values(**clean))
        except Exception as exc:
            from sqlalchemy.exc import IntegrityError

            if isinstance(exc, IntegrityError):
                raise InputError(
                    "already exists or refers to an unknown patient/lesion/procedure "
                    f"({str(exc.orig).strip().splitlines()[0]})",
                    "key",
                ) from None
            raise
        if "id" in key_columns(table):
            clean["id"] = result.inserted_primary_key[0]
        key = record_key(table, clean)
        check_outcome_rules(conn, clean.get("patient_id"), before)
        timeline.check_record(conn, table, clean, key)
        _log(conn, user, "create", table, key, [(f, None, v) for f, v in clean.items()], reason)
    return clean


def update_record(
    engine: Engine,
    table: str,
    key: Mapping[str, Any],
    changes: Mapping[str, Any],
    user: str,
    reason: str,
) -> list[tuple[str, Any, Any]]:
    """Correct fields of a record; returns ``(field, old, new)`` of what changed."""
    _check_actor(user, reason)
    t = table_of(table)
    keys = set(key_columns(table))
    if keys & set(changes):
        raise InputError("key fields cannot be changed; delete and re-create", "changes")
    clean = {f: validate_value(table, f, v) for f, v in changes.items()}
    with database_errors(engine), write_transaction(engine) as conn:
        where = _where(t, table, key)
        row = conn.execute(select(t).where(where).with_for_update()).mappings().first()
        if row is None:
            raise InputError(f"no record {record_key(table, key)}", "key")
        diff = [(f, row[f], v) for f, v in clean.items() if not _same(row[f], v)]
        if table == "lesion_treatments":
            diff += _mam_certainty(row, clean, diff)
        if diff:
            before = outcome_problems(conn, row.get("patient_id"))
            conn.execute(update(t).where(where).values(**{f: v for f, _, v in diff}))
            check_outcome_rules(conn, row.get("patient_id"), before)
            timeline.check_record(conn, table, dict(row), record_key(table, key))
            _log(conn, user, "update", table, record_key(table, key), diff, reason)
    return diff


def outcome_problems(conn: Connection, patient_id: str | None) -> dict[str, tuple[str, str]]:
    """``{lesion treatment key: (field, reason)}`` of the patient's rows the import refuses."""
    if patient_id is None:
        return {}
    from hepanav.registry.dataset import treatments_query

    fields = OutcomeRow.model_fields
    found = {}
    for row in conn.execute(treatments_query(patient_id)).mappings():
        record = {f: row[f] for f in fields if f in row and row[f] is not None}
        try:
            OutcomeRow.model_validate(record)
        except ValidationError as exc:
            err = exc.errors(include_url=False, include_input=False)[0]
            why = " ".join(str(err["msg"]).removeprefix("Value error, ").split())
            loc = err.get("loc", ())
            field = str(loc[0]) if loc else why.split(" ", 1)[0]
            found[record_key("lesion_treatments", row)] = (
                field if field in fields else "record",
                why,
            )
    return found


def check_outcome_rules(
    conn: Connection, patient_id: str | None, before: Mapping[str, tuple[str, str]] | None = None
) -> None:
    """Every lesion treatment of the patient, as changed, re-checked with the import's rules.

    One rule set: a correction is validated by the same :class:`OutcomeRow` model (R0
    means >= 1 mm, MAM vs category, resection-only fields, dates ...) as an imported
    row, on the joined record (patient, lesion, procedure, treatment) as it would be
    stored. Raises InputError naming the record; the caller's transaction then rolls back.
    ``before`` (:func:`outcome_problems` before the change): problems already stored
    (from before a rule existed) do not block a correction of something else.
    """
    before = before or {}
    for key, (field, why) in outcome_problems(conn, patient_id).items():
        if before.get(key) != (field, why):
            raise InputError(f"{key}: {why} (the import refuses it too)", field)


def _mam_certainty(row: Mapping[str, Any], clean: Mapping[str, Any], diff) -> list:
    """A corrected MAM's stale certainty reset to unknown; contradictions refused.

    ``mam_uncertainty_mm``, ``mam_decisive`` and ``mam_bound`` describe the MAM they
    came with: a new ``mam_mm`` without them makes them NULL (unknown; for the bound:
    no bound known), logged like any change.
    """
    from hepanav.registry.importer import MAM_CERTAINTY

    extra = []
    if any(f == "mam_mm" for f, _, _ in diff):
        for field in MAM_CERTAINTY:
            if field not in clean and row[field] is not None:
                extra.append((field, row[field], None))
    merged = {**row, **clean, **{f: v for f, _, v in extra}}
    try:
        # The template's cross-field rules on the corrected record.
        OutcomeRow.model_validate(
            {
                "patient_id": "P",
                "lesion_id": "L",
                "procedure_id": "S",
                "procedure_type": "ablation",
                "procedure_date": "2000-01-01",
                **{f: merged[f] for f in ("mam_mm", "margin_category", *MAM_CERTAINTY)},
            }
        )
    except ValidationError as exc:
        raise InputError(first_error(exc, "mam_mm").split(": ", 1)[-1], "mam_mm") from None
    return extra


def delete_record(
    engine: Engine, table: str, key: Mapping[str, Any], user: str, reason: str
) -> dict[str, Any]:
    """Delete a record (and, by cascade, what hangs on it); log every old value."""
    _check_actor(user, reason)
    t = table_of(table)
    with database_errors(engine), write_transaction(engine) as conn:
        where = _where(t, table, key)
        row = conn.execute(select(t).where(where)).mappings().first()
        if row is None:
            raise InputError(f"no record {record_key(table, key)}", "key")
        conn.execute(delete(t).where(where))
        old = dict(row)
        _log(
            conn,
            user,
            "delete",
            table,
            record_key(table, old),
            [(f, v, None) for f, v in old.items()],
            reason,
        )
    return old


def history(engine: Engine, key: str | None = None) -> list[dict[str, Any]]:
    """Changes, oldest first; ``key`` (``lesions:P1/L1``) limits them to one record."""
    h = models.RecordChange.__table__
    query = select(h).order_by(h.c.id)
    if key is not None:
        query = query.where(h.c.record_key == key)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def _same(old: Any, new: Any) -> bool:
    if old is None or new is None:
        return old is None and new is None
    if isinstance(old, float) or isinstance(new, float):
        try:
            return math.isclose(float(old), float(new), rel_tol=0, abs_tol=1e-9)
        except (TypeError, ValueError):
            return False
    if isinstance(old, dt.datetime):
        old = old.date()
    if isinstance(old, str) and isinstance(new, dt.date):
        return old == new.isoformat()
    return old == new
