"""A procedural upper-abdominal CT phantom in the portal venous phase, with a label map.

Anatomy is built from analytic shapes in LPS millimetres (x to the patient's
left, y posterior, z superior; the origin lies in front of the spine at the
level of the liver hilum): a body with subcutaneous fat and a muscle wall, a
liver with an irregular outline under the diaphragm dome, portal and hepatic
vein trees branching inside it, IVC, aorta, gallbladder, kidneys, spleen,
stomach, colon and small bowel, vertebrae, ribs with costal cartilages, the
sternum, the lung bases and the heart above the diaphragm.

Attenuation values: :data:`hepanav.phantoms.canvas.HU`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from hepanav.core.errors import InputError
from hepanav.phantoms.body import (
    FAT_DEPTH,
    WALL_DEPTH,
    body_sd,
    diaphragm_z,
)
from hepanav.phantoms.canvas import HU, Canvas
from hepanav.phantoms.grid import Grid, partial_volume
from hepanav.phantoms.schema import LABEL_IDS, LABEL_NAMES
from hepanav.phantoms.sdf import Waves, ellipse_sd, ellipsoid_sd, smooth_min
from hepanav.phantoms.skeleton import paint_ribs, paint_spine
from hepanav.phantoms.vessels import Segment, Tree, grow_tree, paint_segments

# Default field of view: the upper abdomen from the lung bases to the lower kidney poles.
DEFAULT_EXTENT_MM = (360.0, 260.0, 190.0)
DEFAULT_CENTER_LPS = (0.0, 0.0, 5.0)
# A case on 512 x 512 x 300 voxels (78 M) peaks at about 3 GB (docs/phantoms.md); about
# twice that is the most a laptop can hold. Larger grids would end in MemoryError.
MAX_VOXELS = 160_000_000

# Vessel branches at least this wide (radius, mm) carry their vessel label; thinner
# ones stay "liver", as in segmentations of real scans (TotalSegmentator).
VESSEL_LABEL_MIN_RADIUS_MM = 1.5


@dataclass
class Abdomen:
    """A generated abdominal CT phantom.

    Attributes
    ----------
    ct : SimpleITK.Image
        CT in HU, int16, LPS, identity direction.
    labels : SimpleITK.Image
        uint8 label map on the same grid (TotalSegmentator v2 ids, see ``label_names``).
    label_names : dict of int to str
        Names of the labels present.
    liver : SimpleITK.Image
        uint8 0/1 liver mask including the intrahepatic vessels (what a liver
        segmentation holds), excluding the IVC, gallbladder and other organs.
    bifurcations_lps : ndarray, shape (N, 3)
        Vessel bifurcation points (LPS mm) of the portal and hepatic trees.
    liver_hu : float
        Mean attenuation of liver parenchyma, HU.
    clean_hu : ndarray, shape (nz, ny, nx), float32
        The CT before noise, for building further scans from the same anatomy.
    """

    ct: sitk.Image
    labels: sitk.Image
    label_names: dict[int, str]
    liver: sitk.Image
    bifurcations_lps: np.ndarray
    liver_hu: float = HU["liver"]
    clean_hu: np.ndarray | None = field(default=None, repr=False)
    grid: Grid | None = field(default=None, repr=False)


def default_grid(
    spacing_mm: tuple[float, float, float] = (1.5, 1.5, 1.5),
    size: tuple[int, int, int] | None = None,
) -> Grid:
    """Identity-direction grid centred on the upper abdomen.

    ``size`` None covers :data:`DEFAULT_EXTENT_MM` (360 x 260 x 190 mm).
    """
    if min(spacing_mm) <= 0:
        raise InputError(f"voxel size must be positive, got {tuple(spacing_mm)} mm", "spacing_mm")
    if size is not None and min(size) < 2:
        raise InputError(f"grid needs at least 2 voxels per axis, got {tuple(size)}", "size")
    if size is None:
        size = tuple(
            max(2, round(e / s)) for e, s in zip(DEFAULT_EXTENT_MM, spacing_mm, strict=True)
        )
    n = int(np.prod(size, dtype=np.int64))
    if n > MAX_VOXELS:
        raise InputError(
            f"grid of {' x '.join(map(str, size))} = {n / 1e6:.0f} M voxels exceeds the "
            f"limit of {MAX_VOXELS / 1e6:.0f} M; use a larger spacing or a smaller size",
            "size",
        )
    return Grid.centered(np.asarray(DEFAULT_CENTER_LPS), spacing_mm, size)


def make_abdomen(
    seed: int = 0,
    spacing_mm: tuple[float, float, float] = (1.5, 1.5, 1.5),
    size: tuple[int, int, int] | None = None,
    noise_hu: float = 12.0,
) -> Abdomen:
    """Generate the abdominal CT phantom.

    Parameters
    ----------
    seed : int
        Seeds the liver outline, vessel trees and noise; same seed, same phantom.
    spacing_mm : (float, float, float)
        Voxel size (x, y, z), mm.
    size : (int, int, int), optional
        Voxels (x, y, z); the grid stays centred on the upper abdomen. Default covers
        360 x 260 x 190 mm (240 x 173 x 127 voxels at 1.5 mm).
    noise_hu : float
        SD of the added Gaussian image noise, HU (abdominal CT: about 10-15 HU).

    Returns
    -------
    Abdomen
    """
    grid = default_grid(spacing_mm, size)
    anatomy = build_anatomy(np.random.default_rng(seed), grid)
    noise_rng = np.random.default_rng([seed, 1])
    ct = grid.image(to_int16(add_noise(anatomy.hu, noise_hu, noise_rng)))
    present = np.unique(anatomy.labels)
    return Abdomen(
        ct=ct,
        labels=grid.image(anatomy.labels),
        label_names={int(i): LABEL_NAMES[int(i)] for i in present if i},
        liver=grid.image(anatomy.liver),
        bifurcations_lps=anatomy.bifurcations,
        clean_hu=anatomy.hu,
        grid=grid,
    )


# CT noise is spatially correlated (reconstruction kernels low-pass it); a Gaussian
# filter of 0.6 voxel on white noise gives a neighbour correlation of about 0.45, in the
# range of soft-tissue kernels.
NOISE_CORRELATION_VOXELS = 0.6


def add_noise(hu: np.ndarray, noise_hu: float, rng: np.random.Generator) -> np.ndarray:
    """``hu`` plus correlated Gaussian noise of SD ``noise_hu`` HU (new float32 array)."""
    if noise_hu <= 0:
        return hu.copy()
    from scipy import ndimage

    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    ndimage.gaussian_filter(noise, NOISE_CORRELATION_VOXELS, output=noise, truncate=3.0)
    # Filtering lowers the SD by a known factor: the norm of the (separable) kernel.
    noise *= np.float32(noise_hu / _filtered_sd(NOISE_CORRELATION_VOXELS))
    noise += hu
    return noise


def _filtered_sd(sigma: float) -> float:
    """SD of unit white noise after a 3D Gaussian filter of ``sigma`` voxels."""
    from scipy import ndimage

    impulse = np.zeros(31)
    impulse[15] = 1.0
    kernel = ndimage.gaussian_filter1d(impulse, sigma, truncate=3.0)
    return float(np.sqrt(np.sum(kernel**2)) ** 3)


def to_int16(hu: np.ndarray) -> np.ndarray:
    """Round and clip HU to int16 (the storage type of CT)."""
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


# Liver: a smooth union of lobes (centre, semi-axes in mm): right lobe, medial segment,
# left lateral lobe and caudate lobe, clipped by the diaphragm and the abdominal wall.
LIVER_LOBES = (
    ((-75.0, 5.0, 15.0), (75.0, 85.0, 70.0)),
    ((-10.0, -35.0, 35.0), (55.0, 50.0, 40.0)),
    ((45.0, -45.0, 40.0), (50.0, 35.0, 28.0)),
    ((-20.0, 25.0, 20.0), (25.0, 25.0, 30.0)),
)
LIVER_BOX = ((-160.0, -105.0, -70.0), (105.0, 100.0, 90.0))


@dataclass(frozen=True)
class LiverShape:
    """Implicit liver: ``sd(x, y, z)`` in mm (negative inside), seeded outline."""

    outline: Waves
    outline_mm: float = 6.0

    def sd(self, x, y, z):
        """Signed distance (approximate, mm) at broadcastable coordinates."""
        d = None
        for c, a in LIVER_LOBES:
            e = ellipsoid_sd(x, y, z, c, a)
            d = e if d is None else smooth_min(d, e, 18.0)
        d = d + self.outline_mm * self.outline(x, y, z)
        d = np.maximum(d, z - (diaphragm_z(x, y) - 5.0))
        return np.maximum(d, body_sd(x, y) + WALL_DEPTH + 3.0)

    def depth(self, points: np.ndarray) -> np.ndarray:
        """Depth inside the liver (mm, negative outside) of points (N, 3)."""
        p = np.atleast_2d(points)
        return -self.sd(p[:, 0], p[:, 1], p[:, 2])


# ---------------------------------------------------------------------------------------
# Assembly
# ---------------------------------------------------------------------------------------


@dataclass
class Anatomy:
    """Noise-free phantom arrays (z, y, x) on ``grid``."""

    grid: Grid
    hu: np.ndarray
    labels: np.ndarray
    liver: np.ndarray
    bifurcations: np.ndarray
    trees: dict[str, Tree]


def build_anatomy(rng: np.random.Generator, grid: Grid) -> Anatomy:
    """Paint every structure onto ``grid`` (must be axis-aligned); no noise.

    Painting order sets priority: later structures overwrite earlier ones.
    """
    if not grid.is_axis_aligned:
        raise ValueError("the procedural phantom is built on an identity-direction grid")
    cv = Canvas(grid)
    liver = LiverShape(Waves.random(rng, 8, (50.0, 140.0)))
    _paint_body(cv)
    _paint_thorax(cv)
    _paint_bowel(cv)
    liver_sd = _paint_liver(cv, liver, Waves.random(rng, 6, (12.0, 40.0)))
    _paint_organs(cv)
    trees = _paint_vessels(cv, rng, liver)
    paint_spine(cv)
    paint_ribs(cv)
    liver_mask = _liver_mask(cv, liver_sd)
    nodes = [p for t in ("portal", "hepatic") for p in trees[t].bifurcations]
    return Anatomy(grid, cv.hu, cv.labels, liver_mask, np.asarray(nodes).reshape(-1, 3), trees)


def _paint_body(cv: Canvas) -> None:
    """Skin/subcutaneous fat, muscle wall, visceral fat and paraspinal muscles (2D, all z)."""
    x, y, _ = cv.grid.axes()
    x2, y2 = x[0], y[0]
    sd = body_sd(x2, y2)
    v = cv.voxel
    plane = np.full(sd.shape, HU["air"], np.float32)
    for depth, value in (
        (0.0, HU["fat"]),
        (FAT_DEPTH, HU["muscle"]),
        (WALL_DEPTH, HU["visceral_fat"]),
    ):
        f = partial_volume(sd + depth, v)
        plane += (value - plane) * f
    for side in (-1.0, 1.0):
        f = partial_volume(ellipse_sd(x2, y2, 32.0 * side, 92.0, 24.0, 18.0), v)
        plane += (HU["muscle"] - plane) * f
    cv.hu[...] = plane[None]


def _paint_thorax(cv: Canvas) -> None:
    """Lung bases above the diaphragm and the heart on its central part."""
    x, y, z = cv.grid.axes()
    zd = diaphragm_z(x[0], y[0])[None]
    k0 = int(np.clip(np.floor((float(np.min(zd)) - 5.0 - z.min()) / cv.grid.spacing[2]), 0, None))
    if k0 >= cv.grid.shape[0]:
        return
    block = (slice(k0, cv.grid.shape[0]), slice(0, cv.grid.shape[1]), slice(0, cv.grid.shape[2]))
    _, _, zb = cv.grid.axes(block)
    inner = (body_sd(x[0], y[0]) + WALL_DEPTH)[None]
    sd = np.maximum(zd + 3.0 - zb, inner + 2.0)
    lung_label = np.where(
        x[0] < 0, LABEL_IDS["lung_lower_lobe_right"], LABEL_IDS["lung_lower_lobe_left"]
    ).astype(np.uint8)
    frac = partial_volume(sd, cv.voxel)
    view = cv.hu[block]
    view += (HU["lung"] - view) * frac
    inside = sd < 0
    lab = cv.labels[block]
    lab[inside] = np.broadcast_to(lung_label, lab.shape)[inside]
    hb = cv.block((-50, -85, 55), (90, 45, 160))
    if hb is not None:
        xb, yb, zb = cv.grid.axes(hb)
        sd = ellipsoid_sd(xb, yb, zb, (20.0, -20.0, 105.0), (65.0, 50.0, 45.0))
        sd = np.maximum(sd, diaphragm_z(xb, yb) + 3.0 - zb)
        cv.paint(hb, sd, HU["heart"], LABEL_IDS["heart"])


def _paint_bowel(cv: Canvas) -> None:
    """Colon (air and stool) and small-bowel loops in the lower abdomen."""
    colon = np.array(
        [
            (-115, 15, -100),
            (-115, -10, -45),
            (-60, -70, -60),
            (0, -80, -70),
            (60, -70, -55),
            (105, -25, -25),
            (112, 20, -60),
            (112, 25, -110),
        ],
        float,
    )
    segs = [Segment(a, b, 20.0, 20.0) for a, b in zip(colon[:-1], colon[1:], strict=True)]
    paint_segments(
        cv.hu,
        cv.labels,
        cv.grid,
        segs,
        HU["colon_content"],
        LABEL_IDS["colon"],
        wall=(3.0, HU["bowel_wall"]),
    )
    loops = np.array(
        [
            (-55, -65, -105),
            (45, -65, -100),
            (45, -35, -88),
            (-55, -35, -85),
            (-55, -60, -75),
            (20, -55, -75),
        ],
        float,
    )
    segs = [Segment(a, b, 12.0, 12.0) for a, b in zip(loops[:-1], loops[1:], strict=True)]
    paint_segments(
        cv.hu,
        cv.labels,
        cv.grid,
        segs,
        HU["bowel_content"],
        LABEL_IDS["small_bowel"],
        wall=(2.5, HU["bowel_wall"]),
    )


def _paint_liver(cv: Canvas, liver: LiverShape, texture: Waves):
    """Liver parenchyma with a slight texture; returns (block, signed distance) for its mask."""
    block = cv.block(*LIVER_BOX)
    if block is None:
        return None
    x, y, z = cv.grid.axes(block)
    sd = liver.sd(x, y, z).astype(np.float32)
    value = np.float32(HU["liver"]) + np.float32(4.0) * texture(x, y, z)
    cv.paint(block, sd, value, LABEL_IDS["liver"])
    return block, sd


def _paint_organs(cv: Canvas) -> None:
    """Gallbladder, kidneys, spleen and stomach (after the liver, which they indent)."""

    def ellipsoid(c, a, value, label, shell=None, clip_diaphragm=False):
        pad = max(a) + 10
        block = cv.block(np.subtract(c, pad), np.add(c, pad))
        if block is None:
            return None
        x, y, z = cv.grid.axes(block)
        sd = ellipsoid_sd(x, y, z, c, a)
        if clip_diaphragm:
            sd = np.maximum(sd, z - (diaphragm_z(x, y) - 5.0))
            sd = np.maximum(sd, body_sd(x, y) + WALL_DEPTH + 3.0)
        if shell is not None:
            cv.paint(block, sd - shell[0], shell[1], 0 if shell[1] < -50 else label)
        cv.paint(block, sd, value, label)
        return block, sd, (x, y, z)

    ellipsoid(
        (-45.0, -62.0, -30.0),
        (15.0, 18.0, 35.0),
        HU["bile"],
        LABEL_IDS["gallbladder"],
        shell=(2.5, HU["bowel_wall"]),
    )
    for side, zc, name in ((-1, -55.0, "kidney_right"), (1, -40.0, "kidney_left")):
        c, a = (72.0 * side, 62.0, zc), (28.0, 22.0, 55.0)
        ellipsoid(c, a, HU["kidney_cortex"], LABEL_IDS[name], shell=(5.0, HU["visceral_fat"]))
        inner = tuple(0.55 * v for v in a)
        ellipsoid(c, inner, HU["kidney_medulla"], LABEL_IDS[name])
    ellipsoid(
        (100.0, 55.0, 25.0),
        (25.0, 45.0, 50.0),
        HU["spleen"],
        LABEL_IDS["spleen"],
        shell=(3.0, HU["visceral_fat"]),
        clip_diaphragm=True,
    )
    res = ellipsoid(
        (62.0, -5.0, 25.0),
        (38.0, 32.0, 45.0),
        HU["bowel_wall"],
        LABEL_IDS["stomach"],
        shell=(3.0, HU["visceral_fat"]),
        clip_diaphragm=True,
    )
    if res is not None:
        block, sd, (x, y, z) = res
        cv.paint(block, sd + 4.0, HU["gastric_fluid"])
        # Gas rises to the non-dependent (anterior, -y) part of the stomach in a supine patient.
        cv.paint(block, np.maximum(sd + 4.0, y - (-5.0 - 14.0)), HU["air"])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _paint_vessels(cv: Canvas, rng: np.random.Generator, liver: LiverShape) -> dict[str, Tree]:
    """Aorta, IVC, portal vein (with splenic vein) and hepatic veins with their trees."""
    g, lab = cv.grid, cv.labels
    lo, hi = g.extent()
    zlo, zhi = lo[2] - 20, hi[2] + 20
    aorta = [Segment(np.array([20.0, 22.0, zlo]), np.array([20.0, 22.0, zhi]), 11.0, 11.0)]
    ivc = [
        Segment(np.array([-24.0, 18.0, zlo]), np.array([-24.0, 18.0, 75.0]), 12.0, 12.0),
        Segment(np.array([-24.0, 18.0, 75.0]), np.array([-5.0, -5.0, 100.0]), 12.0, 12.0),
    ]
    confluence = np.array([5.0, 0.0, -50.0])
    porta = np.array([-28.0, -8.0, -5.0])
    trunk = [Segment(confluence, porta, 7.0, 6.5)]
    splenic = [
        Segment(confluence, np.array([50.0, 20.0, -25.0]), 4.5, 4.5),
        Segment(np.array([50.0, 20.0, -25.0]), np.array([82.0, 38.0, 5.0]), 4.5, 4.0),
    ]
    paint_segments(cv.hu, lab, g, aorta, HU["aorta"], LABEL_IDS["aorta"])
    portal, hepatic = Tree(), Tree()
    nodes: list[np.ndarray] = []
    left = porta + 32.0 * _unit(np.array([15.0, -32.0, 18.0]) - porta)
    right = porta + 15.0 * _unit(np.array([-75.0, 0.0, 10.0]) - porta)
    # Right and left portal veins, the umbilical part of the left one (left lateral lobe)
    # and the right posterior branch (inferior right lobe).
    for start, target, radius, length in (
        (porta, (-75.0, 0.0, 10.0), 5.5, 28.0),
        (porta, (15.0, -32.0, 18.0), 5.0, 32.0),
        (left, (55.0, -45.0, 38.0), 3.8, 40.0),
        (right, (-85.0, 45.0, -35.0), 4.5, 30.0),
    ):
        d = np.asarray(target) - start
        t = grow_tree(rng, start, d, radius, length, liver.depth, others=nodes)
        portal.segments += t.segments
        portal.bifurcations += t.bifurcations
        nodes += [s.end for s in t.segments]
    ostium = np.array([-24.0, 18.0, 58.0])
    for target, radius, length in (
        ((-100.0, 0.0, 20.0), 5.0, 30.0),
        ((-45.0, -45.0, 15.0), 4.5, 30.0),
        ((45.0, -40.0, 45.0), 4.0, 40.0),
    ):
        d = np.asarray(target) - ostium
        start = ostium + 10.0 * d / np.linalg.norm(d)  # leave the IVC lumen first
        t = grow_tree(rng, start, d, radius, length, liver.depth, others=nodes)
        hepatic.segments += [Segment(ostium, start, radius, radius)] + t.segments
        hepatic.bifurcations += t.bifurcations
        nodes += [s.end for s in t.segments]
    paint_segments(
        cv.hu,
        lab,
        g,
        hepatic.segments,
        HU["hepatic_vein"],
        LABEL_IDS["hepatic_veins"],
        VESSEL_LABEL_MIN_RADIUS_MM,
    )
    paint_segments(
        cv.hu,
        lab,
        g,
        trunk + splenic + portal.segments,
        HU["portal_vein"],
        LABEL_IDS["portal_vein_and_splenic_vein"],
        VESSEL_LABEL_MIN_RADIUS_MM,
    )
    paint_segments(cv.hu, lab, g, ivc, HU["ivc"], LABEL_IDS["inferior_vena_cava"])
    return {"portal": portal, "hepatic": hepatic}


def _liver_mask(cv: Canvas, liver_block) -> np.ndarray:
    """Liver = inside the liver shape and labelled liver or intrahepatic vessel."""
    mask = np.zeros(cv.grid.shape, np.uint8)
    if liver_block is None:
        return mask
    block, sd = liver_block
    lab = cv.labels[block]
    keep = (sd < 0) & np.isin(
        lab,
        (LABEL_IDS["liver"], LABEL_IDS["portal_vein_and_splenic_vein"], LABEL_IDS["hepatic_veins"]),
    )
    mask[block] = keep
    return mask
