"""Where the margin is short: connected parts of the tumour surface below a threshold."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from hepanav.imaging.geometry import voxel_to_lps
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
# A region holding at least this share of its lesion's analysed surface area is the
# whole lesion: it has no direction (its centre is the lesion's centre, up to noise).
WHOLE_LESION_SHARE = 0.95
# A region whose area-weighted centre lies within this fraction of its lesion's
# equivalent radius (sqrt(A / 4 pi), A the lesion's analysed surface area) of the
# lesion's centroid has no single direction: patches or a band on every side (tester6:
# a short region over 59 % of an 8 mm lesion, in patches all round, had its centre
# 0.1 mm off the lesion's and was called "left-anterior-superior"). 0.1 and not more: a
# single cap has its centre (1 + cos a) / 2 radii off the centre, so only a cap over
# more than 90 % of the lesion falls below 0.1, while a short region over three
# quarters of a lesion, shortest on one side, has its centre 1.7 mm (0.21 radii) from
# that of an 8 mm lesion and a true direction (it keeps it).
CENTRED_FRACTION = 0.1


def direction_words(unit_lps: np.ndarray) -> str:
    """Anatomical name of an LPS direction, e.g. ``(0.6, 0.6, 0.5)`` -> left-posterior-superior."""
    words = [
        _AXIS_WORDS[axis][int(value > 0)]
        for axis, value in enumerate(unit_lps)
        if abs(value) >= _NAMED_COMPONENT
    ]
    return "-".join(words) if words else "centre"


def lesion_parts(
    tumor_field: np.ndarray, grid: sitk.Image, vertices_lps: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The tumour's connected components (lesions) and which one each surface vertex bounds.

    Parameters
    ----------
    tumor_field : ndarray, shape (nz, ny, nx)
        ``0.5 +`` signed distance (mm) of the tumour on ``grid``; inside where >= 0.5.
    grid : SimpleITK.Image
        Analysis grid.
    vertices_lps : ndarray, shape (N, 3)
        Tumour-surface vertices, LPS mm.

    Returns
    -------
    centroids_lps : ndarray, shape (K, 3)
        Volume centroid of each lesion (26-connected component), LPS mm; lesion ``k + 1``
        is row ``k``, numbered from the largest volume down.
    vertex_lesion : ndarray of int, shape (N,)
        Lesion index (0-based row of ``centroids_lps``) of the nearest inside voxel.
    """
    inside = tumor_field >= 0.5
    labels, count = ndimage.label(inside, structure=np.ones((3, 3, 3), dtype=bool))
    if count == 0:
        return np.zeros((0, 3)), np.zeros(len(vertices_lps), dtype=int)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    order = np.argsort(-sizes, kind="stable")  # row k <- label order[k] + 1
    rank = np.empty(count, dtype=int)
    rank[order] = np.arange(count)
    com = np.array(ndimage.center_of_mass(inside, labels, order + 1), dtype=float)
    centroids = voxel_to_lps(grid, com.reshape(-1, 3)[:, ::-1])
    rim = inside & ~ndimage.binary_erosion(inside)
    rim_index = np.argwhere(rim)
    nearest = cKDTree(voxel_to_lps(grid, rim_index[:, ::-1].astype(float))).query(vertices_lps)[1]
    vertex_lesion = rank[labels[tuple(rim_index[nearest].T)] - 1]
    return centroids, vertex_lesion


