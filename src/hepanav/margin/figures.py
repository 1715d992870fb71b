"""Margin figures from signed surface distances: MAM, percentiles, fractions, category.

Every statistic is weighted by the surface area each vertex carries, so a finely
meshed patch does not count more than a coarse one of the same area.
"""

from __future__ import annotations

import numpy as np

from hepanav.margin.schema import SAFE_MARGIN_MM, WIDE_MARGIN_MM, Category, Percentiles


def weighted_percentiles(values: np.ndarray, weights: np.ndarray, q: list[float]) -> np.ndarray:
    """Area-weighted percentiles: the smallest margin below which ``q`` % of the area lies.

    This is the inverted-CDF definition (NumPy's ``method="inverted_cdf"`` for equal
    weights); on meshes with thousands of vertices the choice of definition changes
    the result by less than the spread between neighbouring vertices.

    Parameters
    ----------
    values : ndarray, shape (N,)
        Signed margins, mm.
    weights : ndarray, shape (N,)
        Non-negative areas, mm^2 (not all zero).
    q : list of float
        Percentiles in [0, 100].

    Returns
    -------
    ndarray, shape (len(q),)
        Percentiles in the unit of ``values``.
    """
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cdf = np.cumsum(w) / w.sum()
    # Tiny tolerance: q = 50 with cdf exactly 0.5 must pick that value, not the next.
    index = np.searchsorted(cdf, np.asarray(q, dtype=float) / 100.0 - 1e-12, side="left")
    return v[np.clip(index, 0, len(v) - 1)]


def percentiles(values: np.ndarray, weights: np.ndarray) -> Percentiles:
    """The 5/25/50/75/95th area-weighted percentiles of the margin (mm)."""
    p = weighted_percentiles(values, weights, [5, 25, 50, 75, 95])
    return Percentiles(p5=p[0], p25=p[1], p50=p[2], p75=p[3], p95=p[4])


def fraction_below(values: np.ndarray, weights: np.ndarray, threshold_mm: float) -> float:
    """Fraction of the surface area whose margin is below ``threshold_mm``."""
    return float(weights[values < threshold_mm].sum() / weights.sum())


def category(min_margin_mm: float) -> Category:
    """Margin category: ``incomplete`` (< 0), ``0-5mm``, ``5-10mm``, ``>=10mm``.

    Bands follow the ablation literature (../shared/docs/domain.md): < 0 incomplete;
    5 mm safe (MD Anderson 2023, Laimer 2025); >= 10 mm no LTP (Shady 2018).
    """
    if min_margin_mm < 0:
        return "incomplete"
    if min_margin_mm < SAFE_MARGIN_MM:
        return "0-5mm"
    if min_margin_mm < WIDE_MARGIN_MM:
        return "5-10mm"
    return ">=10mm"
