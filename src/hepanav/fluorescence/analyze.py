"""Analyse one NIR frame (with optional white light): detect, measure, classify, track."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from hepanav.fluorescence import detect as det_mod
from hepanav.fluorescence import measure
from hepanav.fluorescence.schema import AnalysisSettings, LesionRecord
from hepanav.fluorescence.track import MIN_RESPONSE, LesionTracker, MotionEstimator

# A frame is "all black" when 99.9 % of it is below 1 % of full scale, "saturated"
# when more than half of it is at full scale: nothing can be measured on either.
_BLACK_FRACTION = 0.01
_SATURATED_SHARE = 0.5
# Level (8 bit) above which the darkest channel of the white light is a highlight:
# liver is red, its blue and green channels stay far below this even when brightly lit.
_SPECULAR_BLUE = 150
# Share of the frame above which "highlight" is implausible and the mask is not used.
_SPECULAR_MAX_SHARE = 0.5


@dataclass
class FrameAnalysis:
    """Result of one frame.

    Attributes
    ----------
    lesions : list of LesionRecord
    warnings : list of str
    motion_xy : tuple of float
        Scene shift since the previous frame, input px.
    working : WorkingFrame or None
    detections : list of Detection
        The detections behind ``lesions``, in the same order.
    """

    lesions: list[LesionRecord]
    warnings: list[str]
    motion_xy: tuple[float, float] = (0.0, 0.0)
    working: det_mod.WorkingFrame | None = None
    detections: list[det_mod.Detection] = field(default_factory=list)


def frame_problem(nir: np.ndarray, full_scale: int) -> str | None:
    """A warning if nothing can be measured on the frame (all black or saturated)."""
    sample = nir[::8, ::8]
    if np.count_nonzero(sample >= _BLACK_FRACTION * full_scale) < 0.001 * sample.size:
        # 12-bit cameras often save 16-bit files: then 1 % of full scale is far too high.
        hint = "; 12-bit data in 16-bit files need --bit-depth 12" if full_scale > 4095 else ""
        return f"all_black: no NIR signal in this frame (camera covered or light off?{hint})"
    if np.count_nonzero(sample >= full_scale) > _SATURATED_SHARE * sample.size:
        return "saturated: more than half of the frame is at full scale; lower the gain"
    return None


def saturation_warning(
    saturated_px: int,
    area_px: int,
    fraction: float,
    full_scale: int,
    what: str,
    centroid: tuple[float, float],
) -> str | None:
    """The warning for a lesion (or spot) with more than ``fraction`` of its pixels at the
    top code ``full_scale`` of the bit depth, else None."""
    if area_px <= 0 or saturated_px <= fraction * area_px:
        return None
    return (
        f"{what} at {centroid[0]:.0f},{centroid[1]:.0f}: {saturated_px} of {area_px} px "
        f"({100 * saturated_px / area_px:.0f} %) saturated at code {full_scale}, "
        "TBR underestimated"
    )


def min_diameter(settings: AnalysisSettings, shape: tuple[int, ...]) -> float:
    """Smallest lesion diameter kept, input px (see AnalysisSettings.min_diameter_px)."""
    if settings.min_diameter_px is not None:
        return settings.min_diameter_px
    if settings.mm_per_px:
        return 2.0 / settings.mm_per_px
    return max(12.0, 0.02 * max(shape[:2]))


def specular_mask(white: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Specular highlights of the white light on the working grid, (h, w) bool.

    Highlights are near-white; they leak excitation light into the NIR channel and
    would look like tiny lesions. Liver is red, so only highlights (and white
    instruments or gauze, which should be left out as well) are bright in *all three*
    channels: the darkest channel of each pixel is thresholded. (The blue channel alone
    would do for liver, but white light with R and B swapped, an RGB/BGR mix-up, would
    then be all "highlight".) The frame is sampled once per working-grid cell and the
    result grown by two cells (a highlight smaller than a cell cannot form a lesion).
    """
    h, w = shape
    # Nearest-neighbour shrink reads only the sampled pixels (a strided copy of the
    # full frame would be slower).
    small = cv2.resize(white, (w, h), interpolation=cv2.INTER_NEAREST)
    b, g, r = cv2.split(small)
    darkest = cv2.min(cv2.min(b, g), r)
    _, bright = cv2.threshold(darkest, _SPECULAR_BLUE, 255, cv2.THRESH_BINARY)
    # Grow by two cells: the glare around a highlight leaks too, beyond its bright core.
    return cv2.dilate(bright, np.ones((5, 5), np.uint8)) > 0


