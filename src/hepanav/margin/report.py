"""The HTML report of ``hepanav margin``: figures, table of figures, residual and short regions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from hepanav.core.report import format_margin, write_html
from hepanav.margin.schema import REGISTRATION_MODE_WORDS, SAFE_MARGIN_MM
from hepanav.margin.views import (
    BAND_COLOURS,
    fusion_figure,
    histogram_figure,
    mam_point,
    slices_figure,
    surface_views,
)

if TYPE_CHECKING:
    from hepanav.margin.measure import Measurement
    from hepanav.margin.pipeline import MarginRun


def write_report(run: MarginRun, path: Path) -> Path:
    """Write the margin report (HTML with inline figures) atomically; return its path."""
    m = run.measurement
    background = run.images.get("post", run.images.get("ct"))
    source = background if background is not None else run.images["ablation"]
    # the MAM point and its uncertainty from margin.json when it carries them
    point = getattr(run.result, "mam_point_lps_mm", None)
    point = mam_point(m) if point is None else point
    label = f"MAM point ({format_margin(float(run.result.min_margin_mm))} mm"
    uncertainty = getattr(run.result, "uncertainty", None)
    # the ± only where it bounds the MAM (not with masks segmented from seeds)
    bound = getattr(run.result, "min_margin_bound", None)
    if bound is not None:  # a bound because of the image border: no symmetric ±
        label = label.replace("(", "(" + {"lower": "≥ ", "upper": "≤ "}.get(bound, "? "), 1)
    elif uncertainty is not None and getattr(uncertainty, "min_margin_interval_mm", None):
        label += f" \u00b1 {uncertainty.half_width_mm:.1f}"
    label += ")"
    static3d, interactive3d = surface_views(m, point, label)
    figures = {
        "slices": slices_figure(m, background, source, point=point, label=label),
        "histogram": histogram_figure(m),
        "surface": static3d,
    }
    if run.registration is not None:
        figures["registration"] = fusion_figure(run)
    return write_html(
        path,
        "hepanav.margin",
        "margin.html.j2",
        title="Ablation margin",
        result=run.result,
        figures=figures,
        interactive3d=interactive3d,
        residual=residual_rows(run),
        mam_point=[float(v) for v in point],
        has_ct=background is not None,
        colours=dict(zip(("residual", "short", "adequate", "wide"), BAND_COLOURS, strict=True)),
        safe_mm=SAFE_MARGIN_MM,
        registration_modes=REGISTRATION_MODE_WORDS,
    )


def residual_rows(run: MarginRun) -> list[dict]:
    """One row per residual-tumour region (surface with margin < 0 mm), worst first.

    Taken from ``margin.json`` when it carries them (``residual_regions``); otherwise
    derived for display from the measured surface: the connected surface parts below
    0 mm (as the short regions below 5 mm) and the volume of tumour outside the zone
    next to each (3D components of tumour and not zone, given to the nearest region).
    Empty exactly when the MAM is >= 0.
    """
    result, m = run.result, run.measurement
    given = getattr(result, "residual_regions", None)
    if given is not None:
        return [r.model_dump() if hasattr(r, "model_dump") else dict(r) for r in given]
    if result.min_margin_mm >= 0:
        return []
    from hepanav.margin.regions import short_regions

    area = m.tumor_mesh.vertex_area
    centre = (m.tumor_mesh.vertices * area[:, None]).sum(0) / area.sum()
    regions = short_regions(m.tumor_mesh, m.margin_mm, m.analysed, centre, threshold_mm=0.0)
    volumes = _residual_volumes(m, np.array([r.centroid_lps_mm for r in regions]))
    return [
        {**r.model_dump(), "volume_ml": float(v)} for r, v in zip(regions, volumes, strict=True)
    ]


def _residual_volumes(m: Measurement, centroids: np.ndarray) -> np.ndarray:
    """Volume (ml) of tumour outside the zone nearest each region centroid (LPS mm)."""
    from hepanav.imaging.geometry import voxel_to_lps

    outside = (m.tumor_field >= 0.5) & (m.zone_field < 0.5)
    volumes = np.zeros(len(centroids))
    if not len(centroids) or not outside.any():
        return volumes
    voxel_ml = float(np.prod(m.grid.GetSpacing())) / 1000.0
    labels, n = ndimage.label(outside)
    for k in range(1, n + 1):
        idx = np.argwhere(labels == k)
        where = voxel_to_lps(m.grid, idx[:, ::-1].mean(axis=0)[None])[0]
        nearest = int(np.argmin(np.linalg.norm(centroids - where, axis=1)))
        volumes[nearest] += len(idx) * voxel_ml
    return volumes
