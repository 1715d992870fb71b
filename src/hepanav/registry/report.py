"""The audit report: HTML with tables and figures, plus ``audit.json``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from hepanav.core.atomic import write_json
from hepanav.core.report import figure_to_data_uri, new_figure, write_html
from hepanav.registry.audit import build_audit, wilson
from hepanav.registry.schema import AuditReport
from hepanav.registry.vocabulary import GRADES

SYSTEM_TITLES = {
    "clavien_dindo": "Clavien-Dindo (surgery)",
    "cirse": "CIRSE (interventional)",
    "ctcae": "CTCAE v5 (embolisation toxicity)",
}


def _rates_figure(audit: AuditReport) -> str | None:
    rows = audit.rates_by_year
    if not rows:
        return None
    fig, ax = new_figure(figsize=(6.5, 3.2))
    years = [r.stratum for r in rows]
    for offset, unit, colour in ((-0.15, "lesion", "#1f77b4"), (0.15, "patient", "#e08a00")):
        k = np.array([getattr(r, f"{unit}s_r0") for r in rows])
        n = np.array([getattr(r, f"{unit}s") for r in rows])
        rate = k / np.maximum(n, 1)
        low, high = wilson(k, np.maximum(n, 1))
        x = np.arange(len(rows)) + offset
        ax.errorbar(
            x,
            100 * rate,
            yerr=100 * np.clip([rate - low, high - rate], 0, None),
            fmt="o",
            color=colour,
            capsize=3,
            label=f"per {unit}",
        )
    ax.set_xticks(np.arange(len(rows)), years)
    ax.set_ylabel("R0 rate (%)")
    ax.set_xlabel("year of procedure")
    ax.set_ylim(top=101)
    ax.legend(loc="lower right")
    ax.set_title("Negative-margin (R0) rate per year, Wilson 95% CI")
    return figure_to_data_uri(fig)


def _margin_figure(treated: pd.DataFrame) -> str | None:
    res = treated.loc[treated.procedure_type == "resection", "margin_mm"].dropna()
    abl = treated.loc[treated.procedure_type == "ablation", "mam_mm"].dropna()
    if res.empty and abl.empty:
        return None
    fig, axes = new_figure(1, 2, figsize=(9, 3.2))
    if not res.empty:
        axes[0].hist(res, bins=np.arange(0, max(res.max(), 1) + 1, 1.0), color="#1f77b4")
        axes[0].axvline(1.0, color="#c62828", ls="--", label="R0 threshold 1 mm")
        axes[0].legend()
    axes[0].set(title="Resection margin", xlabel="margin (mm)", ylabel="lesions")
    if not abl.empty:
        axes[1].hist(abl, bins=np.arange(np.floor(abl.min()), abl.max() + 1, 1.0), color="#2ca02c")
        for x in (0.0, 5.0, 10.0):
            axes[1].axvline(x, color="#c62828" if x == 0 else "#777", ls="--")
    axes[1].set(title="Ablation: minimal ablative margin", xlabel="MAM (mm)", ylabel="lesions")
    return figure_to_data_uri(fig)


def _incidence_figure(audit: AuditReport) -> str | None:
    inc = audit.incidence
    if inc is None:
        return None
    fig, ax = new_figure(figsize=(6.5, 3.6))
    for curve, label, style in (
        (inc.cif_ltp, "LTP, Aalen-Johansen (death competing)", dict(color="#1f77b4")),
        (inc.cif_death, "death before LTP, Aalen-Johansen", dict(color="#555")),
        (
            inc.one_minus_km_ltp,
            "1 - Kaplan-Meier (wrong: death censored)",
            dict(color="#c62828", ls="--"),
        ),
    ):
        ax.step(
            [p.months for p in curve],
            [100 * p.value for p in curve],
            where="post",
            label=label,
            **style,
        )
    ax.set(
        xlabel="months from procedure",
        ylabel="cumulative incidence (%)",
        title="Local tumour progression per lesion",
    )
    ax.legend(fontsize=8)
    return figure_to_data_uri(fig)


def _survival_figure(audit: AuditReport) -> str | None:
    os_ = audit.overall_survival
    if os_ is None:
        return None
    fig, ax = new_figure(figsize=(6.5, 3.2))
    ax.step([p.months for p in os_.km], [100 * p.value for p in os_.km], where="post")
    ax.set(
        xlabel="months from first procedure",
        ylabel="alive (%)",
        ylim=(0, 101),
        title="Overall survival per patient (Kaplan-Meier)",
    )
    return figure_to_data_uri(fig)


def _complication_figure(audit: AuditReport) -> str | None:
    if not audit.complications:
        return None
    systems = sorted({c.grading_system for c in audit.complications})
    fig, axes = new_figure(1, len(systems), figsize=(4 * len(systems), 3), squeeze=False)
    for ax, system in zip(axes[0], systems, strict=True):
        counts = {c.grade: c.count for c in audit.complications if c.grading_system == system}
        grades = list(GRADES[system])
        ax.bar(grades, [counts.get(g, 0) for g in grades], color="#8c564b")
        ax.set(title=SYSTEM_TITLES[system], xlabel="grade", ylabel="complications")
    return figure_to_data_uri(fig)


def audit_tables(audit: AuditReport) -> dict[str, pd.DataFrame]:
    """Every table of the audit as a DataFrame (one XLSX sheet each)."""

    def frame(items) -> pd.DataFrame:
        return pd.DataFrame([i.model_dump() for i in items])

    tables = {
        "counts": pd.DataFrame([audit.counts]),
        "flow": frame(audit.flow),
        "r0_by_procedure": frame(audit.rates_by_procedure_type),
        "r0_by_year": frame(audit.rates_by_year),
        "complications": frame(audit.complications),
        "complication_rates": frame(audit.complication_rates),
        "completeness": frame(audit.completeness),
        "at_risk": pd.DataFrame(
            [
                {"curve": a.curve, **dict(zip(map(str, a.months), a.at_risk, strict=True))}
                for a in audit.at_risk
            ]
        ),
        "patients": frame(audit.patients),
        "lesions": frame(audit.lesions),
    }
    if audit.outcomes and audit.outcomes.ablation:
        a = audit.outcomes.ablation
        tables["ablation_endpoints"] = pd.DataFrame(
            [
                {"endpoint": name, **getattr(a, name).model_dump()}
                for name in (
                    "technical_success",
                    "primary_technique_efficacy",
                    "secondary_technique_efficacy",
                )
            ]
        )
        ltp = pd.DataFrame([g.model_dump(exclude={"curve"}) for g in a.ltp_by_margin_category])
        # No ablated lesion with follow-up yet (the state after the first import): an empty
        # table, not a KeyError on the absent columns.
        nested = [c for c in ("at_months", "not_estimable", "numbers_at_risk") if c in ltp]
        tables["ltp_by_mam_category"] = ltp.astype(dict.fromkeys(nested, str))

        def cox_row(m) -> dict:
            return {
                "model": m.model,
                "estimable": m.estimable,
                "reason": m.reason,
                "n": m.n,
                "events": m.events,
                "hazard_ratio": m.terms[0].hazard_ratio if m.terms else None,
            }

        rows = [
            {"model": "Gray's test, LTP by MAM category", **a.gray_test.model_dump()},
            cox_row(a.cox_ltp_on_mam),
        ]
        sa = a.sensitivity_excluding_not_decisive
        if sa is not None:
            gray = sa.gray_test.model_dump()
            rows.append(
                {
                    "model": f"Gray's test, LTP by MAM category, {sa.excluded_not_decisive} "
                    "NOT decisive MAMs excluded",
                    **gray,
                }
            )
            rows.append(cox_row(sa.cox_ltp_on_mam))
        if a.cox_ltp_on_mam_excluding_bounds is not None:
            rows.append(cox_row(a.cox_ltp_on_mam_excluding_bounds))
        tables["models"] = pd.DataFrame(rows)
        # The audit's Cox on MAM is the outcomes' one: each analysis once.
        seen = {d.analysis for d in audit.mam_decisiveness}
        more = [d for d in a.mam_decisiveness if d.analysis not in seen]
        tables["mam_decisiveness"] = frame([*audit.mam_decisiveness, *more])
    elif audit.mam_decisiveness:
        tables["mam_decisiveness"] = frame(audit.mam_decisiveness)
    return {k: v for k, v in tables.items() if len(v.columns)}


def write_audit_report(engine: Engine, out: str | Path) -> tuple[Path, Path]:
    """Build the audit and write ``out/audit.html``, ``out/audit.json`` and ``out/audit.xlsx``.

    Returns
    -------
    (Path, Path)
        The HTML report and the JSON file.
    """
    out = Path(out)
    frames: dict[str, pd.DataFrame] = {}
    audit = build_audit(engine, frames)
    json_path = write_json(out / "audit.json", audit)
    from hepanav.registry.exporter import write_xlsx_tables

    write_xlsx_tables(audit_tables(audit), out / "audit.xlsx")
    figures = {
        "rates": _rates_figure(audit),
        "margins": _margin_figure(frames["treatments"]),
        "incidence": _incidence_figure(audit),
        "survival": _survival_figure(audit),
        "complications": _complication_figure(audit),
    }
    html_path = write_html(
        out / "audit.html",
        "hepanav.registry",
        "audit.html.j2",
        title="Registry audit",
        audit=audit,
        figures=figures,
    )
    return html_path, json_path
