"""A short region on every side of its lesion has no direction (tester6 defect 17).

Known by construction: a sphere of radius 8 mm (a convex-hull mesh of 4000 points
spread evenly over it) with a short margin on an equatorial band (|z| < 3.6 mm, 45 % of
the surface, centred on the lesion's centre) must be "all round", direction (0, 0, 0);
a cap over the lower three quarters (z < 4 mm; centre 2 mm below the lesion's, 0.25
radii) keeps its direction, "inferior".
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull

from hepanav.margin.regions import short_regions
from hepanav.margin.surface import Mesh

RADIUS_MM = 8.0
CENTRE = np.array([10.0, -20.0, 30.0])


def _sphere_mesh(n: int = 4000) -> Mesh:
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = np.pi * (1 + 5**0.5) * i
    unit = np.column_stack([np.sqrt(1 - z * z) * np.cos(phi), np.sqrt(1 - z * z) * np.sin(phi), z])
    faces = ConvexHull(unit).simplices
    vertices = CENTRE + RADIUS_MM * unit
    tri = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    vertex_area = np.zeros(n)
    for k in range(3):
        np.add.at(vertex_area, faces[:, k], area / 3)
    return Mesh(vertices=vertices, faces=faces, vertex_area=vertex_area)


def test_band_round_the_lesion_has_no_direction():
    mesh = _sphere_mesh()
    z = mesh.vertices[:, 2] - CENTRE[2]
    margin = np.where(np.abs(z) < 0.45 * RADIUS_MM, 4.5, 6.0)
    regions = short_regions(mesh, margin, np.ones(len(margin), bool), CENTRE)
    assert len(regions) == 1
    assert regions[0].direction.startswith("all round the tumour (no single direction")
    assert regions[0].direction_lps == (0.0, 0.0, 0.0)


def test_three_quarter_cap_keeps_its_direction():
    mesh = _sphere_mesh()
    z = mesh.vertices[:, 2] - CENTRE[2]
    margin = np.where(z < 0.5 * RADIUS_MM, 4.5, 6.0)
    regions = short_regions(mesh, margin, np.ones(len(margin), bool), CENTRE)
    assert len(regions) == 1
    assert regions[0].direction == "inferior"
    assert regions[0].direction_lps[2] < -0.99
