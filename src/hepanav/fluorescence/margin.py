"""Margin check: fluorescent spots on the transection surface (or a specimen's cut surface).

Fluorescence on the transection surface predicts a positive margin (< 1 mm): with no
signal at the margin R0 was 93.9 %, with a fluorescent margin 64.3 % (Life 2023,
66 patients; docs/domain.md "Margin"). A frame is ``at_risk`` when a spot on the
surface reaches ``min_cnr`` (default 3, the AAPM TG-311 detection threshold) and
``min_area_px``, or when a spot of at least ``min_area_px`` cannot be measured (no
background around it or around the fluorescent region it is part of): then it is
``undetermined`` and counted as at risk, never as clear. So is a frame whose bright area
is more than half the frame (no liver background to measure against).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hepanav.core import InputError
from hepanav.fluorescence import detect as det_mod
from hepanav.fluorescence import measure
from hepanav.fluorescence.analyze import frame_problem, large_area_warning, saturation_warning
from hepanav.fluorescence.schema import (
    AnalysisSettings,
    BackgroundDefinition,
    MarginFrame,
    MarginSpot,
)
from hepanav.fluorescence.sources import refuse_planar_tiff


def criterion(min_cnr: float, min_area_px: int) -> str:
    """The at-risk rule in words (saved in ``margin.json``)."""
    return (
        f"a frame is at risk when a fluorescent spot on the surface has CNR >= {min_cnr:g} "
        f"and area >= {min_area_px} px; fluorescence on the transection surface predicts a "
        "margin < 1 mm"
    )


def margin_background(background: BackgroundDefinition) -> BackgroundDefinition:
    """``background`` described as :func:`check_frame` uses it.

    The margin annulus differs from the analysis one: there is no white light (so no
    highlights are left out), and it is kept on the surface where it has room there.
    """
    return background.model_copy(
        update={
            "description": f"ring from {background.inner_px:g} to {background.outer_px:g} px "
            "beyond the spot edge (Euclidean distance), excluding pixels near other "
            "fluorescent regions; only its part on the surface when that part has enough pixels; "
            "when the spot's ring lies inside a larger fluorescent region, the same ring around "
            "that whole region (liver outside the lesion); a spot measurable against neither "
            "counts as at risk (undetermined)"
        }
    )


def load_surface_mask(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """Read a surface mask image; non-zero pixels are the surface.

    Parameters
    ----------
    path : str or Path
        Mask image (PNG, TIFF, ...).
    shape : tuple of int
        (H, W) of the NIR frames; the mask must match.

    Returns
    -------
    ndarray, (H, W) bool

    Raises
    ------
    InputError
        Missing or unreadable file, wrong size, or an empty mask.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("surface mask file not found", path)
    refuse_planar_tiff(path)
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise InputError("cannot read the surface mask image", path)
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    if mask.shape != tuple(shape):
        raise InputError(
            f"surface mask is {mask.shape[1]}x{mask.shape[0]} px but NIR frames are "
            f"{shape[1]}x{shape[0]} px; they must have the same size",
            path,
        )
    mask = mask > 0
    if not mask.any():
        raise InputError("surface mask is empty (no non-zero pixels)", path)
    return mask


