"""Where the measurement-only MAM error of a realistic pair comes from (issue 12).

For each pair of ``bench.bench_margin_pairs`` (seeds from the command line): measure the
MAM through the TRUE post -> pre transform (no registration) and split its error:

- ``mam_point_axes``: the MAM point relative to the zone centre along the post grid's own
  axes (x, y, slice; mm): a large slice component means a cap between slices;
- ``tumour_out`` / ``zone_out``: signed distance (mm, positive OUTSIDE the analytic
  shape) of the measured tumour and zone surfaces, area-weighted mean and range, and at
  the MAM point (tumour) and its foot on the zone surface (zone): a negative ``zone_out``
  at the foot is a zone surface dented INTO the true zone there;
- ``mam_meas_tumour_true_zone`` / ``mam_true_tumour_meas_zone``: the MAM with one
  surface replaced by the analytic shape (which surface carries the error);
- ``voxel_centre_nn``: the usual voxel-centre method (signed EDT of the zone at its voxel
  centres, read at the boundary voxels of the tumour resampled onto the post grid through
  the true transform, nearest neighbour) and ``voxel_centre_at_true_tumour``: the same
  EDT read (linearly) at the analytic tumour surface.

Cheap (no registration; ~25 s per pair): ``.venv/bin/python -m bench.pair_mam_where 2 4 5``
with ``HEPANAV_TEST_DATA`` pointing at the real scans. ``--spheres`` instead prints the
radial error (mm; area-weighted mean, min, max) of the surface of a ball voxelised at
voxel centres on the pairs' grids (and on 1 mm and 0.8 x 0.8 x 3 mm for comparison), two
grid phases each: the surface method alone, without the phantom; ``--shapes`` the same
for balls, an ellipsoid and a concave cavity on 2-5 mm grids. ``--corrected`` (first)
switches on the coarse-grid curvature correction (``surface.CURVATURE_CORRECTION``);
``--old-caps`` (first) places caps between thick slices by the former sphere through the
last two sections (``surface.CAP_SECTIONS = False``). ``--caps 0 4`` prints, per pair, the
zone's two caps along the slice axis column by column: where the field crosses the
surface beyond the last slice minus where the analytic zone does (mm, positive outside;
mean / min / max), the true cap height, and the error of the last slice's in-plane
outline (mm, positive outside) at the cap's columns. ``--outline 4`` prints, per pair,
the in-plane outline of the zone's first and last slices (the sections next to the caps)
against the analytic section, ray by ray from the zone's axis every 15 degrees (mm,
positive outside): as measured (the zero line of the slice's field), and as an ellipse
fitted to the midpoints of the slice's in-plane edges between an inside and an outside
pixel (what the section's pixels alone say with a smooth-shape prior). ``--global 4 4 0``
(degree, then seeds) fits ONE smooth star-shaped surface to the whole zone instead (radius
about the zone voxels' centroid as real spherical harmonics up to that degree, least
squares to the midpoints of every lattice edge between an inside and an outside voxel
centre, weight 1 / edge length^2) and prints its error against the analytic zone (all,
and beyond the first slice) and the MAM of the analytic tumour to it; ``--global-rules``
the same with the edges along the slice axis crossed where the circle and cap rules of
``surface.across_thick_axes`` cross them; ``--global-shapes 4`` the global surface's error
on voxelised balls and the ellipsoid on 3 x 3 x 5 mm (both fits, three grid phases).
"""

from __future__ import annotations

import sys

import numpy as np


