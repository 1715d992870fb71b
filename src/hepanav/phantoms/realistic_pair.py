"""Realistic pre/post pairs for registration tests: patient motion, contrast, thick slices, FOV.

``realistic_pair`` takes an ablation case (``hepanav.phantoms.ablation_case``,
typically implanted into a real CT with a 12-18 mm breathing-like deformation) and
makes its post scan look like a real follow-up scan of the same patient:

* a rigid patient motion of the post scan (translation, rotation about the zone centre):
  the post image's origin and direction are moved, so its content moves rigidly in
  physical space and the true margins are unchanged (distances are rigid-invariant);
* a contrast or phase change: soft tissue (-100..300 HU) shifted by ``contrast_hu``;
* a partial field of view: the post scan cropped to ``fov_half_mm`` around the zone
  along the slice axis (as a limited control scan).

The post slice thickness comes from the case (``post_spacing_mm``). Truth: the case's
``truth.min_margin_mm``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from hepanav.phantoms.ablation_case import CaseData


@dataclass
class RealisticPair:
    """Pre and post images of a realistic pair, LPS mm; ``true_mam_mm`` from the case."""

    pre_ct: sitk.Image
    pre_tumor: sitk.Image
    pre_liver: sitk.Image
    post_ct: sitk.Image
    post_ablation: sitk.Image
    post_liver: sitk.Image
    true_mam_mm: float
    motion_mm: float
    rotation_deg: float
    rotation: np.ndarray | None = None
    motion_centre_lps: np.ndarray | None = None
    shift_lps_mm: np.ndarray | None = None

    def motion_to_case(self) -> sitk.AffineTransform:
        """Moved-post -> case-post points: the inverse of the rigid patient motion.

        ``p -> R^T (p - c - t) + c`` (LPS mm), so that composed with the case's
        deformation (post -> pre) it gives the true post -> pre transform of the pair
        (:func:`true_post_to_pre`).
        """
        if self.rotation is None:
            raise ValueError("this pair carries no recorded motion")
        inverse = np.asarray(self.rotation, float).T
        affine = sitk.AffineTransform(3)
        affine.SetMatrix(inverse.ravel().tolist())
        affine.SetCenter(np.asarray(self.motion_centre_lps, float).tolist())
        affine.SetTranslation((-inverse @ np.asarray(self.shift_lps_mm, float)).tolist())
        return affine


def _crop_z(image: sitk.Image, lo: int, hi: int) -> sitk.Image:
    size = list(image.GetSize())
    return sitk.RegionOfInterest(image, [size[0], size[1], hi - lo + 1], [0, 0, lo])


def _move(image: sitk.Image, rotation: np.ndarray, centre: np.ndarray, shift: np.ndarray):
    """The same voxels placed by ``p -> R (p - c) + c + t`` in physical space."""
    moved = sitk.Image(image)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    origin = np.asarray(image.GetOrigin())
    moved.SetDirection((rotation @ direction).ravel().tolist())
    moved.SetOrigin((rotation @ (origin - centre) + centre + shift).tolist())
    return moved


def realistic_pair(
    case: CaseData,
    rng: np.random.Generator,
    motion_mm: tuple[float, float] = (20.0, 38.0),
    rotation_deg: tuple[float, float] = (5.0, 10.0),
    contrast_hu: float = 30.0,
    fov_half_mm: float = 60.0,
) -> RealisticPair:
    """Turn ``case`` into a realistic pair (see module doc); random draws from ``rng``.

    Parameters
    ----------
    case : CaseData
        An ablation case in memory.
    rng : numpy.random.Generator
        Draws the motion direction and size, the rotation axis and angle, the sign of
        the contrast change.
    motion_mm, rotation_deg : (low, high)
        Ranges of the rigid translation (mm) and rotation (degrees).
    contrast_hu : float
        Size of the soft-tissue HU change (sign drawn).
    fov_half_mm : float
        Half-extent of the post field of view along the slice axis around the zone, mm.
    """
    zone = sitk.GetArrayViewFromImage(case.post_ablation) > 0
    k = np.flatnonzero(zone.any(axis=(1, 2)))
    centre_k = int(round(k.mean()))
    half = int(np.ceil(fov_half_mm / case.post_ct.GetSpacing()[2]))
    lo, hi = max(0, centre_k - half), min(zone.shape[0] - 1, centre_k + half)
    post_ct = _crop_z(case.post_ct, lo, hi)
    post_ablation = _crop_z(case.post_ablation, lo, hi)
    post_liver = _crop_z(case.post_liver, lo, hi)

    hu = sitk.GetArrayFromImage(post_ct).astype(np.float32)
    soft = (hu > -100) & (hu < 300)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    hu[soft] += sign * contrast_hu
    changed = sitk.GetImageFromArray(hu.astype(np.int16))
    changed.CopyInformation(post_ct)

    centre = np.asarray(case.truth.zone_center_post_lps, dtype=float)
    axis = rng.normal(size=3)
    angle = rng.uniform(*rotation_deg)
    rotation = Rotation.from_rotvec(np.radians(angle) * axis / np.linalg.norm(axis)).as_matrix()
    direction = rng.normal(size=3)
    size = rng.uniform(*motion_mm)
    shift = size * direction / np.linalg.norm(direction)
    return RealisticPair(
        pre_ct=case.pre_ct,
        pre_tumor=case.pre_tumor,
        pre_liver=case.pre_liver,
        post_ct=_move(changed, rotation, centre, shift),
        post_ablation=_move(post_ablation, rotation, centre, shift),
        post_liver=_move(post_liver, rotation, centre, shift),
        true_mam_mm=float(case.truth.min_margin_mm),
        motion_mm=float(size),
        rotation_deg=float(angle),
        rotation=rotation,
        motion_centre_lps=centre,
        shift_lps_mm=shift,
    )


def true_post_to_pre(case: CaseData, pair: RealisticPair) -> sitk.Transform:
    """The true transform of ``pair`` (built from ``case``): moved-post -> pre points, LPS mm.

    The rigid motion is undone exactly; the case's deformation is its displacement
    field (``case.displacement_post_to_pre``, linear interpolation on a <= 4 mm lattice,
    < 0.05 mm from the analytic map, see ``hepanav.phantoms.deformation``). Resamples
    pre-space masks onto the pair's post grid like a registration result does.
    """
    field = sitk.DisplacementFieldTransform(
        sitk.Cast(sitk.Image(case.displacement_post_to_pre), sitk.sitkVectorFloat64)
    )
    # ITK composite transforms apply the last transform added first: undo the motion,
    # then follow the deformation back to pre space.
    return sitk.CompositeTransform([field, pair.motion_to_case()])


def to_pair_post(pair: RealisticPair, points_case_post: np.ndarray) -> np.ndarray:
    """Case-post points (N, 3) moved by the pair's rigid motion: ``R (q - c) + c + t`` (mm)."""
    q = np.asarray(points_case_post, float)
    centre = np.asarray(pair.motion_centre_lps, float)
    return (q - centre) @ np.asarray(pair.rotation, float).T + centre + pair.shift_lps_mm


def tumour_surface_error(
    case: CaseData, pair: RealisticPair, transform: sitk.Transform, n_points: int = 2000
) -> dict[str, float]:
    """Registration error AT THE TUMOUR of a post -> pre ``transform``, mm.

    Pre points: ``n_points`` on the analytic tumour surface; their true post points:
    the case's analytic deformation, then the pair's rigid motion. The error is
    ``|transform(true post point) - pre point|``; returns ``mean`` and ``max``. Because
    a distance to a fixed surface is 1-Lipschitz, ``max`` bounds the MAM error the
    registration causes.
    """
    pre_points, _ = case.tumor.surface_mesh(n_points)
    post = to_pair_post(pair, case.deformation.to_post(pre_points))
    mapped = np.array([transform.TransformPoint(p) for p in post.tolist()])
    error = np.linalg.norm(mapped - pre_points, axis=1)
    return {"mean": float(error.mean()), "max": float(error.max())}