def check_frame(
    index: int,
    nir: np.ndarray,
    surface: np.ndarray,
    settings: AnalysisSettings,
    full_scale: int,
    min_cnr: float = 3.0,
    min_area_px: int = 20,
    working: det_mod.WorkingFrame | None = None,
    surface_working: np.ndarray | None = None,
) -> MarginFrame:
    """Find fluorescent spots on the surface of one NIR frame.

    Parameters
    ----------
    index : int
        Frame number.
    nir : ndarray, (H, W) uint8 or uint16
        NIR frame, DN.
    surface : ndarray, (H, W) bool
        Transection (or specimen cut) surface.
    settings : AnalysisSettings
        Detection and background settings (the annulus is kept on the surface when it
        has enough pixels there).
    full_scale : int
        Largest NIR code.
    min_cnr : float
        CNR a spot needs to put the margin at risk.
    min_area_px : int
        Area (input px) a spot needs to put the margin at risk.
    working : WorkingFrame, optional
        ``detect.prepare(nir, settings.working_max_side)`` when already computed (the
        live display reuses the analysis's); computed here otherwise.
    surface_working : ndarray, (h, w) bool, optional
        ``surface`` on the working grid, when already computed (it does not change
        between frames).

    Returns
    -------
    MarginFrame
    """
    problem = frame_problem(nir, full_scale)
    if problem:
        return MarginFrame(index=index, at_risk=False, warnings=[problem])
    if working is None:
        working = det_mod.prepare(nir, settings.working_max_side)
    if not working.background_valid:
        # A bright area about as large as the frame: no liver background to measure the
        # surface against. Never "clear": undetermined, counted as at risk.
        return MarginFrame(
            index=index,
            at_risk=True,
            undetermined=True,
            warnings=[large_area_warning() + "; margin undetermined, counted as at risk"],
        )
    f = working.factor
    # Spots on the margin may be small and faint: seed at a lower local CNR, then
    # judge each spot by its measured CNR.
    dets, unreported = det_mod.detect_regions(
        working, min(settings.detect_z, 3.5), 2.0 * f, settings.boundary_fraction
    )
    labels = det_mod.label_image(working.image.shape, dets, unreported)
    if surface_working is None:
        surface_working = det_mod.downscale(surface.astype(np.uint8), f) > 0
    surf_w = surface_working
    on_surface = ((labels > 0) & surf_w).astype(np.uint8)
    # Label only inside the surface's bounding box (a transection line is a thin band):
    # the same components, a fraction of the work.
    sx, sy, sw, sh = cv2.boundingRect(on_surface)
    spot_labels = np.zeros(on_surface.shape, np.int32)
    n, stats = 1, np.zeros((1, 5), np.int32)
    if sw > 0 and sh > 0:  # OpenCV must not be given an empty image
        n, spot_labels[sy : sy + sh, sx : sx + sw], stats, _ = cv2.connectedComponentsWithStats(
            np.ascontiguousarray(on_surface[sy : sy + sh, sx : sx + sw]), connectivity=8
        )
        stats[:, 0] += sx
        stats[:, 1] += sy
    bgdef = settings.background
    spots: list[MarginSpot] = []
    warnings: list[str] = []
    H, W = labels.shape
    pad = int(np.ceil(bgdef.outer_px / f)) + 2
    for k in range(1, n):
        x, y, w, h, _area = (int(v) for v in stats[k])
        x0, y0 = max(0, x - pad), max(0, y - pad)
        x1, y1 = min(W, x + w + pad), min(H, y + h + pad)
        spot = spot_labels[y0:y1, x0:x1] == k
        others = (labels[y0:y1, x0:x1] != 0) & ~spot
        ring = measure.annulus(spot, others, bgdef.inner_px / f, bgdef.outer_px / f)
        ring_on_surface = ring & surf_w[y0:y1, x0:x1]
        if np.count_nonzero(ring_on_surface) >= 10:
            ring = ring_on_surface
        stats_k = measure.intensities(
            nir, working.image, f, (x0, y0, x1 - x0, y1 - y0), spot, spot, ring, full_scale
        )
        m = cv2.moments(spot.astype(np.uint8), binaryImage=True)
        cx = (x0 + m["m10"] / m["m00"]) * f + (f - 1) / 2
        cy = (y0 + m["m01"] / m["m00"]) * f + (f - 1) / 2
        background = "spot ring"
        if not np.isfinite(stats_k.background_mean):
            # The spot's own ring lies inside a larger fluorescent region (a surface cut
            # through a lesion): measure it against the liver around that whole region.
            stats_k = _region_background(
                nir, working.image, f, labels, spot, (x0, y0), bgdef, full_scale
            )
            background = "region ring"
            if np.isfinite(stats_k.background_mean):
                warnings.append(
                    f"spot at {cx:.0f},{cy:.0f} ({stats_k.area_px} px) lies inside a larger "
                    "fluorescent region: measured against the ring around that whole region"
                )
        if not np.isfinite(stats_k.background_mean):
            # Never "clear" because it could not be measured: a glowing surface that
            # cannot be measured is undetermined and counts as at risk.
            warnings.append(
                f"spot at {cx:.0f},{cy:.0f} ({stats_k.area_px} px) not measured: no "
                "background pixels around it or around its fluorescent region; "
                "margin undetermined, counted as at risk"
            )
            spots.append(
                MarginSpot(
                    id=len(spots) + 1,
                    centroid_xy=(round(cx, 2), round(cy, 2)),
                    bbox_xywh=(x * f, y * f, w * f, h * f),
                    area_px=stats_k.area_px,
                    area_mm2=stats_k.area_px * settings.mm_per_px**2
                    if settings.mm_per_px
                    else None,
                    tbr=None,
                    cnr=None,
                    background="none",
                    meets_criterion=stats_k.area_px >= min_area_px,
                )
            )
            continue
        mm = settings.mm_per_px
        warn = saturation_warning(
            stats_k.saturated_px,
            stats_k.area_px,
            settings.saturation_fraction,
            full_scale,
            f"spot {len(spots) + 1}",
            (cx, cy),
        )
        if warn:
            warnings.append(warn)
        spots.append(
            MarginSpot(
                id=len(spots) + 1,
                centroid_xy=(round(cx, 2), round(cy, 2)),
                bbox_xywh=(x * f, y * f, w * f, h * f),
                area_px=stats_k.area_px,
                area_mm2=stats_k.area_px * mm * mm if mm else None,
                tbr=stats_k.tbr,
                cnr=stats_k.cnr,
                background=background,
                meets_criterion=stats_k.cnr >= min_cnr and stats_k.area_px >= min_area_px,
            )
        )
    at_risk = any(s.meets_criterion for s in spots)
    undetermined = any(s.cnr is None and s.meets_criterion for s in spots)
    return MarginFrame(
        index=index, at_risk=at_risk, undetermined=undetermined, warnings=warnings, spots=spots
    )


