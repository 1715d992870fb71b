"""Adaptive-threshold region growing for a focal lesion around seed clicks.

The method (chosen by measurement, docs/segmentation.md): Gaussian smoothing
(sigma max(1 mm, half a voxel), physical), lesion attenuation from a biweight mean
within 3 mm of the seeds, surrounding parenchyma from the histogram mode of the region of interest,
then SimpleITK ``ConnectedThreshold`` at the midpoint between the two (the 50 %
partial-volume level, i.e. the true edge of a blurred step) and parenchyma
re-estimated in a shell 2.5-7 mm outside the grown region until it settles. A
morphological opening (1-2.5 mm ball) then cuts thin attachments (vessels,
needle tracts, necks into fat) and holes are filled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import SimpleITK as sitk

from hepanav.core.errors import InputError
from hepanav.imaging.geometry import index_to_lps_matrix, lps_to_voxel, voxel_to_lps
from hepanav.segmentation.morphology import (
    bounding_box,
    component_at,
    crop_box,
    dilate_mm,
    erosions_mm,
    fill_holes,
    open_mm,
    signed_distance_mm,
    uncrop_box,
)
from hepanav.segmentation.seeds import Seed
from hepanav.segmentation.windows import hu_windows

Appearance = Literal["hypo", "hyper", "auto"]


def _a(noun: str) -> str:
    """``noun`` with its indefinite article (messages: "an ablation zone", "a tumour")."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


SMOOTHING_MM = 1.0
# ... and at least this fraction of the coarsest voxel: 1 mm barely averages 3 mm voxels,
# whose noise (13 HU on the 3 mm scan) then breaks the growing of a 0 HU tumour
# against a 45 HU liver into fragments ("nothing grew").
SMOOTHING_VOXELS = 0.5
SEED_RADIUS_MM = 3.0
SHELL_MM = (2.5, 7.0)
RIM_MM = 4.5
RECONSTRUCT_MM = 1.5
# Largest opening ball of _clean (opening_radius_mm), mm.
OPEN_MAX_MM = 4.0
DARK_MM = 2.0
# Growing is held within STAR_FACTOR x the median edge distance + STAR_PAD_MM of the
# seeds: lesions are roughly star-shaped about a central click (lobulation and axis
# ratios of 0.6 stay well inside).
STAR_FACTOR = 1.6
STAR_PAD_MM = 3.0
ROI_PAD_MM = 8.0
# No contrast within a --max-radius-mm below this: the seed is re-measured within it
# (a leak when the surroundings lie there; prepare_lesion).
CONTRAST_LOOK_MM = 40.0
CONTRAST_LOOK_SHARE = 0.05  # of the soft tissue there (not a few noise voxels)
# Per-direction star-shaped bound (star_bound): the edge radius along STAR_RAYS rays,
# fitted robustly by a smooth radial function (polynomials of degree STAR_DEGREE on
# the unit sphere, i.e. spherical harmonics up to that order); growing is held
# within the fit x STAR_FIT_FACTOR + max(STAR_FIT_PAD_MM, one voxel).
STAR_FIT = True
STAR_RAYS = 256
STAR_DEGREE = 3
STAR_FIT_FACTOR = 1.0
STAR_FIT_PAD_MM = 1.0
# Tumour only (not the zone, whose long rays run into gas that is zone): in the
# directions of the rays that saw no edge within the padded fit (they ran on into an
# attached vessel as bright as the lesion), the bound is the fit itself, without the
# pad: the pad let a hyperdense tumour bulge one voxel (1.5 mm) into a touching vessel.
STAR_CUT_OUTLIER_PAD = True
# star_bound evaluates the fit on slabs of about this many voxels (speed only).
STAR_SLAB_VOXELS = 32768
MAX_ITERATIONS = 4
MAX_DELTA_HU = 30.0
# Sub-voxel boundary refinement (refine_boundary): band half-width, mm.
REFINE = True
REFINE_BAND_MM = 1.5
REFINE_SIGMA_MM = 1.0
REFINE_OPEN_MM = 2.0
# The deblurring filters run on the band's box padded by this many sigmas (speed only:
# beyond it the crop's edge changes the filtered HU by far less than the noise).
REFINE_REACH_SIGMAS = 6.0
# Surface smoothing of the final lesion masks (result.smooth_surface), mm.
SURFACE_SIGMA_MM = 1.0


@dataclass
class Grown:
    """A grown lesion on the region-of-interest grid, with what was measured on the way."""

    mask: sitk.Image
    smoothed: sitk.Image
    appearance: Literal["hypo", "hyper"]
    lesion_hu: float
    parenchyma_hu: float
    window_hu: tuple[float, float]
    notes: list[str] = field(default_factory=list)
    # Volume the --exclude points cut off the last region grown (mm^3; 0 without them).
    excluded_mm3: float = 0.0


def roi_around(ct: sitk.Image, seeds: list[Seed], radius_mm: float) -> sitk.Image:
    """Float32 crop of ``ct``: the seeds' box grown by ``radius_mm`` (clipped to the image)."""
    idx = np.asarray([s.index for s in seeds])
    pad = np.ceil(radius_mm / np.asarray(ct.GetSpacing())).astype(int)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + pad, np.asarray(ct.GetSize()) - 1)
    roi = sitk.RegionOfInterest(ct, (hi - lo + 1).tolist(), lo.tolist())
    return sitk.Cast(roi, sitk.sitkFloat32)


def smoothing_sigma(image: sitk.Image) -> list[float]:
    """Gaussian sigma per axis, mm: ``SMOOTHING_MM``, at least ``SMOOTHING_VOXELS`` x the
    coarsest voxel (docs/segmentation.md).

    On 1.5 mm voxels 1 mm beat 1.5 and 2 mm: more smoothing blurs curved edges
    inwards (the edge refinement corrects that), less leaves the noise to break the
    threshold. On 3 mm voxels 1 mm is no smoothing at all; half a voxel (1.5 mm)
    grows the 30 and 40 mm tumours of the 3 mm scan, which 1 mm left in fragments.
    """
    step = float(max(image.GetSpacing()))
    return [max(SMOOTHING_MM, SMOOTHING_VOXELS * step)] * image.GetDimension()


def local_seeds(roi: sitk.Image, seeds: list[Seed]) -> list[Seed]:
    """The seeds with indices relative to ``roi`` (same LPS points)."""
    out = []
    for s in seeds:
        index = roi.TransformPhysicalPointToIndex(s.lps)
        out.append(s.at(index))
    return out


def histogram_mode(values: np.ndarray, bin_hu: float = 4.0) -> tuple[float, int]:
    """Mode (HU) of a lightly smoothed histogram and the count in its peak bin."""
    if values.size == 0:
        return float("nan"), 0
    lo, hi = np.floor(values.min()), np.ceil(values.max()) + bin_hu
    counts, edges = np.histogram(values, bins=np.arange(lo, hi + bin_hu, bin_hu))
    smooth = np.convolve(np.pad(counts, 2), [1, 2, 3, 2, 1], mode="same")[2:-2]
    k = int(np.argmax(smooth))
    return float(0.5 * (edges[k] + edges[k + 1])), int(smooth[k])


def biweight_location(values: np.ndarray, start: float, c: float = 4.685) -> float:
    """Tukey-biweight location (HU) of ``values`` started at ``start``.

    Scale: 1.4826 x the median absolute deviation about ``start`` on the narrower
    side (at least 1 HU): gas or a vessel beside the click widens one side only.
    Values beyond ``c`` scales get zero weight, so the estimate stays on the cluster
    around ``start`` (at most 10 re-weightings).
    """
    values = np.asarray(values, float)
    loc = float(start)
    sides = [loc - values[values < loc], values[values > loc] - loc]
    spread = [float(np.median(d)) for d in sides if d.size >= 5]
    scale = max(1.4826 * min(spread, default=0.0), 1.0)
    for _ in range(10):
        z = (values - loc) / (c * scale)
        w = np.where(np.abs(z) < 1, (1 - z**2) ** 2, 0.0)
        if w.sum() <= 0:
            break
        new = float(np.sum(w * values) / w.sum())
        if abs(new - loc) < 0.01:
            loc = new
            break
        loc = new
    return loc


def _ball_values(smoothed: sitk.Image, seeds: list[Seed], radius_mm: float) -> np.ndarray:
    """Values of the voxels within ``radius_mm`` of any seed (only the seeds' box is read)."""
    roi = roi_around(smoothed, seeds, radius_mm)
    arr = sitk.GetArrayViewFromImage(roi)
    full = ((0, 0, 0), roi.GetSize())
    d = np.min([np.sqrt(_squared_distance_mm(roi, s.lps, full)) for s in seeds], axis=0)
    return np.asarray(arr)[d <= radius_mm]


