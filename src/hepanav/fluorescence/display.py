"""Display of NIR fluorescence: overlay, monochrome, colour map, side by side.

Everything runs on 8-bit images with lookup tables and integer blending:

* **Gain.** A NIR frame of 8-16 bit is mapped to 8 bit by one lookup table that
  holds the window [low, high] *and* a gamma curve (dynamic-range compression of
  12-16 bit data, Elliott/Pogue 2015). In ``auto`` mode the window follows
  percentiles of the frame, smoothed over time with an exponential moving average
  so the picture does not flicker; ``fixed`` mode keeps a constant window, for
  quantification and side-by-side comparison of frames.
* **Overlay.** ``out = white * (1 - a) + colour(level) * a`` with an alpha that grows
  with the level above a threshold, computed as two lookup tables (``colour * a`` and
  ``1 - a``) and two saturating integer multiplies.
* **Colours.** ``green`` (the vendor convention) or colour maps; ``viridis`` and
  ``cividis`` are perceptually uniform and colour-blind safe (a red-green deficient
  viewer cannot see green on red liver well).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np


def _lut16_supported() -> bool:
    """True when ``cv2.LUT`` takes uint16 images with a 65,536-entry table (OpenCV 5)."""
    try:
        table = (np.arange(65536) >> 8).astype(np.uint8)
        probe = cv2.LUT(np.array([[0, 65535]], np.uint16), table)
    except cv2.error:
        return False
    return probe.dtype == np.uint8 and probe.tolist() == [[0, 255]]


MODES = ("overlay", "mono", "colormap", "side-by-side")
COLOURS = ("green", "viridis", "cividis", "inferno", "magenta")
# Overlay colours made of 0 and 255 only: BGR channels that are lit.
_PURE = {"green": (1,), "magenta": (0, 2)}
_LUT16 = _lut16_supported()


def colour_table(colour: str) -> np.ndarray:
    """BGR colour of each display level: (256, 1, 3) uint8 lookup table."""
    if colour == "green":
        lut = np.zeros((256, 3), np.uint8)
        lut[:, 1] = 255
    elif colour == "magenta":
        lut = np.zeros((256, 3), np.uint8)
        lut[:, 0] = lut[:, 2] = 255
    elif colour in ("viridis", "cividis", "inferno"):
        from matplotlib import colormaps

        rgb = colormaps[colour](np.linspace(0, 1, 256))[:, :3]
        lut = np.rint(rgb[:, ::-1] * 255).astype(np.uint8)
    else:
        raise ValueError(f"unknown colour {colour!r}; choose from {COLOURS}")
    return lut.reshape(256, 1, 3)


@dataclass
class GainControl:
    """Map NIR frames (8-16 bit) to 8-bit display levels.

    Parameters
    ----------
    bit_depth : int
        NIR bit depth (8, 12 or 16).
    mode : str
        ``auto`` (percentile window, smoothed over time) or ``fixed``.
    fixed_range : tuple of float, optional
        (low, high) DN window for ``fixed`` mode; default the full bit range.
    low_percentile, high_percentile : float
        Window of ``auto`` mode, percent of pixels.
    smoothing : float
        Weight of the previous window in the moving average (0 = no smoothing).
    gamma : float
        Display gamma; < 1 compresses the bright end and lifts faint signal.
    """

    bit_depth: int = 16
    mode: str = "auto"
    fixed_range: tuple[float, float] | None = None
    low_percentile: float = 5.0
    high_percentile: float = 99.8
    smoothing: float = 0.8
    gamma: float = 0.6
    _window: tuple[float, float] | None = field(default=None, init=False)
    _lut_window: tuple[float, float] | None = field(default=None, init=False)
    _lut: np.ndarray | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "fixed"):
            raise ValueError(f"gain mode must be 'auto' or 'fixed', not {self.mode!r}")

    @property
    def window(self) -> tuple[float, float] | None:
        """Current (low, high) window, DN."""
        return self._window

    def update(self, nir: np.ndarray) -> tuple[float, float]:
        """Update the window with frame ``nir`` (H, W); return (low, high) in DN."""
        if self.mode == "fixed":
            full = float((1 << self.bit_depth) - 1)
            self._window = self.fixed_range or (0.0, full)
            return self._window
        sample = nir[::8, ::8]
        lo, hi = np.percentile(sample, (self.low_percentile, self.high_percentile))
        hi = max(float(hi), float(lo) + 8.0)
        if self._window is None:
            self._window = (float(lo), hi)
        else:
            a = self.smoothing
            self._window = (
                a * self._window[0] + (1 - a) * float(lo),
                a * self._window[1] + (1 - a) * hi,
            )
        return self._window

    def to_display(self, nir: np.ndarray) -> np.ndarray:
        """Display levels (H, W) uint8 of ``nir`` with the current window."""
        if self._window is None:
            self.update(nir)
        lut = self.table(nir.dtype)
        if nir.dtype == np.uint8 or _LUT16:
            # OpenCV >= 5 looks 16-bit codes up in a 65,536-entry table (8x faster than
            # NumPy's gather, which first widens every index to 64 bit).
            return cv2.LUT(nir, lut)
        return np.take(lut, nir)

    def table(self, dtype: np.dtype) -> np.ndarray:
        """The lookup table of the current window: (256,) for uint8 frames, (65536,)
        for uint16, uint8 levels, monotone non-decreasing in the code."""
        lo, hi = self._window
        # Rebuild the table only when the window moved by more than 0.2 % of its width:
        # with temporal smoothing that is a few times per second, not every frame.
        if (
            self._lut is not None
            and self._lut_window is not None
            and self._lut.size == (256 if dtype == np.uint8 else 65536)
            and abs(lo - self._lut_window[0]) + abs(hi - self._lut_window[1]) < 0.002 * (hi - lo)
        ):
            return self._lut
        size = 256 if dtype == np.uint8 else 65536
        # Only codes of the bit depth need the curve (4096 for 12 bit, cheap enough to
        # rebuild every frame); higher codes cannot occur and map to white.
        used = min(size, 1 << self.bit_depth) if dtype != np.uint8 else 256
        levels = np.clip((np.arange(used, dtype=np.float32) - lo) / (hi - lo), 0, 1)
        lut = np.full(size, 255, np.uint8)
        lut[:used] = np.rint(255 * levels**self.gamma).astype(np.uint8)
        self._lut = lut
        self._lut_window = (lo, hi)
        return self._lut


@dataclass
class OverlayStyle:
    """Colour and transparency of the fluorescence overlay.

    Parameters
    ----------
    colour : str
        One of ``COLOURS``.
    threshold : int
        Display level (0-255) below which the overlay is fully transparent.
    alpha_max : float
        Opacity at the top level.
    """

    colour: str = "cividis"
    threshold: int = 60
    alpha_max: float = 0.85
    _tables: tuple[list[np.ndarray], np.ndarray] | None = field(default=None, init=False)
    _alpha_cache: tuple[np.ndarray, np.ndarray] | None = field(default=None, init=False, repr=False)

    def tables(self) -> tuple[list[np.ndarray], np.ndarray]:
        """Per-channel premultiplied colour tables ``colour * a`` (3 x (256,) uint8) and
        the ``1 - a`` table ((256,) uint8, scaled to 0-255)."""
        if self._tables is None:
            level = np.arange(256, dtype=np.float32)
            alpha = self.alpha_max * np.clip(
                (level - self.threshold) / (255 - self.threshold), 0, 1
            )
            colours = colour_table(self.colour).reshape(256, 3).astype(np.float32)
            pre = [np.rint(colours[:, c] * alpha).astype(np.uint8) for c in range(3)]
            inv = np.rint(255 * (1 - alpha)).astype(np.uint8)
            self._tables = (pre, inv)
        return self._tables

    def alpha_of_code(self, gain_table: np.ndarray) -> np.ndarray:
        """Pure colours: opacity (0-255) of each NIR code through ``gain_table`` (a
        :meth:`GainControl.table`), same size and dtype uint8; cached per table object."""
        if self._alpha_cache is None or self._alpha_cache[0] is not gain_table:
            pre, _ = self.tables()
            self._alpha_cache = (gain_table, pre[_PURE[self.colour][0]][gain_table])
        return self._alpha_cache[1]


def overlay(white: np.ndarray, level: np.ndarray, style: OverlayStyle) -> np.ndarray:
    """Blend display levels into the white-light frame.

    Only the boxes that hold some overlay (runs of rows with a level above the
    threshold, then runs of columns within them) are blended; the rest is copied
    (fluorescence usually covers a small part of the frame). The result is the same as
    blending the whole frame: outside the boxes alpha is 0.

    Parameters
    ----------
    white : ndarray, (H, W, 3) uint8
        White-light frame, BGR.
    level : ndarray, (H, W) uint8
        Display levels from :meth:`GainControl.to_display`.
    style : OverlayStyle

    Returns
    -------
    ndarray, (H, W, 3) uint8
    """
    active = level.max(axis=1) > style.threshold
    if active.all() and (level.max(axis=0) > style.threshold).all():
        return _blend(white, level, style)
    out = white.copy()
    for r0, r1 in _runs(active, join=16):
        band = level[r0:r1]
        cols = band.max(axis=0) > style.threshold
        for c0, c1 in _runs(cols, join=16):
            _blend(white[r0:r1, c0:c1], band[:, c0:c1], style, out[r0:r1, c0:c1])
    return out


def overlay_nir(
    white: np.ndarray, nir: np.ndarray, gain: GainControl, style: OverlayStyle
) -> np.ndarray:
    """``overlay(white, gain.to_display(nir), style)``, pixel for pixel, without mapping
    the whole NIR frame to display levels.

    The gain table is monotone (a clipped ramp with a gamma curve), so a level above the
    overlay threshold is a NIR code at or above the first code whose level exceeds it:
    the boxes holding overlay are found on the NIR frame itself, and only their pixels
    are looked up in the table and blended (the overlay usually covers a small part of
    the frame; the rest is the white light unchanged).

    Parameters
    ----------
    white : ndarray, (H, W, 3) uint8
        White-light frame, BGR.
    nir : ndarray, (H, W) uint8 or uint16
        NIR frame, DN.
    gain : GainControl
        With its window already updated for this frame (:meth:`GainControl.update`).
    style : OverlayStyle

    Returns
    -------
    ndarray, (H, W, 3) uint8
    """
    if gain.window is None:
        gain.update(nir)
    lut = gain.table(nir.dtype)
    above = np.flatnonzero(lut > style.threshold)
    if above.size == 0:
        return white.copy()
    code = int(above[0])  # level > threshold  <=>  nir >= code (monotone table)
    active = nir.max(axis=1) >= code
    if active.all() and (nir.max(axis=0) >= code).all():
        return _blend(white, gain.to_display(nir), style)
    out = white.copy()
    # Pure colours: NIR code -> opacity in one table (gain, then opacity), one lookup.
    alpha_lut = style.alpha_of_code(lut) if style.colour in _PURE and _lut_ok(nir) else None
    for r0, r1 in _runs(active, join=16):
        band = nir[r0:r1]
        cols = band.max(axis=0) >= code
        for c0, c1 in _runs(cols, join=16):
            box = band[:, c0:c1]
            if alpha_lut is not None:
                _blend_pure(white[r0:r1, c0:c1], cv2.LUT(box, alpha_lut), style, out[r0:r1, c0:c1])
            else:
                _blend(white[r0:r1, c0:c1], gain.to_display(box), style, out[r0:r1, c0:c1])
    return out


def _lut_ok(nir: np.ndarray) -> bool:
    """True when ``cv2.LUT`` can look up ``nir``'s codes (8 bit, or 16 bit in OpenCV 5)."""
    return nir.dtype == np.uint8 or (nir.dtype == np.uint16 and _LUT16)


