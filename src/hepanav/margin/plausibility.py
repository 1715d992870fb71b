"""Plausibility checks of a margin result: conditions under which its verdict (the
category) must not be read at face value. Not refusals: shown in red beside the
verdict in the report, in ``margin.json`` (``plausibility``) and on the terminal.

* **zone smaller than the tumour**: an ablation zone of smaller volume than the tumour
  it should cover is what swapping ``--pre`` and ``--post`` (or an under-segmented
  zone) gives: the "incomplete" verdict and residual tumour then describe the wrong
  images. A genuinely incomplete ablation can be smaller, so it is a warning.
* **pre and post CT swapped** (pre/post mode, :func:`swap_warning`): an ablation zone is
  hypodense on the (contrast-enhanced) post CT, darker than the tissue around it, and
  the same region of the pre CT (mapped through the registration) is not, or less. When
  the zone's region is darker, relative to its surroundings, on ``--pre`` than on
  ``--post`` by more than :data:`SWAP_MARGIN_HU`, the two CTs are probably swapped
  (tester6: swapped CTs gave a confident "incomplete, residual tumour 5.29 ml").
  A warning, not a refusal: a post CT without contrast, or taken very early, can show
  the zone faintly or even hyperdense, so the numbers are given for the reader to judge.
* **tumour cut by the image border**: the figures and the category cover only the
  tumour surface inside the image (:func:`hepanav.margin.measure.measure_margin` leaves
  the cut surface out), not the whole lesion.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from hepanav.imaging import bounding_box_index, crop

#: The zone's core: its voxels at least this deep inside the zone mask, mm (clear of the
#: partial-volume rim and of small registration errors).
SWAP_CORE_MM = 2.0
#: The surrounding tissue: voxels this far outside the zone mask, mm (from, to): past the
#: hyperaemic rim of a fresh zone, still near enough to be the same organ.
SWAP_RING_MM = (5.0, 15.0)
#: Soft tissue (HU) counted in the ring: not fat, air or bone.
SWAP_TISSUE_HU = (-50.0, 300.0)
#: The zone's region must be darker relative to its ring on --pre than on --post by more
#: than this (HU) for the warning: the median noise of the two contrasts is a few HU.
SWAP_MARGIN_HU = 10.0
#: Fewest voxels in the core and in the ring for the check to run.
SWAP_MIN_VOXELS = 30


def zone_contrast_hu(ct: np.ndarray, core: np.ndarray, ring: np.ndarray) -> float | None:
    """Median HU of the soft tissue in ``ring`` minus the median HU in ``core`` (positive:
    the core is darker than its surroundings); None with too few voxels."""
    tissue = ring & (ct >= SWAP_TISSUE_HU[0]) & (ct <= SWAP_TISSUE_HU[1])
    if core.sum() < SWAP_MIN_VOXELS or tissue.sum() < SWAP_MIN_VOXELS:
        return None
    return float(np.median(ct[tissue]) - np.median(ct[core]))


def swap_warning(
    pre: sitk.Image, post: sitk.Image, ablation: sitk.Image, transform: sitk.Transform
) -> str | None:
    """A warning when --pre and --post look swapped (module doc), else None.

    Parameters
    ----------
    pre, post : SimpleITK.Image
        The CTs, HU.
    ablation : SimpleITK.Image
        Ablation-zone mask on ``post``'s grid (uint8 0/1).
    transform : SimpleITK.Transform
        The registration (maps post points to pre points, LPS mm).

    The zone's core (deeper than :data:`SWAP_CORE_MM`) and a ring
    :data:`SWAP_RING_MM` outside it are taken on a crop of the post grid; the pre CT is
    resampled onto that crop through ``transform`` (linear), so both contrasts describe
    the same tissue.
    """
    start, size = bounding_box_index(ablation, SWAP_RING_MM[1] + 5.0)
    zone_img = crop(ablation, start, size)
    post_img = crop(post, start, size)
    pre_img = sitk.Resample(pre, post_img, transform, sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
    zone = sitk.GetArrayViewFromImage(zone_img) > 0
    spacing_zyx = tuple(reversed(post_img.GetSpacing()))
    inside = ndimage.distance_transform_edt(zone, sampling=spacing_zyx)
    outside = ndimage.distance_transform_edt(~zone, sampling=spacing_zyx)
    core = inside >= SWAP_CORE_MM
    if core.sum() < SWAP_MIN_VOXELS:
        core = zone
    ring = (outside >= SWAP_RING_MM[0]) & (outside <= SWAP_RING_MM[1])
    on_post = zone_contrast_hu(sitk.GetArrayFromImage(post_img).astype(float), core, ring)
    on_pre = zone_contrast_hu(sitk.GetArrayFromImage(pre_img).astype(float), core, ring)
    if on_post is None or on_pre is None or on_pre - on_post <= SWAP_MARGIN_HU:
        return None
    return (
        f"the ablation zone's region is darker, relative to the tissue around it, on --pre "
        f"({on_pre:+.0f} HU: median of the tissue {SWAP_RING_MM[0]:g}-{SWAP_RING_MM[1]:g} mm "
        f"around minus the zone's) than on --post ({on_post:+.0f} HU), but an ablation zone "
        "is dark on the post CT: --pre and --post SWAPPED? Check both before trusting the "
        "verdict (a post CT without contrast can also do this)"
    )


def plausibility_warnings(
    tumor_volume_ml: float, ablation_volume_ml: float, cut_fraction: float
) -> list[str]:
    """Warnings (possibly none) for a margin result.

    Parameters
    ----------
    tumor_volume_ml, ablation_volume_ml : float
        Mask volumes, ml (voxel counts of each mask).
    cut_fraction : float
        Fraction (0..1) of the tumour surface on the image border, not assessed.
    """
    out = []
    if ablation_volume_ml < tumor_volume_ml:
        out.append(
            f"the ablation zone ({ablation_volume_ml:.2f} ml) is SMALLER than the tumour "
            f"({tumor_volume_ml:.2f} ml): --pre and --post swapped, or the zone "
            "under-segmented? Check both before trusting the verdict"
        )
    if cut_fraction > 0:
        out.append(
            f"the tumour is cut by the image border ({100 * cut_fraction:.1f} % of its surface "
            "not assessable): the category grades only the part inside the image, not the "
            "whole lesion, and the tumour volume is a lower bound"
        )
    return out
