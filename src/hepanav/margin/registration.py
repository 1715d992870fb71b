"""Register the pre-procedure CT to the post-ablation CT: rigid, then B-spline.

Two modes drive the similarity metric:

* ``liver`` (liver masks given): the liver outline and its vessels drive it, as below.
* ``lesion_region`` (no liver masks): a region around the lesion drives it: the
  soft tissue (not air/lung, not bone, inside the body) within ``region_radius_mm``
  of the ablation zone (post) and of the tumour (pre), zone and tumour excluded.
  Ribs and lung slide against the liver during breathing, so they are left out of
  the metric; the radius (60 mm by default) spans one and a half 40 mm B-spline
  cells around the zone, large enough to catch a breathing deformation of ~20 mm
  and to interpolate the motion across the excluded zone. The rigid stage starts
  from the tumour centre mapped onto the zone centre.

In liver mode both scans are cropped around their liver masks and resampled to an isotropic
working grid (2.5 mm by default: the liver deformation is smooth, and a coarse
grid keeps the whole pipeline within a minute on two cores). The similarity is
computed on "liver images": CT clamped to a soft-tissue window inside the
(slightly dilated) liver and a constant outside, so the liver outline and its
vessels drive the alignment and neighbouring organs do not. The ablation zone
(post) and the tumour (pre), both dilated, are left out of the metric because
their appearance changes with the treatment (../shared/docs/domain.md,
"Registration"). Rigid (Euler 3D, started from the liver masks' centres of
mass), then two cubic B-spline stages (80 mm, then 40 mm control spacing), L-BFGS-B.

Both modes end with a LOCAL stage near the ablation zone (:func:`local_stage`): a cubic
B-spline (35 mm control grid) fitted to the soft tissue within ``local_radius_mm`` of
the zone, zone and tumour excluded, with the metric sampled at the post scan's ACQUIRED
voxels (no interpolation between its 4-5 mm slices: an interpolated slice is not a
measurement, and it biased the isotropic stages by about 1 mm near the zone on the
realistic pairs, docs/margin.md "Realistic pairs"). It is kept only if it improves the
local metric over every acquired voxel of the region; its correction fades to none over
the region's outer ``local_taper_mm``. :data:`RING_QUADRATIC` selects a harmonic
quadratic fitted on the 15 mm ring next to the zone with an exact model of binned voxels
instead (more accurate on the realistic pairs, slower; docs/margin.md "The binned
forward model").

Guards: the same image as pre and post (:func:`same_image`: geometry, then voxels) is
not registered (identity transform, mode ``same_image``); and the global stages are kept
only if they improve the metric over their start and over the identity (full-resolution
working grid, the stages' sampling, every candidate on the same points: those all of them
map into the moving region; a candidate mapping less than half as many as another is not
comparable, :func:`_metric_guard`), else the better of those two is kept and the method
says so.

The result maps POST points to PRE points (ITK's resampling convention), so it
resamples pre-space masks onto the post grid directly.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import SimpleITK as sitk
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage, optimize, stats

from hepanav.core.errors import InputError
from hepanav.core.limits import available_cores
from hepanav.imaging import (
    bounding_box_index,
    crop,
    dice,
    lps_to_voxel,
    resample_isotropic,
    voxel_to_lps,
)
from hepanav.imaging.geometry import index_to_lps_matrix
from hepanav.imaging.orient import lps_order
from hepanav.imaging.resample import resample_mask_like

# Soft-tissue window for the liver images, HU: liver parenchyma ~40-100 HU, vessels
# with contrast up to ~250 HU; anything outside the liver is set to the lower bound.
WINDOW_HU = (-100.0, 250.0)
# Lesion-region mode: below this HU a voxel is air or lung, above BONE_HU it is bone
# (cortical and trabecular bone > ~300 HU; contrast-filled vessels stay below, see
# WINDOW_HU). Both are dilated by SLIDING_MARGIN_MM before they leave the metric.
AIR_HU = -400.0
BONE_HU = 300.0
SLIDING_MARGIN_MM = 4.0
# Pyramid of the B-spline stages (shrink factors); the stall rule acts on the last level.
_BSPLINE_SHRINK = (2, 1)


class RegistrationSettings(BaseModel):
    """Knobs of the pre -> post registration (defaults: accurate within ~1.5 mm, < 60 s)."""

    # A misspelt knob (bench HEPANAV_*_SETTINGS JSON) must fail, not run the defaults.
    model_config = ConfigDict(extra="forbid")

    spacing_mm: float = Field(2.5, gt=0, description="isotropic working grid, mm")
    liver_pad_mm: float = Field(15.0, ge=0, description="crop margin around the liver, mm")
    mask_dilation_mm: float = Field(6.0, ge=0, description="liver dilation of the metric mask")
    exclusion_mm: float = Field(5.0, ge=0, description="dilation of zone/tumour exclusion, mm")
    control_spacing_mm: float = Field(
        40.0, gt=0, description="finest B-spline control-point spacing, mm"
    )
    rigid_iterations: int = Field(40, ge=1)
    bspline_iterations: int = Field(30, ge=1)
    sampling_fraction: float = Field(
        0.08, gt=0, le=1, description="metric sample fraction (liver mode)"
    )
    region_sampling_fraction: float = Field(
        0.25, gt=0, le=1, description="metric sample fraction (lesion-region mode)"
    )
    threads: int | None = Field(
        None, ge=1, description="ITK threads; None = every core this process may use"
    )
    region_radius_mm: float = Field(
        60.0, gt=0, description="lesion-region mode: metric region around the zone/tumour, mm"
    )
    seed: int = Field(1, description="seed of the metric sampling (reproducible results)")
    local_stage: bool = Field(True, description="final B-spline stage near the zone")
    local_radius_mm: float = Field(
        40.0, gt=0, description="local stage: metric region around the zone, mm"
    )
    local_control_spacing_mm: float = Field(
        35.0, gt=0, description="local stage: B-spline control-point spacing, mm"
    )
    local_iterations: int = Field(30, ge=1, description="local stage: L-BFGS-B iterations")
    local_taper_mm: float = Field(
        15.0, gt=0, description="local stage: its correction fades out over the region's outer mm"
    )
    local_sample_stride: int = Field(
        2, ge=1, description="local stage: every n-th acquired voxel along x and y"
    )
    local_min_spacing_mm: float = Field(
        2.5, gt=0, description="local stage: finer axes binned by whole voxels to about this"
    )
    local_max_samples: int = Field(
        20000, ge=100, description="local stage: the x/y stride grows to stay below this"
    )
    local_max_correction_mm: float = Field(
        5.0, gt=0, description="local stage: refused when it moves a point further, mm"
    )
    bspline_stall_iterations: int = Field(
        3,
        ge=0,
        description=(
            "B-spline stages, finest level: stop L-BFGS-B once the best metric improved by "
            "less than bspline_stall_tolerance over this many iterations (0 = off)"
        ),
    )
    bspline_stall_tolerance: float = Field(
        5e-5,
        ge=0,
        description="stall rule: least improvement of the correlation metric (-1..1) that counts",
    )
    local_unclamped_only: bool = Field(
        False,
        description=(
            "local stage: metric only at post voxels strictly inside the soft-tissue window: "
            "a voxel at a bound (fat <= -100 HU) only says 'at most -100'. OFF by default: "
            "with local_moving_clamp='none' and local_gradient_filter=False ('J') it fixes "
            "realistic pair 6 but moves the make-demo case's tumour by 1.4 mm "
            "(docs/margin.md, 'Local stage: intensity at the window bounds'); with "
            "local_smooth_mm=1.5 as well it meets more of issue 12's pair targets but moves "
            "a procedural pair's tumour by 0.9 mm from the true transform ('Local stage: "
            "exact metric on smoothed scans')"
        ),
    )
    local_moving_clamp: Literal["before", "none"] = Field(
        "before",
        description=(
            "local stage, how the pre CT is windowed: 'none': clamped only to "
            "local_wide_window_hu, so that with local_unclamped_only every kept post voxel "
            "equals the interpolated pre CT (+ a contrast change) at the true transform; "
            "'before' (default): clamped to the soft-tissue window before interpolation (the "
            "global stages' way; biased at fat next to soft tissue)"
        ),
    )
    local_wide_window_hu: tuple[float, float] = Field(
        (-1000.0, 3000.0),
        description="local stage, local_moving_clamp='none': the pre CT clamped to this, HU",
    )
    local_holdout_block_mm: float | None = Field(
        None,
        gt=0,
        description=(
            "local stage: when set, the region is cut into cubes of this size (mm) in a 3D "
            "checkerboard; the optimiser sees the black cubes only and the correction is "
            "kept only if it lowers the metric over the white ones (noise the fit followed "
            "does not repeat in other cubes; None = judged on every voxel)"
        ),
    )
    local_judge_within_mm: float | None = Field(
        None,
        gt=0,
        description=(
            "local stage: when set, the correction is judged (kept only if it lowers the "
            "metric) over the voxels within this distance (mm) beyond the excluded zone only: "
            "the ring next to the hole the correction is interpolated into (None = the whole "
            "region)"
        ),
    )
    local_transform: Literal["bspline", "affine", "rigid", "quadratic"] = Field(
        "bspline",
        description=(
            "local stage, the correction's family: 'bspline' (default, "
            "local_control_spacing_mm grid); 'quadratic': a quadratic polynomial "
            "displacement (3 x 10 coefficients, 3 x 9 harmonic) centred at the zone's "
            "centroid, fitted on the ring within local_ring_mm of the zone and fading to 0 "
            "over local_ring_taper_mm beyond it (docs/margin.md, 'Local stage: a ring-only "
            "quadratic' and 'The binned forward model': with RING_QUADRATIC it meets more "
            "of issue 12's pair targets but costs 4-6 times the B-spline's time on binned "
            "grids, so it is not the default yet); 'affine' (12 parameters) or 'rigid' "
            "(Euler 3D, 6), centred at the zone's centroid and tapered like the B-spline "
            "(docs/margin.md, 'Local stage: a low-DOF correction')"
        ),
    )
    local_ring_mm: float = Field(
        15.0,
        gt=0,
        description=(
            "local_transform='quadratic': fitted on the region's acquired voxels within this "
            "distance of the zone (mm; the zone dilated by exclusion_mm stays excluded)"
        ),
    )
    local_ring_taper_mm: float = Field(
        10.0,
        gt=0,
        description=(
            "local_transform='quadratic': the correction is the polynomial within local_ring_mm "
            "of the zone and fades (cosine) to 0 over this many mm beyond it"
        ),
    )
    local_quadratic_harmonic: bool = Field(
        False,
        description=(
            "local_transform='quadratic': only harmonic quadratics (zero Laplacian, 3 x 9 "
            "coefficients): the correction at the centre is then the ring's mean"
        ),
    )
    local_binned_model: bool = Field(
        False,
        description=(
            "local stage: model acquired_grid's block means exactly (the post windowed, "
            "then binned; the pre CT sampled at each binned voxel's acquired sub-voxels "
            "through the map and averaged) in the quadratic's fit, and judge every family's "
            "correction (as applied) with that model; False: binned post against the pre "
            "CT at the block centre"
        ),
    )
    local_quadratic_evidence: float | None = Field(
        None,
        gt=0,
        lt=1,
        description=(
            "local_transform='quadratic': refuse the correction unless the ring's gain in "
            "correlation exceeds this chi-square quantile of what fitting its parameters "
            "to noise gives (e.g. 0.99); None: no such test"
        ),
    )
    local_quadratic_crossval: bool = Field(
        False,
        description=(
            "local_transform='quadratic': also fit each half of the ring (a checkerboard "
            "of 10 mm cubes) and refuse unless each half's fit lowers the other half's "
            "metric"
        ),
    )
    local_quadratic_fallback: bool = Field(
        False,
        description=(
            "local_transform='quadratic': when the quadratic is refused, run the B-spline "
            "local stage instead (judged on its own)"
        ),
    )
    local_pre_quadratic: bool = Field(
        False,
        description=(
            "local stage: a 'quadratic' correction first, then the local_transform stage "
            "started from it (each judged on its own; the result is their composition)"
        ),
    )
    local_smooth_mm: float | None = Field(
        None,
        gt=0,
        description=(
            "local stage: both CTs smoothed by a recursive Gaussian of this sigma (mm, "
            "physical) before the metric, then clamped alike (noise suppression for the "
            "exact metric; the window-floor test of local_unclamped_only reads the "
            "unsmoothed post CT); None (default) = no smoothing. Of 1, 1.5, 2 and 3 mm, 1.5 "
            "was best with the exact metric (docs/margin.md, 'Local stage: exact metric on "
            "smoothed scans')"
        ),
    )
    local_gradient_filter: bool = Field(
        True,
        description=(
            "local stage: True (default): ITK's pre-CT gradient (a Gaussian-smoothed gradient "
            "image, which spreads air and bone edges into the soft tissue beside them); "
            "False: central differences at each sample"
        ),
    )


#: How ``RegistrationResult.method`` marks what was not kept (read back by
#: :func:`hepanav.dicom.margin_objects.registration_notes` for the DICOM SR): a local stage
#: not kept, ``" (local stage near the zone <why>)"``, and the metric guard's note at the
#: end, ``"; the rigid + B-spline result <why>: the <start or identity> was kept instead"``.
LOCAL_NOTE = "(local stage near the zone "
GUARD_NOTE = "; the rigid + B-spline result "


#: The ring-quadratic local stage measured in docs/margin.md, "The binned forward model"
#: (issue 12's realistic pairs: 30 of 32 registrations within 0.7 mm, the B-spline 26):
#: ``RegistrationSettings(**RING_QUADRATIC)``. Not the default: 4-6 times slower than the
#: B-spline stage on binned (fine) grids.
RING_QUADRATIC = {
    "local_transform": "quadratic",
    "local_quadratic_harmonic": True,
    "local_binned_model": True,
    "local_quadratic_crossval": True,
    "local_quadratic_fallback": True,
}


@dataclass(frozen=True)
class LocalStage:
    """Outcome of the local stage near the zone (:func:`local_stage`).

    Attributes
    ----------
    accepted : bool
        Whether the local correction is part of the result.
    metric_before, metric_after : float
        Correlation metric (ITK sign: -1 is a perfect match) over every acquired post
        voxel of the local region, without and with the local correction.
    max_correction_mm : float
        Largest displacement of the local correction within the region, mm.
    samples : int
        Acquired post voxels the optimiser used.
    note : str
        One line: why it was kept or refused.
    seconds : float
        Wall time of the local stage, s (part of ``RegistrationResult.seconds``).
    family : str
        The correction's family that gave this outcome (``local_transform``, or
        ``"bspline"`` when the quadratic was refused and the B-spline ran instead).
    """

    accepted: bool
    metric_before: float
    metric_after: float
    max_correction_mm: float
    samples: int
    note: str
    seconds: float = 0.0
    family: str = ""


@dataclass
class RegistrationResult:
    """A pre -> post registration and its checks.

    Attributes
    ----------
    transform : SimpleITK.Transform
        Maps post-space points (LPS mm) to pre-space points (rigid then B-spline).
    liver_dice : float or None
        Dice of the warped pre liver and the post liver (1.5 mm grid over the liver);
        None in the lesion-region mode (no liver masks).
    seconds : float
        Wall time of the registration, s.
    method : str
        One-line description.
    mode : str
        ``"liver"`` or ``"lesion_region"`` (what drove the metric), or ``"same_image"``
        (pre and post are the same image: identity, nothing registered).
    fixed_region : SimpleITK.Image or None
        The post-space metric mask on the working grid (uint8), for checks and figures.
    local : LocalStage or None
        The local stage near the zone (None when switched off or without a zone).
    """

    transform: sitk.Transform
    liver_dice: float | None
    seconds: float
    method: str
    mode: str = "liver"
    fixed_region: sitk.Image | None = None
    local: LocalStage | None = None


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


def _working_grid(
    ct: sitk.Image, liver: sitk.Image, settings: RegistrationSettings, pad_mm: float | None = None
):
    """CT and mask cropped around the mask (+ ``pad_mm``) and made isotropic."""
    pad = settings.liver_pad_mm if pad_mm is None else pad_mm
    start, size = bounding_box_index(liver, pad)
    ct_c = resample_isotropic(
        crop(ct, start, size), settings.spacing_mm, default_value=WINDOW_HU[0]
    )
    liver_c = resample_mask_like(crop(liver, start, size), ct_c)
    return ct_c, liver_c


def soft_tissue_region(ct: sitk.Image, lesion: sitk.Image, radius_mm: float) -> sitk.Image:
    """Body soft tissue within ``radius_mm`` of ``lesion``: the lesion-region metric mask.

    Parameters
    ----------
    ct : SimpleITK.Image
        CT in HU (the working grid).
    lesion : SimpleITK.Image
        Lesion mask on the same grid (ablation zone or tumour).
    radius_mm : float
        Distance from the lesion, mm.

    Returns
    -------
    SimpleITK.Image
        uint8 0/1 on ``ct``'s grid: within ``radius_mm`` of the lesion (Euclidean,
        physical spacing), inside the body (the largest non-air component), minus air/lung
        and bone dilated by ``SLIDING_MARGIN_MM`` (they slide against the liver).
    """
    hu = sitk.GetArrayFromImage(ct)
    spacing_zyx = tuple(reversed(ct.GetSpacing()))
    lesion_a = sitk.GetArrayViewFromImage(lesion) > 0
    near = ndimage.distance_transform_edt(~lesion_a, sampling=spacing_zyx) <= radius_mm
    air = hu < AIR_HU
    labels, n = ndimage.label(~air)
    if n:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        body = labels == int(np.argmax(sizes))
    else:
        body = np.zeros_like(air)
    sliding = ndimage.distance_transform_edt(~(air | (hu > BONE_HU)), sampling=spacing_zyx)
    region = near & body & (sliding > SLIDING_MARGIN_MM)
    out = sitk.GetImageFromArray(region.astype(np.uint8))
    out.CopyInformation(ct)
    return out


def _centroid_lps(mask: sitk.Image) -> np.ndarray:
    """Centre of mass of a mask's voxels, LPS mm."""
    idx = np.argwhere(sitk.GetArrayViewFromImage(mask) > 0)[:, ::-1].astype(float)
    return np.asarray(voxel_to_lps(mask, idx.mean(axis=0)[None])[0])


