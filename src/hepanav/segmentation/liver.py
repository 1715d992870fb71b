"""Liver from one click: parenchyma region, vessels inside filled, capsule smooth.

Works on a coarse grid (about ``WORK_MM`` voxels, by bin averaging) for speed:
Gaussian smoothing, the parenchyma HU from the median around the seed, SimpleITK
``ConnectedThreshold`` within +-``min(max(3 SD, WINDOW_HU), MAX_HALF_HU)`` of it (a
click on a vessel, brighter than the parenchyma peak around it, is refused first), an
opening that cuts
the thin bridges to neighbours of similar attenuation (diaphragm/heart, stomach
wall, spleen, muscle), the seed's component, closing and axial hole filling for
the vessels inside, then a Gaussian-smoothed surface resampled onto the CT grid.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from hepanav.core.errors import InputError
from hepanav.imaging.orient import axial_order, to_input_order
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
# The growing window's half-width: max(3 x the robust SD within 8 mm of the seed,
# WINDOW_HU), never above MAX_HALF_HU (the leak guard): the large enhancing vessels and
# the heart's blood lie >= 30 HU above the parenchyma in the portal venous phase (the
# phantom's heart +30, IVC +45, aorta +65; anatomy.py takes vessels at >= liver + 35 HU),
# and a click beside a vessel inflates the SD (the phantom's hepatic vein: SD 24 HU, a
# +-73 HU window that grew the heart, IVC and aorta into a 2 l "liver"). Real clicks: SD
# 2.3-7.9 HU, half-width 20-24 HU (docs/segmentation.md).
MAX_HALF_HU = 25.0
# The click's own HU (median within SEED_CORE_MM, smoothed working grid) brighter than
# the parenchyma peak around it (the mode within 15 mm) by more than SEED_OFF_PEAK_HU:
# the click is on a contrast-filled vessel (or a hyperdense lesion), not parenchyma.
# Measured: 30 real clicks on the two scans -9..+7 HU; phantom hepatic vein +30, portal
# vein +58. Darker by as much: a note (a lesion or a darker part of the liver).
SEED_CORE_MM = 2.0
SEED_OFF_PEAK_HU = 20.0
# Re-estimation of the parenchyma HU from the grown region (``_grow_reestimated``):
# settled when the mode moves by at most one histogram bin (2 HU).
REESTIMATE_TOL_HU = 2.0
MAX_REESTIMATES = 6
# A settled region with more of its voxels than this in the top quarter of its window
# (``TOP_BAND`` x the half-width under the upper bound) may be cut by the window (its
# tissue continues brighter); a Gaussian peak inside a +-3 SD window has about 1 %
# there. A false alarm costs time only: from the liver's own peak, the moved-up window
# settles back on it (the region's bulk), with the same region.
TOP_BAND = 0.25
TOP_FRACTION = 0.02
MOVED_COVERS = 0.9


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

    The axial hole filling needs axial slices: a coronal or sagittal CT is permuted to
    axial array order first and the mask permuted back onto its grid (exact, no
    interpolation: :func:`hepanav.imaging.orient.axial_order`); an oblique CT (more than
    5 degrees off the patient axes) is refused.

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
        Mask on the CT grid; ``notes`` says when the seed is darker than the liver found
        by more than ``SEED_OFF_PEAK_HU`` (a lesion or a darker part of the liver).

    Raises
    ------
    InputError
        Seed in air/bone/fat, on water-density fluid (< 25 HU) or at an attenuation no
        liver has; a seed brighter than the parenchyma peak around it by more than
        ``SEED_OFF_PEAK_HU`` (a contrast-filled vessel: ``_check_seed_on_parenchyma``);
        a seed whose HU differs from the bulk of the region it grew (a
        vessel: ``_check_hu_match``); a parenchyma HU that does not settle when
        re-estimated from the grown region; a region whose centre is left of the body's
        midline (the spleen: ``_check_side``); a leak (past
        ``max_radius_mm`` or more than 4 litres).
    """
    axial, code = axial_order(ct, "planning CT")
    if axial is ct:
        return _segment_liver_axial(ct, seeds, max_radius_mm, include, exclude)
    seg = _segment_liver_axial(
        axial,
        [_local(axial, s) for s in seeds],
        max_radius_mm,
        [_local(axial, s) for s in include or []],
        [_local(axial, s) for s in exclude or []],
    )
    return replace(
        seg,
        mask=to_input_order(seg.mask, code, ct),
        seeds=[_local(ct, s) for s in seg.seeds],
        include=[_local(ct, s) for s in seg.include],
        exclude=[_local(ct, s) for s in seg.exclude],
    )