def iteration_box(inside: sitk.Image, seeds: list[Seed]):
    """Index box ``(start, size)`` (x, y, z) of the growing bound ``inside`` and the
    seeds, padded by what a growing iteration reads around them: the parenchyma
    shell (``SHELL_MM``) or the rim layers (``RIM_MM`` + a voxel), plus the dark
    margin (``DARK_MM``) and one voxel; clipped to the image."""
    step = float(max(inside.GetSpacing()))
    pad_mm = max(SHELL_MM[1], RIM_MM + step) + DARK_MM
    pad = [int(np.ceil(pad_mm / s)) + 1 for s in inside.GetSpacing()]
    points = [s.index for s in seeds]
    bound = bounding_box(inside)
    if bound is not None:
        points += [bound[0], np.add(bound[0], bound[1]) - 1]
    idx = np.asarray(points)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + pad, np.asarray(inside.GetSize()) - 1)
    return lo.tolist(), (hi - lo + 1).tolist()


def shift_seeds(seeds: list[Seed], box) -> list[Seed]:
    """The seeds with indices relative to the index ``box`` ``(start, size)`` (same LPS)."""
    start = np.asarray(box[0])
    return [s.at(np.subtract(s.index, start)) for s in seeds]


def _ball_box(image: sitk.Image, point, radius_mm: float):
    """Index box ``(start, size)`` (x, y, z) of ``image`` holding every voxel centre within
    ``radius_mm`` of the LPS ``point`` (clipped to the image); ``None`` if none can be."""
    a, _ = index_to_lps_matrix(image)
    centre = lps_to_voxel(image, np.asarray([point], float))[0]
    # |index offset along axis m| <= |row m of inv(a)| x distance in mm.
    reach = radius_mm * np.linalg.norm(np.linalg.inv(a), axis=1)
    lo = np.maximum(np.floor(centre - reach).astype(int), 0)
    hi = np.minimum(np.ceil(centre + reach).astype(int), np.asarray(image.GetSize()) - 1)
    if np.any(hi < lo):
        return None
    return lo.tolist(), (hi - lo + 1).tolist()


def _offsets_mm(image: sitk.Image, point, box, expand: bool = True) -> list[np.ndarray]:
    """LPS offsets (mm) of the voxel centres of the index ``box`` of ``image`` from the
    LPS ``point``: three (z, y, x) arrays of the box's shape (separable sums, no
    (n, 3) point list). ``expand=False``: each only broadcastable to that shape (not
    expanded along the axes it does not vary along)."""
    a, o = index_to_lps_matrix(image)
    start, size = box
    grids = (
        np.arange(start[0], start[0] + size[0], dtype=float)[None, None, :],
        np.arange(start[1], start[1] + size[1], dtype=float)[None, :, None],
        np.arange(start[2], start[2] + size[2], dtype=float)[:, None, None],
    )
    base = o - np.asarray(point, float)
    shape = (size[2], size[1], size[0])
    out = []
    for c in range(3):
        v = np.asarray(base[c])
        for coef, grid in zip(a[c], grids, strict=True):
            if coef != 0.0:
                v = v + coef * grid
        out.append(np.broadcast_to(v, shape) if expand else v)
    return out


def _squared_distance_mm(image: sitk.Image, point, box) -> np.ndarray:
    """Squared distance (mm^2) of the voxel centres of the index ``box`` from ``point``."""
    vx, vy, vz = _offsets_mm(image, point, box, expand=False)
    shape = (box[1][2], box[1][1], box[1][0])
    return np.broadcast_to(vx * vx + vy * vy + vz * vz, shape)


def seed_distance_mm(image: sitk.Image, seeds: list[Seed], mask: np.ndarray) -> np.ndarray:
    """Distance (mm) from each foreground voxel of ``mask`` (z, y, x) to its nearest seed."""
    k, j, i = np.nonzero(mask)
    lps = voxel_to_lps(image, np.column_stack([i, j, k]))
    return np.min([np.linalg.norm(lps - np.asarray(s.lps), axis=1) for s in seeds], axis=0)


def grow_lesion(
    ct: sitk.Image,
    seeds: list[Seed],
    appearance: Appearance,
    max_radius_mm: float,
    what: str,
    *,
    include: list[Seed] | None = None,
    exclude: list[Seed] | None = None,
    lower_floor_hu: float | None = None,
    dark_is_lesion: bool = False,
) -> Grown:
    """Grow a hypo- or hyperattenuating lesion from seeds on the CT (see module doc).

    Parameters
    ----------
    ct : SimpleITK.Image
        CT in HU (any geometry).
    seeds : list of Seed
        At least one click inside the lesion; all must lie in the image.
    appearance : {"hypo", "hyper", "auto"}
        Darker or brighter than the surrounding parenchyma; ``auto`` decides from
        the seed against the surroundings.
    max_radius_mm : float
        No voxel of the result may lie farther than this from its nearest seed;
        growing past it is a leak and an error.
    what : str
        Name of the structure for messages ("tumour", "ablation zone").
    include, exclude : list of Seed, optional
        Extra points that belong to the lesion (grown from too), and points that do
        not: lesion voxels closer to an exclude point than to every seed are cut off.
    lower_floor_hu : float, optional
        Never grow below this HU (default: the fat limit of ``hu_windows.yaml``).
    dark_is_lesion : bool
        Voxels darker than the grown range within ``DARK_MM`` of the region (gas in
        an ablation zone, its needle tract) count as lesion.

    Returns
    -------
    Grown
        Mask (uint8 0/1) on the region-of-interest grid, plus the HU it used.

    Raises
    ------
    InputError
        Seed on a voxel that does not look like such a lesion (no contrast, wrong
        sign), or a leak past ``max_radius_mm``.
    """
    setup = prepare_lesion(
        ct,
        seeds,
        appearance,
        max_radius_mm,
        what,
        include=include,
        exclude=exclude,
        lower_floor_hu=lower_floor_hu,
        check_appearance=not dark_is_lesion,
    )
    win = hu_windows()
    include = list(include or [])
    roi, smoothed = setup.roi, setup.smoothed
    seeds_r, grow_from, exclude_r = setup.seeds, setup.grow_from, setup.exclude
    chosen, lesion_hu, parenchyma = setup.appearance, setup.lesion_hu, setup.parenchyma_hu
    floor = setup.floor_hu
    notes: list[str] = []
    mask = None
    excluded_mm3 = 0.0
    edge = parenchyma  # attenuation just outside the edge (a rim, when there is one)
    for _ in range(MAX_ITERATIONS):
        threshold = 0.5 * (lesion_hu + edge)
        contrast = max(abs(parenchyma - lesion_hu), 40.0)
        if chosen == "hypo":
            window = (max(lesion_hu - 1.5 * contrast, floor), threshold)
        else:
            window = (threshold, min(lesion_hu + contrast, win["bone_above_hu"]))
        radius = star_radius_mm(smoothed, seeds_r, threshold, chosen, max_radius_mm)
        if radius >= max_radius_mm:
            raise InputError(
                f"the {what} leaked: from the seed the {chosen}dense region reaches "
                f"--max-radius-mm {max_radius_mm:g} in most directions (the seed may be in "
                "parenchyma or a large structure; click the lesion centre or raise "
                "--max-radius-mm)",
                seeds[0].describe(),
            )
        limit = STAR_FACTOR * radius + STAR_PAD_MM
        inside_arr = _ball_array(smoothed, seeds_r + local_seeds(roi, include), limit)
        if STAR_FIT:
            inside_arr &= _star_array(
                smoothed,
                seeds_r,
                threshold,
                chosen,
                limit,
                no_pad_on_outliers=STAR_CUT_OUTLIER_PAD and not dark_is_lesion,
            )
        inside = _uint8_image(inside_arr, smoothed)
        # The rest of the iteration reads the bound, the seeds and SHELL_MM (+ the dark
        # margin) around them only: it runs on that box of the crop (same voxels).
        box = iteration_box(inside, grow_from)
        it_roi, it_smoothed, it_inside = (crop_box(im, box) for im in (roi, smoothed, inside))
        it_from, it_exclude = shift_seeds(grow_from, box), shift_seeds(exclude_r, box)
        outside_value = window[1] + 1000.0 if chosen == "hypo" else window[0] - 1000.0
        bounded = sitk.Mask(it_smoothed, it_inside, outsideValue=outside_value)
        starts = [_nearest_in_window(bounded, s, window) for s in it_from]
        mask = sitk.ConnectedThreshold(
            bounded,
            seedList=[s.index for s in starts],
            lower=float(window[0]),
            upper=float(window[1]),
            replaceValue=1,
        )
        if it_exclude:
            n_grown = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
            mask = _cut_excluded(mask, it_from, it_exclude)
            n_kept = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
            excluded_mm3 = (n_grown - n_kept) * float(np.prod(mask.GetSpacing()))
        if dark_is_lesion:
            # Gas (and its partial-volume ring) beside the grown region is lesion: it
            # must not leave holes and channels that the opening would widen.
            # (numpy on the iteration's box: the same voxels as ITK's Less/And/Or, whose
            # constant is the image's float32 too.)
            dark = sitk.GetArrayViewFromImage(bounded) < np.float32(window[0])
            near = sitk.GetArrayFromImage(dilate_mm(mask, DARK_MM)) > 0
            mask = _uint8_image((sitk.GetArrayFromImage(mask) > 0) | (dark & near), mask)
        # Thin attachments (a vessel touching a hypervascular lesion, a tract) are cut
        # before the leak test: only what stays connected through them is a leak.
        raw = mask
        mask = _clean(mask, it_from)
        _check_leak(mask, it_roi, it_from, max_radius_mm, what, seeds[0])
        # One distance map (to the grown region) gives the shell and the rim layers.
        step = float(max(roi.GetSpacing()))
        dist = sitk.GetArrayFromImage(
            signed_distance_mm(mask, within_mm=max(SHELL_MM[1], RIM_MM + step))
        )
        shell = (dist <= SHELL_MM[1]) & ~(dist <= SHELL_MM[0])  # dilate_mm's thresholds
        values = sitk.GetArrayViewFromImage(it_smoothed)[shell]
        values = values[(values > floor) & (values < win["bone_above_hu"])]
        if values.size < 20:
            break
        new = float(np.median(values))
        # The shell must stay on the far side of the threshold, else it holds lesion.
        if (chosen == "hypo" and new <= threshold) or (chosen == "hyper" and new >= threshold):
            # What surrounds the grown region looks like the seed: no lesion there
            # (a noise blob in parenchyma), unless the contrast check below passes.
            parenchyma = new
            break
        new_edge = _edge_value(it_roi, mask, new, chosen, dist=dist)
        settled = abs(new - parenchyma) < 1.0 and abs(new_edge - edge) < 1.0
        parenchyma, edge = new, new_edge
        if settled:
            break
    mask, raw = uncrop_box(mask, roi, box), uncrop_box(raw, roi, box)
    if abs(parenchyma - lesion_hu) < win["min_lesion_contrast_hu"]:
        raise InputError(
            f"does not look like {_a(what)}: the seed ({lesion_hu:.0f} HU) differs from the "
            f"surrounding parenchyma ({parenchyma:.0f} HU) by less than "
            f"{win['min_lesion_contrast_hu']:.0f} HU",
            seeds[0].describe(),
        )
    if REFINE:
        mask, lesion_hu = refine_boundary(
            roi,
            mask,
            lesion_hu,
            edge,
            chosen,
            grow_from,
            bound=inside,
            # A zone's cut-off part is its tract (gas): the zone keeps
            # the dark voxels beside it (ablation.py); only bright attachments stay out.
            cut=None if dark_is_lesion else sitk.And(raw, sitk.Not(mask)),
            smoothed=smoothed,
        )
    if SMALL_FIT and not dark_is_lesion and (chosen == "hypo" or SMALL_FIT_HYPER):
        # (Not the zone: its gas and tract are not a two-valued step. Hyperdense lesions
        # since the step's background is read locally (SMALL_FIT_LOCAL_BACKGROUND): with
        # a background linear in the direction a touching brighter vessel fitted as
        # lesion, dev 10 +50 0.638 -> 0.404; with the local one 0.644.)
        mask, note = fit_small_lesion(
            roi, mask, lesion_hu, edge, chosen, grow_from, win["min_lesion_contrast_hu"]
        )
        if note:
            notes.append(note)
    return Grown(mask, smoothed, chosen, lesion_hu, parenchyma, window, notes, excluded_mm3)


