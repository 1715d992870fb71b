"""Subcapsular exclusion: tumour surface close to the liver capsule is left out.

Near the capsule the ablation zone cannot extend beyond the liver, so a short
margin there is expected and not a failure (QAM, Sandu/Paolucci 2021; see
../shared/docs/domain.md). Default distance 5 mm, as in that work.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from hepanav.margin.distance import distance_to_mesh
from hepanav.margin.surface import extract_surface, sample_field

DEFAULT_SUBCAPSULAR_MM = 5.0


def subcapsular_vertices(
    points_lps: np.ndarray, liver_field: np.ndarray, grid: sitk.Image, within_mm: float
) -> np.ndarray:
    """Which points lie within ``within_mm`` of the liver capsule, or outside the liver.

    Parameters
    ----------
    points_lps : ndarray, shape (N, 3)
        Tumour-surface vertices, LPS mm.
    liver_field : ndarray, shape (nz, ny, nx)
        Smoothed liver occupancy on ``grid`` (0.5 = capsule).
    grid : SimpleITK.Image
        Geometry of ``liver_field``.
    within_mm : float
        Exclusion distance from the capsule, mm.

    Returns
    -------
    ndarray of bool, shape (N,)
        True for points to leave out. Where the liver runs out of the local grid
        the surface stays open, so the crop edge is not mistaken for capsule.
    """
    capsule = extract_surface(liver_field, grid)
    outside = sample_field(liver_field, grid, points_lps) < 0.5
    if capsule.is_empty:
        return outside
    distance, _ = distance_to_mesh(points_lps, capsule)
    return outside | (distance < within_mm)
