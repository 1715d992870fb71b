"""The in-memory result every segmenter returns (JSON record: ``schema.SegmentationResult``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from hepanav.segmentation.morphology import bounding_box, crop_box, uncrop_box
from hepanav.segmentation.seeds import Seed


@dataclass
class Segmentation:
    """A mask on the CT's grid (uint8 0/1) and how it was made.

    Attributes
    ----------
    mask : SimpleITK.Image
        0/1 on exactly the CT's grid (size, spacing, origin, direction).
    structure : str
        "tumor", "ablation" or "liver".
    method : str
        One line naming the algorithm and its parameters.
    seeds, include, exclude : list of Seed
    appearance : str or None
        "hypo"/"hyper" for lesions.
    lesion_hu, parenchyma_hu : float or None
        HU measured at the seed and around the lesion (or of the liver).
    window_hu : tuple or None
        HU range that was grown.
    notes : list of str
        Things the user should know (shown in the report and the JSON).
    fraction : SimpleITK.Image or None
        Tumour and zone: the partial-volume fraction of the mask's edge voxels read
        from the CT (float32 0..1 on a box of the CT grid, ``>= 0.5`` exactly where
        ``mask`` is 1; :mod:`hepanav.segmentation.fraction`), for the margin's
        sub-voxel surface; None for the liver.
    """

    mask: sitk.Image
    structure: str
    method: str
    seeds: list[Seed]
    include: list[Seed] = field(default_factory=list)
    exclude: list[Seed] = field(default_factory=list)
    appearance: str | None = None
    lesion_hu: float | None = None
    parenchyma_hu: float | None = None
    window_hu: tuple[float, float] | None = None
    max_radius_mm: float | None = None
    notes: list[str] = field(default_factory=list)
    fraction: sitk.Image | None = None

    def volume_ml(self) -> float:
        """Volume of the mask in ml (voxel counting)."""
        n = int(np.count_nonzero(sitk.GetArrayViewFromImage(self.mask)))
        return n * float(np.prod(self.mask.GetSpacing())) / 1000.0


CURVATURE_CORRECTED = True
# The surface smoothing sigma is at most the equivalent radius / this.
RADIUS_FRACTION = 12.0
# smooth_surface works on the mask's box padded by this many sigmas (speed only).
REACH_SIGMAS = 6.0


def paste(local: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """Put a mask on a sub-grid of ``reference`` (a crop of it) back onto the full grid."""
    full = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
    full.CopyInformation(reference)
    start = reference.TransformPhysicalPointToIndex(local.GetOrigin())
    size = local.GetSize()
    if all(0 <= a and a + n <= m for a, n, m in zip(start, size, full.GetSize(), strict=True)):
        # In place (SimpleITK's slice assignment): no copy of the full-size image.
        full[tuple(slice(a, a + n) for a, n in zip(start, size, strict=True))] = sitk.Cast(
            local, sitk.sitkUInt8
        )
        return full
    return sitk.Paste(full, sitk.Cast(local, sitk.sitkUInt8), size, [0, 0, 0], start)


def smooth_surface(mask: sitk.Image, sigma_mm: float) -> sitk.Image:
    """The mask's surface smoothed: Gaussian of the 0/1 mask (sigma, mm) cut at 0.5.

    Voxel noise along a threshold surface makes a minimum over the surface (the
    MAM) err low; a sub-voxel smoothing removes it without moving a flat edge.
    """
    # Small lesions: at most a twelfth of the equivalent radius (a Gaussian shrinks a
    # sphere by about sigma^2 / radius).
    n = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
    r_eq = (3.0 * n * float(np.prod(mask.GetSpacing())) / (4.0 * np.pi)) ** (1.0 / 3.0)
    sigma_mm = min(sigma_mm, r_eq / RADIUS_FRACTION)
    if sigma_mm <= 0.5 * min(mask.GetSpacing()):
        return mask
    # On the mask's box padded by REACH_SIGMAS sigma (zeros all around it, as outside
    # it): farther out the smoothed mask stays far below 0.5.
    box = bounding_box(mask, REACH_SIGMAS * sigma_mm, 1)
    if box is None:
        return mask
    binary = sitk.Cast(crop_box(mask, box), sitk.sitkFloat32)
    soft = sitk.SmoothingRecursiveGaussian(binary, sigma_mm)
    if CURVATURE_CORRECTED:
        # First-order inverse of the blur (see grow.refine_boundary): the smoothed
        # surface does not shrink by sigma^2 x curvature.
        soft = soft - (0.5 * sigma_mm * sigma_mm) * sitk.LaplacianRecursiveGaussian(
            binary, sigma_mm
        )
    return uncrop_box(sitk.Cast(soft >= 0.5, sitk.sitkUInt8), mask, box)