@dataclass
class LesionSetup:
    """What every lesion boundary method starts from (``prepare_lesion``).

    Images are float32 crops of the CT around the lesion (LPS grid of the CT);
    seeds carry indices on that crop.
    """

    roi: sitk.Image
    smoothed: sitk.Image
    seeds: list[Seed]
    grow_from: list[Seed]
    exclude: list[Seed]
    appearance: Literal["hypo", "hyper"]
    lesion_hu: float
    parenchyma_hu: float
    radius_mm: float
    floor_hu: float


def prepare_lesion(
    ct: sitk.Image,
    seeds: list[Seed],
    appearance: Appearance,
    max_radius_mm: float,
    what: str,
    *,
    include: list[Seed] | None = None,
    exclude: list[Seed] | None = None,
    lower_floor_hu: float | None = None,
    check_appearance: bool = True,
) -> LesionSetup:
    """Crop, smooth and measure a lesion around its seeds (the common preamble).

    1. Crop to the seeds' box grown by ``max_radius_mm`` + ``ROI_PAD_MM`` (cost
       scales with the lesion, not the CT) and smooth (:func:`smoothing_sigma`).
    2. Lesion HU: biweight mean (:func:`biweight_location`, started at the histogram
       mode) of the soft tissue within ``SEED_RADIUS_MM``;
       parenchyma HU: mode of the brighter (hypo) or darker (hyper) soft tissue
       within ``max_radius_mm``; ``auto`` takes the larger peak.
    3. A first ray cast at the midpoint gives the lesion's radius; the crop is
       shrunk to a box a little over twice that.

    With ``check_appearance`` (the tumour, whose ``appearance`` the user may give; not
    the zone, always "hypo"), an explicit appearance the seed contradicts is refused
    (:func:`_check_appearance`).

    Raises
    ------
    InputError
        No soft tissue at the seed, or no lesion/parenchyma contrast of the
        requested sign.
    """
    win = hu_windows()
    include, exclude = list(include or []), list(exclude or [])
    roi = roi_around(ct, seeds + include, max_radius_mm + ROI_PAD_MM)
    smoothed = sitk.SmoothingRecursiveGaussian(roi, smoothing_sigma(roi))
    seeds_r = local_seeds(roi, seeds)
    grow_from = seeds_r + local_seeds(roi, include)
    exclude_r = local_seeds(roi, exclude) if exclude else []
    floor = win["fat_below_hu"] if lower_floor_hu is None else lower_floor_hu
    # Mode of the soft-tissue values near the seeds: robust to gas, a tract or a
    # vessel passing next to the click (a median would be pulled towards them).
    near = _ball_values(smoothed, seeds_r, SEED_RADIUS_MM)
    near = near[near > floor]
    if near.size == 0:
        raise InputError(
            f"no soft tissue around the seed: it does not look like {_a(what)}", seeds[0].describe()
        )
    noise = float(1.4826 * np.median(np.abs(near - np.median(near))))
    # The mode of a few dozen noisy voxels (3 mm slices: ~80 in the ball) wanders by a
    # noise SD; a Tukey-biweight mean started at the mode stays on the mode's cluster
    # (gas or a vessel beside the click get zero weight) with the precision of a mean.
    lesion_hu = biweight_location(near, histogram_mode(near, max(2.0, 0.5 * noise))[0])
    # Three noise SDs separate lesion from parenchyma; capped, since gas or a vessel
    # by the click widens the spread without the parenchyma being farther away.
    delta = float(np.clip(3.0 * noise, win["min_lesion_contrast_hu"], MAX_DELTA_HU))

    around = _ball_values(smoothed, seeds_r, max_radius_mm)
    soft = around[(around > floor) & (around < win["bone_above_hu"])]
    darker, n_dark = histogram_mode(soft[soft < lesion_hu - delta])
    brighter, n_bright = histogram_mode(soft[soft > lesion_hu + delta])
    chosen = appearance
    if appearance == "auto":
        chosen = "hypo" if n_bright >= n_dark else "hyper"
    parenchyma = brighter if chosen == "hypo" else darker
    if check_appearance and appearance != "auto":
        _check_appearance(appearance, lesion_hu, darker, n_dark, brighter, n_bright, seeds[0])
    if not np.isfinite(parenchyma) and max_radius_mm < CONTRAST_LOOK_MM:
        _refuse_if_wider(ct, seeds, appearance, lesion_hu, delta, floor, max_radius_mm, what)
    if not np.isfinite(parenchyma):
        kind = "darker" if chosen == "hypo" else "brighter"
        raise InputError(
            f"does not look like a {chosen}dense {what}: the seed ({lesion_hu:.0f} HU) is not "
            f"{kind} than its surroundings by {delta:.0f} HU or more",
            seeds[0].describe(),
        )

    # Work on a box around the lesion only (its size from a first ray cast): on a
    # 0.8 mm CT the full leak-limit ball is ~10x more voxels than a 3 cm lesion needs.
    r0 = star_radius_mm(smoothed, seeds_r, 0.5 * (lesion_hu + parenchyma), chosen, max_radius_mm)
    if r0 < max_radius_mm:
        box = 2.0 * r0 + STAR_PAD_MM + SHELL_MM[1] + RIM_MM
        if box < max_radius_mm + ROI_PAD_MM:
            roi = roi_around(roi, seeds_r + local_seeds(roi, include), box)
            smoothed = roi_around(smoothed, seeds_r + local_seeds(smoothed, include), box)
            seeds_r = local_seeds(roi, seeds)
            grow_from = seeds_r + local_seeds(roi, include)
            exclude_r = local_seeds(roi, exclude) if exclude else []
    return LesionSetup(
        roi=roi,
        smoothed=smoothed,
        seeds=seeds_r,
        grow_from=grow_from,
        exclude=exclude_r,
        appearance=chosen,
        lesion_hu=lesion_hu,
        parenchyma_hu=parenchyma,
        radius_mm=r0,
        floor_hu=floor,
    )


