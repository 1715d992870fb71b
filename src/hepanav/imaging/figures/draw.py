"""Drawing on a :class:`~hepanav.imaging.figures.planes.Plane` with matplotlib.

Every slice view gets the same furniture: orientation letters at the four edges
(from the plane's LPS directions, so correct for any direction matrix), a scale bar
in mm, where the plane lies in LPS mm (and the source's DICOM instance number when
known; :func:`slice_caption`), and the window/level of the grey scale. Overlays
(contours, points, crosshairs, line segments) are given in LPS mm or as arrays
resampled onto the plane, never in another grid's indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hepanav.imaging.figures.orientation import edge_letters
from hepanav.imaging.figures.planes import Plane

#: Soft-tissue abdominal CT window (width, level) in HU, as commonly used for the liver.
LIVER_WINDOW = (400.0, 40.0)

_NICE_MM = (1, 2, 5, 10, 20, 25, 50, 100, 200)


@dataclass
class ScaleBar:
    """What :func:`add_scale_bar` drew: its length in mm and in data pixels (columns)."""

    length_mm: float
    length_px: float
    label: str
    x0: float
    y: float


def _outlined(linewidth: float = 2.5, **kw):
    import matplotlib.patheffects as pe

    return {"path_effects": [pe.withStroke(linewidth=linewidth, foreground="black")], **kw}


#: Scale bar: white line width, its black outline's total width, the label's outline,
#: and the gap (points) between the outlined bar and the outlined label, so that the
#: label stays clear of the bar at any figure size (a thumbnail too).
SCALE_BAR_LW = 3.0
SCALE_BAR_OUTLINE_LW = 5.0
SCALE_LABEL_OUTLINE_LW = 2.5
SCALE_LABEL_GAP_PT = 2.0


def show_plane(
    ax,
    plane: Plane,
    image: np.ndarray | None,
    *,
    window: tuple[float, float] | None = LIVER_WINDOW,
    cmap: str = "gray",
):
    """Draw a resampled image (rows, cols) on ``ax`` in the plane's pixel frame.

    ``window`` = (width, level) in the image's unit (HU for CT); ``None`` stretches
    to the data range. Without an image the plane is drawn in dark grey (masks only).
    Square mm: the axes aspect is row_mm / col_mm.
    """
    rows, cols = plane.shape
    extent = (-0.5, cols - 0.5, rows - 0.5, -0.5)
    aspect = plane.pixel_mm[0] / plane.pixel_mm[1]
    if image is None:
        ax.imshow(
            np.full(plane.shape, 0.15),
            cmap="gray",
            vmin=0,
            vmax=1,
            extent=extent,
            aspect=aspect,
            interpolation="nearest",
        )
    else:
        if window is None:
            vmin, vmax = float(np.nanmin(image)), float(np.nanmax(image))
        else:
            vmin, vmax = window[1] - window[0] / 2.0, window[1] + window[0] / 2.0
        ax.imshow(
            image,
            cmap=cmap,
            vmin=vmin,
            vmax=vmax,
            extent=extent,
            aspect=aspect,
            interpolation="bilinear",
        )
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])


def add_orientation_letters(ax, plane: Plane, fontsize: int = 11) -> dict[str, str]:
    """Write the patient-side letters at the four edges; return them (left/right/top/bottom)."""
    letters = edge_letters(plane.right, plane.down)
    style = _outlined(color="white", fontsize=fontsize, fontweight="bold")
    pos = {
        "left": (0.02, 0.5, "left", "center"),
        "right": (0.98, 0.5, "right", "center"),
        "top": (0.5, 0.98, "center", "top"),
        "bottom": (0.5, 0.02, "center", "bottom"),
    }
    for edge, (x, y, ha, va) in pos.items():
        ax.text(
            x, y, letters[edge], transform=ax.transAxes, ha=ha, va=va, gid=f"orient-{edge}", **style
        )
    ax.hepanav_letters = letters
    return letters


def nice_length_mm(width_mm: float) -> float:
    """A round scale-bar length close to a fifth of ``width_mm``."""
    target = width_mm / 5.0
    return float(max([v for v in _NICE_MM if v <= max(target, 1)] or [1]))


def add_scale_bar(ax, plane: Plane, length_mm: float | None = None) -> ScaleBar:
    """Draw a horizontal scale bar (bottom right) of ``length_mm`` (default: a round fifth).

    The bar is white with a black outline; its label ("20 mm", gid ``scalebar-label``)
    sits ``SCALE_LABEL_GAP_PT`` points clear above it at any figure size.
    """
    rows, cols = plane.shape
    width_mm = cols * plane.pixel_mm[1]
    length = float(length_mm or nice_length_mm(width_mm))
    length_px = length / plane.pixel_mm[1]
    x1 = cols - 0.5 - 0.05 * cols
    x0 = x1 - length_px
    y = rows - 0.5 - 0.07 * rows
    label = f"{length:g} mm"
    ax.plot(
        [x0, x1],
        [y, y],
        color="white",
        lw=SCALE_BAR_LW,
        solid_capstyle="butt",
        gid="scalebar",
        **_outlined(SCALE_BAR_OUTLINE_LW),
    )
    # The label is placed in points above the bar (not in data pixels: on a small view
    # a fraction of its rows is less than the bar's own thickness, and the two ran
    # together): half the outlined bar, the gap, half the label's outline.
    lift = SCALE_BAR_OUTLINE_LW / 2 + SCALE_LABEL_GAP_PT + SCALE_LABEL_OUTLINE_LW / 2
    ax.annotate(
        label,
        xy=((x0 + x1) / 2, y),
        xytext=(0, lift),
        textcoords="offset points",
        ha="center",
        va="bottom",
        gid="scalebar-label",
        **_outlined(SCALE_LABEL_OUTLINE_LW, color="white", fontsize=8),
    )
    bar = ScaleBar(length, length_px, label, x0, y)
    ax.hepanav_scalebar = bar
    return bar


#: LPS axis a coronal (normal along y) or sagittal (normal along x) plane is placed on.
_PLANE_AXES = ((0, "sagittal", "x"), (1, "coronal", "y"))


def _mm(value: float) -> str:
    """``+12.3`` / ``-0.5`` (one decimal, never ``-0.0``)."""
    return f"{round(float(value), 1) or 0.0:+.1f}"


def instance_label(plane: Plane) -> str | None:
    """``"DICOM instance 57"`` (the plane is that source slice) or ``"nearest DICOM
    instance 57"`` (the source slice nearest its centre), when the source was read from
    a DICOM series and the Instance Number is known (:attr:`Plane.source_instance`);
    else None. The PACS numbers a series' images by it."""
    if plane.source_instance is None:
        return None
    near = "" if plane.source_on_slice else "nearest "
    return f"{near}DICOM instance {plane.source_instance}"


