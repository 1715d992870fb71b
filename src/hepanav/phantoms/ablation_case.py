"""An ablation case: pre CT with a tumour, post CT with an ablation zone, and ground truth.

``build_case`` makes everything in memory; ``write_case`` writes the folder
described in docs/phantoms.md (and agent-notes/phantom-case.md);
``make_ablation_case`` does both. The post scan is the pre scan (tumour
included) warped by a known respiratory-like deformation, with the ablation
zone painted in post space and fresh image noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial.transform import Rotation

from hepanav.core.atomic import write_json, write_text
from hepanav.core.errors import InputError
from hepanav.imaging import resample_mask_like, write_image
from hepanav.phantoms.abdomen import add_noise, build_anatomy, default_grid
from hepanav.phantoms.canvas import HU
from hepanav.phantoms.deformation import (
    RespiratoryDeformation,
    displacement_image,
    warp_to_post,
)
from hepanav.phantoms.grid import Grid
from hepanav.phantoms.implant import BaseScan, load_base_scan
from hepanav.phantoms.lesions import StarShape, paint_shape, rasterize
from hepanav.phantoms.schema import (
    LABEL_NAMES,
    AblationCase,
    CaseParameters,
    CaseTruth,
    TrueMargins,
)
from hepanav.phantoms.truth import true_margins

# Above this many post voxels the true displacement field is written on a coarser grid
# over the same extent (3 x float64 per voxel: 16 M voxels = 384 MB).
MAX_DISPLACEMENT_VOXELS = 16_000_000
LANDMARK_MIN_DEPTH_MM = 5.0
MIN_LIVER_HALF_EXTENT_MM = 60.0
AIR_HU = -1000.0


@dataclass
class CaseData:
    """An ablation case in memory (images on their grids, LPS mm)."""

    pre_ct: sitk.Image
    post_ct: sitk.Image
    pre_liver: sitk.Image
    post_liver: sitk.Image
    pre_tumor: sitk.Image
    post_ablation: sitk.Image
    pre_labels: sitk.Image | None
    truth_post_tumor: sitk.Image
    truth_pre_ablation: sitk.Image
    displacement_post_to_pre: sitk.Image
    landmarks_pre: np.ndarray
    landmarks_post: np.ndarray
    truth: CaseTruth
    tumor: StarShape
    zone: StarShape
    deformation: RespiratoryDeformation
    label_names: dict[int, str]


def case_parameters(
    params: CaseParameters | dict | None = None, **overrides: Any
) -> CaseParameters:
    """Validated parameters: ``params`` (model or dict) updated by keyword ``overrides``.

    Nested specs may be given as dicts and are merged, e.g.
    ``case_parameters(tumor={"radius_mm": 10}, zone={"offset_lps": (0, 0, 8)})``.
    """
    base = params.model_dump() if isinstance(params, CaseParameters) else dict(params or {})
    for key, value in overrides.items():
        if hasattr(value, "model_dump"):
            value = value.model_dump()
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return CaseParameters.model_validate(base)


def make_ablation_case(
    out_dir: str | Path,
    seed: int = 0,
    base_ct: str | Path | None = None,
    base_liver: str | Path | None = None,
    params: CaseParameters | dict | None = None,
    *,
    liver_label: int | None = None,
    truth_displacement: bool = True,
    report: bool = False,
    **overrides: Any,
) -> AblationCase:
    """Generate an ablation case and write it to ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write (created if missing).
    seed : int
        Seeds anatomy, lesion shapes, deformation and noise.
    base_ct, base_liver : str or Path, optional
        A real CT (file or DICOM folder) and its liver mask or label map to implant
        the lesions into; both or neither.
    params : CaseParameters or dict, optional
        Grid, lesion, deformation and noise parameters (see ``hepanav.phantoms.schema``).
    liver_label : int, optional
        Liver label in a multi-label ``base_liver`` (default 5, TotalSegmentator).
    truth_displacement : bool
        Write ``truth/displacement_post_to_pre.nii.gz`` (the largest file; tests that
        do not need it save seconds).
    report : bool
        Also write the quick-look ``case.html``.
    **overrides
        Fields of :class:`CaseParameters`, e.g. ``spacing_mm=(1, 1, 1)``,
        ``zone={"margin_mm": 3}``.

    Returns
    -------
    AblationCase
        The description written to ``out_dir/case.json``.
    """
    parameters = case_parameters(params, **overrides)
    case = build_case(seed, parameters, base_ct, base_liver, liver_label=liver_label)
    return write_case(case, out_dir, truth_displacement=truth_displacement, report=report)


# Largest --seed: 2**32 - 1, the range of a 32-bit seed (NumPy legacy seeding).
MAX_SEED = 2**32 - 1


def build_case(
    seed: int = 0,
    params: CaseParameters | None = None,
    base_ct: str | Path | None = None,
    base_liver: str | Path | None = None,
    *,
    liver_label: int | None = None,
) -> CaseData:
    """Build an ablation case in memory (see :func:`make_ablation_case`)."""
    params = params or CaseParameters()
    if (base_ct is None) != (base_liver is None):
        missing = "--base-liver" if base_liver is None else "--base-ct"
        raise InputError("a real base scan needs both --base-ct and --base-liver", missing)
    if liver_label is not None and base_liver is None:
        raise InputError("only applies to a real base scan (--base-liver)", "--liver-label")
    if not 0 <= seed <= MAX_SEED:
        # NumPy seeds are non-negative (a negative one would end in a traceback); 2**32 - 1
        # bounds the integer Typer would otherwise accept at any length.
        raise InputError(f"must be an integer from 0 to {MAX_SEED}, got {seed}", "--seed")
    if liver_label is not None and not 1 <= liver_label <= 65535:
        # 16-bit label maps; 0 is background.
        raise InputError(f"must be a label from 1 to 65535, got {liver_label}", "--liver-label")
    rng = np.random.default_rng(seed)
    if base_ct is None:
        base = procedural_base(np.random.default_rng([seed, 0]), params)
    else:
        base = load_base_scan(base_ct, base_liver, liver_label)
    post_grid = (
        base.grid if params.post_spacing_mm is None else regrid(base.grid, params.post_spacing_mm)
    )

    depth = liver_depth(base)
    tumor = place_tumor(rng, base, params, depth)
    deformation = liver_deformation(rng, base, params, post_grid)
    zone = place_zone(rng, tumor, deformation, params, post_grid)

    transform = deformation.transform(post_grid)
    pre_hu, post_hu = paint_scans(base, post_grid, tumor, zone, transform, params, seed, rng)
    max_shift = deformation.max_displacement(post_grid)
    pre_liver = base.grid.image(base.liver)
    post_liver = _mask_through(base.liver, base.grid, post_grid, transform, max_shift)
    lm_pre = choose_landmarks(
        rng, base, depth, tumor, zone, deformation, post_grid, params.n_landmarks
    )
    margins = true_margins(tumor, zone, deformation)
    truth = CaseTruth(
        **margins.model_dump(),
        seed=seed,
        max_displacement_mm=max_shift,
        tumor_center_pre_lps=tuple(tumor.center.tolist()),
        tumor_center_post_lps=tuple(deformation.to_post(tumor.center).tolist()),
        zone_center_post_lps=tuple(zone.center.tolist()),
        tumor_shape=tumor.parameters(),
        zone_shape=zone.parameters(),
        parameters=params,
        base_ct=base.source,
    )
    labels = None
    if base.labels is not None:
        dtype = np.uint8 if base.labels.max() < 256 else np.uint16
        labels = base.grid.image(base.labels.astype(dtype))
    return CaseData(
        pre_ct=base.grid.image(_int16(pre_hu)),
        post_ct=post_grid.image(_int16(post_hu)),
        pre_liver=pre_liver,
        post_liver=post_liver,
        pre_tumor=base.grid.image(rasterize(base.grid, tumor)),
        post_ablation=post_grid.image(rasterize(post_grid, zone)),
        pre_labels=labels,
        truth_post_tumor=post_grid.image(
            _rasterize_mapped(post_grid, tumor, deformation.to_pre, deformation.to_post)
        ),
        truth_pre_ablation=base.grid.image(
            _rasterize_mapped(base.grid, zone, deformation.to_post, deformation.to_pre)
        ),
        displacement_post_to_pre=displacement_image(transform, _displacement_grid(post_grid)),
        landmarks_pre=lm_pre,
        landmarks_post=deformation.to_post(lm_pre),
        truth=truth,
        tumor=tumor,
        zone=zone,
        deformation=deformation,
        label_names=base.label_names,
    )


# -- steps ------------------------------------------------------------------------------


def paint_scans(
    base: BaseScan,
    post_grid: Grid,
    tumor: StarShape,
    zone: StarShape,
    transform: sitk.Transform,
    params: CaseParameters,
    seed: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Pre and post CT arrays (z, y, x), float32 HU, on their grids.

    Pre = base + tumour. Post = the pre scan before noise, warped onto the post grid
    (``transform`` maps post to pre points), with the zone and its rim painted. The
    procedural phantom then gets independent noise in each scan; a real scan keeps
    its own noise and only the painted lesions get noise of ``params.noise_hu``.
    """
    lesion_noise = 0.0 if base.procedural else params.noise_hu
    pre_hu = base.hu.copy()
    paint_shape(
        pre_hu,
        base.grid,
        tumor,
        base.liver_hu + params.tumor.contrast_hu,
        noise_hu=lesion_noise,
        rng=rng,
    )
    warped = warp_to_post(base.grid.image(pre_hu), post_grid, transform, AIR_HU)
    post_hu = sitk.GetArrayFromImage(warped)
    paint_shape(
        post_hu,
        post_grid,
        zone,
        base.liver_hu + params.zone.contrast_hu,
        rim_mm=params.zone.rim_mm,
        rim_hu=base.liver_hu + params.zone.rim_contrast_hu,
        noise_hu=lesion_noise,
        rng=rng,
    )
    if params.zone.tract_diameter_mm > 0 or params.zone.gas_bubbles > 0:
        from hepanav.phantoms.zone_features import paint_tract_and_gas

        paint_tract_and_gas(
            post_hu,
            post_grid,
            zone,
            params.zone.tract_diameter_mm,
            params.zone.tract_out_mm,
            params.zone.gas_bubbles,
            np.random.default_rng([seed, 3]),  # own stream: other draws stay as they were
        )
    if base.procedural:
        pre_hu = add_noise(pre_hu, params.noise_hu, np.random.default_rng([seed, 1]))
        post_hu = add_noise(post_hu, params.noise_hu, np.random.default_rng([seed, 2]))
    return pre_hu, post_hu


