"""HTML report of a therapy evaluation: a verdict table, a figure, every rule with its source."""

from __future__ import annotations

from pathlib import Path

from hepanav.core.report import figure_to_data_uri, new_figure, write_html
from hepanav.therapy.schema import Case, TherapyReport

VERDICT_CLASS = {
    "indicated": "ok",
    "no_contraindication_found": "grey",  # grey, never green: nothing was shown to be indicated
    "relative_contraindication": "warn",
    "contraindicated": "bad",
    "insufficient_data": "warn",
}
_VERDICT_COLOUR = {  # Okabe-Ito, colour-blind safe
    "indicated": "#009E73",
    "no_contraindication_found": "#777777",
    "relative_contraindication": "#E69F00",
    "contraindicated": "#D55E00",
    "insufficient_data": "#0072B2",
}


def verdict_label(option) -> str:
    """The verdict in words, with the pending fields (``no contraindication found,
    pending: ecog``)."""
    text = option.verdict.replace("_", " ")
    if option.pending_fields and option.verdict in ("no_contraindication_found", "indicated"):
        text += ", pending: " + ", ".join(option.pending_fields)
    return text


def against(reason) -> bool:
    """True if this rule outcome speaks against the therapy."""
    if reason.effect == "requirement":
        return reason.outcome == "false"
    if reason.effect == "indication":
        return False
    return reason.outcome == "true"


def verdict_figure(report: TherapyReport) -> str:
    """Bar per therapy: rules against / clear / unknown, coloured by verdict; a data URI."""
    options = report.options[::-1]
    fig, ax = new_figure(figsize=(7.5, 0.45 * len(options) + 1.2))
    names = [o.therapy for o in options]
    counts = {"against": [], "clear": [], "unknown": []}
    for o in options:
        n_against = sum(against(r) for r in o.reasons)
        n_unknown = sum(r.outcome == "unknown" for r in o.reasons)
        counts["against"].append(n_against)
        counts["unknown"].append(n_unknown)
        counts["clear"].append(len(o.reasons) - n_against - n_unknown)
    left = [0] * len(options)
    styles = {"against": ("#D55E00", ""), "unknown": ("#BBBBBB", "//"), "clear": ("#56B4E9", "")}
    for key in ("against", "unknown", "clear"):
        colour, hatch = styles[key]
        ax.barh(names, counts[key], left=left, color=colour, hatch=hatch, label=f"rules {key}")
        left = [a + b for a, b in zip(left, counts[key], strict=True)]
    for y, o in enumerate(options):
        ax.text(
            left[y] + 0.15,
            y,
            o.verdict.replace("_", " "),
            va="center",
            color=_VERDICT_COLOUR[o.verdict],
            fontweight="bold",
        )
    ax.set_xlim(0, max(left, default=1) + 5)
    ax.set_xlabel("number of rules")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return figure_to_data_uri(fig)


def write_report(path: str | Path, case: Case, report: TherapyReport) -> Path:
    """Write ``therapy.html`` for ``case`` and its evaluated ``report``."""
    known = {k: v for k, v in case.model_dump(exclude={"lesions"}).items() if v is not None}
    return write_html(
        path,
        "hepanav.therapy",
        "therapy.html.j2",
        title=f"Liver-directed therapy options{f' - {case.case_id}' if case.case_id else ''}",
        report=report,
        case=case,
        known=known,
        figure=verdict_figure(report),
        verdict_class=VERDICT_CLASS,
        against=against,
        verdict_label=verdict_label,
    )
