"""Sub-voxel surfaces of masks, in physical space (LPS, mm).

A binary mask is a set of voxels. Its surface is the zero level of a signed
distance interpolated between voxel centres ("shape-based interpolation", Raya &
Udupa, IEEE TMI 1990; Herman, Zheng & Bucholtz, IEEE CG&A 1992):

1. On the mask's own grid, the signed distance at each voxel centre is half the
   difference of the Euclidean distances (with the voxel spacing, per axis) to the
   nearest outside and the nearest inside voxel centre, so it is zero half way
   between an inside and an outside centre along every axis.
2. Along the FINE axes only (spacing within 1.6x of the finest) it is smoothed by
   a Gaussian of half a voxel, which removes the pixel zig-zag; along a thick axis
   (5 mm slices) nothing is smoothed, so a thin object seen in one slice keeps its
   in-plane outline and gets a lens-shaped extent between the slices.
3. It is resampled (trilinear, through the registration transform when given) onto
   the local analysis grid, and the surface is extracted by marching cubes.

Nothing wider than half an in-plane pixel is blurred in any direction, so what
the pixels resolve survives: a 2 mm channel or a 3 mm island on 0.6 x 0.6 x 5 mm
CT is kept, and a 5 mm tumour on 5 mm slices is measured, not refused. (Blurring
the occupancy with one coarsest-voxel-wide isotropic Gaussian, as before, erased
them.) The fields of this module are ``0.5 + signed distance (mm)``: 0.5 is the
surface, >= 0.5 inside, and the value tells how deep a point lies.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage, optimize, sparse, special, stats
from scipy.spatial import cKDTree
from skimage.measure import find_contours, marching_cubes

from hepanav.imaging import lps_to_voxel, voxel_to_lps
from hepanav.margin.caps import cap_depth, outline_radius

# Gaussian width (fraction of the voxel size) of the occupancy blur along the fine axes
# (0.6 damps the staircase ripple below 1e-3), what counts as fine (spacing within
# THICK_RATIO of the finest axis), and the occupancy band |occ - 0.5| < EDGE_BAND in
# which the blurred occupancy, not the voxel-centre distance, gives the distance.
SMOOTH_PER_VOXEL = 1.0
THICK_RATIO = 1.6
# Sub-sample step (mm) along thick axes, where the surface is placed by shape.
THICK_STEP_MM = 1.0
EDGE_BAND = 0.49
# Signed distance (mm) given to grid points beyond the mask's neighbourhood.
FAR_MM = 1000.0
# Resampling through a registration transform (``resample_through``): exact within this
# signed distance (mm) of the surface; elsewhere through the transform's displacement
# field on every ~FIELD_STEP_MM of the grid's nodes, which must agree with the exact
# resampling within FIELD_TOLERANCE_MM (mm) on the band's box, else all is exact; grids
# below FIELD_MIN_POINTS points are always resampled exactly.
EXACT_BAND_MM = 3.0
FIELD_STEP_MM = 2.0
FIELD_TOLERANCE_MM = 0.05
FIELD_MIN_POINTS = 100_000
# Smoothest separating signed distance on all-fine grids (``_smoothest_separating``):
# band half-width (voxels of the coarsest axis) whose values are re-estimated, weight of
# the pull towards the Gaussian field (mm^-4), the depth (mm) every voxel keeps on its
# side, the partial-volume fractions taken as certain (<= SURE or >= 1 - SURE), and the
# local thickness (mm, both sides) below which the Gaussian field is kept (LO) and above
# which the smoothest one is taken whole (HI): narrow channels, islands and holes keep
# the Gaussian field, which the bounds of tests/test_margin_geometry.py were set on.
SEPARATOR_BAND_VOXELS = 4.0
SEPARATOR_PULL = 0.1
SEPARATOR_DEPTH_MM = 0.02
SEPARATOR_SURE = 0.2
SEPARATOR_THICK_MM = (3.0, 5.0)
# Relative residual at which the conjugate gradients stop.
SEPARATOR_TOL = 1e-4
# Coarsest voxel (mm) on which the smoothest separating field is used. It was validated on
# 0.8-1.5 mm grids; on 3 mm voxels the voxel bounds leave +/-1.5 mm of freedom and it
# shrinks convex shapes (bench.pair_mam_where --spheres: ball r 10 on 3 mm, mean radial
# error -0.95 mm against -0.76 without; realistic pair 1 of tests/test_margin_pairs.py,
# 3 mm pre grid: measurement-only MAM error +0.61 mm, over its 0.6 mm bound).
SEPARATOR_MAX_SPACING_MM = 1.5
# Edge fractions read from a noisy CT (segmentation.fraction) carry its noise: about
# noise / contrast ~ 12 / 45 HU ~ 0.3 voxel per voxel, and the mask that decides each
# voxel's side flips edge voxels with it; a minimum over the surface (the MAM) collects
# the tails. On all-fine grids (as the smoothest separating field) their signed distance
# is regularised along the surface by a curvature-corrected Gaussian of this many voxels
# (of the coarsest axis; ``_regularise_fraction_surface``): one voxel damps what the
# grid cannot sample (ripples shorter than two voxels, gain <= 0.05) and keeps 65 % of a
# four-voxel ripple; where the mask or its outside is thin (``SEPARATOR_THICK_MM``) the
# field is kept. 0 disables it.
FRACTION_SURFACE_SIGMA_VOXELS = 1.0
# The same regularisation of the fraction surface on coarse grids whose axes are all fine
# (isotropic 2-5 mm voxels; the smoothest separating field stays off there): per-voxel
# fractions of a 3 mm scan carry about 13 / 45 HU ~ 0.3 voxel = 0.9 mm of noise each and
# the minimum over ~300 surface voxels collects -2 to -3 SD of it (issue 12, 3 mm scan,
# dev 21-23: MAM 2.2-2.6 for 3.6-4.1 mm). Concentric spheres 15 / 19 mm on 3 mm voxels
# segmented from the CT (tests/test_segmentation_spikes.py): MAM 3.29 -> 3.75 (true 4.0).
FRACTION_SURFACE_COARSE = True
# Coarse grids (every voxel side above SEPARATOR_MAX_SPACING_MM, thick axes or not): the
# blur's curvature shrink is corrected (``_curvature_corrected``), with the curvature read at
# CURVATURE_SCALE times the occupancy blur and left out beyond CURVATURE_MAX / sigma.
# OFF by default: it makes the surfaces unbiased (balls, ellipsoids, cavities on 2-5 mm
# voxels) but the MAM, a minimum over two surfaces that still ripple by about +-0.25 voxel,
# then reads low on some realistic pairs (docs/margin.md, "Curvature-corrected coarse
# surfaces"); tests/test_margin_pairs.py pair 0 would read -0.64 mm against its 0.6 bound.
CURVATURE_CORRECTION = False
# The same correction for partial-volume fractions (``signed_distance(..., fraction)``, e.g.
# the edge fractions of a segmentation), on grids whose finest voxel side is above
# FRACTION_CURVATURE_MIN_SPACING_MM. The fractions' surface is the plane-edge inversion of
# their one-voxel blur, which lies sigma^2 / R inside a ball: box-averaged balls (exact
# fractions, bench.frac_bias_shapes, 2026-12-01) r 10 / 15 mm on 3 mm voxels -1.00 / -0.67
# mm mean radial error, r 10 on 1.5 mm -0.26; corrected -0.11 / -0.10 and -0.03. OFF by
# default: that shrink of the tumour offsets the zone segmentation reading 0.5-0.9 mm small
# on the 3 mm scan and the fractions' noise tail, which a minimum collects; with it the
# evaluation's MAM within 1 mm falls from 26/28 to 25/28 and the realistic pairs' MAM
# (true masks) reads low by 0.77 mm on average (docs/segmentation.md, "Edge-fraction bias").
FRACTION_CURVATURE_CORRECTION = False
FRACTION_CURVATURE_MIN_SPACING_MM = 0.0
# With it, on grids with thick axes, fractions are read as in-plane fractions
# (``_in_plane_fraction``): their deviation from 0.5 scaled by at most
# FRACTION_THROUGH_PLANE_MAX.
FRACTION_THROUGH_PLANE_MAX = 20.0
CURVATURE_SCALE = 1.5
CURVATURE_MAX = (0.5, 0.7)
# Coarse grids (every voxel side above SEPARATOR_MAX_SPACING_MM), binary masks: within
# LOCAL_SPHERE_BAND_VOXELS (coarsest axis) of the surface, the signed distance from each
# voxel centre to a sphere fitted in a window of LOCAL_SPHERE_WINDOW_MM around it to the
# midpoints of the lattice edges that join an inside and an outside voxel centre and to
# their normals (weight LOCAL_SPHERE_NORMAL_WEIGHT; ``_local_sphere_field``); midpoints
# whose normal turns by more than 60 degrees from the centre's are left out (the other
# wall of a shell or a channel). Where the mask or its outside is thinner than
# LOCAL_SPHERE_THIN_VOXELS (coarsest voxels; blended between the two) the field of the
# occupancy blur is kept, so one-voxel objects and gaps keep their bounds.
LOCAL_SPHERE = True
LOCAL_SPHERE_WINDOW_MM = 13.0
LOCAL_SPHERE_BAND_VOXELS = 1.5
LOCAL_SPHERE_NORMAL_WEIGHT = 10.0
LOCAL_SPHERE_NORMAL_AGREE = 0.5
LOCAL_SPHERE_THIN_VOXELS = (0.5, 1.0)
# Caps between thick slices (``_cap_depth``, :mod:`hepanav.margin.caps`): the sections'
# squared radius continued as a quadratic through the last three sections (exact for
# ellipsoids), the column's relative radius from the outline its depth is measured to.
# False: the sphere through the last two sections, the column at the pixel-area radius
# minus its depth (before issue 12's pair 4).
CAP_SECTIONS = True
CAP_SECTIONS_MAX = 3


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh in LPS millimetres.

    Attributes
    ----------
    vertices : ndarray, shape (N, 3)
        Vertex positions, LPS mm.
    faces : ndarray, shape (F, 3)
        Vertex indices of each triangle.
    vertex_area : ndarray, shape (N,)
        Area carried by each vertex (a third of each incident triangle), mm^2.
    """

    vertices: np.ndarray
    faces: np.ndarray
    vertex_area: np.ndarray

    @property
    def area_mm2(self) -> float:
        """Total surface area in mm^2."""
        return float(self.vertex_area.sum())

    @property
    def is_empty(self) -> bool:
        """True when the mesh has no triangle."""
        return self.faces.shape[0] == 0


