"""A patient's dates must be possible: nothing after their death, one death.

Checked wherever dates enter the registry (events import, outcomes import and
``--upsert``, ``registry create|update``), against what is already stored, so an
impossible timeline is refused at the door instead of being dropped silently by
the analyses (a local progression after death would never count; a death before
the procedure would make the follow-up negative). Rules, per patient:

* an event (of any type) or a procedure dated after the patient's death is refused;
  an event on the day of death is fine;
* a second death is refused.

The new item (file row or corrected record) is blamed; an impossible timeline made
only of stored records (from before this check) is left to the audit. Dates are
never echoed (one may be a date of birth).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Connection, select

from hepanav.registry import models


@dataclass(frozen=True)
class Dated:
    """A dated item of a patient: a follow-up event or a procedure."""

    patient_id: str
    kind: str  # the event type, or "procedure"
    date: dt.date
    name: str  # procedure id, lesion id or ""
    label: object = None  # a file row number or a record key: new; None: stored
    ref: object = None  # stored: the procedure id or the event's id

    @property
    def field(self) -> str:
        return "procedure_date" if self.kind == "procedure" else "event_date"

    def text(self) -> str:
        return f"procedure {self.name}" if self.kind == "procedure" else self.kind

    def where(self) -> str:
        if self.label is None:
            return "in the registry"
        return f"row {self.label}" if isinstance(self.label, int) else str(self.label)


def _day(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return pd.Timestamp(value).date()


def stored(conn: Connection, patients: Iterable[str]) -> list[Dated]:
    """The procedures and follow-up events of these patients as stored (label None)."""
    ids = sorted(set(patients))
    p, e = models.Procedure.__table__, models.FollowUpEvent.__table__
    items: list[Dated] = []
    for start in range(0, len(ids), 1000):
        part = ids[start : start + 1000]
        q = select(p.c.patient_id, p.c.procedure_id, p.c.procedure_date).where(
            p.c.patient_id.in_(part)
        )
        items += [Dated(r[0], "procedure", _day(r[2]), r[1], ref=r[1]) for r in conn.execute(q)]
        q = select(e.c.patient_id, e.c.event_type, e.c.event_date, e.c.lesion_id, e.c.id).where(
            e.c.patient_id.in_(part)
        )
        items += [Dated(r[0], r[1], _day(r[2]), r[3] or "", ref=r[4]) for r in conn.execute(q)]
    return items


def problems(items: Sequence[Dated]) -> list[tuple[Dated, str]]:
    """``(blamed item, reason)`` for every impossible date among ``items``.

    Only new items (``label`` not None) are blamed; the reason names the other item
    (its row, record or "in the registry") but no date.
    """
    by_patient: dict[str, list[Dated]] = {}
    for item in items:
        by_patient.setdefault(item.patient_id, []).append(item)
    found: list[tuple[Dated, str]] = []
    for patient, own in by_patient.items():
        # Stored deaths first: a new death is the one that is "second".
        deaths = sorted(
            (i for i in own if i.kind == "death"), key=lambda i: (i.label is not None, i.date)
        )
        if not deaths:
            continue
        death = deaths[0]
        for extra in deaths[1:]:
            if extra.label is not None:
                found.append(
                    (extra, f"a second death for patient {patient} (one is {death.where()})")
                )
        for item in own:
            if item.kind == "death" or item.date <= death.date:
                continue
            if item.label is not None:
                found.append(
                    (item, f"{item.text()} dated after the patient's death ({death.where()})")
                )
            elif death.label is not None:
                found.append(
                    (death, f"death dated before the patient's {item.text()} ({item.where()})")
                )
    return found


def check_record(conn: Connection, table: str, record: dict, key: str) -> None:
    """A created or corrected procedure / follow-up event (as now stored) checked; InputError."""
    from hepanav.core.errors import InputError

    if table not in ("procedures", "follow_up_events"):
        return
    ref = record["procedure_id"] if table == "procedures" else record["id"]
    kind = "procedure" if table == "procedures" else None
    items = [
        Dated(i.patient_id, i.kind, i.date, i.name, key, i.ref)
        if i.ref == ref and (i.kind == "procedure") == (kind == "procedure")
        else i
        for i in stored(conn, [record["patient_id"]])
    ]
    found = problems(items)
    if found:
        item, why = found[0]
        raise InputError(f"{key}: {why}", item.field)
