"""Outcomes per procedure type, never pooled: ablation (Ahmed 2014) and resection.

Ablation endpoints follow the standardised terminology of Ahmed M, et al.
Image-guided tumor ablation: standardization of terminology and reporting
criteria - a 10-year update. Radiology 2014;273:241-260 (doi:10.1148/radiol.14132958):
technical success, primary and secondary technique efficacy, local tumour
progression (LTP) at the zone edge. LTP is reported as cumulative incidence with
death as a competing risk (Aalen-Johansen), by MAM category, compared with
Gray's test (:mod:`hepanav.registry.competing`); the clustered Cox model of
LTP on MAM follows the "not estimable" rule of :mod:`hepanav.registry.stats`.
Resection: R0 per lesion and per patient, recurrence at the margin.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hepanav.registry import dataset, stats
from hepanav.registry.schema import (
    AblationOutcomes,
    CoxModel,
    GrayTestResult,
    GroupIncidence,
    LtpComparison,
    MamDecisiveness,
    MamSensitivity,
    OutcomesByProcedure,
    Proportion,
    ResectionOutcomes,
)
from hepanav.registry.vocabulary import MARGIN_CATEGORIES

RISK_TABLE_MONTHS = (0, 6, 12, 24, 36)
MIN_GROUP_LESIONS = 2


def proportion(flags: pd.Series) -> Proportion:
    """True count of a boolean series (missing values counted apart) with Wilson 95% CI."""
    from statsmodels.stats.proportion import proportion_confint

    known = flags.dropna().astype(bool)
    k, n = int(known.sum()), len(known)
    missing = len(flags) - n
    if n == 0:
        return Proportion(
            numerator=0, denominator=0, rate=None, ci_low=None, ci_high=None, missing=missing
        )
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    return Proportion(
        numerator=k,
        denominator=n,
        rate=k / n,
        ci_low=float(low),
        ci_high=float(high),
        missing=missing,
    )


def numbers_at_risk(months: np.ndarray, at: tuple[int, ...] = RISK_TABLE_MONTHS) -> dict[str, int]:
    """Units still under follow-up (time >= t) at each time t (months)."""
    months = np.asarray(months, float)
    return {str(t): int((months >= t).sum()) for t in at}


def group_incidence(tte: pd.DataFrame, group: str) -> GroupIncidence:
    """CIF of LTP (death competing) of the lesions in ``tte`` (one group)."""
    months, status = tte["months"].to_numpy(), tte["status"].to_numpy()
    cif = stats.cumulative_incidence(months, status, 1) if len(tte) else pd.Series([0.0], [0.0])
    at, why = stats.time_points(cif, months, status == 0, (12, 24))
    return GroupIncidence(
        group=group,
        n_lesions=len(tte),
        n_patients=int(tte["patient_id"].nunique()) if len(tte) else 0,
        events=int((status == 1).sum()),
        deaths_first=int((status == 2).sum()),
        at_months=at,
        not_estimable=why,
        follow_up_ends_months=float(months.max()) if len(months) else None,
        curve=stats._curve(cif),
        numbers_at_risk=numbers_at_risk(months),
    )


def compare_incidence(
    tte: pd.DataFrame, column: str
) -> tuple[list[GroupIncidence], GrayTestResult]:
    """LTP by the values of ``column`` and Gray's test across the groups."""
    from hepanav.registry.competing import gray_test

    labels = stats.group_labels(tte[column]) if len(tte) else pd.Series([], dtype=object)
    order = [c for c in MARGIN_CATEGORIES if c in set(labels)] + sorted(
        set(labels) - set(MARGIN_CATEGORIES)
    )
    groups = [group_incidence(tte[labels == g], g) for g in order]
    usable = [g.group for g in groups if g.group != stats.MISSING_GROUP]
    # n and events count the same lesions: those with a value of ``column`` (the ones
    # the test compares); lesions without one are left out and said so in the reason.
    tested = labels.isin(usable).to_numpy() if len(tte) else np.zeros(0, bool)
    events = int((tte["status"].to_numpy()[tested] == 1).sum()) if len(tte) else 0
    base = {"n": int(tested.sum()), "events": events}
    missing = [g for g in groups if g.group == stats.MISSING_GROUP]
    left_out = (
        f"; {missing[0].n_lesions} lesion(s) ({missing[0].events} LTP) without {column} left out"
        if missing
        else ""
    )
    small = [g.group for g in groups if g.group in usable and g.n_lesions < MIN_GROUP_LESIONS]
    if len(usable) < 2:
        reason = "fewer than two groups with data"
    elif small:
        reason = f"fewer than {MIN_GROUP_LESIONS} lesions in group(s) {small}"
    elif events == 0:
        reason = "no local tumour progression in any group"
    else:
        reason = None
    if reason:
        return groups, GrayTestResult(
            estimable=False, reason=f"not estimable: {reason}{left_out}", **base
        )
    keep = tested
    try:
        result = gray_test(tte["months"][keep], tte["status"][keep], labels[keep], cause=1)
    except ValueError as exc:
        return groups, GrayTestResult(
            estimable=False, reason=f"not estimable: {exc}{left_out}", **base
        )
    return groups, GrayTestResult(
        estimable=True,
        reason=f"Gray's test (rho = 0), death as competing risk{left_out}",
        statistic=result.statistic,
        df=result.df,
        p_value=result.p_value,
        **base,
    )


