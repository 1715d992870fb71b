"""Robustness of a plan to needle placement error (Monte Carlo).

Each needle is displaced perpendicular to its axis by an isotropic Gaussian error of
standard deviation ``sd_mm`` per axis (lateral target positioning error; navigated
placement 3.7 mm, robot 1.6-2.0 mm: domain brief). All zones of a needle move together.
"""

from __future__ import annotations

import numpy as np

from hepanav.planning.trajectories import perpendicular_basis
from hepanav.planning.zones import inside_zones


def coverage_under_error(
    points: np.ndarray,
    centers: np.ndarray,
    directions: np.ndarray,
    needle_of_zone: np.ndarray,
    axes_mm: tuple[float, float, float],
    sd_mm: float,
    draws: int,
    excluded: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Covered fraction of ``points`` in each Monte Carlo draw.

    Parameters
    ----------
    points : ndarray (N, 3)
        LPS mm (e.g. tumour + margin voxel centres, subsampled).
    centers, directions : ndarray (Z, 3)
        Planned zone centres (LPS mm) and unit axes.
    needle_of_zone : ndarray (Z,)
        Needle index of each zone.
    axes_mm : (float, float, float)
        Zone diameters.
    sd_mm : float
        Standard deviation of the lateral error per perpendicular axis, mm.
    draws : int
    excluded : ndarray of bool (N,), optional
        Points never counted as covered (heat-sink band).
    seed : int

    Returns
    -------
    ndarray (draws,) of covered fractions in [0, 1]
    """
    rng = np.random.default_rng(seed)
    needles = np.unique(needle_of_zone)
    frames = {int(k): perpendicular_basis(directions[needle_of_zone == k][0]) for k in needles}
    out = np.empty(draws)
    for i in range(draws):
        shifted = centers.copy()
        for k in needles:
            u, v = frames[int(k)]
            g = rng.normal(0.0, sd_mm, size=2)
            shifted[needle_of_zone == k] += g[0] * u + g[1] * v
        covered = inside_zones(points, shifted, directions, axes_mm)
        if excluded is not None:
            covered &= ~excluded
        out[i] = covered.mean() if len(points) else 0.0
    return out
