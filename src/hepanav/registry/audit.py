"""The registry audit: R0 rates by procedure type and year, margins, LTP, complications."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from hepanav.registry import dataset, stats
from hepanav.registry.schema import AuditReport, ComplicationCount, RateRow

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
    incidence, cox, survival = None, None, None
    tte = pd.DataFrame()
    if not follow_up.empty and not treated.empty:
        patients = dataset.patient_survival(treated, follow_up)
        if len(patients):
            survival = stats.survival_summary(patients)
        tte = dataset.time_to_event(treated, follow_up)
        n_lesions = treated[["patient_id", "lesion_id"]].drop_duplicates().shape[0]
        if len(tte):
            incidence = stats.incidence_summary(tte, excluded=n_lesions - len(tte))
            # LTP after ablation by minimal ablative margin (per mm), the
            # relation the margin literature reports (Laimer 2025, Wang 2012).
            ablated = tte[(tte.procedure_type == "ablation") & tte.mam_mm.notna()]
            if len(ablated):
                cox = stats.cox_cluster_robust(ablated, ["mam_mm"])
    if frames is not None:
        frames.update(treatments=treated, tte=tte, complications=comp)
    return AuditReport(
        database=engine.dialect.name,
        counts=dataset.table_counts(engine),
        rates_by_procedure_type=rate_rows(treated, "procedure_type") if len(treated) else [],
        rates_by_year=rate_rows(treated, "procedure_year") if len(treated) else [],
        margin_mm_quantiles=_quantiles(resections["margin_mm"]),
        mam_mm_quantiles=_quantiles(treated.loc[treated.procedure_type == "ablation", "mam_mm"]),
        icg_comparison=icg,
        incidence=incidence,
        overall_survival=survival,
        cox_local_progression=cox,
        complications=[
            ComplicationCount(grading_system=r.grading_system, grade=r.grade, count=int(r.count))
            for r in comp.sort_values(["grading_system", "grade"]).itertuples()
        ],
    )


def wilson(k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wilson 95% interval of k/n (arrays), via statsmodels."""
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    return np.asarray(low), np.asarray(high)
