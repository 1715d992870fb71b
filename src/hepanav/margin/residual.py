"""Residual tumour volume: the tumour mask's voxels outside the zone, and what bounds it.

The residual volume counts the analysis-grid voxels (:mod:`hepanav.margin.grid`) that
lie in the tumour MASK's voxel boxes (nearest-neighbour resampling through the
registration) and outside the zone MASK's voxel boxes, so a lesion wholly outside the zone counts
with its whole mask volume, as ``tumor_volume_ml`` does. The tumour field's 0.5 level
(the interpolated signed distance used for the surface and the margins) is NOT used
for this volume: it cuts the voxel corners and loses up to a third of a lesion only
a few voxels across (3 mm voxels, 8 mm radius: 1.47 ml of 2.40 ml).

Tumour outside the post image cannot be judged (no zone is known there): it is left
out of the residual and reported as ``unassessable_ml``; the residual is then a lower
bound. The same holds when residual tumour reaches the edge of the analysis grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from hepanav.imaging.geometry import voxel_to_lps


@dataclass
class Residual:
    """Residual tumour on the analysis grid.

    points_lps : ndarray, shape (M, 3)
        Centres (LPS mm) of the grid voxels in the tumour mask, outside the zone and
        inside the post (zone) image.
    voxel_ml : float
        Volume of one grid voxel, ml.
    unassessable_ml : float
        Tumour mask volume outside the zone's image (not judged), ml.
    clipped : bool
        Residual tumour reaches the edge of the analysis grid (more may lie beyond).
    """

    points_lps: np.ndarray
    voxel_ml: float
    unassessable_ml: float
    clipped: bool

    @property
    def volume_ml(self) -> float:
        """Residual volume counted (inside the post image and the grid), ml."""
        return len(self.points_lps) * self.voxel_ml

    @property
    def lower_bound(self) -> bool:
        """True when tumour beyond the post image or the grid may add to the residual."""
        return self.clipped or self.unassessable_ml > 0

    def note(self) -> str | None:
        """Why the residual volume is a lower bound (one sentence), or None."""
        why = []
        if self.unassessable_ml > 0:
            why.append(
                f"{self.unassessable_ml:.2f} ml of tumour lies outside the post image "
                "(no zone known there) and is not counted"
            )
        if self.clipped:
            why.append("residual tumour reaches the edge of the analysis grid")
        if not why:
            return None
        return f"residual tumour volume {self.volume_ml:.2f} ml is a LOWER BOUND: " + "; ".join(why)


def tumor_mask_on_grid(
    tumor: sitk.Image,
    grid: sitk.Image,
    transform: sitk.Transform | None,
    candidates_zyx: np.ndarray,
) -> np.ndarray:
    """The tumour mask's voxel boxes on ``grid`` (nearest neighbour), where ``candidates_zyx``.

    Resampled only on the index boxes of the connected parts of ``candidates_zyx``
    (bool, grid array order), so the cost follows the candidates, not the grid.
    ``transform`` maps grid points to tumour space (identity when None).

    Returns
    -------
    ndarray of bool, shape of ``candidates_zyx``
    """
    out = np.zeros(candidates_zyx.shape, dtype=bool)
    labels, _ = ndimage.label(candidates_zyx)
    identity = sitk.Transform() if transform is None else transform
    for box in ndimage.find_objects(labels):
        index = [int(box[a].start) for a in (2, 1, 0)]
        size = [int(box[a].stop - box[a].start) for a in (2, 1, 0)]
        part = sitk.RegionOfInterest(grid, size, index)
        nearest = sitk.Resample(
            tumor != 0, part, identity, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8
        )
        out[box] |= sitk.GetArrayFromImage(nearest).astype(bool) & candidates_zyx[box]
    return out


def residual_tumor(
    tumor: sitk.Image,
    ablation: sitk.Image,
    grid: sitk.Image,
    transform: sitk.Transform | None,
    tumor_field: np.ndarray,
    zone_field: np.ndarray,
) -> Residual:
    """Residual tumour: grid voxels in the tumour mask and outside the zone.

    Parameters
    ----------
    tumor : SimpleITK.Image
        Tumour mask (non-zero inside) on its own grid.
    ablation : SimpleITK.Image
        Ablation-zone mask; its image extent is the post field of view.
    grid : SimpleITK.Image
        Analysis grid (zone space).
    transform : SimpleITK.Transform or None
        Maps grid points to tumour space.
    tumor_field, zone_field : ndarray, shape (nz, ny, nx)
        ``0.5 +`` signed distance (mm) of tumour and zone on ``grid``
        (:func:`hepanav.margin.surface.mask_field`); only used to bound the search
        (tumour). The zone's inside is its mask's voxel boxes, not ``zone_field``.
    """
    # A point in a mask voxel's box lies within the voxel diagonal of the field's 0.5 level.
    reach = float(np.linalg.norm(tumor.GetSpacing()))
    in_tumor = tumor_mask_on_grid(tumor, grid, transform, tumor_field >= 0.5 - reach)
    # The zone as its mask's voxel boxes too (the grid subdivides the zone's voxels, so
    # nearest neighbour reproduces them exactly): the same definition as the written
    # ``segments/residual_tumor`` and as ``ablation_volume_ml``.
    inside = in_tumor & ~tumor_mask_on_grid(ablation, grid, None, in_tumor)
    index = np.argwhere(inside)[:, ::-1].astype(float)
    points = voxel_to_lps(grid, index) if len(index) else np.zeros((0, 3))
    voxel_ml = float(np.prod(grid.GetSpacing())) / 1000.0
    beyond = _outside_image(ablation, points)
    edges = np.zeros(inside.shape, dtype=bool)
    for axis in range(3):
        edges[(slice(None),) * axis + (0,)] = True
        edges[(slice(None),) * axis + (-1,)] = True
    return Residual(
        points_lps=points[~beyond],
        voxel_ml=voxel_ml,
        unassessable_ml=float(beyond.sum()) * voxel_ml,
        clipped=bool((inside & edges).any()),
    )


def _outside_image(image: sitk.Image, points_lps: np.ndarray) -> np.ndarray:
    """Points beyond the outer voxel faces of ``image``; bool, shape (N,)."""
    if not len(points_lps):
        return np.zeros(0, dtype=bool)
    from hepanav.imaging import lps_to_voxel

    index = lps_to_voxel(image, points_lps)
    size = np.asarray(image.GetSize(), dtype=float)
    return np.any((index < -0.5) | (index > size - 0.5), axis=1)