#: ``RegistrationResult.method`` when the pre and post images are the same image.
SAME_IMAGE_METHOD = (
    "none: pre and post are the same image (same voxels and geometry): no registration, "
    "identity transform"
)


def same_image(a: sitk.Image, b: sitk.Image) -> bool:
    """True when ``a`` and ``b`` are the same image: same size, spacing, origin and
    direction (to 1e-6 mm / 1e-6) and pixel type, and the same voxel values. Cheap: the
    geometry first, the voxels (array views, no copy) only when it agrees."""
    if (
        a.GetSize() != b.GetSize()
        or a.GetPixelID() != b.GetPixelID()
        or a.GetNumberOfComponentsPerPixel() != b.GetNumberOfComponentsPerPixel()
    ):
        return False
    for get in ("GetSpacing", "GetOrigin", "GetDirection"):
        if not np.allclose(getattr(a, get)(), getattr(b, get)(), rtol=0.0, atol=1e-6):
            return False
    return bool(np.array_equal(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b)))


def _metric_value(
    settings: RegistrationSettings,
    fixed: sitk.Image,
    moving: sitk.Image,
    fixed_mask: sitk.Image,
    moving_mask: sitk.Image,
    transform: sitk.Transform,
) -> float:
    """The global stages' metric (correlation, ITK sign: -1 is a perfect match) of
    ``transform`` on the full-resolution working grid, sampling as in the stages (same
    seed: the same points of ``fixed_mask`` for every transform; the metric drops those a
    transform maps outside ``moving_mask``, hence :func:`_metric_guard`'s common mask)."""
    reg = _correlation_method(settings, fixed_mask, moving_mask)
    reg.SetMovingInitialTransform(_as_displacement_field(transform, fixed))
    reg.SetInitialTransform(sitk.TranslationTransform(3))
    return float(reg.MetricEvaluate(fixed, moving))