def slice_label(plane: Plane) -> str:
    """A short title for an axial plane: its DICOM instance when known (``"DICOM instance
    57"``), else its position (``"z = -123.5 mm"``, LPS)."""
    return instance_label(plane) or f"z = {_mm(plane.centre[2])} mm"


def slice_caption(plane: Plane, window: tuple[float, float] | None, unit: str = "HU") -> str:
    """The text under a view: where the plane lies, window/level. The one place the
    figures of every command say where a view lies.

    Positions are physical (LPS mm), never an array index: the array's slice k counts
    along the file's third axis, from whichever end the file was stored from, while a
    PACS numbers a series' images by their DICOM Instance Number.

    - A coronal or sagittal plane (normal along LPS y or x): its name and LPS y or x
      (``coronal plane at y -0.5 mm (LPS)``).
    - An axial plane: its LPS z (``axial z = -123.5 mm (LPS)``) and, when the source was
      read from a DICOM series and its slices kept as they are, the Instance Number of
      the slice shown (``DICOM instance 57``) or, between two slices, of the nearest
      (``nearest DICOM instance 57``). Of a source whose slices are not axial (a coronal
      or sagittal stack) it is a reformat: ``axial reformat of a coronal series · z =
      -123.5 mm (LPS)``, no instance (the series' images are coronal).
    - An oblique plane (a needle view) located in a source: the LPS z of its centre
      (``oblique plane, centre z = +10.0 mm (LPS)``) and the nearest DICOM instance when
      known.
    """
    parts = []
    normal = np.abs(plane.normal)
    placed = next(((name, axis, i) for i, name, axis in _PLANE_AXES if normal[i] > 0.9999), None)
    instance = instance_label(plane)
    z = _mm(plane.centre[2])
    if placed is not None:
        name, axis, i = placed
        parts.append(f"{name} plane at {axis} {_mm(plane.centre[i])} mm (LPS)")
    elif normal[2] > 0.9999:
        if plane.source_view not in (None, "axial"):
            parts.append(f"axial reformat of a {plane.source_view} series")
            parts.append(f"z = {z} mm (LPS)")
        else:
            parts.append(f"axial z = {z} mm (LPS)")
            if instance:
                parts.append(instance)
    elif plane.table_mm is not None:
        parts.append(f"oblique plane, centre z = {z} mm (LPS)")
        if instance:
            parts.append(instance)
    if window is not None:
        parts.append(f"W {window[0]:g} / L {window[1]:g} {unit}")
    return " · ".join(parts)


def annotate_plane(
    ax,
    plane: Plane,
    *,
    title: str | None = None,
    window: tuple[float, float] | None = LIVER_WINDOW,
    unit: str = "HU",
    scale_mm: float | None = None,
) -> None:
    """Letters, scale bar, title, and the slice/table/window line under the view."""
    ax.hepanav_plane = plane  # lets tests and callers map the drawing back to LPS
    add_orientation_letters(ax, plane)
    add_scale_bar(ax, plane, scale_mm)
    ax.set_title(title if title is not None else plane.name, fontsize=10)
    caption = slice_caption(plane, window, unit)
    if caption:
        ax.set_xlabel(caption, fontsize=8)


