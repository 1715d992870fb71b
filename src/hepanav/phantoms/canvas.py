"""Attenuation table and the canvas the procedural phantom is painted on.

Attenuation values (HU) are typical portal-venous-phase values; the real
contrast-enhanced scan in ../shared/data (README) has liver ~93 HU and aorta
~150 HU, which bracket the values used here.
"""

from __future__ import annotations

import numpy as np

from hepanav.phantoms.grid import Grid, partial_volume

# Attenuation, HU (portal venous phase). Water 0 and air -1000 by definition of HU.
HU = {
    "air": -1000.0,
    "lung": -850.0,
    "fat": -100.0,
    "visceral_fat": -90.0,
    "muscle": 50.0,
    "liver": 105.0,
    "portal_vein": 175.0,
    "hepatic_vein": 160.0,
    "ivc": 150.0,
    "aorta": 170.0,
    "spleen": 115.0,
    "kidney_cortex": 180.0,
    "kidney_medulla": 120.0,
    "bile": 10.0,
    "bowel_wall": 50.0,
    "bowel_content": 20.0,
    "colon_content": -600.0,
    "gastric_fluid": 15.0,
    "heart": 135.0,
    "bone_cortex": 750.0,
    "bone_marrow": 230.0,
    "cartilage": 140.0,
    "disc": 90.0,
    "csf": 15.0,
}


class Canvas:
    """HU and label arrays with partial-volume painting of signed-distance blocks."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.hu = np.full(grid.shape, HU["air"], np.float32)
        self.labels = np.zeros(grid.shape, np.uint8)
        self.voxel = float(np.cbrt(np.prod(grid.spacing)))

    def block(self, lo, hi):
        """Array slices (z, y, x) of the LPS box ``lo``-``hi`` (mm), or None outside the grid."""
        return self.grid.box(np.asarray(lo, float), np.asarray(hi, float))

    def paint(self, block, sd, value, label=None):
        """Blend ``value`` (HU, scalar or block-shaped) where the signed distance ``sd``
        (mm, broadcastable to the block) is negative, with a one-voxel partial-volume
        ramp; voxel centres inside get ``label`` when given."""
        frac = partial_volume(sd, self.voxel)
        view = self.hu[block]
        view[...] = view + (np.float32(value) - view) * frac
        if label is not None:
            self.labels[block][np.broadcast_to(sd < 0, view.shape)] = label