def white_light_problems(white: np.ndarray, specular: np.ndarray) -> list[str]:
    """Warnings about a white-light frame that does not look like lit liver.

    ``specular`` is :func:`specular_mask` of ``white``. More than
    ``_SPECULAR_MAX_SHARE`` of the frame flagged as highlight is implausible (an
    overexposed or white frame, or the wrong input): the mask is then not used (the
    caller drops it). A frame whose blue channel is clearly brighter than its red one
    (median over the frame) is not liver in BGR order: R and B are probably swapped.
    """
    out = []
    share = float(np.count_nonzero(specular)) / max(specular.size, 1)
    if share > _SPECULAR_MAX_SHARE:
        out.append(
            f"white light: {100 * share:.0f} % of the frame looks like specular highlight "
            "(all channels > 150): implausible, highlights not left out in this frame "
            "(overexposed white light or wrong --white input?)"
        )
    sample = white[::16, ::16].reshape(-1, 3)
    b, r = float(np.median(sample[:, 0])), float(np.median(sample[:, 2]))
    if b > r + 20:
        out.append(
            f"white light is bluer than red (median blue {b:.0f} > red {r:.0f}): liver is red, "
            "so R and B are probably swapped (frames must be BGR as OpenCV reads them); "
            "highlights do not depend on it, the display colours do"
        )
    return out