def procedural_base(rng: np.random.Generator, params: CaseParameters) -> BaseScan:
    """The procedural phantom as a base scan (noise-free)."""
    grid = default_grid(params.spacing_mm, params.size)
    anatomy = build_anatomy(rng, grid)
    if not anatomy.liver.any():
        raise InputError("the grid does not contain the liver; enlarge size or spacing", "size")
    present = np.unique(anatomy.labels)
    return BaseScan(
        grid=grid,
        hu=anatomy.hu,
        liver=anatomy.liver,
        labels=anatomy.labels,
        label_names={int(i): LABEL_NAMES[int(i)] for i in present if i},
        liver_hu=HU["liver"],
        bifurcations=anatomy.bifurcations,
        procedural=True,
    )


def regrid(grid: Grid, spacing_mm: tuple[float, float, float]) -> Grid:
    """A grid over the same physical box as ``grid`` with another voxel size."""
    old = np.asarray(grid.spacing)
    new = np.asarray(spacing_mm, float)
    size = np.maximum(np.round(np.asarray(grid.size) * old / new).astype(int), 2)
    matrix = np.asarray(grid.direction).reshape(3, 3)
    edge = np.asarray(grid.origin) - matrix @ (old / 2)
    origin = edge + matrix @ (new / 2)
    return Grid(
        tuple(int(n) for n in size), tuple(new.tolist()), tuple(origin.tolist()), grid.direction
    )