def diagnose(seed: int) -> dict:
    import SimpleITK as sitk
    from scipy import ndimage

    from bench.bench_margin_pairs import pair_case
    from hepanav.margin.distance import distance_to_mesh
    from hepanav.margin.measure import measure_margin
    from hepanav.margin.surface import extract_surface, sample_field
    from hepanav.phantoms.realistic_pair import to_pair_post, true_post_to_pre
    from hepanav.phantoms.truth import signed_surface_distances

    case, pair = pair_case(seed)
    truth = true_post_to_pre(case, pair)
    back = pair.motion_to_case()  # pair-post -> case-post points

    def to_case(points: np.ndarray) -> np.ndarray:
        return np.array([back.TransformPoint(q) for q in np.asarray(points).tolist()])

    m = measure_margin(pair.pre_tumor, pair.post_ablation, tumor_transform=truth)
    axes = np.asarray(pair.post_ablation.GetDirection()).reshape(3, 3)
    centre = to_pair_post(pair, np.asarray(case.zone.center)[None])[0]
    p = np.asarray(m.mam_point_lps_mm)
    zone_mesh = extract_surface(m.zone_field, m.grid)
    _, foot = distance_to_mesh(p[None], zone_mesh)
    t_out = case.tumor.signed_distance(case.deformation.to_pre(to_case(m.tumor_mesh.vertices)))
    z_out = case.zone.signed_distance(to_case(zone_mesh.vertices))
    pre_points, _ = case.tumor.surface_mesh(20000)
    post_points = to_pair_post(pair, case.deformation.to_post(pre_points))
    dist, _ = distance_to_mesh(post_points, zone_mesh)
    inside = sample_field(m.zone_field, m.grid, post_points) >= 0.5

    # Voxel-centre baseline on the post grid.
    zone = sitk.GetArrayViewFromImage(pair.post_ablation) > 0
    sampling = tuple(reversed(pair.post_ablation.GetSpacing()))
    edt = ndimage.distance_transform_edt(zone, sampling=sampling)
    edt -= ndimage.distance_transform_edt(~zone, sampling=sampling)
    tumour = sitk.Resample(pair.pre_tumor, pair.post_ablation, truth, sitk.sitkNearestNeighbor)
    t = sitk.GetArrayViewFromImage(tumour) > 0
    boundary = t & ~ndimage.binary_erosion(t, border_value=0)
    index = np.array(
        [
            pair.post_ablation.TransformPhysicalPointToContinuousIndex(q)
            for q in post_points.tolist()
        ]
    )
    at_true = ndimage.map_coordinates(edt, index[:, ::-1].T, order=1)

    def spread(v: np.ndarray, w: np.ndarray) -> list[float]:
        return [
            round(float(np.average(v, weights=w)), 2),
            round(float(v.min()), 2),
            round(float(v.max()), 2),
        ]

    true_mam = pair.true_mam_mm
    return {
        "seed": seed,
        "post_spacing": tuple(pair.post_ablation.GetSpacing()),
        "true_mam": round(true_mam, 2),
        "error_true_transform": round(m.min_margin_mm - true_mam, 2),
        "mam_point_axes": (axes.T @ (p - centre)).round(1).tolist(),
        "tumour_out_mean_min_max": spread(t_out, m.tumor_mesh.vertex_area),
        "zone_out_mean_min_max": spread(z_out, zone_mesh.vertex_area),
        "tumour_out_at_mam": round(
            float(case.tumor.signed_distance(case.deformation.to_pre(to_case(p[None])))[0]), 2
        ),
        "zone_out_at_foot": round(float(case.zone.signed_distance(to_case(foot))[0]), 2),
        "mam_meas_tumour_true_zone": round(
            float(signed_surface_distances(to_case(m.tumor_mesh.vertices), case.zone).min()), 2
        ),
        "mam_true_tumour_meas_zone": round(float(np.where(inside, dist, -dist).min()), 2),
        "voxel_centre_nn": round(float(edt[boundary].min()), 2),
        "voxel_centre_at_true_tumour": round(float(at_true.min()), 2),
    }


