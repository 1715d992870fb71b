"""The registry audit: R0 rates by procedure type and year, margins, LTP, complications."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from hepanav.registry import dataset, stats
from hepanav.registry.outcomes import (
    cox_on_mam,
    mam_decisiveness,
    mam_is_bound,
    not_decisive,
    outcomes_by_procedure,
)
from hepanav.registry.schema import AuditReport, ComplicationCount, DashboardReport, RateRow

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def rate_rows(frame: pd.DataFrame, column: str) -> list[RateRow]:
    """R0 rate per value of ``column``, per lesion and per patient (all lesions R0)."""
    lesions = stats.lesion_outcomes(frame, column)
    patients = stats.patient_outcomes(lesions)
    out = []
    for group in sorted(set(lesions["group"])):
        les = lesions.loc[lesions.group == group, "negative"]
        pat = patients.loc[patients.group == group, "negative"]
        out.append(
            RateRow(
                stratum=str(group),
                lesions=len(les),
                lesions_r0=int(les.sum()),
                lesion_rate=float(les.mean()) if len(les) else None,
                patients=len(pat),
                patients_r0=int(pat.sum()),
                patient_rate=float(pat.mean()) if len(pat) else None,
            )
        )
    return out


def _quantiles(values: pd.Series) -> dict[str, float]:
    values = values.dropna()
    if values.empty:
        return {}
    return {f"p{int(q * 100)}": float(values.quantile(q)) for q in QUANTILES}


def build_audit(engine: Engine, frames: dict[str, pd.DataFrame] | None = None) -> AuditReport:
    """Compute the audit figures of a registry.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        An open registry.
    frames : dict, optional
        Filled with the DataFrames used (``treatments``, ``tte``) for the figures.
    """
    treated = dataset.treatments(engine)
    follow_up = dataset.events(engine)
    comp = dataset.complications(engine)
    resections = treated[treated.procedure_type == "resection"]
    icg = None
    if resections["icg_used"].dropna().nunique() == 2:
        icg = stats.margin_comparison(resections[resections.icg_used.notna()], "icg_used", "lesion")
    incidence, cox, survival, cox_decisive, cox_unbounded = None, None, None, None, None
    ablation_rows = treated[treated.procedure_type == "ablation"]
    decisiveness = [mam_decisiveness(ablation_rows, "ablation MAM percentiles")]
    tte = pd.DataFrame()
    patients = pd.DataFrame(columns=["patient_id", "months", "died"])
    if not follow_up.empty and not treated.empty:
        patients = dataset.patient_survival(treated, follow_up)
        if len(patients):
            survival = stats.survival_summary(patients)
        tte = dataset.time_to_event(treated, follow_up)
        # LTP is an ablation endpoint (Ahmed 2014); resected lesions have their own
        # "recurrence at the margin" in the outcomes section: never pooled.
        ablated_lesions = treated.loc[
            treated.procedure_type == "ablation", ["patient_id", "lesion_id"]
        ].drop_duplicates()
        ablated_tte = tte[tte.procedure_type == "ablation"]
        if len(ablated_tte):
            incidence = stats.incidence_summary(
                ablated_tte, excluded=len(ablated_lesions) - len(ablated_tte)
            )
            # LTP after ablation by minimal ablative margin (per mm), the
            # relation the margin literature reports (Laimer 2025, Wang 2012).
            ablated = tte[(tte.procedure_type == "ablation") & tte.mam_mm.notna()]
            if len(ablated):
                cox = stats.cox_cluster_robust(ablated, ["mam_mm"])
                decisiveness.append(mam_decisiveness(ablated, "Cox LTP on MAM"))
                drop = not_decisive(ablated)
                if drop.any():
                    # Sensitivity analysis without the MAMs margin.json calls NOT decisive.
                    cox_decisive = stats.cox_cluster_robust(
                        ablated[~drop],
                        ["mam_mm"],
                        model="cause-specific Cox model of LTP on MAM, "
                        f"{int(drop.sum())} NOT decisive MAMs excluded",
                    )
                bound = mam_is_bound(ablated)
                if bound.any():
                    # Sensitivity analysis without the MAMs that are only bounds (a
                    # continuous covariate taken at its bound, not its value).
                    cox_unbounded = cox_on_mam(
                        ablated[~bound],
                        "cause-specific Cox model of LTP on MAM, "
                        f"{int(bound.sum())} MAM bounds excluded",
                    )
    if frames is not None:
        frames.update(treatments=treated, tte=tte, complications=comp)
    counts = dataset.table_counts(engine)
    raw_complications = dataset.complication_rows(engine)
    patient_list, lesion_list = listings(treated, tte, patients)
    curves = []
    if len(tte):
        for ptype in sorted(set(tte.procedure_type)):
            curves.append(
                at_risk(f"local progression, {ptype}", tte.months[tte.procedure_type == ptype])
            )
    if len(patients):
        curves.append(at_risk("overall survival", patients.months))
    return AuditReport(
        database=engine.dialect.name,
        counts=counts,
        rates_by_procedure_type=rate_rows(treated, "procedure_type") if len(treated) else [],
        rates_by_year=rate_rows(treated, "procedure_year") if len(treated) else [],
        margin_mm_quantiles=_quantiles(resections["margin_mm"]),
        mam_mm_quantiles=_quantiles(treated.loc[treated.procedure_type == "ablation", "mam_mm"]),
        icg_comparison=icg,
        incidence=incidence,
        overall_survival=survival,
        cox_local_progression=cox,
        mam_decisiveness=decisiveness,
        cox_local_progression_excluding_not_decisive=cox_decisive,
        cox_local_progression_excluding_mam_bounds=cox_unbounded,
        complications=[
            ComplicationCount(grading_system=r.grading_system, grade=r.grade, count=int(r.count))
            for r in comp.sort_values(["grading_system", "grade"]).itertuples()
        ],
        complication_rates=complication_rates(treated, raw_complications, follow_up)
        if len(treated)
        else [],
        flow=flow(treated, tte, counts) if len(treated) else [],
        completeness=completeness(treated) if len(treated) else [],
        follow_up=follow_up_time(patients),
        at_risk=curves,
        outcomes=outcomes_by_procedure(treated, follow_up) if len(treated) else None,
        patients=patient_list,
        lesions=lesion_list,
    )


def wilson(k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wilson 95% interval of k/n (arrays), via statsmodels."""
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    return np.asarray(low), np.asarray(high)