def not_decisive(frame: pd.DataFrame) -> pd.Series:
    """True for rows whose MAM is known to be NOT decisive (``mam_decisive`` false)."""
    if "mam_decisive" not in frame or "mam_mm" not in frame:
        return pd.Series(False, index=frame.index)
    flag = frame["mam_decisive"].astype(object).map(lambda v: bool(pd.notna(v) and not v))
    return flag & frame["mam_mm"].notna()


def mam_is_bound(frame: pd.DataFrame) -> pd.Series:
    """True for rows whose MAM is only a bound of the true MAM (``mam_bound`` set)."""
    if "mam_bound" not in frame or "mam_mm" not in frame:
        return pd.Series(False, index=frame.index)
    return frame["mam_bound"].notna() & frame["mam_mm"].notna()


def mam_decisiveness(frame: pd.DataFrame, analysis: str) -> MamDecisiveness:
    """How many of the MAMs in ``frame`` are decisive, NOT decisive, or unknown.

    Also how many are only a lower, upper or unknown bound (``mam_bound``).
    """
    has_mam = frame["mam_mm"].notna() if "mam_mm" in frame else pd.Series(False, index=frame.index)
    bad = not_decisive(frame)
    if "mam_decisive" in frame:
        good = frame["mam_decisive"].astype(object).map(lambda v: bool(pd.notna(v) and v))
        good = good & has_mam
    else:
        good = pd.Series(False, index=frame.index)
    n_mam, n_good, n_bad = int(has_mam.sum()), int(good.sum()), int(bad.sum())
    bounds = frame.loc[mam_is_bound(frame), "mam_bound"] if "mam_bound" in frame else []
    kinds = pd.Series(bounds).value_counts()
    return MamDecisiveness(
        analysis=analysis,
        n_lesions=len(frame),
        n_mam=n_mam,
        decisive=n_good,
        not_decisive=n_bad,
        unknown=n_mam - n_good - n_bad,
        lower_bound=int(kinds.get("lower", 0)),
        upper_bound=int(kinds.get("upper", 0)),
        unknown_bound=int(kinds.get("unknown", 0)),
    )


def bounds_text(d: MamDecisiveness) -> str:
    """``"2 of 9 MAMs are only bounds (1 lower, 1 upper)"``, or "" when none is."""
    n = d.lower_bound + d.upper_bound + d.unknown_bound
    if not n:
        return ""
    parts = [
        f"{k} {word}"
        for k, word in (
            (d.lower_bound, "lower"),
            (d.upper_bound, "upper"),
            (d.unknown_bound, "of unknown direction"),
        )
        if k
    ]
    return f"{n} of {d.n_mam} MAMs are only bounds ({', '.join(parts)})"


COX_ON_MAM = "cause-specific Cox model of LTP on MAM (death censored)"


def cox_on_mam(tte: pd.DataFrame, model: str = COX_ON_MAM) -> CoxModel:
    """The clustered Cox model of LTP on MAM (per mm) of the lesions with a MAM."""
    data = tte[tte["mam_mm"].notna()] if len(tte) else tte
    if len(data):
        return stats.cox_cluster_robust(data, ["mam_mm"], model=model)
    return CoxModel(
        model=model,
        estimable=False,
        reason="not estimable: no ablated lesion with MAM and follow-up",
        n=0,
        n_patients=0,
        events=0,
        covariates=["mam_mm"],
    )


def _no_follow_up() -> tuple[list[GroupIncidence], GrayTestResult]:
    return [], GrayTestResult(estimable=False, reason="not estimable: no follow-up", n=0, events=0)


def _first_ablations(ablated: pd.DataFrame) -> pd.DataFrame:
    return ablated.sort_values("procedure_date").drop_duplicates(["patient_id", "lesion_id"])


