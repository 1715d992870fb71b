"""Ablation zone on the post-ablation CT from one or more clicks.

The coagulation zone is non-enhancing (hypodense against enhancing liver), often
with an enhancing rim of hyperaemia just outside it. Gas bubbles and the needle
tract inside the zone belong to it; an enhancing vessel crossing the zone does NOT
(that unablated channel is what the margin must see). So: grow the hypodense
region (:func:`hepanav.segmentation.grow.grow_lesion`, rim excluded by its
brightness), then add back only DARK voxels that a 2 mm closing and hole filling
enclose (gas, tract), never bright ones (vessels).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from hepanav.core.errors import InputError
from hepanav.segmentation.lesion import check_zone, grow_checked, lesion_segmentation
from hepanav.segmentation.morphology import (
    bounding_box,
    close_mm,
    component_at,
    crop_box,
    fill_holes,
    uncrop_box,
)
from hepanav.segmentation.result import Segmentation
from hepanav.segmentation.seeds import Seed, check_tissue
from hepanav.segmentation.windows import hu_windows

DEFAULT_MAX_RADIUS_MM = 45.0
CLOSING_MM = 2.0


def segment_ablation(
    ct: sitk.Image,
    seeds: list[Seed],
    max_radius_mm: float = DEFAULT_MAX_RADIUS_MM,
    include: list[Seed] | None = None,
    exclude: list[Seed] | None = None,
) -> Segmentation:
    """Segment an ablation zone around the seeds.

    Parameters
    ----------
    ct : SimpleITK.Image
        Post-ablation contrast CT in HU.
    seeds : list of Seed
        Clicks inside the zone (a click on gas inside it is moved to the nearest tissue;
        one in fat, lung or air is refused: :func:`move_off_gas`).
    max_radius_mm : float
        Largest distance of a zone voxel from its nearest seed, mm; beyond is a leak.
    include, exclude : list of Seed, optional
        Editing points.

    Returns
    -------
    Segmentation
        Mask on the CT grid.

    Raises
    ------
    InputError
        Seed in bone or outside the body, a seed that does not look like a zone, a leak.
    """
    win = hu_windows()
    moved = [move_off_gas(ct, s) for s in seeds]
    seeds = [s for s, _ in moved]
    grown, include, exclude = grow_checked(
        ct, seeds, "hypo", max_radius_mm, "ablation zone", include, exclude, dark_is_lesion=True
    )
    check_zone(ct, grown, seeds)
    threshold = 0.5 * (grown.lesion_hu + grown.parenchyma_hu)
    # All that follows lies within CLOSING_MM of the grown mask: it runs on that box
    # (+ a voxel of background for the hole filling), the same voxels as on the crop.
    box = bounding_box(grown.mask, CLOSING_MM, 1) or ((0, 0, 0), list(grown.mask.GetSize()))
    grown_box = crop_box(grown.mask, box)
    smoothed_box = crop_box(grown.smoothed, box)
    # Dark voxels (necrosis, gas) that the closing adds are zone; bright ones (an
    # enhancing vessel crossing the zone, the rim) are not.
    closed = close_mm(grown_box, CLOSING_MM)
    dark = sitk.Cast(smoothed_box < threshold, sitk.sitkUInt8)
    mask = sitk.Or(grown_box, sitk.And(closed, dark))
    mask = fill_holes(mask)
    # Hole filling must not re-add a bright channel: it only fills enclosed cavities,
    # and a vessel crossing the zone leaves it on both sides, so it is never enclosed.
    seeds_local = [tuple(int(v) for v in mask.TransformPhysicalPointToIndex(s.lps)) for s in seeds]
    mask = component_at(mask, seeds_local)
    notes = list(grown.notes)
    notes += [
        f"{s.label} {s.moved}: grown from the nearest tissue voxel "
        f"({', '.join(f'{v:.1f}' for v in s.lps)}) mm"
        for s, m in moved
        if m
    ]
    gas = sitk.GetArrayViewFromImage(smoothed_box) < win["gas_below_hu"]
    n_gas = int(np.count_nonzero(gas & (sitk.GetArrayViewFromImage(mask) > 0)))
    mask = uncrop_box(mask, grown.mask, box)
    if n_gas:
        ml = n_gas * float(np.prod(ct.GetSpacing())) / 1000.0
        notes.append(f"gas inside the zone ({ml:.2f} ml) counted as zone")
    return lesion_segmentation(
        ct,
        mask,
        grown,
        structure="ablation",
        method=(
            "adaptive-threshold region growing of the hypodense zone (Gaussian 1 mm, "
            "ConnectedThreshold at the zone/parenchyma midpoint within a robust star-shaped "
            "bound), edge refined on the deblurred CT, opening, 2 mm closing keeping dark "
            "voxels only (gas, tract), hole filling"
        ),
        seeds=seeds,
        include=include,
        exclude=exclude,
        max_radius_mm=max_radius_mm,
        notes=notes,
    )


# A click below soft tissue (< fat_below_hu, smoothed) is moved only when it is on gas
# (< gas_below_hu, smoothed or unsmoothed: a thin tract smoothed reads like fat) or within
# GAS_NEAR_MM of gas (its partial-volume edge) AND gas fills at
# most MAX_GAS_SHARE of the RADIUS ball around it: a bubble or the needle tract inside a
# zone (a 2 mm tract is about 2 % of the 8 mm ball, a 5 mm bubble 24 %). A click in lung
# or air outside the body (gas all around) is refused as such, and a click in fat (no gas
# near it) as fat, as `segment tumor` refuses them. HepaNav defaults.
GAS_NEAR_MM = 2.0
MAX_GAS_SHARE = 0.5


def move_off_gas(ct: sitk.Image, seed: Seed, radius_mm: float = 8.0) -> tuple[Seed, bool]:
    """A click on gas inside the zone (a bubble, the needle tract) moved to the nearest
    tissue voxel.

    Gas belongs to the zone but would start the growing in the wrong HU range.
    Voxels within 1.5 mm of gas (partial volume) are skipped. Returns the seed (its
    ``moved`` saying how far, from what HU; :meth:`Seed.describe` names it) and whether
    it moved. Raises ``InputError`` for a click in fat (below soft tissue, no gas within
    ``GAS_NEAR_MM`` on the smoothed or the unsmoothed CT), in lung or air (gas fills
    more than ``MAX_GAS_SHARE`` of the ``radius_mm`` ball), or with no tissue within
    ``radius_mm``.
    """
    # Moved when the (1 mm smoothed, as grown) HU at the click is below soft tissue.
    win = hu_windows()
    limit = win["fat_below_hu"]
    spacing = np.asarray(ct.GetSpacing())
    r = np.ceil(radius_mm / spacing).astype(int)
    lo = np.maximum(np.asarray(seed.index) - r, 0)
    hi = np.minimum(np.asarray(seed.index) + r + 1, np.asarray(ct.GetSize()))
    block = sitk.RegionOfInterest(ct, (hi - lo).tolist(), lo.tolist())
    smooth = sitk.SmoothingRecursiveGaussian(sitk.Cast(block, sitk.sitkFloat32), 1.0)
    gas = sitk.Cast(smooth < win["gas_below_hu"], sitk.sitkUInt8)
    arr = sitk.GetArrayViewFromImage(smooth)
    centre = np.asarray(seed.index) - lo
    at_click = float(arr[centre[2], centre[1], centre[0]])
    if at_click >= limit:
        return seed, False
    kk, jj, ii = np.indices(arr.shape)
    dist = np.sqrt(
        ((ii - centre[0]) * spacing[0]) ** 2
        + ((jj - centre[1]) * spacing[1]) ** 2
        + ((kk - centre[2]) * spacing[2]) ** 2
    )
    gas_arr = sitk.GetArrayViewFromImage(gas) > 0
    # Gas near the click on the unsmoothed CT too: a 1.5 mm needle tract smoothed by 1 mm
    # reads about -110 HU, like fat, while its own voxels are gas.
    raw_gas = sitk.GetArrayViewFromImage(block) < win["gas_below_hu"]
    if not np.any((gas_arr | raw_gas) & (dist <= GAS_NEAR_MM)):
        raise InputError(
            f"seed is in fat ({at_click:.0f} HU at the click, below soft tissue "
            f"{limit:.0f} HU, no gas within {GAS_NEAR_MM:g} mm): no soft tissue; it cannot "
            "be the ablation zone (click inside the zone)",
            seed.describe(),
        )
    ball = dist <= radius_mm
    share = float(np.mean(gas_arr[ball]))
    if share > MAX_GAS_SHARE:
        raise InputError(
            f"seed is in air or lung ({at_click:.0f} HU at the click; gas fills "
            f"{100 * share:.0f}% of the {radius_mm:g} mm around it, more than a bubble or "
            "needle tract in a zone): it cannot be the ablation zone",
            seed.describe(),
        )
    from hepanav.segmentation.morphology import dilate_mm

    near_gas = sitk.GetArrayFromImage(dilate_mm(gas, 1.5)) > 0  # copy: the image is a temporary
    k, j, i = np.nonzero(~near_gas & (arr > limit))
    if k.size == 0:
        check_tissue(ct, seed, "ablation zone")
        raise InputError("seed is in gas with no tissue within 8 mm", seed.describe())
    d = (
        ((i - centre[0]) * spacing[0]) ** 2
        + ((j - centre[1]) * spacing[1]) ** 2
        + ((k - centre[2]) * spacing[2]) ** 2
    )
    n = int(np.argmin(d))
    index = (int(i[n] + lo[0]), int(j[n] + lo[1]), int(k[n] + lo[2]))
    lps = ct.TransformIndexToPhysicalPoint(index)
    moved = f"moved {np.sqrt(d[n]):.1f} mm off gas ({at_click:.0f} HU at the click)"
    return Seed(tuple(float(v) for v in lps), index, seed.label, moved), True
