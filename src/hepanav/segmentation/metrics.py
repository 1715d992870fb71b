"""Agreement of two masks on one grid: Dice and symmetric mean surface distance (mm)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from hepanav.imaging.masks import dice

__all__ = ["dice", "mean_surface_distance_mm"]


def mean_surface_distance_mm(a: sitk.Image, b: sitk.Image) -> float:
    """Symmetric mean surface distance (mm) between two binary masks on the same grid.

    Surface voxels are the masks' face-connected contours; each surface voxel's
    distance to the other mask's contour comes from a Maurer distance map in physical
    units; the result is the mean over both surfaces (``inf`` if one is empty).
    """
    sa, sb = (sitk.LabelContour(sitk.Cast(m > 0, sitk.sitkUInt8), False) for m in (a, b))
    na, nb = (sitk.GetArrayFromImage(s) > 0 for s in (sa, sb))
    if not na.any() or not nb.any():
        return float("inf")

    def dist(contour: sitk.Image) -> np.ndarray:
        # GetArrayFromImage (a copy): a view of a temporary image would dangle.
        return np.abs(
            sitk.GetArrayFromImage(
                sitk.SignedMaurerDistanceMap(
                    contour, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
                )
            )
        )

    # Distance to the other contour's voxel centres, minus nothing: contour to contour.
    d_ab = dist(sb)[na]
    d_ba = dist(sa)[nb]
    return float((d_ab.sum() + d_ba.sum()) / (d_ab.size + d_ba.size))
