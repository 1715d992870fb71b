"""HTML reports of a fluorescence analysis and of a margin check."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from hepanav.core.report import figure_to_data_uri, new_figure, write_html
from hepanav.fluorescence.schema import AnalysisResult, MarginResult

_MAX_WARNINGS = 50


def track_summary(result: AnalysisResult) -> list[dict]:
    """One dict per track id: frames seen, majority pattern, median TBR/CNR/area."""
    by_id: dict[int, list] = {}
    for frame in result.frames:
        for les in frame.lesions:
            by_id.setdefault(les.id, []).append((frame.index, les))
    rows = []
    for tid, seen in sorted(by_id.items()):
        lesions = [les for _, les in seen]
        rims = [les.rim_thickness_px for les in lesions if les.rim_thickness_px is not None]
        areas_mm = [les.area_mm2 for les in lesions if les.area_mm2 is not None]
        rows.append(
            {
                "id": tid,
                "frames": len(seen),
                "first": seen[0][0],
                "last": seen[-1][0],
                "pattern": Counter(les.pattern for les in lesions).most_common(1)[0][0],
                "tbr": _median([les.tbr for les in lesions]),
                "tbr_rim": _median([les.tbr_rim for les in lesions]),
                "cnr": _median([les.cnr for les in lesions]),
                "area": float(np.median([les.area_px for les in lesions])),
                "area_mm2": float(np.median(areas_mm)) if areas_mm else None,
                "rim": float(np.median(rims)) if rims else None,
            }
        )
    return rows


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def _frame_figure(image_bgr: np.ndarray, caption: str, max_width: int = 1280) -> dict:
    """The frame itself as a PNG (no resampling through a plot: labels stay sharp)."""
    import base64

    import cv2

    h, w = image_bgr.shape[:2]
    if w > max_width:
        image_bgr = cv2.resize(image_bgr, (max_width, round(h * max_width / w)), cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", image_bgr)
    uri = "data:image/png;base64," + base64.b64encode(png.tobytes()).decode("ascii")
    # Small camera frames are shown at least 640 px wide so that labels stay readable.
    return {"uri": uri, "caption": caption, "width": max(640, image_bgr.shape[1])}


def quantification_warnings(result) -> list[str]:
    """Why TBR/CNR of this input are approximate (8-bit data, lossy codec)."""
    inp = result.input
    out = []
    if inp.bit_depth == 8:
        out.append(
            "TBR and CNR come from 8-bit data (256 levels): faint background and bright "
            "lesions are quantised or clipped; record the NIR at 12 or 16 bit for "
            "quantification."
        )
    if inp.lossy:
        out.append(
            f"TBR and CNR come from a lossy codec ({inp.codec}): compression changes pixel "
            "values, most at lesion edges and in dark background; use a lossless recording "
            "(16-bit PNG/TIFF, FFV1) for quantification."
        )
    return out


LESION_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _tbr_figure(result: AnalysisResult) -> dict:
    fig, (ax1, ax2) = new_figure(1, 2, figsize=(10, 3.4))
    series: dict[int, tuple[list, list]] = {}
    for frame in result.frames:
        for les in frame.lesions:
            xs, ys = series.setdefault(les.id, ([], []))
            if les.tbr is not None:
                xs.append(frame.index)
                ys.append(les.tbr)
    # Colour (Okabe-Ito, new_figure's cycle) AND marker per lesion: lines that run close
    # together stay apart in grey print and under colour-vision deficiencies.
    for k, (tid, (xs, ys)) in enumerate(sorted(series.items())):
        marker = LESION_MARKERS[k % len(LESION_MARKERS)]
        ax1.plot(xs, ys, marker=marker, ms=3, lw=1, label=f"#{tid}")
    ax1.set_xlabel("frame")
    ax1.set_ylabel("TBR")
    ax1.set_title("TBR per lesion over time")
    if series and len(series) <= 12:
        ax1.legend(fontsize=7, ncol=2)
    lat = [f.latency_ms for f in result.frames if f.latency_ms > 0]
    ax2.hist(lat, bins=30, color="#4a7ab5")
    ax2.set_xlabel("latency per frame (ms)")
    ax2.set_ylabel("frames")
    ax2.set_title("Processing latency")
    return {
        "uri": figure_to_data_uri(fig),
        "caption": "Left: tumour-to-background ratio of each tracked lesion. Right: per-frame "
        "processing latency (analysis and display).",
    }


def write_analysis_report(
    path: Path, result: AnalysisResult, snapshot_bgr: np.ndarray | None = None
) -> Path:
    """Write the HTML report of an analysis; ``snapshot_bgr`` is one annotated display frame."""
    from hepanav.fluorescence import annotate

    figures = []
    if snapshot_bgr is not None:
        image = snapshot_bgr.copy()
        caption = (
            "Display frame with the most lesions: box and label per lesion "
            "(#id, pattern, TBR; rim lesions also the TBR of the ring)"
        )
        mm = result.settings.mm_per_px
        if mm and result.input.layout != "side-by-side":
            length = annotate.draw_scale_bar(image, mm)
            caption += f"; scale bar {length:g} mm"
        else:
            caption += "; no scale bar (pixel size unknown: give --mm-per-px)"
        figures.append(_frame_figure(image, caption + "."))
    if result.frames:
        figures.append(_tbr_figure(result))
    warnings = [(f.index, w) for f in result.frames for w in f.warnings]
    return write_html(
        path,
        "hepanav.fluorescence",
        "fluorescence.html.j2",
        title="ICG fluorescence analysis",
        result=result,
        tracks=track_summary(result),
        mm=result.settings.mm_per_px is not None,
        figures=figures,
        warnings=warnings[:_MAX_WARNINGS],
        more_warnings=max(0, len(warnings) - _MAX_WARNINGS),
        quantification=quantification_warnings(result),
    )


def write_margin_report(
    path: Path, result: MarginResult, pictures: dict[str, np.ndarray] | None
) -> Path:
    """Write the HTML report of a margin check.

    ``pictures`` is :func:`hepanav.fluorescence.margin.margin_pictures` of the first
    frame at risk (else the first frame): the NIR and white-light images with the surface
    outline and the numbered spots.
    """
    figures = []
    legend = (
        "surface outline sky blue; spots circled and numbered as in the table, vermillion "
        "when they meet the at-risk criterion, yellow otherwise"
    )
    frame = _picture_frame(result)
    for key, name in (("nir", "NIR"), ("white", "White light")):
        if pictures and key in pictures:
            figures.append(_frame_figure(pictures[key], f"{name}, frame {frame}: {legend}."))
    return write_html(
        path,
        "hepanav.fluorescence",
        "margin.html.j2",
        title="Fluorescence margin check",
        result=result,
        figures=figures,
        quantification=quantification_warnings(result),
    )


def _picture_frame(result: MarginResult) -> int | None:
    risky = [f.index for f in result.frames if f.at_risk]
    if risky:
        return risky[0]
    usable = [f.index for f in result.frames]
    return usable[0] if usable else None
