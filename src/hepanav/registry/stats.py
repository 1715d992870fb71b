"""Study statistics done right for clustered, sparse, competing-risk registry data.

* R0 rates per group, per lesion and per patient (a patient is R0 when all of
  their lesions are), with Wilson 95% intervals (statsmodels).
* Group comparison: Pearson chi-square only when every expected count is >= 5
  (Cochran's rule); otherwise Fisher's exact test (scipy.stats.fisher_exact;
  Freeman-Halton extension for more than two groups). The result says which
  test was used and why.
* Clustered per-lesion analysis: GEE logistic regression, exchangeable working
  correlation, Mancl-DeRouen bias-reduced covariance for few clusters
  (statsmodels ``cov_type="bias_reduced"``). A zero cell (complete separation:
  a group with no R1/R2 lesion, or no R0 lesion) makes the odds ratio infinite;
  then an exact test on patients is reported instead, and says so.
* Local tumour progression: Aalen-Johansen cumulative incidence with death as a
  competing risk (statsmodels), not 1 - Kaplan-Meier; Cox models of the
  cause-specific hazard with cluster-robust (sandwich) errors by patient.

Sources: domain brief "Registry terms"; NET ICG study Surg Endosc 2022;36:4408
(102/102 vs 38/43, Fisher p = 0.0019).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from hepanav.core.errors import InputError
from hepanav.registry.schema import (
    ClusteredResult,
    CoxModel,
    CoxTerm,
    CurvePoint,
    GeeTerm,
    GroupCount,
    GroupRate,
    IncidenceSummary,
    MarginsResult,
    SurvivalSummary,
    TestResult,
)

# Cochran (1954): the chi-square approximation needs every expected count >= 5.
MIN_EXPECTED_FOR_CHI_SQUARE = 5.0
MISSING_GROUP = "(missing)"
# At least 10 events per covariate in a regression model (Peduzzi et al., J Clin
# Epidemiol 1995;48:1503-1510 for Cox; 1996;49:1373-1379 for logistic models).
MIN_EVENTS_PER_COVARIATE = 10
FFH_RESAMPLES = 99_999


def group_labels(values: pd.Series) -> pd.Series:
    """Group values as strings (``True`` -> ``"yes"``); missing -> ``"(missing)"``."""

    def label(v):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            return MISSING_GROUP
        if isinstance(v, bool | np.bool_):
            return "yes" if v else "no"
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    return values.astype(object).map(label)


def lesion_outcomes(frame: pd.DataFrame, group_by: str) -> pd.DataFrame:
    """Lesion treatments with a margin status: ``patient_id, group, negative`` (0/1)."""
    if group_by not in frame.columns:
        raise InputError(f"unknown column {group_by!r}", "--group-by")
    data = frame[frame["negative"].notna()]
    return pd.DataFrame(
        {
            "patient_id": data["patient_id"].astype(str).to_numpy(),
            "group": group_labels(data[group_by]).to_numpy(),
            "negative": data["negative"].astype(int).to_numpy(),
        }
    )


def check_not_pooled(frame: pd.DataFrame, group_by: str) -> None:
    """Refuse R0 rates that would pool procedure types (docs: never pooled).

    Ablations have no R0/R1 (the import refuses it since 2026-12-01); a registry
    filled earlier may still hold one, which is refused here rather than counted.
    Margin statuses of two procedure types are compared only side by side
    (``--group-by procedure_type``) or one type at a time (``--procedure-type``).
    """
    if "procedure_type" not in frame:
        return
    with_status = frame.loc[frame["negative"].notna(), "procedure_type"]
    ablated = int((with_status == "ablation").sum())
    if ablated:
        raise InputError(
            f"{ablated} ablation row(s) carry a margin_status (ablations have no R0/R1; "
            "their margin is mam_mm); clear it with `registry update lesion_treatments ... "
            "--set margin_status=` or give --procedure-type resection",
            "--db",
        )
    types = sorted(set(with_status.dropna()))
    if len(types) > 1 and group_by != "procedure_type":
        raise InputError(
            f"margin statuses of {', '.join(types)} would be pooled into one R0 rate; "
            "give --procedure-type, or --group-by procedure_type to compare them",
            "--procedure-type",
        )


def patient_outcomes(lesions: pd.DataFrame) -> pd.DataFrame:
    """Per patient and group: negative (1) when all the patient's lesions are R0.

    A patient whose lesions fall in two groups (e.g. two procedures, one with
    ICG) counts once in each group.
    """
    return lesions.groupby(["patient_id", "group"], as_index=False)["negative"].min()


def count_groups(units: pd.DataFrame) -> list[GroupCount]:
    """Negative / positive counts per group of a table with ``group, negative``."""
    counts = []
    for group, values in units.groupby("group", sort=True)["negative"]:
        negative = int(values.sum())
        counts.append(
            GroupCount(
                group=str(group), n=len(values), negative=negative, positive=len(values) - negative
            )
        )
    return counts


def rates(counts: list[GroupCount]) -> list[GroupRate]:
    """R0 rate per group with the Wilson 95% interval (fractions)."""
    from statsmodels.stats.proportion import proportion_confint

    out = []
    for c in counts:
        low, high = proportion_confint(c.negative, c.n, alpha=0.05, method="wilson")
        out.append(
            GroupRate(group=c.group, rate=c.negative / c.n, ci_low=float(low), ci_high=float(high))
        )
    return out


def compare_counts(counts: list[GroupCount], exact: bool = False) -> TestResult:
    """Test equal R0 rates across groups; chi-square only when expected counts allow.

    Parameters
    ----------
    counts : list of GroupCount
        One entry per group (rows of the contingency table).
    exact : bool
        Always use Fisher's exact test (the separation fallback promises one).

    Returns
    -------
    TestResult
        ``fisher_exact`` (two-sided) when any expected count is below 5,
        ``chi_square`` (Pearson, no continuity correction) when all are >= 5,
        ``none`` with fewer than two groups or no variation in the outcome.
    """
    from scipy import stats

    table = np.array([[c.negative, c.positive] for c in counts], dtype=np.int64)
    listed = table.tolist()
    if len(counts) < 2:
        return TestResult(
            name="none", reason="fewer than two groups: nothing to compare", table=listed
        )
    column_totals = table.sum(axis=0)
    if (column_totals == 0).any():
        which = "R0" if column_totals[0] == 0 else "R1/R2"
        return TestResult(
            name="none",
            reason=f"no {which} outcome in any group: the rates are identical, p = 1",
            p_value=1.0,
            table=listed,
        )
    expected = stats.contingency.expected_freq(table)
    min_expected = float(expected.min())
    n_small = int((expected < MIN_EXPECTED_FOR_CHI_SQUARE).sum())
    if n_small == 0 and not exact:
        chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
        return TestResult(
            name="chi_square",
            reason=f"Pearson chi-square ({dof} df, no continuity correction): all expected "
            f"counts are >= {MIN_EXPECTED_FOR_CHI_SQUARE:g} (smallest {min_expected:.2f}), "
            "so the chi-square approximation holds (Cochran's rule)",
            statistic=float(chi2),
            p_value=float(p),
            min_expected=min_expected,
            table=listed,
        )
    exact_tables = False
    if table.shape == (2, 2):
        result = stats.fisher_exact(table)
        p_value = float(result.pvalue)
    else:
        p_value = freeman_halton_exact(table)
        exact_tables = p_value is not None
        if p_value is None:
            # Too many tables to enumerate: scipy's Monte Carlo estimate; a fixed
            # seed makes the report reproducible (MC standard error < 0.002).
            method = stats.MonteCarloMethod(n_resamples=FFH_RESAMPLES, rng=np.random.default_rng(0))
            result = stats.fisher_exact(table, method=method)
            # scipy returns a 1-element array for some small tables: take the scalar.
            p_value = float(np.ravel(result.pvalue)[0])
    why_not = (
        f"chi-square not used: {n_small} of {expected.size} expected counts are below "
        f"{MIN_EXPECTED_FOR_CHI_SQUARE:g} (smallest {min_expected:.2f}), where the "
        "chi-square approximation is unreliable (Cochran's rule)"
        if n_small
        else "an exact test was asked for"
    )
    if table.shape == (2, 2):
        name_text = "Fisher's exact test, two-sided"
        statistic = float(result.statistic)
    else:
        name_text = (
            "Fisher-Freeman-Halton test (exact, all tables with the observed margins)"
            if exact_tables
            else f"Fisher-Freeman-Halton test (Monte Carlo, {FFH_RESAMPLES} tables)"
        )
        statistic = None
    return TestResult(
        name="fisher_exact",
        reason=f"{name_text}: {why_not}",
        statistic=statistic if statistic is None or np.isfinite(statistic) else None,
        p_value=p_value,
        min_expected=min_expected,
        table=listed,
    )


def freeman_halton_exact(table: np.ndarray, max_tables: int = 200_000) -> float | None:
    """Exact Fisher-Freeman-Halton p-value of an r x 2 table, or None when too large.

    Enumerates every table with the observed row and column totals; each has the
    multivariate hypergeometric probability prod C(n_i, k_i) / C(N, K); the
    p-value sums the probabilities of the tables no more probable than the one
    observed (Freeman & Halton, Biometrika 1951;38:141-149).
    """
    from itertools import product

    from scipy.special import gammaln

    table = np.asarray(table, dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 2:
        return None
    sizes = table.sum(axis=1)
    if float(np.prod(sizes + 1.0)) > max_tables:
        return None
    total_k = int(table[:, 0].sum())

    def log_choose(n, k):
        return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)

    grids = np.array(list(product(*(range(int(n) + 1) for n in sizes))), dtype=np.int64)
    grids = grids[grids.sum(axis=1) == total_k]
    log_p = log_choose(sizes, grids).sum(axis=1) - log_choose(int(sizes.sum()), total_k)
    observed = log_choose(sizes, table[:, 0]).sum() - log_choose(int(sizes.sum()), total_k)
    # Relative tolerance for ties in probability (as R's fisher.test: 1e-7).
    keep = log_p <= observed + 1e-7
    return float(min(1.0, np.exp(log_p[keep]).sum()))


def separation(lesions: pd.DataFrame) -> str | None:
    """Describe complete separation (a group with only R0 or only R1/R2 lesions), else None."""
    parts = []
    for group, values in lesions.groupby("group", sort=True)["negative"]:
        if values.min() == values.max():
            outcome = "R1/R2" if values.iloc[0] == 1 else "R0"
            parts.append(f"group {group!r} has no {outcome} lesion")
    return "; ".join(parts) or None


def clustered_lesion_analysis(lesions: pd.DataFrame) -> ClusteredResult:
    """GEE logistic regression of R0 on group, lesions clustered within patients.

    Falls back to Fisher's exact test on patients (negative when all their
    lesions are) when a zero cell makes the GEE odds ratio infinite.

    Parameters
    ----------
    lesions : pandas.DataFrame
        ``patient_id, group, negative`` as from :func:`lesion_outcomes`.
    """
    n_lesions, n_patients = len(lesions), lesions["patient_id"].nunique()
    groups = sorted(lesions["group"].unique())
    n_negative = int(lesions["negative"].sum())
    n_events = min(n_negative, n_lesions - n_negative)
    base = {"n_lesions": n_lesions, "n_patients": n_patients, "n_events": n_events}
    if len(groups) < 2:
        return ClusteredResult(method="not_estimable", reason="fewer than two groups", **base)
    separated = separation(lesions)
    if separated:
        return _patient_fallback(
            lesions,
            f"complete separation ({separated}): the GEE odds ratio is infinite and its "
            "standard error meaningless",
            base,
        )
    lonely = [
        g for g, ids in lesions.groupby("group", sort=True)["patient_id"] if ids.nunique() < 2
    ]
    if lonely:
        return _patient_fallback(
            lesions,
            f"a single patient in group(s) {lonely}: a cluster-robust variance needs at "
            "least two patients per group",
            base,
        )
    needed = MIN_EVENTS_PER_COVARIATE * (len(groups) - 1)
    if n_events < needed:
        return _patient_fallback(
            lesions,
            f"fewer than {needed} events ({n_events} lesions in the rarer outcome; "
            f"{MIN_EVENTS_PER_COVARIATE} per group term, Peduzzi 1996)",
            base,
        )
    try:
        result = _gee(lesions, groups, base)
    except (np.linalg.LinAlgError, ValueError, ZeroDivisionError) as exc:
        return _patient_fallback(lesions, f"the GEE could not be fitted ({exc})", base)
    if not all(np.isfinite([t.log_odds_ratio, t.ci_low, t.ci_high]).all() for t in result.terms):
        return _patient_fallback(lesions, "the GEE gave no finite estimate", base)
    return result


def _patient_fallback(lesions: pd.DataFrame, why: str, base: dict) -> ClusteredResult:
    fallback = compare_counts(count_groups(patient_outcomes(lesions)), exact=True)
    return ClusteredResult(
        method="patient_level_exact_fallback",
        reason=f"GEE not estimable: {why}, so an exact test on patients (R0 when all "
        "their lesions are) is reported instead",
        p_value=fallback.p_value,
        fallback_test=fallback,
        **base,
    )


def _gee(lesions: pd.DataFrame, groups: list[str], base: dict) -> ClusteredResult:
    import statsmodels.api as sm
    from scipy import stats

    reference = "no" if "no" in groups else groups[0]
    others = [g for g in groups if g != reference]
    design = pd.DataFrame({"Intercept": 1.0}, index=lesions.index)
    for g in others:
        design[g] = (lesions["group"] == g).astype(float)
    model = sm.GEE(
        lesions["negative"].astype(float),
        design,
        groups=pd.factorize(lesions["patient_id"])[0],
        family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Exchangeable(),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter; checked just below
        result = model.fit(cov_type="bias_reduced", maxiter=100)
    if not result.converged:  # a finite but unconverged estimate is not a result
        raise ValueError("no convergence in 100 iterations")
    params, cov = np.asarray(result.params), np.asarray(result.cov_params())
    se = np.sqrt(np.diag(cov))
    z = stats.norm.ppf(0.975)
    terms = []
    for i, g in enumerate(others, start=1):
        terms.append(
            GeeTerm(
                term=g,
                log_odds_ratio=float(params[i]),
                odds_ratio=float(np.exp(params[i])),
                ci_low=float(np.exp(params[i] - z * se[i])),
                ci_high=float(np.exp(params[i] + z * se[i])),
                p_value=float(2 * stats.norm.sf(abs(params[i] / se[i]))),
            )
        )
    # Joint Wald test of all group terms (one term: the same as its own p-value).
    idx = np.arange(1, len(params))
    wald = float(params[idx] @ np.linalg.solve(cov[np.ix_(idx, idx)], params[idx]))
    p_value = float(stats.chi2.sf(wald, df=len(idx)))
    correlation = float(np.ravel(result.model.cov_struct.dep_params)[0])
    return ClusteredResult(
        method="gee",
        estimable=True,
        reason="GEE logistic regression (Binomial, exchangeable working correlation) with "
        "Mancl-DeRouen bias-reduced sandwich covariance, because lesions of one patient "
        "are not independent",
        reference_group=reference,
        terms=terms,
        working_correlation=correlation,
        p_value=p_value,
        **base,
    )


def margin_comparison(frame: pd.DataFrame, group_by: str, unit: str) -> MarginsResult:
    """R0 rates by ``group_by`` per lesion or per patient, with the right test.

    Parameters
    ----------
    frame : pandas.DataFrame
        From :func:`hepanav.registry.dataset.treatments` (or equivalent).
    group_by : str
        A column of ``frame``.
    unit : {"lesion", "patient"}
        Count lesions, or patients (negative when all their lesions are). Per
        lesion, the clustered GEE result (or its separation fallback) is added.
    """
    if unit not in ("lesion", "patient"):
        raise InputError(f"unit must be lesion or patient, not {unit!r}", "--unit")
    lesions = lesion_outcomes(frame, group_by)
    if lesions.empty:
        raise InputError("no lesion treatment with a margin_status in the registry", "--db")
    check_not_pooled(frame, group_by)
    units = lesions if unit == "lesion" else patient_outcomes(lesions)
    counts = count_groups(units)
    test = compare_counts(counts)
    return MarginsResult(
        group_by=group_by,
        unit=unit,
        counts=counts,
        rates=rates(counts),
        test=test,
        p_value=test.p_value,
        clustered=clustered_lesion_analysis(lesions) if unit == "lesion" else None,
    )


# ----------------------------------------------------------------------- time to event


def _curve(series: pd.Series, max_points: int = 400) -> list[CurvePoint]:
    """A step curve (index = months) thinned to at most ``max_points`` points for JSON."""
    series = series[~series.index.duplicated(keep="last")]
    if len(series) > max_points:
        keep = np.unique(np.linspace(0, len(series) - 1, max_points).round().astype(int))
        series = series.iloc[keep]
    return [CurvePoint(months=float(t), value=float(v)) for t, v in series.items()]


def cumulative_incidence(months: np.ndarray, status: np.ndarray, cause: int = 1) -> pd.Series:
    """Aalen-Johansen cumulative incidence of ``cause`` with the other cause competing.

    statsmodels' estimator handles tied times exactly (events of both causes on
    the same day, censoring on that day counted at risk), where lifelines'
    ``AalenJohansenFitter`` jitters tied event times at random and can then
    drop a lesion censored that day from the risk set before the event.

    Parameters
    ----------
    months : ndarray, shape (n,)
        Follow-up time of each lesion (months).
    status : ndarray of int, shape (n,)
        0 censored, 1 local progression, 2 death (competing).
    cause : int
        The event of interest.

    Returns
    -------
    pandas.Series
        Cumulative incidence (0-1) indexed by time (months), starting at 0.
    """
    from statsmodels.duration.survfunc import CumIncidenceRight

    months, status = np.asarray(months, float), np.asarray(status, int)
    times = np.unique(months)
    if (status == cause).any():
        with np.errstate(divide="ignore", invalid="ignore"):  # standard errors at the end
            fitted = CumIncidenceRight(months, status)
        times, values = fitted.times, fitted.cinc[cause - 1]
    else:
        values = np.zeros(len(times))
    if len(times) and times[0] > 0:  # the curve starts at 0 at time 0
        times, values = np.r_[0.0, times], np.r_[0.0, values]
    return pd.Series(values, index=times, name=f"CIF_{cause}")


def survival_summary(patients: pd.DataFrame) -> SurvivalSummary:
    """Kaplan-Meier overall survival (lifelines) of ``months, died`` per patient."""
    from lifelines import KaplanMeierFitter

    fitter = KaplanMeierFitter().fit(patients["months"], patients["died"])
    curve = fitter.survival_function_.iloc[:, 0]
    median = float(fitter.median_survival_time_)
    at, why = time_points(curve, patients["months"], patients["died"] == 0, (12, 36, 60), start=1.0)
    return SurvivalSummary(
        n_patients=len(patients),
        n_deaths=int(patients["died"].sum()),
        km=_curve(curve),
        at_months=at,
        not_estimable=why,
        follow_up_ends_months=float(patients["months"].max()),
        median_months=median if np.isfinite(median) else None,
    )


def one_minus_kaplan_meier(months: np.ndarray, status: np.ndarray, cause: int = 1) -> pd.Series:
    """1 - Kaplan-Meier for ``cause`` with competing events censored (biased upwards)."""
    from lifelines import KaplanMeierFitter

    fitter = KaplanMeierFitter().fit(np.asarray(months, float), np.asarray(status) == cause)
    return 1.0 - fitter.survival_function_.iloc[:, 0]


def _value_at(curve: pd.Series, t: float, start: float = 0.0) -> float:
    """The step curve's value at ``t`` (carried forward: callers check estimability)."""
    before = curve[curve.index <= t]
    return float(before.iloc[-1]) if len(before) else start