def _metric_guard(
    settings: RegistrationSettings,
    fixed: sitk.Image,
    moving: sitk.Image,
    fixed_mask: sitk.Image,
    moving_mask: sitk.Image,
    candidates: dict[str, sitk.Transform],
) -> tuple[str, str]:
    """The metric guard: which of ``candidates`` (``result``, ``start``, ``identity``) to keep.

    The metric counts only the fixed-region points a candidate maps inside the moving
    region, so each candidate scored on its own points was a correlation over different
    points; and over a few points it is noise: an identity that mapped a sliver of the
    region onto the pre scan (another frame of reference) scored exactly -1 on a few points
    and replaced a registration accurate to 0.05 mm (tests/test_margin_metric_guard.py).
    So every candidate compared is scored on the same points: those that ALL the compared
    candidates map inside the moving region. Candidates are taken by decreasing count of
    points they map inside, each only while that common set keeps at least half of the
    largest count; the others are not comparable (most of the region falls outside the
    moving region) and are left out: a result left out is not kept, a start or identity
    left out cannot replace the result.

    Returns
    -------
    (str, str)
        The name kept, and the note for ``RegistrationResult.method`` ("" when the result
        is kept).
    """
    region = sitk.GetArrayViewFromImage(fixed_mask) > 0
    inside: dict[str, np.ndarray] = {}
    for name, candidate in candidates.items():
        pulled = sitk.Resample(moving_mask, fixed, candidate, sitk.sitkNearestNeighbor, 0)
        inside[name] = region & (sitk.GetArrayViewFromImage(pulled) > 0)
    counts = {name: int(points.sum()) for name, points in inside.items()}
    most = max(counts.values())
    if most == 0:  # nothing to compare on (the stages could not have run): as it is
        return "result", ""
    compared: list[str] = []
    common = np.ones_like(region)
    for name in sorted(candidates, key=lambda n: -counts[n]):  # stable: ties in given order
        both = common & inside[name]
        if 2 * int(both.sum()) >= most:
            compared.append(name)
            common = both
    mask = sitk.GetImageFromArray(common.astype(np.uint8))
    mask.CopyInformation(fixed_mask)
    scores = {
        name: _metric_value(settings, fixed, moving, mask, moving_mask, candidates[name])
        for name in compared
    }
    rivals = [name for name in compared if name != "result"]
    if not rivals:
        return "result", ""
    best = min(rivals, key=scores.__getitem__)
    if "result" in scores:
        if scores["result"] < scores[best]:
            return "result", ""
        why = (
            f"did not improve the metric over the {best} ({scores['result']:.4f} vs "
            f"{scores[best]:.4f}, correlation, -1 perfect, over the {int(common.sum())} "
            "voxels of the metric region that every candidate compared maps into the pre "
            "scan's metric region)"
        )
    else:
        why = (
            f"mapped {counts['result']} voxels of the metric region into the pre scan's "
            f"metric region, the {best} {counts[best]}: not comparable"
        )
    what = "initial alignment" if best == "start" else "identity"
    return best, f"{GUARD_NOTE}{why}: the {what} was kept instead"


def register_pre_to_post(
    pre_ct: sitk.Image,
    post_ct: sitk.Image,
    pre_liver: sitk.Image | None = None,
    post_liver: sitk.Image | None = None,
    post_exclude: sitk.Image | None = None,
    pre_exclude: sitk.Image | None = None,
    settings: RegistrationSettings | None = None,
) -> RegistrationResult:
    """Rigid + B-spline registration of the pre CT onto the post CT.

    Parameters
    ----------
    pre_ct, post_ct : SimpleITK.Image
        CT scans in HU (any grids).
    pre_liver, post_liver : SimpleITK.Image, optional
        Liver masks on the grids of ``pre_ct`` and ``post_ct`` (both or neither).
        Given: liver-driven mode. Omitted: lesion-region mode, which then needs
        ``post_exclude`` (the zone) and ``pre_exclude`` (the tumour).
    post_exclude : SimpleITK.Image, optional
        Mask on the post grid left out of the metric (the ablation zone).
    pre_exclude : SimpleITK.Image, optional
        Mask on the pre grid left out of the metric (the tumour).
    settings : RegistrationSettings, optional

    Returns
    -------
    RegistrationResult
        ``transform`` maps post points to pre points (LPS mm).

    Raises
    ------
    InputError
        Only one liver mask, no zone/tumour in the lesion-region mode, or nothing
        left for the metric.
    """
    settings = settings or RegistrationSettings()
    # One storage order (axes permuted/flipped to LPS, no resampling): the working grids
    # and sampling lattices below follow the index axes, so without this the same scan
    # stored with flipped axes registered differently (0.32 mm of MAM on the demo case,
    # docs/margin.md "Storage order"). The transform is in LPS mm either way.
    pre_ct, post_ct, pre_liver, post_liver, post_exclude, pre_exclude = (
        lps_order(image)
        for image in (pre_ct, post_ct, pre_liver, post_liver, post_exclude, pre_exclude)
    )
    if (pre_liver is None) != (post_liver is None):
        missing = "--liver-pre" if pre_liver is None else "--liver-post"
        raise InputError("give both liver masks or neither (lesion-region mode)", missing)
    lesion_mode = pre_liver is None
    if lesion_mode and (post_exclude is None or pre_exclude is None):
        raise InputError(
            "the lesion-region registration needs the ablation zone and the tumour",
            "--ablation" if post_exclude is None else "--tumor",
        )
    set_threads(settings.threads)
    started = time.perf_counter()
    if lesion_mode:
        # Working crop: the region plus room for the B-spline support at its edge.
        pad = settings.region_radius_mm + 20.0
        fixed_ct, fixed_lesion = _working_grid(post_ct, post_exclude, settings, pad)
        moving_ct, moving_lesion = _working_grid(pre_ct, pre_exclude, settings, pad + 20.0)
        fixed = _windowed(fixed_ct)
        moving = _windowed(moving_ct)
        fixed_mask = _region_mask(fixed_ct, fixed_lesion, settings)
        moving_mask = _region_mask(moving_ct, moving_lesion, settings, radius_extra_mm=20.0)
        sources = (("--ablation", "ablation zone"), ("--tumor", "tumour"))
        what = "soft tissue near the lesion"
        initial = sitk.Euler3DTransform()
        centre = _centroid_lps(fixed_lesion)
        initial.SetCenter(centre.tolist())
        initial.SetTranslation((_centroid_lps(moving_lesion) - centre).tolist())
    else:
        fixed_ct, fixed_liver = _working_grid(post_ct, post_liver, settings)
        moving_ct, moving_liver = _working_grid(pre_ct, pre_liver, settings)
        fixed = liver_image(fixed_ct, fixed_liver, settings.mask_dilation_mm)
        moving = liver_image(moving_ct, moving_liver, settings.mask_dilation_mm)
        fixed_mask = _metric_mask(fixed_liver, post_exclude, settings)
        moving_mask = _metric_mask(moving_liver, pre_exclude, settings)
        sources = (("--liver-post", "ablation zone"), ("--liver-pre", "tumour"))
        what = "liver"
        initial = sitk.CenteredTransformInitializer(
            fixed_liver,
            moving_liver,
            sitk.Euler3DTransform(),
            sitk.CenteredTransformInitializerFilter.MOMENTS,
        )
    for mask, (source, excluded) in zip((fixed_mask, moving_mask), sources, strict=True):
        if not np.any(sitk.GetArrayViewFromImage(mask)):
            raise InputError(
                f"no {what} left for the registration once the {excluded} (dilated by "
                f"{settings.exclusion_mm:g} mm) is left out; is this the right mask?",
                source,
            )
    if same_image(pre_ct, post_ct):
        # Nothing to register (the inputs were checked above as for any pair): any
        # optimiser step could only move away from the exact match (tester6: the same
        # series as --pre and --post moved the MAM 0.4 mm and added 3 short regions).
        # Same shape as any result (a rigid first stage), so every consumer (DICOM REG
        # export reads the rigid part) handles it alike.
        identity = sitk.CompositeTransform([sitk.Euler3DTransform()])
        return RegistrationResult(
            transform=identity,
            liver_dice=None if lesion_mode else liver_dice(pre_liver, post_liver, identity),
            seconds=time.perf_counter() - started,
            method=SAME_IMAGE_METHOD,
            mode="same_image",
        )

    # Lesion-region mode: 25 % of the region's voxels instead of 8 %; on the realistic
    # real-scan pairs this took the error at the tumour from 1.41 / 1.22 mm to 0.95 / 1.10
    # mm (mean over the tumour surface, docs/margin.md "Realistic pairs").
    fraction = settings.region_sampling_fraction if lesion_mode else settings.sampling_fraction
    settings = settings.model_copy(update={"sampling_fraction": fraction})
    start = initial.__class__(initial)  # scored below against the result
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
                settings,
            )
        )
    transform = sitk.CompositeTransform(stages)
    # The global stages must improve the metric over their start and over the identity;
    # otherwise the better of those two is kept (:func:`_metric_guard`).
    chosen, kept = _metric_guard(
        settings,
        fixed,
        moving,
        fixed_mask,
        moving_mask,
        {"result": transform, "start": start, "identity": sitk.TranslationTransform(3)},
    )
    if chosen != "result":
        stages = [start if chosen == "start" else sitk.Euler3DTransform()]
        transform = sitk.CompositeTransform(stages)
    local = None
    if settings.local_stage and post_exclude is not None and pre_exclude is not None:
        local_transform, local = local_stage(
            pre_ct, post_ct, post_exclude, pre_exclude, transform, settings
        )
        if local.accepted:
            transform = sitk.CompositeTransform([*stages, local_transform])
    seconds = time.perf_counter() - started
    common = (
        f"rigid (Euler 3D) + cubic B-spline ({settings.control_spacing_mm:.0f} mm control "
        f"grid), correlation of soft-tissue-windowed CT on a {settings.spacing_mm:g} mm grid"
    )
    if local is not None and local.accepted:
        within = settings.local_radius_mm
        if local.family == "bspline":
            family = f"B-spline ({settings.local_control_spacing_mm:g} mm grid)"
        elif local.family == "quadratic":
            kind = "harmonic quadratic" if settings.local_quadratic_harmonic else "quadratic"
            fade = settings.local_ring_mm + settings.local_ring_taper_mm
            family = f"{kind} correction (fading to none {fade:g} mm from the zone)"
            within = settings.local_ring_mm
        else:
            family = f"{local.family} correction"
        common += (
            f", then a local {family} on the "
            f"post scan's acquired voxels within {within:g} mm of the zone"
        )
    elif local is not None:
        common += f" {LOCAL_NOTE}{local.note})"
    if lesion_mode:
        return RegistrationResult(
            transform=transform,
            liver_dice=None,
            seconds=seconds,
            method=(
                f"{common}, driven by the soft tissue within {settings.region_radius_mm:g} mm "
                "of the ablation zone (no liver masks; air, lung and bone left out), ablation "
                f"zone and tumour excluded from the metric{kept}"
            ),
            mode="lesion_region",
            fixed_region=fixed_mask,
            local=local,
        )
    return RegistrationResult(
        transform=transform,
        liver_dice=liver_dice(pre_liver, post_liver, transform),
        seconds=seconds,
        method=(f"{common}, liver-masked, ablation zone and tumour excluded from the metric{kept}"),
        mode="liver",
        fixed_region=fixed_mask,
        local=local,
    )