def liver_depth(base: BaseScan) -> tuple[np.ndarray, int]:
    """Depth inside the liver (mm) at every ``stride``-th voxel, and the stride.

    Computed on a subsampled grid (about 1.5 mm) so that large grids stay fast.
    """
    stride = max(1, int(round(1.5 / min(base.grid.spacing))))
    sub = base.liver[::stride, ::stride, ::stride] > 0
    sampling = np.asarray(base.grid.spacing)[::-1] * stride
    # Pad with background: the edge of the scan counts as outside (a lesion must not be
    # cut by the field of view).
    depth = ndimage.distance_transform_edt(np.pad(sub, 1), sampling=sampling)
    return depth[1:-1, 1:-1, 1:-1].astype(np.float32), stride


def _depth_points(base: BaseScan, depth: tuple[np.ndarray, int], min_depth: float):
    """LPS points (N, 3) of the subsampled voxels at least ``min_depth`` mm inside the liver."""
    arr, stride = depth
    k, j, i = np.nonzero(arr >= min_depth)
    return base.grid.index_to_lps(np.column_stack([i, j, k]) * stride), arr[k, j, i]


def place_tumor(
    rng: np.random.Generator, base: BaseScan, params: CaseParameters, depth
) -> StarShape:
    """The tumour: at the given centre (must be in the liver) or deep in the liver by seed."""
    spec = params.tumor
    axes = spec.radius_mm * np.asarray(spec.axis_ratios, float)
    if spec.center_lps is not None:
        center = np.asarray(spec.center_lps, float)
        idx = np.rint(base.grid.lps_to_index(center[None])[0]).astype(int)
        inside = np.all(idx >= 0) and np.all(idx < np.asarray(base.grid.size))
        if not inside or not base.liver[idx[2], idx[1], idx[0]]:
            raise InputError("tumour centre is not inside the liver", "tumor.center_lps")
    else:
        extent = float(axes.max()) * (1 + spec.irregularity)
        need = extent + max(params.zone.margin_mm, 0) + 3.0
        deepest = float(depth[0].max())
        if deepest < extent + 1.0:
            raise InputError(
                f"a tumour of radius {spec.radius_mm:g} mm does not fit in this liver (its "
                f"deepest point is {deepest:.0f} mm from the liver's or the scan's edge)",
                "tumor.radius_mm",
            )
        # As deep as tumour + margin needs, else as deep as this liver allows.
        points, _ = _depth_points(base, depth, min(need, max(extent + 1.0, 0.8 * deepest)))
        center = points[rng.integers(len(points))]
    shape = StarShape.random(rng, center, axes, spec.irregularity, spec.rotation_deg)
    require_in_view(shape, base.grid, "tumour", "tumor.radius_mm", "; use a smaller tumour")
    return shape