# ------------------------------------------------------------------ issue 15 audit parts

MAJOR = {
    # Clavien-Dindo >= IIIa (Dindo, Ann Surg 2004;240:205); CIRSE >= 3 (Filippiadis,
    # Cardiovasc Intervent Radiol 2017;40:1141).
    "clavien_dindo": {"IIIa", "IIIb", "IVa", "IVb", "V"},
    "cirse": {"3", "4", "5", "6"},
    "ctcae": {"3", "4", "5"},
}
MORTALITY_DAYS = 90
AT_RISK_MONTHS = [0, 6, 12, 24, 36, 60]


def _rate(k: int, n: int) -> float | None:
    return k / n if n else None


def complication_rates(
    treated: pd.DataFrame, complications: pd.DataFrame, follow_up: pd.DataFrame
) -> list:
    """Any and major complications and 90-day mortality per procedure type, with n."""
    from hepanav.registry.schema import ComplicationRate

    procedures = treated.drop_duplicates(["patient_id", "procedure_id"])[
        ["patient_id", "procedure_id", "procedure_type", "procedure_date"]
    ]
    comp = (
        complications.assign(
            major=[
                g in MAJOR.get(s, set())
                for s, g in zip(complications.grading_system, complications.grade, strict=True)
            ]
        )
        if len(complications)
        else complications.assign(major=[])
    )
    per = (
        comp.groupby(["patient_id", "procedure_id"])["major"].agg(["size", "max"])
        if len(comp)
        else None
    )
    death = follow_up[follow_up.event_type == "death"].groupby("patient_id")["event_date"].min()
    last = follow_up.groupby("patient_id")["event_date"].max()
    out = []
    for ptype, group in procedures.groupby("procedure_type", sort=True):
        keys = list(zip(group.patient_id, group.procedure_id, strict=True))
        with_any = with_major = 0
        if per is not None:
            found = per.reindex(pd.MultiIndex.from_tuples(keys))
            with_any = int(found["size"].notna().sum())
            with_major = int((found["max"] == True).sum())  # noqa: E712
        # Through plain dicts: mapping by an empty datetime Series (a registry without
        # deaths or follow-up) fails in pandas.
        done_on = pd.to_datetime(group.procedure_date)
        days_to_death = (pd.to_datetime(group.patient_id.map(death.to_dict())) - done_on).dt.days
        days_followed = (pd.to_datetime(group.patient_id.map(last.to_dict())) - done_on).dt.days
        died = days_to_death.notna() & (days_to_death <= MORTALITY_DAYS)
        evaluable = died | (days_followed >= MORTALITY_DAYS)
        n = len(group)
        out.append(
            ComplicationRate(
                procedure_type=str(ptype),
                procedures=n,
                with_any=with_any,
                any_rate=_rate(with_any, n),
                with_major=with_major,
                major_rate=_rate(with_major, n),
                deaths_90d=int(died.sum()),
                evaluable_90d=int(evaluable.sum()),
                mortality_90d=_rate(int(died.sum()), int(evaluable.sum())),
            )
        )
    return out