def smoothing_sigma_mm(mask: sitk.Image) -> np.ndarray:
    """Occupancy blur (mm) used for ``mask`` along its axes (x, y, z); 0 along thick axes."""
    return _fine_sigma_mm(np.asarray(mask.GetSpacing(), dtype=float))


def mask_field(
    mask: sitk.Image,
    grid: sitk.Image,
    transform: sitk.Transform | None = None,
    occupancy: sitk.Image | None = None,
) -> np.ndarray:
    """Interpolated signed distance of ``mask`` on ``grid``, as ``0.5 + distance`` (mm).

    Parameters
    ----------
    mask : SimpleITK.Image
        Binary mask (non-zero = inside) on its own grid.
    grid : SimpleITK.Image
        Local analysis grid (see :func:`hepanav.margin.grid.subdivided_grid`).
    transform : SimpleITK.Transform, optional
        Maps grid points to ``mask`` space (ITK resampling convention), e.g. the
        post -> pre registration transform. Identity when omitted.
    occupancy : SimpleITK.Image, optional
        Partial-volume fraction (0..1, float) of the same object on ``mask``'s grid or
        on a box of it (same spacing and direction, origin on one of its voxels; e.g.
        the edge fractions of a segmentation, :mod:`hepanav.segmentation.fraction`),
        such as the linear resampling of a binary mask a reader regularised; ``mask`` is
        then ``occupancy >= 0.5`` (outside the box: ``mask`` itself, as 0/1). The
        surface is placed from the fractions (see :func:`signed_distance`) instead of
        from the thresholded voxels.

    Returns
    -------
    ndarray, shape (nz, ny, nx), float32
        ``0.5 +`` the signed distance (mm, positive inside) in grid array order;
        0.5 is the surface. Outside the mask's image the mask counts as empty, so a
        mask touching the image border gets a closed surface there (see
        :func:`hepanav.margin.border.border_cut_fraction` for what is reported).
    """
    crop, lo = _mask_crop(mask, grid, transform)
    fraction = None
    if occupancy is not None:
        offset = occupancy_offset(occupancy, mask)
        fraction = crop.astype(np.float32)
        inner = _crop_array(occupancy, lo - offset, crop.shape, np.nan)
        known = ~np.isnan(inner)
        fraction[known] = np.clip(inner[known], 0, 1)
        crop = fraction >= 0.5
    spacing = np.asarray(mask.GetSpacing(), dtype=float)
    sdf = signed_distance(crop, spacing, fraction)
    sdf, factors = across_thick_axes(sdf, crop, spacing)
    image = sitk.GetImageFromArray(sdf.astype(np.float32))
    image.SetSpacing((spacing / factors).tolist())
    image.SetDirection(mask.GetDirection())
    first = np.asarray(lo, float) - (factors // 2) / factors
    image.SetOrigin(mask.TransformContinuousIndexToPhysicalPoint(first.tolist()))
    if transform is None:
        out = sitk.Resample(
            image, grid, sitk.Transform(), sitk.sitkLinear, -FAR_MM, sitk.sitkFloat32
        )
        return 0.5 + sitk.GetArrayFromImage(out)
    return 0.5 + resample_through(image, grid, transform)


def _resample_exact(
    image: sitk.Image, grid: sitk.Image, transform: sitk.Transform, lo=None, size=None
) -> np.ndarray:
    """``image`` resampled (trilinear, default ``-FAR_MM``) through ``transform`` onto
    ``grid`` or onto its index box ``lo`` (x, y, z) of ``size``; float32, (z, y, x)."""
    lo = np.zeros(3, int) if lo is None else np.asarray(lo, int)
    size = np.asarray(grid.GetSize() if size is None else size, int)
    out = sitk.Resample(
        image,
        [int(n) for n in size],
        transform,
        sitk.sitkLinear,
        grid.TransformIndexToPhysicalPoint([int(i) for i in lo]),
        grid.GetSpacing(),
        grid.GetDirection(),
        -FAR_MM,
        sitk.sitkFloat32,
    )
    return sitk.GetArrayFromImage(out)


def resample_through(image: sitk.Image, grid: sitk.Image, transform: sitk.Transform) -> np.ndarray:
    """A signed distance (mm) resampled through a registration transform onto ``grid``.

    Same values as ``sitk.Resample(image, grid, transform, linear, -FAR_MM)`` within
    ``EXACT_BAND_MM`` of the surface (and on the index box holding that band), for a
    fraction of the cost: a composite of B-splines costs ~2 us a point, and the
    analysis grid holds up to ``MAX_GRID_VOXELS`` (6 M) points. Elsewhere the transform
    is replaced by its displacement field sampled every ~``FIELD_STEP_MM`` on the grid's
    own nodes (trilinear in between); those values are only compared with the surface
    level 0.5 (inside / outside, shells, residual voxels) or used to order voxels by
    their distance to the tumour (:func:`hepanav.margin.gaps.zone_gaps`, which then
    measures the distance on the mesh), so they need no more than the right side.

    The field's error is checked where both are known: on the band's box the exact
    and the field resampling must agree within ``FIELD_TOLERANCE_MM`` (a few hundredths
    of ``EXACT_BAND_MM``), else the whole grid is resampled exactly.

    Parameters
    ----------
    image : SimpleITK.Image
        Signed distance (mm, positive inside) on the mask's own (sub-sampled) grid.
    grid : SimpleITK.Image
        Analysis grid.
    transform : SimpleITK.Transform
        Maps grid points to ``image`` space (ITK resampling convention).

    Returns
    -------
    ndarray, shape (nz, ny, nx), float32
        The signed distance on ``grid`` (mm), ``-FAR_MM`` beyond ``image``.
    """
    size = np.asarray(grid.GetSize(), int)
    spacing = np.asarray(grid.GetSpacing(), float)
    stride = np.maximum(1, np.floor(FIELD_STEP_MM / spacing + 1e-9)).astype(int)
    if np.all(stride == 1) or np.prod(size) < FIELD_MIN_POINTS:
        return _resample_exact(image, grid, transform)
    # Field nodes on grid nodes 0, s, 2s, ... up to (at least) the last grid node.
    nodes = (size - 1 + stride - 1) // stride + 1
    field = sitk.TransformToDisplacementField(
        transform,
        sitk.sitkVectorFloat64,
        [int(n) for n in nodes],
        grid.GetOrigin(),
        (spacing * stride).tolist(),
        grid.GetDirection(),
    )
    approx = _resample_exact(image, grid, sitk.DisplacementFieldTransform(field))
    band = np.abs(approx) < EXACT_BAND_MM + FIELD_TOLERANCE_MM
    if not band.any():
        return _resample_exact(image, grid, transform)
    where = np.argwhere(band)  # (z, y, x)
    lo = np.maximum(where.min(axis=0)[::-1] - 1, 0)
    hi = np.minimum(where.max(axis=0)[::-1] + 1, size - 1)
    exact = _resample_exact(image, grid, transform, lo, hi - lo + 1)
    box = tuple(slice(int(lo[a]), int(hi[a]) + 1) for a in (2, 1, 0))
    if float(np.max(np.abs(exact - approx[box]))) > FIELD_TOLERANCE_MM:
        return _resample_exact(image, grid, transform)
    approx[box] = exact
    return approx


def occupancy_offset(occupancy: sitk.Image, mask: sitk.Image) -> np.ndarray:
    """Index (x, y, z) of ``occupancy``'s first voxel on ``mask``'s grid.

    Raises
    ------
    ValueError
        When ``occupancy`` is not on ``mask``'s grid or a box of it (other spacing or
        direction, or voxels between ``mask``'s voxel centres).
    """
    same = np.allclose(occupancy.GetSpacing(), mask.GetSpacing(), rtol=1e-5) and np.allclose(
        occupancy.GetDirection(), mask.GetDirection(), atol=1e-5
    )
    index = np.asarray(mask.TransformPhysicalPointToContinuousIndex(occupancy.GetOrigin()))
    offset = np.rint(index).astype(int)
    if not same or np.any(np.abs(index - offset) > 1e-3):
        raise ValueError("the occupancy is not on the mask's grid or a box of it")
    return offset


def across_thick_axes(
    sdf: np.ndarray, inside: np.ndarray, spacing_xyz: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The signed distance sub-sampled along thick axes, surfaces placed by shape (mm).

    Along each thick axis (spacing above ``THICK_RATIO`` times the finest), every slice
    is cut into an odd number of ~1 mm steps (``THICK_STEP_MM``; a sub-sample sits on each
    slice centre). Between two slices the signed distance is linear, except in the
    columns where the surface is crossed between the two slices: there the crossing is
    placed from the slices' in-plane contours (sub-pixel, see ``_in_plane_distance``):

    - when both slices hold a contour, and a third slice beyond the inside one does
      too, on a circle through the three contour positions (in the plane of the column
      and its in-plane contour normal, which must agree between the slices, so a hole
      and the outer boundary are never mixed): exact for spheres, which linear
      interpolation cuts by their sagitta;
    - at a cap (the next slice holds no contour), where the sections, continued from
      the last three (squared equivalent radius quadratic in the slice position, from
      their pixel areas; the sphere through the last two when only two exist), shrink
      past the column's relative radius in the last section (its in-plane depth
      against the radius of the outline it is measured to): exact for ellipsoids and
      spheres (:mod:`hepanav.margin.caps`; ``CAP_SECTIONS``), where the voxel-face rule
      puts every cap half a slice beyond the last slice whatever the contour says
      (issue 9: convex zones on 5 mm slices read 2.3 mm low).

    A value that stays linear through the moved crossing keeps the crossing exact under
    the later trilinear resampling. Channels along the slice axis (equal contours) and
    lens-shaped objects seen in one slice are unchanged.

    Returns
    -------
    sdf : ndarray
        Sub-sampled signed distance (mm), array order (z, y, x).
    factors : ndarray of int, shape (3,)
        Sub-sampling factor along x, y, z (1 along fine axes); the first sub-sample of
        axis ``a`` lies ``(factor // 2) / factor`` voxels before the first voxel centre.
    """
    factors = np.ones(3, dtype=int)
    thick = spacing_xyz > THICK_RATIO * spacing_xyz.min()
    for axis_xyz in np.flatnonzero(thick):
        a = 2 - axis_xyz
        n = int(np.ceil(spacing_xyz[axis_xyz] / THICK_STEP_MM))
        n += 1 - n % 2
        if n < 3 or sdf.shape[a] < 2:
            continue
        factors[axis_xyz] = n
        plane = np.delete(spacing_xyz[::-1], a)
        v = np.moveaxis(sdf, a, 0)
        d2, towards = _in_plane_distance(np.moveaxis(inside, a, 0), v, plane)
        up = _upsample(v, d2, towards, n, float(spacing_xyz[axis_xyz]), plane)
        sdf = np.moveaxis(up, 0, a)
    return sdf, factors


def _in_plane_distance(
    inside: np.ndarray, sdf: np.ndarray, plane: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per slice (axis 0): signed in-plane distance (mm) to the slice's sub-pixel contour
    (the zero line of ``sdf`` in that slice, by marching squares); NaN when the slice
    holds no contour (all in or all out)."""
    out = np.full(inside.shape, np.nan)
    towards = np.zeros((*inside.shape, 2))
    grid = np.indices(inside.shape[1:]).reshape(2, -1).T * plane
    for k in range(inside.shape[0]):
        cur = inside[k]
        if not cur.any() or cur.all():
            continue
        lines = find_contours(np.pad(sdf[k], 1, mode="edge"), 0.0)
        if not lines:
            continue
        pts = np.concatenate([_densify(line - 1.0) for line in lines]) * plane
        dist, nearest = cKDTree(pts).query(grid)
        out[k] = np.where(cur, 1.0, -1.0) * dist.reshape(cur.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            unit = (pts[nearest] - grid) / dist[:, None]
        towards[k] = np.nan_to_num(unit).reshape(*cur.shape, 2)
    return out, towards


def _densify(line: np.ndarray, step: float = 0.25) -> np.ndarray:
    """Points along a polyline (pixel units) at most ``step`` apart."""
    seg = np.diff(line, axis=0)
    count = np.maximum(np.ceil(np.linalg.norm(seg, axis=1) / step).astype(int), 1)
    index = np.repeat(np.arange(len(seg)), count)
    frac = np.concatenate([np.arange(c) / c for c in count]) if len(seg) else np.zeros(0)
    return np.concatenate([line[index] + seg[index] * frac[:, None], line[-1:]])


def _outside_region_at_contour(
    inside: np.ndarray, foot: np.ndarray, plane: np.ndarray
) -> np.ndarray:
    """3D label of the outside region next to each pixel's nearest contour point.

    ``foot``: (k, ny, nx, 2) in-plane vector (mm) from each pixel to its nearest contour
    point. The outside is labelled in 3D (face connectivity); the label is read at the
    outside pixel nearest to the contour point.
    """
    labels, _ = ndimage.label(~inside)
    out = np.zeros(inside.shape, dtype=np.int64)
    shape = np.asarray(inside.shape[1:])
    grid = np.indices(inside.shape[1:]).transpose(1, 2, 0).astype(float)
    for k in range(inside.shape[0]):
        if inside[k].all() or not inside[k].any():
            continue
        _, nearest = ndimage.distance_transform_edt(inside[k], return_indices=True)
        at = np.rint(grid + foot[k] / plane).astype(int)
        at = np.clip(at, 0, shape - 1)
        iy, ix = nearest[0][at[..., 0], at[..., 1]], nearest[1][at[..., 0], at[..., 1]]
        out[k] = labels[k][iy, ix]
    return out


def _component_depth(d: np.ndarray, pixel_mm2: float) -> np.ndarray:
    """In-plane radius (mm) of the connected component nearest to each pixel."""
    inside = np.isfinite(d) & (d > 0)
    labels, count = ndimage.label(inside)
    if count == 0:
        return np.full(d.shape, np.nan)
    # equivalent-area radius: the pixel count is an unbiased estimate of the area of
    # voxel-centre sampled contours (the maximum depth of a pixel grid is not)
    counts = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    deepest = np.sqrt(counts * pixel_mm2 / np.pi)
    # every pixel takes the component of its nearest inside pixel
    _, nearest = ndimage.distance_transform_edt(~inside, return_indices=True)
    return deepest[labels[tuple(nearest)] - 1]


def _cap_depth(
    d2: np.ndarray, a: int, c: int, pixel: float, plane: np.ndarray, h: float
) -> np.ndarray:
    """Per pixel of slice ``a`` (the last holding the object; ``c`` one slice deeper):
    how far (mm) beyond ``a`` the column leaves it (:func:`hepanav.margin.caps.cap_depth`,
    sections ``a``, ``c`` and, when it holds one, ``c2`` two slices deeper)."""
    step = c - a
    radii = [_component_depth(d2[a], pixel)]
    for j in range(1, CAP_SECTIONS_MAX):
        s = a + j * step
        if not 0 <= s < d2.shape[0]:
            break
        radii.append(_component_depth(d2[s], pixel))
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.clip(1.0 - d2[a] / outline_radius(d2[a], plane), 0.0, 1.0)
    return cap_depth(radii, q, h)


def _circle_crossing(s0, z0, s1, z1, s2, z2, lo, hi):
    """z in (lo, hi) where the circle through (s_i, z_i) meets s = 0; NaN if none/degenerate."""
    ax, ay = s1 - s0, z1 - z0
    bx, by = s2 - s0, z2 - z0
    det = 2.0 * (ax * by - ay * bx)
    with np.errstate(divide="ignore", invalid="ignore"):
        cx = (by * (ax**2 + ay**2) - ay * (bx**2 + by**2)) / det
        cy = (ax * (bx**2 + by**2) - bx * (ax**2 + ay**2)) / det
        r2 = cx**2 + cy**2
        cx, cy = cx + s0, cy + z0
        disc = r2 - cx**2
        root = np.sqrt(np.where(disc >= 0, disc, np.nan))
        mid, span = 0.5 * (lo + hi), hi - lo
        # the root nearest to the segment, clipped into it (the slices' signs say the
        # surface is crossed there; a fit through noisy depths may put it just beyond)
        z1, z2 = cy - root, cy + root
        z = np.where(np.abs(z1 - mid) <= np.abs(z2 - mid), z1, z2)
        out = np.clip(z, lo + 0.03 * span, hi - 0.03 * span)
    return out


def _upsample(
    v: np.ndarray,
    d2: np.ndarray,
    towards: np.ndarray,
    n: int,
    h: float,
    plane: np.ndarray,
) -> np.ndarray:
    """Sub-sample axis 0 (slices ``h`` mm apart) by odd ``n``; see :func:`across_thick_axes`.

    ``v``: signed distance at the slice centres; ``d2``: signed in-plane distance to each
    slice's contour (NaN where the slice has none); ``towards``: unit in-plane vector to
    the nearest contour point; ``plane``: in-plane pixel size (mm, axes 1 and 2).
    """
    k = v.shape[0]
    zc = np.arange(k) * h
    pixel = float(np.prod(plane))
    normal = towards * np.sign(np.nan_to_num(d2))[..., None]
    inside = v > 0
    foot = towards * np.abs(np.nan_to_num(d2))[..., None]  # to the nearest contour point
    region = _outside_region_at_contour(inside, foot, plane)
    shift = np.full((k - 1, *v.shape[1:]), np.nan)  # crossing, fraction of the segment
    for i in range(k - 1):
        for up in (True, False):
            a, b = (i, i + 1) if up else (i + 1, i)  # a inside, b outside
            c = a - (b - a)  # the slice beyond a, away from b
            cand = inside[a] & ~inside[b]
            if not cand.any():
                continue
            lo, hi = min(zc[a], zc[b]), max(zc[a], zc[b])
            z = np.full(v.shape[1:], np.nan)
            if 0 <= c < k:
                # the slices' nearest contour points must belong to one surface: their
                # outward normals (towards the contour, flipped outside) agree
                same = (normal[a] * normal[c]).sum(-1) > 0.5
                facing = (normal[a] * normal[b]).sum(-1) > 0.5
                ok = cand & np.isfinite(d2[c]) & np.isfinite(d2[a]) & np.isfinite(d2[b])
                # ... and border the same 3D-connected outside region (a hole or an
                # island of the mask is never fitted together with its outer boundary)
                near = (region[a] == region[b]) & (region[a] == region[c])
                ok &= same & facing & near
                crossing = _circle_crossing(d2[c], zc[c], d2[a], zc[a], d2[b], zc[b], lo, hi)
                z = np.where(ok, crossing, z)
                empty = cand & np.isfinite(d2[c]) & np.isfinite(d2[a]) & ~np.isfinite(d2[b])
                # a cap: the sphere through the last two contours (in-plane radii from
                # the components' areas), the column at its distance from the axis
                if empty.any() and CAP_SECTIONS:
                    zz = zc[a] + np.sign(zc[b] - zc[a]) * _cap_depth(d2, a, c, pixel, plane, h)
                elif empty.any():
                    ra, rc = _component_depth(d2[a], pixel), _component_depth(d2[c], pixel)
                    rho = np.maximum(ra - d2[a], 0.0)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        off = (rc**2 + h**2 - ra**2) / (2 * h)  # from slice a to the centre
                        big = ra**2 + off**2 - rho**2
                        zz = zc[a] + np.sign(zc[b] - zc[a]) * (np.sqrt(np.maximum(big, 0)) - off)
                if empty.any():
                    # a column outside the fitted sphere although its voxel is inside
                    # (a rim column) gets the crossing just beyond its slice
                    zz = np.clip(zz, lo + 0.03 * h, hi - 0.03 * h)
                    ok = empty & np.isfinite(zz)
                    z = np.where(ok & np.isnan(z), zz, z)
            frac = (z - zc[i]) / h
            shift[i] = np.where(np.isfinite(frac), frac, shift[i])
    out = np.empty((k * n, *v.shape[1:]), dtype=np.float64)
    half = n // 2
    for j in range(k * n):
        x = (j - half) / n
        i = int(np.clip(np.floor(x), 0, k - 2))
        t = float(np.clip(x - i, 0.0, 1.0)) if 0 <= x <= k - 1 else None
        if t is None:
            out[j] = v[0] if x < 0 else v[-1]
            continue
        p1, p2 = v[i], v[i + 1]
        lin = (1 - t) * p1 + t * p2
        c = shift[i]
        ok = np.isfinite(c) & ((p1 > 0) != (p2 > 0))
        cc = np.clip(np.nan_to_num(c, nan=0.5), 1e-3, 1 - 1e-3)
        # one straight line through the crossing, equal to the value at the inside end:
        # linear interpolation between sub-samples then puts the surface exactly there
        moved = np.where(p1 > 0, p1 * (cc - t) / cc, p2 * (t - cc) / (1 - cc))
        out[j] = np.where(ok, moved, lin)
    return out


def signed_distance(
    inside: np.ndarray, spacing_xyz: np.ndarray, fraction: np.ndarray | None = None
) -> np.ndarray:
    """Sub-voxel signed distance (mm, positive inside) at the voxel centres of a mask.

    Parameters
    ----------
    inside : ndarray of bool, shape (nz, ny, nx)
        The mask on its own grid.
    spacing_xyz : ndarray, shape (3,)
        Voxel size (x, y, z), mm.
    fraction : ndarray of float, shape (nz, ny, nx), optional
        Partial-volume fraction (0..1) of each voxel, with ``inside == fraction >= 0.5``
        (a mask a reader resampled). It is blurred instead of the 0/1 voxels, and a
        voxel the blur flips is kept on its side only as deep as its fraction says
        (``|fraction - 0.5|`` voxels, at most a quarter), not a quarter voxel.

    Returns
    -------
    ndarray, shape (nz, ny, nx), float
        Near the surface (within about two blur widths): from the occupancy blurred by
        a Gaussian of ``SMOOTH_PER_VOXEL`` voxels along the fine axes only, turned into
        mm by inverting the blurred plane edge (``d = sigma sqrt(2) erfinv(2 occ - 1)``);
        this places the surface with sub-pixel accuracy in the plane. With
        ``CURVATURE_CORRECTION`` (off by default), on coarse grids (every voxel side
        above ``SEPARATOR_MAX_SPACING_MM``) the inversion is corrected for the blur's
        curvature shrink (:func:`_curvature_corrected`: a ball of radius 10 mm on 3 mm
        voxels is no longer 0.6-0.8 mm small, a concave wall no longer grown by as
        much); finer grids are measured the same either way.
        Elsewhere: the distance to the nearest face between an inside and an outside
        voxel (see ``_box_distance``), so that the linear interpolation across thick
        slices gives a lens-shaped extent (shape-based interpolation). Both are in
        mm, positive inside and negative outside. When every axis is fine and no voxel
        is coarser than ``SEPARATOR_MAX_SPACING_MM``, the band near the surface is then
        replaced by the smoothest field that keeps every voxel
        on its side (:func:`_smoothest_separating`), except where the mask or its
        outside is thin. When every voxel side is above ``SEPARATOR_MAX_SPACING_MM``
        (2-5 mm voxels) and no ``fraction`` is given, the values within
        ``LOCAL_SPHERE_BAND_VOXELS`` of the surface are the distances to spheres fitted
        locally to the voxels' side changes (:func:`_local_sphere_field`, ``LOCAL_SPHERE``).
        With a ``fraction`` and ``FRACTION_CURVATURE_CORRECTION`` (off by default) the
        inversion is curvature-corrected on every grid (:func:`_curvature_corrected`) and
        thick-slice fractions are first read in plane (:func:`_in_plane_fraction`).
    """
    if not inside.any():
        return np.full(inside.shape, -FAR_MM)
    zyx = np.asarray(spacing_xyz, float)[::-1]
    sdf = _box_distance(inside, zyx) - _box_distance(~inside, zyx)
    sigma_mm = _fine_sigma_mm(np.asarray(spacing_xyz, float))
    if not np.any(sigma_mm > 0):
        return sdf
    fine_path = np.all(sigma_mm > 0) and float(np.max(zyx)) <= SEPARATOR_MAX_SPACING_MM
    coarse = CURVATURE_CORRECTION and float(np.min(zyx)) > SEPARATOR_MAX_SPACING_MM
    if fraction is not None and FRACTION_CURVATURE_CORRECTION:
        coarse = float(np.min(zyx)) > FRACTION_CURVATURE_MIN_SPACING_MM
    if fraction is not None and FRACTION_CURVATURE_CORRECTION and not np.all(sigma_mm > 0):
        fraction = _in_plane_fraction(fraction, inside, zyx, sigma_mm[::-1] > 0)
    source = inside.astype(np.float32) if fraction is None else fraction.astype(np.float32)
    occupancy = ndimage.gaussian_filter(
        source, (sigma_mm / np.asarray(spacing_xyz, float))[::-1], mode="nearest"
    )
    band = np.abs(occupancy - 0.5) < EDGE_BAND
    sigma = float(sigma_mm[sigma_mm > 0].mean())
    if not coarse:
        # A plane edge blurred by sigma reads occ = Phi(d / sigma): invert it exactly.
        sdf[band] = sigma * np.sqrt(2.0) * special.erfinv(2.0 * occupancy[band] - 1.0)
    else:
        sdf[band] = _curvature_corrected(
            source, occupancy, band, np.asarray(spacing_xyz, float), sigma_mm
        )
    # The blur must not flip a voxel: a one-pixel object or a one-pixel gap (which the
    # blur would erase) keeps its centre on its own side, a quarter voxel deep.
    quarter = 0.25 * float(np.min(spacing_xyz))
    if fraction is not None:
        # a fraction tells how deep the centre lies (a ramp across one voxel): a voxel
        # just on its side is kept only that deep
        quarter = np.minimum(quarter, np.abs(fraction - 0.5) * float(np.min(spacing_xyz)))
    else:
        quarter = np.full(inside.shape, quarter)
    keep_in = inside & (sdf < quarter)
    keep_out = ~inside & (sdf > -quarter)
    sdf[keep_in] = np.maximum(sdf[keep_in], quarter[keep_in])
    sdf[keep_out] = np.minimum(sdf[keep_out], -quarter[keep_out])
    if LOCAL_SPHERE and fraction is None and float(np.min(zyx)) > SEPARATOR_MAX_SPACING_MM:
        sdf = _local_sphere_field(sdf, inside, zyx, occupancy)
    if fine_path:
        sdf = _smoothest_separating(sdf, inside, zyx, fraction)
    if (fine_path or (FRACTION_SURFACE_COARSE and np.all(sigma_mm > 0))) and (
        fraction is not None and FRACTION_SURFACE_SIGMA_VOXELS > 0
    ):
        sigma_reg = FRACTION_SURFACE_SIGMA_VOXELS * float(np.max(zyx))
        sdf = _regularise_fraction_surface(sdf, inside, zyx, sigma_reg)
    return sdf


def _in_plane_fraction(
    fraction: np.ndarray, inside: np.ndarray, spacing_zyx: np.ndarray, fine_zyx: np.ndarray
) -> np.ndarray:
    """Partial-volume fractions of a grid with thick axes as in-plane (fine-axis) fractions.

    A voxel's fraction is the part of its box inside the object: across a plane edge of
    normal ``n`` it runs from 0 to 1 over ``sum_i |n_i| h_i`` (the box's extent along
    ``n``), the thick slice's ``|n_z| h_z`` included. The surface is placed in each slice
    from its in-plane contour, which spreads over ``sum_fine |n_i| h_i`` only; so near a cap
    (``n`` towards the slice axis) the through-plane partial volume would read as an
    in-plane one and pull the contour in (box-averaged ball r 10 mm on 3 x 3 x 5 mm voxels:
    -0.76 mm mean radial error within 15 degrees of the slice axis, binary -0.55). Here
    ``f - 0.5`` is scaled by the ratio of the two extents (clipped to 0..1, the voxel kept on
    its mask side), ``n`` the normalised gradient (mm) of the fractions blurred by a Gaussian
    of the coarsest voxel side.
    """
    h = np.asarray(spacing_zyx, float)
    blurred = ndimage.gaussian_filter(fraction.astype(np.float64), h.max() / h, mode="nearest")
    grad = np.stack(np.gradient(blurred, *h), -1)
    extent = np.abs(grad) @ h
    in_plane = np.abs(grad[..., fine_zyx]) @ h[fine_zyx]
    with np.errstate(divide="ignore", invalid="ignore"):
        # a normal along the thick axes alone: all through-plane (the largest ratio)
        ratio = np.where(extent > 0, extent / in_plane, 1.0)
    ratio = np.clip(np.nan_to_num(ratio, nan=1.0, posinf=np.inf), 1.0, FRACTION_THROUGH_PLANE_MAX)
    out = np.clip(0.5 + (fraction - 0.5) * ratio, 0.0, 1.0).astype(np.float32)
    just_out = np.nextafter(np.float32(0.5), np.float32(0.0))
    return np.where(inside, np.maximum(out, 0.5), np.minimum(out, just_out))


def _regularise_fraction_surface(
    sdf: np.ndarray, inside: np.ndarray, spacing_zyx: np.ndarray, sigma_mm: float
) -> np.ndarray:
    """Curvature-corrected Gaussian of a signed distance field, where it is thick.

    ``G * d - sigma^2 / 2 * Laplacian(G * d)`` is the first-order inverse of the blur: a
    plane's distance is unchanged and a sphere's surface does not shrink by
    ``sigma^2 / r`` (``G * d = d + sigma^2 / 2 * Laplacian d`` for a smooth ``d``), while
    surface ripples shorter than ``sigma`` (voxel noise of the fractions) are damped.
    Where the mask or its outside is thinner than ``SEPARATOR_THICK_MM`` (a channel, an
    island) the field is kept as it is.
    """
    s = sigma_mm / np.asarray(spacing_zyx, float)
    blurred = ndimage.gaussian_filter(sdf, s, mode="nearest")
    lap = np.zeros_like(blurred)
    for a, step in enumerate(spacing_zyx):
        order = [2 if b == a else 0 for b in range(3)]
        lap += ndimage.gaussian_filter(sdf, s, order=order, mode="nearest") / (step * step)
    smooth = blurred - 0.5 * sigma_mm * sigma_mm * lap
    lo, hi = SEPARATOR_THICK_MM
    h = np.asarray(spacing_zyx, float)
    reach = [2 * int(np.ceil(hi / v)) + 1 for v in h]
    deep_in = ndimage.maximum_filter(_box_distance(inside, h), size=reach)
    deep_out = ndimage.maximum_filter(_box_distance(~inside, h), size=reach)
    weight = np.clip((np.minimum(deep_in, deep_out) - lo) / (hi - lo), 0.0, 1.0)
    return sdf + weight * (smooth - sdf)


def _curvature_corrected(
    source: np.ndarray,
    occupancy: np.ndarray,
    band: np.ndarray,
    spacing_xyz: np.ndarray,
    sigma_xyz: np.ndarray,
) -> np.ndarray:
    """Signed distance (mm) at the ``band`` voxels from the blurred occupancy, corrected
    for the curvature of the surface (coarse grids: every voxel side above
    ``SEPARATOR_MAX_SPACING_MM``; along a thick axis nothing is blurred and the
    correction is that of each slice's contour).

    The 0.5 level of a surface blurred by a Gaussian of covariance ``S`` (restricted to
    the fine axes) lies ``1/2 tr(S_t II)`` inside a convex surface (``II``: second
    fundamental form, ``S_t`` its tangential part; ``sigma^2 / R`` for a ball of radius
    ``R``, ``sigma^2 / (2 rho)`` for a contour of radius ``rho`` in a slice when the
    slice axis is thick), and as far outside a concave one: a second-order expansion of
    the blurred edge, ``occ = Phi(d / sigma_n) - phi(d / sigma_n) tr(S_t II) / (2 sigma_n)``.
    Voxels sampled at their centres and read as boxes add, on average over the grid's
    phase, a box blur of one voxel (variance ``h^2 / 12`` per axis) to ``S``. So:

    ``d = sigma_n sqrt(2) erfinv(2 occ - 1) + 1/2 tr(S_t II)``,

    with ``sigma_n`` the Gaussian's width along the normal, and ``II`` from the level
    sets of the occupancy blurred ``CURVATURE_SCALE`` times wider (Gaussian derivatives;
    the wider blur averages the terraces of the voxel staircase; a ball's level sets stay
    concentric, so it does not bias the curvature), carried from the level set through
    the voxel to the surface (``kappa / (1 + d kappa)``). The correction is left out
    where the curvature is beyond ``CURVATURE_MAX`` / sigma (shapes of one or two voxels,
    where the expansion does not hold; there the plain plane-edge inversion is kept).
    """
    h = spacing_xyz[::-1]  # z, y, x
    sigma = np.asarray(sigma_xyz, float)[::-1]
    fine = np.flatnonzero(sigma > 0)
    var = np.where(sigma > 0, sigma**2, 0.0)
    var_eff = np.where(sigma > 0, sigma**2 + h**2 / 12.0, 0.0)[fine]
    wide = CURVATURE_SCALE * sigma / h
    where = np.nonzero(band)
    k = fine.size
    grad = np.empty((where[0].size, k))
    hess = np.empty((where[0].size, k, k))
    for i, a in enumerate(fine):
        order = [0, 0, 0]
        order[a] = 1
        first = ndimage.gaussian_filter(source, wide, order=order, mode="nearest")[where]
        grad[:, i] = first / h[a]
        for j, b in enumerate(fine[: i + 1]):
            order = [0, 0, 0]
            order[a] += 1
            order[b] += 1
            second = ndimage.gaussian_filter(source, wide, order=order, mode="nearest")[where]
            hess[:, i, j] = hess[:, j, i] = second / (h[a] * h[b])
    norm = np.linalg.norm(grad, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        n = grad / norm[:, None]  # inward normal (the occupancy grows inside)
    n = np.nan_to_num(n, nan=0.0, posinf=0.0, neginf=0.0)
    proj = np.eye(k)[None] - n[:, :, None] * n[:, None, :]
    # second fundamental form of the level set, positive for a convex inside
    with np.errstate(divide="ignore", invalid="ignore"):
        form = -np.einsum("pij,pjk,pkl->pil", proj, hess, proj) / norm[:, None, None]
    form = np.nan_to_num(form, nan=0.0, posinf=0.0, neginf=0.0)
    mean_kappa = np.trace(form, axis1=1, axis2=2) / max(k - 1, 1)
    sigma_n = np.sqrt(np.einsum("pi,i,pi->p", n, var[fine], n))
    sigma_n = np.where(sigma_n > 0, sigma_n, float(np.sqrt(var[fine].mean())))
    d = sigma_n * np.sqrt(2.0) * special.erfinv(2.0 * occupancy[where] - 1.0)
    shift = 0.5 * np.einsum("i,pii->p", var_eff, form)
    # from the level set through the voxel (at depth d) to the surface
    level = shift
    width = float(np.sqrt(var_eff.mean()))
    ratio = _ball_ratio(k)
    reach = np.zeros_like(d)
    for _ in range(3):  # the surface lies at depth d + shift from the voxel
        carry = np.clip(1.0 + (d + shift) * mean_kappa, 0.5, 2.0)
        reach = np.abs(mean_kappa / carry) * width
        shift = level / carry * np.interp(reach, ratio[0], ratio[1])
    # taper the correction off where sigma |kappa| (at the surface) runs past CURVATURE_MAX
    lo, hi = CURVATURE_MAX
    weight = np.clip((hi - reach) / (hi - lo), 0.0, 1.0) * (norm > 0)
    return d + weight * shift


@functools.cache
def _ball_ratio(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact over second-order shift of the blurred 0.5 level of a ball (``k = 3``) or a
    disc (``k = 2``), as a function of ``t = sigma / R`` (table up to 0.55, constant beyond).

    A ball of radius ``R`` blurred by a Gaussian ``sigma`` reads at distance ``r`` from its
    centre ``P(|x + sigma Z| <= R)``, a non-central chi-square law with ``k`` degrees of
    freedom: its 0.5 level lies ``R - r*`` inside, against ``(k - 1) sigma^2 / (2 R)`` at
    second order (3D, ``t`` = 0.3: 0.321 against 0.300 sigma). The same holds outward for
    a spherical cavity.
    """
    t = np.linspace(0.0, 0.55, 23)
    out = np.ones_like(t)
    if k >= 2:
        for i, ti in enumerate(t[1:], start=1):
            big = 1.0 / ti
            r = optimize.brentq(
                lambda x, b=big: stats.ncx2.cdf(b * b, df=k, nc=x * x) - 0.5, 1e-9, big
            )
            out[i] = (big - r) / (0.5 * (k - 1) * ti)
    return t, out


def _smoothest_separating(
    sdf: np.ndarray,
    inside: np.ndarray,
    spacing_zyx: np.ndarray,
    fraction: np.ndarray | None,
    pull: float = SEPARATOR_PULL,
) -> np.ndarray:
    """The signed distance re-estimated near the surface as the smoothest one that keeps
    every voxel on its side (all axes fine; after Lempitsky, "Surface extraction from
    binary volumes with higher-order smoothness", CVPR 2010).

    Within ``SEPARATOR_BAND_VOXELS`` of the surface, minimise the squared Laplacian of
    the field plus a weak pull (``SEPARATOR_PULL``) towards the Gaussian field, subject
    to ``f >= SEPARATOR_DEPTH_MM`` at inside and ``<= -SEPARATOR_DEPTH_MM`` at outside
    voxel centres (with partial-volume fractions: only where the fraction is certain,
    ``<= SEPARATOR_SURE`` or ``>= 1 - SEPARATOR_SURE``). The signed distance of a sphere
    has no squared-Laplacian gradient (``Δ² r = 0`` in 3D), so convex shapes are not
    pulled inward as by curvature flow (ITK's AntiAliasBinary); the terraces of a binary
    mask near its poles (up to half a voxel inward with the Gaussian field alone) are.
    Active set (constraints that the unconstrained solution violates are fixed at
    their bound, a few rounds), conjugate gradients on the normal equations. Where the
    mask or its outside is locally thinner than ``SEPARATOR_THICK_MM`` (a narrow
    channel, an island, a hole, a small tumour) the Gaussian field is kept.
    """
    h = np.asarray(spacing_zyx, float)
    band = np.abs(sdf) < SEPARATOR_BAND_VOXELS * h.max()
    if not band.any() or min(inside.shape) < 3:
        return sdf
    box = ndimage.find_objects(band.astype(np.int8))[0]
    box = tuple(
        slice(max(b.start - 2, 0), min(b.stop + 2, n)) for b, n in zip(box, sdf.shape, strict=True)
    )
    f0, ins = sdf[box], inside[box]
    shape = f0.shape
    unknown = band[box].ravel()
    sure = np.ones(unknown.size, dtype=bool)
    if fraction is not None:
        part = fraction[box].ravel()
        sure = (part <= SEPARATOR_SURE) | (part >= 1.0 - SEPARATOR_SURE)
    # Laplacian rows at the band and one voxel around it, away from the box faces.
    rows = ndimage.binary_dilation(band[box])
    rows[[0, -1]] = rows[:, [0, -1]] = rows[:, :, [0, -1]] = False
    r = np.flatnonzero(rows)
    strides = np.array([shape[1] * shape[2], shape[2], 1])
    cols = [r]
    vals = [np.full(r.size, -2.0 * float(np.sum(1.0 / h**2)))]
    for a in range(3):
        for step in (-1, 1):
            cols.append(r + step * strides[a])
            vals.append(np.full(r.size, 1.0 / h[a] ** 2))
    lap = sparse.csr_matrix(
        (np.concatenate(vals), (np.tile(np.arange(r.size), 7), np.concatenate(cols))),
        shape=(r.size, f0.size),
    ).tocsc()
    x = f0.ravel().astype(np.float64)
    ins = ins.ravel()
    free = unknown.copy()
    for _ in range(6):
        un = np.flatnonzero(free)
        a_un = lap[:, un].tocsr()
        a_un_t = a_un.T.tocsr()
        rhs = a_un_t @ (-(lap[:, np.flatnonzero(~free)].tocsr() @ x[~free]))
        rhs += pull * f0.ravel()[un]
        diag = np.asarray(a_un.multiply(a_un).sum(axis=0)).ravel() + pull
        x[un] = _conjugate_gradients(
            lambda v, a=a_un, at=a_un_t, w=pull: at @ (a @ v) + w * v, rhs, x[un], diag
        )
        wrong = free & sure & np.where(ins, x < SEPARATOR_DEPTH_MM, x > -SEPARATOR_DEPTH_MM)
        if not wrong.any():
            break
        x[wrong] = np.where(ins[wrong], SEPARATOR_DEPTH_MM, -SEPARATOR_DEPTH_MM)
        free &= ~wrong
    smooth = sdf.copy()
    smooth[box] = x.reshape(shape)
    # Local thickness on each side: the deepest point of the inside (outside) within
    # reach; thin parts keep the Gaussian field.
    lo, hi = SEPARATOR_THICK_MM
    reach = [2 * int(np.ceil(hi / s)) + 1 for s in h]
    deep_in = ndimage.maximum_filter(_box_distance(inside, h), size=reach)
    deep_out = ndimage.maximum_filter(_box_distance(~inside, h), size=reach)
    weight = np.clip((np.minimum(deep_in, deep_out) - lo) / (hi - lo), 0.0, 1.0)
    return sdf + weight * (smooth - sdf)


def _local_sphere_field(
    sdf: np.ndarray,
    inside: np.ndarray,
    spacing_zyx: np.ndarray,
    occupancy: np.ndarray,
    window_mm: float | None = None,
) -> np.ndarray:
    """Signed distance (mm, positive inside) near the surface of a binary mask on a coarse
    grid, from a sphere fitted locally to where the voxels change side.

    On 3 mm voxels the plane-edge inversion of the blurred occupancy lies about
    ``sigma^2 / R`` inside a convex surface and ripples by +-0.25 voxel (a local estimate
    from a few voxels; docs/margin.md, "Curvature-corrected coarse surfaces"); a minimum
    over the surface (the MAM) collects the dents. Here every voxel centre within
    ``LOCAL_SPHERE_BAND_VOXELS`` of the surface takes the signed distance to an algebraic
    sphere ``f(x) = c + g.x + a |x|^2`` (x in mm from the centre; algebraic point set
    surfaces, Guennebaud & Gross, SIGGRAPH 2007) fitted by weighted least squares, in a
    ball window of ``window_mm`` (weight ``(1 - r^2 / W^2)^2``), to

    - ``f = 0`` at the midpoint of each lattice edge joining an inside and an outside
      voxel centre (its error, up to half an edge along the edge, averages out over a
      curved surface, which crosses the lattice at every phase), and
    - ``grad f = n`` there (weight ``LOCAL_SPHERE_NORMAL_WEIGHT``), ``n`` the unit
      gradient of the blurred occupancy (inward), which fixes the scale of ``f``;

    midpoints whose normal turns by more than ``acos(LOCAL_SPHERE_NORMAL_AGREE)`` from the
    centre voxel's are left out (another wall). The distance from the centre to the sphere
    along ``g`` is the root of ``c + |g| t + a t^2`` nearest to 0: exact for a sphere and
    a plane. Every voxel keeps its side (``SEPARATOR_DEPTH_MM``), and where the mask or its
    outside is locally thinner than ``LOCAL_SPHERE_THIN_VOXELS`` the given field is kept.

    Parameters
    ----------
    sdf : ndarray, shape (nz, ny, nx)
        Signed distance (mm) from :func:`signed_distance`'s first steps.
    inside : ndarray of bool, same shape
    spacing_zyx : ndarray, shape (3,)
        Voxel size (z, y, x), mm.
    occupancy : ndarray, same shape
        The blurred occupancy (0..1), for the normals.
    """
    window_mm = LOCAL_SPHERE_WINDOW_MM if window_mm is None else window_mm
    h = np.asarray(spacing_zyx, float)
    band = np.abs(sdf) < LOCAL_SPHERE_BAND_VOXELS * h.max()
    where = np.argwhere(band)
    if where.size == 0 or min(inside.shape) < 3:
        return sdf
    reach = np.floor(window_mm / h).astype(int) + 1
    pad = int(reach.max()) + 2
    ins = np.pad(inside, pad, mode="edge")
    grad = np.stack(np.gradient(occupancy.astype(np.float64), *h), -1)
    grad /= np.maximum(np.linalg.norm(grad, axis=-1, keepdims=True), 1e-12)
    normal = np.pad(grad, ((pad, pad),) * 3 + ((0, 0),), mode="edge")
    centre = where + pad
    n_centre = normal[tuple(centre.T)]
    offsets = np.stack(
        np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), -1
    ).reshape(-1, 3)
    n = len(where)
    ata = np.zeros((n, 25))
    atb = np.zeros((n, 5))
    for axis in range(3):
        e = np.zeros(3, int)
        e[axis] = 1
        mid = (offsets + 0.5 * e) * h
        r = np.linalg.norm(mid, axis=1)
        keep = r <= window_mm
        off, mid, r = offsets[keep], mid[keep], r[keep]
        weight = (1.0 - (r / window_mm) ** 2) ** 2
        for chunk in np.array_split(np.arange(n), max(1, n * len(off) // 2_000_000)):
            a_at = centre[chunk, None, :] + off[None]
            b_at = a_at + e
            side_a = ins[a_at[..., 0], a_at[..., 1], a_at[..., 2]]
            side_b = ins[b_at[..., 0], b_at[..., 1], b_at[..., 2]]
            nv = normal[a_at[..., 0], a_at[..., 1], a_at[..., 2]]
            nv = nv + normal[b_at[..., 0], b_at[..., 1], b_at[..., 2]]
            nv /= np.maximum(np.linalg.norm(nv, axis=-1, keepdims=True), 1e-12)
            agree = np.einsum("npk,nk->np", nv, n_centre[chunk]) > LOCAL_SPHERE_NORMAL_AGREE
            w = np.where((side_a != side_b) & agree, weight[None], 0.0)  # N x P
            rows = np.concatenate([np.ones((len(mid), 1)), mid, (mid**2).sum(1)[:, None]], 1)
            ata[chunk] += w @ np.einsum("pi,pj->pij", rows, rows).reshape(len(mid), 25)
            for j in range(3):
                rg = np.zeros((len(mid), 5))
                rg[:, 1 + j] = 1.0
                rg[:, 4] = 2.0 * mid[:, j]
                wn = LOCAL_SPHERE_NORMAL_WEIGHT * w
                ata[chunk] += wn @ np.einsum("pi,pj->pij", rg, rg).reshape(len(mid), 25)
                atb[chunk] += (wn * nv[..., j]) @ rg
    ata = ata.reshape(n, 5, 5) + 1e-9 * np.eye(5)[None]
    sol = np.linalg.solve(ata, atb[..., None])[..., 0]
    c, g, a = sol[:, 0], sol[:, 1:4], sol[:, 4]
    gn = np.linalg.norm(g, axis=1)
    disc = gn**2 - 4.0 * a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        # the root of c + |g| t + a t^2 nearest to 0 (t along -g), positive inside
        d = np.where(disc >= 0, 2.0 * c / (gn + np.sqrt(np.maximum(disc, 0.0))), c / gn)
    fitted = sdf.copy()
    ok = np.isfinite(d) & (gn > 1e-6)
    fitted[tuple(where[ok].T)] = d[ok]
    depth = SEPARATOR_DEPTH_MM
    fitted = np.where(inside, np.maximum(fitted, depth), np.minimum(fitted, -depth))
    lo, hi = (v * float(h.min()) for v in LOCAL_SPHERE_THIN_VOXELS)
    # the deepest point within reach of a surface voxel lies a voxel deeper than ``hi``
    span = [2 * int(np.ceil((hi + h.max()) / s)) + 1 for s in h]
    deep_in = ndimage.maximum_filter(_box_distance(inside, h), size=span)
    deep_out = ndimage.maximum_filter(_box_distance(~inside, h), size=span)
    thick = np.clip((np.minimum(deep_in, deep_out) - lo) / (hi - lo), 0.0, 1.0)
    return sdf + thick * (fitted - sdf)


def _conjugate_gradients(matvec, rhs, x0, diag, tol=SEPARATOR_TOL, max_iter=2000):
    """Jacobi-preconditioned conjugate gradients (dot products without BLAS threads)."""
    x = x0.copy()
    res = rhs - matvec(x)
    z = res / diag
    p = z.copy()
    rz = float(np.sum(res * z))
    stop = tol * float(np.sqrt(np.sum(rhs * rhs)))
    for _ in range(max_iter):
        if np.sqrt(np.sum(res * res)) <= stop:
            break
        q = matvec(p)
        alpha = rz / float(np.sum(p * q))
        x += alpha * p
        res -= alpha * q
        z = res / diag
        rz_new = float(np.sum(res * z))
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x


def _box_distance(inside: np.ndarray, spacing_zyx: np.ndarray) -> np.ndarray:
    """Distance (mm) from each ``inside`` voxel centre to the nearest face of an outside box.

    From the nearest outside voxel centre ``q`` (Euclidean feature transform) along
    the line to it, minus the half-extent of ``q``'s box along that line, so it is
    half a voxel for a face neighbour along any axis (thick or thin) and the zero
    level of the difference of the two lies on the shared voxel faces. 0 outside.
    """
    dist, index = ndimage.distance_transform_edt(
        inside, sampling=tuple(spacing_zyx), return_indices=True
    )
    where = np.nonzero(inside)
    if where[0].size == 0:
        return dist
    offset = (index[(slice(None), *where)] - np.stack(where)) * spacing_zyx[:, None]
    length = np.linalg.norm(offset, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        exit_mm = np.min(
            np.where(offset != 0, (0.5 * spacing_zyx[:, None]) * length / np.abs(offset), np.inf),
            axis=0,
        )
    out = np.zeros_like(dist)
    out[where] = np.maximum(length - np.where(np.isfinite(exit_mm), exit_mm, 0.0), 0.0)
    return out


def _fine_sigma_mm(spacing: np.ndarray) -> np.ndarray:
    fine = spacing <= THICK_RATIO * spacing.min()
    return np.where(fine, SMOOTH_PER_VOXEL * spacing, 0.0)


def lengths_on_grid(mask: sitk.Image, grid: sitk.Image, lengths_mm: np.ndarray) -> np.ndarray:
    """Per-axis lengths (mm) along the GRID axes (x, y, z) for lengths along the mask's axes.

    Each grid axis takes the root-sum-square of the mask-axis lengths projected on it:
    exact when both grids share their axes (the usual case), a close axis-aligned
    approximation when the mask's grid is rotated against the analysis grid.
    """
    m = np.asarray(mask.GetDirection(), float).reshape(3, 3)
    g = np.asarray(grid.GetDirection(), float).reshape(3, 3)
    r = g.T @ m  # grid-axis components (rows) of each mask axis (columns)
    return np.sqrt((r**2) @ (np.asarray(lengths_mm, float) ** 2))


def _mask_crop(
    mask: sitk.Image, grid: sitk.Image, transform: sitk.Transform | None
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean mask voxels (z, y, x) around the grid's footprint, zero-padded past the image.

    Returns the array and its first voxel index (x, y, z; may be negative). Three
    extra voxels on every side let the distance see the surface just outside the grid.
    """
    size = np.asarray(grid.GetSize())
    corners = np.array(
        [[x, y, z] for x in (-1, size[0]) for y in (-1, size[1]) for z in (-1, size[2])], float
    )
    points = voxel_to_lps(grid, corners)
    if transform is not None:
        points = np.array([transform.TransformPoint(p.tolist()) for p in points])
    index = lps_to_voxel(mask, points)
    lo = np.floor(index.min(axis=0)).astype(int) - 3
    hi = np.ceil(index.max(axis=0)).astype(int) + 3
    last = np.asarray(mask.GetSize()) - 1
    clo, chi = np.clip(lo, 0, last), np.clip(hi, 0, last)
    array = sitk.GetArrayViewFromImage(mask)
    if np.any(chi < clo) or np.any(hi < 0) or np.any(lo > last):
        return np.zeros(tuple((hi - lo + 1)[::-1]), dtype=bool), lo
    part = array[clo[2] : chi[2] + 1, clo[1] : chi[1] + 1, clo[0] : chi[0] + 1] != 0
    pad = [(int(clo[a] - lo[a]), int(hi[a] - chi[a])) for a in (2, 1, 0)]
    return np.pad(part, pad), lo


def _crop_array(image: sitk.Image, lo: np.ndarray, shape_zyx: tuple, fill: float) -> np.ndarray:
    """``image`` values in the index box starting at ``lo`` (x, y, z) of ``shape_zyx``,
    ``fill`` beyond the image."""
    out = np.full(shape_zyx, fill, dtype=np.float32)
    array = sitk.GetArrayViewFromImage(image)
    size = np.asarray(image.GetSize())
    hi = np.asarray(lo) + np.asarray(shape_zyx)[::-1] - 1
    clo, chi = np.maximum(lo, 0), np.minimum(hi, size - 1)
    if np.any(chi < clo):
        return out
    src = tuple(slice(int(clo[a]), int(chi[a]) + 1) for a in (2, 1, 0))
    dst = tuple(slice(int(clo[a] - lo[a]), int(chi[a] - lo[a]) + 1) for a in (2, 1, 0))
    out[dst] = array[src]
    return out


def extract_surface(field_zyx: np.ndarray, grid: sitk.Image, level: float = 0.5) -> Mesh:
    """Iso-surface of a field on ``grid`` as a mesh in LPS mm (marching cubes).

    Parameters
    ----------
    field_zyx : ndarray, shape (nz, ny, nx)
        Field on ``grid`` (array order z, y, x).
    grid : SimpleITK.Image
        Geometry of the field.
    level : float
        Iso-value (0.5 for occupancies).

    Returns
    -------
    Mesh
        Empty (no faces) when the field never crosses ``level``. The field is padded
        by edge replication, so the surface stays open where the field runs out of
        the grid (the crop edge is not a surface).
    """
    padded = np.pad(field_zyx, 1, mode="edge")
    if not (padded.min() < level < padded.max()):
        return Mesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), np.zeros(0))
    # Marching cubes in voxel units on the x-y-z ordered array, then the grid affine
    # (spacing and direction): exact for anisotropic and rotated grids.
    verts, faces, _, _ = marching_cubes(
        np.ascontiguousarray(padded.transpose(2, 1, 0)), level=level, allow_degenerate=False
    )
    vertices = voxel_to_lps(grid, verts.astype(float) - 1.0)
    return Mesh(vertices, faces.astype(np.int64), vertex_areas(vertices, faces))


def vertex_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area (mm^2) carried by each vertex: a third of the area of each incident triangle.

    Parameters
    ----------
    vertices : ndarray, shape (N, 3)
    faces : ndarray, shape (F, 3)

    Returns
    -------
    ndarray, shape (N,)
    """
    tri = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    return np.bincount(faces.ravel(), weights=np.repeat(area / 3.0, 3), minlength=len(vertices))


def sample_field(field_zyx: np.ndarray, grid: sitk.Image, points_lps: np.ndarray) -> np.ndarray:
    """Trilinear value of a grid field at LPS points (mm); shape (N,). Outside: nearest edge."""
    index = lps_to_voxel(grid, points_lps)
    coords = index[:, ::-1].T  # (z, y, x) rows for map_coordinates
    return ndimage.map_coordinates(field_zyx, coords, order=1, mode="nearest")