def require_in_view(shape: StarShape, grid: Grid, what: str, field: str, hint: str = "") -> None:
    """Raise ``InputError`` when ``shape`` is not entirely inside the scan's field of view.

    A lesion cut by the edge of the scan would make the masks disagree with the
    continuous ground truth.
    """
    verts, _ = shape.surface_mesh(4000)
    index = grid.lps_to_index(verts)
    inside = np.all((index >= 0) & (index <= np.asarray(grid.size) - 1), axis=1)
    if not inside.all():
        size = 2 * float(np.max(shape.semi_axes))
        raise InputError(
            f"the {what} ({size:.0f} mm across) does not fit inside the scan's field of view "
            f"at its position{hint}",
            field,
        )


def liver_deformation(
    rng: np.random.Generator, base: BaseScan, params: CaseParameters, post_grid: Grid
) -> RespiratoryDeformation:
    """Respiratory-like deformation centred on the liver, scaled to the spec's maximum."""
    k, j, i = np.nonzero(base.liver[::2, ::2, ::2])
    pts = base.grid.index_to_lps(np.column_stack([i, j, k]) * 2)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    spec = params.deformation
    if spec.max_displacement_mm == 0:
        return RespiratoryDeformation.identity()
    # A partial scan (a 4 cm slab) must not make the motion steeper: the plateau is at
    # least as large as a small liver (half-extent 60 mm).
    half = np.maximum((hi - lo) / 2, MIN_LIVER_HALF_EXTENT_MM)
    return RespiratoryDeformation.random(rng, spec, pts.mean(axis=0), half, post_grid)


def place_zone(
    rng: np.random.Generator,
    tumor: StarShape,
    deformation: RespiratoryDeformation,
    params: CaseParameters,
    post_grid: Grid,
) -> StarShape:
    """The ablation zone in post space: tumour axes + margin, centred on the moved tumour.

    The zone keeps the tumour's orientation (unless ``zone.rotation_deg`` is set), so
    a sphere tumour with a sphere zone has MAM = margin - |offset| exactly without
    deformation.
    """
    spec = params.zone
    axes = tumor.semi_axes + spec.margin_mm
    if np.any(axes <= 0.5):
        raise InputError("zone margin makes the ablation zone vanish", "zone.margin_mm")
    axes = axes * np.array([spec.elongation, 1.0, 1.0])
    center = deformation.to_post(tumor.center) + np.asarray(spec.offset_lps, float)
    shape = StarShape.random(rng, center, axes, spec.irregularity, None)
    if spec.rotation_deg is None:
        shape = StarShape(
            shape.center, shape.semi_axes, tumor.rotation, shape.irregularity, shape.harmonics
        )
    else:
        rot = Rotation.from_euler("xyz", spec.rotation_deg, degrees=True).as_matrix()
        shape = StarShape(shape.center, shape.semi_axes, rot, shape.irregularity, shape.harmonics)
    require_in_view(
        shape,
        post_grid,
        "ablation zone",
        "zone.margin_mm",
        " after the respiratory motion; use a smaller tumour, margin, offset or "
        "maximum displacement",
    )
    return shape