def completeness(treated: pd.DataFrame) -> list:
    """Per template field: filled cells among the rows where the field applies."""
    from hepanav.registry.margin_import import MARGIN_FIELDS
    from hepanav.registry.schema import Completeness, OutcomeRow

    ablation_only = {
        "ablation_device",
        "ablation_energy",
        "ablation_power_w",
        "ablation_time_min",
        *MARGIN_FIELDS,
        "n_applicators",
        "margin_confirmation",
        "technical_success",
        "complete_at_first_follow_up",
    }
    resection_only = {"margin_mm", "margin_status", "icg_used"}
    net_only = {"net_grade", "ki67_pct"}
    out = []
    for field in OutcomeRow.model_fields:
        if field not in treated or field == "mam_bound":
            # An empty mam_bound is a value (a measurement), not a missing datum.
            continue
        if field in ablation_only:
            rows, scope = treated[treated.procedure_type == "ablation"], "ablation"
        elif field in resection_only:
            rows, scope = treated[treated.procedure_type == "resection"], "resection"
        elif field in net_only:
            rows, scope = treated[treated.primary_type == "NET"], "NET primaries"
        else:
            rows, scope = treated, "all"
        values = rows[field]
        filled = int((values.notna() & (values.astype(str) != "")).sum())
        out.append(
            Completeness(
                field=field,
                applies_to=scope,
                filled=filled,
                rows=len(rows),
                percent=100.0 * filled / len(rows) if len(rows) else None,
            )
        )
    return out


def follow_up_time(patients: pd.DataFrame):
    """Median (IQR) follow-up by reverse Kaplan-Meier: censoring is the 'event', death
    censors (Schemper & Smith, Control Clin Trials 1996;17:343-346)."""
    from lifelines import KaplanMeierFitter

    from hepanav.registry.schema import FollowUp

    if patients.empty:
        return None
    fitter = KaplanMeierFitter().fit(patients["months"], 1 - patients["died"])
    curve = fitter.survival_function_.iloc[:, 0]

    def quantile(q: float) -> float | None:
        below = curve[curve <= 1 - q]
        return float(below.index[0]) if len(below) else None

    return FollowUp(
        n_patients=len(patients),
        median_months=quantile(0.5),
        q1_months=quantile(0.25),
        q3_months=quantile(0.75),
    )


def at_risk(name: str, months: pd.Series):
    from hepanav.registry.schema import AtRisk

    values = np.asarray(months, float)
    return AtRisk(
        curve=name,
        months=AT_RISK_MONTHS,
        at_risk=[int((values >= t).sum()) for t in AT_RISK_MONTHS],
    )