class FrameAnalyzer:
    """Stateful per-stream analyser (tracks and motion live in explicit members).

    Parameters
    ----------
    settings : AnalysisSettings
    bit_depth : int
        NIR bit depth of the stream (8, 12 or 16).
    clipped_background : bool
        True for fluorescence maps unmixed from a vendor overlay: the tower's display
        threshold set the liver background to zero, so TBR and CNR cannot be measured
        (they are reported as None) and a frame without fluorescence is not "black".
    """

    def __init__(
        self, settings: AnalysisSettings, bit_depth: int, clipped_background: bool = False
    ) -> None:
        self.settings = settings
        self.full_scale = (1 << bit_depth) - 1
        self.clipped_background = clipped_background
        self.motion = MotionEstimator()
        self.tracker = LesionTracker()
        self._prev_nir: np.ndarray | None = None

    def analyze(self, nir: np.ndarray, white: np.ndarray | None = None) -> FrameAnalysis:
        """Detect, measure, classify and track the lesions of one frame.

        Parameters
        ----------
        nir : ndarray, (H, W) uint8 or uint16
            NIR frame, DN.
        white : ndarray, (H, W, 3) uint8, optional
            White-light frame (BGR) of the same size.

        Returns
        -------
        FrameAnalysis
        """
        problem = frame_problem(nir, self.full_scale)
        if problem and not (self.clipped_background and problem.startswith("all_black")):
            return FrameAnalysis([], [problem])
        s = self.settings
        motion, motion_warning = self._motion(nir, white)
        floor = 0.01 * self.full_scale if self.clipped_background else 0.5
        working = det_mod.prepare(nir, s.working_max_side, noise_floor=floor)
        exclude = None
        white_warnings: list[str] = []
        if white is not None:
            exclude = specular_mask(white, working.image.shape)
            white_warnings = white_light_problems(white, exclude)
            if float(np.count_nonzero(exclude)) > _SPECULAR_MAX_SHARE * exclude.size:
                exclude = None
        detections, unreported = det_mod.detect_regions(
            working, s.detect_z, min_diameter(s, nir.shape), s.boundary_fraction, exclude
        )
        labels = det_mod.label_image(working.image.shape, detections, unreported)
        user_bg = _user_background(nir, s) if s.background.kind == "roi" else None
        # An unreliable shift only matters when there is something to track.
        lesions, kept, warnings = [], [], white_warnings + (motion_warning if detections else [])
        overlap = None
        if user_bg is not None:
            overlap = roi_overlap_warning(s.background.roi_xywh, labels, working.factor)
            if overlap:
                # A rectangle over a lesion gives TBR and CNR that look plausible but are
                # wrong: say so and report none against it in this frame.
                warnings.append(overlap)
        if not working.background_valid:
            # The bright area is about as large as the frame: the liver background (and
            # with it the outlines, TBR, CNR and pattern) cannot be estimated.
            warnings.append(large_area_warning())
        for i, d in enumerate(detections):
            rec, warn = self._measure(
                nir,
                working,
                labels,
                i,
                d,
                exclude,
                user_bg,
                unmeasured=overlap is not None or not working.background_valid,
            )
            if rec is not None:
                lesions.append(rec)
                kept.append(d)
            warnings.extend(warn)
        ids = self.tracker.update(
            np.array([r.centroid_xy for r in lesions]).reshape(-1, 2),
            np.array([r.equivalent_diameter_px / 2 for r in lesions]),
            motion,
        )
        for rec, tid in zip(lesions, ids, strict=True):
            rec.id = tid
        return FrameAnalysis(lesions, warnings, motion, working, kept)

    def _motion(
        self, nir: np.ndarray, white: np.ndarray | None
    ) -> tuple[tuple[float, float], list[str]]:
        """Scene shift since the previous frame, from the white light (or the NIR).

        A featureless white light gives no usable shift (its phase-correlation peak is
        noise): the NIR of this and the previous frame is tried instead; when neither
        is reliable the shift is (0, 0), so that tracks stay put instead of jumping by
        a random shift, and the frame gets a warning.
        """
        prev_nir, self._prev_nir = self._prev_nir, nir
        motion = self.motion.update(white if white is not None else nir)
        if self.motion.reliable:
            return motion, []
        what = "white light" if white is not None else "NIR"
        peak = f"phase-correlation peak {self.motion.response:.2f} < {MIN_RESPONSE:g}"
        if white is not None and prev_nir is not None and prev_nir.shape == nir.shape:
            fallback = MotionEstimator()
            fallback.update(prev_nir)
            shift = fallback.update(nir)
            if fallback.reliable:
                return shift, [
                    f"motion: {what} too featureless to estimate camera motion ({peak}); "
                    "estimated from the NIR instead"
                ]
        return (0.0, 0.0), [
            f"motion: camera motion unreliable ({what} {peak}); lesions matched "
            "without motion compensation"
        ]

    def _measure(
        self,
        nir: np.ndarray,
        working: det_mod.WorkingFrame,
        labels: np.ndarray,
        index: int,
        d: det_mod.Detection,
        exclude: np.ndarray | None,
        user_bg: tuple[float, float, int] | None,
        unmeasured: bool = False,
    ) -> tuple[LesionRecord | None, list[str]]:
        """Measure detection ``index``; ``unmeasured``: no TBR/CNR (the user background
        rectangle overlaps a lesion in this frame, or the background model is invalid)."""
        s = self.settings
        f = working.factor
        bgdef = s.background
        pad = int(np.ceil(bgdef.outer_px / f)) + 2
        x, y, w, h = d.roi
        H, W = labels.shape
        x0, y0 = max(0, x - pad), max(0, y - pad)
        x1, y1 = min(W, x + w + pad), min(H, y + h + pad)
        big = (x0, y0, x1 - x0, y1 - y0)
        lab = labels[y0:y1, x0:x1]
        filled = lab == index + 1
        ring = np.zeros_like(filled)
        ring[y - y0 : y - y0 + h, x - x0 : x - x0 + w] = d.ring > 0
        # Other lesions and bright regions that are no lesion: never background.
        others = (lab != 0) & ~filled
        ex = exclude[y0:y1, x0:x1] if exclude is not None else None
        bg = None
        if user_bg is None:
            bg = measure.annulus(filled, others, bgdef.inner_px / f, bgdef.outer_px / f, ex)
        stats = measure.intensities(
            nir, working.image, f, big, filled, ring, bg, self.full_scale, user_bg
        )
        warnings = []
        if stats.background_px < 8 or not np.isfinite(stats.background_mean):
            return None, ["lesion skipped: no background pixels around it (touches others?)"]
        # A background at (or near) zero means it was clipped: no ratio can be formed.
        unmeasurable = unmeasured or self.clipped_background or stats.background_mean < 1.0
        feats = measure.pattern_features(d, working)
        pattern = measure.classify(feats, s.rim_centre_ratio, s.partial_asymmetry)
        if not working.background_valid:
            pattern = "undetermined"
        m = cv2.moments(d.filled, binaryImage=True)
        cxw = x + m["m10"] / m["m00"]
        cyw = y + m["m01"] / m["m00"]
        # Working pixel i covers input pixels i*f .. i*f+f-1: its centre is i*f + (f-1)/2.
        centroid = (cxw * f + (f - 1) / 2, cyw * f + (f - 1) / 2)
        area = stats.area_px
        mm = s.mm_per_px
        rim_px = feats.rim_thickness_px * f if pattern == "rim" else None
        warn = saturation_warning(
            stats.saturated_px, area, s.saturation_fraction, self.full_scale, "lesion", centroid
        )
        if warn:
            warnings.append(warn)
        neck = waist_px(d.filled)
        if neck is not None:
            warnings.append(
                f"lesion at {centroid[0]:.0f},{centroid[1]:.0f}: its outline has a waist "
                f"({neck * f:.0f} px wide): may be two touching lesions measured as one"
            )
        rec = LesionRecord(
            id=0,
            centroid_xy=(round(centroid[0], 2), round(centroid[1], 2)),
            bbox_xywh=(x * f, y * f, w * f, h * f),
            area_px=area,
            area_mm2=area * mm * mm if mm else None,
            equivalent_diameter_px=float(2 * np.sqrt(area / np.pi)),
            touches_border=x == 0 or y == 0 or x + w >= W or y + h >= H,
            pattern=pattern,
            rim_thickness_px=rim_px,
            rim_thickness_mm=rim_px * mm if (rim_px is not None and mm) else None,
            tbr=None if unmeasurable else stats.tbr,
            tbr_rim=stats.tbr_ring if (pattern == "rim" and not unmeasurable) else None,
            cnr=None if unmeasurable else stats.cnr,
            mean_signal=stats.mean_signal,
            background_mean=stats.background_mean,
            background_sd=stats.background_sd,
            background_px=stats.background_px,
            centre_to_ring_ratio=feats.centre_to_ring,
            sector_uniformity=feats.sector_uniformity,
            asymmetry=feats.asymmetry,
        )
        return rec, warnings

    def lesion_mask(
        self, analysis: FrameAnalysis, shape: tuple[int, int], index: int
    ) -> np.ndarray:
        """Full-resolution mask (H, W) bool of detection ``index`` of ``analysis``."""
        d = analysis.detections[index]
        f = analysis.working.factor
        x, y, w, h = d.roi
        out = np.zeros(shape, bool)
        m = (
            d.filled
            if f == 1
            else cv2.resize(d.filled, (w * f, h * f), interpolation=cv2.INTER_NEAREST)
        )
        out[y * f : y * f + m.shape[0], x * f : x * f + m.shape[1]] = (
            m[: shape[0] - y * f, : shape[1] - x * f] > 0
        )
        return out


