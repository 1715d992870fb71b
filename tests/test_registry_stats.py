"""Statistics against ground truth: a published table, hand-computed curves, known effects."""

from __future__ import annotations

from math import comb

import numpy as np
import pandas as pd
import pytest

from hepanav.registry import dataset, stats
from hepanav.registry.cohort import CohortEffects, generate_cohort, published_net_comparison
from hepanav.registry.importer import import_file
from hepanav.registry.schema import GroupCount
from registry_helpers import db_url, postgres_server, registry, write_csv  # noqa: F401


def test_published_net_icg_comparison_from_a_registry(registry, tmp_path):
    """Surg Endosc 2022;36:4408: 102/102 vs 38/43 tumours, Fisher two-sided p = 0.0019."""
    _, engine = registry
    import_file(engine, write_csv(tmp_path / "net.csv", published_net_comparison()))
    result = stats.margin_comparison(dataset.treatments(engine), "icg_used", "lesion")
    counts = {c.group: (c.negative, c.n) for c in result.counts}
    assert counts == {"yes": (102, 102), "no": (38, 43)}
    assert result.test.name == "fisher_exact"
    assert result.p_value == pytest.approx(0.0019322, abs=5e-7)
    assert round(result.p_value, 3) == 0.002  # as published
    # Why not chi-square: expected R1 counts 102*5/145 = 3.52 and 43*5/145 = 1.48.
    assert result.test.min_expected == pytest.approx(43 * 5 / 145)
    assert "chi-square not used: 2 of 4 expected counts are below 5" in result.test.reason
    # Zero R1 tumours with ICG: complete separation -> exact test on patients.
    clustered = result.clustered
    assert clustered.method == "patient_level_exact_fallback"
    assert "complete separation" in clustered.reason and "'yes' has no R1/R2" in clustered.reason
    # By construction 12/12 ICG patients vs 10/13 without are R0 (3 carry the 5 R1 tumours);
    # hypergeometric two-sided p = (C(13,3) + C(12,3)) / C(25,3) = (286 + 220) / 2300.
    assert clustered.fallback_test.table == [[10, 3], [12, 0]]
    assert clustered.p_value == pytest.approx(506 / 2300)


def test_patient_unit_counts_a_patient_negative_only_when_all_lesions_are():
    frame = pd.DataFrame(
        {
            "patient_id": ["a", "a", "b", "c", "c"],
            "icg_used": [True, True, True, False, False],
            "negative": [1.0, 0.0, 1.0, 1.0, 1.0],
        }
    )
    per_patient = stats.margin_comparison(frame, "icg_used", "patient")
    assert {c.group: (c.negative, c.n) for c in per_patient.counts} == {
        "yes": (1, 2),
        "no": (1, 1),
    }
    per_lesion = stats.margin_comparison(frame, "icg_used", "lesion")
    assert {c.group: (c.negative, c.n) for c in per_lesion.counts} == {
        "yes": (2, 3),
        "no": (2, 2),
    }
    assert per_patient.clustered is None


def test_chi_square_only_when_all_expected_counts_reach_five():
    # 30/50 vs 20/50: expected 25 everywhere; Pearson X2 = 4 * 5**2 / 25 = 4.0, 1 df.
    big = stats.compare_counts(
        [
            GroupCount(group="a", n=50, negative=30, positive=20),
            GroupCount(group="b", n=50, negative=20, positive=30),
        ]
    )
    assert big.name == "chi_square"
    assert big.statistic == pytest.approx(4.0)
    assert big.p_value == pytest.approx(0.0455003, rel=1e-5)  # chi2(1).sf(4)
    assert "all expected counts are >= 5" in big.reason
    small = stats.compare_counts(
        [
            GroupCount(group="a", n=10, negative=9, positive=1),
            GroupCount(group="b", n=40, negative=30, positive=10),
        ]
    )
    assert small.name == "fisher_exact"
    assert "expected counts are below 5" in small.reason


def test_clustered_zero_cell_triggers_the_fallback():
    lesions = pd.DataFrame(
        {
            "patient_id": ["p1", "p1", "p2", "p3", "p3", "p4"],
            "group": ["yes", "yes", "yes", "no", "no", "no"],
            "negative": [1, 1, 1, 0, 1, 1],
        }
    )
    result = stats.clustered_lesion_analysis(lesions)
    assert result.method == "patient_level_exact_fallback"
    assert result.fallback_test.table == [[1, 1], [2, 0]]
    assert result.terms == []


