"""Register the pre-procedure CT to the post-ablation CT: rigid, then B-spline, liver-driven.

Both scans are cropped around their liver masks and resampled to an isotropic
working grid (2.5 mm by default: the liver deformation is smooth, and a coarse
grid keeps the whole pipeline within a minute on two cores). The similarity is
computed on "liver images": CT clamped to a soft-tissue window inside the
(slightly dilated) liver and a constant outside, so the liver outline and its
vessels drive the alignment and neighbouring organs do not. The ablation zone
(post) and the tumour (pre), both dilated, are left out of the metric because
their appearance changes with the treatment (../shared/docs/domain.md,
"Registration"). Rigid (Euler 3D, started from the liver masks' centres of
mass), then two cubic B-spline stages (80 mm, then 40 mm control spacing), L-BFGS-B.

The result maps POST points to PRE points (ITK's resampling convention), so it
resamples pre-space masks onto the post grid directly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from pydantic import BaseModel, Field

from hepanav.core.errors import InputError
from hepanav.imaging import bounding_box_index, crop, dice, resample_isotropic
from hepanav.imaging.resample import resample_mask_like

# Soft-tissue window for the liver images, HU: liver parenchyma ~40-100 HU, vessels
# with contrast up to ~250 HU; anything outside the liver is set to the lower bound.
WINDOW_HU = (-100.0, 250.0)


class RegistrationSettings(BaseModel):
    """Knobs of the pre -> post registration (defaults: accurate within ~1.5 mm, < 60 s)."""

    spacing_mm: float = Field(2.5, gt=0, description="isotropic working grid, mm")
    liver_pad_mm: float = Field(15.0, ge=0, description="crop margin around the liver, mm")
    mask_dilation_mm: float = Field(6.0, ge=0, description="liver dilation of the metric mask")
    exclusion_mm: float = Field(5.0, ge=0, description="dilation of zone/tumour exclusion, mm")
    control_spacing_mm: float = Field(
        40.0, gt=0, description="finest B-spline control-point spacing, mm"
    )
    rigid_iterations: int = Field(40, ge=1)
    bspline_iterations: int = Field(30, ge=1)
    sampling_fraction: float = Field(0.08, gt=0, le=1, description="metric sample fraction")
    threads: int = Field(2, ge=1, description="ITK threads (laptop: 2 cores)")
    seed: int = Field(1, description="seed of the metric sampling (reproducible results)")


@dataclass
class RegistrationResult:
    """A pre -> post registration and its checks.

    Attributes
    ----------
    transform : SimpleITK.Transform
        Maps post-space points (LPS mm) to pre-space points (rigid then B-spline).
    liver_dice : float
        Dice of the warped pre liver and the post liver (1.5 mm grid over the liver).
    seconds : float
        Wall time of the registration, s.
    method : str
        One-line description.
    """

    transform: sitk.Transform
    liver_dice: float
    seconds: float
    method: str


def liver_image(ct: sitk.Image, liver: sitk.Image, dilation_mm: float) -> sitk.Image:
    """float32 CT clamped to ``WINDOW_HU`` inside the dilated liver, the lower bound outside."""
    lo, hi = WINDOW_HU
    clamped = sitk.Clamp(sitk.Cast(ct, sitk.sitkFloat32), sitk.sitkFloat32, lo, hi)
    inside = dilate_mm(liver, dilation_mm)
    return sitk.Mask(clamped, inside, outsideValue=lo)


def dilate_mm(mask: sitk.Image, radius_mm: float) -> sitk.Image:
    """Binary dilation by a ball of ``radius_mm`` (mm; per-axis voxel radii), uint8 0/1."""
    binary = sitk.Cast(mask > 0, sitk.sitkUInt8)
    radius = [int(round(radius_mm / s)) for s in mask.GetSpacing()]
    if max(radius) == 0:
        return binary
    return sitk.BinaryDilate(binary, radius, sitk.sitkBall)


def _working_grid(ct: sitk.Image, liver: sitk.Image, settings: RegistrationSettings):
    """CT, liver and the index box, cropped around the liver and made isotropic."""
    start, size = bounding_box_index(liver, settings.liver_pad_mm)
    ct_c = resample_isotropic(
        crop(ct, start, size), settings.spacing_mm, default_value=WINDOW_HU[0]
    )
    liver_c = resample_mask_like(crop(liver, start, size), ct_c)
    return ct_c, liver_c


def register_pre_to_post(
    pre_ct: sitk.Image,
    post_ct: sitk.Image,
    pre_liver: sitk.Image,
    post_liver: sitk.Image,
    post_exclude: sitk.Image | None = None,
    pre_exclude: sitk.Image | None = None,
    settings: RegistrationSettings | None = None,
) -> RegistrationResult:
    """Rigid + B-spline registration of the pre CT onto the post CT, driven by the livers.

    Parameters
    ----------
    pre_ct, post_ct : SimpleITK.Image
        CT scans in HU (any grids).
    pre_liver, post_liver : SimpleITK.Image
        Liver masks on the grids of ``pre_ct`` and ``post_ct``.
    post_exclude : SimpleITK.Image, optional
        Mask on the post grid left out of the metric (the ablation zone).
    pre_exclude : SimpleITK.Image, optional
        Mask on the pre grid left out of the metric (the tumour).
    settings : RegistrationSettings, optional

    Returns
    -------
    RegistrationResult
        ``transform`` maps post points to pre points (LPS mm).
    """
    settings = settings or RegistrationSettings()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(settings.threads)
    started = time.perf_counter()
    fixed_ct, fixed_liver = _working_grid(post_ct, post_liver, settings)
    moving_ct, moving_liver = _working_grid(pre_ct, pre_liver, settings)
    fixed = liver_image(fixed_ct, fixed_liver, settings.mask_dilation_mm)
    moving = liver_image(moving_ct, moving_liver, settings.mask_dilation_mm)
    fixed_mask = _metric_mask(fixed_liver, post_exclude, settings)
    moving_mask = _metric_mask(moving_liver, pre_exclude, settings)
    for mask, source, excluded in (
        (fixed_mask, "--liver-post", "ablation zone"),
        (moving_mask, "--liver-pre", "tumour"),
    ):
        if not np.any(sitk.GetArrayViewFromImage(mask)):
            raise InputError(
                f"no liver left for the registration once the {excluded} (dilated by "
                f"{settings.exclusion_mm:g} mm) is left out; is this the liver mask?",
                source,
            )

    initial = sitk.CenteredTransformInitializer(
        fixed_liver,
        moving_liver,
        sitk.Euler3DTransform(),
        sitk.CenteredTransformInitializerFilter.MOMENTS,
    )
    rigid = _run(
        _method(settings, fixed_mask, moving_mask, rigid=True),
        fixed,
        moving,
        initial,
        None,
    )
    # Coarse-to-fine B-splines, each on top of the previous ones: the coarse grid spans
    # the metric's hole at the ablation zone, so the motion there is interpolated from
    # all around it instead of being left at the rigid estimate.
    stages: list[sitk.Transform] = [rigid]
    for spacing in (2.0 * settings.control_spacing_mm, settings.control_spacing_mm):
        mesh = [
            max(1, int(round(n * s / spacing)))
            for n, s in zip(fixed.GetSize(), fixed.GetSpacing(), strict=True)
        ]
        bspline = sitk.BSplineTransformInitializer(fixed, mesh, order=3)
        stages.append(
            _run(
                _method(settings, fixed_mask, moving_mask, rigid=False),
                fixed,
                moving,
                bspline,
                _as_displacement_field(sitk.CompositeTransform(stages), fixed),
            )
        )
    transform = sitk.CompositeTransform(stages)
    seconds = time.perf_counter() - started
    return RegistrationResult(
        transform=transform,
        liver_dice=liver_dice(pre_liver, post_liver, transform),
        seconds=seconds,
        method=(
            f"rigid (Euler 3D) + cubic B-spline ({settings.control_spacing_mm:.0f} mm control "
            f"grid), correlation of liver-masked CT on a {settings.spacing_mm:g} mm grid, "
            "ablation zone and tumour excluded from the metric"
        ),
    )


def _as_displacement_field(transform: sitk.Transform, grid: sitk.Image) -> sitk.Transform:
    """``transform`` sampled as a displacement field on ``grid`` (mm, LPS).

    ITK's metrics need the moving initial transform's Jacobian with respect to
    position, which B-spline transforms do not provide; a displacement field does.
    Only used during optimisation: the result keeps the exact parametric chain.
    """
    field = sitk.TransformToDisplacementField(
        transform,
        sitk.sitkVectorFloat64,
        grid.GetSize(),
        grid.GetOrigin(),
        grid.GetSpacing(),
        grid.GetDirection(),
    )
    return sitk.DisplacementFieldTransform(field)


def _metric_mask(
    liver: sitk.Image, exclude: sitk.Image | None, settings: RegistrationSettings
) -> sitk.Image:
    """Dilated liver minus the dilated exclusion (resampled onto the liver's grid)."""
    mask = dilate_mm(liver, settings.mask_dilation_mm)
    if exclude is not None:
        on_grid = resample_mask_like(exclude, liver)
        mask = sitk.And(mask, sitk.Not(dilate_mm(on_grid, settings.exclusion_mm)))
    return mask


def _method(
    settings: RegistrationSettings, fixed_mask: sitk.Image, moving_mask: sitk.Image, rigid: bool
) -> sitk.ImageRegistrationMethod:
    reg = sitk.ImageRegistrationMethod()
    # Correlation tolerates a global change of contrast between the two scans.
    reg.SetMetricAsCorrelation()
    reg.SetMetricFixedMask(fixed_mask)
    reg.SetMetricMovingMask(moving_mask)
    reg.SetMetricSamplingStrategy(reg.REGULAR)
    reg.SetMetricSamplingPercentage(settings.sampling_fraction, settings.seed)
    reg.SetInterpolator(sitk.sitkLinear)
    if rigid:
        reg.SetOptimizerAsRegularStepGradientDescent(
            learningRate=2.0,
            minStep=1e-3,
            numberOfIterations=settings.rigid_iterations,
            relaxationFactor=0.6,
        )
        reg.SetOptimizerScalesFromPhysicalShift()
        reg.SetShrinkFactorsPerLevel([4, 2, 1])
        reg.SetSmoothingSigmasPerLevel([4.0, 2.0, 1.0])
    else:
        reg.SetOptimizerAsLBFGSB(
            gradientConvergenceTolerance=1e-5,
            numberOfIterations=settings.bspline_iterations,
            maximumNumberOfCorrections=5,
            maximumNumberOfFunctionEvaluations=2 * settings.bspline_iterations,
            costFunctionConvergenceFactor=1e7,
        )
        # The rigid stage already removed the large motion: two levels suffice.
        reg.SetShrinkFactorsPerLevel([2, 1])
        reg.SetSmoothingSigmasPerLevel([2.0, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return reg


def _run(
    reg: sitk.ImageRegistrationMethod,
    fixed: sitk.Image,
    moving: sitk.Image,
    initial: sitk.Transform,
    moving_initial: sitk.Transform | None,
) -> sitk.Transform:
    reg.SetInitialTransform(initial, inPlace=True)
    if moving_initial is not None:
        reg.SetMovingInitialTransform(moving_initial)
    try:
        reg.Execute(fixed, moving)
    except RuntimeError as exc:
        if "SampledPointSet" not in str(exc):
            raise
        # ITK found no metric sample at a coarse level: the livers are too small.
        raise InputError(
            "too little liver for the registration metric (liver masks of a few voxels?)",
            "--liver-pre/--liver-post",
        ) from None
    return initial


def liver_dice(pre_liver: sitk.Image, post_liver: sitk.Image, transform: sitk.Transform) -> float:
    """Dice of the pre liver warped into post space and the post liver.

    Both are compared on a 1.5 mm isotropic grid over the post liver (partial
    volumes interpolated, thresholded at 0.5), so the figure does not depend on
    the scans' own voxel sizes.
    """
    start, size = bounding_box_index(post_liver, 10.0)
    grid = resample_isotropic(sitk.Cast(crop(post_liver, start, size), sitk.sitkFloat32), 1.5)
    post = sitk.Cast(grid >= 0.5, sitk.sitkUInt8)
    pre = resample_mask_like(pre_liver, grid, transform)
    return dice(pre, post)


def target_registration_error(
    transform: sitk.Transform, pre_points: np.ndarray, post_points: np.ndarray
) -> dict[str, float]:
    """TRE over landmark pairs: ``|T(post) - pre|`` in mm.

    Parameters
    ----------
    transform : SimpleITK.Transform
        Post -> pre mapping (LPS mm).
    pre_points, post_points : ndarray, shape (N, 3)
        Corresponding landmarks, LPS mm.

    Returns
    -------
    dict
        ``mean``, ``max`` (mm) and ``n``.
    """
    points = np.asarray(post_points, dtype=float).tolist()
    mapped = np.array([transform.TransformPoint(p) for p in points])
    error = np.linalg.norm(mapped - np.asarray(pre_points, float), axis=1)
    return {"mean": float(error.mean()), "max": float(error.max()), "n": float(len(error))}
