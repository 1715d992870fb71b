"""Issue 9, item 5: every model reports n and events, or "not estimable" with the reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hepanav.registry import stats


def _tte(months, status, x, patients=None):
    n = len(months)
    return pd.DataFrame(
        {
            "months": months,
            "status": status,
            "mam_mm": x,
            "patient_id": patients if patients is not None else [f"p{i}" for i in range(n)],
        }
    )


def test_cox_on_completely_separated_data_is_not_estimable():
    """Lesions with MAM < 0 progress in order of MAM, before any lesion with MAM >= 5 is censored:
    at each event the progressing lesion has the smallest MAM at risk, so the partial
    likelihood is monotone and the hazard ratio infinite (lifelines would print one)."""
    rng = np.random.default_rng(1)
    n = 40
    mam = np.r_[np.sort(rng.uniform(-5, -0.5, 20)), rng.uniform(5, 10, 20)]
    months = np.r_[np.arange(1, 21, dtype=float), np.full(20, 30.0)]
    status = np.r_[np.ones(20, int), np.zeros(20, int)]
    model = stats.cox_cluster_robust(
        _tte(months, status, mam, [f"p{i // 2}" for i in range(n)]), ["mam_mm"]
    )
    assert not model.estimable and model.terms == []
    assert "complete separation on mam_mm" in model.reason and "lowest" in model.reason
    assert (model.n, model.n_patients, model.events) == (40, 20, 20)
    assert stats.monotone_likelihood(months, status, mam) == "lowest"


def test_cox_on_two_lesions_is_not_estimable():
    model = stats.cox_cluster_robust(_tte([3.0, 8.0], [1, 0], [-1.0, 6.0]), ["mam_mm"])
    assert not model.estimable and model.terms == []
    assert "1 events, fewer than 10" in model.reason
    assert (model.n, model.events) == (2, 1)


def test_cox_with_a_single_patient_in_a_group_is_not_estimable():
    months = np.arange(1, 31, dtype=float)
    status = np.r_[np.ones(15, int), np.zeros(15, int)]
    group = np.zeros(30)
    group[[0, 20]] = 1.0  # both "exposed" lesions belong to patient p0
    patients = ["p0" if g else f"p{i + 1}" for i, g in enumerate(group)]
    model = stats.cox_cluster_robust(_tte(months, status, group, patients), ["mam_mm"])
    assert not model.estimable and "a single patient in a group of mam_mm" in model.reason


def test_an_estimable_cox_model_carries_n_and_events():
    rng = np.random.default_rng(3)
    n = 200
    mam = rng.uniform(-2, 10, n)
    t = rng.exponential(1 / (0.05 * np.exp(-0.2 * mam)))
    c = rng.uniform(5, 60, n)
    frame = _tte(np.minimum(t, c), (t <= c).astype(int), mam)
    model = stats.cox_cluster_robust(frame, ["mam_mm"])
    assert model.estimable and model.n == n and model.events == int((t <= c).sum())
    (term,) = model.terms
    assert term.ci_low < np.exp(-0.2) < term.ci_high


def test_gee_with_a_single_patient_in_a_group_falls_back_to_the_exact_test():
    lesions = pd.DataFrame(
        {
            "patient_id": ["a"] * 12 + [f"b{i}" for i in range(24)],
            "group": ["yes"] * 12 + ["no"] * 24,
            "negative": [1, 0] * 6 + [1, 0] * 12,
        }
    )
    result = stats.clustered_lesion_analysis(lesions)
    assert result.method == "patient_level_exact_fallback" and not result.estimable
    assert "single patient in group(s) ['yes']" in result.reason
    assert result.n_events == 18 and result.terms == []


def test_margins_by_approach_with_three_groups_and_five_units():
    """Was a TypeError (scipy's Monte Carlo returned an array); now the exact
    Freeman-Halton p-value, checked by hand: margins (1, 2, 2), 3 R0 of 5; tables
    (k_lap, k_open, k_rob) with probability C(1,a)C(2,b)C(2,c)/C(5,3): observed
    (0, 1, 2) has 2/10; (0,2,1) 2, (1,0,2) 1, (1,2,0) 1 are no more probable -> 6/10."""
    frame = pd.DataFrame(
        {
            "patient_id": ["P0", "P1", "P2", "P3", "P4"],
            "approach": ["open", "laparoscopic", "robotic", "open", "robotic"],
            "negative": [1.0, 0.0, 1.0, 0.0, 1.0],
        }
    )
    result = stats.margin_comparison(frame, "approach", "lesion")
    assert result.test.name == "fisher_exact" and "exact, all tables" in result.test.reason
    assert result.p_value == pytest.approx(0.6)
    assert result.clustered is not None and not result.clustered.estimable
    patient = stats.margin_comparison(frame, "approach", "patient")
    assert patient.p_value == pytest.approx(0.6)


def test_freeman_halton_exact_matches_fisher_on_2x2():
    from scipy.stats import fisher_exact

    table = np.array([[8, 2], [1, 5]])
    assert stats.freeman_halton_exact(table) == pytest.approx(fisher_exact(table).pvalue)


FOLLOW_UP_ENDS = "not estimable (follow-up ends at 5.9 months)"


def test_survival_past_the_last_follow_up_is_not_estimable():
    """5 patients, 1 death at 1 month, all others censored by 5.9 months: S(12) unknown."""
    patients = pd.DataFrame({"months": [1.0, 2.0, 3.0, 4.0, 5.9], "died": [1, 0, 0, 0, 0]})
    s = stats.survival_summary(patients)
    assert s.at_months == {"12": None, "36": None, "60": None}  # old code: 0.8 at all three
    assert s.not_estimable == {k: FOLLOW_UP_ENDS for k in ("12", "36", "60")}
    assert s.follow_up_ends_months == 5.9
    # Followed beyond 12 months: S(12) = 3/4 (one death of 4 at risk at 1 month).
    s = stats.survival_summary(pd.DataFrame({"months": [1.0, 13, 20, 30], "died": [1, 0, 0, 0]}))
    assert s.at_months == {"12": pytest.approx(0.75), "36": None, "60": None}
    assert s.not_estimable["36"] == "not estimable (follow-up ends at 30.0 months)"
    # Everybody died: the curve is 0 for good, so S(12) = 0 is known.
    s = stats.survival_summary(pd.DataFrame({"months": [1.0, 2.0], "died": [1, 1]}))
    assert s.at_months == {"12": 0.0, "36": 0.0, "60": 0.0} and s.not_estimable == {}


def test_cumulative_incidence_past_the_last_follow_up_is_not_estimable():
    """10 lesions, 1 LTP at 2 months, the rest censored by 5.9: CIF(12) unknown, not 10%."""
    months = [2.0, 3, 3, 4, 4, 5, 5, 5.5, 5.9, 5.9]
    status = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    tte = pd.DataFrame({"months": months, "status": status})
    i = stats.incidence_summary(tte)
    assert i.n_local_progression == 1
    assert i.at_months == {"12": None, "24": None}  # old code: 0.1 at both
    assert i.not_estimable == {"12": FOLLOW_UP_ENDS, "24": FOLLOW_UP_ENDS}
    # One lesion followed to 13 months: CIF(12) = 1/10, CIF(24) still unknown.
    i = stats.incidence_summary(tte.assign(months=months[:-1] + [13.0]))
    assert i.at_months == {"12": pytest.approx(0.1), "24": None}
    assert i.not_estimable == {"24": "not estimable (follow-up ends at 13.0 months)"}
