"""Margin figures of a tumour and its ablation zone, from masks (one space or registered).

Pipeline: local grid around the tumour -> smoothed occupancies -> sub-voxel
surfaces -> exact signed distances from each tumour-surface vertex to the zone
surface -> area-weighted figures, shells, short regions, subcapsular exclusion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from hepanav.core.errors import InputError
from hepanav.imaging import lps_to_voxel, volume_ml, voxel_to_lps
from hepanav.imaging.border import border_faces
from hepanav.margin import figures
from hepanav.margin.distance import distance_to_mesh
from hepanav.margin.gaps import zone_gaps
from hepanav.margin.grid import (
    box_corners_lps,
    foreground_index_box,
    grown_index_box,
    subdivided_grid,
)
from hepanav.margin.regions import lesion_parts, residual_regions, short_regions
from hepanav.margin.residual import residual_tumor
from hepanav.margin.schema import (
    SAFE_MARGIN_MM,
    BorderCut,
    Percentiles,
    ResidualRegion,
    ShortRegion,
    ZoneGap,
)
from hepanav.margin.specks import drop_specks
from hepanav.margin.subcapsular import subcapsular_vertices
from hepanav.margin.surface import (
    Mesh,
    extract_surface,
    lengths_on_grid,
    mask_field,
    sample_field,
)

SHELLS_MM = (5.0, 6.0)
# Volume samples of the shells (>= 7,500 after striding): coverage error well under 1%.
MAX_SHELL_SAMPLES = 60_000
# The zone surface is searched up to this far from the tumour box: a margin larger
# than this is ">=10mm" anyway, and it keeps the grid small when the zone is huge.
ZONE_SEARCH_MM = 40.0


@dataclass
class Measurement:
    """Margin figures and the intermediate data the report and margin map draw from.

    Lengths in mm, areas in mm^2, volumes in ml; points in LPS mm of the zone image.
    """

    min_margin_mm: float
    min_margin_bound: str | None
    min_margin_exact_above_mm: float | None
    percentiles_mm: Percentiles
    mean_margin_mm: float
    surface_fraction_below_0mm: float
    surface_fraction_below_5mm: float
    shell_coverage_5mm: float
    shell_coverage_6mm: float
    category: str
    mam_point_lps_mm: tuple[float, float, float]
    residual_regions: list[ResidualRegion]
    residual_volume_ml: float
    residual_volume_is_lower_bound: bool
    residual_unassessable_ml: float
    short_regions: list[ShortRegion]
    zone_gaps: list[ZoneGap]
    subcapsular_exclusion_mm: float | None
    subcapsular_excluded_fraction: float
    tumor_volume_ml: float
    ablation_volume_ml: float
    tumor_surface_area_mm2: float
    border: BorderCut
    warnings: list[str]
    grid: sitk.Image = field(repr=False)
    tumor_field: np.ndarray = field(repr=False)
    zone_field: np.ndarray = field(repr=False)
    tumor_mesh: Mesh = field(repr=False)
    margin_mm: np.ndarray = field(repr=False)
    analysed: np.ndarray = field(repr=False)
    residual_points_lps: np.ndarray = field(repr=False)

    def figures(self) -> dict:
        """The JSON-able figures (the fields of :class:`hepanav.margin.schema.MarginResult`)."""
        keys = (
            "min_margin_mm",
            "min_margin_bound",
            "percentiles_mm",
            "mean_margin_mm",
            "surface_fraction_below_0mm",
            "surface_fraction_below_5mm",
            "shell_coverage_5mm",
            "shell_coverage_6mm",
            "category",
            "mam_point_lps_mm",
            "residual_regions",
            "residual_volume_ml",
            "residual_volume_is_lower_bound",
            "residual_unassessable_ml",
            "short_regions",
            "zone_gaps",
            "subcapsular_exclusion_mm",
            "subcapsular_excluded_fraction",
            "tumor_volume_ml",
            "ablation_volume_ml",
            "tumor_surface_area_mm2",
            "border",
            "warnings",
        )
        return {k: getattr(self, k) for k in keys}


def invert_points(
    transform: sitk.Transform, points: np.ndarray, iterations: int = 30
) -> np.ndarray:
    """Points ``x`` with ``transform(x) = y`` for each ``y`` in ``points`` (fixed-point iteration).

    Parameters
    ----------
    transform : SimpleITK.Transform
        A smooth transform close to a rigid motion (registration result).
    points : ndarray, shape (N, 3)
        Target points ``y``, mm.

    Returns
    -------
    ndarray, shape (N, 3)
        Pre-images ``x``, mm. Used only to place the analysis grid, which is then
        checked to contain the whole tumour.
    """
    x = np.asarray(points, dtype=float).copy()
    for _ in range(iterations):
        mapped = np.array([transform.TransformPoint(p.tolist()) for p in x])
        x += np.asarray(points) - mapped
    return x


# Sub-voxel steps of the analysis grid (mm): the fine axes keep their spacing up to
# FINE_STEP_MM (the smoothed signed distance is close to linear within a voxel);
# coarser axes and thick slices are cut into odd numbers of steps of at most
# MAX_STEP_MM, so the surface follows the interpolated distance across slices.
FINE_STEP_MM = 1.0
MAX_STEP_MM = 1.0


def analysis_steps(tumor: sitk.Image, ablation: sitk.Image) -> np.ndarray:
    """Wanted sub-voxel size (mm) along each axis (x, y, z) of the zone grid; shape (3,)."""
    spacing = np.minimum(
        lengths_on_grid(tumor, ablation, np.asarray(tumor.GetSpacing(), float)),
        lengths_on_grid(ablation, ablation, np.asarray(ablation.GetSpacing(), float)),
    )
    return np.where(spacing <= FINE_STEP_MM, spacing, np.minimum(0.5 * spacing, MAX_STEP_MM))


def _reaches_edge(field_zyx: np.ndarray, width: int) -> bool:
    """True when the field is inside (>= 0.5) within ``width`` voxels of the grid edge."""
    inside = field_zyx >= 0.5
    w = max(1, min(width, min(inside.shape) // 2))
    core = np.zeros_like(inside)
    core[w:-w, w:-w, w:-w] = True
    return bool(np.any(inside & ~core))


def _touches_border(mask: sitk.Image, box: tuple[np.ndarray, np.ndarray]) -> bool:
    return bool(border_faces(mask, box))


def measure_margin(
    tumor: sitk.Image,
    ablation: sitk.Image,
    liver: sitk.Image | None = None,
    tumor_transform: sitk.Transform | None = None,
    subcapsular_mm: float | None = None,
    occupancies: dict[str, sitk.Image] | None = None,
    liver_option: str = "--liver",
) -> Measurement:
    """Signed tumour-to-zone surface margins and the figures derived from them.

    Parameters
    ----------
    tumor : SimpleITK.Image
        Tumour mask (non-zero inside), on any grid.
    ablation : SimpleITK.Image
        Ablation-zone mask; its grid is the space of the result.
    liver : SimpleITK.Image, optional
        Liver mask in the zone's space; needed for the subcapsular exclusion.
    tumor_transform : SimpleITK.Transform, optional
        Maps zone-space points to tumour-space points (ITK resampling convention,
        e.g. a post -> pre registration). Identity when omitted.
    subcapsular_mm : float, optional
        Leave out tumour surface within this distance (mm) of the liver capsule.
    occupancies : dict, optional
        Partial-volume fractions (float 0..1, on the grid of the mask they belong to)
        under ``"tumor"`` and/or ``"ablation"``, as kept by :func:`hepanav.imaging.load_mask`
        for masks a reader resampled (tilted or sheared grids, another grid): the
        surfaces are placed from them (see :func:`hepanav.margin.surface.mask_field`).
    liver_option : str
        The option that gave ``liver`` (``--liver``, ``--liver-post``), named when the
        liver mask does not contain the tumour (see :func:`liver_share_of_tumour`).

    Returns
    -------
    Measurement

    Raises
    ------
    InputError
        Empty masks, no zone surface near the tumour, a liver mask that does not contain
        the tumour with the subcapsular exclusion on, or nothing left after it.
    """
    tumor_box = foreground_index_box(tumor)
    zone_box = foreground_index_box(ablation)
    if tumor_box is None:
        raise InputError("mask is empty (no non-zero voxel)", "tumor")
    if zone_box is None:
        raise InputError("mask is empty (no non-zero voxel)", "ablation")
    if subcapsular_mm and liver is None:
        raise InputError("subcapsular exclusion needs a liver mask", "--subcapsular-mm")
    occupancies = dict(occupancies or {})
    tumor, occupancies["tumor"], warnings = drop_specks(tumor, occupancies.get("tumor"))
    tumor_box = foreground_index_box(tumor)
    zone_faces = border_faces(ablation, zone_box)
    if zone_faces:
        warnings.append(
            f"the ablation-zone mask touches the image border ({'; '.join(zone_faces)}); "
            "the zone is taken to end there, so margins toward that border may be "
            "underestimated"
        )

    tumor_corners = box_corners_lps(tumor, *tumor_box)
    if tumor_transform is not None:
        tumor_corners = invert_points(tumor_transform, tumor_corners)
    zone_corners = box_corners_lps(ablation, *zone_box)
    lo, hi = tumor_corners.min(0) - ZONE_SEARCH_MM, tumor_corners.max(0) + ZONE_SEARCH_MM
    zone_corners = np.clip(zone_corners, lo, hi)

    reach = max(max(SHELLS_MM), subcapsular_mm or 0.0)
    pad = reach + 3.0 * max(ablation.GetSpacing())
    if tumor_transform is not None:
        pad += 10.0  # corners of a deformed box: room for curvature of the deformation
    step = analysis_steps(tumor, ablation)
    grid = subdivided_grid(ablation, np.vstack([tumor_corners, zone_corners]), pad, step)

    tumor_field = mask_field(tumor, grid, tumor_transform, occupancies.get("tumor"))
    edge = int(np.ceil(reach / min(grid.GetSpacing())))
    if tumor_transform is not None and _reaches_edge(tumor_field, edge):
        # The deformed tumour came closer to the grid edge than its shells need: the
        # box estimate through the inverse was off; grow the grid once.
        grid = subdivided_grid(
            ablation,
            np.vstack([tumor_corners, zone_corners]),
            2.0 * pad,
            step,
        )
        tumor_field = mask_field(tumor, grid, tumor_transform, occupancies.get("tumor"))
    zone_field = mask_field(ablation, grid, None, occupancies.get("ablation"))
    if liver is not None:
        share = liver_share_of_tumour(liver, grid, tumor_field)
        if share < LIVER_SHARE_MIN:
            text = (
                f"the liver mask ({liver_option}) does not contain the tumour: only "
                f"{100 * share:.0f} % of the tumour volume lies inside it (wrong mask or "
                "label, a mask of another scan, or a liver label that leaves the tumour out?)"
            )
            if subcapsular_mm:
                raise InputError(
                    f"{text}; the subcapsular exclusion measures the distance to the capsule "
                    "of a liver that holds the tumour: give such a mask (add the tumour to a "
                    "liver label that leaves it out)",
                    liver_option,
                )
            use = (
                "it drove the registration: check the fusion and the masks"
                if tumor_transform is not None
                else "it serves only the subcapsular exclusion (off here)"
            )
            warnings.append(f"{text}; {use}")
    tumor_mesh = extract_surface(tumor_field, grid)
    if tumor_mesh.is_empty:
        raise InputError("tumour surface could not be extracted (mask too small?)", "tumor")
    zone_mesh = extract_surface(zone_field, grid)
    if zone_mesh.is_empty:
        raise InputError(
            f"no ablation-zone surface within {ZONE_SEARCH_MM:.0f} mm of the tumour", "ablation"
        )

    seeds = surface_seeds(zone_field, grid, tumor_mesh.vertices)
    distance, foot = distance_to_mesh(tumor_mesh.vertices, zone_mesh, seeds)
    inside = sample_field(zone_field, grid, tumor_mesh.vertices) >= 0.5
    margin = np.where(inside, distance, -distance)

    cut = np.zeros(len(margin), dtype=bool)
    # Where the nearest zone surface is the zone image's own border face (the zone mask
    # touches the border there and is closed by the image edge), the zone may continue
    # beyond the image: the margin there is a LOWER BOUND (a larger zone only raises
    # signed margins). Everywhere else it is exact.
    foot_on_border = on_image_border(ablation, foot) if zone_faces else np.zeros_like(cut)
    if _touches_border(tumor, tumor_box):
        # The cut face is no tumour surface; and where the nearest zone surface is the
        # zone image's own border face, the margin depends on what lies beyond the image
        # (where the tumour continues): not assessable either.
        cut |= on_image_border(tumor, tumor_mesh.vertices, tumor_transform)
        cut |= foot_on_border
    cut |= on_image_border(ablation, tumor_mesh.vertices, None, outside_only=True)
    analysed = ~cut
    liver_field = None
    if subcapsular_mm:
        liver_field = mask_field(liver, grid)
        analysed &= ~subcapsular_vertices(tumor_mesh.vertices, liver_field, grid, subcapsular_mm)
    area = tumor_mesh.vertex_area
    cut_fraction = float(area[cut].sum() / area.sum())
    if area[analysed].sum() <= 0 and cut.any():
        raise InputError(
            "the tumour surface lies entirely on the image border; nothing can be assessed",
            "tumor",
        )
    if cut.any():
        warnings.append(
            f"{100 * cut_fraction:.1f}% of the tumour surface lies on the image border (part "
            "of the tumour is outside the image): not assessable there, left out of every "
            "figure"
        )
    if area[analysed].sum() <= 0:
        raise InputError(
            f"the whole tumour surface lies within {subcapsular_mm} mm of the liver capsule; "
            "nothing left to measure (lower or omit --subcapsular-mm)",
            "--subcapsular-mm",
        )
    excluded_fraction = float(area[~analysed & ~cut].sum() / area.sum())
    m, w = margin[analysed], area[analysed]
    mam, mam_point = refine_minimum(tumor_mesh, margin, analysed, zone_mesh, zone_field, grid)
    bound, exact_above = mam_bound(
        mam, mam_point, margin, analysed, foot_on_border, cut, ablation, zone_mesh, zone_faces
    )
    if bound is not None:
        warnings.append(BOUND_WARNINGS[bound])
    shells = shell_coverages(tumor_field, zone_field, grid, tumor_mesh, liver_field)
    centre = (tumor_mesh.vertices * area[:, None]).sum(0) / area.sum()
    lesions = lesion_parts(tumor_field, grid, tumor_mesh.vertices)
    residual = residual_tumor(tumor, ablation, grid, tumor_transform, tumor_field, zone_field)
    if residual.note():
        warnings.append(residual.note())
    return Measurement(
        min_margin_mm=mam,
        min_margin_bound=bound,
        min_margin_exact_above_mm=exact_above,
        percentiles_mm=figures.percentiles(m, w),
        mean_margin_mm=float(np.average(m, weights=w)),
        surface_fraction_below_0mm=figures.fraction_below(m, w, 0.0),
        surface_fraction_below_5mm=figures.fraction_below(m, w, SAFE_MARGIN_MM),
        shell_coverage_5mm=shells[0],
        shell_coverage_6mm=shells[1],
        category=figures.category(mam),
        mam_point_lps_mm=tuple(float(v) for v in mam_point),
        residual_regions=_with_refined_minimum(
            residual_regions(
                tumor_mesh,
                margin,
                analysed,
                centre,
                residual.points_lps,
                residual.voxel_ml,
                lesions,
            ),
            mam,
        ),
        residual_volume_ml=residual.volume_ml,
        residual_volume_is_lower_bound=residual.lower_bound,
        residual_unassessable_ml=residual.unassessable_ml,
        short_regions=(
            _with_refined_minimum(
                short_regions(tumor_mesh, margin, analysed, centre, lesions=lesions), mam
            )
            if mam >= 0
            else short_regions(tumor_mesh, margin, analysed, centre, lesions=lesions)
        ),
        zone_gaps=zone_gaps(zone_field, tumor_field, grid, tumor_mesh),
        subcapsular_exclusion_mm=subcapsular_mm or None,
        subcapsular_excluded_fraction=excluded_fraction,
        tumor_volume_ml=volume_ml(tumor),
        ablation_volume_ml=volume_ml(ablation),
        tumor_surface_area_mm2=tumor_mesh.area_mm2,
        border=BorderCut(
            tumor_surface_fraction_not_assessable=cut_fraction,
            tumor_cut_by_border=bool(cut.any()),
        ),
        warnings=warnings,
        grid=grid,
        tumor_field=tumor_field,
        zone_field=zone_field,
        tumor_mesh=tumor_mesh,
        margin_mm=margin,
        analysed=analysed,
        residual_points_lps=residual.points_lps,
    )


#: A liver mask holding less than this share of the tumour volume does not contain it.
LIVER_SHARE_MIN = 0.5


def liver_share_of_tumour(liver: sitk.Image, grid: sitk.Image, tumor_field: np.ndarray) -> float:
    """Share (0..1) of the tumour's analysis-grid voxels (``tumor_field >= 0.5``, zone
    space) that lie inside the liver mask (nearest voxel; outside its image: not liver)."""
    inside = tumor_field >= 0.5
    if not inside.any():
        return 1.0
    resampled = sitk.Resample(
        sitk.Cast(liver != 0, sitk.sitkUInt8),
        grid,
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        0,
        sitk.sitkUInt8,
    )
    return float(np.mean(sitk.GetArrayViewFromImage(resampled)[inside] != 0))


#: ``min_margin_bound`` -> the warning that explains it (margin.json ``warnings``).
BOUND_WARNINGS = {
    "lower": "the MAM is reached where the ablation zone is cut by the image border (its "
    "nearest zone surface is the image edge): the zone may continue beyond the image, so "
    "the MAM is a LOWER BOUND (the true MAM may be larger) and not decisive unless even "
    "its upper end settles the category",
    "upper": "part of the tumour is outside the image (cut by the image border): the MAM "
    "covers only the part inside, so it is an UPPER BOUND of the lesion's MAM (the unseen "
    "part may have a smaller margin); only a MAM below 0 mm by more than u is decisive",
    "unknown": "the tumour is cut by the image border and the MAM is reached where the "
    "zone is cut by it too: the MAM is neither a lower nor an upper bound of the lesion's "
    "MAM (not decisive)",
}


def mam_bound(
    mam: float,
    mam_point: np.ndarray,
    margin: np.ndarray,
    analysed: np.ndarray,
    foot_on_border: np.ndarray,
    cut: np.ndarray,
    ablation: sitk.Image,
    zone_mesh: Mesh,
    zone_faces: list[str],
) -> tuple[str | None, float | None]:
    """Whether the MAM is a bound because of the image border, and the exact upper end.

    A larger zone only raises signed margins, and margins whose nearest zone surface is
    real (not the image edge closing a zone cut by the border) are exact. So:

    * the MAM point's nearest zone surface on the zone image's border face: the true
      MAM lies in ``[MAM, exact_above]``, ``exact_above`` the smallest margin measured
      against real zone surface (0 when any analysed surface is outside the zone, which
      stays outside however far the zone continues beyond the image; None when there is
      none): ``"lower"``;
    * surface of the tumour left out as cut by the border (``cut``): the part outside
      the image may have any margin, the MAM is an upper bound: ``"upper"``;
    * both: ``"unknown"``; neither: None (the MAM is a measurement within u).

    Returns
    -------
    bound : {"lower", "upper", "unknown"} or None
    exact_above_mm : float or None
        Upper end of the true MAM for ``"lower"`` (None otherwise, or when unknown).
    """
    lower = False
    if zone_faces:
        _, foot = distance_to_mesh(np.asarray(mam_point, dtype=float)[None], zone_mesh)
        lower = bool(on_image_border(ablation, foot)[0])
    upper = bool(cut.any())
    if lower and upper:
        return "unknown", None
    if upper:
        return "upper", None
    if not lower:
        return None, None
    exact = analysed & ~foot_on_border & (margin >= 0)
    candidates = [float(margin[exact].min())] if exact.any() else []
    if np.any(analysed & (margin < 0)):
        candidates.append(0.0)
    return "lower", max(mam, min(candidates)) if candidates else None


def on_image_border(
    image: sitk.Image,
    points_lps: np.ndarray,
    transform: sitk.Transform | None = None,
    outside_only: bool = False,
) -> np.ndarray:
    """Points on (within a quarter voxel of) or beyond the outer face of ``image``'s grid.

    The masks count as empty outside their image, so a tumour cut by the border gets a
    surface ON the border face: those points are not tumour surface and cannot be
    assessed. With ``outside_only`` only points beyond the face count (a tumour surface
    outside the zone's image has no zone to measure against).

    Returns
    -------
    ndarray of bool, shape (N,)
    """
    points = np.asarray(points_lps, dtype=float)
    if transform is not None:
        points = np.array([transform.TransformPoint(p.tolist()) for p in points])
    index = lps_to_voxel(image, points)
    size = np.asarray(image.GetSize(), dtype=float)
    tol = 0.0 if outside_only else 0.25
    return np.any((index < -0.5 + tol) | (index > size - 0.5 - tol), axis=1)


def _with_refined_minimum(regions: list, mam: float) -> list:
    """The worst region holds the MAM point: give it the refined minimum."""
    if regions and mam < regions[0].min_margin_mm:
        regions[0] = regions[0].model_copy(update={"min_margin_mm": mam})
    return regions


def refine_minimum(
    tumor_mesh: Mesh,
    margin: np.ndarray,
    analysed: np.ndarray,
    zone_mesh: Mesh,
    zone_field: np.ndarray,
    grid: sitk.Image,
    n_worst: int = 40,
    n_split: int = 6,
) -> tuple[float, np.ndarray]:
    """Smallest signed margin over the tumour SURFACE, not only over its vertices.

    The minimum over mesh vertices is biased upward by up to half a vertex spacing
    where the margin has a sharp minimum (the axis of a narrow channel). Points on
    the triangles around the ``n_worst`` vertices (barycentric lattice with
    ``n_split`` steps per edge) get the exact signed distance too.

    Returns
    -------
    mam_mm : float
    point_lps : ndarray, shape (3,)
        Where the minimum lies, LPS mm.
    """
    candidates = np.flatnonzero(analysed)
    worst = candidates[np.argsort(margin[candidates])[:n_worst]]
    best = int(worst[0])
    mam, point = float(margin[best]), tumor_mesh.vertices[best]
    faces = tumor_mesh.faces[np.isin(tumor_mesh.faces, worst).any(axis=1)]
    faces = faces[analysed[faces].all(axis=1)]
    if faces.size == 0:
        return mam, point
    k = np.arange(n_split + 1)
    i, j = np.meshgrid(k, k, indexing="ij")
    keep = i + j <= n_split
    bary = np.stack([i[keep], j[keep], n_split - i[keep] - j[keep]], axis=1) / n_split
    tri = tumor_mesh.vertices[faces]  # (F, 3, 3)
    points = np.einsum("bk,fkd->fbd", bary, tri).reshape(-1, 3)
    distance, _ = distance_to_mesh(points, zone_mesh)
    inside = sample_field(zone_field, grid, points) >= 0.5
    signed = np.where(inside, distance, -distance)
    j = int(np.argmin(signed))
    if signed[j] < mam:
        mam, point = float(signed[j]), points[j]
    return mam, point


def surface_seeds(field_zyx: np.ndarray, grid: sitk.Image, points_lps: np.ndarray) -> np.ndarray:
    """A first guess of each point's closest surface point (LPS mm), shape (N, 3).

    The centre of the nearest boundary voxel of ``field >= 0.5`` (a voxel with a
    6-neighbour on the other side), from the Euclidean feature transform of the
    grid; :func:`hepanav.margin.distance.distance_to_mesh` refines it exactly.
    """
    inside = field_zyx >= 0.5
    boundary = inside ^ ndimage.binary_erosion(inside, border_value=1)
    boundary |= ~inside & ndimage.binary_dilation(inside)
    if not boundary.any():
        return np.asarray(points_lps, dtype=float)
    nearest = np.empty((3, *boundary.shape), dtype=np.int32)
    ndimage.distance_transform_edt(
        ~boundary,
        sampling=tuple(reversed(grid.GetSpacing())),
        return_indices=True,
        indices=nearest,
    )
    index = np.rint(lps_to_voxel(grid, points_lps)).astype(int)
    index = np.clip(index, 0, np.asarray(grid.GetSize()) - 1)
    feature = nearest[:, index[:, 2], index[:, 1], index[:, 0]]  # (3: z, y, x), N
    return voxel_to_lps(grid, feature[::-1].T.astype(float))


def shell_coverages(
    tumor_field: np.ndarray,
    zone_field: np.ndarray,
    grid: sitk.Image,
    tumor_mesh: Mesh,
    liver_field: np.ndarray | None = None,
    shells_mm: tuple[float, ...] = SHELLS_MM,
) -> list[float]:
    """Fraction of the volume of each shell around the tumour that lies inside the zone.

    The shell of width X is the set of points outside the tumour within X mm of its
    surface. It is sampled at the grid's sub-voxel centres (equal volumes). The
    Euclidean distance transform (with the grid spacing) brackets each point's
    distance ``d`` to the surface as ``edt - diagonal <= d <= edt``; only the
    points in that ambiguous band get the exact distance to the surface mesh.

    Parameters
    ----------
    tumor_field, zone_field : ndarray, shape (nz, ny, nx)
        Occupancies on ``grid`` (0.5 = surface).
    grid : SimpleITK.Image
        Geometry of the fields.
    tumor_mesh : Mesh
        Tumour surface, LPS mm.
    liver_field : ndarray, optional
        When given (subcapsular exclusion on), the shell is restricted to the liver:
        the zone cannot extend beyond the capsule.
    shells_mm : tuple of float
        Shell widths, mm.

    Returns
    -------
    list of float
        Coverage fraction in [0, 1] per shell.
    """
    spacing_zyx = tuple(reversed(grid.GetSpacing()))
    diagonal = float(np.linalg.norm(spacing_zyx))
    widest = max(shells_mm)
    # The shells lie within widest + diagonal of the tumour: the distance transform runs
    # on the tumour's box grown by that (plus a voxel), where it equals the whole grid's
    # (the nearest tumour voxel of every point is in the box). Indices below are the
    # grid's (``offset`` added back).
    offset, box = grown_index_box(tumor_field >= 0.5, spacing_zyx, widest + diagonal)
    outside = tumor_field[box] < 0.5
    nearest = np.empty((3, *outside.shape), dtype=np.int32)
    edt = ndimage.distance_transform_edt(
        outside, sampling=spacing_zyx, return_indices=True, indices=nearest
    )
    candidate = outside & (edt <= widest + diagonal)
    if liver_field is not None:
        candidate &= liver_field[box] >= 0.5
    count = int(np.count_nonzero(candidate))
    if count > MAX_SHELL_SAMPLES:
        # A regular sub-lattice samples the volume fractions without bias and keeps
        # the exact-distance work bounded for large tumours (every stride-th GRID index).
        stride = int(np.ceil(np.cbrt(count / MAX_SHELL_SAMPLES)))
        lattice = np.zeros_like(candidate)
        first = (-offset) % stride
        lattice[first[0] :: stride, first[1] :: stride, first[2] :: stride] = True
        candidate &= lattice
    idx = np.argwhere(candidate) + offset  # (z, y, x) on the grid
    d = edt[candidate].copy()
    band = np.flatnonzero(
        np.any([(d > x - diagonal) & (d <= x + diagonal) for x in shells_mm], axis=0)
    )
    if band.size:
        points = voxel_to_lps(grid, idx[band][:, ::-1].astype(float))
        z, y, x = (idx[band] - offset).T
        feature = nearest[:, z, y, x] + offset[:, None]
        seeds = voxel_to_lps(grid, feature[::-1].T.astype(float))
        # Seen from outside, the tumour is locally convex: the seeds (nearest tumour
        # voxel) are within a voxel of the foot point and two steps suffice.
        d[band], _ = distance_to_mesh(points, tumor_mesh, seeds, k=12, max_steps=2)
    covered = zone_field[box][candidate] >= 0.5
    out = []
    for width in shells_mm:
        in_shell = d <= width
        out.append(float(covered[in_shell].mean()) if in_shell.any() else 0.0)
    return out
