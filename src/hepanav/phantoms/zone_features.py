"""Needle tract and gas bubbles inside an ablation zone (post CT).

Gas from tissue vaporisation and the tract the antenna leaves are part of the
ablation zone on the post-ablation CT; the segmentation must count them in. The
tract runs along the zone's long axis (the needle axis) from the zone centre out
through its surface (``tract_out_mm`` beyond it, where it is NOT zone); bubbles
are small gas spheres well inside. The zone's ground truth (its StarShape) is
unchanged: both lie inside it, except the tract's outer part.
"""

from __future__ import annotations

import numpy as np

from hepanav.phantoms.grid import Grid, partial_volume
from hepanav.phantoms.lesions import StarShape

GAS_HU = -900.0
TRACT_HU = -600.0  # a 1.5-2 mm gas channel is never fully resolved: partial volume


def paint_tract_and_gas(
    hu: np.ndarray,
    grid: Grid,
    zone: StarShape,
    tract_diameter_mm: float,
    tract_out_mm: float,
    n_bubbles: int,
    rng: np.random.Generator,
) -> None:
    """Paint a gas tract and ``n_bubbles`` gas bubbles into ``hu`` (z, y, x) in place.

    Parameters
    ----------
    hu : ndarray, float32
        Post CT in HU on ``grid``.
    zone : StarShape
        The ablation zone (LPS mm).
    tract_diameter_mm : float
        Tract diameter (0: no tract).
    tract_out_mm : float
        How far the tract continues beyond the zone surface, mm.
    n_bubbles : int
        Gas bubbles of radius 1-2 mm, centres at most half the smallest semi-axis
        from the centre.
    """
    voxel = float(np.cbrt(np.prod(grid.spacing)))
    if tract_diameter_mm > 0:
        axis = zone.rotation[:, int(np.argmax(zone.semi_axes))]
        start = zone.center
        extent = float(zone.semi_axes.max()) * (1 + zone.irregularity) + tract_out_mm
        end = start + axis * extent
        r = tract_diameter_mm / 2
        pad = r + 2 * voxel
        block = grid.box(np.minimum(start, end) - pad, np.maximum(start, end) + pad)
        if block is not None:
            p = grid.points(block) - start
            t = np.clip(p @ axis, 0.0, extent)
            radial = np.linalg.norm(p - t[..., None] * axis, axis=-1)
            frac = partial_volume(radial - r, voxel)
            # Beyond the zone surface + tract_out_mm the tract stops.
            frac = frac * (np.asarray(p @ axis) <= extent)
            view = hu[block]
            view[...] = view * (1 - frac) + TRACT_HU * frac
    for _ in range(int(n_bubbles)):
        radius = float(rng.uniform(1.0, 2.0))
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        center = zone.center + direction * rng.uniform(0, 0.5) * float(zone.semi_axes.min())
        block = grid.box(center - radius - 2 * voxel, center + radius + 2 * voxel)
        if block is None:
            continue
        sd = np.linalg.norm(grid.points(block) - center, axis=-1) - radius
        frac = partial_volume(sd, voxel)
        view = hu[block]
        view[...] = view * (1 - frac) + GAS_HU * frac
