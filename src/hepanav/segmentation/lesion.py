"""The path tumour and ablation-zone segmentation share: check the clicks, grow the
lesion on a crop around them (:func:`hepanav.segmentation.grow.grow_lesion`), and
put the smoothed mask back onto the CT grid as a :class:`Segmentation`."""

from __future__ import annotations

import SimpleITK as sitk

from hepanav.segmentation.grow import SURFACE_SIGMA_MM, Appearance, Grown, grow_lesion
from hepanav.segmentation.result import Segmentation, paste, smooth_surface
from hepanav.segmentation.seeds import Seed, checked_seeds


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
    """The crop-grid mask surface-smoothed (:func:`smooth_surface`), pasted onto the CT
    grid, with what the growing measured (HU, window, notes)."""
    return Segmentation(
        mask=paste(smooth_surface(local_mask, SURFACE_SIGMA_MM), ct),
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
    )
