"""Paired white-light and ICG near-infrared frames of a liver surface, with ground truth.

The generator is a small forward model of what a laparoscopic NIR tower records:

* **Lesion emission.** Each lesion is a disk on the (locally flat) liver surface with a
  fluorescence pattern: ``homogeneous`` (filled disk), ``rim`` (ring of given thickness,
  the CRLM pattern of ICG trapped in compressed hepatocytes, van der Vorst 2013) or
  ``partial`` (part of the tumour fluoresces strongly, the rest weakly; Ishizawa 2009).
  The emission at the surface is ``background * (surface_tbr - 1)`` above the liver.
* **Depth.** A lesion at ``depth_mm`` below the capsule is attenuated by
  ``exp(-mu_eff * depth)`` and blurred by diffusion with a Gaussian whose width grows
  linearly with depth (a rule of thumb of diffuse optics: the lateral spread of a buried
  source is about its depth). ``mu_eff`` defaults to 0.3 /mm so that contrast falls to
  5 % at 10 mm, matching the 5-10 mm visibility limit in docs (domain.md, "Depth").
* **Liver background.** Uniform hepatic ICG uptake with a fine lobular texture and a
  large-scale uptake gradient; multiplied by the illumination fall-off (vignetting).
* **Camera.** Shot noise (Poisson in electrons, ``gain_e_per_dn``), Gaussian read
  noise, quantisation to 8/12/16 bit and clipping; specular highlights of the white
  light (saturated, and leaking weakly into the NIR channel); slow camera drift.

Everything is returned with its ground truth: the noise-free NIR image, one boolean
mask per lesion and the lesion parameters. The *lesion mask* is defined, as in
``hepanav.fluorescence``, as the region where the lesion's own noise-free contrast
exceeds ``boundary_fraction`` (35 %) of its peak, with holes filled.

Coordinates: pixels, x to the right and y down; ``mm_per_px`` gives the scale.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

PATTERNS = ("homogeneous", "partial", "rim")

#: Fraction of a lesion's peak contrast that defines its boundary (shared definition
#: with hepanav.fluorescence.detect.DetectionParams.boundary_fraction).
BOUNDARY_FRACTION = 0.35

# White-light colour of liver capsule in BGR (reddish brown), measured by eye from
# public laparoscopy stills; only the hue matters for colour unmixing tests.
_LIVER_BGR = np.array([52.0, 62.0, 150.0], dtype=np.float32)


@dataclass(frozen=True)
class FluoroLesion:
    """One fluorescent lesion.

    Parameters
    ----------
    centre_xy : tuple of float
        Centre in scene pixels (scene = the camera frame at time 0).
    diameter_mm : float
        Outer diameter of the fluorescent region, mm.
    depth_mm : float
        Depth of the lesion below the liver surface, mm (0 = on the surface).
    pattern : str
        ``homogeneous``, ``partial`` or ``rim``.
    surface_tbr : float
        Tumour-to-background ratio the lesion would have on the surface (no depth).
    rim_thickness_mm : float
        Thickness of the fluorescent ring (``rim`` only), mm.
    partial_angle_deg : float
        Angular extent of the strongly fluorescent part (``partial`` only), degrees.
    partial_orientation_deg : float
        Direction of the strongly fluorescent part (``partial`` only), degrees.
    partial_floor : float
        Relative emission of the weakly fluorescent part (``partial`` only), 0-1.
    """

    centre_xy: tuple[float, float]
    diameter_mm: float
    depth_mm: float = 0.0
    pattern: str = "homogeneous"
    surface_tbr: float = 6.0
    rim_thickness_mm: float = 1.5
    partial_angle_deg: float = 180.0
    partial_orientation_deg: float = 0.0
    partial_floor: float = 0.5

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {PATTERNS}, not {self.pattern!r}")
        if self.diameter_mm <= 0 or self.depth_mm < 0 or self.surface_tbr <= 1:
            raise ValueError("diameter_mm > 0, depth_mm >= 0 and surface_tbr > 1 required")


@dataclass(frozen=True)
class Optics:
    """Light transport in liver at ICG wavelengths (about 800-830 nm).

    Parameters
    ----------
    mu_eff_per_mm : float
        Effective attenuation coefficient, 1/mm. 0.3 /mm leaves 5 % of the contrast at
        10 mm (docs/domain.md: signal seen to about 5-10 mm below the surface).
    psf_sigma_surface_mm : float
        Blur of a lesion on the surface (optics and tissue), mm.
    psf_sigma_per_mm_depth : float
        Growth of the diffusion blur with depth; 0.42 gives FWHM about equal to depth.
    """

    mu_eff_per_mm: float = 0.3
    psf_sigma_surface_mm: float = 0.15
    psf_sigma_per_mm_depth: float = 0.42

    def sigma_mm(self, depth_mm: float) -> float:
        """Gaussian blur (mm) of a lesion at ``depth_mm`` below the surface."""
        return self.psf_sigma_surface_mm + self.psf_sigma_per_mm_depth * depth_mm

    def attenuation(self, depth_mm: float) -> float:
        """Fraction of emitted contrast reaching the surface from ``depth_mm``."""
        return float(np.exp(-self.mu_eff_per_mm * depth_mm))


@dataclass(frozen=True)
class Camera:
    """NIR/white-light camera.

    Parameters
    ----------
    width, height : int
        Frame size, pixels.
    mm_per_px : float
        Pixel size on the liver surface, mm (0.15 mm: a 77 mm field on 512 pixels).
    bit_depth : int
        NIR bit depth (8, 12 or 16).
    background_dn : float
        Mean liver NIR signal at the image centre, digital numbers (DN).
    gain_e_per_dn : float
        Electrons per DN; sets the shot noise.
    read_noise_dn : float
        Read noise, DN.
    vignetting : float
        Relative illumination loss at the frame corners (0 = none).
    texture : float
        Relative SD of the fine lobular texture of liver uptake.
    specular_count : int
        Number of specular highlights per frame.
    specular_nir_leak : float
        NIR signal of a highlight relative to the liver background (excitation leak).
    """

    width: int = 512
    height: int = 512
    mm_per_px: float = 0.15
    bit_depth: int = 12
    background_dn: float = 300.0
    gain_e_per_dn: float = 4.0
    read_noise_dn: float = 3.0
    vignetting: float = 0.35
    texture: float = 0.025
    specular_count: int = 4
    specular_nir_leak: float = 0.8

    @property
    def full_scale(self) -> int:
        return (1 << self.bit_depth) - 1

    def noise_sd(self, clean_dn: np.ndarray | float) -> np.ndarray | float:
        """Pixel noise SD (DN) at the noise-free signal ``clean_dn`` (DN)."""
        return np.sqrt(np.maximum(clean_dn, 0) / self.gain_e_per_dn + self.read_noise_dn**2)


@dataclass
class FluoroFrame:
    """One generated frame with its ground truth.

    Attributes
    ----------
    index : int
        Frame number.
    nir : ndarray, (H, W) uint8 or uint16
        Noisy NIR frame, DN.
    white : ndarray, (H, W, 3) uint8
        White-light frame, BGR.
    nir_clean : ndarray, (H, W) float32
        Noise-free NIR frame (vignetting included), DN.
    lesion_masks : list of ndarray, (H, W) bool
        Ground-truth mask of each lesion (empty when the lesion left the field).
    lesion_contrast : list of ndarray, (H, W) float32
        Noise-free contrast of each lesion alone, DN (including vignetting).
    lesions : list of FluoroLesion
        Lesion parameters, in the same order.
    offset_xy : tuple of float
        Camera position: scene coordinates of the frame's pixel (0, 0).
    specular_mask : ndarray, (H, W) bool
        Specular highlights.
    """

    index: int
    nir: np.ndarray
    white: np.ndarray
    nir_clean: np.ndarray
    lesion_masks: list[np.ndarray]
    lesion_contrast: list[np.ndarray]
    lesions: list[FluoroLesion]
    offset_xy: tuple[float, float]
    specular_mask: np.ndarray = field(repr=False)


def lesion_emission(lesion: FluoroLesion, mm_per_px: float) -> tuple[np.ndarray, int]:
    """Surface emission pattern of a lesion (before depth effects), 0-1.

    Returns
    -------
    pattern : ndarray, (2r+1, 2r+1) float32
        Relative emission, 1 in the strongly fluorescent part; supersampled 4x at the
        edges so partial pixels get partial values.
    r : int
        Half size, pixels.
    """
    radius = lesion.diameter_mm / 2 / mm_per_px
    r = int(np.ceil(radius)) + 1
    ss = 4  # supersampling
    coords = (np.arange((2 * r + 1) * ss) + 0.5) / ss - (r + 0.5)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    rr = np.hypot(xx, yy)
    emission = (rr <= radius).astype(np.float32)
    if lesion.pattern == "rim":
        inner = radius - lesion.rim_thickness_mm / mm_per_px
        emission[rr < inner] = 0.0
    elif lesion.pattern == "partial":
        angle = np.degrees(np.arctan2(yy, xx)) - lesion.partial_orientation_deg
        angle = (angle + 180.0) % 360.0 - 180.0
        weak = np.abs(angle) > lesion.partial_angle_deg / 2
        emission[weak & (rr <= radius)] = lesion.partial_floor
    emission = cv2.resize(emission, (2 * r + 1, 2 * r + 1), interpolation=cv2.INTER_AREA)
    return emission, r


def lesion_contrast_patch(
    lesion: FluoroLesion, camera: Camera, optics: Optics
) -> tuple[np.ndarray, int]:
    """Noise-free contrast of a lesion at the surface, DN above the background.

    Returns
    -------
    patch : ndarray, (2h+1, 2h+1) float32
        Emission x attenuation, blurred by depth diffusion, in DN.
    h : int
        Half size of the patch, pixels (lesion radius plus 4 blur SDs).
    """
    emission, r = lesion_emission(lesion, camera.mm_per_px)
    sigma_px = optics.sigma_mm(lesion.depth_mm) / camera.mm_per_px
    pad = int(np.ceil(4 * sigma_px)) + 2
    patch = cv2.copyMakeBorder(emission, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    patch = cv2.GaussianBlur(patch, (0, 0), sigma_px, borderType=cv2.BORDER_CONSTANT)
    amplitude = (
        camera.background_dn * (lesion.surface_tbr - 1) * optics.attenuation(lesion.depth_mm)
    )
    return (patch * amplitude).astype(np.float32), r + pad


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """Zero-mean, unit-SD Gaussian random field with correlation length ``scale_px``."""
    field_ = rng.standard_normal(shape).astype(np.float32)
    field_ = cv2.GaussianBlur(field_, (0, 0), max(scale_px, 0.5))
    return (field_ - field_.mean()) / (field_.std() + 1e-12)


def vignetting_map(camera: Camera) -> np.ndarray:
    """Relative illumination (H, W) float32: 1 at the centre, ``1 - vignetting`` at corners."""
    y, x = np.mgrid[0 : camera.height, 0 : camera.width].astype(np.float32)
    cx, cy = (camera.width - 1) / 2, (camera.height - 1) / 2
    r2 = ((x - cx) ** 2 + (y - cy) ** 2) / (cx**2 + cy**2)
    return (1.0 - camera.vignetting * r2).astype(np.float32)


def _place(patch: np.ndarray, centre_xy: tuple[float, float], shape: tuple[int, int]) -> np.ndarray:
    """Put a centred ``patch`` at sub-pixel ``centre_xy`` into a zero image of ``shape``."""
    h, w = shape
    half = patch.shape[0] // 2
    m = np.float32([[1, 0, centre_xy[0] - half], [0, 1, centre_xy[1] - half]])
    return cv2.warpAffine(
        patch, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


def render_sequence(
    lesions: list[FluoroLesion],
    camera: Camera | None = None,
    optics: Optics | None = None,
    n_frames: int = 1,
    drift_px_per_frame: tuple[float, float] = (0.0, 0.0),
    seed: int = 0,
) -> Iterator[FluoroFrame]:
    """Generate ``n_frames`` paired frames of a liver surface with the given lesions.

    Parameters
    ----------
    lesions : list of FluoroLesion
        Lesions in scene pixel coordinates.
    camera, optics : Camera, Optics, optional
        Camera and tissue models (defaults documented on the classes).
    n_frames : int
        Number of frames.
    drift_px_per_frame : tuple of float
        Camera drift (x, y) in pixels per frame; a slow sinusoidal wobble of 1.5 px
        is added so that motion is not a pure translation ramp.
    seed : int
        Random seed (texture, highlights and noise).

    Yields
    ------
    FluoroFrame
    """
    camera = camera or Camera()
    optics = optics or Optics()
    rng = np.random.default_rng(seed)
    margin = (
        int(np.ceil(abs(drift_px_per_frame[0]) * n_frames + abs(drift_px_per_frame[1]) * n_frames))
        + 8
    )
    world_shape = (camera.height + 2 * margin, camera.width + 2 * margin)
    lobule_px = 1.0 / camera.mm_per_px  # hepatic lobules are about 1 mm across
    uptake = (
        1.0
        + camera.texture * _smooth_noise(rng, world_shape, lobule_px)
        + 0.04 * _smooth_noise(rng, world_shape, 25.0 / camera.mm_per_px)
    )
    white_world = _white_light_world(rng, world_shape, camera)
    patches = [lesion_contrast_patch(les, camera, optics) for les in lesions]
    peaks = [float(p.max()) for p, _ in patches]
    vig = vignetting_map(camera)
    shape = (camera.height, camera.width)
    for index in range(n_frames):
        wobble = 1.5 * np.sin(2 * np.pi * index / 40.0)
        ox = drift_px_per_frame[0] * index + wobble
        oy = drift_px_per_frame[1] * index + 0.5 * wobble
        centre = (margin + ox + (camera.width - 1) / 2, margin + oy + (camera.height - 1) / 2)
        bg = cv2.getRectSubPix(uptake, (camera.width, camera.height), centre)
        white = cv2.getRectSubPix(white_world, (camera.width, camera.height), centre)
        clean = bg * camera.background_dn
        contrasts, masks = [], []
        for les, (patch, _h), peak in zip(lesions, patches, peaks, strict=True):
            pos = (les.centre_xy[0] - ox, les.centre_xy[1] - oy)
            placed = _place(patch, pos, shape)
            mask = ndimage.binary_fill_holes(placed >= BOUNDARY_FRACTION * peak)
            clean = clean + placed
            contrasts.append(placed * vig)
            masks.append(mask)
        clean = clean * vig
        spec = _specular_mask(rng, camera)
        clean_with_spec = clean + spec * camera.specular_nir_leak * camera.background_dn
        nir = _add_noise(rng, clean_with_spec, camera)
        white = _apply_white_illumination(white, vig, spec)
        yield FluoroFrame(
            index=index,
            nir=nir,
            white=white,
            nir_clean=clean.astype(np.float32),
            lesion_masks=masks,
            lesion_contrast=contrasts,
            lesions=list(lesions),
            offset_xy=(float(ox), float(oy)),
            specular_mask=spec > 0.5,
        )


def _white_light_world(
    rng: np.random.Generator, shape: tuple[int, int], camera: Camera
) -> np.ndarray:
    """Liver capsule in white light (float32 BGR): brown-red, mottled, a few dark vessels."""
    mottle = 0.08 * _smooth_noise(rng, shape, 2.0 / camera.mm_per_px)
    large = 0.10 * _smooth_noise(rng, shape, 20.0 / camera.mm_per_px)
    shade = 1.0 + mottle + large
    vessels = np.abs(_smooth_noise(rng, shape, 6.0 / camera.mm_per_px)) < 0.04
    vessels = cv2.GaussianBlur(vessels.astype(np.float32), (0, 0), 1.0)
    # Hue varies a little too (blood content, fat): 4 % per channel, independently.
    hue = np.dstack(
        [1.0 + 0.04 * _smooth_noise(rng, shape, 5.0 / camera.mm_per_px) for _ in range(3)]
    )
    img = shade[..., None] * _LIVER_BGR[None, None, :] * hue
    img = img * (1.0 - 0.35 * vessels[..., None])
    return img.astype(np.float32)


def _specular_mask(rng: np.random.Generator, camera: Camera) -> np.ndarray:
    """Small bright highlights (0-1 float32), new positions each frame (wet surface moves)."""
    spec = np.zeros((camera.height, camera.width), np.float32)
    for _ in range(camera.specular_count):
        cx, cy = rng.uniform(0, camera.width), rng.uniform(0, camera.height)
        axes = (int(rng.uniform(2, 7)), int(rng.uniform(1, 3)))
        cv2.ellipse(spec, (int(cx), int(cy)), axes, rng.uniform(0, 180), 0, 360, 1.0, -1)
    return cv2.GaussianBlur(spec, (0, 0), 0.8)


def _apply_white_illumination(white: np.ndarray, vig: np.ndarray, spec: np.ndarray) -> np.ndarray:
    lit = white * vig[..., None] * 1.15
    lit = lit * (1 - spec[..., None]) + 255.0 * spec[..., None]
    return np.clip(lit, 0, 255).astype(np.uint8)


def _add_noise(rng: np.random.Generator, clean: np.ndarray, camera: Camera) -> np.ndarray:
    electrons = rng.poisson(np.maximum(clean, 0) * camera.gain_e_per_dn)
    dn = electrons / camera.gain_e_per_dn + rng.normal(0, camera.read_noise_dn, clean.shape)
    dn = np.clip(np.rint(dn), 0, camera.full_scale)
    return dn.astype(np.uint8 if camera.bit_depth == 8 else np.uint16)


def random_lesions(
    rng: np.random.Generator,
    camera: Camera,
    n: int,
    diameter_mm: tuple[float, float] = (6.0, 20.0),
    depth_mm: tuple[float, float] = (0.0, 10.0),
    tbr: tuple[float, float] = (3.0, 10.0),
    patterns: tuple[str, ...] = PATTERNS,
    optics: Optics | None = None,
    border_px: float = 24.0,
    gap_px: float = 16.0,
    max_tries: int = 400,
) -> list[FluoroLesion]:
    """Up to ``n`` non-overlapping random lesions inside the frame.

    Sizes, depths and surface TBRs are uniform in the given ranges (mm, mm, ratio);
    patterns are drawn uniformly from ``patterns``. Lesions keep ``gap_px`` plus their
    blur (3 SD) apart so that each has a clean background annulus.
    """
    optics = optics or Optics()
    placed: list[tuple[float, float, float]] = []
    out: list[FluoroLesion] = []
    for _ in range(max_tries):
        if len(out) == n:
            break
        d = rng.uniform(*diameter_mm)
        depth = rng.uniform(*depth_mm)
        reach = d / 2 / camera.mm_per_px + 3 * optics.sigma_mm(depth) / camera.mm_per_px
        lo_x, hi_x = reach + border_px, camera.width - reach - border_px
        lo_y, hi_y = reach + border_px, camera.height - reach - border_px
        if lo_x >= hi_x or lo_y >= hi_y:
            continue
        cx, cy = rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)
        if any(np.hypot(cx - x, cy - y) < reach + r + gap_px for x, y, r in placed):
            continue
        pattern = str(rng.choice(patterns))
        placed.append((cx, cy, reach))
        out.append(
            FluoroLesion(
                centre_xy=(cx, cy),
                diameter_mm=d,
                depth_mm=depth,
                pattern=pattern,
                surface_tbr=rng.uniform(*tbr),
                rim_thickness_mm=rng.uniform(1.2, min(3.0, d / 5)),
                partial_angle_deg=rng.uniform(120, 220),
                partial_orientation_deg=rng.uniform(-180, 180),
                partial_floor=rng.uniform(0.4, 0.55),
            )
        )
    return out


def vendor_overlay(
    white: np.ndarray,
    nir: np.ndarray,
    low: float,
    high: float,
    colour: str = "green",
    alpha_max: float = 0.85,
) -> tuple[np.ndarray, np.ndarray]:
    """Blend NIR into white light the way commercial towers display it.

    ``alpha = alpha_max * clip((nir - low) / (high - low), 0, 1)`` and the overlay
    colour is pure green (``colour="green"``) or the JET colour of the same level
    (``colour="jet"``).

    Parameters
    ----------
    white : ndarray, (H, W, 3) uint8
        White-light frame, BGR.
    nir : ndarray, (H, W)
        NIR frame (any numeric type), DN.
    low, high : float
        NIR levels (DN) mapped to alpha 0 and ``alpha_max``.
    colour : str
        ``green`` or ``jet``.

    Returns
    -------
    overlay : ndarray, (H, W, 3) uint8
        The blended frame, BGR.
    level : ndarray, (H, W) float32
        The displayed fluorescence level 0-1 (ground truth for unmixing).
    """
    level = np.clip((nir.astype(np.float32) - low) / (high - low), 0, 1)
    alpha = alpha_max * level
    if colour == "green":
        tint = np.zeros_like(white, dtype=np.float32)
        tint[..., 1] = 255.0
    elif colour == "jet":
        tint = cv2.applyColorMap(np.rint(level * 255).astype(np.uint8), cv2.COLORMAP_JET)
        tint = tint.astype(np.float32)
    else:
        raise ValueError(f"colour must be 'green' or 'jet', not {colour!r}")
    out = white.astype(np.float32) * (1 - alpha[..., None]) + tint * alpha[..., None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), level


def save_frames(frames: list[FluoroFrame], folder: str | Path) -> tuple[Path, Path]:
    """Write frames as PNG sequences ``nir_0000.png`` (8/16 bit) and ``white_0000.png``.

    Returns
    -------
    nir_dir, white_dir : Path
        Folders holding the NIR and the white-light sequence.
    """
    folder = Path(folder)
    nir_dir, white_dir = folder / "nir", folder / "white"
    nir_dir.mkdir(parents=True, exist_ok=True)
    white_dir.mkdir(parents=True, exist_ok=True)
    for fr in frames:
        cv2.imwrite(str(nir_dir / f"nir_{fr.index:04d}.png"), fr.nir)
        cv2.imwrite(str(white_dir / f"white_{fr.index:04d}.png"), fr.white)
    return nir_dir, white_dir


def write_overlay_video(
    frames: list[FluoroFrame],
    path: str | Path,
    low: float,
    high: float,
    colour: str = "green",
    fps: float = 25.0,
) -> tuple[Path, list[np.ndarray]]:
    """Write a vendor-style overlay video (see :func:`vendor_overlay`) of ``frames``.

    The codec follows the suffix: ``.avi`` MJPG, ``.mp4`` MPEG-4 part 2 (both lossy,
    with chroma subsampling, like real tower recordings).

    Returns
    -------
    path : Path
    levels : list of ndarray, (H, W) float32
        The displayed fluorescence level (0-1) of each frame: ground truth for unmixing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].nir.shape
    fourcc = "MJPG" if path.suffix.lower() == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    levels = []
    try:
        for fr in frames:
            blended, level = vendor_overlay(fr.white, fr.nir, low, high, colour)
            writer.write(blended)
            levels.append(level)
    finally:
        writer.release()
    return path, levels