def _region_background(
    nir: np.ndarray,
    working: np.ndarray,
    factor: int,
    labels: np.ndarray,
    spot: np.ndarray,
    origin: tuple[int, int],
    bgdef: BackgroundDefinition,
    full_scale: int,
) -> measure.Intensities:
    """Statistics of ``spot`` against the ring around the fluorescent region(s) it is part of.

    Parameters
    ----------
    nir : ndarray, (H, W) uint8/uint16
        Input frame, DN.
    working : ndarray, (h, w) float32
        Working image, DN.
    factor : int
        Working-grid downscale factor.
    labels : ndarray, (h, w) int32
        Fluorescent regions on the working grid (:func:`detect.label_image`).
    spot : ndarray, (sh, sw) bool
        The spot on a crop of the working grid whose top-left cell is ``origin`` (x, y).
    bgdef : BackgroundDefinition
        ``inner_px`` and ``outer_px`` (input px) of the ring beyond the region's edge.
    full_scale : int
        Largest NIR code (saturated pixels of the spot are counted at it).

    Returns
    -------
    Intensities
        Background mean and SD NaN when the ring has no pixels (the region fills the
        frame, or other regions surround it).
    """
    x0, y0 = origin
    sh, sw = spot.shape
    ids = np.unique(labels[y0 : y0 + sh, x0 : x0 + sw][spot])
    region = np.isin(labels, ids[ids > 0])
    whole_spot = np.zeros(labels.shape, bool)
    whole_spot[y0 : y0 + sh, x0 : x0 + sw] = spot
    region |= whole_spot
    ring = measure.annulus(
        region, (labels != 0) & ~region, bgdef.inner_px / factor, bgdef.outer_px / factor
    )
    roi = (0, 0, labels.shape[1], labels.shape[0])
    return measure.intensities(nir, working, factor, roi, whole_spot, whole_spot, ring, full_scale)


def at_risk_spots(frame: MarginFrame, min_cnr: float, min_area_px: int) -> set[int]:
    """Ids of the spots of ``frame`` that meet the at-risk criterion (an unmeasured spot
    of at least ``min_area_px`` counts: its margin is undetermined)."""
    return {
        s.id
        for s in frame.spots
        if s.area_px >= min_area_px and (s.cnr is None or s.cnr >= min_cnr)
    }


def margin_pictures(
    nir: np.ndarray,
    white: np.ndarray | None,
    surface: np.ndarray,
    frame: MarginFrame,
    rule,
    settings: AnalysisSettings,
) -> dict[str, np.ndarray]:
    """The margin check drawn on the NIR (and white-light) image.

    Parameters
    ----------
    nir : ndarray, (H, W) uint8/uint16
    white : ndarray, (H, W, 3) uint8 or None
    surface : ndarray, (H, W) bool
    frame : MarginFrame
    rule : MarginCriterion
    settings : AnalysisSettings
        ``mm_per_px`` adds a scale bar.

    Returns
    -------
    dict
        ``{"nir": image, "white": image}`` (BGR uint8, same size as the input); each shows
        the surface outline (sky blue), every spot circled and numbered with its id
        (vermillion when it meets the criterion, yellow otherwise) and a scale bar when
        calibrated.
    """
    from hepanav.fluorescence import annotate

    risky = at_risk_spots(frame, rule.min_cnr, rule.min_area_px)
    out = {"nir": annotate.nir_to_bgr8(nir)}
    if white is not None:
        out["white"] = white.copy()
    for image in out.values():
        annotate.draw_surface_and_spots(image, surface, frame.spots, risky)
        if settings.mm_per_px:
            annotate.draw_scale_bar(image, settings.mm_per_px)
    return out