def time_points(
    curve: pd.Series,
    months: np.ndarray,
    censored: np.ndarray,
    at: tuple[int, ...],
    start: float = 0.0,
) -> tuple[dict[str, float | None], dict[str, str]]:
    """Curve values at the times ``at`` (months), null with a reason past the follow-up.

    A time point is estimable while some unit is still at risk (follow-up >= t).
    Past the longest follow-up the curve is unknown, so the value is ``None`` and
    the reason says "not estimable (follow-up ends at X months)" -- unless the
    curve is absorbed: no unit was censored at the longest time (every unit had an
    event by then), so the curve can no longer change (KM survival 0, CIF final).

    Returns
    -------
    values : dict
        ``{"12": 0.25, "24": None, ...}``.
    reasons : dict
        ``{"24": "not estimable (follow-up ends at 5.9 months)"}`` for each null.
    """
    months = np.asarray(months, float)
    censored = np.asarray(censored, bool)
    values: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    if len(months) == 0:
        for t in at:
            values[f"{t}"] = None
            reasons[f"{t}"] = "not estimable (no follow-up)"
        return values, reasons
    last = float(months.max())
    absorbed = not censored[months == last].any()
    for t in at:
        if t <= last or absorbed:
            values[f"{t}"] = _value_at(curve, t, start)
        else:
            values[f"{t}"] = None
            reasons[f"{t}"] = f"not estimable (follow-up ends at {last:.1f} months)"
    return values, reasons


