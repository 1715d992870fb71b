"""Where a surface ends between thick slices: the cap beyond the last slice of an object.

Between the last slice ``a`` whose pixel holds the object and the next slice ``b``
(empty), a thick-slice mask says only that the surface is crossed somewhere in the
slab; no method can read more from the mask's voxels there. What the mask does say is
how the object's sections shrink towards the cap: their areas (pixel counts, an
unbiased estimate of a section's area for voxel-centre sampling) and their outlines.
The cap is placed by continuing that trend to second order:

- the squared equivalent radius of the sections, ``r^2(u) = A / pi`` at depth ``u``
  (mm) into the object from slice ``a``, is a quadratic in ``u`` through the last three
  sections (``a``, ``c`` one slice deeper, ``c2`` two deeper). That is EXACT for every
  ellipsoid (any axes, any orientation: parallel sections of an ellipsoid are similar
  ellipses whose area is a quadratic in the plane's position) and for every sphere,
  and it is the second-order Taylor continuation of a smooth convex end. With two
  sections only (``c2`` holds no contour), the curvature is that of a sphere
  (``r^2 = R^2 - (u - u0)^2``; the former rule, exact for spheres only);
- a column of slice ``a`` lying ``d`` (mm) inside the section's outline sits at the
  relative radius ``q = 1 - d / r_outline`` of the section (``r_outline``: equivalent
  radius of the area the outline itself encloses, so the depth and the radius it is
  measured against come from the same contour, whatever that contour's own bias); its
  crossing is where the shrinking section passes it: ``r^2(u) = q^2 r_a^2``.

For a sphere both rules are exact. Before (issue 12, realistic pair 4: a 16 x 15 x 14
mm zone on 3 x 3 x 5 mm voxels), the sphere through the last two sections put the lower
cap's apex 0.5 mm short (4.27 against 4.75 mm beyond the last slice; this zone's sections
narrow more slowly than a sphere's, ``d^2 r^2 / du^2 = -1.6`` against ``-2``; the three
sections' pixel areas give 4.67 mm). Measured column by column on that cap
(``python -m bench.pair_mam_where --caps 4``): crossing error mean -0.35 -> -0.14 mm,
min -0.89 -> -0.76 mm; what is left is the last slice's in-plane outline (3 mm pixels:
up to 0.8-1 mm inside the analytic section at the rim columns); with the analytic
outline the same rule places every column within 0.22 mm.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def cap_depth(radii: list[np.ndarray], q: np.ndarray, h: float) -> np.ndarray:
    """Distance (mm) beyond slice ``a`` at which a column leaves the object.

    Parameters
    ----------
    radii : list of ndarray
        Equivalent radii (mm) of the object's sections in slice ``a`` (the last one) and
        in the slices 1, 2, ... deeper (``h`` mm apart); NaN where a slice holds none.
        Three or more: least-squares quadratic ``r^2(u)`` through them; two: the sphere
        through both (curvature ``-1``).
    q : ndarray
        The column's relative radius in section ``a`` (0 on its axis, 1 on its outline).
    h : float
        Slice spacing (mm).

    Returns
    -------
    ndarray
        ``t >= 0`` (mm), the smallest positive root of ``r^2(-t) = q^2 r^2(0)``; ``inf``
        where the continued sections never pass the column (they do not shrink).
    """
    r2 = np.stack([np.asarray(r, float) ** 2 for r in radii], -1)  # (..., K)
    known = np.isfinite(r2)
    # the sections in use: contiguous from slice a
    used = np.cumprod(known, axis=-1).astype(bool)
    u = h * np.arange(r2.shape[-1])
    rows = np.stack([np.ones_like(u), u, u * u], -1)  # (K, 3)
    w = used.astype(float)
    ata = np.einsum("...k,ki,kj->...ij", w, rows, rows)
    atb = np.einsum("...k,ki,...k->...i", w, rows, np.where(used, r2, 0.0))
    three = used.sum(-1) >= 3
    ata = np.where(three[..., None, None], ata, np.eye(3))
    coef = np.linalg.solve(ata, atb[..., None])[..., 0]
    area0, slope, curv = coef[..., 0], coef[..., 1], coef[..., 2]
    # two sections: the sphere through both
    ra2, rc2 = r2[..., 0], r2[..., 1] if r2.shape[-1] > 1 else np.full(r2.shape[:-1], np.nan)
    area0 = np.where(three, area0, ra2)
    curv = np.where(three, curv, -1.0)
    slope = np.where(three, slope, (rc2 - ra2) / h + h)
    d = np.maximum(area0 * (1.0 - np.clip(q, 0.0, 1.0) ** 2), 0.0)
    # r^2(-t) - q^2 r^2(0) = curv t^2 - slope t + d = 0: smallest positive root, written
    # 2 d / (slope + sqrt(slope^2 - 4 curv d)) (stable; no root: inf)
    disc = slope**2 - 4.0 * curv * d
    with np.errstate(divide="ignore", invalid="ignore"):
        den = slope + np.sqrt(np.where(disc >= 0, disc, np.nan))
        return np.where(den > 0, 2.0 * d / den, np.inf)


def outline_radius(d2: np.ndarray, plane: np.ndarray, upsample: int = 4) -> np.ndarray:
    """Per pixel: equivalent radius (mm) of the area enclosed by the outline (the zero
    line of the in-plane signed distance ``d2``, bilinear between pixel centres) of the
    connected section nearest to the pixel; NaN where the slice holds none.

    Parameters
    ----------
    d2 : ndarray, shape (ny, nx)
        Signed in-plane distance (mm, positive inside) to the slice's contour; NaN when
        the slice holds no contour.
    plane : ndarray, shape (2,)
        Pixel size (mm) along the two axes.
    """
    if not np.all(np.isfinite(d2)):
        return np.full(d2.shape, np.nan)
    inside = d2 > 0
    labels, count = ndimage.label(inside)
    if count == 0:
        return np.full(d2.shape, np.nan)
    fine = ndimage.zoom(d2, upsample, order=1, mode="nearest", grid_mode=True) > 0
    fine_labels = ndimage.zoom(labels, upsample, order=0, mode="nearest", grid_mode=True)
    # fine pixels inside the outline take the section of their nearest coarse inside pixel
    _, nearest = ndimage.distance_transform_edt(fine_labels == 0, return_indices=True)
    owner = fine_labels[tuple(nearest)]
    area = np.bincount(owner[fine].ravel(), minlength=count + 1)[1:]
    area = area * float(np.prod(plane)) / upsample**2
    radius = np.sqrt(area / np.pi)
    _, near = ndimage.distance_transform_edt(~inside, return_indices=True)
    return radius[labels[tuple(near)] - 1]
