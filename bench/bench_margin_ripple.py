"""Pole ripple of the sub-voxel surfaces (issue 9's last gap): the smoothest separating field.

Concentric balls r 8 / 15 mm (true MAM 7.0) and the three reader cases of
``tests/test_imaging_margin_cases.py`` (5- and 20-degree tilted DICOM series, sheared
NIfTI, masks regularised with their partial-volume fractions), each measured with the
smoothest separating field (``hepanav.margin.surface._smoothest_separating``, the
default) and without it (the Gaussian field alone, the baseline), same run. Then the
radial error of single spheres' surfaces, and ``measure_margin``'s time on the
``margin_fractions`` masks (median of 3, interleaved; ratio to the baseline).

Run: ``.venv/bin/python -m bench margin_ripple``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parents[1] / "tests"
PHASES = ((0.3, -0.2, 0.45), (0.1, 0.37, 0.05), (-0.33, 0.21, 0.71))


def _variants():
    from hepanav.margin import surface

    smooth = surface._smoothest_separating
    return surface, {"separating": smooth, "gaussian": lambda sdf, *args: sdf}


def _reader_cases(tmp: Path) -> dict:
    sys.path.insert(0, str(TESTS))
    import test_imaging_margin_cases as t
    from dicom_helpers import volume_slices, write_slices

    cases = {}
    for tilt in (5.0, 20.0):
        folder = tmp / f"tilt{tilt:g}"
        row, col, _ = t.tilted_frame(tilt)
        positions = [
            (t.CENTER[0] - 27.0, t.CENTER[1] - 30.0, t.CENTER[2] + z)
            for z in np.arange(-34.0, 22.1, 1.0)
        ]
        for name, radius in (("tumor", t.R_TUMOR), ("zone", t.R_ZONE)):
            values = t.sample_slices(t.ball(radius), positions, row, col, (80, 70), pixel=0.8)
            datasets = volume_slices(
                values,
                positions,
                orientation=(*row, *col),
                pixel_spacing=(0.8, 0.8),
                intercept=0.0,
                series_uid=f"1.2.826.0.1.3680043.8.498.40{int(tilt)}{len(name)}",
            )
            write_slices(folder / name, datasets)
        cases[f"tilt {tilt:g} deg"] = {"tumor": folder / "tumor", "ablation": folder / "zone"}
    matrix, origin = t.sheared_affine_lps(
        20.0, pixel=1.0, step=1.0, origin=t.CENTER + (-27.0, -30.0, -34.0)
    )
    for name, radius in (("tumor", t.R_TUMOR), ("zone", t.R_ZONE)):
        t.write_sheared_nifti(
            tmp / f"{name}.nii.gz", t.ball(radius), (56, 64, 57), matrix, origin, dtype=np.uint8
        )
    cases["sheared NIfTI"] = {"tumor": tmp / "tumor.nii.gz", "ablation": tmp / "zone.nii.gz"}
    return cases, t


def main() -> dict:
    from hepanav.margin.measure import measure_margin
    from hepanav.margin.pipeline import MarginInputs, run_margin

    sys.path.insert(0, str(TESTS))
    from margin_helpers import ball, voxelise

    surface, variants = _variants()
    out: dict = {"balls_0.8x0.8x1": {}, "readers": {}, "sphere_error_mm": {}}
    for key, fn in variants.items():
        surface._smoothest_separating = fn
        mams = []
        for phase in PHASES:
            tumour = voxelise(ball((0, 0, 0), 8.0), (0.8, 0.8, 1.0), extent_mm=40, phase=phase)
            zone = voxelise(ball((0, 0, 0), 15.0), (0.8, 0.8, 1.0), extent_mm=40, phase=phase)
            mams.append(round(measure_margin(tumour, zone).min_margin_mm, 2))
        out["balls_0.8x0.8x1"][key] = mams
        print(f"balls r 8 / 15 on 0.8 x 0.8 x 1 mm, 3 phases, {key}: MAM {mams} (true 7.0)")
        errors = {}
        for radius in (4.0, 6.0, 8.0, 15.0):
            mask = voxelise(ball((0, 0, 0), radius), (0.8, 0.8, 1.0), 2 * radius + 10, PHASES[0])
            mesh = surface.extract_surface(surface.mask_field(mask, mask), mask)
            e = np.linalg.norm(mesh.vertices, axis=1) - radius
            errors[f"r{radius:g}"] = [
                round(float(np.average(e, weights=mesh.vertex_area)), 3),
                round(float(e.min()), 3),
                round(float(e.max()), 3),
            ]
        out["sphere_error_mm"][key] = errors
        print(f"  sphere surface radial error (mean, min, max) mm, {key}: {errors}")
    with tempfile.TemporaryDirectory() as folder:
        cases, t = _reader_cases(Path(folder))
        for key, fn in variants.items():
            surface._smoothest_separating = fn
            row = {}
            for name, kw in cases.items():
                run = run_margin(MarginInputs(**kw), Path(folder) / "out", report=False)
                exact = measure_margin(
                    t._analytic_on(run.images["tumor"], t.R_TUMOR),
                    t._analytic_on(run.images["ablation"], t.R_ZONE),
                ).min_margin_mm
                row[name] = [round(run.result.min_margin_mm, 2), round(exact, 2)]
            out["readers"][key] = row
            print(f"readers (MAM, exact voxelisation on the same grid), {key}: {row}")
    from bench.bench_margin_fractions import make_masks

    masks, fractions = make_masks()
    seconds: dict = {key: [] for key in variants}
    for _ in range(3):
        for key, fn in variants.items():
            surface._smoothest_separating = fn
            for occ in (None, fractions):
                start = time.perf_counter()
                measure_margin(masks["tumor"], masks["ablation"], occupancies=occ)
                seconds[key].append(time.perf_counter() - start)
    surface._smoothest_separating = variants["separating"]
    median = {k: float(np.median(v)) for k, v in seconds.items()}
    ratio = median["separating"] / median["gaussian"]
    print(
        f"measure_margin (margin_fractions masks, binary and fractions, median of 3): "
        f"{median['separating']:.2f} s vs {median['gaussian']:.2f} s, ratio {ratio:.2f}"
    )
    out["seconds"], out["ratio"] = median, ratio
    return out