def choose_landmarks(
    rng: np.random.Generator,
    base: BaseScan,
    depth,
    tumor: StarShape,
    zone: StarShape,
    deformation: RespiratoryDeformation,
    post_grid: Grid,
    n: int,
) -> np.ndarray:
    """``n`` landmark points (n, 3) in pre LPS mm, inside the liver, away from the lesions.

    Vessel bifurcations come first (they are what a person would click); random deep
    liver points fill up the rest.
    """
    zone_pre = deformation.to_pre(zone.center)
    keep_out = float(np.max(zone.semi_axes)) * (1 + zone.irregularity) + LANDMARK_MIN_DEPTH_MM

    def usable(p: np.ndarray) -> np.ndarray:
        if len(p) == 0:
            return np.zeros(0, bool)
        ok = (np.linalg.norm(p - tumor.center, axis=1) > keep_out) & (
            np.linalg.norm(p - zone_pre, axis=1) > keep_out
        )
        idx = np.rint(post_grid.lps_to_index(deformation.to_post(p))).astype(int)
        ok &= np.all((idx >= 0) & (idx < np.asarray(post_grid.size)), axis=1)
        arr, stride = depth
        sub = np.rint(base.grid.lps_to_index(p) / stride).astype(int)
        inb = np.all((sub >= 0) & (sub < np.asarray(arr.shape[::-1])), axis=1)
        d = np.zeros(len(p))
        d[inb] = arr[sub[inb, 2], sub[inb, 1], sub[inb, 0]]
        return ok & (d >= LANDMARK_MIN_DEPTH_MM)

    picks = base.bifurcations[usable(base.bifurcations)]
    picks = picks[rng.permutation(len(picks))][:n]
    if len(picks) < n:
        pool, _ = _depth_points(base, depth, LANDMARK_MIN_DEPTH_MM)
        pool = pool[usable(pool)]
        if len(pool) < n - len(picks):
            raise InputError(
                f"the liver is too small to hold {n} landmarks away from the lesions", "liver"
            )
        extra = pool[rng.choice(len(pool), n - len(picks), replace=False)]
        picks = np.vstack([picks, extra]) if len(picks) else extra
    return picks


def _rasterize_mapped(grid: Grid, shape: StarShape, to_shape_space, from_shape_space):
    """uint8 mask (z, y, x) on ``grid`` of voxels whose centre maps into ``shape``.

    ``to_shape_space`` maps this grid's points (..., 3) into the shape's space and
    ``from_shape_space`` maps back (used only to find the box to test).
    """
    verts, _ = shape.surface_mesh(4000)
    mapped = from_shape_space(verts)
    pad = 2 * max(grid.spacing)
    mask = np.zeros(grid.shape, np.uint8)
    block = grid.box(mapped.min(axis=0) - pad, mapped.max(axis=0) + pad)
    if block is not None:
        mask[block] = shape.contains(to_shape_space(grid.points(block)))
    return mask


