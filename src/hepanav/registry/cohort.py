"""Generated registry cohorts with known effects, for the demo, tests and benchmark.

Effects are known by construction:

* R0 per lesion: patients draw a latent R0 probability from a Beta distribution
  whose mean is the *marginal* R0 rate of their group (ICG or not) and whose
  intra-class correlation is ``icc``; lesions are Bernoulli draws from it. The
  marginal (population-averaged) log odds ratio that GEE estimates is therefore
  exactly ``logit(r0_icg) - logit(r0_no_icg)``.
* Local tumour progression: exponential cause-specific hazard
  ``rate * exp(ltp_log_hr_per_mm * margin)`` with ``rate`` =
  ``ltp_rate_per_month`` for ablation and ``ltp_rate_resection_per_month`` for
  resection (so the true Cox hazard ratio of ablation vs resection at equal
  margin is their ratio), margin = MAM for ablation and margin_mm for
  resection; death competes with a constant patient hazard; administrative
  censoring at ``study_end``.
* MAM certainty: every MAM has u = 0.75 mm and is NOT decisive when within u
  of 0 or 5 mm (``hepanav margin``'s rule), so its sensitivity analysis is known.

Default numbers and their sources: R0 98.6% with ICG vs 93.1% without
(meta-analysis, BMC Surg 2024, 598 patients); LTP hazard and its slope from
MSKCC 2-year LTP-free 26% at 0 mm vs 74% at 6-10 mm (Wang 2012: -ln(0.26)/24 =
0.056 per month; ln(0.0125/0.056)/8 mm = -0.19 per mm); MWA device NeuWave PR
65 W 10 min (domain brief). The resection baseline, ICC, death rate, case mix
and complication rates are illustrative assumptions, not literature values.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hepanav.registry.vocabulary import GRADES, SEGMENTS

DAYS_PER_MONTH = 30.4375
# The MAM uncertainty u of generated ablations (mm; illustrative, a typical
# margin.json u with a good registration).
MAM_UNCERTAINTY_MM = 0.75


@dataclass(frozen=True)
class CohortEffects:
    """The true effects a generated cohort is drawn from (rates are fractions)."""

    r0_icg: float = 0.986
    r0_no_icg: float = 0.931
    icc: float = 0.2
    ltp_rate_per_month: float = 0.056
    ltp_rate_resection_per_month: float = 0.008
    ltp_log_hr_per_mm: float = -0.19
    death_rate_per_month: float = 0.010
    resection_fraction: float = 0.6
    icg_fraction: float = 0.5
    mean_lesions: float = 2.2

    @property
    def log_odds_ratio_icg(self) -> float:
        """True marginal log odds ratio of R0, ICG vs no ICG."""
        logit = lambda p: np.log(p / (1 - p))  # noqa: E731
        return float(logit(self.r0_icg) - logit(self.r0_no_icg))


@dataclass
class Cohort:
    """Three template tables (DataFrames with the template columns)."""

    outcomes: pd.DataFrame
    events: pd.DataFrame
    complications: pd.DataFrame

    def write(self, folder: str | Path) -> dict[str, Path]:
        """Write ``outcomes.csv``, ``events.csv``, ``complications.csv``; return the paths."""
        from hepanav.core.atomic import atomic_path

        folder = Path(folder)
        paths = {}
        for kind in ("outcomes", "events", "complications"):
            with atomic_path(folder / f"{kind}.csv") as tmp:
                getattr(self, kind).to_csv(tmp, index=False)
            paths[kind] = folder / f"{kind}.csv"
        return paths


def _beta_params(mean: float, icc: float) -> tuple[float, float]:
    # Beta-Bernoulli: ICC = 1 / (a + b + 1)  =>  a + b = (1 - icc) / icc.
    total = (1.0 - icc) / icc
    return mean * total, (1.0 - mean) * total


def generate_cohort(
    n_patients: int,
    seed: int = 0,
    effects: CohortEffects = CohortEffects(),
    start: dt.date = dt.date(2018, 1, 1),
    study_end: dt.date = dt.date(2025, 6, 30),
) -> Cohort:
    """Draw a registry cohort with known R0 and LTP effects.

    Parameters
    ----------
    n_patients : int
        Number of patients; each has one procedure and 1 + Poisson lesions.
    seed : int
        Random seed (the same seed gives the same cohort).
    effects : CohortEffects
        True effects.
    start, study_end : datetime.date
        Procedures are uniform between ``start`` and one year before
        ``study_end``; follow-up is censored at ``study_end``.

    Returns
    -------
    Cohort
        ``outcomes`` (one row per lesion), ``events`` and ``complications``.
    """
    rng = np.random.default_rng(seed)
    n = n_patients
    pid = np.array([f"P{i:06d}" for i in range(n)])
    n_les = np.minimum(1 + rng.poisson(effects.mean_lesions - 1.0, n), 12)
    resection = rng.random(n) < effects.resection_fraction
    icg = resection & (rng.random(n) < effects.icg_fraction)
    span = (study_end - start).days - 365
    proc_day = rng.integers(0, span, n)
    primary = rng.choice(["CRC", "NET", "other"], n, p=[0.7, 0.2, 0.1])
    a_icg, b_icg = _beta_params(effects.r0_icg, effects.icc)
    a_no, b_no = _beta_params(effects.r0_no_icg, effects.icc)
    p_r0 = np.where(icg, rng.beta(a_icg, b_icg, n), rng.beta(a_no, b_no, n))

    # Lesion level (vectorised over all lesions).
    owner = np.repeat(np.arange(n), n_les)
    m = owner.size
    les_no = np.arange(m) - np.repeat(np.cumsum(n_les) - n_les, n_les) + 1
    is_res = resection[owner]
    r0 = rng.random(m) < p_r0[owner]
    margin = np.where(r0, 1.0 + rng.gamma(2.0, 2.5, m), rng.uniform(0.0, 0.95, m))
    vascular = ~r0 & (rng.random(m) < 0.3)
    margin = np.where(vascular, 0.0, margin).round(1)
    status = np.where(r0, "R0", np.where(vascular, "R1_vascular", "R1_parenchymal"))
    mam = np.clip(rng.normal(4.0, 3.0, m), -5.0, 15.0).round(1)
    category = np.select([mam < 0, mam < 5, mam < 10], ["incomplete", "0-5mm", "5-10mm"], ">=10mm")
    # Illustrative monotone link between MAM and shell coverage (not a model of ablation).
    coverage5 = (100.0 / (1.0 + np.exp(-(mam - 2.0)))).round(1)
    coverage6 = (100.0 / (1.0 + np.exp(-(mam - 3.0)))).round(1)
    # hepanav margin's rule with an illustrative u: NOT decisive within u of 0 or 5 mm.
    u = MAM_UNCERTAINTY_MM
    decisive = (np.abs(mam) > u) & (np.abs(mam - 5.0) > u)
    outcomes = pd.DataFrame(
        {
            "patient_id": pid[owner],
            "lesion_id": [f"L{k}" for k in les_no],
            "procedure_id": "S1",
            "procedure_type": np.where(is_res, "resection", "ablation"),
            "procedure_date": [
                (start + dt.timedelta(days=int(d))).isoformat() for d in proc_day[owner]
            ],
            "icg_used": np.where(is_res, np.where(icg[owner], "true", "false"), ""),
            "margin_mm": np.where(is_res, margin, np.nan),
            "margin_status": np.where(is_res, status, ""),
            "year_of_birth": (1940 + rng.integers(0, 36, n))[owner],
            "sex": rng.choice(["F", "M"], n)[owner],
            "primary_type": primary[owner],
            "segment": rng.choice(np.array(SEGMENTS[:4] + SEGMENTS[6:]), m),
            "size_mm": np.clip(rng.lognormal(np.log(20), 0.5, m), 3, 150).round(1),
            "depth_mm": rng.exponential(15.0, m).round(1),
            "approach": np.where(
                is_res, rng.choice(["laparoscopic", "open", "robotic"], n)[owner], "percutaneous"
            ),
            "ablation_device": np.where(is_res, "", "NeuWave PR"),
            "ablation_energy": np.where(is_res, "", "MWA"),
            "ablation_power_w": np.where(is_res, np.nan, 65.0),
            "ablation_time_min": np.where(is_res, np.nan, 10.0),
            "mam_mm": np.where(is_res, np.nan, mam),
            "shell_coverage_5mm_pct": np.where(is_res, np.nan, coverage5),
            "shell_coverage_6mm_pct": np.where(is_res, np.nan, coverage6),
            "margin_category": np.where(is_res, "", category),
            "mam_uncertainty_mm": np.where(is_res, np.nan, u),
            "mam_decisive": np.where(is_res, "", np.where(decisive, "true", "false")),
        }
    )

    # Follow-up: death competes with LTP; both censored at the end of the study.
    day0 = np.array([start.toordinal() + d for d in proc_day])
    end_months = (study_end.toordinal() - day0) / DAYS_PER_MONTH
    death_m = rng.exponential(1.0 / effects.death_rate_per_month, n)
    exit_m = np.minimum(death_m, end_months)
    lesion_margin = np.where(is_res, margin, mam)
    baseline = np.where(is_res, effects.ltp_rate_resection_per_month, effects.ltp_rate_per_month)
    hazard = baseline * np.exp(effects.ltp_log_hr_per_mm * lesion_margin)
    ltp_m = rng.exponential(1.0 / hazard)
    has_ltp = ltp_m < exit_m[owner]

    def date_of(months: np.ndarray, who: np.ndarray) -> list[str]:
        days = day0[who] + np.maximum(1, np.floor(months * DAYS_PER_MONTH)).astype(int)
        return [dt.date.fromordinal(int(d)).isoformat() for d in days]

    ltp_idx = np.flatnonzero(has_ltp)
    died = death_m < end_months
    events = pd.concat(
        [
            pd.DataFrame(
                {
                    "patient_id": pid[owner[ltp_idx]],
                    "lesion_id": outcomes["lesion_id"].to_numpy()[ltp_idx],
                    "event_type": "local_progression",
                    "event_date": date_of(ltp_m[ltp_idx], owner[ltp_idx]),
                }
            ),
            pd.DataFrame(
                {
                    "patient_id": pid,
                    "lesion_id": "",
                    "event_type": np.where(died, "death", "last_contact"),
                    "event_date": date_of(exit_m, np.arange(n)),
                }
            ),
        ],
        ignore_index=True,
    )

    # Complications: Clavien-Dindo after resection, CIRSE after ablation (illustrative).
    has_comp = rng.random(n) < np.where(resection, 0.25, 0.10)
    who = np.flatnonzero(has_comp)
    cd = rng.choice(GRADES["clavien_dindo"], who.size, p=[0.4, 0.35, 0.12, 0.07, 0.03, 0.01, 0.02])
    ci = rng.choice(GRADES["cirse"], who.size, p=[0.5, 0.3, 0.12, 0.05, 0.02, 0.01])
    complications = pd.DataFrame(
        {
            "patient_id": pid[who],
            "procedure_id": "S1",
            "grading_system": np.where(resection[who], "clavien_dindo", "cirse"),
            "grade": np.where(resection[who], cd, ci),
            "description": "",
        }
    )
    return Cohort(outcomes=outcomes, events=events, complications=complications)


def published_net_comparison() -> pd.DataFrame:
    """Outcomes template reproducing the NET ICG study (Surg Endosc 2022;36:4408).

    25 patients, 145 tumours: 102/102 R0 with ICG vs 38/43 (88.4%) without.
    The paper gives tumour counts only; how tumours are spread over patients
    (12 ICG patients, 13 without, the five R1 tumours in three patients) is an
    assumption that changes the patient-level figures but not the lesion counts.
    """
    rows = []

    def add(patients: range, n_tumours: int, icg: bool, r1: list[int]) -> None:
        per = np.array_split(np.arange(n_tumours), len(patients))
        for p, tumours in zip(patients, per, strict=True):
            for k, t in enumerate(tumours, start=1):
                bad = t in r1
                rows.append(
                    {
                        "patient_id": f"NET{p:02d}",
                        "lesion_id": f"T{k}",
                        "procedure_id": "OP1",
                        "procedure_type": "resection",
                        "procedure_date": f"{2016 + p % 5}-0{1 + p % 9}-15",
                        "icg_used": "true" if icg else "false",
                        "margin_mm": 0.5 if bad else 2.0 + (t % 7),
                        "margin_status": "R1_parenchymal" if bad else "R0",
                        "primary_type": "NET",
                    }
                )

    add(range(1, 13), 102, True, [])
    add(range(13, 26), 43, False, [0, 1, 4, 20, 21])
    return pd.DataFrame(rows)