@dataclass
class _LocalMetric:
    """The local stage's metric inputs for the ``local_*`` intensity fields: windowed post
    voxels (``fixed``, the ``region`` and its ``sparse`` lattice), the pre CT as the
    metric sees it (``moving``, ``moving_mask``) and the global transform
    (``moving_initial``, post -> pre points)."""

    fixed: sitk.Image
    region: sitk.Image
    sparse: sitk.Image
    samples: int
    moving: sitk.Image
    moving_mask: sitk.Image
    moving_initial: sitk.Transform

    @classmethod
    def build(
        cls,
        fixed_ct: sitk.Image,
        region: sitk.Image,
        moving_ct: sitk.Image,
        moving_mask: sitk.Image,
        initial: sitk.Transform,
        settings: RegistrationSettings,
    ) -> _LocalMetric:
        """Inputs for the intensity and sampling fields of ``settings``."""
        lo, hi = WINDOW_HU
        if settings.local_unclamped_only:
            # A post voxel at a window bound (fat <= -100 HU) only says "at most -100": the
            # moving side, windowed BEFORE interpolation, reads it higher next to soft
            # tissue. On realistic pair 6 such voxels (2.5 % of the region) made 85 % of
            # the squared residual at the true transform (docs/margin.md "Local stage:
            # clamped voxels"). With the pre CT not clamped (local_moving_clamp="none")
            # every kept post voxel then equals the interpolated pre CT (+ a contrast
            # change) at the true transform: the metric is unbiased there.
            inside = sitk.And(fixed_ct > lo, fixed_ct < hi)
            region = sitk.And(region, sitk.Cast(inside, sitk.sitkUInt8))
        shape = sitk.GetArrayViewFromImage(region).shape
        heldout = None
        if settings.local_holdout_block_mm is not None:
            # 3D checkerboard of cubes in physical size (z, y, x index -> cube parity).
            cube = settings.local_holdout_block_mm
            parity = np.zeros(shape, np.int64)
            for axis, spacing in enumerate(reversed(fixed_ct.GetSpacing())):
                index = np.arange(shape[axis]) * spacing // cube
                parity = parity + index.astype(np.int64).reshape(
                    [-1 if a == axis else 1 for a in range(3)]
                )
            white = sitk.GetImageFromArray((parity % 2).astype(np.uint8))
            white.CopyInformation(region)
            heldout = sitk.And(region, white)
            region = sitk.And(region, sitk.Not(white))
        lattice = np.zeros(shape, np.uint8)
        voxels = int(sitk.GetArrayViewFromImage(region).sum())
        # Stride along x and y: the setting, or more to keep the samples (and time) bounded.
        step = max(
            settings.local_sample_stride,
            int(np.ceil(np.sqrt(voxels / settings.local_max_samples))),
        )
        lattice[:, ::step, ::step] = 1
        lattice_image = sitk.GetImageFromArray(lattice)
        lattice_image.CopyInformation(region)
        sparse = sitk.And(region, lattice_image)
        samples = int(sitk.GetArrayViewFromImage(sparse).sum())
        moving = sitk.Cast(moving_ct, sitk.sitkFloat32)
        if settings.local_smooth_mm is not None:
            # Same physical kernel on both scans: at the true transform (locally rigid)
            # the smoothed post still equals the smoothed pre mapped through it.
            sigma = settings.local_smooth_mm
            moving = sitk.SmoothingRecursiveGaussian(moving, sigma)
            fixed_ct = sitk.SmoothingRecursiveGaussian(sitk.Cast(fixed_ct, sitk.sitkFloat32), sigma)
        if settings.local_moving_clamp == "none":
            lo, hi = settings.local_wide_window_hu
        moving = sitk.Clamp(moving, sitk.sitkFloat32, lo, hi)
        if settings.local_smooth_mm is not None:
            # Smoothing moves post values out of the soft-tissue window (fat next to air,
            # soft tissue next to bone): the post must be clamped exactly like the pre.
            fixed = sitk.Clamp(fixed_ct, sitk.sitkFloat32, lo, hi)
        else:
            fixed = _windowed(fixed_ct)
        judged = region if heldout is None else heldout
        return cls(fixed, judged, sparse, samples, moving, moving_mask, initial)

    def method(
        self, mask: sitk.Image, settings: RegistrationSettings
    ) -> sitk.ImageRegistrationMethod:
        reg = sitk.ImageRegistrationMethod()
        reg.SetMetricAsCorrelation()
        reg.SetMetricFixedMask(mask)
        reg.SetMetricMovingMask(self.moving_mask)
        # Every voxel of the mask, at its centre: ITK's REGULAR/RANDOM sampling adds a
        # normal jitter of a third of the spacing, i.e. samples between acquired slices.
        reg.SetMetricSamplingStrategy(reg.NONE)
        reg.SetInterpolator(sitk.sitkLinear)
        reg.SetMetricUseMovingImageGradientFilter(settings.local_gradient_filter)
        reg.SetMovingInitialTransform(self.moving_initial)
        return reg

    def evaluate(self, local: sitk.Transform, settings: RegistrationSettings) -> float:
        """The metric over every voxel of the region with ``local`` as the correction."""
        reg = self.method(self.region, settings)
        reg.SetInitialTransform(local)
        return float(reg.MetricEvaluate(self.fixed, self.moving))

    def evaluate_map(self, post_to_pre: sitk.Transform, settings: RegistrationSettings) -> float:
        """The metric over every voxel of the region through ``post_to_pre`` instead of the
        global transform (sampled at the fixed voxels: exact there)."""
        reg = self.method(self.region, settings)
        reg.SetMovingInitialTransform(_as_displacement_field(post_to_pre, self.fixed))
        reg.SetInitialTransform(sitk.TranslationTransform(3))
        return float(reg.MetricEvaluate(self.fixed, self.moving))


def acquired_grid(ct: sitk.Image, min_spacing_mm: float = 2.5) -> sitk.Image:
    """``ct`` (float32) on its own voxels: no interpolation between acquired slices.

    Each axis is binned by the integer factor ``round(min_spacing_mm / spacing)`` (at
    least 1; block means of whole voxels, ``SimpleITK.BinShrink``): 0.8 mm becomes 2.4 mm,
    1.5 mm becomes 3 mm, 2-3 mm and the 4-5 mm slice axis of a thick-slice scan keep their
    voxels as acquired. Never interpolates between voxels.
    """
    factors = [max(1, int(round(min_spacing_mm / s))) for s in ct.GetSpacing()]
    image = sitk.Cast(ct, sitk.sitkFloat32)
    return image if max(factors) == 1 else sitk.BinShrink(image, factors)