def refine_boundary(
    roi: sitk.Image,
    mask: sitk.Image,
    lesion_hu: float,
    edge_hu: float,
    chosen: str,
    seeds: list[Seed],
    bound: sitk.Image | None = None,
    cut: sitk.Image | None = None,
    smoothed: sitk.Image | None = None,
) -> tuple[sitk.Image, float]:
    """Place the lesion edge at the 50 % level of the deblurred image, within a band.

    Gaussian smoothing (sigma s) moves the level set of a curved edge inwards by
    about s^2 x mean curvature (a sphere of radius R shrinks by s^2 / R: 0.25 mm for
    an 8 mm lesion at s = 1 mm, a quarter of its volume's Dice). The first-order
    inverse of the blur, ``G_s * I - (s^2 / 2) LoG_s(I)`` (Laplacian of Gaussian,
    SimpleITK), removes that bias while staying a low-pass filter (gain
    ``(1 + s^2 k^2 / 2) exp(-s^2 k^2 / 2) <= 1``), so the noise is not amplified.
    The lesion HU is re-measured as the median of the unsmoothed CT one voxel inside
    the grown region (the mode near the click is biased by few samples and blur);
    voxels within ``REFINE_BAND_MM`` of the grown surface are re-classified at the
    midpoint between it and ``edge_hu``; deeper voxels keep the grown label, and
    nothing outside ``bound`` (the star-shaped bound of the growing) or next to
    ``cut`` (what the opening removed) is added. ``smoothed``: the growing's Gaussian
    of ``roi`` (same grid, sigma ``smoothing_sigma``), reused instead of smoothing the
    band's box again when the sigmas agree (speed only: it differs from the box's own
    Gaussian only by the box edge's effect, which has died out in the band).
    Returns the mask and the lesion HU used.
    """
    step = float(max(roi.GetSpacing()))
    band = max(REFINE_BAND_MM, step)
    # Smoothing scales with the voxel (1 mm barely averages 3 mm voxels), at most a
    # quarter of the lesion's equivalent radius (the correction is first order).
    n = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
    r_eq = (3.0 * n * float(np.prod(roi.GetSpacing())) / (4.0 * np.pi)) ** (1.0 / 3.0)
    sigma = min(max(REFINE_SIGMA_MM, 0.6 * step), max(REFINE_SIGMA_MM, 0.25 * r_eq))
    # Only the band around the grown surface is re-classified: everything runs on the
    # mask's box padded by the band + REFINE_REACH_SIGMAS sigma (where the recursive
    # filters' boundary effect has died out), not on the whole crop. The band and
    # all that is derived from it stay a voxel or more inside that box (or reach
    # the crop's own edge), so the morphology gives the whole-crop result.
    box = bounding_box(mask, band + REFINE_REACH_SIGMAS * sigma, 1)
    box = box or ((0, 0, 0), list(roi.GetSize()))
    full_mask, mask = mask, crop_box(mask, box)
    local = crop_box(roi, box)
    # The one-voxel core and the band's inner edge: one distance map.
    core, inner = erosions_mm(mask, [step, band])
    core = sitk.GetArrayFromImage(core) > 0
    if np.count_nonzero(core) >= 20:
        lesion_hu = float(np.median(sitk.GetArrayViewFromImage(local)[core]))
    threshold = 0.5 * (lesion_hu + edge_hu)
    same_grid = (
        smoothed is not None
        and smoothed.GetSize() == roi.GetSize()
        and smoothed.GetOrigin() == roi.GetOrigin()
        and smoothed.GetSpacing() == roi.GetSpacing()
        and smoothed.GetDirection() == roi.GetDirection()
    )
    if same_grid and all(s == sigma for s in smoothing_sigma(roi)):
        smooth = crop_box(smoothed, box)
    else:
        smooth = sitk.SmoothingRecursiveGaussian(local, sigma)
    log = sitk.LaplacianRecursiveGaussian(local, sigma)
    sharp = smooth - (0.5 * sigma * sigma) * log
    side = sharp < threshold if chosen == "hypo" else sharp > threshold
    side = sitk.Cast(side, sitk.sitkUInt8)
    outer = dilate_mm(mask, band)
    if bound is not None:
        outer = sitk.And(outer, crop_box(bound, box))
    if cut is not None:
        # Nothing is re-added next to what the opening cut off (an attached vessel).
        # (Cut voxels outside the box are farther than a voxel from the band.)
        outer = sitk.And(outer, sitk.Not(dilate_mm(crop_box(cut, box), 1.01 * step)))
    refined = sitk.Or(inner, sitk.And(outer, side))
    # A small opening removes what the band re-added along an attachment the growing
    # had cut (a vessel stub); a convex outline whose curvature radius exceeds the
    # ball is unchanged by it.
    n = int(np.count_nonzero(sitk.GetArrayViewFromImage(refined)))
    r_eq = (3.0 * n * float(np.prod(roi.GetSpacing())) / (4.0 * np.pi)) ** (1.0 / 3.0)
    radius = min(REFINE_OPEN_MM, 0.25 * r_eq)
    if radius >= step:
        opened = open_mm(refined, radius)
        if np.any(sitk.GetArrayViewFromImage(opened)):
            refined = opened
    out = fill_holes(component_at(refined, [s.index for s in shift_seeds(seeds, box)]))
    if not np.any(sitk.GetArrayViewFromImage(out)):
        return full_mask, lesion_hu
    return uncrop_box(out, full_mask, box), lesion_hu


def _edge_value(
    image: sitk.Image,
    mask: sitk.Image,
    parenchyma: float,
    chosen: str,
    dist: np.ndarray | None = None,
) -> float:
    """What the lesion edge blurs into: an enhancing rim when one hugs the lesion.

    Median HU of each one-voxel layer outside the mask up to ``RIM_MM``; the most
    extreme layer (brightest for a hypodense lesion) is the rim when it is beyond the
    parenchyma. The lesion's edge is then the inner edge of the rim and the 50 %
    level lies between lesion and rim. Without a rim the layers climb from the
    partial-volume blur to the parenchyma, and the parenchyma is used. ``dist``: the
    mask's ``signed_distance_mm`` array (z, y, x), exact to at least ``RIM_MM`` + one
    voxel, when the caller has it.
    """
    step = float(max(mask.GetSpacing()))
    if dist is None:
        dist = sitk.GetArrayFromImage(signed_distance_mm(mask, within_mm=RIM_MM + step))
    # The unsmoothed CT: smoothing would flatten a thin rim's peak (the median over a
    # whole layer removes the noise instead).
    values = sitk.GetArrayViewFromImage(image)
    # The layers as lists of their voxels' distances and values (few voxels).
    near = (dist > 0.0) & (dist <= RIM_MM + step)
    dist, values = dist[near], np.asarray(values)[near]
    layers = []
    for lo in np.arange(0.0, RIM_MM, step):
        sel = (dist > lo) & (dist <= lo + step)
        if np.count_nonzero(sel) >= 20:
            layers.append(float(np.median(values[sel])))
    if not layers:
        return parenchyma
    return max(max(layers), parenchyma) if chosen == "hypo" else min(min(layers), parenchyma)


def star_radius_mm(
    smoothed: sitk.Image, seeds: list[Seed], threshold: float, chosen: str, max_radius_mm: float
) -> float:
    """Median distance (mm) from the seeds to the lesion edge over 64 ray directions.

    Along each ray (0.5 mm steps) the edge is the first sample on the parenchyma
    side of ``threshold``; a ray that never gets there counts as ``max_radius_mm``.
    A vessel or tract attached to the lesion lengthens a few rays, not the median,
    so the growing can be held within a ball of a few times this radius.
    """
    from scipy import ndimage

    from hepanav.imaging.geometry import lps_to_voxel
    from hepanav.phantoms.lesions import fibonacci_sphere

    arr = sitk.GetArrayViewFromImage(smoothed)
    u = fibonacci_sphere(64)
    steps = np.arange(0.5, max_radius_mm + 0.5, 0.5)
    radii = []
    for s in seeds:
        pts = np.asarray(s.lps) + steps[None, :, None] * u[:, None, :]
        idx = lps_to_voxel(smoothed, pts.reshape(-1, 3))
        vals = ndimage.map_coordinates(
            np.asarray(arr), [idx[:, 2], idx[:, 1], idx[:, 0]], order=1, mode="nearest"
        ).reshape(len(u), len(steps))
        out = vals > threshold if chosen == "hypo" else vals < threshold
        first = np.where(out.any(axis=1), steps[np.argmax(out, axis=1)], max_radius_mm)
        radii.append(float(np.median(first)))
    return max(radii)