def _segment_liver_axial(
    ct: sitk.Image,
    seeds: list[Seed],
    max_radius_mm: float,
    include: list[Seed] | None,
    exclude: list[Seed] | None,
) -> Segmentation:
    """:func:`segment_liver` on a CT whose array index k runs along S-I (axial slices)."""
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
    seed_core = float(
        np.median([local_hu(smoothed, s, SEED_CORE_MM)[0] for s in grow_from[: len(seeds)]])
    )
    _check_seed_on_parenchyma(seed_core, liver_hu, seeds[0])
    half = min(max(3.0 * sd, WINDOW_HU), MAX_HALF_HU)
    # The seed's own HU, two ways: the mode within 15 mm (not pulled up by vessels
    # beside the click) and the median within 8 mm (not pulled down by a darker area
    # 10-15 mm away); the seed is on the region's tissue when either is.
    median8 = float(np.median([local_hu(smoothed, s, 8.0)[0] for s in grow_from[: len(seeds)]]))
    seed_hus = (liver_hu, median8)
    exclude_local = [_local(work, s) for s in exclude]
    liver_hu, window, liver, grow_from = _grow_reestimated(
        smoothed, grow_from, exclude_local, liver_hu, half, sd, seed_hus, seeds[0]
    )
    if not win["liver_min_hu"] <= liver_hu <= win["liver_max_hu"]:
        raise InputError(
            f"does not look like liver parenchyma: the region grown from the seed is "
            f"{liver_hu:.0f} HU (liver is {win['liver_min_hu']:.0f}-"
            f"{win['liver_max_hu']:.0f} HU in any phase)",
            seeds[0].describe(),
        )
    liver = close_mm(liver, CLOSING_MM)
    liver = _fill_axial(liver)
    _check_leak(liver, grow_from, max_radius_mm, seeds[0])
    _check_side(liver, work, seeds[0])
    mask = _smooth_onto(liver, ct)
    notes = []
    if liver_hu - seed_core > SEED_OFF_PEAK_HU:
        notes.append(
            f"the seed ({seed_core:.0f} HU) is darker than the liver found ({liver_hu:.0f} HU) "
            f"by {liver_hu - seed_core:.0f} HU: it lies in a lesion or a darker part of the "
            "liver; check that the mask is the liver"
        )
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
        notes=notes,
    )


def _check_seed_on_parenchyma(seed_hu: float, peak_hu: float, first: Seed) -> None:
    """Refuse a click on a structure brighter than the parenchyma around it by more than
    ``SEED_OFF_PEAK_HU`` (a contrast-filled vessel), and one on water-density fluid
    (``liver_seed_min_hu``) even when the parenchyma around it is liver-like. ``seed_hu``:
    median within ``SEED_CORE_MM``; ``peak_hu``: the mode within 15 mm."""
    win = hu_windows()
    if seed_hu - peak_hu > SEED_OFF_PEAK_HU:
        raise InputError(
            f"does not look like liver parenchyma: the seed is on a structure brighter "
            f"({seed_hu:.0f} HU within {SEED_CORE_MM:g} mm) than the parenchyma around it "
            f"({peak_hu:.0f} HU) by {seed_hu - peak_hu:.0f} HU (> {SEED_OFF_PEAK_HU:g}): a "
            "contrast-filled vessel (or a hyperdense lesion); click the parenchyma beside it",
            first.describe(),
        )
    if seed_hu < win["liver_seed_min_hu"]:
        raise InputError(
            f"does not look like liver parenchyma: the seed is on water-density tissue "
            f"({seed_hu:.0f} HU within {SEED_CORE_MM:g} mm, below "
            f"{win['liver_seed_min_hu']:.0f} HU: fluid, a cyst, bowel or stomach content; "
            f"{peak_hu:.0f} HU around it); click the liver",
            first.describe(),
        )


def _grow_once(
    smoothed: sitk.Image, grow_from: list[Seed], exclude: list[Seed], window: tuple[float, float]
) -> tuple[sitk.Image, list[Seed]]:
    """ConnectedThreshold in ``window``, the exclude cut, then the liver-like part: the
    seeds' component after an ``OPENING_MM`` opening (cuts the thin bridges to
    neighbours of similar HU), its surface detail restored within ``RESTORE_MM``.
    Returns that region (cropped to its box; empty if nothing survived the opening) and
    the seeds indexed on its grid."""
    grown = sitk.ConnectedThreshold(
        smoothed, seedList=[s.index for s in grow_from], lower=window[0], upper=window[1]
    )
    if exclude:
        from hepanav.segmentation.grow import _cut_excluded

        grown = _cut_excluded(grown, grow_from, exclude)
    # The morphology runs in the box of the grown region only (plus a margin of true
    # background for the surface smoothing): the same result, a fraction of the voxels.
    grown = _crop_to_mask(grown, 3.0 * SURFACE_SIGMA_MM)
    local = [_local(grown, s) for s in grow_from]
    core = component_at(open_mm(grown, OPENING_MM), [s.index for s in local])
    if not np.any(sitk.GetArrayViewFromImage(core)):
        return core, local
    # Restore the surface detail the opening removed, but not the bridges it cut.
    liver = sitk.And(grown, dilate_mm(core, RESTORE_MM))
    return component_at(liver, [s.index for s in local]), local