def flow(
    treated: pd.DataFrame, tte: pd.DataFrame, counts: dict[str, int], selection: str | None = None
) -> list:
    """STROBE-style flow of patients and lesions from the registry to each analysis.

    ``selection``: words for a filter applied to ``treated`` (e.g. "2024-01-01 to
    2024-12-31, ablation"); lesions outside it are then counted as left out by it.
    """
    from hepanav.registry.schema import FlowStep

    lesion_key = ["patient_id", "lesion_id"]
    steps = [
        FlowStep(
            step="in the registry",
            patients=counts.get("patients", 0),
            lesions=counts.get("lesions", 0),
        )
    ]
    with_treatment = treated.drop_duplicates(lesion_key)
    left_out = counts.get("lesions", 0) - len(with_treatment)
    steps.append(
        FlowStep(
            step="with a recorded treatment"
            + (f" in the selection ({selection})" if selection else ""),
            patients=int(with_treatment.patient_id.nunique()),
            lesions=len(with_treatment),
            excluded=f"{left_out} lesion(s) without treatment"
            + (" or outside the selection" if selection else ""),
        )
    )
    for ptype, group in with_treatment.groupby("procedure_type", sort=True):
        steps.append(
            FlowStep(
                step=f"first treated by {ptype}",
                patients=int(group.patient_id.nunique()),
                lesions=len(group),
            )
        )
        if ptype == "resection":
            known = group[group["negative"].notna()]
            steps.append(
                FlowStep(
                    step="resection: R0/R1 analysis",
                    patients=int(known.patient_id.nunique()),
                    lesions=len(known),
                    excluded=f"{len(group) - len(known)} lesion(s) without margin status",
                )
            )
        followed = tte[tte.procedure_type == ptype] if len(tte) else tte
        steps.append(
            FlowStep(
                step=f"{ptype}: local progression analysis",
                patients=int(followed.patient_id.nunique()) if len(followed) else 0,
                lesions=len(followed),
                excluded=f"{len(group) - len(followed)} lesion(s) without follow-up",
            )
        )
    return steps


def listings(treated: pd.DataFrame, tte: pd.DataFrame, survival: pd.DataFrame):
    """Per-patient and per-lesion listings (pseudonymous ids)."""
    from hepanav.registry.schema import LesionListing, PatientListing

    first = treated.sort_values("procedure_date").drop_duplicates(["patient_id", "lesion_id"])
    outcome = (
        tte.set_index(["patient_id", "lesion_id"])[["status", "months"]]
        if len(tte)
        else pd.DataFrame(columns=["status", "months"])
    )
    lesions = []
    for r in first.sort_values(["patient_id", "lesion_id"]).itertuples():
        key = (r.patient_id, r.lesion_id)
        status = outcome["status"].get(key) if key in outcome.index else None
        months = outcome["months"].get(key) if key in outcome.index else None
        lesions.append(
            LesionListing(
                patient_id=r.patient_id,
                lesion_id=r.lesion_id,
                procedure_type=r.procedure_type,
                margin_mm=_num(r.margin_mm),
                margin_status=_str(r.margin_status),
                mam_mm=_num(r.mam_mm),
                margin_category=_str(r.margin_category),
                mam_uncertainty_mm=_num(getattr(r, "mam_uncertainty_mm", None)),
                mam_decisive=_flag(getattr(r, "mam_decisive", None)),
                mam_bound=_str(getattr(r, "mam_bound", None)),
                ltp=status == 1,
                months=_num(months),
            )
        )
    surv = survival.set_index("patient_id") if len(survival) else None
    # LTP lesions per patient, counted once (a scan of every lesion per patient was
    # quadratic: 45,000 patients x 100,000 lesions took minutes in bench/bench_registry.py)
    ltp_per_patient = Counter(x.patient_id for x in lesions if x.ltp)
    patients = []
    for pid, group in treated.groupby("patient_id", sort=True):
        row = group.iloc[0]
        patients.append(
            PatientListing(
                patient_id=str(pid),
                sex=_str(row.sex),
                year_of_birth=None if pd.isna(row.year_of_birth) else int(row.year_of_birth),
                procedures=int(group.procedure_id.nunique()),
                procedure_types=", ".join(sorted(set(group.procedure_type))),
                lesions=int(group.lesion_id.nunique()),
                lesions_r0=int((group.drop_duplicates("lesion_id").negative == 1).sum()),
                lesions_with_ltp=ltp_per_patient.get(pid, 0),
                follow_up_months=_num(surv["months"].get(pid))
                if surv is not None and pid in surv.index
                else None,
                died=bool(surv["died"].get(pid))
                if surv is not None and pid in surv.index
                else False,
            )
        )
    return patients, lesions