def local_stage(
    pre_ct: sitk.Image,
    post_ct: sitk.Image,
    post_zone: sitk.Image,
    pre_tumour: sitk.Image,
    transform: sitk.Transform,
    settings: RegistrationSettings,
) -> tuple[sitk.Transform, LocalStage]:
    """Final stage near the ablation zone (B-spline by default), on the post scan's
    acquired voxels.

    Parameters
    ----------
    pre_ct, post_ct : SimpleITK.Image
        CT scans in HU (any grids).
    post_zone : SimpleITK.Image
        Ablation-zone mask on the post grid.
    pre_tumour : SimpleITK.Image
        Tumour mask on the pre grid.
    transform : SimpleITK.Transform
        The global registration (post -> pre points, LPS mm).
    settings : RegistrationSettings
        ``local_*`` fields, ``exclusion_mm``.

    Returns
    -------
    (SimpleITK.Transform, LocalStage)
        The local correction ``x -> x + d(x)`` in post space (LPS mm), to be applied
        BEFORE ``transform`` (append it to the composite), as a displacement field on a
        2 mm grid: ``d`` is the fitted correction within ``local_ring_mm`` of the zone,
        fading (cosine) to 0 over ``local_ring_taper_mm`` beyond it (the quadratic; the
        default B-spline: within ``local_radius_mm - local_taper_mm``, fading to 0 at
        ``local_radius_mm``), 0 beyond, so no jump; and the outcome. Not accepted
        when the region has no voxel, when the correction does not lower the metric
        over every acquired voxel of the region, or when it moves a point by more than
        ``local_max_correction_mm``.

    Notes
    -----
    Fixed samples: the post voxels (``acquired_grid``; every ``local_sample_stride``-th
    along x and y, a larger stride if that leaves more than ``local_max_samples``) of
    the body's soft tissue within ``local_radius_mm`` of the zone (``soft_tissue_region``)
    minus the zone dilated by ``exclusion_mm``; moving mask: the pre scan minus the
    dilated tumour. Correlation of the soft-tissue-windowed CT,
    L-BFGS-B (the B-spline, ITK; the quadratic, scipy with an analytic gradient), one
    level without smoothing, no random jitter of the sample points.
    ``local_unclamped_only``, ``local_moving_clamp="none"`` (only post voxels strictly
    inside the window, pre CT not clamped: unbiased at the true transform),
    ``local_gradient_filter=False`` (central-difference gradients) and ``local_smooth_mm``
    (both scans smoothed alike, then clamped alike) are options, off by default: measured
    in docs/margin.md, "Local stage: intensity at the window bounds" and "Local stage:
    exact metric on smoothed scans".
    ``local_transform="affine"`` / ``"rigid"`` is a low-DOF map
    centred at the zone's centroid (regular-step gradient descent, scales from the
    physical shift), tapered, judged and bounded the same way: docs/margin.md, "Local
    stage: a low-DOF correction".
    ``local_transform="quadratic"`` fits a quadratic polynomial displacement (centred at
    the zone's centroid; ``local_quadratic_harmonic``: zero Laplacian;
    ``local_binned_model``: the pre CT averaged over each binned post voxel's acquired
    sub-voxels, exact at the true transform; :data:`RING_QUADRATIC`) on the region's
    voxels within ``local_ring_mm`` of the zone (numpy correlation, scipy L-BFGS-B,
    analytic gradient), applied within ``local_ring_mm`` and fading to 0 over
    ``local_ring_taper_mm``; judged as applied. ``local_pre_quadratic`` runs it first and
    the ``local_transform`` stage from it. Measured in docs/margin.md, "Local stage: a
    ring-only quadratic" and "The binned forward model".
    """
    started = time.perf_counter()
    stage = _local_stage_after_quadratic if settings.local_pre_quadratic else _local_stage
    correction, outcome = stage(pre_ct, post_ct, post_zone, pre_tumour, transform, settings)
    outcome = replace(outcome, family=settings.local_transform)
    if (
        not outcome.accepted
        and settings.local_transform == "quadratic"
        and settings.local_quadratic_fallback
        and not settings.local_pre_quadratic
    ):
        # Where the ring cannot support the quadratic (flat, noisy), the B-spline over
        # the whole region may still correct the global stages' error.
        bspline = settings.model_copy(update={"local_transform": "bspline"})
        correction, then = _local_stage(pre_ct, post_ct, post_zone, pre_tumour, transform, bspline)
        outcome = replace(
            then,
            note=f"quadratic refused ({outcome.note.removeprefix('refused: ')}); "
            f"B-spline {then.note}",
            family="bspline",
        )
    return correction, replace(outcome, seconds=time.perf_counter() - started)


def _local_stage_after_quadratic(
    pre_ct: sitk.Image,
    post_ct: sitk.Image,
    post_zone: sitk.Image,
    pre_tumour: sitk.Image,
    transform: sitk.Transform,
    settings: RegistrationSettings,
) -> tuple[sitk.Transform, LocalStage]:
    """``local_pre_quadratic``: the quadratic correction, then the ``local_transform`` stage
    started from it (each kept only if it passes its own guard); one displacement field."""
    first = settings.model_copy(
        update={"local_transform": "quadratic", "local_pre_quadratic": False}
    )
    second = settings.model_copy(update={"local_pre_quadratic": False})
    quad, q = _local_stage(pre_ct, post_ct, post_zone, pre_tumour, transform, first)
    if not q.accepted:
        then, t = _local_stage(pre_ct, post_ct, post_zone, pre_tumour, transform, second)
        return then, replace(t, note=f"{t.note}; quadratic first {q.note}")
    start = sitk.CompositeTransform([transform, quad])
    then, t = _local_stage(pre_ct, post_ct, post_zone, pre_tumour, start, second)
    if not t.accepted:
        return quad, replace(q, note=f"quadratic {q.note}; then {t.note}")
    # x -> then(x) -> quad(then(x)): the order of CompositeTransform([transform, quad, then]).
    grid = quad.GetDisplacementField()
    field = sitk.TransformToDisplacementField(
        sitk.CompositeTransform([quad, then]),
        sitk.sitkVectorFloat64,
        grid.GetSize(),
        grid.GetOrigin(),
        grid.GetSpacing(),
        grid.GetDirection(),
    )
    largest = float(np.linalg.norm(sitk.GetArrayViewFromImage(field), axis=-1).max())
    note = (
        f"kept: quadratic {q.metric_before:.4f} -> {q.metric_after:.4f}, then "
        f"{t.metric_before:.4f} -> {t.metric_after:.4f}, largest correction {largest:.2f} mm"
    )
    if largest > settings.local_max_correction_mm:
        note = f"quadratic {q.note}; then refused: together they moved a point by {largest:.1f} mm"
        return quad, replace(q, note=note)
    both = sitk.DisplacementFieldTransform(field)
    return both, LocalStage(True, q.metric_before, t.metric_after, largest, t.samples, note)


