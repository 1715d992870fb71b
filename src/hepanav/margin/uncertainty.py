"""Uncertainty of the margin figures from the registration near the ablation zone.

The MAM moves by at most ``|t|`` when the tumour is shifted by ``t`` (a distance to a
fixed surface is 1-Lipschitz), so the registration error AT THE TUMOUR bounds the
margin error it causes. Landmark TRE far from the zone does not measure it. We
estimate it by local registration consistency: starting from the registration
result, a translation-only registration of the pre CT to the post CT within
``LOCAL_RADIUS_MM`` of the zone (soft tissue, zone and tumour excluded) asks whether
the images near the zone still want to move; the length of that correction is the
local registration error estimate. The reported half-width is

    u = |local correction| + LOCAL_FLOOR_MM + geometric term

where the floor covers the correction's own noise and the geometric term is half the
coarsest voxel of the masks beyond 1 mm (what thick slices leave unknown, see
docs/margin.md). A margin within ``u`` of 0 mm or 5 mm is NOT DECISIVE.

Masks given in one space on DIFFERENT voxel lattices (:func:`same_lattice` false): the
geometric term is half the DIAGONAL of the coarsest voxel (per axis the coarser of the
two masks' spacings; :func:`mixed_grid_half_width_mm`), in full. A mask is no more
precise than the grid it was drawn on, and a mask resampled before input (e.g. exported
nearest-neighbour from the CT's 1.5 mm grid onto 1 mm) looks finer than it is: it is a
staircase of coarse blocks whose corners stand up to half a coarse voxel's diagonal off
the drawn surface, and the surface placement, tuned to the finer grid, takes them at
face value (tester6: such a tumour mask moved the MAM 0.6 mm and made a NOT decisive
result "decisive"; concentric balls r 8 / 12.6 mm on 1.5 mm, the tumour upsampled
nearest-neighbour to 1 mm: MAM 4.33 -> 3.53 mm, truth 4.6). The tool cannot know which
mask was resampled, so it assumes the finer one may have been. Masks on one lattice keep
the rule above.
In the pre/post mode each mask is on its own CT's grid (resampled onto it on reading
when not) and the rule above applies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from hepanav.imaging import bounding_box_index, crop, resample_isotropic
from hepanav.imaging.resample import resample_mask_like

LOCAL_RADIUS_MM = 35.0
LOCAL_SPACING_MM = 2.0
LOCAL_FLOOR_MM = 0.5
# The zone, dilated by this, is left out of the local metric (as in the registration).
EXCLUSION_MM = 5.0


@dataclass(frozen=True)
class LocalConsistency:
    """Local registration check near the zone.

    Attributes
    ----------
    correction_lps_mm : ndarray, shape (3,)
        Translation (post space, LPS mm) the local registration still wanted.
    half_width_mm : float
        Uncertainty of the margin figures, mm (see module doc).
    """

    correction_lps_mm: np.ndarray
    half_width_mm: float


def geometric_half_width_mm(tumor: sitk.Image, ablation: sitk.Image) -> float:
    """Half the coarsest voxel size beyond 1 mm of the two masks, mm (0 on 1 mm grids)."""
    coarsest = max(max(tumor.GetSpacing()), max(ablation.GetSpacing()))
    return max(0.0, 0.5 * (coarsest - 1.0))


def same_lattice(a: sitk.Image, b: sitk.Image, tol: float = 1e-3) -> bool:
    """True when ``a`` and ``b`` sample one voxel lattice: same spacing and direction, and
    origins a whole number of voxels apart (a crop of the other's grid counts)."""
    if not (
        np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tol)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-5)
    ):
        return False
    index = np.asarray(a.TransformPhysicalPointToContinuousIndex(b.GetOrigin()))
    return bool(np.allclose(index, np.rint(index), atol=tol))


def mixed_grid_half_width_mm(tumor: sitk.Image, ablation: sitk.Image) -> float:
    """Half the diagonal of the coarsest voxel of the two masks (per axis the larger
    spacing), mm: the geometric term for masks on different lattices (module doc)."""
    coarsest = np.maximum(np.sort(tumor.GetSpacing()), np.sort(ablation.GetSpacing()))
    return 0.5 * float(np.linalg.norm(coarsest))


def grid_text(image: sitk.Image) -> str:
    """``"1 x 1 x 1.5 mm"``: an image's voxel size in words."""
    return " x ".join(f"{v:g}" for v in np.round(image.GetSpacing(), 3)) + " mm"


def local_consistency(
    pre_ct: sitk.Image,
    post_ct: sitk.Image,
    ablation: sitk.Image,
    transform: sitk.Transform,
    tumor: sitk.Image | None = None,
) -> LocalConsistency:
    """Translation still wanted near the zone after ``transform`` (post -> pre), and ``u``.

    Parameters
    ----------
    pre_ct, post_ct : SimpleITK.Image
        CT scans in HU.
    ablation : SimpleITK.Image
        Ablation-zone mask on the post grid.
    transform : SimpleITK.Transform
        The registration result (maps post points to pre points, LPS mm).
    tumor : SimpleITK.Image, optional
        Tumour mask on the pre grid, for the geometric term.

    Returns
    -------
    LocalConsistency
    """
    from hepanav.margin.registration import _windowed, dilate_mm, soft_tissue_region

    start, size = bounding_box_index(ablation, LOCAL_RADIUS_MM)
    fixed_ct = resample_isotropic(
        crop(post_ct, start, size), LOCAL_SPACING_MM, default_value=-1000.0
    )
    zone = resample_mask_like(crop(ablation, start, size), fixed_ct)
    region = soft_tissue_region(fixed_ct, zone, LOCAL_RADIUS_MM - 5.0)
    mask = sitk.And(region, sitk.Not(dilate_mm(zone, EXCLUSION_MM)))
    geometric = geometric_half_width_mm(tumor if tumor is not None else ablation, ablation)
    if not np.any(sitk.GetArrayViewFromImage(mask)):
        return LocalConsistency(np.zeros(3), LOCAL_FLOOR_MM + geometric + LOCAL_RADIUS_MM / 10)
    field = sitk.TransformToDisplacementField(
        transform,
        sitk.sitkVectorFloat64,
        fixed_ct.GetSize(),
        fixed_ct.GetOrigin(),
        fixed_ct.GetSpacing(),
        fixed_ct.GetDirection(),
    )
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsCorrelation()
    reg.SetMetricFixedMask(mask)
    reg.SetMetricSamplingStrategy(reg.REGULAR)
    reg.SetMetricSamplingPercentage(0.5, 1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=0.01, numberOfIterations=60, relaxationFactor=0.6
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([2.0, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetMovingInitialTransform(sitk.DisplacementFieldTransform(field))
    shift = sitk.TranslationTransform(3)
    reg.SetInitialTransform(shift, inPlace=True)
    reg.Execute(_windowed(fixed_ct), _windowed(pre_ct))
    correction = np.asarray(shift.GetOffset(), dtype=float)
    return LocalConsistency(
        correction, float(np.linalg.norm(correction)) + LOCAL_FLOOR_MM + geometric
    )