def _num(v) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def _flag(v) -> bool | None:
    return None if v is None or pd.isna(v) else bool(v)


def _str(v) -> str | None:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) or v == "" else str(v)


def dashboard(
    engine: Engine,
    *,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    procedure_type: str | None = None,
    centre: str | None = None,
) -> DashboardReport:
    """The audit figures of the lesion treatments of a period, procedure type and centre.

    The same functions as :func:`build_audit` on the selected treatments: the flow
    (:func:`flow`), complication rates with their denominators per procedure type
    (:func:`complication_rates`), follow-up by reverse Kaplan-Meier
    (:func:`follow_up_time`), and the outcomes per procedure type
    (:func:`hepanav.registry.outcomes.outcomes_by_procedure`: R0 per lesion and per
    patient, technical success, LTP by margin category with death competing).
    Follow-up events are those of the selected patients.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        An open registry.
    date_from, date_to : datetime.date, optional
        Procedure dates, both inclusive.
    procedure_type, centre : str, optional
        Exact values of the registry's ``procedure_type`` and ``centre``.
    """
    treated = dataset.treatments(engine)
    types = sorted(treated.procedure_type.dropna().unique().tolist())
    centres = sorted(treated.centre.dropna().unique().tolist())
    words = []
    if date_from is not None:
        treated = treated[pd.to_datetime(treated.procedure_date) >= pd.Timestamp(date_from)]
    if date_to is not None:
        treated = treated[pd.to_datetime(treated.procedure_date) <= pd.Timestamp(date_to)]
    if date_from is not None or date_to is not None:
        words.append(f"{date_from or '...'} to {date_to or '...'}")
    if procedure_type:
        treated = treated[treated.procedure_type == procedure_type]
        words.append(procedure_type)
    if centre:
        treated = treated[treated.centre == centre]
        words.append(f"centre {centre}")
    follow_up = dataset.events(engine)
    follow_up = follow_up[follow_up.patient_id.isin(set(treated.patient_id))]
    tte = (
        dataset.time_to_event(treated, follow_up)
        if len(treated) and len(follow_up)
        else pd.DataFrame(columns=["patient_id", "lesion_id", "procedure_type"])
    )
    patients = (
        dataset.patient_survival(treated, follow_up)
        if len(treated) and len(follow_up)
        else pd.DataFrame(columns=["patient_id", "months", "died"])
    )
    counts = dataset.table_counts(engine)
    return DashboardReport(
        selection={
            "date_from": None if date_from is None else date_from.isoformat(),
            "date_to": None if date_to is None else date_to.isoformat(),
            "procedure_type": procedure_type or None,
            "centre": centre or None,
        },
        flow=flow(treated, tte, counts, ", ".join(words) or None) if len(treated) else [],
        complication_rates=complication_rates(treated, dataset.complication_rows(engine), follow_up)
        if len(treated)
        else [],
        follow_up=follow_up_time(patients),
        outcomes=outcomes_by_procedure(treated, follow_up),
        mam_mm_quantiles=_quantiles(treated.loc[treated.procedure_type == "ablation", "mam_mm"]),
        mam_decisiveness=mam_decisiveness(
            treated[treated.procedure_type == "ablation"], "ablation MAM percentiles"
        ),
        procedure_types=types,
        centres=centres,
    )