def _sphere_basis(u: np.ndarray, degree: int) -> np.ndarray:
    """Monomials x^a y^b z^c (a + b + c <= degree) of unit vectors ``u`` (n, 3)."""
    cols = [
        u[:, 0] ** a * u[:, 1] ** b * u[:, 2] ** c
        for a in range(degree + 1)
        for b in range(degree + 1 - a)
        for c in range(degree + 1 - a - b)
    ]
    return np.stack(cols, axis=1)


def _sphere_eval(dirs: list[np.ndarray], coef: np.ndarray, degree: int) -> np.ndarray:
    """``_sphere_basis(u, degree) @ coef`` for unit vectors given as their x, y, z
    arrays, without the (n, terms) basis matrix: nested Horner schemes in z, y, x over
    the coefficients in :func:`_sphere_basis`'s order (x^a y^b z^c, a outermost)."""
    x, y, z = dirs
    # Index of the coefficient of x^a y^b z^0 in the basis' order.
    first, n = {}, 0
    for a in range(degree + 1):
        for b in range(degree + 1 - a):
            first[a, b] = n
            n += degree + 1 - a - b
    out = None
    for a in range(degree, -1, -1):
        q = None  # sum over b of y^b (sum over c of coef z^c)
        for b in range(degree - a, -1, -1):
            k = first[a, b]
            r = np.full_like(z, coef[k + degree - a - b])
            for c in range(degree - a - b - 1, -1, -1):
                r *= z
                r += coef[k + c]
            if q is None:
                q = r
            else:
                q *= y
                q += r
        if out is None:
            out = q
        else:
            out *= x
            out += q
    return out


def edge_radii_mm(
    smoothed: sitk.Image,
    seed: Seed,
    threshold: float,
    chosen: str,
    max_radius_mm: float,
    u: np.ndarray,
) -> np.ndarray:
    """Distance (mm) from ``seed`` to the first sample past ``threshold`` along each ray
    ``u`` (n, 3) in 0.5 mm steps (linear interpolation); ``max_radius_mm`` if none."""
    from scipy import ndimage

    from hepanav.imaging.geometry import lps_to_voxel

    arr = sitk.GetArrayViewFromImage(smoothed)
    steps = np.arange(0.5, max_radius_mm + 0.5, 0.5)
    pts = np.asarray(seed.lps) + steps[None, :, None] * u[:, None, :]
    idx = lps_to_voxel(smoothed, pts.reshape(-1, 3))
    vals = ndimage.map_coordinates(
        np.asarray(arr), [idx[:, 2], idx[:, 1], idx[:, 0]], order=1, mode="nearest"
    ).reshape(len(u), len(steps))
    out = vals > threshold if chosen == "hypo" else vals < threshold
    return np.where(out.any(axis=1), steps[np.argmax(out, axis=1)], max_radius_mm)


def fit_radial(u: np.ndarray, radii: np.ndarray, degree: int = STAR_DEGREE) -> np.ndarray:
    """Robust smooth fit of edge radii over ray directions; the coefficients.

    Least squares on :func:`_sphere_basis` with Tukey biweight re-weighting
    (c = 4.685 robust SDs, 8 iterations): rays that run along an attached vessel or
    a needle tract are outliers and get zero weight, so the fit is the lesion's own
    outline.
    """
    basis = _sphere_basis(u, degree)
    w = np.ones(len(radii))
    coef = np.zeros(basis.shape[1])
    for _ in range(8):
        coef = np.linalg.lstsq(basis * w[:, None], radii * w, rcond=None)[0]
        res = radii - basis @ coef
        scale = max(1.4826 * float(np.median(np.abs(res - np.median(res)))), 0.25)
        z = res / (4.685 * scale)
        w = np.where(np.abs(z) < 1, (1 - z**2) ** 2, 0.0)
        if np.count_nonzero(w) < basis.shape[1] * 2:
            break
    return coef


def star_bound(
    smoothed: sitk.Image, seeds: list[Seed], threshold: float, chosen: str, max_radius_mm: float
) -> sitk.Image:
    """uint8 mask of :func:`_star_array` on the grid of ``smoothed``."""
    return _uint8_image(_star_array(smoothed, seeds, threshold, chosen, max_radius_mm), smoothed)