def _runs(flags: np.ndarray, join: int) -> list[tuple[int, int]]:
    """[start, stop) of the runs of True in ``flags``; gaps shorter than ``join`` are bridged."""
    idx = np.flatnonzero(flags)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > join)
    starts = np.concatenate(([idx[0]], idx[breaks + 1]))
    stops = np.concatenate((idx[breaks], [idx[-1]])) + 1
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def _blend(
    white: np.ndarray, level: np.ndarray, style: OverlayStyle, out: np.ndarray | None = None
) -> np.ndarray:
    """Blend ``level`` (h, w) uint8 into ``white`` (h, w, 3) uint8; into ``out`` (a view
    of the same shape, e.g. a box of the output frame) when given."""
    pre, inv = style.tables()
    if style.colour in _PURE:
        return _blend_pure(white, cv2.LUT(level, pre[_PURE[style.colour][0]]), style, out)
    else:
        # Single-channel LUTs and a merge are several times faster than one 3-channel LUT.
        keep = cv2.LUT(level, inv)
        tint = cv2.merge([cv2.LUT(level, table) for table in pre])
    if out is None:
        return cv2.add(cv2.multiply(white, cv2.merge([keep, keep, keep]), scale=1.0 / 255), tint)
    # In place: no temporary frame and no copy of the box into the output.
    cv2.multiply(white, cv2.merge([keep, keep, keep]), dst=out, scale=1.0 / 255)
    cv2.add(out, tint, dst=out)
    return out


