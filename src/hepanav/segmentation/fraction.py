"""Partial-volume fraction of a lesion mask's boundary voxels, read from the CT.

A binary mask places the surface on voxel faces: half a voxel of quantisation either
way (0.75 mm on 1.5 mm voxels, 1.5 mm across 3 mm slices), and a minimum over the
surface (the MAM) collects the worst of it. The CT holds more: a voxel the edge cuts
through reads a mixture of the lesion and what lies outside it, so its HU tells what
fraction of it is lesion:

    fraction = (HU - local outside mean) / (local inside mean - local outside mean)

clipped to 0..1, for the voxels within one voxel (face neighbours) of the mask's
boundary only; deeper voxels are 1 inside and 0 outside. The local means are
Gaussian-weighted (normalised convolution, SciPy) over the "pure" voxel layers just
beyond that boundary band on each side (``REFERENCE_LAYERS`` voxels), so a rim, a
brighter segment of parenchyma or a darker lobe of the lesion sets its own reference
where it is; gas and bone are left out of the references. The fraction is made
consistent with the binary mask (``fraction >= 0.5`` exactly where the mask is
inside): where the CT disagrees with the mask (an attachment the growing cut, a
vessel touching the lesion, gas counted as zone) the mask wins and the voxel centre
is put on the surface (0.5, just below outside). The margin measurement places the
surface from these fractions (:func:`hepanav.margin.surface.signed_distance`).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from hepanav.segmentation.morphology import bounding_box, crop_box

# Gaussian (mm) of the local inside/outside means: a few voxels of each reference
# layer, local enough for a rim or a parenchyma gradient.
LOCAL_SIGMA_MM = 3.0
# Voxel layers beyond the one-voxel boundary band used as the pure references.
REFERENCE_LAYERS = 2
# Below this local contrast (HU) the HU says nothing about the fraction: binary kept.
MIN_CONTRAST_HU = 10.0
# Reference voxels must be soft tissue (gas in a zone, bone, metal are left out).
REFERENCE_HU = (-150.0, 400.0)
# Source of the HU: "ct" (the CT itself) or "deblurred" (G_s * I - s^2/2 LoG_s I,
# as grow.refine_boundary classifies the band with).
SOURCE = "ct"
DEBLUR_SIGMA_MM = 1.0
# Strictly below 0.5: an outside voxel the CT calls mostly inside stays outside.
# A rim hugging the lesion (the enhancing rim of an ablation zone): the edge voxels mix
# the lesion with the rim, not with the parenchyma beyond it. The outside reference is
# raised (lowered, for a hyperdense lesion) by how far the median of the first outside
# voxel layer lies beyond the parenchyma (as the growing's ``grow._edge_value`` finds
# the rim); without a rim that median lies towards the lesion (partial volume): no change.
RIM_AWARE = True
JUST_OUTSIDE = float(np.nextafter(np.float32(0.5), np.float32(0.0)))


def edge_fraction(ct: sitk.Image, mask: sitk.Image) -> sitk.Image | None:
    """Partial-volume fraction (float32, 0..1) of ``mask`` on a box of its grid.

    Parameters
    ----------
    ct : SimpleITK.Image
        CT in HU on the same grid as ``mask`` or on a larger grid with the same
        spacing and direction that contains it (``mask`` a crop of it).
    mask : SimpleITK.Image
        Binary lesion mask (non-zero inside).

    Returns
    -------
    SimpleITK.Image or None
        Float32 fractions on the mask's bounding box (padded by the references'
        reach; same spacing, direction and voxel positions as ``mask``), with
        ``fraction >= 0.5`` exactly where ``mask`` is non-zero; None for an empty mask.
    """
    spacing = np.asarray(mask.GetSpacing(), float)
    sigma_vox = LOCAL_SIGMA_MM / spacing
    pad = REFERENCE_LAYERS + 2 + int(np.ceil(3.0 * float(np.max(sigma_vox))))
    box = bounding_box(mask, 0.0, pad)
    if box is None:
        return None
    local = crop_box(mask, box)
    start = ct.TransformPhysicalPointToIndex(local.GetOrigin())
    image = sitk.RegionOfInterest(sitk.Cast(ct, sitk.sitkFloat32), local.GetSize(), start)
    if SOURCE == "deblurred":
        s = max(DEBLUR_SIGMA_MM, 0.6 * float(np.max(spacing)))
        image = sitk.SmoothingRecursiveGaussian(image, s) - (
            0.5 * s * s
        ) * sitk.LaplacianRecursiveGaussian(image, s)
    hu = sitk.GetArrayFromImage(image).astype(np.float32)
    inside = sitk.GetArrayViewFromImage(local) != 0
    fraction = local_fraction(hu, inside, sigma_vox[::-1])
    out = sitk.GetImageFromArray(fraction)
    out.CopyInformation(local)
    return out


def local_fraction(hu: np.ndarray, inside: np.ndarray, sigma_zyx: np.ndarray) -> np.ndarray:
    """Fractions (z, y, x) from HU and the binary mask (see the module doc)."""
    face = ndimage.generate_binary_structure(3, 1)
    core = ndimage.binary_erosion(inside, face, border_value=1)
    grown = ndimage.binary_dilation(inside, face)
    band = grown & ~core  # boundary voxels on both sides of the surface
    ref_in = core & ~ndimage.binary_erosion(core, face, REFERENCE_LAYERS, border_value=1)
    ref_out = ndimage.binary_dilation(grown, face, REFERENCE_LAYERS) & ~grown
    soft = (hu > REFERENCE_HU[0]) & (hu < REFERENCE_HU[1])
    mean_in = _local_mean(hu, ref_in & soft, sigma_zyx)
    mean_out = _local_mean(hu, ref_out & soft, sigma_zyx)
    if RIM_AWARE:
        mean_out = mean_out + _rim_excess(hu, inside, grown, ref_in & soft, ref_out & soft, soft)
    fraction = inside.astype(np.float32)
    contrast = mean_in[band] - mean_out[band]
    ok = np.abs(contrast) >= MIN_CONTRAST_HU
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(ok, (hu[band] - mean_out[band]) / contrast, fraction[band])
    f = np.clip(np.nan_to_num(f, nan=0.5), 0.0, 1.0)
    # The binary mask decides the side of each voxel centre.
    was_in = inside[band]
    f = np.where(was_in, np.maximum(f, 0.5), np.minimum(f, JUST_OUTSIDE))
    fraction[band] = f
    return fraction


def _rim_excess(
    hu: np.ndarray,
    inside: np.ndarray,
    grown: np.ndarray,
    ref_in: np.ndarray,
    ref_out: np.ndarray,
    soft: np.ndarray,
) -> float:
    """HU by which a rim in the first outside voxel layer exceeds the parenchyma beyond
    it (away from the lesion's HU), 0 without a rim (see ``RIM_AWARE``)."""
    first = grown & ~inside & soft
    if np.count_nonzero(first) < 20 or not ref_in.any() or not ref_out.any():
        return 0.0
    lesion, beyond = float(np.median(hu[ref_in])), float(np.median(hu[ref_out]))
    excess = float(np.median(hu[first])) - beyond
    # only away from the lesion: towards it is the lesion's own partial volume
    return excess if excess * (beyond - lesion) > 0 else 0.0


def _local_mean(hu: np.ndarray, where: np.ndarray, sigma_zyx: np.ndarray) -> np.ndarray:
    """Gaussian-weighted mean of ``hu`` over ``where`` (normalised convolution); the
    median of all of ``where`` where no reference voxel is near."""
    w = where.astype(np.float32)
    num = ndimage.gaussian_filter(hu * w, sigma_zyx, mode="nearest")
    den = ndimage.gaussian_filter(w, sigma_zyx, mode="nearest")
    fallback = float(np.median(hu[where])) if where.any() else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 1e-3, num / den, fallback).astype(np.float32)
