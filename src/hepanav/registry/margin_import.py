"""Attach an ablation margin measured by ``hepanav margin`` to a registry lesion.

Reads ``margin.json`` (only MAM, 5/6 mm shell coverage and category; the
registry does not depend on the margin package, it reads its documented JSON)
and writes them onto the lesion treatment row of an ablation, in one transaction.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import Engine, select, update

from hepanav.core.errors import InputError
from hepanav.core.validation import first_error
from hepanav.registry import models
from hepanav.registry.db import write_transaction
from hepanav.registry.schema import MarginJson

# A margin.json is a few kB; anything far larger is not one.
MAX_MARGIN_JSON_BYTES = 16 * 1024 * 1024
MAX_JSON_DEPTH = 64


def _refuse_constants(name: str):
    raise ValueError(f"{name} is not a number")


def _depth(text: str) -> int:
    """Deepest nesting of brackets outside strings (checked before parsing)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def read_margin_json(path: str | Path) -> MarginJson:
    """Parse the registry's subset of a ``margin.json``; bad files raise InputError.

    NaN, Infinity and numbers out of range are refused; so are files over 16 MiB
    or nested deeper than 64 levels (before parsing).
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    if not path.is_file():
        raise InputError("is not a regular file", path)
    if path.stat().st_size > MAX_MARGIN_JSON_BYTES:
        raise InputError("is too large to be a margin.json", path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError("is not UTF-8 text (is this a hepanav margin.json?)", path) from None
    if _depth(text) > MAX_JSON_DEPTH:
        raise InputError(f"is nested deeper than {MAX_JSON_DEPTH} levels", path)
    try:
        data = json.loads(text, parse_constant=_refuse_constants)
        return MarginJson.model_validate(data)
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON ({exc})", path) from None
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, ValidationError):
            raise InputError(
                f"{first_error(exc, 'file')} (is this a hepanav margin.json?)", path
            ) from None
        raise InputError(f"not a valid margin.json ({exc})", path) from None


def attach_margin(
    engine: Engine, path: str | Path, patient_id: str, procedure_id: str, lesion_id: str
) -> MarginJson:
    """Store MAM (mm), shell coverage (%) and category on an ablated lesion.

    Raises
    ------
    InputError
        If the file is not a margin result, or the registry has no treatment of
        that lesion in that procedure, or the procedure is not an ablation.
    """
    margin = read_margin_json(path)
    t, p = models.LesionTreatment.__table__, models.Procedure.__table__
    key = (
        (t.c.patient_id == patient_id)
        & (t.c.procedure_id == procedure_id)
        & (t.c.lesion_id == lesion_id)
    )
    with write_transaction(engine) as conn:
        found = conn.execute(
            select(p.c.procedure_type)
            .join(t, (t.c.patient_id == p.c.patient_id) & (t.c.procedure_id == p.c.procedure_id))
            .where(key)
        ).first()
        where = f"patient {patient_id}, procedure {procedure_id}, lesion {lesion_id}"
        if found is None:
            raise InputError(f"no such lesion treatment ({where}); import its outcomes row first")
        if found[0] != "ablation":
            raise InputError(f"procedure {procedure_id} is a {found[0]}, not an ablation")
        conn.execute(
            update(t)
            .where(key)
            .values(
                mam_mm=margin.min_margin_mm,
                shell_coverage_5mm_pct=100.0 * margin.shell_coverage_5mm,
                shell_coverage_6mm_pct=100.0 * margin.shell_coverage_6mm,
                margin_category=margin.category,
            )
        )
    return margin
