"""Find fluorescent lesions against the liver background, robust to vignetting.

Pipeline (all OpenCV, float32 only on the downscaled working image):

1. Downscale the NIR frame by an integer factor ``f`` (area averaging) so its longer
   side is at most ``working_max_side`` pixels.
2. Estimate the liver background on a further ~64-pixel-high copy: a morphological
   opening larger than the lesions gives a first guess, bright candidates are masked
   out, and a normalised Gaussian convolution of the rest gives the background. Both
   illumination fall-off (vignetting) and uneven uptake are smooth, so they end up in
   the background and not in the lesions. A bright area wider than the kernel (40 % of
   the shorter side) makes the background step steeply: it is then estimated again with
   a kernel wider than the frame; a bright area over half the frame leaves no liver to
   estimate from (``WorkingFrame.background_valid`` False).
3. Local contrast ``R = smooth(frame) - background`` is divided by its robust SD
   (1.4826 x MAD) to give a local contrast-to-noise map ``z``. Regions with ``z > 2.5``
   whose peak reaches ``detect_z`` and whose size reaches ``min_diameter_px`` are lesions.
4. Each lesion's edge is then set where its contrast falls to ``boundary_fraction`` of
   its peak (a fixed-fraction contour, like FWHM but at 35 %), and holes are filled so
   that a rim lesion's mask includes its dark centre. A region that falls apart into
   several pieces at that level (two lesions joined by their blurred edges) gives one
   lesion per piece that reaches the size and ``detect_z``; bright pixels that end up in
   no lesion are returned as ``unreported`` so that no background region includes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Hysteresis: regions are grown down to this local CNR, seeds need detect_z.
_GROW_Z = 2.5
_MAD_TO_SD = 1.4826
# Opening kernel of the background, fraction of the shorter side: larger than any lesion.
BACKGROUND_KERNEL = 0.4
# When a bright area is wider than that kernel the background follows it: a frame whose
# background changes by more than this fraction of its median level over one kernel width
# (vignetting of 60 % gives about 0.45) is estimated again with the wide kernel below.
MAX_BACKGROUND_STEP = 1.0
WIDE_BACKGROUND_KERNEL = 1.5
# ... and it is valid only while the bright area is at most this share of the frame.
MAX_BRIGHT_SHARE = 0.5


@dataclass
class Detection:
    """One lesion found on the working image.

    Attributes
    ----------
    roi : tuple of int
        (x, y, w, h) of the lesion's bounding box on the working image, px.
    filled : ndarray, (h, w) uint8
        Lesion mask (255 inside, holes filled) in the ROI.
    ring : ndarray, (h, w) uint8
        The fluorescent part only (before hole filling), 255 inside.
    peak : float
        Peak local contrast (95th percentile inside the seed), DN.
    peak_z : float
        Peak local CNR of the seed.
    """

    roi: tuple[int, int, int, int]
    filled: np.ndarray
    ring: np.ndarray
    peak: float
    peak_z: float


@dataclass
class WorkingFrame:
    """The NIR frame prepared for detection.

    Attributes
    ----------
    factor : int
        Downscale factor from the input frame.
    image : ndarray, (h, w) float32
        Downscaled NIR, DN.
    background : ndarray, (h, w) float32
        Estimated liver background, DN.
    contrast : ndarray, (h, w) float32
        Smoothed local contrast ``R``, DN.
    noise_sd : float
        Robust SD of ``R`` over the frame, DN.
    kernel_fraction : float
        Opening kernel the background was estimated with, fraction of the shorter side
        (``BACKGROUND_KERNEL``, or ``WIDE_BACKGROUND_KERNEL`` when a bright area was wider
        than the default kernel).
    background_valid : bool
        False when even the wide kernel left a bright area in the background, or the
        bright area is more than ``MAX_BRIGHT_SHARE`` of the frame (a lesion about as
        large as the frame): contrast, outlines, TBR, CNR and pattern are not reliable.
    """

    factor: int
    image: np.ndarray
    background: np.ndarray
    contrast: np.ndarray
    noise_sd: float
    kernel_fraction: float = BACKGROUND_KERNEL
    background_valid: bool = True


def working_factor(shape: tuple[int, ...], max_side: int) -> int:
    """Integer downscale factor so that the longer side is at most ``max_side`` px."""
    return max(1, int(np.ceil(max(shape[:2]) / max_side)))


def downscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Area-average ``image`` (H, W[, C]) by an integer ``factor`` (size floor(H/f), floor(W/f))."""
    if factor == 1:
        return image
    h, w = image.shape[:2]
    return cv2.resize(image, (w // factor, h // factor), interpolation=cv2.INTER_AREA)


def estimate_background(
    image: np.ndarray, kernel_fraction: float = BACKGROUND_KERNEL
) -> np.ndarray:
    """Smooth liver background of a NIR image (see :func:`estimate_background_area`)."""
    return estimate_background_area(image, kernel_fraction)[0]


def estimate_background_area(
    image: np.ndarray, kernel_fraction: float = BACKGROUND_KERNEL
) -> tuple[np.ndarray, float]:
    """Smooth liver background of a NIR image, ignoring lesions smaller than the kernel.

    Parameters
    ----------
    image : ndarray, (h, w) float32
        NIR image, DN.
    kernel_fraction : float
        Opening kernel as a fraction of the shorter side (must exceed lesion diameters).

    Returns
    -------
    background : ndarray, (h, w) float32
        Background, DN.
    bright_fraction : float
        Share of the frame brighter than the opening by more than half the opening's
        median level (the bright areas the opening removed; 0..1).
    """
    h, w = image.shape
    step = max(1, min(h, w) // 64)
    small = cv2.resize(image, (max(w // step, 8), max(h // step, 8)), interpolation=cv2.INTER_AREA)
    k = max(3, int(round(kernel_fraction * min(small.shape))) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    opened = cv2.morphologyEx(small, cv2.MORPH_OPEN, kernel, borderType=cv2.BORDER_REPLICATE)
    sigma = k / 4.0
    rough = cv2.GaussianBlur(opened, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    resid = small - rough
    bright_fraction = float(np.mean(resid > 0.5 * max(float(np.median(rough)), 1e-6)))
    med = float(np.median(resid))
    sd = _MAD_TO_SD * float(np.median(np.abs(resid - med))) + 1e-6
    # Keep only pixels that look like liver; erode so lesion tails are left out too.
    keep = (resid < med + 2.0 * sd).astype(np.float32)
    keep = cv2.erode(keep, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    num = cv2.GaussianBlur(small * keep, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(keep, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    bg_small = np.where(den > 0.05, num / np.maximum(den, 1e-6), rough).astype(np.float32)
    return cv2.resize(bg_small, (w, h), interpolation=cv2.INTER_CUBIC), bright_fraction


def background_step(background: np.ndarray) -> float:
    """Largest change of ``background`` over one default kernel width, as a fraction of
    its median level (dimensionless; 0 for a flat background).

    A bright area wider than the opening kernel is not removed by the opening and shows
    up as a steep bump of the background; vignetting and uneven uptake are much smoother.

    Parameters
    ----------
    background : ndarray, (h, w) float32
        From :func:`estimate_background`, DN.
    """
    h, w = background.shape
    step = max(1, min(h, w) // 64)
    small = cv2.resize(
        background, (max(w // step, 8), max(h // step, 8)), interpolation=cv2.INTER_AREA
    )
    gy, gx = np.gradient(small)
    level = max(float(np.median(small)), 1e-6)
    return float(np.hypot(gx, gy).max()) * BACKGROUND_KERNEL * min(small.shape) / level


def prepare(
    nir: np.ndarray, max_side: int = 640, smooth_px: float = 1.2, noise_floor: float = 0.5
) -> WorkingFrame:
    """Downscale a NIR frame and compute its background and local contrast.

    Parameters
    ----------
    nir : ndarray, (H, W) uint8 or uint16
        NIR frame, DN.
    max_side : int
        Longest side of the working image, px.
    smooth_px : float
        Gaussian smoothing of the contrast map (SD, working px) against pixel noise.
    noise_floor : float
        Smallest noise SD assumed, DN (integer data never have less than their
        quantisation noise; maps with a clipped, all-zero background have a MAD of 0).

    Returns
    -------
    WorkingFrame
    """
    factor = working_factor(nir.shape, max_side)
    image = downscale(nir, factor).astype(np.float32)
    background = estimate_background(image)
    kernel, valid = BACKGROUND_KERNEL, True
    if background_step(background) > MAX_BACKGROUND_STEP:
        # A bright area wider than the kernel: the background followed it (a large
        # lesion would come out as a rim, or be cut into pieces). A kernel wider than
        # the frame removes it; vignetting is then followed less closely.
        # The liver must still be most of the frame: the background and the noise are
        # taken from the majority of the pixels.
        kernel = WIDE_BACKGROUND_KERNEL
        background, bright = estimate_background_area(image, kernel)
        valid = background_step(background) <= MAX_BACKGROUND_STEP and bright <= MAX_BRIGHT_SHARE
    smooth = cv2.GaussianBlur(image, (0, 0), smooth_px)
    contrast = cv2.subtract(smooth, background)
    sample = contrast[::4, ::4]
    med = float(np.median(sample))
    noise_sd = _MAD_TO_SD * float(np.median(np.abs(sample - med)))
    if med != 0.0:
        contrast -= med  # remove the small global bias of the background estimate
    return WorkingFrame(
        factor, image, background, contrast, max(noise_sd, noise_floor), kernel, valid
    )


def detect(
    frame: WorkingFrame,
    detect_z: float = 4.5,
    min_diameter_px: float = 10.0,
    boundary_fraction: float = 0.35,
    exclude: np.ndarray | None = None,
) -> list[Detection]:
    """Detect lesions on a prepared working frame (see :func:`detect_regions`)."""
    return detect_regions(frame, detect_z, min_diameter_px, boundary_fraction, exclude)[0]


def detect_regions(
    frame: WorkingFrame,
    detect_z: float = 4.5,
    min_diameter_px: float = 10.0,
    boundary_fraction: float = 0.35,
    exclude: np.ndarray | None = None,
) -> tuple[list[Detection], np.ndarray]:
    """Detect lesions on a prepared working frame.

    A connected region above the growing level (local CNR 2.5) can hold several
    lesions (two lesions a few pixels apart are joined by their blurred edges): each
    separate piece above ``boundary_fraction`` of the region's peak that reaches the
    minimum size and ``detect_z`` is a lesion of its own.

    Parameters
    ----------
    frame : WorkingFrame
        From :func:`prepare`.
    detect_z : float
        Peak local CNR a lesion must reach.
    min_diameter_px : float
        Smallest equivalent diameter kept, *input* px.
    boundary_fraction : float
        Lesion edge at this fraction of the peak contrast.
    exclude : ndarray, (h, w) bool, optional
        Working-image pixels to ignore (specular highlights).

    Returns
    -------
    detections : list of Detection
        In decreasing order of peak contrast.
    unreported : ndarray, (h, w) bool
        Bright pixels that are not part of any detection: regions that reach
        ``detect_z`` but are too small to be a lesion, and pieces of a region above its
        boundary level that are not lesions. They are no lesions but must not be
        counted as background either.
    """
    _, grow = cv2.threshold(frame.contrast, _GROW_Z * frame.noise_sd, 255, cv2.THRESH_BINARY)
    grow = grow.astype(np.uint8)
    if exclude is not None:
        grow[exclude] = 0
    unreported = np.zeros(grow.shape, bool)
    # Outer contours are much faster than labelling every pixel (most of the frame is
    # background) and give each region's outline, box and (hole-filled) area directly.
    contours, _ = cv2.findContours(grow, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    min_area = np.pi / 4 * (min_diameter_px / frame.factor) ** 2
    min_peak = detect_z * frame.noise_sd
    candidates, tiny = [], []
    for c in contours:
        x, y, w, h = cv2.boundingRect(c)
        if w * h < min_area or cv2.contourArea(c) + len(c) / 2 < min_area:
            tiny.append(c)
            continue
        seed = np.zeros((h, w), np.uint8)
        cv2.drawContours(seed, [c - (x, y)], -1, 255, thickness=cv2.FILLED)
        seed = (seed > 0) & (grow[y : y + h, x : x + w] > 0)
        peak_z = float(frame.contrast[y : y + h, x : x + w][seed].max()) / frame.noise_sd
        if peak_z < detect_z:
            continue
        if np.count_nonzero(seed) < min_area:
            unreported[y : y + h, x : x + w] |= seed
            continue
        candidates.append(((x, y, w, h), seed, peak_z))
    if tiny:
        # Regions too small for a lesion that still reach ``detect_z`` (specks, leaks)
        # are bright: never background. Most small regions are noise below ``detect_z``,
        # so they are all drawn at once and labelled only if one of them is bright.
        small = np.zeros_like(grow)
        cv2.drawContours(small, tiny, -1, 255, thickness=cv2.FILLED)
        small &= grow
        _, strong = cv2.threshold(frame.contrast, min_peak, 255, cv2.THRESH_BINARY)
        hits = cv2.bitwise_and(small, strong.astype(np.uint8))
        if cv2.countNonZero(hits):
            _, lab = cv2.connectedComponents(small, connectivity=8)
            unreported |= np.isin(lab, np.unique(lab[hits > 0]))
    found: list[Detection] = []
    for box, seed, _peak_z in candidates:
        x, y, w, h = box
        pieces, rest = _refine(frame, box, seed, boundary_fraction, min_area, min_peak)
        found.extend(pieces)
        unreported[y : y + h, x : x + w] |= rest
    found.sort(key=lambda d: -d.peak)
    return found, unreported


def _refine(
    frame: WorkingFrame,
    box: tuple[int, int, int, int],
    seed: np.ndarray,
    boundary_fraction: float,
    min_area: float,
    min_peak: float,
) -> tuple[list[Detection], np.ndarray]:
    """Cut a region at ``boundary_fraction`` of its peak contrast; every piece that is big
    and bright enough is a lesion (holes filled). Returns the lesions and the mask (on
    the box) of the pieces above the level that are not lesions."""
    x, y, w, h = box
    contrast = frame.contrast[y : y + h, x : x + w]
    inside = contrast[seed]
    step = max(1, inside.size // 4000)  # the 95th percentile of 4000 samples is plenty
    peak = float(np.percentile(inside[::step], 95))
    level = ((contrast >= boundary_fraction * peak) & seed).astype(np.uint8) * 255
    contours, _ = cv2.findContours(level, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    rest = level > 0
    found: list[Detection] = []
    for c in contours:
        bx, by, bw, bh = cv2.boundingRect(c)
        filled = np.zeros((bh, bw), np.uint8)
        cv2.drawContours(filled, [c - (bx, by)], -1, 255, thickness=cv2.FILLED)
        if np.count_nonzero(filled) < min_area:
            continue  # a speck at the level: left in ``rest``
        ring = level[by : by + bh, bx : bx + bw] & filled
        values = contrast[by : by + bh, bx : bx + bw][ring > 0]
        if values.size == 0 or float(values.max()) < min_peak:
            continue
        rest[by : by + bh, bx : bx + bw] &= filled == 0
        found.append(
            Detection(
                roi=(x + bx, y + by, bw, bh),
                filled=filled,
                ring=ring,
                peak=peak,
                peak_z=float(values.max()) / frame.noise_sd,
            )
        )
    if len(found) > 1:  # several lesions in one region: each one's own peak (for sorting)
        for d in found:
            dx, dy, dw, dh = d.roi
            values = frame.contrast[dy : dy + dh, dx : dx + dw][d.ring > 0]
            d.peak = float(np.percentile(values[:: max(1, values.size // 4000)], 95))
    return found, rest


def label_image(
    shape: tuple[int, int], detections: list[Detection], unreported: np.ndarray | None = None
) -> np.ndarray:
    """Paint detections into an int32 label image (h, w): 0 background, i+1 lesion i,
    -1 bright pixels that belong to no lesion (``unreported`` of :func:`detect_regions`)."""
    labels = np.zeros(shape, np.int32)
    if unreported is not None:
        labels[unreported] = -1
    for i, det in enumerate(detections):
        x, y, w, h = det.roi
        labels[y : y + h, x : x + w][det.filled > 0] = i + 1
    return labels
