"""The images of the margin report, drawn with the shared toolkit (hepanav.imaging.figures).

- three planes through the MAM point (crosshair), tumour and zone outlines, the tumour
  surface with margin < 0 mm (residual tumour) and 0-5 mm in their own colours, CT
  behind when one is given;
- a 3D view of the tumour surface coloured by margin inside the translucent zone
  (static PNG and an interactive self-contained view);
- the fusion check in three planes through the tumour: the registered pre CT over the
  post CT as a checkerboard, with the liver outlines.

The numbers come from the measurement and ``margin.json``; nothing here computes a
figure the JSON does not carry, except the positions needed to draw.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

from hepanav.core.report import figure_to_data_uri, format_margin, new_figure
from hepanav.imaging.figures import (
    LIVER_WINDOW,
    ROLE,
    SurfaceLayer,
    annotate_plane,
    checkerboard,
    draw_crosshair,
    draw_mask,
    draw_points,
    figure_legend,
    interactive_html,
    legend,
    resample_mask_to_plane,
    resample_to_plane,
    show_plane,
    static_figure,
    three_planes,
)
from hepanav.margin.schema import SAFE_MARGIN_MM, WIDE_MARGIN_MM

if TYPE_CHECKING:
    from hepanav.margin.measure import Measurement
    from hepanav.margin.pipeline import MarginRun

#: Margin bands of the 3D view, 5 mm wide from -5 to 15 mm (Okabe-Ito colours):
#: residual (< 0), short (0-5), adequate (5-10), wide (>= 10).
BAND_COLOURS = (ROLE["residual"], ROLE["short"], "#56B4E9", "#0072B2")
BAND_RANGE_MM = (-5.0, 15.0)
ZONE_GLASS = "#BBBBBB"


def _mam_label(m: Measurement) -> str:
    """The default MAM legend, ``"MAM point (-0.01 mm)"`` (never 0.0 when negative)."""
    return f"MAM point ({format_margin(float(m.min_margin_mm))} mm)"


def band_colormap():
    """The banded colour map of the margin (four 5 mm bands over ``BAND_RANGE_MM``)."""
    from matplotlib.colors import ListedColormap

    return ListedColormap(list(BAND_COLOURS), name="hepanav_margin_bands")


def mam_point(m: Measurement) -> np.ndarray:
    """LPS position (mm) of the analysed tumour-surface vertex with the smallest margin."""
    return m.tumor_mesh.vertices[np.argmin(np.where(m.analysed, m.margin_mm, np.inf))]


def field_image(field_zyx: np.ndarray, grid: sitk.Image) -> sitk.Image:
    """A field of the analysis grid as a SimpleITK image (for resampling onto planes)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(field_zyx, dtype=np.float32))
    image.CopyInformation(grid)
    return image


def slices_figure(
    m: Measurement,
    background: sitk.Image | None,
    source: sitk.Image,
    size_mm: float = 80.0,
    point=None,
    label: str | None = None,
) -> str:
    """Axial, coronal, sagittal planes through the MAM point (PNG data URI).

    ``background``: CT in the zone's space (post CT or ``--ct``), or None (masks only).
    ``source``: the series the captions locate the planes in (LPS z, DICOM instance).
    """
    return figure_to_data_uri(slices_axes(m, background, source, size_mm, point, label))


