"""Attach an ablation margin measured by ``hepanav margin`` to a registry lesion.

Reads ``margin.json`` (only MAM, 5/6 mm shell coverage and category; the
registry does not depend on the margin package, it reads its documented JSON)
and writes them onto the lesion treatment row of an ablation, in one transaction.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, select, update

from hepanav.core.errors import InputError
from hepanav.core.validation import read_user_json, validate_model
from hepanav.registry import models
from hepanav.registry.db import write_transaction
from hepanav.registry.schema import MarginJson

# A margin.json is a few kB; anything far larger is not one.
MAX_MARGIN_JSON_BYTES = 16 * 1024 * 1024


def read_margin_json(path: str | Path) -> MarginJson:
    """Parse the registry's subset of a ``margin.json``; bad files raise InputError.

    Read with the shared bounded reader (:func:`hepanav.core.validation.read_user_json`):
    a regular file of at most 16 MiB, nested at most
    :data:`~hepanav.core.validation.MAX_DEPTH` levels (checked before parsing), finite
    numbers only (NaN, Infinity refused); then numbers out of range are refused by
    :class:`~hepanav.registry.schema.MarginJson`.
    """
    data = read_user_json(path, "margin.json", max_bytes=MAX_MARGIN_JSON_BYTES)
    return validate_model(MarginJson, data, path, suffix=" (is this a hepanav margin.json?)")


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
