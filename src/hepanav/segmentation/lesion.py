"""The path tumour and ablation-zone segmentation share: check the clicks, grow the
lesion on a crop around them (:func:`hepanav.segmentation.grow.grow_lesion`), and
put the smoothed mask back onto the CT grid as a :class:`Segmentation`."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from hepanav.core.errors import InputError
from hepanav.segmentation.fraction import edge_fraction
from hepanav.segmentation.grow import (
    SURFACE_SIGMA_MM,
    Appearance,
    Grown,
    _a,
    grow_lesion,
    smoothing_sigma,
)
from hepanav.segmentation.morphology import bounding_box, signed_distance_mm
from hepanav.segmentation.result import (
    Segmentation,
    paste,
    remove_spikes_and_pits,
    smooth_surface,
)
from hepanav.segmentation.seeds import Seed, checked_seeds
from hepanav.segmentation.windows import hu_windows

# What a focal liver lesion's surroundings and shape may be (check_focal_lesion).
# The boundary shell: voxels 0.5-3 mm outside the grown region (smoothed CT).
BOUNDARY_SHELL_MM = (0.5, 3.0)
# More than this fraction of the shell in cortical bone (> bone_above_hu): the region is
# a bone (a vertebral body, a rib), whose cortex encloses it. A lesion in the liver
# is surrounded by parenchyma; one beside a rib has at most a patch of bone within 3 mm.
MAX_BONE_BOUNDARY = 0.25
# More than this fraction of the shell in fat (< fat_below_hu): the region lies in fat
# (a bowel loop, a lymph node, a retroperitoneal vessel), not in the liver. A subcapsular
# or exophytic lesion keeps at least half its boundary on parenchyma.
MAX_FAT_BOUNDARY = 0.5
# Tubular: principal-axis ratio (SimpleITK LabelShapeStatistics elongation, sqrt of the
# largest over the middle principal moment) above this ... Lesions are roughly
# star-shaped about the click, axis ratios of 0.6 and more (elongation <= 1.7) ...
MAX_LESION_ELONGATION = 2.0
# ... AND more than this fraction of the voxels just outside (<= CUT_SHELL_MM, or the
# finest voxel spacing when that is coarser: on a 3 mm grid no voxel centre lies within
# 1.6 mm and a vessel cut by the bound passed as "not cut") still in the growing window:
# the region did not end at an edge but was cut by the growth bound
# (a vessel running on past it). HepaNav defaults.
MAX_CUT_BOUNDARY = 0.15
CUT_SHELL_MM = 1.6
# An ablation zone's limits (check_zone). Its needle tract leaves through the shell (gas
# counts as fat) and it may be subcapsular; measured on the 17 dev cases (tract 2 mm,
# gas bubbles): <= 0.5 % of a zone's shell is fat or gas, none bone, elongation <= 1.1,
# so the tumour's limits hold for zones too (kept apart so they can differ).
ZONE_MAX_BONE_BOUNDARY = MAX_BONE_BOUNDARY
ZONE_MAX_FAT_BOUNDARY = MAX_FAT_BOUNDARY
# Embedded in liver (check_embedded): the shell EMBED_SHELL_MM outside the grown region
# (smoothed CT, voxels inside the image) must be liver-like parenchyma, i.e. within
# EMBED_TOL_HU (or half the lesion contrast, if larger) of the parenchyma HU the growing
# measured, over more than MIN_EMBEDDED of it. A liver lesion lies in an organ many cm
# thick; a kidney's medulla is wrapped in a cortex about 1 cm thick, then fat.
# Measured (docs/segmentation.md "Bad input"): dev cases >= 0.65; analytic subcapsular
# lesions and zones (r 8-16 mm, tangent to the capsule or bulging r/2 through it, fat,
# lung or 3 mm fat + muscle beyond) 0.46-0.77; misplaced clicks on the real CT: aorta
# 0.38, spinal canal 0.34, back muscle 0.33.
EMBED_SHELL_MM = (10.0, 20.0)
EMBED_TOL_HU = 25.0
MIN_EMBEDDED = 0.4
# Homogeneous (check_embedded): of that shell's liver-like voxels (within EMBED_TOL_HU of
# the parenchyma HU), more than MIN_HOMOGENEOUS within HOMOGENEOUS_TOL_HU of it. Liver
# parenchyma is one peak; tissues that only pass through the range (stomach content,
# fat beside an organ, muscle) spread flat over it (12 / 25 = 0.48). Measured
# (docs/segmentation.md "Bad input"): the 34 tumours and zones of the dev set 0.70-0.95
# (lowest: the real DICOM liver, 8 mm zone), holdout 0.81-0.96, the analytic subcapsular
# lesions 0.99-1.0;
# the DICOM clicks accepted before: stomach fluid and right adrenal 0.51, other organs
# 0.45-0.54. The limit sits nearer the flat mixture than the lowest real liver.
HOMOGENEOUS_TOL_HU = 12.0
MIN_HOMOGENEOUS = 0.58
# Tumour and zone carry their edge voxels' partial-volume fractions read from the CT
# (hepanav.segmentation.fraction) for the margin's sub-voxel surface.
EDGE_FRACTION = True


def grow_checked(
    ct: sitk.Image,
    seeds: list[Seed],
    appearance: Appearance,
    max_radius_mm: float,
    what: str,
    include: list[Seed] | None = None,
    exclude: list[Seed] | None = None,
    *,
    dark_is_lesion: bool = False,
) -> tuple[Grown, list[Seed], list[Seed]]:
    """Seeds checked (:func:`checked_seeds`), then the lesion grown on a crop of ``ct``
    (its cost scales with ``max_radius_mm``, not the CT). Returns the grown lesion
    (crop grid) and the normalised include/exclude lists. Raises ``InputError``."""
    seeds, include, exclude = checked_seeds(ct, seeds, include, exclude, what)
    grown = grow_lesion(
        ct,
        seeds,
        appearance,
        max_radius_mm,
        what,
        include=include,
        exclude=exclude,
        dark_is_lesion=dark_is_lesion,
    )
    return grown, include, exclude


def check_focal_lesion(
    grown: Grown,
    seeds: list[Seed],
    what: str,
    *,
    max_bone: float = MAX_BONE_BOUNDARY,
    max_fat: float = MAX_FAT_BOUNDARY,
) -> None:
    """Refuse a grown region that is not a focal lesion in the liver (a misplaced click).

    A focal liver lesion (tumour) is surrounded by liver parenchyma and is compact. So
    the region grown from a seed in bone, a vessel, bowel or another organ is refused
    when (first that applies):

    0. the region is denser than any soft-tissue lesion (``lesion_max_hu``, 250 HU:
       a rib or vertebra, calcification, iodised oil), or the tissue around it
       (``grown.parenchyma_hu``) is not on the far side of the
       region's HU by ``min_lesion_contrast_hu``: darker around a "hypodense" region
       (the aorta or a rib's marrow grown as a zone from its darker rim), brighter
       around a "hyperdense" one;
    1. the surrounding attenuation (``grown.parenchyma_hu``, the median of the shell
       2.5-7 mm outside the region) is outside the plausible liver range
       (``liver_min_hu``-``liver_max_hu`` of ``hu_windows.yaml``);
    2. more than ``MAX_BONE_BOUNDARY`` of its boundary shell (``BOUNDARY_SHELL_MM``
       outside, on the smoothed CT) is cortical bone (> ``bone_above_hu``, 400 HU):
       the cortex of a vertebra or rib encloses it;
    3. more than ``MAX_FAT_BOUNDARY`` of that shell is fat (< ``fat_below_hu``);
    4. it is tubular: elongation (principal-axis ratio, SimpleITK
       ``LabelShapeStatisticsImageFilter``) above ``MAX_LESION_ELONGATION`` and more
       than ``MAX_CUT_BOUNDARY`` of the voxels within ``CUT_SHELL_MM`` (at least the
       finest voxel spacing) outside still in the
       growing window (``grown.window_hu``): cut by the growth bound, a vessel.

    Parameters
    ----------
    grown : Grown
        The grown region (mask and smoothed CT on the crop grid, LPS mm).
    seeds : list of Seed
        The clicks; the first is named in the error.
    what : str
        The structure's name for the message ("tumour").

    Raises
    ------
    InputError
        One line naming the seed (LPS mm) and what was found.
    """
    win = hu_windows()
    name = seeds[0].describe()
    par = grown.parenchyma_hu
    darker = grown.appearance == "hypo"
    if grown.lesion_hu > win["lesion_max_hu"]:
        raise InputError(
            f"does not look like {_a(what)}: the grown region is {grown.lesion_hu:.0f} HU, "
            f"denser than a soft-tissue liver lesion (> {win['lesion_max_hu']:.0f} HU: bone, "
            "calcification or iodised oil)",
            name,
        )
    if (par - grown.lesion_hu) * (1 if darker else -1) < win["min_lesion_contrast_hu"]:
        raise InputError(
            f"does not look like {_a(what)}: the grown region ({grown.lesion_hu:.0f} HU) is not "
            f"{'darker' if darker else 'brighter'} than the tissue around it ({par:.0f} HU) "
            f"by {win['min_lesion_contrast_hu']:.0f} HU",
            name,
        )
    if not win["liver_min_hu"] <= par <= win["liver_max_hu"]:
        raise InputError(
            f"does not look like {_a(what)} in the liver: the tissue around the grown region "
            f"is {par:.0f} HU, outside liver parenchyma ({win['liver_min_hu']:.0f}-"
            f"{win['liver_max_hu']:.0f} HU in any phase)",
            name,
        )
    dist = sitk.GetArrayFromImage(signed_distance_mm(grown.mask, within_mm=BOUNDARY_SHELL_MM[1]))
    smoothed = sitk.GetArrayFromImage(grown.smoothed)
    shell = smoothed[(dist > BOUNDARY_SHELL_MM[0]) & (dist <= BOUNDARY_SHELL_MM[1])]
    if shell.size:
        bone = float(np.mean(shell > win["bone_above_hu"]))
        if bone > max_bone:
            raise InputError(
                f"does not look like {_a(what)}: {100 * bone:.0f}% of the grown region's boundary "
                f"is bone (> {win['bone_above_hu']:.0f} HU; lesion {grown.lesion_hu:.0f} HU): "
                "the seed is in a bone, not in the liver",
                name,
            )
        fat = float(np.mean(shell < win["fat_below_hu"]))
        if fat > max_fat:
            raise InputError(
                f"does not look like {_a(what)} in the liver: {100 * fat:.0f}% of the grown "
                f"region's boundary is fat (< {win['fat_below_hu']:.0f} HU)",
                name,
            )
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(grown.mask > 0, sitk.sitkUInt8))
    if stats.HasLabel(1):
        elongation = float(stats.GetElongation(1))
        reach = max(CUT_SHELL_MM, 1.001 * min(grown.mask.GetSpacing()))
        near = smoothed[(dist > 0) & (dist <= reach)]
        lo, hi = grown.window_hu
        cut = float(np.mean((near >= lo) & (near <= hi))) if near.size else 0.0
        if elongation > MAX_LESION_ELONGATION and cut > MAX_CUT_BOUNDARY:
            # Equivalent ellipsoid's axes (mm): longest and middle.
            axes = sorted(stats.GetEquivalentEllipsoidDiameter(1))
            length, width = axes[-1], axes[-2]
            raise InputError(
                f"not {_a(what)}, looks like a vessel: tubular, {length:.0f} mm long, "
                f"{width:.0f} mm wide (grown region {grown.lesion_hu:.0f} HU, principal-axis "
                f"ratio {elongation:.1f}, lesions <= {MAX_LESION_ELONGATION:g}; it runs on past "
                "the growth bound)",
                name,
            )


def _embedding_shell(ct: sitk.Image, grown: Grown) -> np.ndarray:
    """Smoothed HU (Gaussian ``smoothing_sigma``, about 1 mm) of the voxels of the shell
    ``EMBED_SHELL_MM`` outside the grown region that lie inside the CT (1-D array; empty
    when the shell lies outside the CT)."""
    outer = EMBED_SHELL_MM[1]
    around = _smoothed_around(ct, grown, outer + 2.0)
    if around is None:
        return np.empty(0, np.float32)
    smoothed, mask = around
    dist = sitk.GetArrayFromImage(signed_distance_mm(mask, within_mm=outer))
    return sitk.GetArrayViewFromImage(smoothed)[(dist > EMBED_SHELL_MM[0]) & (dist <= outer)]


def _smoothed_around(
    ct: sitk.Image, grown: Grown, pad_mm: float
) -> tuple[sitk.Image, sitk.Image] | None:
    """The CT (float32, Gaussian-smoothed by ``smoothing_sigma``) on the grown region's
    box padded by ``pad_mm`` (clipped to the CT), and the region on that grid (uint8);
    None when the region is empty."""
    box = bounding_box(grown.mask)
    if box is None:
        return None
    lo = np.asarray(box[0])
    hi = lo + np.asarray(box[1]) - 1
    corners = [grown.mask.TransformIndexToPhysicalPoint(tuple(int(v) for v in c)) for c in (lo, hi)]
    idx = np.asarray([ct.TransformPhysicalPointToIndex(c) for c in corners])
    pad = np.ceil(pad_mm / np.asarray(ct.GetSpacing())).astype(int)
    start = np.maximum(idx.min(axis=0) - pad, 0)
    stop = np.minimum(idx.max(axis=0) + pad, np.asarray(ct.GetSize()) - 1)
    roi = sitk.Cast(
        sitk.RegionOfInterest(ct, (stop - start + 1).tolist(), start.tolist()), sitk.sitkFloat32
    )
    smoothed = sitk.SmoothingRecursiveGaussian(roi, smoothing_sigma(roi))
    mask = sitk.Resample(
        grown.mask, roi, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8
    )
    return smoothed, mask


def _embedded_tolerance_hu(grown: Grown) -> float:
    """The liver-like tolerance around ``grown.parenchyma_hu`` (see ``MIN_EMBEDDED``)."""
    contrast = grown.lesion_hu - grown.parenchyma_hu
    # Hypodense: within half the contrast (or EMBED_TOL_HU) of the parenchyma. Hyperdense:
    # EMBED_TOL_HU only (the eval's hyperdense lesions are +45..+55 HU, so 22-28 HU): a
    # vertebra's marrow (162 HU in 5 HU tissue) would widen it to +-78 HU and count
    # muscle and fat-water mix as parenchyma.
    return EMBED_TOL_HU if contrast > 0 else max(EMBED_TOL_HU, 0.5 * abs(contrast))


def embedded_share(ct: sitk.Image, grown: Grown) -> float:
    """Share of the shell ``EMBED_SHELL_MM`` outside the grown region (voxels inside the
    CT) whose smoothed HU is liver-like parenchyma (see ``MIN_EMBEDDED``); NaN when
    the shell lies outside the CT."""
    values = _embedding_shell(ct, grown)
    if values.size == 0:
        return float("nan")
    tol = _embedded_tolerance_hu(grown)
    return float(np.mean(np.abs(values - grown.parenchyma_hu) <= tol))


def homogeneity(values: np.ndarray, parenchyma_hu: float) -> float:
    """Of the ``values`` (HU) within ``EMBED_TOL_HU`` of ``parenchyma_hu``, the share
    within ``HOMOGENEOUS_TOL_HU`` of it (NaN when there are none). A homogeneous organ
    (liver parenchyma: noise and a few vessels' partial volume) gives a peak, 0.75-0.9
    measured; a mixture of tissues that merely passes through that HU range (stomach
    content, fat against organs, muscle) is spread flat over it: about
    ``HOMOGENEOUS_TOL_HU / EMBED_TOL_HU`` = 0.48."""
    near = np.abs(values - parenchyma_hu)
    liver_like = int(np.count_nonzero(near <= EMBED_TOL_HU))
    if liver_like == 0:
        return float("nan")
    return float(np.count_nonzero(near <= HOMOGENEOUS_TOL_HU) / liver_like)


def check_embedded(ct: sitk.Image, grown: Grown, seeds: list[Seed], what: str) -> None:
    """Refuse a region not embedded in liver-like parenchyma (:func:`embedded_share`
    at most ``MIN_EMBEDDED``): a lesion-like structure of another organ (the medulla
    of a kidney inside its cortex); or whose liver-like surroundings are not
    homogeneous (:func:`homogeneity` at most ``MIN_HOMOGENEOUS``): a pocket of fluid in
    stomach content, a fat-and-tissue gap beside the liver (the adrenal). Raises
    ``InputError`` naming the seed."""
    values = _embedding_shell(ct, grown)
    if values.size == 0:
        share = float("nan")
    else:
        tol = _embedded_tolerance_hu(grown)
        share = float(np.mean(np.abs(values - grown.parenchyma_hu) <= tol))
    if share <= MIN_EMBEDDED:
        raise InputError(
            f"does not look like {_a(what)} in the liver: "
            f"only {100 * share:.0f}% of the tissue {EMBED_SHELL_MM[0]:g}-{EMBED_SHELL_MM[1]:g} mm "
            f"around the grown region ({grown.lesion_hu:.0f} HU) is parenchyma like that at "
            f"its edge ({grown.parenchyma_hu:.0f} HU; a liver lesion lies in liver, more "
            f"than {100 * MIN_EMBEDDED:.0f}%): the seed is in another organ",
            seeds[0].describe(),
        )
    uniform = homogeneity(values, grown.parenchyma_hu)
    if uniform <= MIN_HOMOGENEOUS:
        raise InputError(
            f"does not look like {_a(what)} in the liver: the tissue "
            f"{EMBED_SHELL_MM[0]:g}-{EMBED_SHELL_MM[1]:g} mm around the grown region "
            f"({grown.lesion_hu:.0f} HU) is not homogeneous parenchyma: of its voxels within "
            f"{EMBED_TOL_HU:g} HU of {grown.parenchyma_hu:.0f} HU only {100 * uniform:.0f}% lie "
            f"within {HOMOGENEOUS_TOL_HU:g} HU (liver > {100 * MIN_HOMOGENEOUS:.0f}%): a mixture "
            "of tissues (stomach or bowel content, fat beside an organ), not the liver",
            seeds[0].describe(),
        )


def check_zone(ct: sitk.Image, grown: Grown, seeds: list[Seed]) -> None:
    """The focal-lesion and liver checks for an ablation zone (:func:`check_focal_lesion`
    with the zone's limits ``ZONE_MAX_BONE_BOUNDARY``, ``ZONE_MAX_FAT_BOUNDARY``, then
    :func:`check_embedded`). Raises ``InputError`` naming the seed."""
    what = "ablation zone"
    check_focal_lesion(
        grown, seeds, what, max_bone=ZONE_MAX_BONE_BOUNDARY, max_fat=ZONE_MAX_FAT_BOUNDARY
    )
    check_embedded(ct, grown, seeds, what)


def lesion_segmentation(
    ct: sitk.Image,
    local_mask: sitk.Image,
    grown: Grown,
    *,
    structure: str,
    method: str,
    seeds: list[Seed],
    include: list[Seed],
    exclude: list[Seed],
    max_radius_mm: float,
    notes: list[str] | None = None,
) -> Segmentation:
    """The crop-grid mask surface-smoothed (:func:`smooth_surface`), without one-voxel
    spikes and pits (:func:`remove_spikes_and_pits`), pasted onto the CT grid, with
    what the growing measured (HU, window, notes) and its edge fractions
    (:func:`hepanav.segmentation.fraction.edge_fraction`, when ``EDGE_FRACTION``)."""
    smoothed = remove_spikes_and_pits(smooth_surface(local_mask, SURFACE_SIGMA_MM))
    return Segmentation(
        mask=paste(smoothed, ct),
        fraction=edge_fraction(ct, smoothed) if EDGE_FRACTION else None,
        structure=structure,
        method=method,
        seeds=seeds,
        include=include,
        exclude=exclude,
        appearance=grown.appearance,
        lesion_hu=grown.lesion_hu,
        parenchyma_hu=grown.parenchyma_hu,
        window_hu=grown.window_hu,
        max_radius_mm=max_radius_mm,
        notes=list(grown.notes if notes is None else notes),
        excluded_mm3=grown.excluded_mm3,
    )


# A vessel continues (check_vessel_continuity): a hyperdense region is a piece of a tube cut
# by the growth bound when the structure of the growing window connected to it, tracked up
# to TRACK_MM outside it, leaves it through an "exit" (a connected part of it
# THICK_BAND_MM from the region) that
#  - runs on at least MIN_VESSEL_REACH_MM from the region,
#  - is as thick as the region (its inscribed radius >= MIN_THICKNESS_RATIO x the
#    region's: a lesion's feeding vessel is thinner than the lesion), and
#  - points at the region: its principal axis passes within MAX_AXIS_OFFSET x the
#    region's inscribed radius of the region's centroid (the tube runs THROUGH the
#    click; a vessel running past a lesion, even as thick, misses its centre by the
#    lesion's radius plus its own).
# A vessel touching a lesion and at least 0.6 x as thick has its axis at least 1.6 radii
# from the lesion's centre (its own radius plus the lesion's): 0.6 r of margin by
# construction.
# A vessel junction (vessel_junction): the region is where tubes meet (the portal-venous
# confluence cut by the star bound to a blob wider than its branches, whose exits then
# aim 1.9-2.3 r off its centre) when two exits reaching MIN_VESSEL_REACH_MM
#  - are both at least JUNCTION_THICKNESS_RATIO x as thick as the region,
#  - have their axes within JUNCTION_MAX_AXIS_OFFSET x r of its centroid,
#  - run in different directions (axes at least JUNCTION_MIN_AXES_DEG apart), and
#  - one of them points at the region (its axis within JUNCTION_MAX_POINTING_DEG of the
#    line from the region's centroid to the exit: a branch ending in it).
# A lesion touching or wedged between vessels has them running past it: their axes are
# perpendicular to that line (80-90 degrees measured) and, side by side, parallel. The
# junction rule without the last two conditions (tried before) refused the 4 mm lesion
# wedged between two 2.5 mm vessels (tests/test_segmentation_smallfit.py).
# Measured: docs/segmentation.md "Bad input".
TRACK_MM = 30.0
THICK_BAND_MM = (3.0, 15.0)
MIN_EXIT_VOXELS = 8
MIN_VESSEL_REACH_MM = 20.0
MIN_THICKNESS_RATIO = 0.6
MAX_AXIS_OFFSET = 1.0
JUNCTION_THICKNESS_RATIO = 0.5
JUNCTION_MAX_AXIS_OFFSET = 3.0
JUNCTION_MIN_AXES_DEG = 60.0
JUNCTION_MAX_POINTING_DEG = 70.0


def vessel_continuation(ct: sitk.Image, grown: Grown) -> dict:
    """The growing window's structure continuing outside the region, exit by exit.

    On a crop of ``ct`` around the region padded by ``TRACK_MM`` (Gaussian
    ``smoothing_sigma``, about 1 mm, as the growing), the voxels outside the region in
    ``grown.window_hu`` and within ``TRACK_MM`` of it that are connected (26-neighbours)
    to the region form its continuation; its connected parts ``THICK_BAND_MM`` from the
    region (at least ``MIN_EXIT_VOXELS``) are the exits. Returns ``region_radius_mm``
    (the region's inscribed radius) and ``exits``: one dict per exit with ``reach_mm``
    (farthest voxel, from the region, of the continuation component it belongs to),
    ``radius_mm`` (its largest inscribed radius in the continuation) and ``offset_mm``
    (distance from the region's centroid to the exit's principal axis), ``pointing_deg``
    (angle between that axis and the line from the centroid to the exit's centre: near
    0 for a tube ending in the region, near 90 for one running past it) and ``axis``
    (unit vector, array z, y, x order). mm throughout (voxel centres scaled by the
    spacing; the CT's direction is a rotation).
    """
    from scipy import ndimage

    out: dict = {"region_radius_mm": 0.0, "exits": []}
    around = _smoothed_around(ct, grown, TRACK_MM + 2.0)
    if around is None:
        return out
    smoothed_img, region_img = around
    smoothed = sitk.GetArrayFromImage(smoothed_img)
    region = sitk.GetArrayFromImage(region_img) > 0
    if not region.any():
        return out
    sampling = np.asarray(ct.GetSpacing()[::-1], float)
    out["region_radius_mm"] = float(ndimage.distance_transform_edt(region, sampling=sampling).max())
    dist = sitk.GetArrayFromImage(signed_distance_mm(region_img, within_mm=TRACK_MM))
    w_lo, w_hi = grown.window_hu
    cand = (smoothed >= w_lo) & (smoothed <= w_hi) & ~region & (dist <= TRACK_MM)
    full = np.ones((3, 3, 3), bool)
    labels, _ = ndimage.label(cand | region, structure=full)
    ids = np.unique(labels[region])
    cont = np.isin(labels, ids[ids > 0]) & ~region
    if not cont.any():
        return out
    cont_labels, _ = ndimage.label(cont, structure=full)
    thick = ndimage.distance_transform_edt(cont, sampling=sampling)
    band = cont & (dist > THICK_BAND_MM[0]) & (dist <= THICK_BAND_MM[1])
    exits, n = ndimage.label(band, structure=full)
    centre = np.argwhere(region).mean(axis=0) * sampling
    for e in range(1, n + 1):
        sel = exits == e
        pts = np.argwhere(sel) * sampling
        if len(pts) < MIN_EXIT_VOXELS:
            continue
        comp = cont_labels == np.bincount(cont_labels[sel]).argmax()
        mean = pts.mean(axis=0)
        axis = np.linalg.svd(pts - mean, full_matrices=False)[2][0]
        rel = centre - mean
        offset = float(np.linalg.norm(rel - np.dot(rel, axis) * axis))
        along = abs(float(np.dot(rel, axis))) / max(float(np.linalg.norm(rel)), 1e-9)
        out["exits"].append(
            {
                "reach_mm": float(dist[comp].max()),
                "radius_mm": float(thick[sel].max()),
                "offset_mm": offset,
                "pointing_deg": float(np.degrees(np.arccos(min(along, 1.0)))),
                "axis": axis.tolist(),
            }
        )
    return out


def vessel_exit(f: dict) -> dict | None:
    """The first exit of :func:`vessel_continuation`'s ``f`` that makes the region a
    vessel piece (long, as thick as the region, its axis through it), or None."""
    r = max(f["region_radius_mm"], 1e-6)
    thick = [
        e
        for e in f["exits"]
        if e["reach_mm"] >= MIN_VESSEL_REACH_MM and e["radius_mm"] >= MIN_THICKNESS_RATIO * r
    ]
    for e in thick:
        if e["offset_mm"] <= MAX_AXIS_OFFSET * r:
            return e
    return None


def vessel_junction(f: dict) -> tuple[dict, dict, float] | None:
    """Two exits of :func:`vessel_continuation`'s ``f`` that make the region a vessel
    junction (``JUNCTION_*``: thick, near its centre, in different directions, one
    ending in it) and the angle between their axes (degrees), or None."""
    r = max(f["region_radius_mm"], 1e-6)
    thick = [
        e
        for e in f["exits"]
        if e["reach_mm"] >= MIN_VESSEL_REACH_MM
        and e["radius_mm"] >= JUNCTION_THICKNESS_RATIO * r
        and e["offset_mm"] <= JUNCTION_MAX_AXIS_OFFSET * r
    ]
    for i, a in enumerate(thick):
        for b in thick[i + 1 :]:
            cos = abs(float(np.dot(a["axis"], b["axis"])))
            axes = float(np.degrees(np.arccos(min(cos, 1.0))))
            pointing = min(a["pointing_deg"], b["pointing_deg"])
            if axes >= JUNCTION_MIN_AXES_DEG and pointing <= JUNCTION_MAX_POINTING_DEG:
                return a, b, axes
    return None


def check_vessel_continuity(ct: sitk.Image, grown: Grown, seeds: list[Seed], what: str) -> None:
    """Refuse a hyperdense region that is a piece of a vessel (:func:`vessel_exit`) or
    a vessel junction (:func:`vessel_junction`). Raises ``InputError`` naming the seed
    and the exits' length, thickness and offset."""
    if grown.appearance != "hyper":
        return
    f = vessel_continuation(ct, grown)
    _log_features(f)
    e = vessel_exit(f)
    junction = vessel_junction(f) if e is None else None
    if junction is not None:
        a, b, axes = junction
        lo, hi = grown.window_hu
        r = f["region_radius_mm"]
        raise InputError(
            f"not {_a(what)}, looks like a vessel: a junction of vessels, the bright structure "
            f"({lo:.0f}-{hi:.0f} HU) of the grown region ({grown.lesion_hu:.0f} HU in "
            f"{grown.parenchyma_hu:.0f} HU liver) leaves it as two tubes running on over "
            f"{min(a['reach_mm'], b['reach_mm']):.0f} mm in directions {axes:.0f} degrees apart "
            f"(radius {a['radius_mm']:.1f} and {b['radius_mm']:.1f} mm, region {r:.1f} mm), "
            f"one ending in the region; click the lesion itself (vessels beside a lesion run "
            "past it)",
            seeds[0].describe(),
        )
    if e is not None:
        lo, hi = grown.window_hu
        r = f["region_radius_mm"]
        how = (
            f"as a tube as thick as the region (radius {e['radius_mm']:.1f} mm, region "
            f"{r:.1f} mm) whose axis passes {e['offset_mm']:.1f} mm from its centre"
        )
        raise InputError(
            f"not {_a(what)}, looks like a vessel: the bright structure ({lo:.0f}-{hi:.0f} HU) "
            f"of the grown region ({grown.lesion_hu:.0f} HU in {grown.parenchyma_hu:.0f} HU "
            f"liver) runs on over {e['reach_mm']:.0f} mm outside it {how}; click the lesion "
            "itself (a lesion beside a vessel is wider than it or off its axis)",
            seeds[0].describe(),
        )


def _log_features(f: dict) -> None:
    """Append the measured features to ``$HEPANAV_VESSEL_LOG`` when set (measurement aid)."""
    import json
    import os

    path = os.environ.get("HEPANAV_VESSEL_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps(f, default=lambda v: round(float(v), 2)) + "\n")
