"""Per-lesion measurements: TBR and CNR against a defined background, and the pattern.

Geometry (masks, background annulus) is built on the working image. Background pixels
are read from the full-resolution input frame, so that the CNR's standard deviation
is the SD of *input* pixels (downscaling would average noise away and inflate the CNR
by the downscale factor).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from hepanav.fluorescence.detect import Detection, WorkingFrame

N_SECTORS = 8


@dataclass
class Intensities:
    """Signal statistics of one lesion (DN) and of its background."""

    mean_signal: float
    ring_signal: float
    background_mean: float
    background_sd: float
    background_px: int
    area_px: int
    saturated_px: int

    @property
    def tbr(self) -> float:
        return self.mean_signal / max(self.background_mean, 1e-6)

    @property
    def tbr_ring(self) -> float:
        return self.ring_signal / max(self.background_mean, 1e-6)

    @property
    def cnr(self) -> float:
        return (self.mean_signal - self.background_mean) / max(self.background_sd, 1e-6)


@dataclass
class PatternFeatures:
    """Shape of a lesion's fluorescence.

    Attributes
    ----------
    centre_to_ring : float
        Mean contrast of the centre (normalised depth from the edge >= 0.7) divided by
        the brightest ring of the radial profile.
    sector_uniformity : float
        Weakest / strongest mean contrast of 8 angular sectors around the centroid.
    asymmetry : float
        Amplitude of the first angular harmonic of the contrast around the centroid,
        relative to the mean contrast (0 for a rotationally symmetric lesion).
    rim_thickness_px : float
        Thickness of the fluorescent ring if the lesion were a circle, working px:
        ``sqrt(A/pi) - sqrt((A - A_ring)/pi)``.
    """

    centre_to_ring: float
    sector_uniformity: float
    rim_thickness_px: float
    asymmetry: float = 0.0


def annulus(
    filled: np.ndarray,
    others: np.ndarray | None,
    inner_px: float,
    outer_px: float,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Background ring around a lesion.

    Parameters
    ----------
    filled : ndarray, (h, w) uint8 or bool
        Lesion mask (non-zero inside) on an ROI that extends at least ``outer_px``
        beyond the lesion where the image allows.
    others : ndarray, (h, w) bool, optional
        Pixels of other lesions; pixels closer than ``inner_px`` to them are left out.
    inner_px, outer_px : float
        The ring covers Euclidean distances ``inner_px < d <= outer_px`` from the
        lesion edge, in pixels of this grid.
    exclude : ndarray, (h, w) bool, optional
        Further pixels to leave out (specular highlights).

    Returns
    -------
    ndarray, (h, w) bool
    """
    outside = (np.asarray(filled) == 0).astype(np.uint8)
    dist = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    ring = (dist > inner_px) & (dist <= outer_px)
    if others is not None and others.any():
        d_other = cv2.distanceTransform(
            (~others).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE
        )
        ring &= d_other > inner_px
    if exclude is not None:
        ring &= ~exclude
    return ring