def slices_axes(
    m: Measurement,
    background: sitk.Image | None,
    source: sitk.Image,
    size_mm: float = 80.0,
    point=None,
    label: str | None = None,
):
    """The matplotlib figure of :func:`slices_figure` (axes carry ``hepanav_plane``).

    ``point``: the MAM point (LPS mm) from ``margin.json`` when it carries one, else the
    surface vertex of the smallest margin; ``label``: the MAM text in the legend (e.g.
    with its uncertainty).
    """
    point = mam_point(m) if point is None else np.asarray(point, dtype=float)
    label = label or _mam_label(m)
    tumour = field_image(m.tumor_field, m.grid)
    zone = field_image(m.zone_field, m.grid)
    verts, margin = m.tumor_mesh.vertices, m.margin_mm
    residual = verts[m.analysed & (margin < 0)]
    short = verts[m.analysed & (margin >= 0) & (margin < SAFE_MARGIN_MM)]
    window = LIVER_WINDOW if background is not None else None
    fig, axes = new_figure(1, 3, figsize=(14, 5.3))
    for ax, plane in zip(axes, three_planes(source, point, size_mm=size_mm), strict=True):
        ct = (
            resample_to_plane(background, plane, default_value=-1000.0)
            if background is not None
            else None
        )
        show_plane(ax, plane, ct, window=window)
        draw_mask(ax, plane, resample_to_plane(zone, plane), ROLE["zone"], lw=1.8)
        draw_mask(ax, plane, resample_to_plane(tumour, plane), ROLE["tumour"], lw=1.5)
        slab = 0.6 * max(plane.pixel_mm)
        draw_points(ax, plane, short, ROLE["short"], slab_mm=slab, size=9)
        draw_points(ax, plane, residual, ROLE["residual"], slab_mm=slab, size=11)
        draw_crosshair(ax, plane, point, ROLE["marker"])
        annotate_plane(ax, plane, title=f"{plane.name} through the MAM point", window=window)
    figure_legend(
        fig,
        [
            ("line", ROLE["tumour"], "tumour"),
            ("line", ROLE["zone"], "ablation zone"),
            ("dot", ROLE["residual"], "residual tumour: margin < 0 mm"),
            ("dot", ROLE["short"], f"margin 0-{SAFE_MARGIN_MM:g} mm"),
            ("cross", ROLE["marker"], label),
        ],
        ncol=5,
    )
    if background is None:
        fig.text(
            0.5,
            0.99,
            "no CT given: outlines only (add --ct to draw them on the CT)",
            ha="center",
            fontsize=9,
        )
    return fig


def surface_layers(m: Measurement) -> list[SurfaceLayer]:
    """Tumour surface coloured by margin (NaN-free) and the translucent zone surface."""
    from hepanav.margin.surface import extract_surface

    zone = extract_surface(m.zone_field, m.grid)
    # vertices left out (subcapsular) are drawn at the top of the scale, not as short
    scalar = np.where(m.analysed, m.margin_mm, BAND_RANGE_MM[1])
    return [
        SurfaceLayer(
            "tumour surface by margin", m.tumor_mesh.vertices, m.tumor_mesh.faces, scalar=scalar
        ),
        # neutral glass: a tinted zone would shift the band colours seen through it
        SurfaceLayer("ablation zone", zone.vertices, zone.faces, colour=ZONE_GLASS, opacity=0.15),
    ]


def surface_views(m: Measurement, point=None, label: str | None = None) -> tuple[str, str]:
    """(static PNG data URI, interactive HTML fragment) of the 3D view."""
    layers = surface_layers(m)
    point = mam_point(m) if point is None else np.asarray(point, dtype=float)
    marker = [(point, ROLE["marker"], label or _mam_label(m))]
    kw = dict(
        cmap=band_colormap(),
        vmin=BAND_RANGE_MM[0],
        vmax=BAND_RANGE_MM[1],
        scalar_label="margin (mm): < 0 residual | 0-5 | 5-10 | \u2265 10",
    )
    # The static figure's colour bar: a short label, ticks at the band edges; the
    # categories are named in the report's caption (a long rotated label ran together).
    static_kw = {**kw, "scalar_label": "margin (mm)"}
    edges = np.arange(BAND_RANGE_MM[0], BAND_RANGE_MM[1] + 1e-9, 5.0).tolist()
    fig = static_figure(layers, markers=marker, scalar_ticks=edges, **static_kw)
    interactive = interactive_html(layers, markers=marker, element_id="margin3d", **kw)
    return figure_to_data_uri(fig), interactive