def at_text(values: dict[str, float | None], reasons: dict[str, str], key: str) -> str:
    """``"12.5%"`` or the not-estimable reason, for command output."""
    value = values.get(key)
    return f"{value:.1%}" if value is not None else reasons.get(key, "not estimable")


def incidence_summary(tte: pd.DataFrame, excluded: int = 0) -> IncidenceSummary:
    """Cumulative incidence of LTP and of death first, and 1 - KM for contrast.

    Parameters
    ----------
    tte : pandas.DataFrame
        From :func:`hepanav.registry.dataset.time_to_event` (``months``, ``status``).
    excluded : int
        Lesions left out for lack of follow-up (reported).
    """
    months, status = tte["months"].to_numpy(), tte["status"].to_numpy()
    cif_ltp = cumulative_incidence(months, status, 1)
    cif_death = cumulative_incidence(months, status, 2)
    naive = one_minus_kaplan_meier(months, status, 1)
    at, why = time_points(cif_ltp, months, status == 0, (12, 24))
    return IncidenceSummary(
        n_lesions=len(tte),
        n_local_progression=int((status == 1).sum()),
        n_death_first=int((status == 2).sum()),
        n_censored=int((status == 0).sum()),
        excluded_without_follow_up=excluded,
        cif_ltp=_curve(cif_ltp),
        cif_death=_curve(cif_death),
        one_minus_km_ltp=_curve(naive),
        at_months=at,
        not_estimable=why,
        follow_up_ends_months=float(months.max()) if len(months) else None,
    )