def _local_stage(
    pre_ct: sitk.Image,
    post_ct: sitk.Image,
    post_zone: sitk.Image,
    pre_tumour: sitk.Image,
    transform: sitk.Transform,
    settings: RegistrationSettings,
) -> tuple[sitk.Transform, LocalStage]:
    radius = settings.local_radius_mm
    start, size = bounding_box_index(post_zone, radius)
    fixed_ct = acquired_grid(crop(post_ct, start, size), settings.local_min_spacing_mm)
    zone = resample_mask_like(crop(post_zone, start, size), fixed_ct)
    region = sitk.And(
        soft_tissue_region(fixed_ct, zone, radius),
        sitk.Not(dilate_mm(zone, settings.exclusion_mm)),
    )
    identity = sitk.TranslationTransform(3)
    t_start, t_size = bounding_box_index(pre_tumour, radius + 20.0)
    moving_ct = crop(pre_ct, t_start, t_size)
    moving_mask = sitk.Not(dilate_mm(crop(pre_tumour, t_start, t_size), settings.exclusion_mm))
    initial = _as_displacement_field(transform, fixed_ct)
    variant = _LocalMetric.build(fixed_ct, region, moving_ct, moving_mask, initial, settings)
    if settings.local_judge_within_mm is not None:
        near = dilate_mm(zone, settings.exclusion_mm + settings.local_judge_within_mm)
        variant.region = sitk.And(variant.region, near)
    if variant.samples < 100:
        return identity, LocalStage(
            False, 0.0, 0.0, 0.0, variant.samples, "too few voxels near the zone"
        )
    samples = variant.samples
    # The correction is applied as a displacement field on a 2 mm grid over the region's box.
    grid = resample_isotropic(sitk.Cast(zone, sitk.sitkFloat32), 2.0)
    inside = sitk.GetArrayViewFromImage(grid) >= 0.5
    distance = ndimage.distance_transform_edt(~inside, sampling=tuple(reversed(grid.GetSpacing())))
    detail = ""
    binned = judge = None
    if settings.local_binned_model:
        # Every family is judged with the binned forward model over every voxel of the
        # region, as applied (tapered, composed with the global transform).
        binned = _binned_inputs(crop(post_ct, start, size), variant)
        judge = _QuadraticFit.build(
            variant,
            sitk.GetArrayViewFromImage(variant.region) > 0,
            transform,
            grid,
            _centroid_lps(zone),
            settings.local_quadratic_harmonic,
            binned,
        )
    if settings.local_transform == "quadratic":
        # Fitted on the ring next to the excluded hole (numpy metric, scipy L-BFGS-B); the
        # polynomial within local_ring_mm of the zone, fading to 0 over local_ring_taper_mm.
        ring_mm, taper = settings.local_ring_mm, settings.local_ring_taper_mm
        fit_mask = variant.region if settings.local_holdout_block_mm is None else variant.sparse
        zone_array = sitk.GetArrayViewFromImage(zone) > 0
        near = ndimage.distance_transform_edt(
            ~zone_array, sampling=tuple(reversed(fixed_ct.GetSpacing()))
        )
        ring = (sitk.GetArrayViewFromImage(fit_mask) > 0) & (near <= ring_mm)
        fit = _QuadraticFit.build(
            variant,
            ring,
            transform,
            grid,
            _centroid_lps(zone),
            settings.local_quadratic_harmonic,
            binned,
        )
        if fit is None:
            return identity, LocalStage(
                False, 0.0, 0.0, 0.0, int(ring.sum()), "too few voxels in the ring near the zone"
            )
        samples = fit.samples
        points = voxel_to_lps(grid, np.argwhere(np.ones(inside.shape, bool))[:, ::-1])
        theta = fit.solve(settings)
        if settings.local_quadratic_crossval:
            disagreement = fit.cross_validate(settings)
            if disagreement:
                note = f"refused: {disagreement}"
                return identity, LocalStage(False, 0.0, 0.0, 0.0, fit.samples, note)
        evidence = fit.evidence(theta)
        level = settings.local_quadratic_evidence
        if level is not None and evidence < stats.chi2.ppf(level, theta.size):
            note = (
                f"refused: the ring's evidence for the correction ({evidence:.0f}) is within "
                f"what fitting {theta.size} parameters to noise gives (chi-square "
                f"{level:g} quantile {stats.chi2.ppf(level, theta.size):.0f})"
            )
            return identity, LocalStage(False, 0.0, 0.0, 0.0, fit.samples, note)
        detail = f"; ring evidence {evidence:.0f} ({theta.size} parameters)"
        vectors = fit.displacement(theta, points).reshape((*inside.shape, 3))
        fade = np.clip((distance - ring_mm) / taper, 0.0, 1.0)
        field = sitk.GetImageFromArray(vectors, isVector=True)
        field.CopyInformation(grid)
        fitted = None
    else:
        fitted = _local_initial(fixed_ct, zone, settings)
        reg = variant.method(variant.sparse, settings)
        _local_optimizer(reg, settings)
        reg.SetInitialTransform(fitted, inPlace=True)
        try:
            reg.Execute(variant.fixed, variant.moving)
        except RuntimeError as exc:  # ITK: no valid sample (moving mask/crop mismatch)
            return identity, LocalStage(False, 0.0, 0.0, 0.0, samples, f"failed: {exc}"[:200])
        field = sitk.TransformToDisplacementField(
            fitted,
            sitk.sitkVectorFloat64,
            grid.GetSize(),
            grid.GetOrigin(),
            grid.GetSpacing(),
            grid.GetDirection(),
        )
        vectors = sitk.GetArrayFromImage(field)
        taper = min(settings.local_taper_mm, radius)
        fade = np.clip((distance - (radius - taper)) / taper, 0.0, 1.0)
    weight = 0.5 * (1.0 + np.cos(np.pi * fade))
    vectors *= weight[..., None]
    length = np.linalg.norm(vectors, axis=-1)
    largest = float(length[distance <= radius].max()) if np.any(distance <= radius) else 0.0
    faded = sitk.GetImageFromArray(vectors, isVector=True)
    faded.CopyInformation(field)
    correction = sitk.DisplacementFieldTransform(faded)
    if judge is not None:
        before = judge.metric_of_field(np.zeros_like(vectors))
        after = judge.metric_of_field(vectors)  # as applied: already faded
    else:
        before = variant.evaluate(sitk.TranslationTransform(3), settings)
    if judge is None and fitted is None:
        # The quadratic is judged as applied (untapered it grows without bound away from
        # the ring), composed with the exact global transform (the B-spline: as fitted).
        after = variant.evaluate_map(sitk.CompositeTransform([transform, correction]), settings)
    elif judge is None:
        after = variant.evaluate(fitted, settings)
    if not after < before:
        note = f"refused: the local metric did not improve ({before:.4f} -> {after:.4f})"
        note += detail
        return identity, LocalStage(False, before, after, largest, samples, note)
    if largest > settings.local_max_correction_mm:
        note = (
            f"refused: it moved a point by {largest:.1f} mm "
            f"(> {settings.local_max_correction_mm:g} mm)"
        )
        return identity, LocalStage(False, before, after, largest, samples, note)
    note = f"kept: local metric {before:.4f} -> {after:.4f}, largest correction {largest:.2f} mm"
    note += detail
    return correction, LocalStage(True, before, after, largest, samples, note)


class _Trilinear:
    """Linear interpolation of a volume (numpy z, y, x, or z, y, x, C for C components)
    at continuous x, y, z indices, with the exact derivative of that interpolant, from one
    gather of each cell's 8 corners (shared by the value, the gradient and the
    components). Indices are clamped to the volume; the cell is the one below the index
    (the last cell at the upper edge), so the derivative is that cell's: forward
    differences, bilinear across the other axes."""

    def __init__(self, volume: np.ndarray) -> None:
        volume = np.asarray(volume, dtype=np.float64)
        self.scalar = volume.ndim == 3
        self.volume = np.ascontiguousarray(volume[..., None] if self.scalar else volume)

    def __call__(self, index_xyz: np.ndarray, gradient: bool = True):
        shape = np.asarray(self.volume.shape[:3])
        zyx = np.clip(np.asarray(index_xyz, dtype=np.float64)[:, ::-1], 0.0, shape - 1.0)
        low = np.clip(np.floor(zyx).astype(np.int64), 0, np.maximum(shape - 2, 0))
        high = np.minimum(low + 1, shape - 1)
        t = zyx - low  # (N, 3) in z, y, x order, 0..1
        (z0, y0, x0), (z1, y1, x1) = low.T, high.T
        v = self.volume
        c000, c001, c010, c011 = v[z0, y0, x0], v[z0, y0, x1], v[z0, y1, x0], v[z0, y1, x1]
        c100, c101, c110, c111 = v[z1, y0, x0], v[z1, y0, x1], v[z1, y1, x0], v[z1, y1, x1]
        tz, ty, tx = (t[:, k, None] for k in range(3))
        # Along x first, then y, then z (each (N, C)).
        c00, c01 = c000 + tx * (c001 - c000), c010 + tx * (c011 - c010)
        c10, c11 = c100 + tx * (c101 - c100), c110 + tx * (c111 - c110)
        c0, c1 = c00 + ty * (c01 - c00), c10 + ty * (c11 - c10)
        value = c0 + tz * (c1 - c0)
        if not gradient:
            return (value[:, 0] if self.scalar else value), None
        d_z = c1 - c0
        d_y = (c01 - c00) + tz * ((c11 - c10) - (c01 - c00))
        e00, e01 = c001 - c000, c011 - c010
        e10, e11 = c101 - c100, c111 - c110
        e0, e1 = e00 + ty * (e01 - e00), e10 + ty * (e11 - e10)
        d_x = e0 + tz * (e1 - e0)
        grad = np.stack([d_x, d_y, d_z], axis=-1)  # (N, C, 3): d value / d index x, y, z
        if self.scalar:
            return value[:, 0], grad[:, 0]
        return value, grad


