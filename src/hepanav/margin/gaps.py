"""Holes and channels of unablated tissue in the ablation zone: kept, located and sized.

Issue 9 (Build 7): holes and channels in the zone are kept and reported (location,
size) instead of filled. The margin itself already keeps them (nothing is filled
before the surfaces are made); this module lists them, including those that do not
reach the tumour. (Their walls are zone surface like any other: a hole nearer to the
tumour than the zone's outer surface sets the margin there.) On the local analysis grid
(the zone within 40 mm of the tumour, sub-voxel steps):

- a **hole** is non-zone tissue enclosed by the zone (a cavity:
  :func:`scipy.ndimage.binary_fill_holes` fills it);
- a **channel** is non-zone tissue that a morphological closing of the zone with a
  ball of :data:`CLOSING_RADIUS_MM` fills but that is open to the outside: a tube or a
  cleft narrower than twice that radius running into or through the zone (e.g. along
  a vessel whose flow carried the heat away).

The closing is computed with Euclidean distance transforms using the grid spacing
(dilation then erosion by the same ball), so it is isotropic in millimetres on
anisotropic grids.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from hepanav.imaging import voxel_to_lps
from hepanav.margin.distance import distance_to_mesh
from hepanav.margin.grid import grown_index_box
from hepanav.margin.schema import ZoneGap
from hepanav.margin.surface import Mesh

# Channels up to 2 x 3 mm = 6 mm wide are found (the sweep: channels of 2-6 mm).
CLOSING_RADIUS_MM = 3.0
# Gaps smaller than this are the closing's fill of the surface staircase, not findings
# (a 1 mm radius ball holds 4.2 mm^3; the staircase fill of a smooth zone on 1 mm grids
# stays below 1 mm^3 per component in the tests).
MIN_GAP_MM3 = 3.0
# ... and gaps whose deepest point lies less than this outside the zone surface, or that
# are one grid step thin along an axis, are the notch the interpolated surface makes at
# the rim of a thick slice (a layer one sub-voxel high), not tissue: a 2 mm wide channel
# is 1 mm deep and two steps wide.
MIN_DEPTH_MM = 0.5


def zone_gaps(
    zone_field: np.ndarray,
    tumor_field: np.ndarray,
    grid: sitk.Image,
    tumor_mesh: Mesh | None = None,
    closing_radius_mm: float = CLOSING_RADIUS_MM,
    min_volume_mm3: float = MIN_GAP_MM3,
) -> list[ZoneGap]:
    """Holes and channels of the zone on the analysis grid, largest first.

    Parameters
    ----------
    zone_field, tumor_field : ndarray, shape (nz, ny, nx)
        ``0.5 +`` signed distance (mm, positive inside) of the zone and the tumour on
        ``grid`` (see :func:`hepanav.margin.surface.mask_field`); >= 0.5 is inside.
    grid : SimpleITK.Image
        Geometry of the fields (LPS mm).
    tumor_mesh : Mesh, optional
        Tumour surface (LPS mm): the distance to the tumour is measured to it exactly
        from the gap's voxel centres nearest to the tumour (else from the tumour field).
    closing_radius_mm : float
        Radius of the closing ball, mm; channels narrower than twice it are found.
    min_volume_mm3 : float
        Smaller components are left out (staircase fill of the closing).

    Returns
    -------
    list of ZoneGap
        Centroids in LPS mm, volumes in ml, extents in mm along the grid axes.
    """
    zone = zone_field >= 0.5
    if not zone.any() or zone.all():
        return []
    spacing_zyx = tuple(float(v) for v in reversed(grid.GetSpacing()))
    # Every gap lies within the closing radius of the zone's box: work on that box plus
    # a margin of non-zone voxels (or the grid's edge). Same result as on the whole grid:
    # the distances to the zone and to the dilation's outside are reached within the box,
    # and the box's outer layer is outside the dilation, connected to the grid's edge.
    offset, box = grown_index_box(zone, spacing_zyx, closing_radius_mm, pad_voxels=2)
    zone, zone_field, tumor_field = zone[box], zone_field[box], tumor_field[box]
    holes = ndimage.binary_fill_holes(zone) & ~zone
    dilated = ndimage.distance_transform_edt(~zone, sampling=spacing_zyx) <= closing_radius_mm
    if dilated.all():
        closed = dilated
    else:
        closed = ndimage.distance_transform_edt(dilated, sampling=spacing_zyx) > closing_radius_mm
    gaps = (closed | holes) & ~zone
    labels, count = ndimage.label(gaps, structure=np.ones((3, 3, 3), dtype=bool))
    if count == 0:
        return []
    voxel_mm3 = float(np.prod(spacing_zyx))
    # Outside the tumour, 0.5 - field is the distance to the tumour surface (mm).
    to_tumor = np.maximum(0.5 - tumor_field, 0.0)
    reach_mm = float(max(spacing_zyx))
    out = []
    for index, where in enumerate(ndimage.find_objects(labels), start=1):
        member = labels[where] == index
        n = int(np.count_nonzero(member))
        if n * voxel_mm3 < min_volume_mm3:
            continue
        if float(np.max(0.5 - zone_field[where][member])) < MIN_DEPTH_MM:
            continue
        if min(s.stop - s.start for s in where) < 2:
            continue  # one grid step thin: the waist between thick slices, see above
        ijk = np.argwhere(member) + np.array([s.start for s in where]) + offset  # (z, y, x)
        centre = voxel_to_lps(grid, ijk[:, ::-1].astype(float).mean(axis=0, keepdims=True))[0]
        extent = (ijk.max(axis=0) - ijk.min(axis=0) + 1)[::-1] * np.asarray(grid.GetSpacing())
        near = to_tumor[where][member]
        distance = float(near.min())
        if tumor_mesh is not None and not tumor_mesh.is_empty and distance > 0:
            order = np.argsort(near)[:64]
            points = voxel_to_lps(grid, ijk[order][:, ::-1].astype(float))
            distance = float(distance_to_mesh(points, tumor_mesh)[0].min())
        out.append(
            ZoneGap(
                kind="hole" if bool(np.all(holes[where][member])) else "channel",
                centroid_lps_mm=tuple(float(v) for v in centre),
                volume_ml=n * voxel_mm3 / 1000.0,
                extent_mm=tuple(float(v) for v in extent),
                reaches_tumor=distance <= reach_mm,
                distance_to_tumor_mm=distance if distance > reach_mm else 0.0,
            )
        )
    return sorted(out, key=lambda g: -g.volume_ml)