def pattern_features(
    det: Detection, frame: WorkingFrame, max_pixels: int = 4000
) -> PatternFeatures:
    """Radial and angular profile of a lesion's local contrast (see PatternFeatures).

    Large lesions are sampled on a regular subset of at most about ``max_pixels``
    pixels: the profiles are means over thousands of pixels and do not need them all.
    """
    x, y, w, h = det.roi
    contrast = frame.contrast[y : y + h, x : x + w]
    padded = cv2.copyMakeBorder(det.filled, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    depth = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    yy, xx = np.nonzero(det.filled)
    area = float(yy.size)
    step = max(1, int(np.ceil(yy.size / max_pixels)))
    yy, xx = yy[::step], xx[::step]
    values = contrast[yy, xx].astype(np.float32)
    uin = depth[yy, xx] / max(float(depth.max()), 1e-6)

    nb = 10
    bins = np.minimum((uin * nb).astype(np.int32), nb - 1)
    sums = np.bincount(bins, weights=values, minlength=nb)
    counts = np.bincount(bins, minlength=nb)
    outer = counts[: nb - 3] > 0
    ring_level = (
        float((sums[: nb - 3][outer] / counts[: nb - 3][outer]).max()) if outer.any() else 1.0
    )
    centre = values[uin >= 0.7]
    centre_level = float(centre.mean()) if centre.size else ring_level
    centre_to_ring = centre_level / max(ring_level, 1e-6)

    dx = xx.astype(np.float32) - float(xx.mean())
    dy = yy.astype(np.float32) - float(yy.mean())
    theta = np.arctan2(dy, dx)
    sector = ((theta + np.pi) * (N_SECTORS / (2 * np.pi))).astype(np.int32) % N_SECTORS
    ssum = np.bincount(sector, weights=values, minlength=N_SECTORS)
    scount = np.bincount(sector, minlength=N_SECTORS)
    means = ssum[scount > 0] / scount[scount > 0]
    uniformity = float(means.min() / max(means.max(), 1e-6)) if means.size >= 4 else 1.0
    # First angular harmonic of the contrast, relative to its mean: 0 for a rotationally
    # symmetric lesion, about 0.4 when one half shines twice as bright as the other.
    total = max(float(values.sum()), 1e-6)
    asymmetry = (
        2.0
        * float(np.hypot((values * np.cos(theta)).sum(), (values * np.sin(theta)).sum()))
        / total
    )

    ring_area = float(np.count_nonzero(det.ring))
    thickness = np.sqrt(area / np.pi) - np.sqrt(max(area - ring_area, 0.0) / np.pi)
    return PatternFeatures(centre_to_ring, uniformity, float(thickness), asymmetry)


def classify(features: PatternFeatures, rim_centre_ratio: float, partial_asymmetry: float) -> str:
    """``rim`` if the centre is darker than the ring, else ``partial`` if one side is
    brighter than the other, else ``homogeneous``.

    The thresholds (defaults 0.95 and 0.06 in AnalysisSettings) were set on a generated
    tuning set (hepanav.phantoms.fluorescence, seeds 1000-1059): just below the lowest
    centre/ring ratio of homogeneous and partial lesions (about 0.99 and 1.0), and
    between the 95th percentile of homogeneous and the 5th of partial asymmetry. They
    are checked on other seeds by tests/test_fluorescence_metrics.py.
    """
    if features.centre_to_ring < rim_centre_ratio:
        return "rim"
    if features.asymmetry > partial_asymmetry:
        return "partial"
    return "homogeneous"


def gather(nir: np.ndarray, factor: int, origin: tuple[int, int], mask: np.ndarray) -> np.ndarray:
    """Full-resolution pixel values under a working-grid mask.

    Parameters
    ----------
    nir : ndarray, (H, W)
        Input frame.
    factor : int
        Working-grid downscale factor: working cell (i, j) covers input pixels
        ``i*f .. i*f+f-1`` x ``j*f .. j*f+f-1``.
    origin : tuple of int
        (x, y) of ``mask``'s top-left cell on the working grid.
    mask : ndarray, (h, w) bool

    Returns
    -------
    ndarray, (n * f * f,)
    """
    ys, xs = np.nonzero(mask)
    ys = (ys + origin[1]) * factor
    xs = (xs + origin[0]) * factor
    if factor == 1:
        return nir[ys, xs]
    off = np.arange(factor)
    return nir[
        ys[:, None, None] + off[None, :, None], xs[:, None, None] + off[None, None, :]
    ].ravel()


def intensities(
    nir: np.ndarray,
    working: np.ndarray,
    factor: int,
    roi: tuple[int, int, int, int],
    lesion: np.ndarray,
    ring: np.ndarray,
    background: np.ndarray | None,
    full_scale: int,
    background_values: tuple[float, float, int] | None = None,
) -> Intensities:
    """Lesion and background statistics, in input-frame DN and pixels.

    Means over the lesion are taken on the working image: with area averaging by an
    integer factor, the mean over whole cells equals the mean over their input pixels.
    The background SD must be the SD of *input* pixels, so background pixels are read
    from the input frame.

    Parameters
    ----------
    nir : ndarray, (H, W) uint8 or uint16
        Input NIR frame, DN.
    working : ndarray, (h, w) float32
        Area-averaged working image, DN.
    factor : int
        Working-image downscale factor.
    roi : tuple of int
        (x, y, w, h) of the masks on the working image, px.
    lesion, ring, background : ndarray, (h, w) bool
        Lesion mask, its fluorescent part, and the background region in the ROI;
        ``background`` may be None when ``background_values`` is given.
    full_scale : int
        Largest code of the NIR bit depth (to count saturated pixels).
    background_values : tuple, optional
        (mean, sd, n) of a user background region, used instead of ``background``.

    Returns
    -------
    Intensities
    """
    x, y, w, h = roi
    f = factor
    patch = working[y : y + h, x : x + w]
    mean_signal = float(patch[lesion].mean(dtype=np.float64))
    ring_signal = float(patch[ring].mean(dtype=np.float64)) if ring.any() else mean_signal
    if background_values is not None:
        bg_mean, bg_sd, bg_n = background_values
    else:
        values = gather(nir, f, (x, y), background).astype(np.float64)
        bg_n = int(values.size)
        if bg_n >= 2:
            bg_mean, bg_sd = float(values.mean()), float(values.std())
        else:
            bg_mean, bg_sd = float("nan"), float("nan")
    saturated = 0
    full_patch = nir[y * f : (y + h) * f, x * f : (x + w) * f]
    if cv2.minMaxLoc(full_patch)[1] >= full_scale:
        saturated = int(np.count_nonzero(gather(nir, f, (x, y), lesion) >= full_scale))
    area = int(np.count_nonzero(lesion)) * f * f
    return Intensities(mean_signal, ring_signal, bg_mean, bg_sd, bg_n, area, saturated)