def _star_array(
    smoothed: sitk.Image,
    seeds: list[Seed],
    threshold: float,
    chosen: str,
    max_radius_mm: float,
    *,
    no_pad_on_outliers: bool = False,
) -> np.ndarray:
    """bool (z, y, x) mask of the voxels inside the seeds' robust star-shaped outline (padded).

    For each seed: edge radii along ``STAR_RAYS`` rays (:func:`edge_radii_mm`), their
    robust smooth fit r(u) (:func:`fit_radial`), and the voxels at distance
    ``<= STAR_FIT_FACTOR * r(u) + max(STAR_FIT_PAD_MM, voxel)`` in direction u. An
    attached vessel as bright as a hypervascular lesion, or a tract leaving a zone,
    lengthens only the rays along it; the bound cuts it at the lesion's outline
    whatever its thickness (the opening cannot cut a vessel as thick as the lesion
    is deep). Lobulation and axis ratios down to 0.6 are smooth in r(u) (degree 3).
    ``no_pad_on_outliers``: where the nearest ray (by direction) ran past the padded
    fit without meeting an edge (into an attachment), the bound is the fit itself:
    there no edge stops the growing within the pad.
    """
    from scipy.spatial import cKDTree

    from hepanav.phantoms.lesions import fibonacci_sphere

    u = fibonacci_sphere(STAR_RAYS)
    arr = sitk.GetArrayViewFromImage(smoothed)
    pad = max(STAR_FIT_PAD_MM, float(max(smoothed.GetSpacing())))
    inside = np.zeros(arr.shape, bool)
    for s in seeds:
        radii = edge_radii_mm(smoothed, s, threshold, chosen, max_radius_mm, u)
        coef = fit_radial(u, radii)
        outlier = None
        if no_pad_on_outliers:
            at_rays = STAR_FIT_FACTOR * _sphere_basis(u, STAR_DEGREE) @ coef
            outlier = radii > at_rays + pad
            tree = cKDTree(u) if outlier.any() else None
        # Only the box around the ball of max_radius_mm can hold a voxel of the bound.
        box = _ball_box(smoothed, s.lps, max_radius_mm)
        if box is None:
            continue
        # Slab by slab along z (speed only: every voxel's value is computed as on the
        # whole box, the temporaries stay in the processor's cache).
        (x0, y0, z0), (nx, ny, nz) = box
        step = max(1, STAR_SLAB_VOXELS // (nx * ny))
        for k0 in range(0, nz, step):
            nk = min(step, nz - k0)
            slab = ((x0, y0, z0 + k0), (nx, ny, nk))
            v = _offsets_mm(smoothed, s.lps, slab)
            d = np.sqrt(_squared_distance_mm(smoothed, s.lps, slab))
            near = d <= max_radius_mm
            if not near.any():
                continue
            dn = np.maximum(d[near], 1e-6)
            dirs = [c[near] / dn for c in v]
            r_fit = np.clip(_sphere_eval(dirs, coef, STAR_DEGREE), 0.0, max_radius_mm)
            if outlier is not None and tree is not None:
                ray = tree.query(np.stack(dirs, axis=1))[1]
                ok = d[near] <= STAR_FIT_FACTOR * r_fit + np.where(outlier[ray], 0.0, pad)
            else:
                ok = d[near] <= STAR_FIT_FACTOR * r_fit + pad
            sub = inside[z0 + k0 : z0 + k0 + nk, y0 : y0 + ny, x0 : x0 + nx]
            sub[near] |= ok
    return inside


def _ball_mask(image: sitk.Image, seeds: list[Seed], radius_mm: float) -> sitk.Image:
    """uint8 mask of :func:`_ball_array` on the grid of ``image``."""
    return _uint8_image(_ball_array(image, seeds, radius_mm), image)


def _ball_array(image: sitk.Image, seeds: list[Seed], radius_mm: float) -> np.ndarray:
    """bool (z, y, x) mask of the voxels within ``radius_mm`` of any seed.

    The seed voxels dilated by ``radius_mm`` (distance between voxel centres with the
    spacing, as :func:`dilate_mm`), computed directly on each seed's box (ties within
    float rounding of the radius may differ from the distance map's).
    """
    size = np.asarray(image.GetSize())
    spacing = np.asarray(image.GetSpacing(), float)
    out = np.zeros(size[::-1], bool)
    radius_mm = max(radius_mm, 0.0)  # no radius: the seed voxels alone
    reach = np.floor(radius_mm / spacing).astype(int)
    for s in seeds:
        idx = np.asarray(s.index)
        lo, hi = np.maximum(idx - reach, 0), np.minimum(idx + reach, size - 1)
        di, dj, dk = (((np.arange(lo[a], hi[a] + 1) - idx[a]) * spacing[a]) ** 2 for a in range(3))
        d2 = dk[:, None, None] + dj[None, :, None] + di[None, None, :]
        box = out[lo[2] : hi[2] + 1, lo[1] : hi[1] + 1, lo[0] : hi[0] + 1]
        box |= d2 <= radius_mm * radius_mm
    return out


def opening_radius_mm(mask: sitk.Image, seeds: list[Seed]) -> float:
    """Opening radius: half the depth of the seeds inside the grown region, 1-8 mm.

    A vessel or tract attached to the lesion is thinner than the lesion is deep at
    its centre, so a ball of half that depth passes through the lesion but not
    through the attachment.
    """
    depth = -sitk.GetArrayFromImage(signed_distance_mm(fill_holes(mask), within_mm=0.0))
    d = max(float(depth[s.index[2], s.index[1], s.index[0]]) for s in seeds)
    return float(np.clip(0.5 * d, 1.0, OPEN_MAX_MM))


def _clean(mask: sitk.Image, seeds: list[Seed]) -> sitk.Image:
    """Opening (cuts attachments) + the grown voxels within ``RECONSTRUCT_MM`` of it
    (restores the surface detail the ball missed) + hole filling; seeds' component.

    Every step keeps within the mask and reads near the seeds, so it runs on their
    box padded by one voxel (:func:`_on_box`: the same result, cost of the lesion's
    size)."""
    return _on_box(_clean_box, mask, seeds)


def _on_box(fn, mask: sitk.Image, seeds: list[Seed]) -> sitk.Image:
    """``fn(mask, seeds)`` computed on the box of the mask's voxels and the seeds padded
    by one voxel, pasted back onto the mask's grid (for steps whose result lies in the
    mask and that read nothing farther than one voxel outside it and the seeds)."""
    box = bounding_box(mask)
    if box is None:
        return fn(mask, seeds)
    idx = np.asarray([s.index for s in seeds] + [box[0], np.add(box[0], box[1]) - 1])
    lo = np.maximum(idx.min(axis=0) - 1, 0)
    hi = np.minimum(idx.max(axis=0) + 1, np.asarray(mask.GetSize()) - 1)
    box = (lo.tolist(), (hi - lo + 1).tolist())
    return uncrop_box(fn(crop_box(mask, box), shift_seeds(seeds, box)), mask, box)


def _clean_box(mask: sitk.Image, seeds: list[Seed]) -> sitk.Image:
    """:func:`_clean` on a grid holding the mask and the seeds with a one-voxel margin."""
    radius = opening_radius_mm(mask, seeds)
    step = float(max(mask.GetSpacing()))
    # Components of the opened region near the seeds (a click beside gas or a tract
    # may itself be opened away; the lesion body is then just next to it).
    core = _components_near(open_mm(mask, radius), seeds, radius + 2 * step)
    if not np.any(sitk.GetArrayViewFromImage(core)):
        core = mask  # a lesion thinner than the opening: keep what grew
    # (Voxel logic in numpy on the box: the same voxels as ITK's And/Not, fewer calls.)
    grown = sitk.GetArrayFromImage(mask) > 0
    kept = grown & (sitk.GetArrayFromImage(dilate_mm(core, max(RECONSTRUCT_MM, step))) > 0)
    # The restored shell must not keep the stub of what the opening cut off (a
    # vessel, a tract): shell voxels touching the cut-off part go too.
    cut = grown & ~kept
    shell = kept & ~(sitk.GetArrayFromImage(core) > 0)
    stub = shell & (sitk.GetArrayFromImage(dilate_mm(_uint8_image(cut, mask), 1.01 * step)) > 0)
    kept &= ~stub
    return fill_holes(component_at(_uint8_image(kept, mask), [s.index for s in seeds]))


def _uint8_image(arr: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """A bool (z, y, x) array as a uint8 0/1 image on the grid of ``reference``."""
    out = sitk.GetImageFromArray(arr.view(np.uint8) if arr.dtype == bool else arr.astype(np.uint8))
    out.CopyInformation(reference)
    return out


def _nearest_in_window(image: sitk.Image, seed: Seed, window, radius_mm: float = 3.0) -> Seed:
    """The seed, or the nearest voxel within ``radius_mm`` whose value is in ``window``
    (a click on a partial-volume voxel beside gas or a vessel still starts the growing)."""
    arr = sitk.GetArrayViewFromImage(image)
    i, j, k = seed.index
    if window[0] <= arr[k, j, i] <= window[1]:
        return seed
    sp = np.asarray(image.GetSpacing())
    r = np.ceil(radius_mm / sp).astype(int)
    lo = np.maximum(np.asarray(seed.index) - r, 0)
    hi = np.minimum(np.asarray(seed.index) + r + 1, np.asarray(image.GetSize()))
    block = np.asarray(arr[lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]])
    kk, jj, ii = np.nonzero((block >= window[0]) & (block <= window[1]))
    if kk.size == 0:
        return seed
    d = (
        ((ii + lo[0] - i) * sp[0]) ** 2
        + ((jj + lo[1] - j) * sp[1]) ** 2
        + ((kk + lo[2] - k) * sp[2]) ** 2
    )
    n = int(np.argmin(d))
    return seed.at((ii[n] + lo[0], jj[n] + lo[1], kk[n] + lo[2]))


def _components_near(mask: sitk.Image, seeds: list[Seed], radius_mm: float) -> sitk.Image:
    """Union of the connected components of ``mask`` within ``radius_mm`` of any seed."""
    box = bounding_box(mask)  # the components lie in the mask's box
    if box is None:
        return sitk.Cast(mask > 0, sitk.sitkUInt8)
    labels = sitk.ConnectedComponent(sitk.Cast(crop_box(mask, box) > 0, sitk.sitkUInt8), True)
    arr = sitk.GetArrayFromImage(labels)
    # A copy, not a view: a view of a temporary image reads freed memory (segfault).
    ball = sitk.GetArrayFromImage(crop_box(_ball_mask(mask, seeds, radius_mm), box)) > 0
    keep = np.unique(arr[ball & (arr > 0)])
    out = sitk.GetImageFromArray(np.isin(arr, keep).astype(np.uint8))
    out.CopyInformation(labels)
    return uncrop_box(out, mask, box)


def _cut_excluded(mask: sitk.Image, seeds: list[Seed], exclude: list[Seed]) -> sitk.Image:
    """Remove voxels closer to an exclude point than to every seed; keep the seeds' part."""
    if not exclude:
        return mask
    arr = sitk.GetArrayFromImage(mask).astype(bool)
    k, j, i = np.nonzero(arr)
    lps = voxel_to_lps(mask, np.column_stack([i, j, k]))
    d_in = np.min([np.linalg.norm(lps - np.asarray(s.lps), axis=1) for s in seeds], axis=0)
    d_out = np.min([np.linalg.norm(lps - np.asarray(s.lps), axis=1) for s in exclude], axis=0)
    arr[k[d_out < d_in], j[d_out < d_in], i[d_out < d_in]] = False
    out = sitk.GetImageFromArray(arr.astype(np.uint8))
    out.CopyInformation(mask)
    return component_at(out, [s.index for s in seeds])


def _check_appearance(
    appearance: Appearance,
    lesion_hu: float,
    darker: float,
    n_dark: int,
    brighter: float,
    n_bright: int,
    first: Seed,
) -> None:
    """Refuse an explicit ``--appearance`` the seed contradicts: the main soft tissue
    around it (the larger of the darker and brighter peaks, what ``auto`` picks as the
    parenchyma) lies on the side the lesion should stand out from. Before, the lesion
    grew over the liver (hyper on a 61 HU seed in 106 HU liver) and was refused as "the
    tumour leaked ... 40 mm". Raises ``InputError`` naming the HU."""
    if appearance == "hyper" and n_bright > n_dark and np.isfinite(brighter):
        side, around, other = "darker", brighter, "hypo"
    elif appearance == "hypo" and n_dark > n_bright and np.isfinite(darker):
        side, around, other = "brighter", darker, "hyper"
    else:
        return
    raise InputError(
        f"--appearance {appearance}: the seed ({lesion_hu:.0f} HU) is {side} than the tissue "
        f"around it ({around:.0f} HU, the main soft tissue near the click), so it is "
        f"{other}dense; use --appearance {other} or auto (or click the lesion)",
        first.describe(),
    )


def _refuse_if_wider(
    ct: sitk.Image,
    seeds: list[Seed],
    appearance: Appearance,
    lesion_hu: float,
    delta: float,
    floor: float,
    max_radius_mm: float,
    what: str,
) -> None:
    """Nothing of the requested contrast within ``max_radius_mm``: if there is within
    ``CONTRAST_LOOK_MM`` (over ``CONTRAST_LOOK_SHARE`` of the soft tissue there), the
    seed's region fills the whole ball: a leak (a small ``--max-radius-mm`` inside a
    large lesion), not a seed without contrast. Raises ``InputError`` then."""
    wide = sitk.SmoothingRecursiveGaussian(
        roi_around(ct, seeds, CONTRAST_LOOK_MM + ROI_PAD_MM),
        smoothing_sigma(ct),
    )
    around = _ball_values(wide, local_seeds(wide, seeds), CONTRAST_LOOK_MM)
    soft = around[(around > floor) & (around < hu_windows()["bone_above_hu"])]
    n_dark = int(np.count_nonzero(soft < lesion_hu - delta))
    n_bright = int(np.count_nonzero(soft > lesion_hu + delta))
    chosen = appearance
    if appearance == "auto":
        chosen = "hypo" if n_bright >= n_dark else "hyper"
    if (n_bright if chosen == "hypo" else n_dark) > CONTRAST_LOOK_SHARE * soft.size:
        raise InputError(
            f"the {what} leaked: from the seed the {chosen}dense region reaches "
            f"--max-radius-mm {max_radius_mm:g} in all directions (its surroundings lie "
            "farther out; click the lesion centre or raise --max-radius-mm)",
            seeds[0].describe(),
        )


def _check_leak(
    mask: sitk.Image,
    roi: sitk.Image,
    seeds: list[Seed],
    max_radius_mm: float,
    what: str,
    first: Seed,
) -> None:
    arr = sitk.GetArrayViewFromImage(mask) > 0
    if not arr.any():
        raise InputError(
            f"nothing grew from the seed: it does not look like {_a(what)}", first.describe()
        )
    # No voxel of the mask's box is farther from the first seed than the box's farthest
    # corner (distance is convex): when that is well within the limit, nothing leaked
    # (speed only: the per-voxel distances below are not needed).
    box = bounding_box(mask)
    corners = np.array(
        [[box[0][a] + (box[1][a] - 1) * ((n >> a) & 1) for a in range(3)] for n in range(8)]
    )
    reach = np.linalg.norm(voxel_to_lps(roi, corners) - np.asarray(seeds[0].lps), axis=1).max()
    if reach < max_radius_mm - 1e-6:
        return
    far = float(seed_distance_mm(roi, seeds, arr).max())
    if far > max_radius_mm:
        raise InputError(
            f"the {what} leaked: the region grew more than --max-radius-mm "
            f"{max_radius_mm:g} from the seed (to {far:.1f} mm; the seed may be in "
            "parenchyma or a large structure of similar attenuation; click the lesion "
            "centre, add --exclude, or raise --max-radius-mm)",
            first.describe(),
        )


# Small tumours (fit_small_lesion): one whose equivalent radius is under this
# many of its coarsest voxels is outlined by a blurred-step model fitted to the CT
# around it, not by per-voxel thresholds. Measured on dev (docs/segmentation.md): 4
# voxels changed the 8-16 mm tumours only, 5.5 also the 15 mm one on 3 mm voxels
# (0.932 -> 0.973) and the 15 mm procedural one (0.918 -> 0.952), nothing worse.
# Degree 1 (a sphere and a shift) lost the 8 mm ones (0.87 -> 0.72).
SMALL_FIT = True
SMALL_FIT_VOXELS = 5.5
SMALL_FIT_DEGREE = 2
# The fit reads the voxels within the grown region's farthest voxel + this many voxels
# of the centroid; voxels beyond both the lesion's and the background's HU by more than
# SMALL_FIT_OUTLIER noise SDs (a vessel, gas) are left out of it.
SMALL_FIT_REACH_VOXELS = 2.0
SMALL_FIT_OUTLIER = 2.5
# The background B varies linearly with the direction (a brighter vessel or a gradient
# of the parenchyma on one side: dev 3 mm 20 0.811 -> 0.882 with it).
SMALL_FIT_BACKGROUND_LINEAR = True
# The fit only decides the voxels within one voxel of the grown region (the region's
# own edge; it never reaches farther).
SMALL_FIT_WITHIN_VOXEL = True
# Hyperdense small tumours too (holdout 3 mm 120 0.899 -> 0.969, dev 11 +50 0.926 ->
# 0.979, dev 10 +50 0.638 -> 0.644; needs the local background below).
SMALL_FIT_HYPER = True
# The step's background B(p) is the CT beyond the grown region read beside each voxel
# (normalised convolution, Gaussian of this many coarsest voxels; chosen before the
# evaluation, not tuned), not B linear in the direction: a vessel or a darker structure
# beside the lesion is background where it lies. Dev: procedural 10 -45 0.852 -> 0.918,
# 3 mm 20 0.882 -> 0.919 (docs/segmentation.md, "Small tumours, second round").
SMALL_FIT_LOCAL_BACKGROUND = True
SMALL_FIT_LOCAL_SIGMA_VOXELS = 1.0
# The fit's Jacobian in closed form (SciPy's default is finite differences: one model
# evaluation per parameter per iteration).
SMALL_FIT_ANALYTIC_JACOBIAN = True


def _local_background(roi: sitk.Image, mask: sitk.Image, box, step: float) -> np.ndarray | None:
    """What a small lesion's edge voxels blend with: the CT beyond the grown region.

    Normalised convolution (Gaussian of ``SMALL_FIT_LOCAL_SIGMA_VOXELS`` coarsest voxels,
    SciPy) of the unsmoothed CT over the voxels farther than one voxel from ``mask``,
    on the index ``box`` (x, y, z start and size) of ``roi``: an array (z, y, x) of HU, a
    vessel beside the lesion included. None when the box holds no such voxel.
    """
    from scipy import ndimage

    (x0, y0, z0), (nx, ny, nz) = box
    sl = (slice(z0, z0 + nz), slice(y0, y0 + ny), slice(x0, x0 + nx))
    near = sitk.GetArrayFromImage(dilate_mm(mask, 1.01 * step))[sl] > 0
    weight = (~near).astype(float)
    if not weight.any():
        return None
    values = np.asarray(sitk.GetArrayViewFromImage(roi), float)[sl]
    sigma = SMALL_FIT_LOCAL_SIGMA_VOXELS * step / np.asarray(roi.GetSpacing(), float)[::-1]
    num = ndimage.gaussian_filter(values * weight, sigma, mode="constant")
    den = ndimage.gaussian_filter(weight, sigma, mode="constant")
    far = den < 1e-3 * den.max()
    out = num / np.maximum(den, 1e-12)
    if far.any():  # deep inside: the lesion's step decides there, not the background
        out[far] = float(np.median(values[~near]))
    return out


def small_lesion_note(chosen: str, spacing_mm, lesion_hu: float, background_hu: float) -> str:
    """The note of a lesion outlined by :func:`fit_small_lesion`, in physical size.

    ``chosen`` "hypo" or "hyper"; ``spacing_mm`` the voxel size (x, y, z), mm; the HU
    of the fit. The radius of the region first grown is not given (read beside the final
    mask's diameter it confused users; docs/segmentation.md). The limit is
    ``SMALL_FIT_VOXELS`` of the COARSEST voxel side: on anisotropic voxels (0.8 x 0.8 x
    5 mm) that is the slice axis, and a "radius under 5.5 voxels" would read as in-plane
    voxels (a 27 mm lesion is 34 in-plane voxels across): the note names the axis and
    gives millimetres.
    """
    spacing = np.asarray(spacing_mm, float)
    step = float(spacing.max())
    limit = SMALL_FIT_VOXELS * step
    kind = "hypo" if chosen == "hypo" else "hyper"
    if step > 1.5 * float(spacing.min()):
        axis = "xyz"[int(np.argmax(spacing))]
        where = "slice axis" if axis == "z" else f"{axis} axis"
        head = (
            f"{kind}dense lesion few voxels across along the {step:g} mm {where} (the region "
            f"first grown has a sphere-equivalent radius under {SMALL_FIT_VOXELS:g} x "
            f"{step:g} mm = {limit:.1f} mm; {float(spacing.min()):g} mm voxels across the "
            "finest axis)"
        )
    else:
        head = (
            f"small {kind}dense lesion (the region first grown has a sphere-equivalent "
            f"radius under {SMALL_FIT_VOXELS:g} voxels of {step:g} mm, {limit:.1f} mm)"
        )
    return (
        f"{head}: outlined by a blurred-step model fitted "
        f"to the CT ({lesion_hu:.0f} HU in {background_hu:.0f} HU; the size given is the "
        "final mask's)"
    )


def fit_small_lesion(
    roi: sitk.Image,
    mask: sitk.Image,
    lesion_hu: float,
    background_hu: float,
    chosen: str,
    seeds: list[Seed],
    min_contrast_hu: float,
) -> tuple[sitk.Image, str | None]:
    """Outline of a small lesion from a blurred-step model fitted to the CT around it.

    A lesion a few voxels across is mostly edge voxels, each read at its own noisy
    partial-volume value: thresholding them one by one (even on a smoothed or
    deblurred image) gets a few of the ~20-70 voxels wrong either way, and smoothing
    enough to beat the noise blurs the lesion itself. Here the whole neighbourhood
    decides a few parameters: the CT (unsmoothed, ``roi``, HU) within the grown region's
    farthest voxel + ``SMALL_FIT_REACH_VOXELS`` of its centroid c is fitted by

        HU(p) = B + (L - B) * Phi((r(u) - |p - c|) / s(u)),   u = (p - c) / |p - c|,

    with r(u) a polynomial of degree ``SMALL_FIT_DEGREE`` on the unit sphere
    (:func:`_sphere_basis`; degree 2 holds an ellipsoid and a shift of the centre), L and
    B the lesion and background HU, Phi the normal CDF and s(u) the edge's spread along
    u: a partial-volume ramp one voxel wide (SD voxel/sqrt(12)), the voxel's extent
    along u. B is, per voxel, the CT beyond the grown region read beside it
    (:func:`_local_background`) plus one fitted offset (``SMALL_FIT_LOCAL_BACKGROUND``;
    otherwise B linear in u, ``SMALL_FIT_BACKGROUND_LINEAR``). Robust least squares
    (SciPy ``least_squares``, soft-L1 loss at the noise SD); voxels beyond both L and
    their B by ``SMALL_FIT_OUTLIER`` noise SDs (gas, a vessel far from B) are left out.
    Hypo- and hyperdense (``chosen``). The mask is then the voxel centres with
    |p - c| < r(u) (the 50 % level of the step: the voxel-centre truth of a blurred
    step), within one voxel of the grown region (``SMALL_FIT_WITHIN_VOXEL``), seeds'
    component, holes filled.

    Only when the grown region's equivalent radius is under ``SMALL_FIT_VOXELS`` coarsest
    voxels; the grown mask is kept (``note`` None) when the fit does not converge, loses
    the contrast's sign or ``min_contrast_hu``, or holds no seed.

    Returns
    -------
    (mask, note)
        uint8 mask on the grid of ``mask``; a note for the user when the fit was used.
    """
    from scipy.optimize import least_squares
    from scipy.special import ndtr

    spacing = np.asarray(roi.GetSpacing(), float)
    step = float(spacing.max())
    arr = sitk.GetArrayViewFromImage(mask) > 0
    n = int(np.count_nonzero(arr))
    if n == 0:
        return mask, None
    r_eq = (3.0 * n * float(np.prod(spacing)) / (4.0 * np.pi)) ** (1.0 / 3.0)
    if r_eq >= SMALL_FIT_VOXELS * step:
        return mask, None
    k, j, i = np.nonzero(arr)
    inside_lps = voxel_to_lps(roi, np.column_stack([i, j, k]))
    centre = inside_lps.mean(axis=0)
    reach = float(np.linalg.norm(inside_lps - centre, axis=1).max()) + SMALL_FIT_REACH_VOXELS * step
    box = _ball_box(roi, centre, reach)
    if box is None:
        return mask, None
    vx, vy, vz = _offsets_mm(roi, centre, box)
    d = np.sqrt(vx * vx + vy * vy + vz * vz)
    near = d <= reach
    (x0, y0, z0), (nx, ny, nz) = box
    values = np.asarray(sitk.GetArrayViewFromImage(roi), float)[
        z0 : z0 + nz, y0 : y0 + ny, x0 : x0 + nx
    ][near]
    d = np.maximum(d[near], 1e-6)
    u = np.stack([vx[near], vy[near], vz[near]], axis=1) / d[:, None]
    # The voxel's extent along u (LPS axes through the direction matrix): a ramp of that
    # width has SD width / sqrt(12).
    direction = np.asarray(roi.GetDirection(), float).reshape(3, 3)
    width = np.sqrt(((u @ direction) ** 2 * spacing**2).sum(axis=1))
    spread = width / np.sqrt(12.0)
    basis = _sphere_basis(u, SMALL_FIT_DEGREE)
    coef0 = np.linalg.lstsq(basis, np.full(len(u), r_eq), rcond=None)[0]
    outside = values[d > reach - SMALL_FIT_REACH_VOXELS * step + 0.5 * step]
    noise = 1.4826 * float(np.median(np.abs(outside - np.median(outside)))) if outside.size else 0
    noise = max(noise, 1.0)

    nb = basis.shape[1]
    local = None
    if SMALL_FIT_LOCAL_BACKGROUND:
        local = _local_background(roi, mask, box, step)
        if local is None:
            return mask, None
        local = local[near]
        lin = local[:, None]
        params0 = [lesion_hu, 0.0]
    elif SMALL_FIT_BACKGROUND_LINEAR:
        lin = np.column_stack([np.ones(len(u)), u])
        params0 = [lesion_hu, background_hu, 0.0, 0.0, 0.0]
    else:
        lin = np.ones((len(u), 1))
        params0 = [lesion_hu, background_hu]

    def background(p, g):
        if local is not None:
            return g[:, 0] + p[nb + 1]
        return g @ p[nb + 1 :]

    def residual(p, b, g, dist, sd, v):
        back = background(p, g)
        return back + (p[nb] - back) * ndtr((b @ p[:nb] - dist) / sd) - v

    def jacobian(p, b, g, dist, sd, v):
        # Analytic: d/dr-coefficients (L - B) phi(z) basis / s, d/dL Phi(z),
        # d/dB-parameters (1 - Phi(z)) x (1 for the local offset, or the linear basis).
        z = (b @ p[:nb] - dist) / sd
        cdf = ndtr(z)
        pdf = np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)
        back = background(p, g)
        out = np.empty((len(v), len(p)))
        out[:, :nb] = b * ((p[nb] - back) * pdf / sd)[:, None]
        out[:, nb] = cdf
        out[:, nb + 1 :] = (1.0 - cdf)[:, None] * (np.ones((len(v), 1)) if local is not None else g)
        return out

    params = np.concatenate([coef0, params0])
    for _ in range(2):  # the outliers again from the first fit's L and B
        back = background(params, lin)
        lo, hi = np.minimum(params[nb], back), np.maximum(params[nb], back)
        tol = SMALL_FIT_OUTLIER * noise
        use = (values >= lo - tol) & (values <= hi + tol)
        if np.count_nonzero(use) < 4 * len(params):
            return mask, None
        try:
            # A diverging fit (radius coefficients running off on a noiseless, featureless
            # neighbourhood) overflows to inf/NaN and SciPy's SVD raises: not converged.
            with np.errstate(over="ignore", invalid="ignore"):
                fit = least_squares(
                    residual,
                    params,
                    jac=jacobian if SMALL_FIT_ANALYTIC_JACOBIAN else "2-point",
                    loss="soft_l1",
                    f_scale=noise,
                    max_nfev=200,
                    args=(basis[use], lin[use], d[use], spread[use], values[use]),
                )
        except (ValueError, np.linalg.LinAlgError):
            return mask, None
        if not fit.success or not np.all(np.isfinite(fit.x)):
            return mask, None
        params = fit.x
    lesion_fit = float(params[nb])
    r_fit = basis @ params[:nb]
    edge = np.abs(d - r_fit) <= step
    background_fit = float(np.median(background(params, lin)[edge])) if edge.any() else 0.0
    contrast = background_fit - lesion_fit if chosen == "hypo" else lesion_fit - background_fit
    if contrast < min_contrast_hu:
        return mask, None
    inside = np.zeros(near.shape, bool)
    inside[near] = d < r_fit
    out = np.zeros(arr.shape, bool)
    out[z0 : z0 + nz, y0 : y0 + ny, x0 : x0 + nx] = inside
    if SMALL_FIT_WITHIN_VOXEL:
        out &= sitk.GetArrayFromImage(dilate_mm(mask, 1.01 * step)) > 0  # a copy: temporary image
    image = fill_holes(component_at(_uint8_image(out, mask), [s.index for s in seeds]))
    if not np.any(sitk.GetArrayViewFromImage(image)):
        return mask, None
    note = small_lesion_note(chosen, spacing, lesion_fit, background_fit)
    return image, note