def fusion_figure(run: MarginRun, size_mm: float = 100.0) -> str:
    """Registered pre CT over the post CT (checkerboard) in three planes through the tumour."""
    post, pre = run.images["post"], run.images["pre"]
    transform = run.registration.transform
    m = run.measurement
    centre = (m.tumor_mesh.vertices * m.tumor_mesh.vertex_area[:, None]).sum(0) / (
        m.tumor_mesh.vertex_area.sum()
    )
    livers = "liver_pre" in run.images and "liver_post" in run.images
    fig, axes = new_figure(1, 3, figsize=(14, 5.3))
    for ax, plane in zip(axes, three_planes(post, centre, size_mm=size_mm), strict=True):
        post_arr = resample_to_plane(post, plane, default_value=-1000.0)
        pre_arr = resample_to_plane(pre, plane, default_value=-1000.0, transform=transform)
        show_plane(
            ax, plane, checkerboard(post_arr, pre_arr, plane, square_mm=10.0), window=LIVER_WINDOW
        )
        if livers:
            draw_mask(
                ax,
                plane,
                resample_mask_to_plane(run.images["liver_post"], plane),
                ROLE["reference"],
                lw=1.4,
            )
            draw_mask(
                ax,
                plane,
                resample_mask_to_plane(run.images["liver_pre"], plane, transform),
                ROLE["moving"],
                lw=1.2,
                linestyle="dashed",
            )
        draw_mask(
            ax,
            plane,
            resample_to_plane(field_image(m.zone_field, m.grid), plane),
            ROLE["zone"],
            lw=1.4,
        )
        annotate_plane(
            ax, plane, title=f"{plane.name} through the tumour centre", window=LIVER_WINDOW
        )
    items = [("line", ROLE["zone"], "ablation zone")]
    if livers:
        items = [
            ("line", ROLE["reference"], "post liver"),
            ("dashed", ROLE["moving"], "pre liver, registered"),
        ] + items
    figure_legend(fig, items)
    return figure_to_data_uri(fig)


def histogram_figure(m: Measurement) -> str:
    """Area-weighted histogram of the signed surface margins, bars in the band colours."""
    values, weights = m.margin_mm[m.analysed], m.tumor_mesh.vertex_area[m.analysed]
    fig, ax = new_figure(figsize=(7.5, 3.4))
    lo = min(float(values.min()), -1.0)
    hi = max(float(values.max()), WIDE_MARGIN_MM + 1)
    edges = np.linspace(lo, hi, 61)
    counts, _ = np.histogram(values, bins=edges, weights=weights)
    centres = (edges[:-1] + edges[1:]) / 2
    colours = np.where(
        centres < 0,
        BAND_COLOURS[0],
        np.where(
            centres < SAFE_MARGIN_MM,
            BAND_COLOURS[1],
            np.where(centres < WIDE_MARGIN_MM, BAND_COLOURS[2], BAND_COLOURS[3]),
        ),
    )
    ax.bar(centres, counts, width=np.diff(edges), color=colours, edgecolor="#333", lw=0.3)
    ax.axvline(0.0, color="black", lw=1.0)
    ax.axvline(SAFE_MARGIN_MM, color="black", lw=1.0, ls="--")
    ax.axvline(m.min_margin_mm, color="black", lw=1.0, ls=":")
    legend(
        ax,
        [
            ("patch", BAND_COLOURS[0], "< 0 mm: residual tumour"),
            ("patch", BAND_COLOURS[1], "0-5 mm"),
            ("patch", BAND_COLOURS[2], "5-10 mm"),
            ("patch", BAND_COLOURS[3], "\u2265 10 mm"),
            ("dashed", "black", "5 mm"),
            ("dotted", "black", f"MAM {format_margin(float(m.min_margin_mm))} mm"),
        ],
        loc="upper right",
        fontsize=7,
    )
    ax.set_xlabel("signed margin, mm (positive: inside the zone)")
    ax.set_ylabel("tumour surface area, mm\u00b2")
    return figure_to_data_uri(fig)
