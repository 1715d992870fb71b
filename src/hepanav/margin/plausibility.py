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
* **zone (nearly) the tumour itself** (:func:`tumour_zone_overlap`,
  :func:`zone_is_tumour_warning`): the tumour and the zone in the common (post) frame
  overlap with Dice >= :data:`ZONE_IS_TUMOUR_DICE`, or the zone's volume is within
  :data:`ZONE_IS_TUMOUR_VOLUME` of the tumour's with at least
  :data:`ZONE_IS_TUMOUR_INSIDE` of the tumour inside it. No ablation zone follows the
  lesion's own outline: this is the same lesion segmented (clicked) twice, or the pre CT
  given as post (tester: same CT and same click as pre and post gave "MAM 0.0 mm,
  incomplete", Dice 0.997, and no flag). Unlike the flags above it is not a measured
  ablation at all, so it also makes the MAM NOT decisive
  (:func:`hepanav.margin.pipeline.margin_uncertainty`) and the verdict line says so
  (:func:`hepanav.margin.verdict.not_decisive_why`). When ``--pre`` and ``--post`` are
  the same image (:func:`hepanav.margin.registration.same_image`) the warning says that
  first.

Thresholds (docs/margin.md, "Zone = tumour"): a zone that holds a tumour of radius
``r`` with a margin ``m`` all round has Dice ``2 / (1 + (1 + m/r)^3)`` with it (concentric
balls). Dice 0.9 is ``m = 0.069 r``: 0.7 mm for a 2 cm lesion, 1.0 mm for 3 cm (the usual
limit of thermal ablation), 1.7 mm for 5 cm; a zone hugging the lesion that closely all
round is not what a thermal ablation makes (an ellipsoid around the applicator), and such
a margin is within u of 0 mm anyway. The second rule catches the same lesion segmented
on two scans with a registration error: equal volumes with a 1-2.5 mm shift keep 80-90 %
overlap (a 2 cm ball shifted 2 mm: 85 %, Dice 0.85); a zone within 5 % of the tumour's
volume cannot hold it with any margin (``(1 + m/r)^3 <= 1.05`` is ``m <= 0.016 r``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from hepanav.core.report import format_percent
from hepanav.imaging import bounding_box_index, crop, dice

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


#: Dice of tumour and zone (common frame) from which the zone is taken to be the tumour.
ZONE_IS_TUMOUR_DICE = 0.9
#: ... or: the zone's volume within this fraction of the tumour's ...
ZONE_IS_TUMOUR_VOLUME = 0.05
#: ... and at least this share of the tumour's volume inside the zone.
ZONE_IS_TUMOUR_INSIDE = 0.8

#: The decision rule's clause for such a zone (``uncertainty.rule``).
ZONE_IS_TUMOUR_RULE = (
    "a zone that is the tumour itself (plausibility) is no measured ablation: never decisive"
)
#: Why such a MAM is not decisive, in the verdict line (terminal, web page, DICOM SR).
ZONE_IS_TUMOUR_VERDICT = (
    "IMPLAUSIBLE: the ablation zone is the tumour itself, not a measured ablation (see the WARNING)"
)


@dataclass(frozen=True)
class TumourZoneOverlap:
    """How far the ablation zone is the tumour itself, in the common (post) frame.

    Attributes
    ----------
    dice : float
        Dice of the tumour and the zone (1: the same region).
    tumour_inside : float
        Share (0..1) of the tumour's volume inside the zone.
    volume_ratio : float
        Zone volume / tumour volume.
    """

    dice: float
    tumour_inside: float
    volume_ratio: float

    @property
    def zone_is_tumour(self) -> bool:
        """True when the zone is (nearly) the tumour itself (module doc, thresholds)."""
        return self.dice >= ZONE_IS_TUMOUR_DICE or (
            abs(self.volume_ratio - 1.0) <= ZONE_IS_TUMOUR_VOLUME
            and self.tumour_inside >= ZONE_IS_TUMOUR_INSIDE
        )


def tumour_zone_overlap(tumor_field: np.ndarray, zone_field: np.ndarray) -> TumourZoneOverlap:
    """Overlap of the tumour and the zone on the margin's local analysis grid.

    Parameters
    ----------
    tumor_field, zone_field : ndarray, shape (nz, ny, nx)
        The occupancies of :class:`hepanav.margin.measure.Measurement` (``>= 0.5``
        inside) on its analysis grid: post space (LPS mm), the tumour mapped through the
        registration, equal sub-voxels, so voxel counts are volumes. The grid holds the
        tumour and the zone within 40 mm of it (``measure.ZONE_SEARCH_MM``): a zone part
        beyond that is no part of this tumour's ablation.

    Raises
    ------
    ValueError
        Fields of different shapes, or no tumour voxel.
    """
    if tumor_field.shape != zone_field.shape:
        raise ValueError("tumour and zone fields on different grids")
    tumour, zone = tumor_field >= 0.5, zone_field >= 0.5
    n_tumour = int(np.count_nonzero(tumour))
    if n_tumour == 0:
        raise ValueError("no tumour voxel on the analysis grid")
    inside = int(np.count_nonzero(tumour & zone))
    as_image = (sitk.GetImageFromArray(a.view(np.uint8)) for a in (tumour, zone))
    return TumourZoneOverlap(
        dice=dice(*as_image),
        tumour_inside=inside / n_tumour,
        volume_ratio=int(np.count_nonzero(zone)) / n_tumour,
    )


def zone_is_tumour_warning(overlap: TumourZoneOverlap, same_pre_post: bool = False) -> str:
    """The plausibility warning of a zone that is (nearly) the tumour itself; with
    ``same_pre_post`` (``--pre`` and ``--post`` the same image) it says that first."""
    same = (
        "--pre and --post are the SAME IMAGE (same voxels and geometry: the same file or "
        "scan given twice, the pre CT as post?) and "
        if same_pre_post
        else ""
    )
    return (
        f"{same}the ablation zone is (nearly) the TUMOUR ITSELF (Dice "
        f"{overlap.dice:.3f}, {format_percent(overlap.tumour_inside)} % of the tumour inside "
        f"the zone, zone {overlap.volume_ratio:.2f} x the tumour's volume): no ablation "
        "zone follows the lesion's own outline; the same lesion segmented or clicked "
        "twice, or the pre CT given as post? This is NOT a measured ablation: the MAM "
        "and the category describe the tumour against itself"
    )


def plausibility_warnings(
    tumor_volume_ml: float,
    ablation_volume_ml: float,
    cut_fraction: float,
    zone_is_tumour: str | None = None,
) -> list[str]:
    """Warnings (possibly none) for a margin result.

    Parameters
    ----------
    tumor_volume_ml, ablation_volume_ml : float
        Mask volumes, ml (voxel counts of each mask).
    cut_fraction : float
        Fraction (0..1) of the tumour surface on the image border, not assessed.
    zone_is_tumour : str, optional
        :func:`zone_is_tumour_warning` when the zone is (nearly) the tumour: it comes
        first and replaces "zone smaller than the tumour" (whose "swapped?" would
        mislead: a zone that is the tumour is a few voxels larger or smaller at random).
    """
    out = []
    if zone_is_tumour:
        out.append(zone_is_tumour)
    elif ablation_volume_ml < tumor_volume_ml:
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