@dataclass
class _QuadraticFit:
    """The quadratic local correction's fit: fixed samples on the ring (post voxels, LPS
    mm), the global transform ``G`` as a displacement field on a 2 mm grid, the pre CT as
    the local metric sees it; ``d(x) = basis(x) @ theta`` with ``theta`` (10 or 9, 3) in mm and
    the basis in ``(x - centre) / scale`` (scale: the farthest sample from the centre)."""

    points: np.ndarray
    fixed: np.ndarray
    centre: np.ndarray
    scale: float
    field: _Trilinear
    field_image: sitk.Image
    moving: _Trilinear
    moving_image: sitk.Image

    @property
    def samples(self) -> int:
        return len(self.points)

    @classmethod
    def build(
        cls,
        variant: _LocalMetric,
        ring: np.ndarray,
        transform: sitk.Transform,
        grid: sitk.Image,
        centre: np.ndarray,
        harmonic: bool = False,
        binned: tuple[sitk.Image, np.ndarray] | None = None,
    ) -> _QuadraticFit | None:
        """The fit's inputs, or None when fewer than 100 ring voxels map into the pre
        scan's metric region at the start (the samples then stay fixed). ``binned``:
        (post windowed then binned, sub-voxel offsets (K, 3) LPS mm) from
        :func:`_binned_inputs`, for ``local_binned_model``."""
        points = voxel_to_lps(variant.fixed, np.argwhere(ring)[:, ::-1])
        source = variant.fixed if binned is None else binned[0]
        fixed = sitk.GetArrayViewFromImage(source)[ring].astype(np.float64)
        offsets = None if binned is None else binned[1]
        displacement = sitk.TransformToDisplacementField(
            transform,
            sitk.sitkVectorFloat64,
            grid.GetSize(),
            grid.GetOrigin(),
            grid.GetSpacing(),
            grid.GetDirection(),
        )
        vectors = sitk.GetArrayFromImage(displacement)
        field = _Trilinear(vectors)
        moving = _Trilinear(sitk.GetArrayViewFromImage(variant.moving))
        fit = cls(points, fixed, centre, 1.0, field, grid, moving, variant.moving, harmonic)
        mapped = fit.map(points)
        index = np.rint(lps_to_voxel(variant.moving_mask, mapped)).astype(int)
        mask = sitk.GetArrayViewFromImage(variant.moving_mask)
        ok = np.all((index >= 0) & (index < np.asarray(mask.shape[::-1])), axis=1)
        ok[ok] = mask[index[ok, 2], index[ok, 1], index[ok, 0]] > 0
        if ok.sum() < 100:
            return None
        scale = float(np.linalg.norm(points[ok] - centre, axis=1).max())
        return cls(
            points[ok],
            fixed[ok],
            centre,
            scale,
            field,
            grid,
            moving,
            variant.moving,
            harmonic,
            offsets,
        )

    harmonic: bool = False
    offsets: np.ndarray | None = None

    def _sub_points(self) -> np.ndarray:
        """The points the moving CT is sampled at, (N * K, 3) LPS mm: the samples
        themselves, or each binned voxel's acquired sub-voxel centres (K per sample)."""
        if self.offsets is None:
            return self.points
        return (self.points[:, None, :] + self.offsets[None, :, :]).reshape(-1, 3)

    def _correlation(self, value: np.ndarray) -> tuple[float, np.ndarray]:
        """ITK's correlation metric of the fixed samples with ``value`` (N * K moving
        values, averaged per sample) and its derivative per moving value."""
        k = 1 if self.offsets is None else len(self.offsets)
        f = self.fixed - self.fixed.mean()
        m = value.reshape(-1, k).mean(axis=1)
        m = m - m.mean()
        sfm, sff, smm = float(f @ m), float(f @ f), float(m @ m)
        if sff <= 0 or smm <= 0:
            return 0.0, np.zeros(len(value))
        cost = -(sfm * sfm) / (sff * smm)
        dm = -2.0 * sfm / (sff * smm) * (f - (sfm / smm) * m)  # d cost / d mean value
        return cost, np.repeat(dm / k, k)

    def subset(self, keep: np.ndarray) -> _QuadraticFit:
        """The same fit on the samples ``keep`` (boolean, N); same centre and scale."""
        return replace(self, points=self.points[keep], fixed=self.fixed[keep])

    def cross_validate(self, settings: RegistrationSettings, cube_mm: float = 10.0) -> str:
        """Fit each half of the samples (a 3D checkerboard of ``cube_mm`` cubes in LPS)
        and judge it on the other half: '' when both fits lower the other half's metric
        (the correction is in the images, not in one half's noise), else why not."""
        parity = np.floor(self.points / cube_mm).astype(np.int64).sum(axis=1) % 2 == 0
        halves = [self.subset(parity), self.subset(~parity)]
        if min(h.samples for h in halves) < 100:
            return ""
        for name, (fitted, judged) in {"black": halves, "white": halves[::-1]}.items():
            theta = fitted.solve(settings)
            before, after = judged.metric(np.zeros_like(theta))[0], judged.metric(theta)[0]
            if not after < before:
                return (
                    f"the fit on the {name} {cube_mm:g} mm cubes of the ring does not "
                    f"carry over to the others ({before:.4f} -> {after:.4f})"
                )
        return ""

    def evidence(self, theta: np.ndarray) -> float:
        """How far the fit's gain exceeds noise: ``N (rho1^2 - rho0^2) / (1 - rho1^2)``
        over the fit's N samples (rho^2 = -metric). Under no true correction (white
        residual) it is about chi-square with ``theta.size`` degrees of freedom: the
        residual sum of squares of f regressed on m falls by chi2_p * sigma^2 when p
        parameters follow noise, and ``1 - rho^2 = RSS / TSS``."""
        before = -self.metric(np.zeros_like(theta))[0]
        after = -self.metric(theta)[0]
        return float(self.samples * (after - before) / max(1.0 - after, 1e-12))

    def metric_of_field(self, vectors: np.ndarray) -> float:
        """The metric with the correction given as a displacement field ``vectors``
        (z, y, x, 3, mm) on the fit's 2 mm grid (linear interpolation): the correction
        as applied, for judging it with the fit's own model."""
        sub = self._sub_points()
        index = lps_to_voxel(self.field_image, sub)
        shift = _Trilinear(vectors)(index, gradient=False)[0]
        mapped = self.map(sub + shift)
        value, _ = self.moving(lps_to_voxel(self.moving_image, mapped), gradient=False)
        return self._correlation(value)[0]

    @property
    def terms(self) -> int:
        return 9 if self.harmonic else 10

    def basis(self, points: np.ndarray) -> np.ndarray:
        """(N, 10): 1, x, y, z, x^2, y^2, z^2, xy, xz, yz of the scaled offsets; harmonic
        (N, 9): x^2 - z^2 and y^2 - z^2 instead of the squares (zero Laplacian: no
        x^2 + y^2 + z^2 term, which is nearly constant on a ring around the centre and so
        would set the correction at the centre freely)."""
        x, y, z = ((points - self.centre) / self.scale).T
        if self.harmonic:
            squares = [x * x - z * z, y * y - z * z]
        else:
            squares = [x * x, y * y, z * z]
        return np.stack([np.ones_like(x), x, y, z, *squares, x * y, x * z, y * z], 1)

    def displacement(self, theta: np.ndarray, points: np.ndarray) -> np.ndarray:
        """``d(points)``, (N, 3) mm, for ``theta`` (terms x 3, flat or not)."""
        return self.basis(points) @ np.reshape(theta, (self.terms, 3))

    def map(self, points: np.ndarray, jacobian: bool = False):
        """``G(points)`` (LPS mm) and, if asked, its Jacobian (N, 3, 3)."""
        a, _ = index_to_lps_matrix(self.field_image)
        index = lps_to_voxel(self.field_image, points)
        shift, grad = self.field(index, jacobian)
        mapped = points + shift
        if not jacobian:
            return mapped
        du = grad @ np.linalg.inv(a)  # (N, 3 out, 3 in)
        return mapped, du + np.eye(3)

    def metric(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Correlation metric (ITK's sign and form: -(sum f m)^2 / (sum f^2 sum m^2),
        centred) of the ring samples with the pre CT at ``G(x + d(x))``, and its gradient."""
        sub = self._sub_points()
        basis = self.basis(sub)
        moved = sub + basis @ np.reshape(theta, (self.terms, 3))
        mapped, jac = self.map(moved, jacobian=True)
        a, _ = index_to_lps_matrix(self.moving_image)
        value, grad = self.moving(lps_to_voxel(self.moving_image, mapped))
        grad = grad @ np.linalg.inv(a)  # d value / d LPS, (N * K, 3)
        cost, dm = self._correlation(value)
        if cost == 0.0:
            return 0.0, np.zeros(3 * self.terms)
        dz = np.einsum("n,ni,nij->nj", dm, grad, jac)  # d cost / d (x + d(x))
        return cost, (basis.T @ dz).ravel()

    def solve(self, settings: RegistrationSettings) -> np.ndarray:
        """``theta`` minimising :meth:`metric` from 0 (scipy L-BFGS-B)."""
        result = optimize.minimize(
            self.metric,
            np.zeros(3 * self.terms),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 10 * settings.local_iterations, "ftol": 1e-12, "gtol": 1e-9},
        )
        return np.reshape(result.x, (self.terms, 3))


def _binned_inputs(post_crop: sitk.Image, variant: _LocalMetric) -> tuple[sitk.Image, np.ndarray]:
    """``local_binned_model``: the post crop windowed THEN binned like ``variant.fixed``
    (block means of clamped voxels, as the pre side averages clamped values), and the
    offsets (K, 3, LPS mm) from a binned voxel's centre to its acquired sub-voxel centres.

    BinShrink by factor f puts binned index i at input index ``i f + (f - 1) / 2``, so
    input voxel ``i f + k`` sits at binned index ``i + (k + 0.5) / f - 0.5``.
    """
    factors = [
        max(1, int(round(b / s)))
        for b, s in zip(variant.fixed.GetSpacing(), post_crop.GetSpacing(), strict=True)
    ]
    windowed = _windowed(post_crop)
    binned = windowed if max(factors) == 1 else sitk.BinShrink(windowed, factors)
    binned.CopyInformation(variant.fixed)  # the same grid as acquired_grid's
    steps = [(np.arange(f) + 0.5) / f - 0.5 for f in factors]
    index = np.stack(np.meshgrid(*steps, indexing="ij"), axis=-1).reshape(-1, 3)
    a, _ = index_to_lps_matrix(variant.fixed)
    return binned, index @ a.T


def _local_initial(
    fixed_ct: sitk.Image, zone: sitk.Image, settings: RegistrationSettings
) -> sitk.Transform:
    """The local stage's correction at identity, of the family ``settings.local_transform``.

    ``bspline``: cubic, on ``fixed_ct``'s box with a ``local_control_spacing_mm`` mesh.
    ``affine`` / ``rigid``: centred at the zone's centroid (LPS mm), so that its
    translation is the correction AT the zone and its matrix (rotation) acts about it:
    a low-DOF family that cannot follow noise in the ring and extends linearly into
    the excluded hole.
    """
    if settings.local_transform == "bspline":
        mesh = [
            max(1, int(round(n * s / settings.local_control_spacing_mm)))
            for n, s in zip(fixed_ct.GetSize(), fixed_ct.GetSpacing(), strict=True)
        ]
        return sitk.BSplineTransformInitializer(fixed_ct, mesh, order=3)
    centre = tuple(float(c) for c in _centroid_lps(zone))
    if settings.local_transform == "affine":
        transform = sitk.AffineTransform(3)
    else:
        transform = sitk.Euler3DTransform()
    transform.SetCenter(centre)
    return transform


def _local_optimizer(reg: sitk.ImageRegistrationMethod, settings: RegistrationSettings) -> None:
    """The local stage's optimiser: L-BFGS-B for the B-spline (parameters in mm, no
    scales); for ``affine`` / ``rigid`` a regular-step gradient descent with scales from
    the physical shift of each parameter (matrix entries and angles act over the region's
    ~40 mm, translations 1:1), first step 0.5 mm, x0.7 at each reversal, down to 1e-4."""
    iterations = settings.local_iterations
    if settings.local_transform == "bspline":
        reg.SetOptimizerAsLBFGSB(
            gradientConvergenceTolerance=1e-5,
            numberOfIterations=iterations,
            maximumNumberOfCorrections=5,
            maximumNumberOfFunctionEvaluations=2 * iterations,
            costFunctionConvergenceFactor=1e7,
        )
        return
    # Measured (docs/margin.md "Local stage: a low-DOF correction"): first step 1 mm halved
    # to 0.01 mm stopped after 12-21 iterations up to 0.011 short of the metric a 100-step
    # conjugate gradient reached; this schedule runs 44-194 iterations, ~1-2 s.
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=0.5,
        minStep=1e-4,
        numberOfIterations=10 * iterations,
        relaxationFactor=0.7,
        gradientMagnitudeTolerance=1e-10,
    )
    reg.SetOptimizerScalesFromPhysicalShift()


def set_threads(threads: int | None) -> None:
    """Use ``threads`` ITK threads, or every core this process may use when None.

    SimpleITK's global default is the number of cores ITK detects; an earlier call
    with a number would stick, so None restores :func:`hepanav.core.limits.available_cores`
    explicitly (affinity mask and cgroup CPU quota respected; never a fixed count).
    """
    n = threads if threads is not None else available_cores()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(n))


def _windowed(ct: sitk.Image) -> sitk.Image:
    """float32 CT clamped to the soft-tissue window (air to its lower, bone to its upper end)."""
    lo, hi = WINDOW_HU
    return sitk.Clamp(sitk.Cast(ct, sitk.sitkFloat32), sitk.sitkFloat32, lo, hi)


def _region_mask(
    ct: sitk.Image,
    lesion: sitk.Image,
    settings: RegistrationSettings,
    radius_extra_mm: float = 0.0,
) -> sitk.Image:
    """Lesion-region metric mask: soft tissue near the lesion minus the dilated lesion."""
    region = soft_tissue_region(ct, lesion, settings.region_radius_mm + radius_extra_mm)
    return sitk.And(region, sitk.Not(dilate_mm(lesion, settings.exclusion_mm)))


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


def _correlation_method(
    settings: RegistrationSettings, fixed_mask: sitk.Image, moving_mask: sitk.Image
) -> sitk.ImageRegistrationMethod:
    """The global stages' metric set-up: correlation on the masked, regularly sampled
    working grids (``settings.sampling_fraction``, fixed seed), linear interpolation."""
    reg = sitk.ImageRegistrationMethod()
    # Correlation tolerates a global change of contrast between the two scans.
    reg.SetMetricAsCorrelation()
    reg.SetMetricFixedMask(fixed_mask)
    reg.SetMetricMovingMask(moving_mask)
    reg.SetMetricSamplingStrategy(reg.REGULAR)
    reg.SetMetricSamplingPercentage(settings.sampling_fraction, settings.seed)
    reg.SetInterpolator(sitk.sitkLinear)
    return reg


def _method(
    settings: RegistrationSettings, fixed_mask: sitk.Image, moving_mask: sitk.Image, rigid: bool
) -> sitk.ImageRegistrationMethod:
    reg = _correlation_method(settings, fixed_mask, moving_mask)
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
        reg.SetShrinkFactorsPerLevel(list(_BSPLINE_SHRINK))
        reg.SetSmoothingSigmasPerLevel([2.0, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return reg


class _Stalled(Exception):
    """Raised by :class:`StallRule` inside ITK's event loop to end L-BFGS-B."""