def test_the_separation_fallback_is_exact_even_when_chi_square_would_be_allowed():
    # 30 patients per group, 2 lesions each; 10 patients without ICG have one R1 lesion.
    patients = [f"p{i}" for i in range(60)]
    lesions = pd.DataFrame(
        {
            "patient_id": np.repeat(patients, 2),
            "group": np.repeat(["yes"] * 30 + ["no"] * 30, 2),
            "negative": [0 if (i >= 30 + 20 and k == 0) else 1 for i in range(60) for k in (0, 1)],
        }
    )
    result = stats.clustered_lesion_analysis(lesions)
    assert result.method == "patient_level_exact_fallback"
    test = result.fallback_test
    assert test.table == [[20, 10], [30, 0]] and test.min_expected == pytest.approx(5.0)
    assert test.name == "fisher_exact" and "an exact test was asked for" in test.reason
    # Equal group sizes: two-sided p = 2 * P(all 10 R1 patients in one group).
    assert result.p_value == pytest.approx(2 * comb(30, 10) / comb(60, 10))


def test_a_gee_with_too_few_events_is_not_reported():
    """Four patients, no zero cell, but the exchangeable GEE oscillates (its working
    correlation leaves [-1, 1]): the exact patient-level test is reported instead."""
    lesions = pd.DataFrame(
        {
            "patient_id": list("aabbccdd"),
            "group": ["yes", "yes", "yes", "no", "no", "no", "no", "yes"],
            "negative": [1, 0, 1, 0, 1, 1, 0, 1],
        }
    )
    result = stats.clustered_lesion_analysis(lesions)
    assert result.method == "patient_level_exact_fallback"
    # 8 lesions, 3 R1/R2: fewer than 10 events, so the GEE is not even fitted.
    assert "fewer than 10 events" in result.reason and result.terms == []
    assert not result.estimable and result.n_events == 3
    # Patients (R0 when all their lesions in the group are): no = b 0, c 1, d 0;
    # yes = a 0, b 1, d 1. Fisher on [[1, 2], [2, 1]] (hypergeometric): p = 1.
    assert result.fallback_test.table == [[1, 2], [2, 1]]
    assert result.p_value == pytest.approx(1.0)


def _cohort_lesions(n_patients: int, seed: int, effects: CohortEffects) -> pd.DataFrame:
    frame = generate_cohort(n_patients, seed=seed, effects=effects).outcomes
    frame = frame.assign(
        negative=(frame["margin_status"] == "R0").astype(float),
        icg_used=frame["icg_used"] == "true",
    )
    return stats.lesion_outcomes(frame, "icg_used")


@pytest.mark.slow
def test_gee_recovers_a_known_marginal_effect():
    effects = CohortEffects(
        r0_icg=0.9, r0_no_icg=0.7, icc=0.3, resection_fraction=1.0, mean_lesions=3.0
    )
    true_or = np.exp(effects.log_odds_ratio_icg)  # (0.9/0.1) / (0.7/0.3) = 3.857
    result = stats.clustered_lesion_analysis(_cohort_lesions(400, 11, effects))
    assert result.method == "gee" and result.reference_group == "no"
    (term,) = result.terms
    assert term.ci_low < true_or < term.ci_high
    assert term.odds_ratio == pytest.approx(true_or, rel=0.35)
    assert result.working_correlation == pytest.approx(effects.icc, abs=0.15)
    # Coverage of the bias-reduced 95% interval over independent small cohorts.
    covered = []
    for seed in range(30):
        r = stats.clustered_lesion_analysis(_cohort_lesions(80, 100 + seed, effects))
        if r.method == "gee":
            covered.append(r.terms[0].ci_low < true_or < r.terms[0].ci_high)
    assert len(covered) >= 25
    assert np.mean(covered) >= 0.8