def _grow_reestimated(
    smoothed: sitk.Image,
    grow_from: list[Seed],
    exclude: list[Seed],
    start_hu: float,
    half: float,
    sd: float,
    seed_hus: tuple[float, ...],
    first: Seed,
) -> tuple[float, tuple[float, float], sitk.Image, list[Seed]]:
    """Grow, re-estimate the parenchyma HU from what grew, grow again, until it settles.

    The first estimate (``start_hu``, the mode within 15 mm of the click) sees only a
    small ball: on the portal-venous scan a click in a 230 ml darker part of the liver
    (55-75 HU, on the last slice: half a ball) gave 68 HU against the liver's 100 HU
    peak, and the window (34-92 HU) held only that part: a third of the liver, accepted.
    Each round grows the liver-like region (``_grow_once``) and takes the histogram
    mode of the smoothed CT over it (thousands of voxels, mostly parenchyma, not a
    ball). It has settled when the mode moves by at most ``REESTIMATE_TOL_HU``. A
    settled region maybe cut by the window's upper bound (more than ``TOP_FRACTION``
    of its voxels in the window's top ``TOP_BAND``) may continue into brighter
    tissue: the rounds start again from the window moved up by its half-width (its
    low side, ``LOWER_FACTOR`` x HU, keeps the darker part), and their settled region
    replaces the first only when it contains ``MOVED_COVERS`` of it (the same organ,
    the click's part included); a move up that fails keeps the first. Not settled
    after ``MAX_REESTIMATES`` rounds: refused (suspect, never accepted).

    Raises ``InputError`` when every estimate of the seed's own HU (``seed_hus``) is
    farther than ``half`` from the region's (a vessel or another structure that grew
    into the liver), when nothing liver-like grew, or when the rounds do not settle.
    """
    settled = _settle(smoothed, grow_from, exclude, start_hu, half, seed_hus, first, False)
    hu, _, liver, _, top = settled
    if top <= TOP_FRACTION:
        return settled[:4]
    try:
        moved = _settle(smoothed, grow_from, exclude, hu + half, half, seed_hus, first, True)
    except InputError:
        return settled[:4]  # the move up found no settled brighter region: keep the first
    # Kept only when it contains (nearly all of) the first region: the same organ.
    first_on = sitk.Resample(liver, moved[2], sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    a = sitk.GetArrayViewFromImage(first_on) > 0
    b = sitk.GetArrayViewFromImage(moved[2]) > 0
    total = np.count_nonzero(sitk.GetArrayViewFromImage(liver))
    if np.count_nonzero(a & b) >= MOVED_COVERS * total:
        return moved[:4]
    return settled[:4]


def _settle(
    smoothed: sitk.Image,
    grow_from: list[Seed],
    exclude: list[Seed],
    start_hu: float,
    half: float,
    seed_hus: tuple[float, ...],
    first: Seed,
    moved_up: bool,
) -> tuple[float, tuple[float, float], sitk.Image, list[Seed], float]:
    """Rounds of ``_grow_once`` and the region's mode from ``start_hu`` until settled:
    (HU, window, region, seeds on its grid, fraction in the window's top band)."""
    from hepanav.segmentation.grow import histogram_mode

    hu = start_hu
    for _ in range(MAX_REESTIMATES + 1):
        window = (min(hu - half, LOWER_FACTOR * hu), hu + half)
        liver, local = _grow_once(smoothed, grow_from, exclude, window)
        inside = sitk.GetArrayViewFromImage(liver) > 0
        if not inside.any():
            raise InputError(
                "the region at the seed is thinner than the liver can be (under "
                f"{2 * OPENING_MM:.0f} mm): the seed is not in liver parenchyma",
                first.describe(),
            )
        # A copy: an array view of the temporary image would outlive it (segfault).
        values = sitk.GetArrayFromImage(_on_grid(smoothed, liver))[inside]
        region_hu = histogram_mode(values, 2.0)[0]
        # After the move up, a seed darker than the region but inside its window is on
        # the darker part of the same organ (what the move up was for), not refused.
        darker_ok = moved_up and max(seed_hus) >= window[0]
        _check_hu_match(seed_hus, region_hu, half, first, darker_ok)
        if abs(region_hu - hu) > REESTIMATE_TOL_HU:
            hu = region_hu
            continue
        top = float(np.mean(values >= window[1] - TOP_BAND * half))
        return hu, window, liver, local, top
    raise InputError(
        f"the liver is suspect: its parenchyma HU did not settle ({start_hu:.0f} HU around "
        f"the seed, {hu:.0f} HU after {MAX_REESTIMATES} re-growings from the region); "
        "click deeper in the liver, away from vessels, lesions and the scan's edge",
        first.describe(),
    )


def _on_grid(image: sitk.Image, ref: sitk.Image) -> sitk.Image:
    """``image`` cut to the box of ``ref`` (same spacing and direction, a crop of it)."""
    start = image.TransformPhysicalPointToIndex(ref.GetOrigin())
    return sitk.RegionOfInterest(image, ref.GetSize(), start)


def _check_side(liver: sitk.Image, work: sitk.Image, first: Seed) -> None:
    """Refuse a region whose centroid lies on the patient's left of the body's midline.

    The liver lies in the right upper quadrant: its bulk (centroid) is right of the
    midline (LPS -x) even when its left lobe crosses it, while the spleen, which has a
    portal-venous HU like the liver's (a click on it grew a 220 ml "liver", 88 %
    spleen), lies on the left (+x), as do the stomach and the heart (a click on the
    phantom's heart, on its last slice, grew 212 ml of heart). The midline is the
    left-right centroid of the body outline on the slices the region spans, in
    physical space (LPS x of the voxel centres, any direction matrix). A click in the
    left lobe grows the whole liver and passes. Limitation: situs inversus (liver on
    the left) is refused.
    """
    from hepanav.segmentation.body import body_mask

    arr = sitk.GetArrayViewFromImage(liver) > 0
    if not arr.any():
        return
    centre = _centroid_lps(liver, arr)
    ref = liver
    body = sitk.Resample(body_mask(work), ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    body_arr = sitk.GetArrayViewFromImage(body) > 0
    ks = np.nonzero(arr.any(axis=(1, 2)))[0]
    slab = np.zeros_like(body_arr)
    slab[ks] = body_arr[ks]
    if not slab.any():
        return
    midline = _centroid_lps(liver, slab)
    left_mm = centre[0] - midline[0]
    if left_mm > 0.0:
        raise InputError(
            f"does not look like the liver: the region grown from the seed lies on the "
            f"patient's left (its centre {left_mm:.0f} mm left of the body's midline), where "
            "the spleen, stomach and heart are; the liver's bulk is right of the midline; "
            "click the liver",
            first.describe(),
        )


def _centroid_lps(image: sitk.Image, arr: np.ndarray) -> np.ndarray:
    """LPS mm centroid of the voxels ``arr`` (z, y, x) of ``image``'s grid."""
    k, j, i = (float(np.mean(a)) for a in np.nonzero(arr))
    return np.asarray(image.TransformContinuousIndexToPhysicalPoint((i, j, k)))


def _parenchyma_mode(smoothed: sitk.Image, seeds: list[Seed], radius_mm: float = 15.0) -> float:
    """Histogram mode of the HU within ``radius_mm`` of the seeds: the parenchyma peak,
    not pulled up by the enhancing vessels a median around the click would include."""
    from hepanav.segmentation.grow import _ball_values, histogram_mode

    values = _ball_values(smoothed, seeds, radius_mm)
    return histogram_mode(values, 2.0)[0]


def _local(image: sitk.Image, seed: Seed) -> Seed:
    index = image.TransformPhysicalPointToIndex(seed.lps)
    return seed.at(index)


def _fill_axial(mask: sitk.Image) -> sitk.Image:
    """Fill holes slice by slice (axial in index space: the CT's slices)."""
    arr = sitk.GetArrayFromImage(mask).astype(bool)
    for k in range(arr.shape[0]):
        if arr[k].any():
            arr[k] = ndimage.binary_fill_holes(arr[k])
    out = sitk.GetImageFromArray(arr.astype(np.uint8))
    out.CopyInformation(mask)
    return out


def _check_hu_match(
    seed_hus: tuple[float, ...],
    region_hu: float,
    half_hu: float,
    first: Seed,
    darker_ok: bool = False,
) -> None:
    """Refuse when every estimate of the seed's HU is farther than ``half_hu`` from the
    region's (the nearest one is named); a darker seed passes when ``darker_ok``.

    A click on a vessel (the aorta, 150-250 HU in the portal venous phase, above the
    liver's 100-130 HU) grows, through the low side of its window, into the liver or
    other tissue, whose HU then differs from the seed's by more than the window's
    half-width."""
    seed_hu = min(seed_hus, key=lambda h: abs(h - region_hu))
    if abs(seed_hu - region_hu) <= half_hu or (darker_ok and seed_hu < region_hu):
        return
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
            f"the liver leaked: the region grew more than --max-radius-mm "
            f"{max_radius_mm:g} from the seed (to {far:.1f} mm)",
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