def draw_mask(
    ax,
    plane: Plane,
    fraction: np.ndarray,
    colour: str,
    *,
    lw: float = 1.5,
    linestyle: str = "solid",
    fill_alpha: float = 0.0,
    hatch: str | None = None,
) -> bool:
    """Outline (and optionally fill or hatch) a mask resampled onto the plane (contour 0.5).

    ``hatch`` (e.g. ``"////"``) draws the inside hatched in ``colour``: a second,
    pattern-coded fill that stays distinct from a solid fill of the same colour.
    Returns False when the mask does not cut the plane.
    """
    if not np.any(fraction >= 0.5):
        return False
    rows, cols = plane.shape
    if fill_alpha > 0:
        import matplotlib.colors as mcolors

        rgba = np.zeros(fraction.shape + (4,))
        rgba[..., :3] = mcolors.to_rgb(colour)
        rgba[..., 3] = np.where(fraction >= 0.5, fill_alpha, 0.0)
        ax.imshow(
            rgba,
            extent=(-0.5, cols - 0.5, rows - 0.5, -0.5),
            aspect=plane.pixel_mm[0] / plane.pixel_mm[1],
            interpolation="nearest",
        )
    if hatch and np.any(fraction < 0.5):
        import matplotlib

        with matplotlib.rc_context({"hatch.color": colour, "hatch.linewidth": 1.2}):
            ax.contourf(fraction, levels=[0.5, 2.0], colors="none", hatches=[hatch])
    if np.any(fraction < 0.5):
        ax.contour(fraction, levels=[0.5], colors=[colour], linewidths=lw, linestyles=linestyle)
    return True


def draw_points(
    ax,
    plane: Plane,
    points_lps: np.ndarray,
    colour: str,
    *,
    slab_mm: float = 1.0,
    size: float = 6.0,
    label: str | None = None,
) -> int:
    """Scatter the LPS points within ``slab_mm`` of the plane; return how many were drawn."""
    if len(points_lps) == 0:
        return 0
    cr, dist = plane.lps_to_pixel(points_lps)
    near = np.abs(dist) <= slab_mm
    if near.any():
        ax.scatter(cr[near, 0], cr[near, 1], s=size, c=colour, lw=0, label=label)
    return int(near.sum())


def draw_crosshair(
    ax,
    plane: Plane,
    point_lps,
    colour: str,
    *,
    gap_px: float = 6.0,
    arm_px: float = 18.0,
    label: str | None = None,
) -> tuple[float, float]:
    """A crosshair with an open centre at ``point_lps`` (projected onto the plane)."""
    cr, _ = plane.lps_to_pixel(np.asarray(point_lps)[None])
    x, y = cr[0]
    kw = dict(color=colour, lw=1.6, gid="crosshair")
    for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        ax.plot(
            [x + dx * gap_px, x + dx * (gap_px + arm_px)],
            [y + dy * gap_px, y + dy * (gap_px + arm_px)],
            **kw,
        )
    if label:
        ax.plot([], [], color=colour, lw=1.6, label=label)
    return float(x), float(y)


def draw_segment(
    ax,
    plane: Plane,
    p0,
    p1,
    colour: str,
    *,
    label: str | None = None,
    lw: float = 2.0,
    linestyle: str = "solid",
    marker_end: bool = True,
) -> None:
    """Draw the LPS segment p0 -> p1 projected onto the plane (tip marked with a dot)."""
    cr, _ = plane.lps_to_pixel(np.array([p0, p1], dtype=float))
    ax.plot(cr[:, 0], cr[:, 1], color=colour, lw=lw, linestyle=linestyle, label=label)
    if marker_end:
        ax.plot(cr[1, 0], cr[1, 1], "o", color=colour, ms=4)


def _handles(items: list[tuple[str, str, str]]):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    styles = {"dashed": "--", "dotted": ":"}
    handles = []
    for kind, colour, label in items:
        if kind == "patch":
            handles.append(Patch(facecolor=colour, edgecolor="#555555", label=label))
        elif kind == "hatch":
            handles.append(Patch(facecolor="white", edgecolor=colour, hatch="////", label=label))
        elif kind == "dot":
            handles.append(Line2D([], [], marker="o", ls="", color=colour, label=label))
        elif kind == "cross":
            handles.append(
                Line2D([], [], marker="+", ms=10, mew=2, ls="", color=colour, label=label)
            )
        else:
            handles.append(
                Line2D([], [], color=colour, lw=2, ls=styles.get(kind, "-"), label=label)
            )
    return handles


def legend(
    ax, items: list[tuple[str, str, str]], *, loc: str = "upper left", fontsize: int = 8
) -> None:
    """A legend inside ``ax`` from (kind, colour, label); kind is 'line', 'dashed',
    'dotted', 'patch', 'dot' or 'cross'."""
    ax.legend(handles=_handles(items), loc=loc, fontsize=fontsize, framealpha=0.85)


def figure_legend(
    fig, items: list[tuple[str, str, str]], *, fontsize: int = 8, ncol: int | None = None
) -> None:
    """One legend for a row of views, below them (it never hides an orientation letter)."""
    fig.legend(
        handles=_handles(items),
        loc="upper center",
        bbox_to_anchor=(0.5, 0.02),
        ncol=ncol or min(len(items), 4),
        fontsize=fontsize,
        frameon=False,
    )
