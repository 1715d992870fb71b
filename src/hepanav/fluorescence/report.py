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


def _frame_figure(image_bgr: np.ndarray, caption: str) -> dict:
    fig, ax = new_figure(figsize=(8, 8 * image_bgr.shape[0] / image_bgr.shape[1]))
    ax.imshow(image_bgr[..., ::-1])
    ax.set_axis_off()
    return {"uri": figure_to_data_uri(fig), "caption": caption}


def _tbr_figure(result: AnalysisResult) -> dict:
    fig, (ax1, ax2) = new_figure(1, 2, figsize=(10, 3.4))
    series: dict[int, tuple[list, list]] = {}
    for frame in result.frames:
        for les in frame.lesions:
            xs, ys = series.setdefault(les.id, ([], []))
            if les.tbr is not None:
                xs.append(frame.index)
                ys.append(les.tbr)
    for tid, (xs, ys) in sorted(series.items()):
        ax1.plot(xs, ys, marker=".", lw=1, label=f"#{tid}")
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
    figures = []
    if snapshot_bgr is not None:
        figures.append(
            _frame_figure(snapshot_bgr, "Display frame with detected lesions (id, pattern, TBR).")
        )
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
    )


def write_margin_report(path: Path, result: MarginResult, snapshot_bgr: np.ndarray | None) -> Path:
    """Write the HTML report of a margin check."""
    figures = []
    if snapshot_bgr is not None:
        figures.append(
            _frame_figure(snapshot_bgr, "NIR with the surface (blue) and spots (red boxes).")
        )
    return write_html(
        path,
        "hepanav.fluorescence",
        "margin.html.j2",
        title="Fluorescence margin check",
        result=result,
        figures=figures,
    )
