"""Liver from one click: parenchyma region, vessels inside filled, capsule smooth.

Works on a coarse grid (about ``WORK_MM`` voxels, by bin averaging) for speed:
Gaussian smoothing, the parenchyma HU from the median around the seed, SimpleITK
``ConnectedThreshold`` within +-``max(3 SD, WINDOW_HU)`` of it, an opening that cuts
the thin bridges to neighbours of similar attenuation (diaphragm/heart, stomach
wall, spleen, muscle), the seed's component, closing and axial hole filling for
the vessels inside, then a Gaussian-smoothed surface resampled onto the CT grid.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from hepanav.core.errors import InputError
from hepanav.segmentation.grow import seed_distance_mm
from hepanav.segmentation.morphology import close_mm, component_at, dilate_mm, open_mm
from hepanav.segmentation.result import Segmentation
from hepanav.segmentation.seeds import Seed, checked_seeds, local_hu
from hepanav.segmentation.windows import hu_windows

WORK_MM = 2.0
SMOOTHING_MM = 1.5
WINDOW_HU = 20.0
OPENING_MM = 9.0
RESTORE_MM = 6.0
LOWER_FACTOR = 0.5
CLOSING_MM = 6.0
SURFACE_SIGMA_MM = 2.0
DEFAULT_MAX_RADIUS_MM = 250.0
MAX_LIVER_ML = 4000.0
# Smallest plausible liver (also a partial field of view): below, the seed was on
# something else (a lesion, a vessel, the spleen tip). HepaNav default.
MIN_LIVER_ML = 150.0


def working_image(ct: sitk.Image, work_mm: float = WORK_MM) -> sitk.Image:
    """Float32 CT bin-averaged to about ``work_mm`` voxels (integer factors per axis)."""
    factors = [max(1, int(round(work_mm / s))) for s in ct.GetSpacing()]
    image = sitk.Cast(ct, sitk.sitkFloat32)
    return sitk.BinShrink(image, factors) if any(f > 1 for f in factors) else image


def segment_liver(
    ct: sitk.Image,
    seeds: list[Seed],
    max_radius_mm: float = DEFAULT_MAX_RADIUS_MM,
    include: list[Seed] | None = None,
    exclude: list[Seed] | None = None,
) -> Segmentation:
    """Segment the liver from one (or more) clicks in the parenchyma.

    Parameters
    ----------
    ct : SimpleITK.Image
        CT in HU, any phase (unenhanced liver 50-65 HU, portal venous 100-130 HU).
    seeds : list of Seed
        Clicks in liver parenchyma, away from large vessels and lesions.
    max_radius_mm : float
        No liver voxel farther than this from a seed (mm); beyond is a leak.
    include, exclude : list of Seed, optional
        Extra parenchyma points (grown from), and points of a neighbour the liver
        leaked into (voxels closer to them than to every seed are cut off).

    Returns
    -------
    Segmentation
        Mask on the CT grid.

    Raises
    ------
    InputError
        Seed in air/bone/fat, on water-density fluid (< 25 HU) or at an attenuation no
        liver has; a seed whose HU differs from the bulk of the region it grew (a
        vessel: ``_check_seed_tissue``); a leak (past
        ``max_radius_mm`` or more than 4 litres).
    """
    win = hu_windows()
    seeds, include, exclude = checked_seeds(ct, seeds, include, exclude, "liver")
    work = working_image(ct)
    smoothed = sitk.SmoothingRecursiveGaussian(work, SMOOTHING_MM)
    grow_from = [_local(work, s) for s in seeds + include]
    liver_hu = _parenchyma_mode(smoothed, grow_from[: len(seeds)])
    sd = float(np.median([local_hu(smoothed, s, 8.0)[1] for s in grow_from[: len(seeds)]]))
    if not win["liver_min_hu"] <= liver_hu <= win["liver_max_hu"]:
        raise InputError(
            f"does not look like liver parenchyma: {liver_hu:.0f} HU around the seed (liver is "
            f"{win['liver_min_hu']:.0f}-{win['liver_max_hu']:.0f} HU in any phase)",
            seeds[0].describe(),
        )
    if liver_hu < win["liver_seed_min_hu"]:
        raise InputError(
            f"does not look like liver parenchyma: {liver_hu:.0f} HU around the seed is "
            f"water-density fluid (below {win['liver_seed_min_hu']:.0f} HU: stomach or bowel "
            "content, gallbladder, a cyst); click the liver",
            seeds[0].describe(),
        )
    half = max(3.0 * sd, WINDOW_HU)
    window = (min(liver_hu - half, LOWER_FACTOR * liver_hu), liver_hu + half)
    grown = sitk.ConnectedThreshold(
        smoothed, seedList=[s.index for s in grow_from], lower=window[0], upper=window[1]
    )
    if exclude:
        from hepanav.segmentation.grow import _cut_excluded

        grown = _cut_excluded(grown, grow_from, [_local(work, s) for s in exclude])
    # The morphology runs in the box of the grown region only (plus a margin of true
    # background for the surface smoothing): the same result, a fraction of the voxels.
    grown = _crop_to_mask(grown, 3.0 * SURFACE_SIGMA_MM)
    grow_from = [_local(grown, s) for s in grow_from]
    core = component_at(open_mm(grown, OPENING_MM), [s.index for s in grow_from])
    if not np.any(sitk.GetArrayViewFromImage(core)):
        raise InputError(
            "the region at the seed is thinner than the liver can be (under "
            f"{2 * OPENING_MM:.0f} mm): the seed is not in liver parenchyma",
            seeds[0].describe(),
        )
    # Restore the surface detail the opening removed, but not the bridges it cut.
    liver = sitk.And(grown, dilate_mm(core, RESTORE_MM))
    liver = component_at(liver, [s.index for s in grow_from])
    _check_seed_tissue(liver, smoothed, liver_hu, half, seeds[0])
    liver = close_mm(liver, CLOSING_MM)
    liver = _fill_axial(liver)
    _check_leak(liver, grow_from, max_radius_mm, seeds[0])
    mask = _smooth_onto(liver, ct)
    return Segmentation(
        mask=mask,
        structure="liver",
        method=(
            f"region growing on a {WORK_MM:g} mm grid (Gaussian {SMOOTHING_MM:g} mm, "
            f"ConnectedThreshold seed HU +-{half:.0f}), {OPENING_MM:g} mm opening, "
            f"{CLOSING_MM:g} mm closing and axial hole filling (vessels), Gaussian "
            f"{SURFACE_SIGMA_MM:g} mm surface"
        ),
        seeds=seeds,
        include=include,
        exclude=exclude,
        lesion_hu=None,
        parenchyma_hu=liver_hu,
        window_hu=window,
        max_radius_mm=max_radius_mm,
    )


def _parenchyma_mode(smoothed: sitk.Image, seeds: list[Seed], radius_mm: float = 15.0) -> float:
    """Histogram mode of the HU within ``radius_mm`` of the seeds: the parenchyma peak,
    not pulled up by the enhancing vessels a median around the click would include."""
    from hepanav.segmentation.grow import _ball_values, histogram_mode

    values = _ball_values(smoothed, seeds, radius_mm)
    return histogram_mode(values, 2.0)[0]


def _local(image: sitk.Image, seed: Seed) -> Seed:
    index = image.TransformPhysicalPointToIndex(seed.lps)
    return Seed(seed.lps, tuple(int(v) for v in index), seed.label)


def _fill_axial(mask: sitk.Image) -> sitk.Image:
    """Fill holes slice by slice (axial in index space: the CT's slices)."""
    arr = sitk.GetArrayFromImage(mask).astype(bool)
    for k in range(arr.shape[0]):
        if arr[k].any():
            arr[k] = ndimage.binary_fill_holes(arr[k])
    out = sitk.GetImageFromArray(arr.astype(np.uint8))
    out.CopyInformation(mask)
    return out


def _check_seed_tissue(
    region: sitk.Image, smoothed: sitk.Image, seed_hu: float, half_hu: float, first: Seed
) -> None:
    """Refuse a seed that is not on the tissue the grown region is made of.

    The region's attenuation is the histogram mode of ``smoothed`` over ``region``
    (its bulk, the parenchyma). A click on liver parenchyma has the same mode around
    it (``seed_hu``); a click on a vessel (the aorta, 150-250 HU in the portal venous
    phase, above the liver's 100-130 HU) grows, through the low side of its window,
    into the liver or other tissue and differs from it by more than ``half_hu`` (the
    half-width of the growing window). Raises ``InputError`` naming the seed and both
    HU.
    """
    from hepanav.segmentation.grow import histogram_mode

    values = sitk.GetArrayViewFromImage(smoothed)
    inside = region
    if inside.GetSize() != smoothed.GetSize() or inside.GetOrigin() != smoothed.GetOrigin():
        inside = sitk.Resample(region, smoothed, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    mask = sitk.GetArrayViewFromImage(inside) > 0
    if not mask.any():
        return
    region_hu = histogram_mode(np.asarray(values)[mask], 2.0)[0]
    if abs(region_hu - seed_hu) > half_hu:
        side = "brighter" if seed_hu > region_hu else "darker"
        raise InputError(
            f"does not look like liver parenchyma: the seed ({seed_hu:.0f} HU around it) is "
            f"{side} than the region it grew into ({region_hu:.0f} HU) by more than "
            f"{half_hu:.0f} HU: it is on a vessel or another structure; click the liver",
            first.describe(),
        )


def _check_leak(mask: sitk.Image, seeds: list[Seed], max_radius_mm: float, first: Seed) -> None:
    arr = sitk.GetArrayViewFromImage(mask) > 0
    ml = float(np.count_nonzero(arr)) * float(np.prod(mask.GetSpacing())) / 1000.0
    if ml > MAX_LIVER_ML:
        raise InputError(
            f"the liver leaked: {ml:.0f} ml grew from the seed (more than any liver, "
            f"{MAX_LIVER_ML:.0f} ml); add --exclude points in what it leaked into",
            first.describe(),
        )
    if ml < MIN_LIVER_ML:
        raise InputError(
            f"does not look like the liver: only {ml:.0f} ml grew from the seed (a liver "
            f"in view is at least {MIN_LIVER_ML:.0f} ml); click liver parenchyma, not a "
            "lesion or vessel",
            first.describe(),
        )
    far = float(seed_distance_mm(mask, seeds, arr).max())
    if far > max_radius_mm:
        raise InputError(
            f"the liver leaked: the region grew {far:.0f} mm from the seed, past "
            f"--max-radius-mm {max_radius_mm:g}",
            first.describe(),
        )


def _crop_to_mask(mask: sitk.Image, margin_mm: float) -> sitk.Image:
    """``mask`` cut to the box of its voxels grown by ``margin_mm`` + 2 voxels (clipped to
    the image). Physical geometry is kept (the crop's origin moves)."""
    arr = sitk.GetArrayViewFromImage(mask)
    if not arr.any():
        return mask
    size = np.asarray(mask.GetSize())
    pad = np.ceil(margin_mm / np.asarray(mask.GetSpacing())).astype(int) + 2
    lo_hi = [np.nonzero(np.any(arr, axis=axes))[0] for axes in ((0, 1), (0, 2), (1, 2))]
    lo = np.maximum(np.array([v[0] for v in lo_hi]) - pad, 0)
    hi = np.minimum(np.array([v[-1] for v in lo_hi]) + pad + 1, size)
    return sitk.RegionOfInterest(mask, (hi - lo).tolist(), lo.tolist())


def _smooth_onto(mask: sitk.Image, ct: sitk.Image) -> sitk.Image:
    """Gaussian-smoothed mask resampled (linear) onto the CT grid, cut at 0.5.

    Only the CT voxels inside the (cropped) mask image's box are resampled and pasted
    into an empty image of the CT's grid: far faster on a 512 x 512 x 300 CT.
    """
    soft = sitk.SmoothingRecursiveGaussian(sitk.Cast(mask, sitk.sitkFloat32), SURFACE_SIGMA_MM)
    size = np.asarray(mask.GetSize())
    corners = [
        ct.TransformPhysicalPointToContinuousIndex(
            mask.TransformContinuousIndexToPhysicalPoint([float(c) for c in corner])
        )
        for corner in np.array(np.meshgrid(*[(-0.5, s - 0.5) for s in size])).T.reshape(-1, 3)
    ]
    corners = np.asarray(corners)
    lo = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, ct.GetSize())
    hi = np.clip(np.ceil(corners.max(axis=0)).astype(int) + 1, 0, ct.GetSize())
    out = sitk.Image(ct.GetSize(), sitk.sitkUInt8)
    out.CopyInformation(ct)
    if np.any(hi <= lo):
        return out
    box = sitk.Image((hi - lo).tolist(), sitk.sitkUInt8)
    box.SetSpacing(ct.GetSpacing())
    box.SetDirection(ct.GetDirection())
    box.SetOrigin(ct.TransformIndexToPhysicalPoint([int(v) for v in lo]))
    up = sitk.Resample(soft, box, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    inside = sitk.Cast(up >= 0.5, sitk.sitkUInt8)
    return sitk.Paste(out, inside, up.GetSize(), [0, 0, 0], lo.tolist())
