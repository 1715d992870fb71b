"""Surface error of edge fractions (``segmentation.fraction``) on analytic balls.

A ball (tumour 60 HU, or a zone 45 HU with a 1.5 mm enhancing rim at 140 HU) in 105 HU
parenchyma, painted either with ``phantoms.lesions.paint_shape`` (one isotropic ramp of
cbrt(voxel volume)) or with the exact box average of each voxel (``SUPER``^3 sub-samples
per voxel: what a scanner integrates), optional correlated noise
(``phantoms.abdomen.add_noise``); mask = voxel centres inside (``rasterize``). The
surface of ``margin.surface.mask_field`` (binary, and with ``edge_fraction`` as the
occupancy, and with the exact box fractions as the occupancy: the surface method alone) on
a 0.5 mm grid; its radial error (mm, positive OUTSIDE the ball): area-weighted mean, min
and max over the mesh, averaged over grid phases (4; 2 with ``--quick``, noise-free only).
``--corrected`` switches on ``margin.surface.FRACTION_CURVATURE_CORRECTION``.

Run: ``PYTHONPATH=src python -m bench.frac_bias_shapes [--quick] [--corrected]`` (from the
repository root; 2-7 min).
"""

from __future__ import annotations

import sys

import numpy as np

SUPER = 7
PHASES = ((0.0, 0.0, 0.0), (0.37, -0.21, 0.55), (1.1, 0.6, -1.3), (-0.8, 1.4, 2.1))
LIVER, TUMOUR, ZONE, RIM = 105.0, 60.0, 45.0, 140.0


def box_fraction(grid, radius: float, centre: np.ndarray) -> np.ndarray:
    """Exact-ish fraction (z, y, x) of each voxel inside the ball (SUPER^3 sub-samples)."""
    pts = grid.points(tuple(slice(0, n) for n in grid.shape)) - centre
    sp = np.asarray(grid.spacing)
    sub = (np.arange(SUPER) + 0.5) / SUPER - 0.5
    out = np.zeros(grid.shape, np.float32)
    r2 = radius * radius
    for a in sub:
        for b in sub:
            for c in sub:
                q = pts + np.array([a, b, c]) * sp
                out += np.sum(q * q, axis=-1) <= r2
    return out / SUPER**3


def scene(spacing, radius, rim_mm, painter, noise_hu, phase, seed=0):
    """(ct image, mask image) of one ball."""
    from hepanav.phantoms.abdomen import add_noise
    from hepanav.phantoms.grid import Grid
    from hepanav.phantoms.lesions import StarShape, paint_shape, rasterize

    centre = np.asarray(phase, float)
    half = radius + rim_mm + 12.0
    grid = Grid.centered(np.zeros(3), spacing, tuple(int(np.ceil(2 * half / s)) for s in spacing))
    value = ZONE if rim_mm > 0 else TUMOUR
    rng = np.random.default_rng(1)
    shape = StarShape.random(rng, centre, np.full(3, float(radius)), 0.0, (0.0, 0.0, 0.0))
    if painter == "ramp":
        ct = np.full(grid.shape, LIVER, np.float32)
        paint_shape(ct, grid, shape, value, rim_mm=rim_mm, rim_hu=RIM if rim_mm else None)
    else:
        f_in = box_fraction(grid, radius, centre)
        f_out = box_fraction(grid, radius + rim_mm, centre) if rim_mm > 0 else f_in
        ct = (LIVER * (1 - f_out) + RIM * (f_out - f_in) + value * f_in).astype(np.float32)
    if noise_hu > 0:
        ct = add_noise(ct, noise_hu, np.random.default_rng(seed))
    mask = rasterize(grid, shape)
    exact = box_fraction(grid, radius, centre)
    # consistent with the mask, as edge_fraction makes its fractions
    exact = np.where(mask > 0, np.maximum(exact, 0.5), np.minimum(exact, 0.4999))
    return grid.image(ct), grid.image(mask), centre, grid.image(exact.astype(np.float32))


def surface_errors(ct, mask, centre, radius, exact=None) -> dict:
    """Radial error (mm; area-weighted mean, min) binary and with edge fractions."""
    import SimpleITK as sitk

    from hepanav.margin.surface import extract_surface, mask_field
    from hepanav.segmentation.fraction import edge_fraction

    half = radius + 4.0
    grid = sitk.Image([int(2 * half / 0.5)] * 3, sitk.sitkUInt8)
    grid.SetSpacing([0.5] * 3)
    grid.SetOrigin((centre - half).tolist())
    out = {}
    variants = [("binary", None), ("fractions", edge_fraction(ct, mask))]
    if exact is not None:
        variants.append(("exact", exact))
    for key, occ in variants:
        mesh = extract_surface(mask_field(mask, grid, None, occ), grid)
        e = np.linalg.norm(mesh.vertices - centre, axis=1) - radius
        out[key] = (float(np.average(e, weights=mesh.vertex_area)), float(e.min()), float(e.max()))
    return out


def table(spacings, cases, painters, noises, phases=PHASES) -> None:
    print(
        "spacing | ball | painter | noise | binary mean/min/max | edge_fraction mean/min/max"
        " | exact box fractions mean/min/max (phase avg)"
    )
    for spacing in spacings:
        for radius, rim in cases:
            for painter in painters:
                for noise in noises:
                    rows = []
                    for k, phase in enumerate(phases):
                        ct, mask, c, exact = scene(spacing, radius, rim, painter, noise, phase, k)
                        r = surface_errors(ct, mask, c, radius, exact)
                        rows.append([*r["binary"], *r["fractions"], *r["exact"]])
                    m = np.mean(rows, axis=0)
                    name = f"r{radius:g}" + (f"+rim{rim:g}" if rim else "")
                    print(
                        f"{'x'.join(f'{s:g}' for s in spacing)} | {name} | {painter} | {noise:g} | "
                        f"{m[0]:+.2f} / {m[1]:+.2f} / {m[2]:+.2f} | "
                        f"{m[3]:+.2f} / {m[4]:+.2f} / {m[5]:+.2f} | "
                        f"{m[6]:+.2f} / {m[7]:+.2f} / {m[8]:+.2f}",
                        flush=True,
                    )


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    if "--corrected" in argv:
        from hepanav.margin import surface

        surface.FRACTION_CURVATURE_CORRECTION = True
    spacings = [(3.0, 3.0, 3.0), (3.0, 3.0, 5.0), (1.5, 1.5, 1.5)]
    cases = [(10.0, 0.0), (15.0, 0.0), (16.0, 1.5)]
    noises = [0.0] if quick else [0.0, 12.0]
    table(spacings, cases, ["box", "ramp"], noises, PHASES[:2] if quick else PHASES)


if __name__ == "__main__":
    main(sys.argv[1:])
