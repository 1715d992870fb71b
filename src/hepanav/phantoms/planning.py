"""Planning phantoms: a tumour placed in the liver of a torso with labelled risk structures.

Three bases:

* ``make_torso``: a fast analytic torso (body, liver, ribs, spine, aorta, vena cava,
  portal and hepatic veins, gallbladder, kidneys, stomach, bowel, spleen, lungs) with
  TotalSegmentator v2 label ids, any grid size (used by tests and the benchmark);
* the procedural abdomen of :mod:`hepanav.phantoms.abdomen` (when installed);
* the real DICOM scan in ``../shared/data/ct-abdomen-dicom`` (labels resampled onto
  the series in physical space).

:func:`place_tumor` puts a spherical (slightly ellipsoidal) hypodense tumour deep enough
in the liver and away from no-go structures, so a test knows a plan should exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from hepanav.imaging.geometry import lps_to_voxel, voxel_to_lps
from hepanav.imaging.labels import anatomy_label_names

# TotalSegmentator v2 ids used here (+ 200 hepatic_veins, a HepaNav extension).
_TORSO_IDS = (
    1,
    2,
    3,
    4,
    5,
    6,
    11,
    14,
    18,
    31,
    32,
    33,
    52,
    63,
    64,
    79,
    200,
    *range(97, 104),
    *range(109, 116),
)
TORSO_LABELS = {i: anatomy_label_names()[i] for i in _TORSO_IDS}
_HU = {
    0: 20,
    1: 55,
    2: 150,
    3: 150,
    4: 10,
    5: 60,
    6: 30,
    11: -850,
    14: -850,
    18: 30,
    31: 450,
    32: 450,
    33: 450,
    52: 160,
    63: 150,
    64: 170,
    79: 40,
    200: 150,
}


@dataclass
class PlanningCase:
    """CT (HU, int16), label map (uint16, TotalSegmentator ids), tumour mask (uint8), names."""

    ct: sitk.Image
    labels: sitk.Image
    tumor: sitk.Image
    label_names: dict[int, str]
    tumor_center_lps: tuple[float, float, float]
    tumor_diameter_mm: float


def _grid(size_xyz, spacing_xyz) -> tuple[np.ndarray, ...]:
    origin = -(np.asarray(size_xyz) - 1) / 2.0 * np.asarray(spacing_xyz)
    return tuple(origin[a] + np.arange(size_xyz[a]) * spacing_xyz[a] for a in range(3))


def _paint_ellipsoid(lab, axes, label, center, radii, where=None):
    x, y, z = axes
    sl = []
    for ax, c, r in zip((z, y, x), center[::-1], radii[::-1], strict=True):
        lo, hi = np.searchsorted(ax, c - r), np.searchsorted(ax, c + r, side="right")
        sl.append(slice(lo, hi))
    zz, yy, xx = np.meshgrid(z[sl[0]], y[sl[1]], x[sl[2]], indexing="ij", sparse=True)
    inside = ((xx - center[0]) / radii[0]) ** 2 + ((yy - center[1]) / radii[1]) ** 2 + (
        (zz - center[2]) / radii[2]
    ) ** 2 <= 1.0
    view = lab[tuple(sl)]
    if where is not None:
        inside = inside & np.isin(view, where)
    view[inside] = label


def _paint_tube(lab, axes, label, p0, p1, radius):
    x, y, z = axes
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    lo, hi = np.minimum(p0, p1) - radius, np.maximum(p0, p1) + radius
    sl = [
        slice(np.searchsorted(a, lo[i]), np.searchsorted(a, hi[i], side="right"))
        for i, a in ((2, z), (1, y), (0, x))
    ]
    zz, yy, xx = np.meshgrid(z[sl[0]], y[sl[1]], x[sl[2]], indexing="ij")
    pts = np.stack([xx, yy, zz], axis=-1) - p0
    d = p1 - p0
    t = np.clip(pts @ d / (d @ d), 0, 1)
    dist = np.linalg.norm(pts - t[..., None] * d, axis=-1)
    lab[tuple(sl)][dist <= radius] = label


def make_torso(
    size: tuple[int, int, int] = (160, 128, 100),
    spacing_mm: tuple[float, float, float] = (2.5, 2.5, 3.0),
    *,
    closed_rib_cage: bool = False,
    seed: int = 0,
) -> tuple[sitk.Image, sitk.Image, dict[int, str]]:
    """Analytic torso CT and label map on an LPS grid centred at the origin.

    Parameters
    ----------
    size : (int, int, int)
        Voxels along x, y, z.
    spacing_mm : (float, float, float)
        Voxel size in mm (x, y, z).
    closed_rib_cage : bool
        Replace the ribs by a closed bony shell around the whole body (every needle path
        crosses bone): the test case for "no feasible plan".
    seed : int
        Seed of the image noise (SD 8 HU).

    Returns
    -------
    (ct, labels, label_names)
        ``ct`` int16 HU (-1000 outside the body), ``labels`` uint16.
    """
    axes = _grid(size, spacing_mm)
    x, y, z = axes
    lab = np.zeros(size[::-1], dtype=np.uint16)
    xx, yy = np.meshgrid(x, y, indexing="xy")  # (y, x)
    body2d = (xx / 150.0) ** 2 + (yy / 105.0) ** 2 <= 1.0
    ribs_ring = ((xx / 140.0) ** 2 + (yy / 96.0) ** 2 <= 1.0) & (
        (xx / 131.0) ** 2 + (yy / 88.0) ** 2 > 1.0
    )
    anterior_gap = (yy < -60) & (np.abs(xx) < 35)  # sternum region left open (cartilage gap)
    # organs (later paints override earlier ones)
    _paint_ellipsoid(lab, axes, 14, (-60, 10, 140), (70, 80, 90))
    _paint_ellipsoid(lab, axes, 11, (60, 10, 140), (70, 80, 90))
    lab[(z < 70)[:, None, None] & np.isin(lab, (11, 14))] = 0
    _paint_ellipsoid(lab, axes, 5, (-55, -5, 0), (80, 70, 70))
    _paint_ellipsoid(lab, axes, 1, (95, 40, 20), (28, 38, 45))
    _paint_ellipsoid(lab, axes, 6, (60, -30, 20), (40, 35, 45), where=(0,))
    _paint_ellipsoid(lab, axes, 18, (0, -40, -110), (100, 50, 45), where=(0,))
    _paint_ellipsoid(lab, axes, 2, (-75, 60, -65), (25, 25, 45))
    _paint_ellipsoid(lab, axes, 3, (75, 60, -55), (25, 25, 45))
    _paint_ellipsoid(lab, axes, 4, (-45, -50, -45), (14, 14, 25))
    _paint_tube(lab, axes, 52, (20, 45, -160), (20, 45, 160), 12)
    _paint_tube(lab, axes, 63, (-25, 38, -160), (-25, 38, 160), 11)
    _paint_tube(lab, axes, 64, (-20, 15, -25), (-85, 5, 10), 6)
    _paint_tube(lab, axes, 200, (-25, 38, 45), (-95, -25, 35), 5)
    lab[:, ~body2d] = 0
    vert = xx**2 + (yy - 70) ** 2 <= 20**2
    cord = xx**2 + (yy - 70) ** 2 <= 6**2
    for k, zk in enumerate(z):
        level = 31 if zk < -40 else (32 if zk < 40 else 33)
        lab[k][vert] = level
        lab[k][cord] = 79
    if closed_rib_cage:
        shell = ribs_ring
        lab[:, shell] = 112
    else:
        for i, zc in enumerate(np.arange(150, -60, -26.0)[:7]):
            in_rib = np.abs(z - zc) <= 5.0
            for k in np.nonzero(in_rib)[0]:
                ring = ribs_ring & ~anterior_gap
                lab[k][ring & (xx < 0)] = 109 + i
                lab[k][ring & (xx >= 0)] = 97 + i
    hu = np.vectorize(lambda v: _HU.get(int(v), 700 if 97 <= v <= 115 else 20))(
        np.arange(256)
    ).astype(np.float32)
    ct = hu[np.minimum(lab, 255)]
    ct[lab == 200] = _HU[200]
    ct[:, ~body2d] = -1000.0
    rng = np.random.default_rng(seed)
    ct += rng.normal(0.0, 8.0, size=ct.shape).astype(np.float32)
    return (
        _to_image(ct.astype(np.int16), axes, spacing_mm),
        _to_image(lab, axes, spacing_mm),
        {k: v for k, v in TORSO_LABELS.items() if np.any(lab == k)}
        if lab.size < 5e6
        else dict(TORSO_LABELS),
    )


def _to_image(array, axes, spacing):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(a[0]) for a in axes])
    return image


def place_tumor(
    ct: sitk.Image,
    labels: sitk.Image,
    diameter_mm: float,
    *,
    liver_labels: tuple[int, ...] = (5,),
    clearance_mm: float = 10.0,
    center_lps: tuple[float, float, float] | None = None,
    seed: int = 0,
    hu_drop: float = 45.0,
) -> tuple[sitk.Image, sitk.Image, tuple[float, float, float]]:
    """Put a hypodense spherical tumour in the liver.

    Parameters
    ----------
    ct, labels : SimpleITK.Image
        On the same grid.
    diameter_mm : float
    liver_labels : tuple of int
    clearance_mm : float
        Distance kept between the tumour surface and any non-liver label (mm).
    center_lps : (x, y, z), optional
        Fixed centre; otherwise chosen (seeded) among liver voxels deep enough.
    seed : int
    hu_drop : float
        Tumour HU = liver HU - hu_drop.

    Returns
    -------
    (ct_with_tumour, tumour_mask uint8, centre LPS mm)
    """
    lab = sitk.GetArrayViewFromImage(labels)
    spacing_zyx = np.asarray(ct.GetSpacing())[::-1]
    r = diameter_mm / 2.0
    if center_lps is None:
        liver = np.isin(lab, liver_labels)
        depth = ndimage.distance_transform_edt(liver, sampling=spacing_zyx)
        ok = np.argwhere(depth >= r + clearance_mm)
        if not len(ok):
            ok = np.argwhere(depth >= depth.max() - 1e-6)
        pick = ok[np.random.default_rng(seed).integers(len(ok))]
        center_lps = ct.TransformIndexToPhysicalPoint([int(v) for v in pick[::-1]])
    c_idx = lps_to_voxel(ct, np.asarray(center_lps, dtype=float)[None])[0]
    pad = np.ceil(r / np.asarray(ct.GetSpacing())).astype(int) + 2
    lo = np.maximum(np.floor(c_idx).astype(int) - pad, 0)
    hi = np.minimum(np.floor(c_idx).astype(int) + pad + 1, np.asarray(ct.GetSize()))
    zz, yy, xx = np.meshgrid(*(np.arange(lo[i], hi[i]) for i in (2, 1, 0)), indexing="ij")
    pts = voxel_to_lps(ct, np.stack([xx, yy, zz], axis=-1).reshape(-1, 3)).reshape(*xx.shape, 3)
    stretch = 1.0 + 0.08 * np.random.default_rng(seed + 1).uniform(-1, 1, 3)
    inside = np.sum(((pts - np.asarray(center_lps)) / (r * stretch)) ** 2, axis=-1) <= 1.0
    mask = np.zeros(lab.shape, dtype=np.uint8)
    mask[lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]] = inside
    ct_arr = sitk.GetArrayFromImage(ct).astype(np.float32)
    liver_vals = ct_arr[np.isin(lab, liver_labels)]
    liver_hu = float(np.median(liver_vals)) if liver_vals.size else 60.0
    ct_arr[mask > 0] = liver_hu - hu_drop + (ct_arr[mask > 0] - ct_arr[mask > 0].mean())
    out = sitk.GetImageFromArray(np.rint(ct_arr).astype(np.int16))
    out.CopyInformation(ct)
    tumor = sitk.GetImageFromArray(mask)
    tumor.CopyInformation(ct)
    return out, tumor, tuple(float(v) for v in center_lps)


def make_planning_case(
    base: str = "torso",
    diameter_mm: float = 30.0,
    *,
    seed: int = 0,
    data_dir: str | Path | None = None,
    clearance_mm: float = 10.0,
    **kwargs,
) -> PlanningCase:
    """A CT with a tumour in the liver and its label map.

    Parameters
    ----------
    base : {"torso", "procedural", "dicom"}
        Analytic torso, the procedural abdomen phantom, or the real DICOM scan
        (``data_dir`` = the folder with ``ct-abdomen-dicom/``).
    diameter_mm : float
    seed : int
    clearance_mm : float
        Distance kept between the tumour and any non-liver label (mm).
    **kwargs
        Passed to :func:`make_torso` (torso) or ``make_abdomen`` (procedural).
    """
    if base == "torso":
        ct, labels, names = make_torso(seed=seed, **kwargs)
    elif base == "procedural":
        from hepanav.phantoms.abdomen import make_abdomen  # owned by the phantoms package

        abdomen = make_abdomen(seed=seed, **kwargs)
        ct, labels, names = abdomen.ct, abdomen.labels, dict(abdomen.label_names)
    elif base == "dicom":
        from hepanav.imaging import read_image, read_label_names, resample_labels_like

        folder = Path(data_dir or "../shared/data") / "ct-abdomen-dicom"
        ct = read_image(folder / "series")
        labels = resample_labels_like(read_image(folder / "labels.nii.gz"), ct)
        names = read_label_names(folder / "labels.json")
    else:
        raise ValueError(f"unknown base {base!r}")
    ct_t, tumor, center = place_tumor(
        ct,
        labels,
        diameter_mm,
        seed=seed,
        clearance_mm=clearance_mm,
    )
    return PlanningCase(ct_t, labels, tumor, names, center, diameter_mm)
