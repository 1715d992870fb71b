"""HTML reports of a plan and of a placement check (toolkit figures, Jinja2 pages).

The plan report leads with what the operator needs (summary with tumour size, per
needle the skin entry, angles, depths, energy and time, and the views along each
needle); the optimiser's internals sit in an appendix. An infeasible plan draws no
trajectory: it shows where tumour + margin stays uncovered and says what blocks it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hepanav.core.report import figure_to_data_uri, new_figure, write_html
from hepanav.imaging.figures import CATEGORICAL, needle_colour
from hepanav.planning.schema import PlacementResult
from hepanav.planning.views import needle_figure, overview_figure, placement_figure


def robustness_view(out) -> str:
    """Histogram of tumour + margin coverage under lateral placement error."""
    fig, ax = new_figure(figsize=(6, 3.4))
    ax.hist(100 * out.mc_target, bins=30, color=CATEGORICAL[0])
    ax.axvline(
        100 * out.result.rules.coverage_goal, color="k", ls="--", lw=1, label="coverage goal"
    )
    ax.set_xlabel("tumour + margin covered (%)")
    ax.set_ylabel("Monte Carlo draws")
    ax.legend(fontsize=8)
    ax.set_title(f"lateral placement error SD {out.result.placement_error_sd_mm:g} mm per axis")
    return figure_to_data_uri(fig)


def write_plan_report(out, risk, path: str | Path) -> Path:
    """Write ``report.html`` for a plan (``out`` from :func:`hepanav.planning.planner.plan`)."""
    res = out.result
    overview = overview_figure(out, risk, infeasible=not res.feasible)
    needles = []
    if res.feasible:
        needles = [
            (n.needle, needle_colour(k), needle_figure(out, risk, k))
            for k, n in enumerate(res.needles)
        ]
    robustness = robustness_view(out) if res.feasible and res.needles else None
    return write_html(
        path,
        "hepanav.planning",
        "plan.html.j2",
        title="Ablation plan",
        plan=res,
        overview=overview,
        needle_figures=needles,
        robustness=robustness,
        guides={g.needle: g for g in res.guides},
        reasons=_reasons(res.message),
    )


def _reasons(message: str) -> list[str]:
    """The 'rejected: a; b; c' part of an infeasible plan's message as a list."""
    if "rejected:" not in message:
        return []
    tail = message.split("rejected:", 1)[1].split(" WARNING:", 1)[0]
    return [part.strip().rstrip(".") for part in tail.split(";") if part.strip()]


def error_view(result: PlacementResult) -> str | None:
    """Bar chart of the target positioning error of each matched needle (mm)."""
    rows = [e for e in result.errors if e.planned_needle is not None and e.lateral_mm is not None]
    if not rows:
        return None
    fig, ax = new_figure(figsize=(7, 3.4))
    x = np.arange(len(rows))
    for k, (field, label) in enumerate(
        (
            ("lateral_mm", "lateral"),
            ("longitudinal_mm", "longitudinal (+ deeper)"),
            ("euclidean_mm", "Euclidean"),
        )
    ):
        ax.bar(
            x + (k - 1) * 0.27,
            [getattr(e, field) for e in rows],
            width=0.27,
            label=label,
            color=CATEGORICAL[k],
        )
    ax.axhline(0, color="k", lw=0.8)
    for tol in (result.lateral_tolerance_mm, -result.depth_tolerance_mm, result.depth_tolerance_mm):
        ax.axhline(tol, color="#555", lw=0.8, ls=":")
    ax.set_xticks(x, [f"N{e.planned_needle}" for e in rows])
    ax.set_ylabel("tip error (mm)")
    ax.legend(fontsize=8)
    ax.set_title("target positioning error per needle (dotted: tolerances)")
    return figure_to_data_uri(fig)


def write_placement_report(
    result: PlacementResult,
    path: str | Path,
    *,
    plan=None,
    control_ct=None,
    detected: dict | None = None,
    tumour=None,
) -> Path:
    """Write the placement-verification report (views along each planned path when the
    plan and the control CT are given)."""
    views = []
    if plan is not None and control_ct is not None:
        order = {n.needle: k for k, n in enumerate(plan.needles)}
        for e in result.errors:
            if e.planned_needle is None:
                continue
            det = (detected or {}).get(e.planned_needle)
            views.append(
                (
                    e.planned_needle,
                    placement_figure(plan, control_ct, e, det, tumour, order[e.planned_needle]),
                )
            )
    return write_html(
        path,
        "hepanav.planning",
        "placement.html.j2",
        title="Needle placement verification",
        res=result,
        figure=error_view(result),
        views=views,
    )
