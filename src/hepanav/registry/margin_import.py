"""Attach an ablation margin measured by ``hepanav margin`` to a registry lesion.

Reads ``margin.json`` (only MAM, 5/6 mm shell coverage, category, the MAM's
uncertainty u, whether it is decisive and whether it is only a bound because of
the image border; the registry does not depend on the margin package, it reads
its documented JSON) and writes them onto the lesion treatment row of an ablation
(``mam_uncertainty_mm``, ``mam_decisive``: NULL when the file has no uncertainty
block; ``mam_bound`` from ``min_margin_bound``: NULL for a measurement), in one
transaction with the edit history.
A stored margin is replaced only with ``--upsert``; a NOT decisive MAM is stored
only with ``--accept-not-decisive``, and then as ``mam_decisive`` false.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, select, update

from hepanav.core.errors import InputError
from hepanav.core.report import format_margin
from hepanav.core.validation import read_user_json, validate_model
from hepanav.registry import models
from hepanav.registry.db import write_transaction
from hepanav.registry.schema import MarginJson, mam_category_problem

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
    margin = validate_model(MarginJson, data, path, suffix=" (is this a hepanav margin.json?)")
    # The outcomes template's rule (one rule set): a file whose category disagrees with
    # its MAM (edited by hand?) is refused rather than stored inconsistent.
    problem = mam_category_problem(margin.min_margin_mm, margin.category)
    if problem:
        problem = problem.replace("mam_mm", "min_margin_mm", 1)
        raise InputError(f"category {problem}: nothing stored", path)
    return margin


MARGIN_FIELDS = (
    "mam_mm",
    "shell_coverage_5mm_pct",
    "shell_coverage_6mm_pct",
    "margin_category",
    "mam_uncertainty_mm",
    "mam_decisive",
    "mam_bound",
)

# How a bound is named in messages (docs/margin.md, "Border").
BOUND_SHORT = {
    "lower": "a LOWER bound",
    "upper": "an UPPER bound",
    "unknown": "a bound of unknown direction",
}
BOUND_WORDS = {
    "lower": "a LOWER bound (zone cut by the image border: the true MAM may be larger)",
    "upper": "an UPPER bound (part of the tumour outside the image: the true MAM may be smaller)",
    "unknown": "a bound of unknown direction (zone cut by the image border and part of the "
    "tumour outside the image)",
}


def _same(old, new) -> bool:
    if isinstance(old, float | int) and isinstance(new, float | int):
        return abs(float(old) - float(new)) <= 1e-9 * max(1.0, abs(float(new)))
    return old == new


def attach_margin(
    engine: Engine,
    path: str | Path,
    patient_id: str,
    procedure_id: str,
    lesion_id: str,
    upsert: bool = False,
    accept_not_decisive: bool = False,
    user: str = "unknown",
    reason: str | None = None,
) -> tuple[MarginJson, list[tuple[str, object, object]]]:
    """Store MAM (mm), shell coverage (%), category, u (mm), decisive and bound on a lesion.

    Every changed field goes to the edit history (``record_changes``) in the same
    transaction. A stored value that would change is refused unless ``upsert``
    (filling empty fields, e.g. the uncertainty of a MAM typed in, is not); a MAM
    the margin file marks as NOT decisive (its uncertainty interval straddles 0 or
    5 mm, e.g. seeded masks) is refused unless
    ``accept_not_decisive``; then ``mam_decisive`` is stored false (with u in
    ``mam_uncertainty_mm``) and the history's reason says "NOT decisive". The kind of
    bound the MAM is (``min_margin_bound``: lower, upper, unknown; null = a
    measurement) is stored as ``mam_bound`` and named in the refusal and the history.

    Returns
    -------
    margin, changes
        The margin read and ``(field, old, new)`` of what changed (empty when the
        stored margin was already this one).

    Raises
    ------
    InputError
        If the file is not a margin result, or the registry has no treatment of
        that lesion in that procedure, or the procedure is not an ablation, or a
        stored margin would be overwritten without ``upsert``, or the MAM is not
        decisive without ``accept_not_decisive``.
    """
    from hepanav.registry.records import (
        _check_actor,
        _log,
        check_outcome_rules,
        outcome_problems,
    )

    margin = read_margin_json(path)
    not_decisive = margin.uncertainty is not None and not margin.uncertainty.decisive
    why = reason or "registry import-margin" + (" --upsert" if upsert else "")
    bound = margin.min_margin_bound
    if bound is not None:
        why = f"{why}; MAM is {BOUND_SHORT[bound]} (image border)"
    if not_decisive:
        why = f"{why}; MAM NOT decisive ({margin.uncertainty.rule})"
    why = why[:200]
    _check_actor(user, why)
    t, p = models.LesionTreatment.__table__, models.Procedure.__table__
    key = (
        (t.c.patient_id == patient_id)
        & (t.c.procedure_id == procedure_id)
        & (t.c.lesion_id == lesion_id)
    )
    u = margin.uncertainty
    new = {
        "mam_mm": margin.min_margin_mm,
        "shell_coverage_5mm_pct": 100.0 * margin.shell_coverage_5mm,
        "shell_coverage_6mm_pct": 100.0 * margin.shell_coverage_6mm,
        "margin_category": margin.category,
        "mam_uncertainty_mm": None if u is None else u.half_width_mm,
        "mam_decisive": None if u is None else u.decisive,
        "mam_bound": bound,
    }
    with write_transaction(engine) as conn:
        found = conn.execute(
            select(p.c.procedure_type, *(t.c[f] for f in MARGIN_FIELDS))
            .join(t, (t.c.patient_id == p.c.patient_id) & (t.c.procedure_id == p.c.procedure_id))
            .where(key)
        ).first()
        where = f"patient {patient_id}, procedure {procedure_id}, lesion {lesion_id}"
        if found is None:
            raise InputError(f"no such lesion treatment ({where}); import its outcomes row first")
        if found[0] != "ablation":
            raise InputError(f"procedure {procedure_id} is a {found[0]}, not an ablation")
        old = dict(zip(MARGIN_FIELDS, found[1:], strict=True))
        changes = [(f, old[f], new[f]) for f in MARGIN_FIELDS if not _same(old[f], new[f])]
        overwrites = any(o is not None for _, o, _ in changes)
        if overwrites and not upsert:
            mam = "no MAM" if old["mam_mm"] is None else f"MAM {old['mam_mm']:g} mm"
            if old["mam_bound"] is not None:
                mam += f", {BOUND_SHORT[old['mam_bound']]}"
            mine = f"MAM {format_margin(margin.min_margin_mm, 2)} mm ({margin.category}"
            mine += "" if bound is None else f", {BOUND_SHORT[bound]}"
            raise InputError(
                f"{where} already has {mam} ({old['margin_category'] or 'no category'}); "
                f"this file has {mine}): "
                "add --upsert to replace it (the change is kept in the history)"
            )
        if not_decisive and changes and not accept_not_decisive:
            what = "" if bound is None else f"{BOUND_WORDS[bound]} and "
            raise InputError(
                f"the MAM {format_margin(margin.min_margin_mm, 2)} mm is {what}NOT decisive "
                f"({margin.uncertainty.rule}); review the masks, or add --accept-not-decisive "
                "to store it (the history will say NOT decisive)"
            )
        if changes:
            before = outcome_problems(conn, patient_id)
            conn.execute(update(t).where(key).values(new))
            # The stored record as a whole under the outcomes template's rules.
            check_outcome_rules(conn, patient_id, before)
            _log(
                conn,
                user,
                "update",
                "lesion_treatments",
                f"lesion_treatments:{patient_id}/{procedure_id}/{lesion_id}",
                changes,
                why,
            )
    return margin, changes
