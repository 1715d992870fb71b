"""Tumour on the pre-procedure CT from one or more clicks.

Hypodense colorectal metastases in the portal venous phase and hypervascular
(neuroendocrine) metastases in the arterial phase; ``auto`` decides from the seed
against its surroundings. The algorithm is :func:`hepanav.segmentation.grow.grow_lesion`.
"""

from __future__ import annotations

import SimpleITK as sitk

from hepanav.segmentation.grow import Appearance
from hepanav.segmentation.lesion import (
    check_embedded,
    check_focal_lesion,
    check_vessel_continuity,
    grow_checked,
    lesion_segmentation,
)
from hepanav.segmentation.result import Segmentation
from hepanav.segmentation.seeds import Seed

DEFAULT_MAX_RADIUS_MM = 40.0


def segment_tumor(
    ct: sitk.Image,
    seeds: list[Seed],
    appearance: Appearance = "auto",
    max_radius_mm: float = DEFAULT_MAX_RADIUS_MM,
    include: list[Seed] | None = None,
    exclude: list[Seed] | None = None,
) -> Segmentation:
    """Segment a liver tumour around the seeds.

    Parameters
    ----------
    ct : SimpleITK.Image
        Pre-procedure CT in HU (any grid; LPS mm).
    seeds : list of Seed
        Clicks inside the tumour (see :func:`hepanav.segmentation.seeds.make_seeds`).
    appearance : {"auto", "hypo", "hyper"}
        Hypo- or hyperattenuating relative to the liver.
    max_radius_mm : float
        Largest distance of a tumour voxel from its nearest seed, mm; beyond is a leak.
    include, exclude : list of Seed, optional
        Editing points (grown from / cut off).

    Returns
    -------
    Segmentation
        Mask on the CT grid.

    Raises
    ------
    InputError
        Seed in air or bone, a seed that does not look like a tumour (including a
        region in bone, fat or a vessel: :func:`check_focal_lesion`), a leak.
    """
    grown, include, exclude = grow_checked(
        ct, seeds, appearance, max_radius_mm, "tumour", include, exclude
    )
    check_focal_lesion(grown, seeds, "tumour")
    check_embedded(ct, grown, seeds, "tumour")
    check_vessel_continuity(ct, grown, seeds, "tumour")
    return lesion_segmentation(
        ct,
        grown.mask,
        grown,
        structure="tumor",
        method=(
            "adaptive-threshold region growing (Gaussian 1 mm, SimpleITK ConnectedThreshold at "
            "the lesion/parenchyma midpoint within a robust star-shaped bound, opening + hole "
            "filling), edge refined at the midpoint on the deblurred CT (Gaussian - "
            "sigma^2/2 LoG); small tumours: a blurred-step model fitted to the CT"
        ),
        seeds=seeds,
        include=include,
        exclude=exclude,
        max_radius_mm=max_radius_mm,
    )
