"""Small analytic CT volumes with lesions known by construction (for the segmentation tests)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from hepanav.phantoms.grid import Grid
from hepanav.phantoms.lesions import StarShape, paint_shape, rasterize

LIVER_HU = 105.0


def liver_block(size=(64, 64, 56), spacing=(1.0, 1.0, 1.25), noise=10.0, seed=0):
    """A block of liver-like tissue (105 HU + Gaussian noise) centred on the origin."""
    grid = Grid.centered(np.zeros(3), spacing, size)
    rng = np.random.default_rng(seed)
    hu = (LIVER_HU + rng.normal(0, noise, grid.shape)).astype(np.float32)
    return grid, hu


def sphere(radius, center=(0.0, 0.0, 0.0), irregularity=0.0, seed=1):
    """A (lobulated) sphere as a StarShape, LPS mm."""
    rng = np.random.default_rng(seed)
    return StarShape.random(
        rng, np.asarray(center, float), np.full(3, float(radius)), irregularity, (0.0, 0.0, 0.0)
    )


def paint_cylinder(hu, grid, point, direction, radius, value):
    """Paint an infinite cylinder (a vessel) with partial volume, in place."""
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    p = grid.points(tuple(slice(0, n) for n in grid.shape)) - np.asarray(point, float)
    radial = np.linalg.norm(p - (p @ d)[..., None] * d, axis=-1)
    frac = np.clip(0.5 - (radial - radius) / 1.0, 0, 1).astype(np.float32)
    hu[...] = hu * (1 - frac) + value * frac
    return radial


def lesion_case(radius=8.0, contrast=-45.0, rim=0.0, noise=10.0, seed=0, irregularity=0.06):
    """(ct, truth mask, shape, grid, hu array) of one lesion painted into a liver block."""
    grid, hu = liver_block(noise=noise, seed=seed)
    shape = sphere(radius, irregularity=irregularity, seed=seed + 1)
    paint_shape(
        hu, grid, shape, LIVER_HU + contrast, rim_mm=rim, rim_hu=LIVER_HU + 35.0 if rim else None
    )
    truth = grid.image(rasterize(grid, shape))
    return grid.image(hu), truth, shape, grid, hu


def image(grid, hu):
    return grid.image(np.asarray(hu, np.float32))


def to_int16(img: sitk.Image) -> sitk.Image:
    return sitk.Cast(sitk.Round(img) if hasattr(sitk, "Round") else img, sitk.sitkInt16)


def in_body(hu, grid, body_radius=29, fat_from=26):
    """``hu`` (z, y, x) with air beyond ``body_radius`` voxels of the axial centre and
    subcutaneous fat (-100 HU) in the ring from ``fat_from``: a body outline around it."""
    _, y, x = np.indices(grid.shape)
    centre = np.asarray(grid.shape) / 2
    r = np.sqrt((y - centre[1]) ** 2 + (x - centre[2]) ** 2)
    hu = np.array(hu, copy=True)
    hu[r > body_radius] = -1000.0
    hu[(r > fat_from) & (r <= body_radius)] = -100.0
    return hu