def short_regions(
    mesh: Mesh,
    margin_mm: np.ndarray,
    analysed: np.ndarray,
    centre_lps: np.ndarray,
    threshold_mm: float = SAFE_MARGIN_MM,
    lower_mm: float | None = 0.0,
    lesions: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[ShortRegion]:
    """Connected parts of the surface with margin below ``threshold_mm``
    (:func:`_surface_regions`, without the vertex masks)."""
    return [
        r
        for r, _ in _surface_regions(
            mesh, margin_mm, analysed, centre_lps, threshold_mm, lower_mm, lesions
        )
    ]


def _surface_regions(
    mesh: Mesh,
    margin_mm: np.ndarray,
    analysed: np.ndarray,
    centre_lps: np.ndarray,
    threshold_mm: float = SAFE_MARGIN_MM,
    lower_mm: float | None = 0.0,
    lesions: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[tuple[ShortRegion, np.ndarray]]:
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
        Tumour centre, LPS mm; directions are given from it when ``lesions`` is None.
    threshold_mm : float
        Margins below this are short (5 mm by default).
    lower_mm : float or None
        Margins below this are left out (0 mm by default: residual tumour is reported
        apart, see :func:`residual_regions`); None keeps everything below the threshold.
    lesions : (centroids_lps, vertex_lesion) or None
        From :func:`lesion_parts`: each region's direction is then measured from the
        centroid of the lesion holding most of its area, and that lesion is named
        (``lesion``, 1-based; ``lesion_centroid_lps_mm``).

    A region holding :data:`WHOLE_LESION_SHARE` of its lesion's analysed surface has no
    direction: ``direction`` "whole lesion k outside the zone (untreated)" (margin < 0)
    or "all round lesion k (...)", ``direction_lps`` (0, 0, 0) (its centre is the
    lesion's up to noise); so has a region whose centre lies within
    :data:`CENTRED_FRACTION` of the lesion's equivalent radius of the lesion's centroid
    (patches or a band on every side): "all round lesion k (no single direction ...)".
    Without ``lesions``: "the tumour".

    Returns
    -------
    list of ShortRegion (``_surface_regions``: with each region's vertex mask)
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
        origin, which = centre_lps, {}
        own = analysed  # the surface of the region's lesion (the whole tumour without lesions)
        if lesions is not None and len(lesions[0]):
            k = int(np.argmax(np.bincount(lesions[1][members], weights=area)))
            origin = lesions[0][k]
            which = {"lesion": k + 1, "lesion_centroid_lps_mm": tuple(float(v) for v in origin)}
            own = analysed & (lesions[1] == k)
        offset = centroid - origin
        norm = float(np.linalg.norm(offset))
        unit = offset / norm if norm > 1e-9 else np.zeros(3)
        words = direction_words(unit)
        own_area = float(mesh.vertex_area[own].sum())
        name = f"lesion {which['lesion']}" if which else "the tumour"
        if own_area > 0 and area[own[members]].sum() >= WHOLE_LESION_SHARE * own_area:
            unit = np.zeros(3)
            words = (
                f"whole {name} outside the zone (untreated)"
                if threshold_mm <= 0
                else f"all round {name} (whole surface below {threshold_mm:g} mm)"
            )
        elif own_area > 0 and norm < CENTRED_FRACTION * np.sqrt(own_area / (4.0 * np.pi)):
            unit = np.zeros(3)
            words = (
                f"all round {name} (no single direction: parts on every side, centred "
                "on the lesion)"
            )
        regions.append(
            (
                ShortRegion(
                    centroid_lps_mm=tuple(float(v) for v in centroid),
                    area_mm2=float(area.sum()),
                    min_margin_mm=float(margin_mm[members].min()),
                    direction_lps=tuple(float(v) for v in unit),
                    direction=words,
                    **which,
                ),
                members,
            )
        )
    return sorted(regions, key=lambda r: r[0].min_margin_mm)


def residual_regions(
    mesh: Mesh,
    margin_mm: np.ndarray,
    analysed: np.ndarray,
    centre_lps: np.ndarray,
    residual_points_lps: np.ndarray,
    voxel_ml: float,
    lesions: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[ResidualRegion]:
    """Residual tumour: connected surface parts with margin < 0 mm, with their volume.

    Parameters
    ----------
    mesh, margin_mm, analysed, centre_lps, lesions
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
    parts = _surface_regions(mesh, margin_mm, analysed, centre_lps, 0.0, None, lesions)
    if not parts:
        return []
    surface = [r for r, _ in parts]
    # Each residual voxel -> the region of its nearest negative vertex (every residual
    # voxel counts once, so the regions' volumes add up to the total).
    index = np.flatnonzero(np.any([m for _, m in parts], axis=0))
    vertex_region = np.argmax([m[index] for _, m in parts], axis=0)
    volumes = np.zeros(len(surface))
    if len(residual_points_lps):
        owner = vertex_region[cKDTree(mesh.vertices[index]).query(residual_points_lps)[1]]
        volumes = np.bincount(owner, minlength=len(surface)) * voxel_ml
    return [
        ResidualRegion(**r.model_dump(), volume_ml=float(v))
        for r, v in zip(surface, volumes, strict=True)
    ]
