"""Binary morphology with balls in millimetres (anisotropic voxels respected).

Dilation by a ball of radius ``r`` mm keeps the voxels whose centre lies within
``r`` of a mask voxel centre; erosion is the dilation of the background. Both are
thresholds of a Maurer distance map with the image spacing (ITK, multi-threaded on
every core), so a 2 mm opening means 2 mm along every axis whatever the voxel size
(and a ball smaller than a voxel changes nothing).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk


def signed_distance_mm(mask: sitk.Image) -> sitk.Image:
    """Signed distance (mm) between voxel centres: outside, to the nearest mask voxel;
    inside, minus the distance to the nearest mask voxel that touches the background
    (ITK's Maurer convention: the mask's own boundary voxels are 0)."""
    return sitk.SignedMaurerDistanceMap(
        sitk.Cast(mask > 0, sitk.sitkUInt8),
        insideIsPositive=False,
        squaredDistance=False,
        useImageSpacing=True,
    )


def dilate_mm(mask: sitk.Image, radius_mm: float) -> sitk.Image:
    """Voxels within ``radius_mm`` of the mask (uint8 0/1)."""
    if radius_mm <= 0 or not _any(mask):
        return sitk.Cast(mask > 0, sitk.sitkUInt8)
    return sitk.Cast(signed_distance_mm(mask) <= radius_mm, sitk.sitkUInt8)


def erode_mm(mask: sitk.Image, radius_mm: float) -> sitk.Image:
    """Mask voxels farther than ``radius_mm`` from every background voxel (uint8 0/1).

    The image edge does not count as background (a mask touching the edge is not
    eroded from it)."""
    if radius_mm <= 0 or not _any(mask):
        return sitk.Cast(mask > 0, sitk.sitkUInt8)
    background = sitk.Cast(mask == 0, sitk.sitkUInt8)
    if not _any(background):
        return sitk.Cast(mask > 0, sitk.sitkUInt8)
    return sitk.Cast(signed_distance_mm(background) > radius_mm, sitk.sitkUInt8)


def open_mm(mask: sitk.Image, radius_mm: float) -> sitk.Image:
    """Opening: removes parts thinner than ``2 * radius_mm`` (necks, tracts, small leaks)."""
    return dilate_mm(erode_mm(mask, radius_mm), radius_mm)


def close_mm(mask: sitk.Image, radius_mm: float) -> sitk.Image:
    """Closing: fills gaps and channels narrower than ``2 * radius_mm``.

    The mask is padded by the radius first, so the image edge does not erode it.
    """
    if radius_mm <= 0:
        return sitk.Cast(mask > 0, sitk.sitkUInt8)
    pad = [int(np.ceil(radius_mm / s)) + 1 for s in mask.GetSpacing()]
    padded = sitk.ConstantPad(sitk.Cast(mask > 0, sitk.sitkUInt8), pad, pad, 0)
    closed = erode_mm(dilate_mm(padded, radius_mm), radius_mm)
    return sitk.Crop(closed, pad, pad)


def component_at(mask: sitk.Image, seeds_xyz: list[tuple[int, int, int]]) -> sitk.Image:
    """The connected components (26-connected) of ``mask`` that hold any of the seed voxels."""
    labels = sitk.ConnectedComponent(sitk.Cast(mask > 0, sitk.sitkUInt8), True)
    arr = sitk.GetArrayViewFromImage(labels)
    keep = {int(arr[k, j, i]) for i, j, k in seeds_xyz} - {0}
    out = sitk.GetImageFromArray(
        np.isin(arr, list(keep)).astype(np.uint8) if keep else np.zeros(arr.shape, np.uint8)
    )
    out.CopyInformation(mask)
    return out


def fill_holes(mask: sitk.Image) -> sitk.Image:
    """Fill cavities not connected to the image border (3D, face-connected background)."""
    return sitk.Cast(
        sitk.BinaryFillhole(sitk.Cast(mask > 0, sitk.sitkUInt8), False, 1), sitk.sitkUInt8
    )


def _any(mask: sitk.Image) -> bool:
    return bool(np.any(sitk.GetArrayViewFromImage(mask)))
