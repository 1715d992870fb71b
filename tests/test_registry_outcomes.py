"""Issue 15: outcomes by procedure against hand-computed values; Gray's test."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hepanav.registry import dataset
from hepanav.registry.competing import gray_test
from hepanav.registry.importer import import_file
from hepanav.registry.outcomes import outcomes_by_procedure
from registry_helpers import sqlite_registry, write_csv  # noqa: F401

D = "2020-01-01"


def _abl(p, lesion, cat, mam, ts, complete, proc="A1", date=D):
    return {
        "patient_id": p,
        "lesion_id": lesion,
        "procedure_id": proc,
        "procedure_type": "ablation",
        "procedure_date": date,
        "margin_category": cat,
        "mam_mm": mam,
        "technical_success": ts,
        "complete_at_first_follow_up": complete,
    }


def _res(p, lesion, margin, status):
    return {
        "patient_id": p,
        "lesion_id": lesion,
        "procedure_id": "S1",
        "procedure_type": "resection",
        "procedure_date": D,
        "margin_mm": margin,
        "margin_status": status,
    }


OUTCOMES = [
    _abl("PA", "L1", "0-5mm", 2.0, "true", "true"),
    _abl("PA", "L2", "5-10mm", 6.0, "true", "true"),
    _abl("PB", "L1", "0-5mm", 1.0, "true", "false"),
    _abl("PB", "L1", "0-5mm", 4.0, "true", "true", proc="A2", date="2020-03-01"),  # repeat
    _abl("PC", "L1", "5-10mm", 7.0, "false", "true"),
    _abl("PC", "L2", "0-5mm", 3.0, "true", "true"),
    _abl("PD", "L1", "5-10mm", 8.0, "", ""),
    _res("PE", "L1", 2.0, "R0"),
    _res("PE", "L2", 0.5, "R1"),
    _res("PF", "L1", 3.0, "R0"),
]
EVENTS = [
    ("PA", "L1", "local_progression", "2020-07-01"),  # 182 d
    ("PA", "", "last_contact", "2021-07-01"),
    ("PB", "", "death", "2020-10-01"),  # 274 d, before any LTP of PB/L1
    ("PC", "L2", "local_progression", "2021-01-01"),  # 366 d = 12.02 months
    ("PC", "", "last_contact", "2022-01-01"),
    ("PD", "", "last_contact", "2021-01-01"),
    ("PE", "L2", "local_progression", "2021-01-01"),
    ("PE", "", "last_contact", "2021-06-01"),
    ("PF", "", "last_contact", "2021-06-01"),
]


@pytest.fixture()
def hand_registry(sqlite_registry, tmp_path):
    url, engine = sqlite_registry
    import_file(engine, write_csv(tmp_path / "o.csv", OUTCOMES))
    events = pd.DataFrame(EVENTS, columns=["patient_id", "lesion_id", "event_type", "event_date"])
    import_file(engine, write_csv(tmp_path / "e.csv", events), "events")
    return url, engine


def test_ablation_endpoints_and_ltp_by_category_match_hand_counts(hand_registry):
    _, engine = hand_registry
    result = outcomes_by_procedure(dataset.treatments(engine), dataset.events(engine))
    a = result.ablation
    assert (a.n_lesions, a.n_patients) == (6, 4)  # PB/L1's repeat ablation is the same lesion
    ts = a.technical_success
    assert (ts.numerator, ts.denominator, ts.missing) == (4, 5, 1)  # PC/L1 no, PD missing
    pe = a.primary_technique_efficacy
    assert (pe.numerator, pe.denominator, pe.missing) == (4, 5, 1)  # PB/L1 incomplete at first
    se = a.secondary_technique_efficacy
    assert (se.numerator, se.denominator, se.missing) == (5, 5, 1)  # PB/L1 complete after repeat
    by = {g.group: g for g in a.ltp_by_margin_category}
    low, high = by["0-5mm"], by["5-10mm"]
    # 0-5 mm: LTP at 5.98 months (1/3), death at 9.0 (CIF stays 1/3), LTP of the last
    # lesion at risk at 12.02 months: CIF = 1/3 + (1/3)(1/1) = 2/3.
    assert (low.n_lesions, low.events, low.deaths_first) == (3, 2, 1)
    assert low.at_months["12"] == pytest.approx(1 / 3) and low.at_months["24"] == pytest.approx(
        2 / 3
    )
    assert low.numbers_at_risk == {"0": 3, "6": 2, "12": 1, "24": 0, "36": 0}
    assert (high.n_lesions, high.events) == (3, 0) and high.at_months["24"] == 0.0
    # 5-10 mm followed 17.97, 24.02 and 12.02 months.
    assert high.numbers_at_risk == {"0": 3, "6": 3, "12": 3, "24": 1, "36": 0}
    assert a.gray_test.estimable and a.gray_test.events == 2 and a.gray_test.n == 6
    assert 0 < a.gray_test.p_value < 1
    cox = a.cox_ltp_on_mam
    assert not cox.estimable and "2 events, fewer than 10" in cox.reason and cox.terms == []
    r = result.resection
    assert (r.r0_per_lesion.numerator, r.r0_per_lesion.denominator) == (2, 3)
    assert (r.r0_per_patient.numerator, r.r0_per_patient.denominator) == (1, 2)
    assert r.margin_recurrence.events == 1 and r.margin_recurrence.n_lesions == 3


def test_stats_ablation_and_margins_by_category_through_the_cli(cli, hand_registry, tmp_path):
    url, _ = hand_registry
    code, out, err = cli("stats", "ablation", "--out", tmp_path / "a", "--db", url)
    assert code == 0, err
    assert "technical success: 4/5 (80.0%), 1 not recorded" in out
    assert "secondary technique efficacy: 5/5 (100.0%)" in out
    assert "Cox LTP on MAM (n = 6, 2 events): not estimable" in out
    saved = json.loads((tmp_path / "a" / "ablation.json").read_text())
    assert saved["resection"]["r0_per_patient"]["numerator"] == 1
    code, out, err = cli(
        "stats",
        "margins",
        "--procedure-type",
        "ablation",
        "--group-by",
        "margin_category",
        "--out",
        tmp_path / "m",
        "--db",
        url,
    )
    assert code == 0, err
    assert "margin_category=0-5mm: 2/3 lesions with LTP" in out
    saved = json.loads((tmp_path / "m" / "margins.json").read_text())
    assert saved["procedure_type"] == "ablation" and len(saved["groups"]) == 2


def _simulate(rng, n, rate1=(0.1, 0.1), rate2=0.05):
    g = rng.integers(0, 2, n)
    t1 = rng.exponential(1 / np.where(g == 1, rate1[1], rate1[0]))
    t2 = rng.exponential(1 / rate2, n)
    c = rng.uniform(0, 30, n)
    t = np.minimum.reduce([t1, t2, c])
    status = np.select([t1 == t, t2 == t], [1, 2], 0)
    return t, status, g


def test_gray_test_without_competing_events_agrees_with_the_log_rank_test():
    """With one cause the subdistribution is the ordinary distribution and Gray's test
    and the log-rank test estimate the same quantity (Gray 1988, Section 2)."""
    from lifelines.statistics import multivariate_logrank_test

    rng = np.random.default_rng(0)
    n = 300
    g = rng.integers(0, 3, n)
    t = rng.exponential(1 / np.choose(g, [0.10, 0.12, 0.16]))
    c = rng.uniform(0, 20, n)
    times, status = np.minimum(t, c), (t <= c).astype(int)
    gray = gray_test(times, status, g)
    logrank = multivariate_logrank_test(times, g, status)
    assert gray.df == 2
    assert gray.statistic == pytest.approx(logrank.test_statistic, rel=0.03)
    assert sum(gray.scores) == pytest.approx(0.0, abs=1e-9)  # scores sum to zero


def test_gray_test_holds_its_size_and_detects_a_difference():
    rng = np.random.default_rng(1)
    null = [gray_test(*_simulate(rng, 80)).p_value for _ in range(200)]
    assert 0.02 <= np.mean(np.array(null) < 0.05) <= 0.09
    alt = gray_test(*_simulate(rng, 400, rate1=(0.05, 0.15)))
    assert alt.p_value < 1e-4


def test_ltp_and_survival_past_the_follow_up_are_not_estimable(cli, sqlite_registry, tmp_path):
    """4 ablated lesions, 1 LTP at 60 days, all followed 179 days (5.9 months).

    The old code carried the last curve value forward: CIF 25% at 12 and 24 months
    and survival 100% at 1, 3 and 5 years, with no one at risk after 6 months.
    """
    url, engine = sqlite_registry
    rows = [_abl(f"P{k}", "L1", "0-5mm", 2.0, "true", "true") for k in range(1, 5)]
    import_file(engine, write_csv(tmp_path / "o.csv", rows))
    events = [("P1", "L1", "local_progression", "2020-03-01")] + [
        (f"P{k}", "", "last_contact", "2020-06-28") for k in range(1, 5)
    ]
    frame = pd.DataFrame(events, columns=["patient_id", "lesion_id", "event_type", "event_date"])
    import_file(engine, write_csv(tmp_path / "e.csv", frame), "events")
    ends = "not estimable (follow-up ends at 5.9 months)"

    code, out, err = cli("stats", "ablation", "--out", tmp_path / "a", "--db", url)
    assert code == 0, err
    assert f"LTP, MAM 0-5mm: 1/4 lesions; CIF 12 months {ends}, 24 months {ends}" in out
    group = json.loads((tmp_path / "a" / "ablation.json").read_text())["ablation"][
        "ltp_by_margin_category"
    ][0]
    assert group["numbers_at_risk"]["6"] == 0
    assert group["at_months"] == {"12": None, "24": None}
    assert group["not_estimable"] == {"12": ends, "24": ends}

    code, _, err = cli("registry", "report", "--out", tmp_path / "r", "--db", url)
    assert code == 0, err
    audit = json.loads((tmp_path / "r" / "audit.json").read_text())
    assert audit["incidence"]["at_months"] == {"12": None, "24": None}
    assert audit["overall_survival"]["at_months"] == {"12": None, "36": None, "60": None}
    assert audit["overall_survival"]["not_estimable"]["60"] == ends
    html = (tmp_path / "r" / "audit.html").read_text()
    assert f"Survival at 1 year: {ends}; at 3 years: {ends}; at 5 years: {ends}" in html
    assert f"at 12 months: {ends}; at 24 months: {ends}" in html
    assert "25.0%" not in html and "100.0%" not in html.split("Overall survival")[1][:600]
