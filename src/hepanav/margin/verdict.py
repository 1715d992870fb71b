"""The MAM verdict in words, one source for the terminal line and the web job page.

The verdict is the MAM with what bounds it (± u, the interval, or why there is none;
"at least"/"at most" when the image border makes it a bound), the category, and whether
it is decisive and, when not, why: first that the result is IMPLAUSIBLE when the zone is
the tumour itself (``zone_is_tumor``, :mod:`hepanav.margin.plausibility`). The HTML
report (margin.html.j2) says the same at length. Margins are written by
:func:`hepanav.core.report.format_margin`: a negative MAM never reads "0.0".
"""

from __future__ import annotations

from hepanav.core.report import format_margin, format_number
from hepanav.margin.plausibility import ZONE_IS_TUMOUR_VERDICT

BOUND_TERMINAL = {
    "lower": "LOWER BOUND: zone cut by the image border at the MAM point",
    "upper": "UPPER BOUND: part of the tumour outside the image",
    "unknown": "NO BOUND either way: tumour and zone cut by the image border",
}
_THRESHOLDS_MM = (0.0, 5.0)  # category limits the decision rule looks at


def mam_text(r) -> str:
    """'MAM 4.8 mm ± 1.0 mm', 'MAM 4.8 mm (no interval: automatic masks)' or, for a bound,
    'MAM at least 4.8 mm (LOWER BOUND: ...; true MAM 3.8 to 6.0 mm)'. ``r``: a
    :class:`~hepanav.margin.schema.MarginResult`."""
    return f"MAM {_value(r)}"


def _value(r) -> str:
    """:func:`mam_text` without the leading 'MAM '."""
    u = r.uncertainty
    bound = getattr(r, "min_margin_bound", None)
    prefix = {"lower": "at least ", "upper": "at most "}.get(bound, "")
    mam = f"{prefix}{format_margin(float(r.min_margin_mm))} mm"
    if bound is not None:
        mam += f" ({BOUND_TERMINAL[bound]}"
        if u.min_margin_interval_mm is not None:
            low, high = (format_margin(float(v)) for v in u.min_margin_interval_mm)
            mam += f"; true MAM {low} to {high} mm"
        return mam + ")"
    if u.min_margin_interval_mm is not None:
        return mam + f" ± {format_number(float(u.half_width_mm))} mm"
    return mam + " (no interval: automatic masks)"


def not_decisive_why(r) -> str | None:
    """Why the MAM is NOT decisive (one phrase), or None when it is decisive. A zone that
    is the tumour itself (``zone_is_tumor``) comes first: the result is then no
    measurement, whatever else holds."""
    u = r.uncertainty
    if getattr(r, "zone_is_tumor", False):
        return ZONE_IS_TUMOUR_VERDICT
    if u.decisive:
        return None
    if u.min_margin_interval_mm is None:
        return f"no interval: {u.interval_withheld_reason or u.rule}"
    low, high = (float(v) for v in u.min_margin_interval_mm)
    spanned = [t for t in _THRESHOLDS_MM if low <= t <= high]
    if spanned and getattr(r, "min_margin_bound", None) is None:
        which = " and ".join(f"{t:g} mm" for t in spanned)
        return (
            f"the interval {format_margin(low)} to {format_margin(high)} mm "
            f"(± {format_number(float(u.half_width_mm))} mm) includes {which}"
        )
    return u.rule


def verdict(r) -> dict:
    """The verdict as the web job page shows it: ``mam`` (:func:`mam_text`), ``category``,
    ``value`` (the same without 'MAM '), ``decisive``, ``why`` (None when decisive),
    ``bound`` (None, 'lower', 'upper', 'unknown') and ``line``: all of it in one line,
    as the terminal says it."""
    why = not_decisive_why(r)
    line = f"{mam_text(r)} ({r.category}{f', NOT decisive: {why}' if why else ''})"
    return {
        "mam": mam_text(r),
        "value": _value(r),
        "category": r.category,
        "decisive": why is None,
        "why": why,
        "bound": getattr(r, "min_margin_bound", None),
        "line": line,
    }
