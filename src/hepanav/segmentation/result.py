"""The in-memory result every segmenter returns (JSON record: ``schema.SegmentationResult``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

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
    include_outcomes : list
        Tumour and zone: what each ``--include`` point did
        (:class:`hepanav.segmentation.include.IncludeOutcome`: in the mask as grown,
        or a lobe grown from it joined, with its volume in mm^3).
    lesions : list of dict
        Tumour and zone: one per lesion segmented (:mod:`hepanav.segmentation.multi`):
        ``seeds`` (labels as given), ``volume_ml``, ``equivalent_diameter_mm`` (of its
        voxels of the final ``mask``: the lesions partition it), ``lesion_hu``,
        ``parenchyma_hu``, ``window_hu`` (its own, HU), ``appearance``,
        ``border_faces`` (image faces its voxels touch). The attributes ``lesion_hu``,
        ``parenchyma_hu``, ``window_hu`` and ``appearance`` above are lesion 1's.
    lesion_map : SimpleITK.Image or None
        Tumour and zone: which lesion each voxel of ``mask`` belongs to (uint8 on the
        mask's bounding box, a sub-box of the CT grid: 0 outside the mask, n for
        ``lesions[n - 1]``; :func:`hepanav.segmentation.multi.lesion_map`); None for
        the liver.
    excluded_mm3 : float
        Volume the ``--exclude`` points cut off the region grown, mm^3 (0 without).
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
    include_outcomes: list = field(default_factory=list)
    lesions: list = field(default_factory=list)
    lesion_map: sitk.Image | None = None
    excluded_mm3: float = 0.0

    def volume_ml(self) -> float:
        """Volume of the mask in ml (voxel counting)."""
        n = int(np.count_nonzero(sitk.GetArrayViewFromImage(self.mask)))
        return n * float(np.prod(self.mask.GetSpacing())) / 1000.0


CURVATURE_CORRECTED = True
# One-voxel spikes and pits of the final lesion masks (remove_spikes_and_pits): flipped
# when at most SPIKE_NEIGHBOURS of the six face neighbours share the voxel's side; at
# most SPIKE_PASSES passes (a one-voxel-wide finger goes voxel by voxel). False: kept.
REMOVE_SPIKES = True
SPIKE_NEIGHBOURS = 1
SPIKE_PASSES = 4
# ... only on lesions whose equivalent radius is at least this many voxels (largest side):
# there a true tip or dent voxel lies within h^2 / (2 R) <= h / 6 of the surface. On
# smaller lesions the voxel outline itself is made of such voxels (an 8 mm tumour on
# 1.5 mm voxels lost Dice 0.892 -> 0.877 to the flips, tests/test_segmentation_lesions.py).
SPIKE_MIN_RADIUS_VOXELS = 3.0
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


def remove_spikes_and_pits(mask: sitk.Image) -> sitk.Image:
    """The mask without one-voxel spikes and pits (face connectivity).

    A spike is a mask voxel with at most ``SPIKE_NEIGHBOURS`` (1) of its six face
    neighbours inside: a one-voxel protrusion; a pit is an outside voxel with at least
    five of six inside: a one-voxel dent. A smooth surface of curvature radius ``R``
    has such a voxel only where its centre lies within ``h^2 / (2 R)`` of the surface
    (0.3 mm for a 15 mm tumour on 3 mm voxels, a quarter voxel at ``R = 2h``), so the
    flip moves the surface by less than the voxel's own quantisation, while a voxel
    that the CT's noise put on the wrong side one voxel beyond the surface is undone:
    on 3 mm voxels (liver noise 13 HU against a 45 HU contrast) such voxels occur a few
    times per lesion, and neither the 2 mm opening of the refinement nor
    :func:`smooth_surface` (both below one voxel there) removes them; a minimum over
    the surface (the MAM) then reads a whole voxel low (issue 12, dev case 3 mm 22: a
    liver voxel 2.4 mm outside the 15 mm tumour reading 5 HU, -3 SD, MAM 0.96 mm for
    3.90). Holes the flips would enclose are filled; a mask the flips would empty, or
    whose equivalent radius is below ``SPIKE_MIN_RADIUS_VOXELS`` voxels, is returned
    unchanged.

    Parameters
    ----------
    mask : SimpleITK.Image
        Binary mask (non-zero inside), any grid.

    Returns
    -------
    SimpleITK.Image
        uint8 0/1 on ``mask``'s grid.
    """
    inside = sitk.GetArrayFromImage(mask) != 0
    if not REMOVE_SPIKES or not inside.any():
        return mask
    spacing = np.asarray(mask.GetSpacing(), float)
    r_eq = (3.0 * np.count_nonzero(inside) * float(np.prod(spacing)) / (4.0 * np.pi)) ** (1 / 3)
    if r_eq < SPIKE_MIN_RADIUS_VOXELS * float(spacing.max()):
        return mask
    cross = ndimage.generate_binary_structure(3, 1).astype(np.uint8)
    cross[1, 1, 1] = 0
    out = inside.copy()
    for _ in range(SPIKE_PASSES):
        n = ndimage.convolve(out.astype(np.uint8), cross, mode="constant", cval=0)
        spike = out & (n <= SPIKE_NEIGHBOURS)
        pit = ~out & (n >= 6 - SPIKE_NEIGHBOURS)
        if not spike.any() and not pit.any():
            break
        out = (out & ~spike) | pit
    if not out.any():
        return mask
    out = ndimage.binary_fill_holes(out)
    if np.array_equal(out, inside):
        return mask
    image = sitk.GetImageFromArray(out.astype(np.uint8))
    image.CopyInformation(mask)
    return image