def _blend_pure(
    white: np.ndarray, alpha: np.ndarray, style: OverlayStyle, out: np.ndarray | None = None
) -> np.ndarray:
    """Blend a pure 0/255 colour with opacity ``alpha`` (h, w) uint8 (255 = opaque):
    the tint is alpha itself in the lit channels and 1 - alpha its bitwise complement."""
    zero = np.zeros_like(alpha)
    tint = cv2.merge([alpha if c in _PURE[style.colour] else zero for c in range(3)])
    keep = cv2.bitwise_not(alpha)
    if out is None:
        return cv2.add(cv2.multiply(white, cv2.merge([keep, keep, keep]), scale=1.0 / 255), tint)
    cv2.multiply(white, cv2.merge([keep, keep, keep]), dst=out, scale=1.0 / 255)
    cv2.add(out, tint, dst=out)
    return out


def monochrome(level: np.ndarray) -> np.ndarray:
    """Grey NIR image (H, W, 3) uint8 from display levels (H, W) uint8."""
    return cv2.cvtColor(level, cv2.COLOR_GRAY2BGR)


def colour_mapped(level: np.ndarray, colour: str = "inferno") -> np.ndarray:
    """Colour-coded intensity map (H, W, 3) uint8 from display levels (H, W) uint8."""
    return cv2.applyColorMap(level, colour_table(colour))


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Two BGR frames (H, W, 3) next to each other: (H, 2W, 3) uint8."""
    return cv2.hconcat([left, right])


def render(
    mode: str,
    level: np.ndarray,
    white: np.ndarray | None,
    style: OverlayStyle,
) -> np.ndarray:
    """One display frame (BGR uint8) in ``mode`` (one of ``MODES``).

    Without a white-light frame, ``overlay`` falls back to the colour map and
    ``side-by-side`` shows the monochrome NIR next to the colour map.
    """
    if mode == "mono":
        return monochrome(level)
    if mode == "colormap" or (mode == "overlay" and white is None):
        return colour_mapped(
            level, "inferno" if style.colour in ("green", "magenta") else style.colour
        )
    if mode == "overlay":
        return overlay(white, level, style)
    if mode == "side-by-side":
        left = white if white is not None else monochrome(level)
        right = overlay(white, level, style) if white is not None else colour_mapped(level)
        return side_by_side(left, right)
    raise ValueError(f"unknown display mode {mode!r}; choose from {MODES}")


def draw_lesions(image: np.ndarray, lesions: list, offset_x: int = 0) -> None:
    """Draw lesion boxes and ``#id pattern TBR`` labels in place on a BGR display frame.

    Boxes are in input px; ``offset_x`` (px) shifts them onto the right half of a
    side-by-side frame. See :func:`hepanav.fluorescence.annotate.draw_lesion_labels`.
    """
    from hepanav.fluorescence.annotate import draw_lesion_labels

    draw_lesion_labels(image, lesions, offset_x)