class StallRule:
    """Stop an L-BFGS-B registration whose metric has stalled (counts iterations).

    ITK's L-BFGS-B ignores ``StopRegistration`` and its own cost-function test compares
    one iteration only; this rule looks at a window. At the last pyramid level it keeps
    the best metric value seen (ITK reports every metric evaluation, line-search trials
    included) and its parameters; when an iteration ``n`` starts, it stops if the best
    value at the end of iteration ``n - 1`` is less than ``tolerance`` below the best at
    the end of iteration ``n - 1 - iterations``. Stopping raises through SimpleITK's
    observer (the only way to end vnl's L-BFGS-B early); :meth:`execute` catches that and
    sets the transform to the best parameters seen.

    Parameters
    ----------
    reg : SimpleITK.ImageRegistrationMethod
        A method with an L-BFGS-B optimiser (add the rule before ``Execute``).
    last_level : int
        Index of the finest pyramid level (the rule only acts there).
    iterations : int
        Window, iterations (0: the rule never fires).
    tolerance : float
        Least improvement of the metric over the window (ITK sign: lower is better).

    Attributes
    ----------
    fired_at : int or None
        Iteration at which the rule stopped the optimiser (None: it ran to its end).
    best_at_end : dict of int to float
        Best metric value seen by the end of each iteration of the last level.
    """

    def __init__(
        self,
        reg: sitk.ImageRegistrationMethod,
        last_level: int,
        iterations: int,
        tolerance: float,
    ) -> None:
        self.reg, self.last_level = reg, last_level
        self.iterations, self.tolerance = iterations, tolerance
        self.fired_at: int | None = None
        self._best = np.inf
        self._position: tuple[float, ...] | None = None
        self.best_at_end: dict[int, float] = {}
        if iterations > 0:
            reg.AddCommand(sitk.sitkIterationEvent, self._observe)

    def _observe(self) -> None:
        reg = self.reg
        if reg.GetCurrentLevel() != self.last_level:
            return
        iteration = int(reg.GetOptimizerIteration())
        done = iteration - 1  # the iteration that has just ended when ``iteration`` starts
        if (
            iteration not in self.best_at_end
            and done - self.iterations in self.best_at_end
            and self.best_at_end[done - self.iterations] - self.best_at_end[done] < self.tolerance
        ):
            self.fired_at = iteration
            raise _Stalled
        value = float(reg.GetMetricValue())
        if value < self._best:
            self._best, self._position = value, tuple(reg.GetOptimizerPosition())
        self.best_at_end[iteration] = self._best

    def execute(self, fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform) -> None:
        """``reg.Execute(fixed, moving)``; when the rule fires, ``transform`` (the in-place
        initial transform) gets the best parameters seen at the last level."""
        try:
            with _stall_not_printed():
                self.reg.Execute(fixed, moving)
        except RuntimeError:
            if self.fired_at is None:
                raise
            transform.SetParameters(self._position)


# Why the rule's stop needs hiding, and how. SimpleITK's Python observer
# (sitkPyCommand.cxx) reports an exception raised in the callable with PyErr_Print()
# before turning it into the RuntimeError that Execute raises: the rule's own stop
# (``_Stalled``) would print a traceback on every stalled B-spline stage. This used to be
# hidden by redirecting Python's sys.stderr into a buffer for the whole registration and
# writing the buffer out afterwards; that also held back everything else written to
# sys.stderr meanwhile, from any thread: the CLI's Rich progress bar (its console writes
# to the current sys.stderr, so its spinner and elapsed time froze for the whole,
# possibly minutes-long, registration), Python warnings and, when the rule fired, lost
# them. ITK's own C++ warnings were never caught by it (they go to file descriptor 2,
# not sys.stderr), and they still appear when they happen. PyErr_Print goes through
# sys.excepthook, so now only that hook is wrapped while a registration runs: the
# wrapper drops ``_Stalled`` and passes every other exception to the previous hook
# (printed at once, as before); sys.stderr is left alone, so progress and warnings
# appear live. Process-wide state, hence the lock and count (registrations may run in
# several threads of the web application).
_HOOK_LOCK = threading.Lock()
_hook_users = 0
_hook_previous = None


def _hide_stall(exc_type, exc, tb) -> None:
    """sys.excepthook while a registration runs: silent for the stall rule's stop."""
    if isinstance(exc_type, type) and issubclass(exc_type, _Stalled):
        return
    (_hook_previous or sys.__excepthook__)(exc_type, exc, tb)


@contextlib.contextmanager
def _stall_not_printed():
    """While inside: SimpleITK's print of an observer exception is silent for
    ``_Stalled`` only (module comment above); sys.stderr is untouched."""
    global _hook_users, _hook_previous
    with _HOOK_LOCK:
        if _hook_users == 0:
            _hook_previous = sys.excepthook
            sys.excepthook = _hide_stall
        _hook_users += 1
    try:
        yield
    finally:
        with _HOOK_LOCK:
            _hook_users -= 1
            if _hook_users == 0:
                if sys.excepthook is _hide_stall:  # never undo another's later hook
                    sys.excepthook = _hook_previous
                _hook_previous = None


def _run(
    reg: sitk.ImageRegistrationMethod,
    fixed: sitk.Image,
    moving: sitk.Image,
    initial: sitk.Transform,
    moving_initial: sitk.Transform | None,
    settings: RegistrationSettings | None = None,
) -> sitk.Transform:
    """Execute ``reg`` from ``initial`` (updated in place and returned); with ``settings``
    (L-BFGS-B stages), the stall rule of ``settings.bspline_stall_*`` at the last level."""
    reg.SetInitialTransform(initial, inPlace=True)
    if moving_initial is not None:
        reg.SetMovingInitialTransform(moving_initial)
    if settings is None:
        rule = StallRule(reg, 0, 0, 0.0)
    else:
        last = len(_BSPLINE_SHRINK) - 1
        rule = StallRule(
            reg, last, settings.bspline_stall_iterations, settings.bspline_stall_tolerance
        )
    try:
        rule.execute(fixed, moving, initial)
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
