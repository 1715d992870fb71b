"""Voxel grids in physical space for painting shapes into NumPy arrays.

Arrays follow SimpleITK's ``GetArrayFromImage`` order (z, y, x); sizes and
spacings are (x, y, z). Every point is in LPS millimetres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class Grid:
    """A 3D voxel grid: ``lps = origin + direction @ (spacing * index_xyz)``.

    Attributes
    ----------
    size : tuple of int
        Voxels along x, y, z.
    spacing : tuple of float
        Voxel size along x, y, z in mm.
    origin : tuple of float
        Centre of voxel (0, 0, 0) in LPS mm.
    direction : tuple of float
        3x3 direction cosines (columns = axes), row-major, as SimpleITK.
    """

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    @classmethod
    def of(cls, image: sitk.Image) -> Grid:
        """The grid of a SimpleITK image."""
        return cls(
            tuple(int(v) for v in image.GetSize()),
            tuple(float(v) for v in image.GetSpacing()),
            tuple(float(v) for v in image.GetOrigin()),
            tuple(float(v) for v in image.GetDirection()),
        )

    @classmethod
    def centered(
        cls, center_lps: np.ndarray, spacing: tuple[float, float, float], size: tuple[int, int, int]
    ) -> Grid:
        """Identity-direction grid of ``size`` voxels whose centre is at ``center_lps`` (mm)."""
        spacing = tuple(float(s) for s in spacing)
        size = tuple(int(n) for n in size)
        origin = np.asarray(center_lps, float) - (np.asarray(size) - 1) / 2 * np.asarray(spacing)
        return cls(size, spacing, tuple(float(v) for v in origin))

    @property
    def shape(self) -> tuple[int, int, int]:
        """NumPy array shape (z, y, x)."""
        return self.size[2], self.size[1], self.size[0]

    @property
    def matrix(self) -> np.ndarray:
        """3x3 matrix mapping an index step (x, y, z) to an LPS step in mm."""
        return np.asarray(self.direction).reshape(3, 3) * np.asarray(self.spacing)

    @property
    def is_axis_aligned(self) -> bool:
        """True when the direction is the identity (index axes = LPS axes)."""
        return bool(np.allclose(np.asarray(self.direction).reshape(3, 3), np.eye(3)))

    def image(self, array: np.ndarray, is_vector: bool = False) -> sitk.Image:
        """Wrap ``array`` (z, y, x[, c]) as a SimpleITK image on this grid."""
        image = sitk.GetImageFromArray(array, isVector=is_vector)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def index_to_lps(self, index_xyz: np.ndarray) -> np.ndarray:
        """Continuous indices (N, 3) in (x, y, z) order -> LPS points (N, 3), mm."""
        return np.asarray(index_xyz, float) @ self.matrix.T + np.asarray(self.origin)

    def lps_to_index(self, points: np.ndarray) -> np.ndarray:
        """LPS points (N, 3), mm -> continuous indices (N, 3) in (x, y, z) order."""
        inv = np.linalg.inv(self.matrix)
        return (np.asarray(points, float) - np.asarray(self.origin)) @ inv.T

    def extent(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned LPS box (lo, hi) of the voxel centres, mm."""
        n = np.asarray(self.size) - 1
        corners = np.array([[x, y, z] for x in (0, n[0]) for y in (0, n[1]) for z in (0, n[2])])
        lps = self.index_to_lps(corners)
        return lps.min(axis=0), lps.max(axis=0)

    def box(self, lo_lps: np.ndarray, hi_lps: np.ndarray) -> tuple[slice, slice, slice] | None:
        """Array slices (z, y, x) of the voxels inside an LPS box, or None when it misses."""
        lo_lps, hi_lps = np.asarray(lo_lps, float), np.asarray(hi_lps, float)
        corners = np.array(
            [
                [x, y, z]
                for x in (lo_lps[0], hi_lps[0])
                for y in (lo_lps[1], hi_lps[1])
                for z in (lo_lps[2], hi_lps[2])
            ]
        )
        idx = self.lps_to_index(corners)
        lo = np.maximum(np.floor(idx.min(axis=0)).astype(int), 0)
        hi = np.minimum(np.ceil(idx.max(axis=0)).astype(int) + 1, np.asarray(self.size))
        if np.any(hi <= lo):
            return None
        return slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0])

    def points(self, block: tuple[slice, slice, slice]) -> np.ndarray:
        """LPS coordinates of the voxel centres of ``block``, shape (nz, ny, nx, 3), mm."""
        kz, jy, ix = (np.arange(s.start, s.stop) for s in block)
        k, j, i = np.meshgrid(kz, jy, ix, indexing="ij")
        index = np.stack([i, j, k], axis=-1).astype(float)
        return index @ self.matrix.T + np.asarray(self.origin)

    def axes(self, block: tuple[slice, slice, slice] | None = None):
        """Broadcastable LPS coordinate arrays ``(X, Y, Z)`` of an axis-aligned grid.

        Shapes (1, 1, nx), (1, ny, 1), (nz, 1, 1); only valid when
        :attr:`is_axis_aligned`.
        """
        if not self.is_axis_aligned:
            raise ValueError("axes() needs an identity-direction grid; use points()")
        if block is None:
            block = tuple(slice(0, n) for n in self.shape)
        kz, jy, ix = (np.arange(s.start, s.stop, dtype=np.float32) for s in block)
        x = self.origin[0] + ix * self.spacing[0]
        y = self.origin[1] + jy * self.spacing[1]
        z = self.origin[2] + kz * self.spacing[2]
        return x[None, None, :], y[None, :, None], z[:, None, None]


def partial_volume(sd_mm: np.ndarray, voxel_mm: float) -> np.ndarray:
    """Fraction of a voxel inside a shape from its signed distance (negative inside), 0..1.

    A linear ramp one voxel wide across the surface approximates partial-volume
    averaging, so edges in the synthetic CT are not staircase-sharp.
    """
    return np.clip(0.5 - sd_mm / voxel_mm, 0.0, 1.0).astype(np.float32)
