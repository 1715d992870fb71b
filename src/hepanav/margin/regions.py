"""Where the margin is short: connected parts of the tumour surface below a threshold."""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from hepanav.margin.schema import SAFE_MARGIN_MM, ResidualRegion, ShortRegion
from hepanav.margin.surface import Mesh

# LPS axes: +x left, +y posterior, +z superior (ITK/DICOM patient coordinates).
_AXIS_WORDS = (("right", "left"), ("anterior", "posterior"), ("inferior", "superior"))
# A component of the direction is named when it is at least this large (cos 67.5 deg):
# a vector 22.5 deg off an axis is named by that axis alone.
_NAMED_COMPONENT = 0.383
# Fragments smaller than this (mm^2) whose margin dips less than FRAGMENT_DEPTH_MM below
# the threshold are sub-voxel ripple of the surfaces at the threshold, not findings.
FRAGMENT_AREA_MM2 = 4.0
FRAGMENT_DEPTH_MM = 0.5


def direction_words(unit_lps: np.ndarray) -> str:
    """Anatomical name of an LPS direction, e.g. ``(0.6, 0.6, 0.5)`` -> left-posterior-superior."""
    words = [
        _AXIS_WORDS[axis][int(value > 0)]
        for axis, value in enumerate(unit_lps)
        if abs(value) >= _NAMED_COMPONENT
    ]
    return "-".join(words) if words else "centre"


def short_regions(
    mesh: Mesh,
    margin_mm: np.ndarray,
    analysed: np.ndarray,
    centre_lps: np.ndarray,
    threshold_mm: float = SAFE_MARGIN_MM,
    lower_mm: float | None = 0.0,
) -> list[ShortRegion]:
    """Connected parts of the surface with margin below ``threshold_mm``.

    Parameters
    ----------
    mesh : Mesh
        Tumour surface, LPS mm.
    margin_mm : ndarray, shape (N,)
        Signed margin of each vertex, mm.
    analysed : ndarray of bool, shape (N,)
        Vertices that count (False for subcapsular vertices left out).
    centre_lps : ndarray, shape (3,)
        Tumour centre, LPS mm; directions are given from it.
    threshold_mm : float
        Margins below this are short (5 mm by default).
    lower_mm : float or None
        Margins below this are left out (0 mm by default: residual tumour is reported
        apart, see :func:`residual_regions`); None keeps everything below the threshold.

    Returns
    -------
    list of ShortRegion
        Sorted by their minimum margin (worst first). Connectivity follows the mesh
        edges, so two patches touching only across the tumour's inside stay apart.
    """
    short = analysed & (margin_mm < threshold_mm)
    if lower_mm is not None:
        short &= margin_mm >= lower_mm
    if not short.any():
        return []
    edges = np.concatenate([mesh.faces[:, [0, 1]], mesh.faces[:, [1, 2]], mesh.faces[:, [2, 0]]])
    edges = edges[short[edges[:, 0]] & short[edges[:, 1]]]
    n = len(mesh.vertices)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    regions = []
    for label in np.unique(labels[short]):
        members = short & (labels == label)
        area = mesh.vertex_area[members]
        if area.sum() <= 0:
            continue
        if (
            area.sum() < FRAGMENT_AREA_MM2
            and margin_mm[members].min() > threshold_mm - FRAGMENT_DEPTH_MM
        ):
            continue
        centroid = (mesh.vertices[members] * area[:, None]).sum(axis=0) / area.sum()
        offset = centroid - centre_lps
        norm = float(np.linalg.norm(offset))
        unit = offset / norm if norm > 1e-9 else np.zeros(3)
        regions.append(
            ShortRegion(
                centroid_lps_mm=tuple(float(v) for v in centroid),
                area_mm2=float(area.sum()),
                min_margin_mm=float(margin_mm[members].min()),
                direction_lps=tuple(float(v) for v in unit),
                direction=direction_words(unit),
            )
        )
    return sorted(regions, key=lambda r: r.min_margin_mm)


def residual_regions(
    mesh: Mesh,
    margin_mm: np.ndarray,
    analysed: np.ndarray,
    centre_lps: np.ndarray,
    residual_points_lps: np.ndarray,
    voxel_ml: float,
) -> list[ResidualRegion]:
    """Residual tumour: connected surface parts with margin < 0 mm, with their volume.

    Parameters
    ----------
    mesh, margin_mm, analysed, centre_lps
        As in :func:`short_regions`.
    residual_points_lps : ndarray, shape (M, 3)
        Centres of the analysis-grid voxels inside the tumour and outside the zone, LPS mm.
    voxel_ml : float
        Volume of one analysis-grid voxel, ml.

    Returns
    -------
    list of ResidualRegion
        Most negative first. Each residual voxel counts toward the region whose surface
        vertices lie nearest to it.
    """
    surface = short_regions(mesh, margin_mm, analysed, centre_lps, 0.0, None)
    if not surface:
        return []
    neg = analysed & (margin_mm < 0)
    index = np.flatnonzero(neg)
    # Each negative vertex -> its region (nearest region centroid among the region's own
    # vertices is approximated by the nearest centroid; regions are far apart).
    centroids = np.array([r.centroid_lps_mm for r in surface])
    vertex_region = cKDTree(centroids).query(mesh.vertices[index])[1]
    volumes = np.zeros(len(surface))
    if len(residual_points_lps):
        owner = vertex_region[cKDTree(mesh.vertices[index]).query(residual_points_lps)[1]]
        volumes = np.bincount(owner, minlength=len(surface)) * voxel_ml
    return [
        ResidualRegion(**r.model_dump(), volume_ml=float(v))
        for r, v in zip(surface, volumes, strict=True)
    ]
