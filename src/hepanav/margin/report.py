"""The HTML report of ``hepanav margin``: figures, the table of figures, short regions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

from hepanav.core.report import figure_to_data_uri, new_figure, write_html
from hepanav.imaging import bounding_box_index, crop, lps_to_voxel, resample_isotropic
from hepanav.imaging.resample import resample_like, resample_mask_like
from hepanav.margin.schema import SAFE_MARGIN_MM

if TYPE_CHECKING:
    from hepanav.margin.measure import Measurement
    from hepanav.margin.pipeline import MarginRun

TUMOUR_COLOUR = "#d62728"
ZONE_COLOUR = "#2ca02c"
SHORT_COLOUR = "#ff7f0e"


def write_report(run: MarginRun, path: Path) -> Path:
    """Write the margin report (HTML with inline figures) atomically; return its path."""
    m = run.measurement
    background = run.images.get("post")
    figures = {
        "slices": slices_figure(m, background),
        "histogram": histogram_figure(m),
    }
    if run.registration is not None and "liver_pre" in run.images:
        figures["registration"] = registration_figure(run)
    return write_html(
        path,
        "hepanav.margin",
        "margin.html.j2",
        title="Ablation margin",
        result=run.result,
        figures=figures,
        safe_mm=SAFE_MARGIN_MM,
    )


def slices_figure(m: Measurement, background: sitk.Image | None) -> str:
    """Three orthogonal slices through the worst-margin point: tumour, zone, short parts."""
    grid = m.grid
    worst = m.tumor_mesh.vertices[np.argmin(np.where(m.analysed, m.margin_mm, np.inf))]
    centre = np.rint(lps_to_voxel(grid, worst[None])[0]).astype(int)  # x, y, z
    centre = np.clip(centre, 0, np.asarray(grid.GetSize()) - 1)
    ct = None
    if background is not None:
        ct = sitk.GetArrayFromImage(
            resample_like(background, grid, default_value=-1000.0, pixel_type=sitk.sitkFloat32)
        )
    vertex_index = lps_to_voxel(grid, m.tumor_mesh.vertices)
    short = m.analysed & (m.margin_mm < SAFE_MARGIN_MM)
    sx, sy, sz = grid.GetSpacing()
    # (name, array slicer, in-plane axes of vertex_index, normal axis, pixel aspect, origin):
    # radiological display for LPS-aligned grids (anterior up in axial, superior up).
    views = [
        ("axial", (centre[2], slice(None), slice(None)), (0, 1, 2), sy / sx, "upper"),
        ("coronal", (slice(None), centre[1], slice(None)), (0, 2, 1), sz / sx, "lower"),
        ("sagittal", (slice(None), slice(None), centre[0]), (1, 2, 0), sz / sy, "lower"),
    ]
    fig, axes = new_figure(1, 3, figsize=(13, 4.6))
    for ax, (name, sl, (u, v, w), aspect, origin) in zip(axes, views, strict=True):
        if ct is not None:
            ax.imshow(ct[sl], cmap="gray", vmin=-150, vmax=250, origin=origin, aspect=aspect)
        else:
            ax.imshow(np.zeros_like(m.zone_field[sl]), cmap="gray", origin=origin, aspect=aspect)
        ax.contour(m.zone_field[sl], levels=[0.5], colors=ZONE_COLOUR, linewidths=1.4)
        ax.contour(m.tumor_field[sl], levels=[0.5], colors=TUMOUR_COLOUR, linewidths=1.4)
        near = short & (np.abs(vertex_index[:, w] - centre[w]) < 1.0)
        if near.any():
            ax.scatter(vertex_index[near, u], vertex_index[near, v], s=4, c=SHORT_COLOUR)
        ax.set_title(f"{name} through the smallest margin")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].plot([], [], color=TUMOUR_COLOUR, label="tumour")
    axes[0].plot([], [], color=ZONE_COLOUR, label="ablation zone")
    axes[0].scatter([], [], color=SHORT_COLOUR, label=f"margin < {SAFE_MARGIN_MM:g} mm")
    axes[0].legend(loc="lower left", fontsize=8, framealpha=0.8)
    return figure_to_data_uri(fig)


def histogram_figure(m: Measurement) -> str:
    """Area-weighted histogram of the signed surface margins (mm)."""
    values, weights = m.margin_mm[m.analysed], m.tumor_mesh.vertex_area[m.analysed]
    fig, ax = new_figure(figsize=(7, 3.4))
    ax.hist(values, bins=60, weights=weights, color="#4c72b0")
    ax.axvline(0.0, color=TUMOUR_COLOUR, lw=1.2, label="0 mm (zone surface)")
    ax.axvline(SAFE_MARGIN_MM, color=SHORT_COLOUR, lw=1.2, ls="--", label="5 mm")
    ax.axvline(m.min_margin_mm, color="k", lw=1.0, ls=":", label="MAM")
    ax.set_xlabel("signed margin, mm (positive: inside the zone)")
    ax.set_ylabel("tumour surface area, mm²")
    ax.legend(fontsize=8)
    return figure_to_data_uri(fig)


def registration_figure(run: MarginRun) -> str:
    """Post CT with the post liver outline and the pre liver before / after registration."""
    post, post_liver = run.images["post"], run.images["liver_post"]
    start, size = bounding_box_index(post_liver, 15.0)
    grid = resample_isotropic(sitk.Cast(crop(post_liver, start, size), sitk.sitkFloat32), 2.0)
    ct = sitk.GetArrayFromImage(
        resample_like(post, grid, default_value=-1000.0, pixel_type=sitk.sitkFloat32)
    )
    target = sitk.GetArrayFromImage(resample_mask_like(post_liver, grid))
    before = sitk.GetArrayFromImage(resample_mask_like(run.images["liver_pre"], grid))
    after = sitk.GetArrayFromImage(
        resample_mask_like(run.images["liver_pre"], grid, run.registration.transform)
    )
    tumour_centre = run.measurement.tumor_mesh.vertices.mean(axis=0)
    k = int(np.clip(round(lps_to_voxel(grid, tumour_centre[None])[0, 2]), 0, ct.shape[0] - 1))
    fig, axes = new_figure(1, 2, figsize=(11, 5))
    for ax, moved, title in (
        (axes[0], before, "before registration"),
        (axes[1], after, "after registration"),
    ):
        ax.imshow(ct[k], cmap="gray", vmin=-150, vmax=250, origin="upper")
        ax.contour(target[k], levels=[0.5], colors="#1f77b4", linewidths=1.4)
        ax.contour(moved[k], levels=[0.5], colors="#e377c2", linewidths=1.2)
        ax.set_title(f"{title}: post liver (blue), pre liver (pink)")
        ax.set_xticks([])
        ax.set_yticks([])
    return figure_to_data_uri(fig)
