"""Tumours and ablation zones as star-shaped irregular ellipsoids with exact geometry.

A :class:`StarShape` is an ellipsoid (centre, semi-axes, rotation) whose radius
along each direction is modulated by a smooth lobulation ``1 + e * g(u)``. Being
star-shaped about its centre it has an exact inside test, an explicit surface
(every direction hits it once) and hence a dense surface mesh and an exact
volume, which the ground truth uses instead of voxel masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.spatial import ConvexHull
from scipy.spatial.transform import Rotation

from hepanav.phantoms.grid import Grid, partial_volume
from hepanav.phantoms.schema import StarShapeParameters


@dataclass(frozen=True)
class StarShape:
    """An irregular ellipsoid in LPS millimetres.

    Attributes
    ----------
    center : ndarray, shape (3,)
        Centre in LPS mm.
    semi_axes : ndarray, shape (3,)
        Semi-axes in mm before lobulation.
    rotation : ndarray, shape (3, 3)
        Columns are the ellipsoid axes in LPS.
    irregularity : float
        Lobulation amplitude ``e``: the radius varies within ``1 +- e``.
    harmonics : ndarray, shape (K, 6)
        Lobulation terms ``(nx, ny, nz, frequency, phase, weight)``;
        ``g(u) = sum weight * cos(frequency * n.u + phase)`` with ``sum |weight| = 1``.
    """

    center: np.ndarray
    semi_axes: np.ndarray
    rotation: np.ndarray
    irregularity: float
    harmonics: np.ndarray

    # -- construction -----------------------------------------------------------------
    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        center: np.ndarray,
        semi_axes: np.ndarray,
        irregularity: float,
        rotation_deg: tuple[float, float, float] | None = None,
        n_terms: int = 6,
    ) -> StarShape:
        """A shape with random lobulation (and random orientation unless ``rotation_deg``)."""
        if rotation_deg is None:
            rotation = Rotation.random(random_state=rng).as_matrix()
        else:
            rotation = Rotation.from_euler("xyz", rotation_deg, degrees=True).as_matrix()
        normals = rng.normal(size=(n_terms, 3))
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        # Frequencies 2.5-6 rad over n.u in [-1, 1]: one to two lobes per term, smooth.
        freq = rng.uniform(2.5, 6.0, n_terms)
        phase = rng.uniform(0, 2 * np.pi, n_terms)
        weight = rng.uniform(0.5, 1.0, n_terms)
        weight /= weight.sum()
        harmonics = np.column_stack([normals, freq, phase, weight])
        return cls(
            np.asarray(center, float),
            np.asarray(semi_axes, float),
            rotation,
            float(irregularity),
            harmonics,
        )

    @classmethod
    def from_parameters(cls, p: StarShapeParameters) -> StarShape:
        """Rebuild a shape from its recorded parameters (``truth.json``)."""
        return cls(
            np.asarray(p.center_lps, float),
            np.asarray(p.semi_axes_mm, float),
            np.asarray(p.rotation, float),
            float(p.irregularity),
            np.asarray(p.harmonics, float).reshape(-1, 6),
        )

    def parameters(self) -> StarShapeParameters:
        """The shape as a JSON-able record."""
        return StarShapeParameters(
            center_lps=tuple(self.center.tolist()),
            semi_axes_mm=tuple(self.semi_axes.tolist()),
            rotation=tuple(tuple(r) for r in self.rotation.tolist()),
            irregularity=self.irregularity,
            harmonics=[tuple(h) for h in self.harmonics.tolist()],
        )

    # -- geometry ---------------------------------------------------------------------
    def _lobulation(self, u: np.ndarray) -> np.ndarray:
        """Boundary radius ``1 + e g(u)`` in normalised space for unit vectors u (..., 3)."""
        if self.irregularity == 0 or len(self.harmonics) == 0:
            return np.ones(u.shape[:-1])
        h = self.harmonics
        arg = u @ h[:, :3].T * h[:, 3] + h[:, 4]
        return 1.0 + self.irregularity * (np.cos(arg) @ h[:, 5])

    def _local(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rel = np.asarray(points, float) - self.center
        v = (rel @ self.rotation) / self.semi_axes
        rho = np.linalg.norm(v, axis=-1)
        return rel, v, rho

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Exact inside test for LPS points (..., 3) in mm; boolean array (...)."""
        _, v, rho = self._local(points)
        u = v / np.maximum(rho, 1e-12)[..., None]
        return rho < self._lobulation(u)

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """Approximate signed distance (mm, negative inside) of LPS points (..., 3).

        Measured along the ray from the centre: exact for a sphere, within a few
        per cent near the surface of a moderately elongated shape. Used for
        partial-volume painting and rims, never for the ground-truth margins.
        """
        rel, v, rho = self._local(points)
        safe = np.maximum(rho, 1e-12)
        bound = self._lobulation(v / safe[..., None])
        dist = np.linalg.norm(rel, axis=-1)
        sd = dist * (1.0 - bound / safe)
        return np.where(rho > 1e-9, sd, -float(self.semi_axes.min()))

    def surface_point(self, u: np.ndarray) -> np.ndarray:
        """Surface points (N, 3), LPS mm, along normalised-space unit directions u (N, 3)."""
        r = self._lobulation(u)[:, None] * u
        return self.center + (r * self.semi_axes) @ self.rotation.T

    def surface_mesh(self, n_points: int = 20000) -> tuple[np.ndarray, np.ndarray]:
        """A closed triangle mesh of the surface: vertices (N, 3) in LPS mm, faces (M, 3).

        Vertices come from a Fibonacci sphere mapped onto the surface; the faces are
        the convex hull of the sphere points, consistently oriented outwards.
        """
        u = fibonacci_sphere(n_points)
        return self.surface_point(u), _sphere_mesh_faces(n_points)

    def bounding_box(self, pad_mm: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned LPS box (lo, hi) in mm containing the shape (plus ``pad_mm``)."""
        half = np.abs(self.rotation * self.semi_axes).sum(axis=1) * (1 + self.irregularity)
        return self.center - half - pad_mm, self.center + half + pad_mm

    def volume_mm3(self, n_points: int = 20000) -> float:
        """Volume in mm^3 of a fine surface mesh (converges as 1/n_points)."""
        return mesh_volume(*self.surface_mesh(n_points))


def fibonacci_sphere(n: int) -> np.ndarray:
    """Nearly uniform unit vectors (n, 3) on the sphere (golden-angle spiral)."""
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    r = np.sqrt(1 - z * z)
    phi = np.pi * (3 - np.sqrt(5)) * i
    return np.column_stack([r * np.cos(phi), r * np.sin(phi), z])


@lru_cache(maxsize=8)
def _sphere_mesh_faces(n: int) -> np.ndarray:
    faces = sphere_faces(fibonacci_sphere(n))
    faces.flags.writeable = False
    return faces


def sphere_faces(u: np.ndarray) -> np.ndarray:
    """Outward-oriented triangles (M, 3) of points on the unit sphere (convex hull)."""
    faces = ConvexHull(u).simplices
    a, b, c = u[faces[:, 0]], u[faces[:, 1]], u[faces[:, 2]]
    flip = np.einsum("ij,ij->i", np.cross(b - a, c - a), a + b + c) < 0
    faces[flip] = faces[flip][:, [0, 2, 1]]
    return faces


def mesh_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Enclosed volume (mm^3) of a closed outward-oriented triangle mesh (divergence theorem)."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def vertex_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Surface area (mm^2) attributed to each vertex: a third of each adjacent triangle."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    tri = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    area = np.zeros(len(vertices))
    for k in range(3):
        np.add.at(area, faces[:, k], tri / 3.0)
    return area


def paint_shape(
    hu: np.ndarray,
    grid: Grid,
    shape: StarShape,
    value_hu: float | np.ndarray,
    *,
    rim_mm: float = 0.0,
    rim_hu: float | None = None,
    noise_hu: float = 0.0,
    rng: np.random.Generator | None = None,
) -> None:
    """Blend a shape into a CT array in place, with partial volume and an optional outer rim.

    Parameters
    ----------
    hu : ndarray, shape (nz, ny, nx), float32
        CT in HU on ``grid``; modified in place.
    grid : Grid
        Geometry of ``hu``.
    shape : StarShape
        The lesion, LPS mm.
    value_hu : float
        Attenuation inside the shape, HU.
    rim_mm, rim_hu : float
        A shell ``rim_mm`` thick just outside the surface painted at ``rim_hu``
        (the enhancing rim around an ablation zone).
    noise_hu : float
        SD of Gaussian noise added to the painted values (for implanting into a real,
        already noisy scan), HU; needs ``rng``.
    """
    block = grid.box(*shape.bounding_box(pad_mm=rim_mm + 2 * max(grid.spacing)))
    if block is None:
        return
    voxel = float(np.cbrt(np.prod(grid.spacing)))
    sd = shape.signed_distance(grid.points(block))
    view = hu[block]
    noise = 0.0
    if noise_hu > 0:
        noise = rng.normal(0.0, noise_hu, view.shape).astype(np.float32)
    if rim_mm > 0 and rim_hu is not None:
        # Rim = inside (surface + rim_mm) minus inside the surface, both with partial volume.
        outer = partial_volume(sd - rim_mm, voxel)
        view[...] = view * (1 - outer) + (rim_hu + noise) * outer
    frac = partial_volume(sd, voxel)
    view[...] = view * (1 - frac) + (value_hu + noise) * frac


def rasterize(grid: Grid, shape: StarShape) -> np.ndarray:
    """uint8 0/1 mask (nz, ny, nx) of the voxel centres inside ``shape`` (exact test)."""
    mask = np.zeros(grid.shape, np.uint8)
    block = grid.box(*shape.bounding_box(pad_mm=max(grid.spacing)))
    if block is not None:
        mask[block] = shape.contains(grid.points(block))
    return mask