def test_aalen_johansen_matches_a_hand_computed_example(registry, tmp_path):
    """Five lesions; LTP at 10 d, death at 20 d, censored at 30 d, LTP at 40 d, censored 50 d.

    By hand: CIF(10) = 1/5 = 0.2; death at 20 removes a lesion at risk without
    changing the CIF (overall survival S = 4/5 * 3/4 = 0.6); censoring at 30 leaves
    two at risk; CIF(40) = 0.2 + 0.6 * 1/2 = 0.5. 1 - KM with death censored gives
    1 - (4/5)(1/2) = 0.6 instead: it overstates LTP under competing death.
    """
    _, engine = registry
    outcomes = [
        {
            "patient_id": p,
            "lesion_id": le,
            "procedure_id": "A1",
            "procedure_type": "ablation",
            "procedure_date": "2020-01-01",
            "mam_mm": 3.0,
        }
        for p, le in [("P1", "L1"), ("P2", "L1"), ("P3", "L1"), ("P4", "L1"), ("P4", "L2")]
    ]
    events = [
        ("P1", "L1", "local_progression", "2020-01-11"),
        ("P1", "", "last_contact", "2020-06-01"),
        ("P2", "", "death", "2020-01-21"),
        ("P3", "", "last_contact", "2020-01-31"),
        ("P4", "L1", "local_progression", "2020-02-10"),
        ("P4", "", "last_contact", "2020-02-20"),
    ]
    import_file(engine, write_csv(tmp_path / "o.csv", outcomes))
    events_frame = pd.DataFrame(
        events, columns=["patient_id", "lesion_id", "event_type", "event_date"]
    )
    import_file(engine, write_csv(tmp_path / "e.csv", events_frame), "events")
    tte = dataset.time_to_event(dataset.treatments(engine), dataset.events(engine))
    tte = tte.sort_values("months")
    days = (tte["months"] * dataset.DAYS_PER_MONTH).round().astype(int).tolist()
    assert days == [10, 20, 30, 40, 50]
    assert tte["status"].tolist() == [1, 2, 0, 1, 0]
    months, status = tte["months"].to_numpy(), tte["status"].to_numpy()
    cif = stats.cumulative_incidence(months, status, cause=1)
    at = lambda curve, d: stats._value_at(curve, d / dataset.DAYS_PER_MONTH)  # noqa: E731
    assert [at(cif, d) for d in (5, 10, 20, 35, 40, 60)] == pytest.approx(
        [0.0, 0.2, 0.2, 0.2, 0.5, 0.5]
    )
    death = stats.cumulative_incidence(months, status, cause=2)
    assert at(death, 20) == pytest.approx(0.2) and at(death, 60) == pytest.approx(0.2)
    naive = stats.one_minus_kaplan_meier(months, status, cause=1)
    assert at(naive, 40) == pytest.approx(0.6)


def test_aalen_johansen_handles_tied_times_exactly():
    """Registry dates tie: LTP and death on one day, two lesions censored that day.

    By hand: at t = 1, 6 at risk (the censored lesions count), 1 LTP and 1 death:
    CIF_LTP = 1/6, CIF_death = 1/6, S = 4/6; the 2 censored leave 2 at risk; LTP
    at t = 2: CIF_LTP = 1/6 + 4/6 * 1/2 = 1/2. Random tie-breaking (jitter) would
    move events off their day or drop the censored lesions from the risk set.
    """
    months = np.array([1.0, 1.0, 1.0, 1.0, 2.0, 3.0])
    status = np.array([1, 2, 0, 0, 1, 0])
    ltp = stats.cumulative_incidence(months, status, cause=1)
    death = stats.cumulative_incidence(months, status, cause=2)
    assert [stats._value_at(ltp, t) for t in (0.5, 1.0, 1.5, 2.0, 3.0)] == pytest.approx(
        [0.0, 1 / 6, 1 / 6, 1 / 2, 1 / 2]
    )
    assert [stats._value_at(death, t) for t in (1.0, 3.0)] == pytest.approx([1 / 6, 1 / 6])
    assert list(ltp.index) == [0.0, 1.0, 2.0, 3.0]
    none = stats.cumulative_incidence(months, np.array([1, 0, 0, 0, 1, 0]), cause=2)
    assert none.max() == 0.0