def monotone_likelihood(months, event, x) -> str | None:
    """Whether a Cox partial likelihood in ``x`` is monotone (its estimate infinite).

    That happens when at every event time the subject with the event has the
    largest (or at every one the smallest) covariate value of its risk set,
    with at least one strict inequality (Bryson & Johnson, Biometrika
    1981;68:573-578). Returns "highest"/"lowest" or None.
    """
    months, event, x = (np.asarray(a, float) for a in (months, event, x))
    highest = lowest = True
    informative = False
    for i in np.flatnonzero(event > 0):
        at_risk = x[months >= months[i]]
        highest &= x[i] >= at_risk.max()
        lowest &= x[i] <= at_risk.min()
        informative |= at_risk.min() < at_risk.max()
        if not (highest or lowest):
            return None
    if not informative:
        return None
    return "highest" if highest else "lowest"


def cox_cluster_robust(
    tte: pd.DataFrame,
    covariates: list[str],
    cluster: str = "patient_id",
    model: str = "cause-specific Cox model of LTP (death censored)",
) -> CoxModel:
    """Cox model of the cause-specific hazard of LTP (death censored), robust by patient.

    Parameters
    ----------
    tte : pandas.DataFrame
        ``months``, ``status`` (1 = LTP), ``cluster`` and the ``covariates`` columns.
    covariates : list of str
        Numeric columns; rows with a missing covariate are dropped.
    cluster : str
        Column naming the patient (cluster-robust sandwich variance, lifelines
        ``cluster_col``).
    model : str
        Description stored in the result.

    Returns
    -------
    CoxModel
        n, patients and events always; hazard ratios with 95% intervals only when
        estimable (see :class:`~hepanav.registry.schema.CoxModel` for the rule).
    """
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError, ConvergenceWarning

    data = tte[[*covariates, "months", "status", cluster]].dropna().copy()
    data["ltp"] = (data.pop("status") == 1).astype(int)
    events = int(data["ltp"].sum())
    base = {
        "model": model,
        "n": len(data),
        "n_patients": int(data[cluster].nunique()),
        "events": events,
        "covariates": list(covariates),
    }

    def refuse(reason: str) -> CoxModel:
        return CoxModel(estimable=False, reason=f"not estimable: {reason}", **base)

    needed = MIN_EVENTS_PER_COVARIATE * len(covariates)
    if events < needed:
        return refuse(
            f"{events} events, fewer than {needed} ({MIN_EVENTS_PER_COVARIATE} per "
            "covariate, Peduzzi 1995)"
        )
    for c in covariates:
        values = data[c].unique()
        if len(values) < 2:
            return refuse(f"{c} does not vary")
        if len(values) == 2:
            per_level = data.groupby(c)[cluster].nunique()
            if (per_level < 2).any():
                return refuse(f"a single patient in a group of {c}")
        side = monotone_likelihood(data["months"], data["ltp"], data[c])
        if side is not None:
            return refuse(
                f"complete separation on {c}: every event has the {side} {c} of its risk "
                "set, so the hazard ratio is infinite (monotone likelihood)"
            )
    fitter = CoxPHFitter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", ConvergenceWarning)
            fitter.fit(data, duration_col="months", event_col="ltp", cluster_col=cluster)
    except (ConvergenceError, ConvergenceWarning, np.linalg.LinAlgError, ValueError) as exc:
        first = " ".join(str(exc).split())[:160]
        return refuse(f"the model did not converge ({first})")
    summary = fitter.summary
    numbers = summary[["coef", "se(coef)", "exp(coef) lower 95%", "exp(coef) upper 95%", "p"]]
    if not np.isfinite(numbers.to_numpy(float)).all():
        return refuse("non-finite estimate or standard error")
    terms = [
        CoxTerm(
            covariate=str(name),
            hazard_ratio=float(row["exp(coef)"]),
            ci_low=float(row["exp(coef) lower 95%"]),
            ci_high=float(row["exp(coef) upper 95%"]),
            p_value=float(row["p"]),
        )
        for name, row in summary.iterrows()
    ]
    return CoxModel(
        estimable=True,
        reason="Cox proportional hazards, Efron ties, cluster-robust (sandwich) variance by "
        "patient",
        terms=terms,
        **base,
    )
