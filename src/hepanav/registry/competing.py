"""Gray's K-sample test for cumulative incidence curves with a competing risk.

Neither lifelines (0.30) nor statsmodels ships Gray's test, so it is
implemented here from the published estimator: Gray RJ. A class of K-sample
tests for comparing the cumulative incidence of a competing risk. Ann Stat
1988;16:1141-1154 (doi:10.1214/aos/1176350951), Section 2, with the weight
``(1 - F0(t-))**rho`` (rho = 0 by default, the usual choice) and the
variance estimated under the null hypothesis from the pooled cumulative
incidence F0, including the usual correction for tied event times.

For group k at an event time t (left limits marked ``-``): Y_k at risk, S_k the
all-cause Kaplan-Meier survival, F_k the cumulative incidence of the cause of
interest. Gray's subdistribution "risk set" is R_k = Y_k (1 - F_k(t-)) / S_k(t-)
and the score of group k is the sum over event times of
w(t) [d1_k - d1 R_k / sum_j R_j]; the statistic s' V^-1 s over K - 1 groups is
chi-square with K - 1 degrees of freedom.

Checked in the tests against the log-rank test (without competing events the
two coincide asymptotically) and for its size under the null hypothesis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GrayResult:
    """Gray's test: statistic, degrees of freedom, p-value and per-group scores."""

    statistic: float
    df: int
    p_value: float
    scores: tuple[float, ...]
    groups: tuple[str, ...]


def gray_test(times, status, groups, cause: int = 1, rho: float = 0.0) -> GrayResult:
    """Compare the cumulative incidence of ``cause`` across groups (Gray 1988).

    Parameters
    ----------
    times : array-like, shape (n,)
        Follow-up times (any unit).
    status : array-like of int, shape (n,)
        0 censored, ``cause`` the event of interest, any other positive code a
        competing event.
    groups : array-like, shape (n,)
        Group labels (at least two).
    cause : int
        The event of interest.
    rho : float
        Weight exponent: w(t) = (1 - F0(t-))**rho.

    Raises
    ------
    ValueError
        Fewer than two groups, or a singular variance (no events of ``cause``).
    """
    from scipy import stats

    times = np.asarray(times, dtype=float)
    status = np.asarray(status, dtype=int)
    labels, group = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    k = len(labels)
    if k < 2:
        raise ValueError("Gray's test needs at least two groups")
    event1 = status == cause
    event2 = (status > 0) & ~event1

    at_risk = np.bincount(group, minlength=k).astype(float)
    surv_left = np.ones(k)  # all-cause KM, S_k(t-)
    cif_left = np.zeros(k)  # F_k(t-)
    pooled_left = 0.0  # F0(t-)
    score = np.zeros(k)
    c_mat = np.zeros((k, k))
    var = np.zeros((k, k))
    v2 = np.zeros((k, k))  # rows: score index i, columns: group k
    v3 = np.zeros(k)

    order = np.argsort(times, kind="stable")
    t_sorted = times[order]
    unique, start = np.unique(t_sorted, return_index=True)
    bounds = np.r_[start, len(t_sorted)]
    for u in range(len(unique)):
        idx = order[bounds[u] : bounds[u + 1]]
        g = group[idx]
        d1 = np.bincount(g[event1[idx]], minlength=k).astype(float)
        d2 = np.bincount(g[event2[idx]], minlength=k).astype(float)
        leaving = np.bincount(g, minlength=k).astype(float)
        n1 = d1.sum()
        if n1 > 0 or d2.sum() > 0:
            live = at_risk > 0
            safe_y = np.where(live, at_risk, 1.0)
            surv = np.where(live, surv_left * (at_risk - d1 - d2) / safe_y, surv_left)
            cif = np.where(live, cif_left + surv_left * d1 / safe_y, cif_left)
            safe_s = np.where(live, surv_left, 1.0)  # a group at risk has S_k(t-) > 0
            h = np.where(live, at_risk / safe_s, 0.0)  # Y_k / S_k(t-)
            r = np.where(live, at_risk * (1.0 - cif_left) / safe_s, 0.0)  # R_k
            h_sum, r_sum = h.sum(), r.sum()
            pooled = pooled_left + n1 / h_sum
            weight = (1.0 - pooled_left) ** rho
            a_mat = -weight * np.outer(h, h) / h_sum
            a_mat[np.diag_indices(k)] = weight * h * (1.0 - h / h_sum)
            if pooled_left < 1.0:
                c_mat += a_mat * n1 / (h_sum * (1.0 - pooled_left))
            score += np.where(live, weight * (d1 - n1 * r / r_sum), 0.0)
            if n1 > 0:
                for j in np.flatnonzero(live):
                    t4 = 1.0 - (1.0 - pooled) / surv[j] if surv[j] > 0 else 1.0
                    ties = 1.0 - (n1 - 1.0) / (h_sum * surv_left[j] - 1.0) if n1 > 1 else 1.0
                    t3 = ties * surv_left[j] * n1 / (h_sum * at_risk[j])
                    col = a_mat[:, j] - t4 * c_mat[:, j]
                    v3[j] += t4 * t4 * t3
                    v2[:, j] += col * t4 * t3
                    var += np.outer(col, col) * t3
            for j in np.flatnonzero(live & (d2 > 0) & (surv > 0)):
                t4 = (1.0 - pooled) / surv[j]
                ties = 1.0 - (d2[j] - 1.0) / (at_risk[j] - 1.0) if d2[j] > 1 else 1.0
                t3 = ties * surv_left[j] ** 2 * d2[j] / at_risk[j] ** 2
                col = t4 * c_mat[:, j]
                v3[j] += t4 * t4 * t3
                v2[:, j] -= col * t4 * t3
                var += np.outer(col, col) * t3
            surv_left, cif_left, pooled_left = surv, cif, pooled
        at_risk = at_risk - leaving
    var += (c_mat * v3) @ c_mat.T + c_mat @ v2.T + v2 @ c_mat.T
    s = score[: k - 1]
    v = var[: k - 1, : k - 1]
    try:
        statistic = float(s @ np.linalg.solve(v, s))
    except np.linalg.LinAlgError:
        raise ValueError("singular variance (no events of the cause of interest?)") from None
    if not np.isfinite(statistic):
        raise ValueError("the statistic is not finite")
    return GrayResult(
        statistic=statistic,
        df=k - 1,
        p_value=float(stats.chi2.sf(statistic, k - 1)),
        scores=tuple(float(x) for x in score),
        groups=tuple(str(x) for x in labels),
    )