def _mask_through(
    mask: np.ndarray,
    pre_grid: Grid,
    post_grid: Grid,
    transform: sitk.Transform,
    max_shift_mm: float,
) -> sitk.Image:
    """A pre-space mask (z, y, x) resampled onto the post grid through the post -> pre transform.

    Only the post voxels that can map into the mask's box (grown by the largest
    displacement) are resampled; on a 512 x 512 x 300 grid that is several times faster.
    """
    out = np.zeros(post_grid.shape, np.uint8)
    nz = np.nonzero(mask)
    if nz[0].size:
        lo = np.array([nz[2].min(), nz[1].min(), nz[0].min()])
        hi = np.array([nz[2].max(), nz[1].max(), nz[0].max()])
        corners = np.array(
            [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
        )
        lps = pre_grid.index_to_lps(corners)
        pad = max_shift_mm + 2 * max(post_grid.spacing)
        block = post_grid.box(lps.min(axis=0) - pad, lps.max(axis=0) + pad)
        if block is not None:
            start = np.array([block[2].start, block[1].start, block[0].start])
            size = [b.stop - b.start for b in block][::-1]
            sub = Grid(
                tuple(size),
                post_grid.spacing,
                tuple(post_grid.index_to_lps(start[None])[0].tolist()),
                post_grid.direction,
            )
            reference = sub.image(np.zeros(sub.shape, np.uint8))
            warped = resample_mask_like(pre_grid.image(mask), reference, transform)
            out[block] = sitk.GetArrayViewFromImage(warped)
    return post_grid.image(out)


def _displacement_grid(post_grid: Grid) -> Grid:
    n = int(np.prod(post_grid.size))
    if n <= MAX_DISPLACEMENT_VOXELS:
        return post_grid
    factor = float(np.cbrt(n / MAX_DISPLACEMENT_VOXELS))
    return regrid(post_grid, tuple(s * factor for s in post_grid.spacing))


def _int16(hu: np.ndarray) -> np.ndarray:
    # Clip only to the type's range: real scans carry values beyond -1024..3071.
    info = np.iinfo(np.int16)
    return np.clip(np.rint(hu), info.min, info.max).astype(np.int16)


# -- writing ----------------------------------------------------------------------------


def write_landmarks(path: Path, points: np.ndarray) -> Path:
    """Write ``id,x,y,z`` (LPS mm) CSV atomically."""
    rows = ["id,x,y,z"] + [
        f"{i + 1},{p[0]:.4f},{p[1]:.4f},{p[2]:.4f}" for i, p in enumerate(points)
    ]
    return write_text(path, "\n".join(rows) + "\n")


def write_case(
    case: CaseData, out_dir: str | Path, truth_displacement: bool = True, report: bool = False
) -> AblationCase:
    """Write a case folder; return its description (also written as ``case.json``).

    With ``truth_displacement=False`` the displacement field is not written and
    ``truth_displacement_post_to_pre`` is null in ``case.json``; with ``report=True``
    a quick-look ``case.html`` (slices with contours, the true margins) is added.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    desc = AblationCase(
        seed=case.truth.seed,
        kind="procedural" if case.truth.base_ct is None else "implanted",
        pre_labels="pre_labels.nii.gz" if case.pre_labels is not None else None,
        truth_displacement_post_to_pre=(
            "truth/displacement_post_to_pre.nii.gz" if truth_displacement else None
        ),
        label_names=case.label_names,
        parameters=case.truth.parameters,
        true_margins=TrueMargins.model_validate(
            case.truth.model_dump(include=set(TrueMargins.model_fields))
        ),
    )
    images = {
        desc.pre_ct: case.pre_ct,
        desc.post_ct: case.post_ct,
        desc.pre_liver: case.pre_liver,
        desc.post_liver: case.post_liver,
        desc.pre_tumor: case.pre_tumor,
        desc.post_ablation: case.post_ablation,
        desc.truth_post_tumor: case.truth_post_tumor,
        desc.truth_pre_ablation: case.truth_pre_ablation,
    }
    if truth_displacement:
        images[desc.truth_displacement_post_to_pre] = case.displacement_post_to_pre
    # Optional files of an earlier case in the same folder would now be stale.
    for name, written in (
        ("pre_labels.nii.gz", case.pre_labels is not None),
        ("truth/displacement_post_to_pre.nii.gz", truth_displacement),
        ("case.html", report),
    ):
        if not written:
            (out / name).unlink(missing_ok=True)
    if case.pre_labels is not None:
        images[desc.pre_labels] = case.pre_labels
    for name, image in images.items():
        write_image(image, out / name)
    write_landmarks(out / desc.landmarks_pre, case.landmarks_pre)
    write_landmarks(out / desc.landmarks_post, case.landmarks_post)
    if report:
        from hepanav.phantoms.report import write_case_report

        desc.report = "case.html"
        write_case_report(case, desc, out / desc.report)
    write_json(out / desc.truth, case.truth)
    write_json(out / "case.json", desc)
    return desc
