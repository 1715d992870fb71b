"""Registry tables as pandas DataFrames for the statistics and the audit report."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select

from hepanav.registry import models
from hepanav.registry.vocabulary import NEGATIVE_MARGIN

# Average month length in days (365.25 / 12), to report follow-up in months.
DAYS_PER_MONTH = 30.4375

# Columns a user may group the margin statistics by (docs/registry.md).
GROUP_COLUMNS = (
    "icg_used",
    "procedure_type",
    "approach",
    "procedure_year",
    "primary_type",
    "net_grade",
    "sex",
    "segment",
    "ablation_energy",
    "margin_category",
    "centre",
    "ras_status",
    "braf_status",
    "prior_chemo",
    "neoadjuvant_chemo",
    "asa_class",
    "vessel_contact",
    "margin_confirmation",
)


def treatments(engine: Engine) -> pd.DataFrame:
    """One row per lesion treatment joined with its patient, lesion and procedure.

    Returns
    -------
    pandas.DataFrame
        Columns of the outcomes template plus ``procedure_year`` (int) and
        ``negative`` (1.0 for R0, 0.0 for R1/R2, NaN without a margin status).
        Margins in mm.
    """
    with engine.connect() as conn:
        frame = pd.read_sql(treatments_query(), conn)
    frame["procedure_date"] = pd.to_datetime(frame["procedure_date"])
    frame["procedure_year"] = frame["procedure_date"].dt.year
    status = frame["margin_status"]
    frame["negative"] = np.where(status.isna(), np.nan, (status == NEGATIVE_MARGIN) * 1.0)
    return frame


def treatments_query(patient_id: str | None = None):
    """The SELECT behind :func:`treatments`: outcomes-template columns per lesion treatment.

    ``patient_id`` limits it to one patient (the corrections re-check that patient's
    rows with the import's rules, :func:`hepanav.registry.records.update_record`).
    """
    t, p, le, pr, pt = (
        models.LesionTreatment.__table__,
        models.Procedure.__table__,
        models.Lesion.__table__,
        models.Patient.__table__,
        models.PrimaryTumour.__table__,
    )
    query = (
        select(
            t,
            p.c.procedure_type,
            p.c.procedure_date,
            p.c.approach,
            p.c.icg_used,
            p.c.ablation_device,
            p.c.ablation_energy,
            p.c.ablation_power_w,
            p.c.ablation_time_min,
            p.c.centre,
            p.c.asa_class,
            p.c.cea_ng_ml,
            p.c.prior_chemo,
            p.c.neoadjuvant_chemo,
            le.c.segment,
            le.c.size_mm,
            le.c.depth_mm,
            le.c.vessel_contact,
            pr.c.year_of_birth,
            pr.c.sex,
            pt.c.primary_type,
            pt.c.net_grade,
            pt.c.ki67_pct,
            pt.c.ras_status,
            pt.c.braf_status,
        )
        .join(p, (p.c.patient_id == t.c.patient_id) & (p.c.procedure_id == t.c.procedure_id))
        .join(le, (le.c.patient_id == t.c.patient_id) & (le.c.lesion_id == t.c.lesion_id))
        .join(pr, pr.c.patient_id == t.c.patient_id)
        .outerjoin(pt, pt.c.patient_id == t.c.patient_id)
        .order_by(t.c.patient_id, t.c.procedure_id, t.c.lesion_id)
    )
    if patient_id is not None:
        query = query.where(t.c.patient_id == patient_id)
    return query


def events(engine: Engine) -> pd.DataFrame:
    """All follow-up events: ``patient_id, lesion_id, event_type, event_date`` (datetime)."""
    e = models.FollowUpEvent.__table__
    query = select(e.c.patient_id, e.c.lesion_id, e.c.event_type, e.c.event_date)
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    frame["event_date"] = pd.to_datetime(frame["event_date"])
    return frame


def complications(engine: Engine) -> pd.DataFrame:
    """Complication counts per grading system and grade."""
    c = models.Complication.__table__
    query = select(c.c.grading_system, c.c.grade, func.count().label("count")).group_by(
        c.c.grading_system, c.c.grade
    )
    with engine.connect() as conn:
        return pd.read_sql(query, conn)


def complication_rows(engine: Engine) -> pd.DataFrame:
    """Every complication: ``patient_id, procedure_id, grading_system, grade``."""
    c = models.Complication.__table__
    query = select(c.c.patient_id, c.c.procedure_id, c.c.grading_system, c.c.grade)
    with engine.connect() as conn:
        return pd.read_sql(query, conn)


def table_counts(engine: Engine) -> dict[str, int]:
    """Number of rows in each registry table."""
    tables = {
        "patients": models.Patient,
        "lesions": models.Lesion,
        "procedures": models.Procedure,
        "lesion_treatments": models.LesionTreatment,
        "follow_up_events": models.FollowUpEvent,
        "complications": models.Complication,
        "imports": models.ImportBatch,
    }
    with engine.connect() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(m.__table__)).scalar_one()
            for name, m in tables.items()
        }


def patient_survival(treated: pd.DataFrame, follow_up: pd.DataFrame) -> pd.DataFrame:
    """Overall survival per patient from their first procedure.

    Returns
    -------
    pandas.DataFrame
        ``patient_id, months, died`` (1 death, 0 alive at the last contact =
        latest event of any kind); patients without follow-up are left out.
    """
    first = treated.groupby("patient_id")["procedure_date"].min().rename("start")
    death = follow_up[follow_up.event_type == "death"].groupby("patient_id")["event_date"].min()
    last = follow_up.groupby("patient_id")["event_date"].max()
    frame = pd.DataFrame({"start": first}).join(death.rename("death")).join(last.rename("last"))
    frame["died"] = frame["death"].notna().astype(int)
    end = frame["death"].fillna(frame["last"])
    frame["months"] = (end - frame["start"]).dt.days / DAYS_PER_MONTH
    frame = frame[frame["months"] > 0]
    return frame.reset_index()[["patient_id", "months", "died"]]


def time_to_event(treated: pd.DataFrame, follow_up: pd.DataFrame) -> pd.DataFrame:
    """Local tumour progression per lesion from its first treatment, death competing.

    Parameters
    ----------
    treated : pandas.DataFrame
        From :func:`treatments`.
    follow_up : pandas.DataFrame
        From :func:`events`.

    Returns
    -------
    pandas.DataFrame
        One row per lesion with ``patient_id, lesion_id, procedure_type, margin_mm,
        mam_mm, months`` (time from the index procedure), ``mam_uncertainty_mm``,
        ``mam_decisive`` and ``mam_bound`` when ``treated`` has them, and ``status``:
        1 local progression, 2 death without progression (competing), 0 censored
        at the last contact (latest event of any kind). Lesions with no follow-up
        after their procedure are left out (``months`` would be 0).
    """
    columns = [
        "patient_id",
        "lesion_id",
        "procedure_type",
        "procedure_date",
        "margin_mm",
        "mam_mm",
        "margin_status",
    ]
    columns += [c for c in ("mam_uncertainty_mm", "mam_decisive", "mam_bound") if c in treated]
    first = (
        treated.sort_values("procedure_date")
        .drop_duplicates(["patient_id", "lesion_id"], keep="first")
        .loc[:, columns]
    )
    # First progression after the index procedure; one found before it belongs to
    # an earlier episode (and must not hide a later one).
    ltp = (
        follow_up.loc[follow_up.event_type == "local_progression", ["patient_id", "lesion_id"]]
        .assign(ltp_date=follow_up["event_date"])
        .merge(first[["patient_id", "lesion_id", "procedure_date"]], on=["patient_id", "lesion_id"])
        .query("ltp_date > procedure_date")
        .groupby(["patient_id", "lesion_id"])["ltp_date"]
        .min()
    )
    death = (
        follow_up[follow_up.event_type == "death"].groupby("patient_id")["event_date"].min()
    ).rename("death_date")
    last = follow_up.groupby("patient_id")["event_date"].max().rename("last_date")
    frame = first.join(ltp, on=["patient_id", "lesion_id"]).join(death, on="patient_id")
    frame = frame.join(last, on="patient_id")
    is_ltp = frame.ltp_date.notna() & (
        frame.death_date.isna() | (frame.ltp_date <= frame.death_date)
    )
    is_death = ~is_ltp & frame.death_date.notna()
    end = frame.last_date.where(~is_death, frame.death_date).where(~is_ltp, frame.ltp_date)
    frame["status"] = np.select([is_ltp, is_death], [1, 2], 0)
    frame["months"] = (end - frame.procedure_date).dt.days / DAYS_PER_MONTH
    frame = frame[frame.months > 0].copy()
    return frame.drop(columns=["ltp_date", "death_date", "last_date"]).reset_index(drop=True)