def test_progression_before_the_index_procedure_does_not_hide_a_later_one():
    treated = pd.DataFrame(
        {
            "patient_id": ["P1", "P1"],
            "lesion_id": ["L1", "L2"],
            "procedure_type": "ablation",
            "procedure_date": pd.to_datetime(["2020-01-01", "2020-01-01"]),
            "margin_mm": np.nan,
            "mam_mm": 2.0,
            "margin_status": None,
        }
    )
    events = pd.DataFrame(
        {
            "patient_id": ["P1", "P1", "P1"],
            "lesion_id": ["L1", "L1", None],
            "event_type": ["local_progression", "local_progression", "last_contact"],
            "event_date": pd.to_datetime(["2019-06-01", "2020-03-02", "2020-12-01"]),
        }
    )
    tte = dataset.time_to_event(treated, events)
    assert tte["status"].tolist() == [1, 0]  # L1 progressed after its ablation; L2 censored
    days = (tte["months"] * dataset.DAYS_PER_MONTH).round().astype(int).tolist()
    assert days == [61, 335]  # 2020-01-01 -> 2020-03-02 and -> 2020-12-01


def test_cox_recovers_known_hazard_ratios_with_cluster_robust_errors():
    effects = CohortEffects()
    cohort = generate_cohort(300, seed=5, effects=effects)
    frame = cohort.outcomes.assign(
        procedure_date=pd.to_datetime(cohort.outcomes["procedure_date"]),
        margin_mm=pd.to_numeric(cohort.outcomes["margin_mm"]),
        mam_mm=pd.to_numeric(cohort.outcomes["mam_mm"]),
    )
    events = cohort.events.assign(
        event_date=pd.to_datetime(cohort.events["event_date"]),
        lesion_id=cohort.events["lesion_id"].replace("", None),
    )
    tte = dataset.time_to_event(frame, events)
    tte["margin_any_mm"] = tte["mam_mm"].fillna(tte["margin_mm"])
    tte["ablation"] = (tte["procedure_type"] == "ablation").astype(float)
    model = stats.cox_cluster_robust(tte, ["margin_any_mm", "ablation"])
    assert model.estimable and model.n == len(tte) and model.events == int((tte.status == 1).sum())
    terms = {t.covariate: t for t in model.terms}
    margin, ablation = terms["margin_any_mm"], terms["ablation"]
    assert margin.ci_low < np.exp(effects.ltp_log_hr_per_mm) < margin.ci_high
    true_ablation_hr = effects.ltp_rate_per_month / effects.ltp_rate_resection_per_month
    assert ablation.ci_low < true_ablation_hr < ablation.ci_high


def test_overall_survival_matches_the_generating_death_rate():
    """Deaths are exponential with 0.010 per month: S(t) = exp(-0.01 t) (censoring aside)."""
    effects = CohortEffects()
    cohort = generate_cohort(2000, seed=21, effects=effects)
    treated = cohort.outcomes.assign(
        procedure_date=pd.to_datetime(cohort.outcomes["procedure_date"])
    )
    events = cohort.events.assign(event_date=pd.to_datetime(cohort.events["event_date"]))
    summary = stats.survival_summary(dataset.patient_survival(treated, events))
    assert summary.n_patients == 2000
    for months, value in summary.at_months.items():
        truth = np.exp(-effects.death_rate_per_month * float(months))
        assert value == pytest.approx(truth, abs=0.03), months
    assert summary.median_months == pytest.approx(
        np.log(2) / effects.death_rate_per_month, rel=0.15
    )


def test_more_than_two_sparse_groups_use_a_reproducible_freeman_halton_test():
    counts = [
        GroupCount(group=str(y), n=n, negative=n - k, positive=k)
        for y, n, k in [(2019, 60, 3), (2020, 101, 7), (2021, 85, 5), (2022, 54, 0)]
    ]
    first, again = stats.compare_counts(counts), stats.compare_counts(counts)
    assert first.name == "fisher_exact" and "Freeman-Halton" in first.reason
    assert first.p_value == again.p_value  # seeded Monte Carlo
    # All groups share nearly the same rate (95.0, 93.1, 94.1, 100%): no evidence of a
    # difference; the chi-square approximation would be invalid (expected R1 counts < 5).
    assert 0.2 < first.p_value < 0.8
    assert first.min_expected < 5


def test_docs_group_by_list_is_the_code_list():
    """docs/registry.md lists exactly the --group-by columns the code accepts."""
    import re
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "registry.md").read_text(encoding="utf-8")
    start = text.index("Allowed\n`--group-by` columns")
    sentence = text[start : text.index(".\n", start)].split(":", 1)[1]
    listed = re.findall(r"`([a-z0-9_]+)`", sentence)
    assert sorted(listed) == sorted(dataset.GROUP_COLUMNS)
    assert len(listed) == len(set(listed)) == 18