def waist_px(filled: np.ndarray, depth: float = 0.4, narrow: float = 0.6) -> float | None:
    """Width of the waist of a lesion mask that looks like two touching blobs, else None.

    Lesions closer than about 3 working px stay joined at the outline level. Such a
    mask has two deep notches facing each other across a narrow neck (a crescent or an
    open rim has one). Two notches deeper than ``depth`` x the equivalent radius whose
    points are closer than ``narrow`` x that radius (and joined through the mask) count.
    """
    contours, _ = cv2.findContours(filled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    c = max(contours, key=len)
    if len(c) < 8:
        return None
    radius = float(np.sqrt(np.count_nonzero(filled) / np.pi))
    hull = cv2.convexHull(c, returnPoints=False)
    try:
        defects = cv2.convexityDefects(c, hull)
    except cv2.error:  # self-intersecting hull order on tiny masks
        return None
    if defects is None:
        return None
    defects = defects.reshape(-1, 4)  # start, end, farthest point, depth * 256
    deep = defects[defects[:, 3] / 256.0 > depth * radius]
    if len(deep) < 2:
        return None
    deep = deep[np.argsort(-deep[:, 3])][:2]
    p1, p2 = c[deep[0, 2], 0].astype(float), c[deep[1, 2], 0].astype(float)
    width = float(np.hypot(*(p1 - p2)))
    if width >= narrow * radius:
        return None
    # The neck must run through the lesion (not across the gap of a C-shaped rim).
    n = max(2, int(width))
    xs = np.rint(np.linspace(p1[0], p2[0], n)).astype(int)
    ys = np.rint(np.linspace(p1[1], p2[1], n)).astype(int)
    if np.mean(filled[ys, xs] > 0) < 0.8:
        return None
    return width


def large_area_warning() -> str:
    """Frame warning when the bright area is too large for the background model."""
    return (
        f"bright area larger than {100 * det_mod.MAX_BRIGHT_SHARE:.0f} % of the frame: "
        "background model invalid, TBR/CNR/pattern not reliable (not reported); zoom out"
    )


def roi_overlap_warning(
    roi_xywh: tuple[int, int, int, int], labels: np.ndarray, factor: int
) -> str | None:
    """The warning when the user background rectangle (input px) covers part of a
    detected lesion or another bright region of ``labels`` (working grid), else None."""
    x, y, w, h = roi_xywh
    x0, y0 = x // factor, y // factor
    x1, y1 = -(-(x + w) // factor), -(-(y + h) // factor)
    n = int(np.count_nonzero(labels[y0:y1, x0:x1])) * factor * factor
    if n == 0:
        return None
    return (
        f"--bg-roi {x},{y},{w},{h} overlaps a detected lesion (about {n} px of it): no TBR/CNR "
        "in this frame; move the rectangle onto lesion-free liver"
    )


def _user_background(nir: np.ndarray, s: AnalysisSettings) -> tuple[float, float, int]:
    x, y, w, h = s.background.roi_xywh
    patch = nir[y : y + h, x : x + w]
    mu, sd = cv2.meanStdDev(patch)
    return float(mu[0, 0]), float(sd[0, 0]), int(patch.size)