def ablation_outcomes(treated: pd.DataFrame, follow_up: pd.DataFrame) -> AblationOutcomes | None:
    """Ahmed 2014 endpoints of the ablated lesions (see the module docstring)."""
    ablated = treated[treated.procedure_type == "ablation"]
    if ablated.empty:
        return None
    first = _first_ablations(ablated)
    primary = first["complete_at_first_follow_up"]
    # Secondary technique efficacy: complete after the first ablation or after any
    # repeat ablation of the same lesion.
    any_complete = ablated.groupby(["patient_id", "lesion_id"])["complete_at_first_follow_up"].agg(
        lambda v: True if (v == True).any() else (False if v.notna().any() else None)  # noqa: E712
    )
    tte = dataset.time_to_event(ablated, follow_up) if len(follow_up) else ablated.iloc[:0]
    if len(tte):
        tte = tte.merge(
            first[["patient_id", "lesion_id", "margin_category"]], on=["patient_id", "lesion_id"]
        )
    groups, gray = compare_incidence(tte, "margin_category") if len(tte) else _no_follow_up()
    cox = cox_on_mam(tte)
    decisiveness = [
        mam_decisiveness(tte, "LTP by margin category"),
        mam_decisiveness(tte[tte["mam_mm"].notna()] if len(tte) else tte, "Cox LTP on MAM"),
    ]
    sensitivity = None
    drop = not_decisive(tte) if len(tte) else pd.Series(dtype=bool)
    if drop.any():
        # Sensitivity analysis: a NOT decisive MAM may sit in the wrong category or
        # be off by more than the registry shows; the same statistics without them.
        kept = tte[~drop]
        kept_groups, kept_gray = (
            compare_incidence(kept, "margin_category") if len(kept) else _no_follow_up()
        )
        sensitivity = MamSensitivity(
            excluded_not_decisive=int(drop.sum()),
            ltp_by_margin_category=kept_groups,
            gray_test=kept_gray,
            cox_ltp_on_mam=cox_on_mam(kept, COX_ON_MAM + ", NOT decisive MAMs excluded"),
        )
    without_bounds = None
    bound = mam_is_bound(tte) if len(tte) else pd.Series(dtype=bool)
    if bound.any():
        # The Cox model takes the MAM as a continuous value; a bound is not that value
        # (the true MAM lies beyond it): the same model without them (sensitivity).
        without_bounds = cox_on_mam(
            tte[~bound], COX_ON_MAM + f", {int(bound.sum())} MAM bounds excluded"
        )
    return AblationOutcomes(
        n_lesions=len(first),
        n_patients=int(first["patient_id"].nunique()),
        technical_success=proportion(first["technical_success"]),
        primary_technique_efficacy=proportion(primary),
        secondary_technique_efficacy=proportion(any_complete),
        ltp_by_margin_category=groups,
        gray_test=gray,
        cox_ltp_on_mam=cox,
        mam_decisiveness=decisiveness,
        sensitivity_excluding_not_decisive=sensitivity,
        cox_ltp_on_mam_excluding_bounds=without_bounds,
    )


def resection_outcomes(treated: pd.DataFrame, follow_up: pd.DataFrame) -> ResectionOutcomes | None:
    """R0 per lesion and per patient; recurrence at the margin (LTP of a resected lesion)."""
    resected = treated[treated.procedure_type == "resection"]
    if resected.empty:
        return None
    lesions = resected[resected["negative"].notna()]
    per_patient = lesions.groupby("patient_id")["negative"].min()
    recurrence = None
    if len(follow_up):
        tte = dataset.time_to_event(resected, follow_up)
        if len(tte):
            recurrence = group_incidence(tte, "resection")
    return ResectionOutcomes(
        n_lesions=len(resected.drop_duplicates(["patient_id", "lesion_id"])),
        n_patients=int(resected["patient_id"].nunique()),
        r0_per_lesion=proportion(resected["negative"].map({1.0: True, 0.0: False})),
        r0_per_patient=proportion(per_patient.map({1.0: True, 0.0: False})),
        margin_recurrence=recurrence,
    )


def outcomes_by_procedure(treated: pd.DataFrame, follow_up: pd.DataFrame) -> OutcomesByProcedure:
    """Ablation and resection outcomes side by side (never pooled)."""
    return OutcomesByProcedure(
        ablation=ablation_outcomes(treated, follow_up),
        resection=resection_outcomes(treated, follow_up),
    )


def ltp_comparison(
    treated: pd.DataFrame, follow_up: pd.DataFrame, group_by: str, procedure_type: str
) -> LtpComparison:
    """LTP cumulative incidence by ``group_by`` within one procedure type, Gray's test."""
    tte = dataset.time_to_event(treated, follow_up) if len(follow_up) else treated.iloc[:0]
    if len(tte):
        extra = treated.drop_duplicates(["patient_id", "lesion_id"])[
            ["patient_id", "lesion_id", group_by]
        ]
        if group_by in tte.columns:
            tte = tte.drop(columns=[group_by])
        tte = tte.merge(extra, on=["patient_id", "lesion_id"])
        groups, gray = compare_incidence(tte, group_by)
    else:
        groups, gray = (
            [],
            GrayTestResult(
                estimable=False, reason="not estimable: no follow-up events", n=0, events=0
            ),
        )
    decisiveness = None
    if group_by == "margin_category":
        decisiveness = mam_decisiveness(tte, "LTP by margin category")
    return LtpComparison(
        procedure_type=procedure_type,
        group_by=group_by,
        groups=groups,
        gray_test=gray,
        mam_decisiveness=decisiveness,
    )