def cap_columns(seed: int) -> dict:
    """Column-by-column error of the zone's caps between thick slices (see module doc)."""
    import SimpleITK as sitk

    from bench.bench_margin_pairs import pair_case
    from hepanav.margin.surface import _in_plane_distance, across_thick_axes, signed_distance

    case, _ = pair_case(seed)
    mask = case.post_ablation  # the pair's post mask is these voxels, moved rigidly
    inside = sitk.GetArrayFromImage(mask) > 0
    ks = np.flatnonzero(inside.any(axis=(1, 2)))
    ys, xs = (np.flatnonzero(inside.any(axis=(0, a))) for a in (2, 1))
    lo = np.array([xs[0] - 3, ys[0] - 3, ks[0] - 3])
    crop = inside[lo[2] : ks[-1] + 4, lo[1] : ys[-1] + 4, lo[0] : xs[-1] + 4]
    spacing = np.asarray(mask.GetSpacing(), float)
    sdf = signed_distance(crop, spacing)
    up, factors = across_thick_axes(sdf, crop, spacing)
    n = int(factors[2])
    d2, _ = _in_plane_distance(crop, sdf, spacing[::-1][1:])

    def point(ix, iy, kz):
        return np.array(
            mask.TransformContinuousIndexToPhysicalPoint([float(ix), float(iy), float(kz)])
        )

    def outside(ix, iy, kz):
        return case.zone.signed_distance(point(ix, iy, kz)[None])[0] >= 0

    out = {"seed": seed, "post_spacing": tuple(float(v) for v in spacing), "slices": len(ks)}
    for name, k, sign in (("cap_low", ks[0], -1), ("cap_high", ks[-1], 1)):
        kk = k - lo[2]
        col_err, height, outline = [], [], []
        for iy, ix in np.argwhere(crop[kk]):
            column = up[:, iy, ix]
            j = kk * n + n // 2
            while 0 <= j + sign < len(column) and column[j + sign] > 0:
                j += sign
            t = column[j] / (column[j] - column[j + sign])
            field = sign * ((j - n // 2) / n + sign * t / n - kk)  # slices beyond k
            a, b = 0.0, 3.0  # the analytic crossing, by bisection (slices beyond k)
            for _ in range(40):
                c = 0.5 * (a + b)
                a, b = (a, c) if outside(ix + lo[0], iy + lo[1], k + sign * c) else (c, b)
            col_err.append((field - a) * spacing[2])
            height.append(a * spacing[2])
            # the last slice's outline: the column's in-plane depth against the
            # analytic section's (distance to its outline along 64 in-plane rays)
            rays = np.linspace(0, 2 * np.pi, 64, endpoint=False)
            depth = []
            for th in rays:
                lo_r, hi_r = 0.0, 12.0
                for _ in range(30):
                    r = 0.5 * (lo_r + hi_r)
                    pxy = np.array([np.cos(th), np.sin(th)]) * r / spacing[:2]
                    if outside(ix + lo[0] + pxy[0], iy + lo[1] + pxy[1], k):
                        hi_r = r
                    else:
                        lo_r = r
                depth.append(lo_r)
            outline.append(d2[kk][iy, ix] - min(depth))
        e, hgt, o = (
            np.round([np.mean(v), np.min(v), np.max(v)], 2).tolist()
            for v in (col_err, height, outline)
        )
        out[name] = {
            "columns": len(col_err),
            "crossing_error": e,
            "true_height": hgt,
            "outline_error": o,
        }
    return out


def section_outline(seed: int) -> dict:
    """In-plane outline error (mm, positive outside) of the first and last slices of the
    zone, per 15-degree ray from the zone's axis (see module doc)."""
    import SimpleITK as sitk
    from skimage.measure import find_contours

    from bench.bench_margin_pairs import pair_case
    from hepanav.margin.surface import signed_distance

    case, _ = pair_case(seed)
    mask = case.post_ablation
    inside = sitk.GetArrayFromImage(mask) > 0
    ks = np.flatnonzero(inside.any(axis=(1, 2)))
    spacing = np.asarray(mask.GetSpacing(), float)
    sdf = signed_distance(inside, spacing)
    axis = np.array(mask.TransformPhysicalPointToContinuousIndex(case.zone.center))
    out = {"seed": seed, "post_spacing": tuple(float(v) for v in spacing)}
    for name, k in (("first_slice", ks[0]), ("last_slice", ks[-1])):

        def outside(ix, iy, k=k):
            q = mask.TransformContinuousIndexToPhysicalPoint([float(ix), float(iy), float(k)])
            return case.zone.signed_distance(np.array(q)[None])[0] >= 0

        def true_radius(u, k=k):
            lo_r, hi_r = 0.0, 30.0
            for _ in range(30):
                r = 0.5 * (lo_r + hi_r)
                p = axis[:2] + u * r / spacing[:2]
                lo_r, hi_r = (lo_r, r) if outside(*p, k) else (r, hi_r)
            return lo_r

        # the measured outline: radius of its points along each ray (nearest in angle)
        pts = np.concatenate(find_contours(sdf[k], 0.0))[:, ::-1]  # (x, y) pixels
        rel = (pts - axis[:2]) * spacing[:2]
        ang = np.arctan2(rel[:, 1], rel[:, 0])
        # ellipse (centred algebraic conic) through the in-plane edge midpoints
        sl = inside[k]
        mids = [
            (ix + 0.5 * dx, iy + 0.5 * dy)
            for dy, dx in ((1, 0), (0, 1))
            for iy, ix in np.argwhere(sl[: sl.shape[0] - dy, : sl.shape[1] - dx] != sl[dy:, dx:])
        ]
        m = (np.array(mids) - axis[:2]) * spacing[:2]
        x, y = m.T
        coef = np.linalg.lstsq(np.stack([x * x, x * y, y * y, x, y], 1), np.ones(len(x)))[0]
        measured, ellipse = [], []
        for a0 in np.radians(np.arange(-180, 180, 15) + 7.5):
            u = np.array([np.cos(a0), np.sin(a0)])
            t = true_radius(u)
            near = np.argmin(np.abs(np.angle(np.exp(1j * (ang - a0)))))
            measured.append(float(rel[near] @ u) - t)
            qa = coef[0] * u[0] ** 2 + coef[1] * u[0] * u[1] + coef[2] * u[1] ** 2
            qb = coef[3] * u[0] + coef[4] * u[1]
            ellipse.append((-qb + np.sqrt(qb * qb + 4 * qa)) / (2 * qa) - t)
        out[name] = {
            "pixels": int(sl.sum()),
            "measured_by_ray": np.round(measured, 2).tolist(),
            "ellipse_by_ray": np.round(ellipse, 2).tolist(),
            "measured_mean_abs_min_max": np.round(
                [np.mean(np.abs(measured)), np.min(measured), np.max(measured)], 2
            ).tolist(),
            "ellipse_mean_abs_min_max": np.round(
                [np.mean(np.abs(ellipse)), np.min(ellipse), np.max(ellipse)], 2
            ).tolist(),
        }
    return out


def _sh_basis(u: np.ndarray, degree: int) -> np.ndarray:
    """Real spherical harmonics up to ``degree`` at unit vectors ``u`` (N, 3)."""
    from scipy.special import sph_harm_y

    th, ph = np.arccos(np.clip(u[:, 2], -1, 1)), np.arctan2(u[:, 1], u[:, 0])
    cols = []
    for ell in range(degree + 1):
        for m in range(-ell, ell + 1):
            y = sph_harm_y(ell, abs(m), th, ph)
            cols.append(y.real if m == 0 else np.sqrt(2) * (y.imag if m < 0 else y.real))
    return np.stack(cols, 1)


def _sh_surface(mask, degree: int, rules: bool):
    """(centre, coefficients) of the global star-shaped surface of a binary mask (see
    module doc, ``--global``); the radius along unit ``u`` is ``_sh_basis(u) @ coef``."""
    import SimpleITK as sitk

    inside = sitk.GetArrayFromImage(mask) > 0
    spacing = np.asarray(mask.GetSpacing(), float)

    def physical(index_zyx: np.ndarray) -> np.ndarray:
        return np.array(
            [mask.TransformContinuousIndexToPhysicalPoint(q) for q in index_zyx[:, ::-1].tolist()]
        )

    points, weights = [], []
    up = None
    if rules:
        from hepanav.margin.surface import across_thick_axes, signed_distance

        up, factors = across_thick_axes(signed_distance(inside, spacing), inside, spacing)
        n = int(factors[2])
    for ax in range(3):  # array axis (z, y, x)
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[ax], b[ax] = slice(0, -1), slice(1, None)
        index = np.argwhere(inside[tuple(a)] != inside[tuple(b)]).astype(float)
        if ax == 0 and up is not None and n > 1:
            # where the slice rules (circles, caps) cross each column between the slices
            for row in index:
                k, iy, ix = int(row[0]), int(row[1]), int(row[2])
                col = up[k * n + n // 2 : (k + 1) * n + n // 2 + 1, iy, ix]
                j = np.flatnonzero((col[:-1] > 0) != (col[1:] > 0))[0]
                row[0] = k + (j + col[j] / (col[j] - col[j + 1])) / n
        else:
            index[:, ax] += 0.5
        points.append(physical(index))
        weights.append(np.full(len(index), 1.0 / spacing[2 - ax] ** 2))
    p, w = np.concatenate(points), np.sqrt(np.concatenate(weights))
    centre = physical(np.argwhere(inside).astype(float)).mean(0)
    rho = np.linalg.norm(p - centre, axis=1)
    coef = np.linalg.lstsq(_sh_basis((p - centre) / rho[:, None], degree) * w[:, None], rho * w)
    return centre, coef[0]


def _directions(count: int = 200_000) -> np.ndarray:
    u = np.random.default_rng(0).normal(size=(count, 3))
    return u / np.linalg.norm(u, axis=1)[:, None]


def global_fit(degree: int, seed: int, rules: bool = False) -> dict:
    """A global spherical-harmonic surface of the zone, fitted to its mask's edge
    midpoints (see module doc); errors in mm, positive outside, over uniformly spread
    directions from the centre. ``rules``: the edges along the slice axis crossed where
    ``surface.across_thick_axes`` crosses them (the circle and cap rules), not at their
    midpoints."""
    import SimpleITK as sitk
    from scipy.spatial import cKDTree

    from bench.bench_margin_pairs import pair_case

    case, pair = pair_case(seed)
    mask = case.post_ablation
    inside = sitk.GetArrayFromImage(mask) > 0
    centre, coef = _sh_surface(mask, degree, rules)
    u = _directions()
    surface = centre + (_sh_basis(u, degree) @ coef)[:, None] * u
    err = case.zone.signed_distance(surface)
    k0 = np.flatnonzero(inside.any(axis=(1, 2)))[0]
    sub = surface[::50]
    cap = np.array([mask.TransformPhysicalPointToContinuousIndex(q)[2] for q in sub.tolist()]) < k0
    tumour = case.deformation.to_post(case.tumor.surface_mesh(20000)[0])
    dist, _ = cKDTree(surface).query(tumour)
    rt = np.linalg.norm(tumour - centre, axis=1)
    within = rt < _sh_basis((tumour - centre) / rt[:, None], degree) @ coef
    mam = float(np.where(within, dist, -dist).min())
    return {
        "seed": seed,
        "degree": degree,
        "zone_err_mean_min_max": np.round([err.mean(), err.min(), err.max()], 2).tolist(),
        "beyond_first_slice_mean_min": (
            np.round([err[::50][cap].mean(), err[::50][cap].min()], 2).tolist()
            if cap.any()
            else None
        ),
        "mam_true_tumour_error": round(mam - pair.true_mam_mm, 2),
    }


def global_shapes(degree: int, rules: bool, spacing: tuple, phase: tuple) -> dict:
    """Error (mm, positive outside; mean over directions, min, max) of the global surface
    of balls r 10 / 15 and the rotated ellipsoid of :func:`shape_errors`, voxelised at
    voxel centres on ``spacing``."""
    sys.path.insert(0, "tests")
    from margin_helpers import ball, ellipsoid, voxelise

    a, b = 0.5, 0.3
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rot, axes = rz @ rx, np.array([16.0, 11.0, 8.0])
    out = {}
    for name, inside, half in (
        ("ball10", ball((0, 0, 0), 10), 14.0),
        ("ball15", ball((0, 0, 0), 15), 19.0),
        ("ellipsoid", ellipsoid((0, 0, 0), axes, rot), 20.0),
    ):
        mask = voxelise(inside, spacing, extent_mm=2 * half + 12, phase=phase)
        centre, coef = _sh_surface(mask, degree, rules)
        u = _directions(50_000)
        v = centre + (_sh_basis(u, degree) @ coef)[:, None] * u
        if name.startswith("ball"):
            e = np.linalg.norm(v, axis=1) - float(name[4:])
        else:
            q = v @ rot / axes
            e = (np.sum(q**2, 1) - 1) / np.linalg.norm(2 * (q / axes) @ rot.T, axis=1)
        out[name] = np.round([e.mean(), e.min(), e.max()], 2).tolist()
    return out


def sphere_errors(radius: float, spacing: tuple, phase: tuple) -> tuple[float, float, float]:
    """Radial error (mean, min, max; mm) of the surface of a voxelised ball."""
    import SimpleITK as sitk

    from hepanav.margin.surface import extract_surface, mask_field

    sys.path.insert(0, "tests")
    from margin_helpers import ball, voxelise

    mask = voxelise(ball((0, 0, 0), radius), spacing, extent_mm=2 * radius + 16, phase=phase)
    grid = sitk.Image([int((2 * radius + 10) / 0.5)] * 3, sitk.sitkUInt8)
    grid.SetSpacing([0.5] * 3)
    grid.SetOrigin([-(radius + 5)] * 3)
    mesh = extract_surface(mask_field(mask, grid), grid)
    r = np.linalg.norm(mesh.vertices, axis=1) - radius
    return float(np.average(r, weights=mesh.vertex_area)), float(r.min()), float(r.max())


def shape_errors(name: str, spacing: tuple, phase: tuple) -> dict:
    """Surface error (mm, positive OUTSIDE the analytic shape; area-weighted mean, min,
    max) of a shape voxelised at voxel centres: ``ball10``, ``ball15``, a rotated
    ellipsoid (16, 11, 8) mm, ``shell`` (ball r 18 with a spherical cavity r 9: its
    outer wall convex, its cavity wall concave)."""
    import SimpleITK as sitk

    from hepanav.margin.surface import extract_surface, mask_field

    sys.path.insert(0, "tests")
    from margin_helpers import ball, ellipsoid, minus, voxelise

    a, b = 0.5, 0.3
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rot, axes = rz @ rx, np.array([16.0, 11.0, 8.0])
    shapes = {
        "ball10": (ball((0, 0, 0), 10), 14.0),
        "ball15": (ball((0, 0, 0), 15), 19.0),
        "ellipsoid": (ellipsoid((0, 0, 0), axes, rot), 20.0),
        "shell": (minus(ball((0, 0, 0), 18), ball((0, 0, 0), 9)), 22.0),
    }
    inside, half = shapes[name]
    mask = voxelise(inside, spacing, extent_mm=2 * half + 12, phase=phase)
    grid = sitk.Image([int(2 * half / 0.5)] * 3, sitk.sitkUInt8)
    grid.SetSpacing([0.5] * 3)
    grid.SetOrigin([-half] * 3)
    mesh = extract_surface(mask_field(mask, grid), grid)
    v, w = mesh.vertices, mesh.vertex_area
    r = np.linalg.norm(v, axis=1)
    if name.startswith("ball"):
        parts = {"all": (r - float(name[4:]), w)}
    elif name == "ellipsoid":
        # first-order distance (F - 1) / |grad F| of F = sum((x R / a)^2)
        q = v @ rot / axes
        grad = 2 * (q / axes) @ rot.T
        parts = {"all": ((np.sum(q**2, 1) - 1) / np.linalg.norm(grad, axis=1), w)}
    else:
        outer = r > 13.5
        parts = {
            "convex": (r[outer] - 18.0, w[outer]),
            "concave": (9.0 - r[~outer], w[~outer]),
        }
    return {
        k: (
            round(float(np.average(e, weights=ww)), 2),
            round(float(e.min()), 2),
            round(float(e.max()), 2),
        )
        for k, (e, ww) in parts.items()
    }


def main(argv: list[str]) -> None:
    if "--old-caps" in argv:
        import hepanav.margin.surface as surface

        surface.CAP_SECTIONS = False
        argv = [a for a in argv if a != "--old-caps"]
    if argv[:1] == ["--global-shapes"]:
        for rules in (False, True):
            for phase in ((0.3, -0.2, 0.45), (1.1, 0.7, -1.3), (-0.6, 1.2, 1.9)):
                e = global_shapes(int(argv[1]), rules, (3.0, 3.0, 5.0), phase)
                print(f"rules={rules} 3 x 3 x 5, phase {phase}: {e}", flush=True)
        return
    if argv[:1] in (["--global"], ["--global-rules"]):
        for seed in [int(s) for s in argv[2:]] or [4]:
            print(global_fit(int(argv[1]), seed, argv[0] == "--global-rules"), flush=True)
        return
    if argv[:1] == ["--outline"]:
        for seed in [int(s) for s in argv[1:]] or [4]:
            print(section_outline(seed), flush=True)
        return
    if argv[:1] == ["--caps"]:
        for seed in [int(s) for s in argv[1:]] or [4]:
            print(cap_columns(seed), flush=True)
        return
    if "--corrected" in argv:
        # the coarse-grid curvature correction (off by default; docs/margin.md)
        import hepanav.margin.surface as surface

        surface.CURVATURE_CORRECTION = True
        argv = [a for a in argv if a != "--corrected"]
    if argv == ["--shapes"]:
        for name in ("ball10", "ball15", "ellipsoid", "shell"):
            for spacing in ((2, 2, 2), (3, 3, 3), (5, 5, 5), (3, 3, 4), (3, 3, 5)):
                for phase in ((0.3, -0.2, 0.45), (1.1, 0.7, -1.3)):
                    e = shape_errors(name, spacing, phase)
                    print(f"{name} on {spacing}, phase {phase}: mean/min/max {e}", flush=True)
        return
    if argv == ["--spheres"]:
        for radius, spacing in (
            (10, (3, 3, 3)),
            (15, (3, 3, 4)),
            (15, (3, 3, 5)),
            (15, (1, 1, 1)),
            (15, (0.8, 0.8, 3)),
        ):
            for phase in ((0.3, -0.2, 0.45), (1.1, 0.7, -1.3)):
                e = sphere_errors(radius, spacing, phase)
                print(f"ball r={radius} on {spacing}, phase {phase}: mean/min/max", np.round(e, 2))
        return
    for seed in [int(s) for s in argv] or [2, 4, 5]:
        print(diagnose(seed), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
