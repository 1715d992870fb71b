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
grid phases each: the surface method alone, without the phantom.
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


def main(argv: list[str]) -> None:
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
