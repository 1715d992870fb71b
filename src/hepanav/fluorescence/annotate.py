"""Draw findings on the frames people look at: surface, numbered spots, lesion labels,
scale bar, banners. Used by the reports and the live display (one look everywhere).

Colours are Okabe-Ito (colour-blind safe), given here in OpenCV's BGR order.
"""

from __future__ import annotations

import cv2
import numpy as np

# Okabe-Ito, BGR
SKY_BLUE = (233, 180, 86)
VERMILLION = (0, 94, 213)
ORANGE = (0, 159, 230)
YELLOW = (66, 228, 240)
BLUE = (178, 114, 0)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def nir_to_bgr8(nir: np.ndarray) -> np.ndarray:
    """A NIR frame (H, W) uint8/uint16 stretched between its 1st and 99.9th percentile,
    as (H, W, 3) uint8 grey (for pictures only; measurements use the raw codes)."""
    lo, hi = np.percentile(nir[::4, ::4], (1, 99.9))
    span = max(float(hi - lo), 1.0)
    img = cv2.convertScaleAbs(nir, alpha=255.0 / span, beta=-float(lo) * 255.0 / span)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)


def text(
    image: np.ndarray,
    message: str,
    origin: tuple[int, int],
    scale: float = 0.5,
    colour: tuple[int, int, int] = WHITE,
    thickness: int = 1,
) -> None:
    """Text on a dark box, readable on any background (in place).

    A box rather than a thick dark outline: OpenCV 5 advances thicker glyphs further, so
    an outline drawn as thicker text drifts away from the letters.
    """
    (tw, th), base = cv2.getTextSize(message, _FONT, scale, thickness)
    x, y = origin
    cv2.rectangle(image, (x - 2, y - th - 3), (x + tw + 2, y + base), BLACK, -1)
    cv2.putText(image, message, origin, _FONT, scale, colour, thickness, cv2.LINE_AA)


def font_scale(image: np.ndarray) -> float:
    """Text size that stays readable from 256-px to 4K frames."""
    return max(0.4, image.shape[0] / 900.0)


def surface_contours(surface: np.ndarray) -> tuple:
    """Outer outlines of a surface mask (H, W) bool, px (for :func:`draw_surface_and_spots`;
    a live display computes them once, not per frame)."""
    contours, _ = cv2.findContours(
        surface.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    return contours


def draw_surface_and_spots(
    image: np.ndarray,
    surface: np.ndarray | None,
    spots: list,
    at_risk_ids: set[int],
    contours: tuple | None = None,
) -> None:
    """Draw the surface outline (sky blue) and each spot, numbered (in place).

    Parameters
    ----------
    image : ndarray, (H, W, 3) uint8
    surface : ndarray, (H, W) bool
    spots : list of MarginSpot
        Numbered by their ``id``; spots meeting the at-risk criterion in vermillion with
        a thick circle, the others in yellow.
    at_risk_ids : set of int
    contours : tuple, optional
        ``surface_contours(surface)`` when already computed (then ``surface`` is unused).
    """
    if contours is None:
        contours = surface_contours(surface)
    thick = max(2, image.shape[0] // 300)
    cv2.drawContours(image, contours, -1, SKY_BLUE, thick, cv2.LINE_AA)
    scale = font_scale(image)
    for s in spots:
        x, y, w, h = s.bbox_xywh
        cx, cy = (int(round(c)) for c in s.centroid_xy)
        risky = s.id in at_risk_ids
        colour = VERMILLION if risky else YELLOW
        radius = int(max(w, h) / 2 + 4 + thick)
        cv2.circle(image, (cx, cy), radius, colour, thick + (1 if risky else 0), cv2.LINE_AA)
        text(image, str(s.id), (cx + radius, max(12, cy - radius)), scale, colour, thick)


def draw_scale_bar(image: np.ndarray, mm_per_px: float) -> float:
    """Draw a scale bar (bottom left) of a round length in mm; return that length (mm)."""
    h, w = image.shape[:2]
    target_px = w / 5
    length_mm = target_px * mm_per_px
    nice = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500]
    length_mm = max([n for n in nice if n <= length_mm] or [nice[0]])
    px = int(round(length_mm / mm_per_px))
    thick = max(3, h // 150)
    x0, y0 = int(0.04 * w), int(h - 0.05 * h)
    cv2.rectangle(image, (x0 - 2, y0 - thick - 2), (x0 + px + 2, y0 + 2), BLACK, -1)
    cv2.rectangle(image, (x0, y0 - thick), (x0 + px, y0), WHITE, -1)
    label = f"{length_mm:g} mm"
    text(image, label, (x0, y0 - thick - 6), font_scale(image), WHITE, max(1, thick // 3))
    return length_mm


def banner(image: np.ndarray, message: str, colour: tuple[int, int, int]) -> None:
    """A full-width band with ``message`` at the top of the frame (in place)."""
    scale = font_scale(image) * 1.2
    (tw, th), base = cv2.getTextSize(message, _FONT, scale, 2)
    height = th + base + 12
    cv2.rectangle(image, (0, 0), (image.shape[1], height), colour, -1)
    cv2.putText(image, message, (8, th + 6), _FONT, scale, WHITE, 2, cv2.LINE_AA)


def draw_lesion_labels(image: np.ndarray, lesions: list, offset_x: int = 0) -> None:
    """Lesion outlines (box) and ``#id pattern TBR x.x`` labels, readable (in place).

    Rim lesions show the TBR of the fluorescent ring (``rim TBR``) next to the whole-mask
    TBR, since the dark centre lowers the latter.
    """
    scale = font_scale(image) * 0.9
    thick = max(1, image.shape[0] // 500)
    for les in lesions:
        x, y, w, h = les.bbox_xywh
        x += offset_x
        cv2.rectangle(image, (x, y), (x + w, y + h), WHITE, thick + 1, cv2.LINE_AA)
        label = f"#{les.id} {les.pattern}"
        if les.tbr is not None:
            label += f" TBR {les.tbr:.1f}"
        if les.tbr_rim is not None:
            label += f" rim {les.tbr_rim:.1f}"
        (tw, th), _ = cv2.getTextSize(label, _FONT, scale, thick)
        tx = max(0, min(x, image.shape[1] - tw - 2))  # keep the label inside the frame
        text(image, label, (tx, max(th + 2, y - 6)), scale, WHITE, thick)
