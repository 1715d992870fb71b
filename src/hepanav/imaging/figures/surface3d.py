"""3D views of a surface coloured by a scalar inside a translucent second surface.

Static: matplotlib's ``mpl_toolkits.mplot3d`` (a PNG for the report and for print).
Interactive: :func:`interactive_html` returns a self-contained HTML fragment (a
``<canvas>`` and a small inline script, no network and no build step) that draws
the meshes with flat shading and the painter's algorithm and turns them with the
mouse. Colours are computed here (viridis/cividis), so the page needs no colour
maps of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

import numpy as np


@dataclass
class SurfaceLayer:
    """One triangle mesh in LPS mm with either a scalar per vertex or one colour.

    ``vertices`` (N, 3) LPS mm, ``faces`` (M, 3) vertex indices, ``scalar`` (N,)
    or None, ``colour`` a matplotlib colour used when ``scalar`` is None,
    ``opacity`` in (0, 1].
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    scalar: np.ndarray | None = None
    colour: str = "#999999"
    opacity: float = 1.0


def decimate(vertices: np.ndarray, faces: np.ndarray, max_faces: int, scalar=None):
    """Reduce a mesh to about ``max_faces`` faces by vertex clustering on a cubic grid.

    Clustering (Rossignac & Borrel 1993) keeps the shape to within one cell; the
    scalar of a cluster is its minimum (a worst margin must not disappear from the
    picture). Returns (vertices, faces, scalar).
    """
    if len(faces) <= max_faces:
        return vertices, faces, scalar
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    cell = float(np.max(hi - lo)) / 8.0
    for _ in range(40):
        keys = np.floor((vertices - lo) / cell).astype(np.int64)
        _, cluster = np.unique(keys, axis=0, return_inverse=True)
        cluster = cluster.ravel()
        f = cluster[faces]
        keep = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
        if keep.sum() <= max_faces:
            break
        cell *= 1.25
    n = int(cluster.max()) + 1
    counts = np.bincount(cluster, minlength=n)[:, None]
    verts = np.zeros((n, 3))
    np.add.at(verts, cluster, vertices)
    verts /= np.maximum(counts, 1)
    out_scalar = None
    if scalar is not None:
        out_scalar = np.full(n, np.inf)
        np.minimum.at(out_scalar, cluster, scalar)
    fk = f[keep]
    return verts, fk, out_scalar


def colormap(cmap):
    """A matplotlib colour map from its name, or the map itself (e.g. a ListedColormap)."""
    import matplotlib

    return matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap


def face_colours(layer: SurfaceLayer, cmap, vmin: float, vmax: float) -> np.ndarray:
    """RGBA per face (M, 4): the colour of the face's smallest vertex scalar, or the fixed colour.

    The smallest (not the mean) vertex value colours a face, so that a thin band of a
    low value (e.g. a residual tumour rim) is not averaged away.
    """
    import matplotlib.colors as mcolors

    if layer.scalar is None:
        rgba = np.tile(mcolors.to_rgba(layer.colour), (len(layer.faces), 1))
    else:
        values = layer.scalar[layer.faces].min(axis=1)
        norm = mcolors.Normalize(vmin=vmin, vmax=vmax, clip=True)
        rgba = colormap(cmap)(norm(values))
    rgba[:, 3] = layer.opacity
    return rgba


#: Most tick intervals on each axis of the static 3D view (matplotlib MaxNLocator).
MAX_3D_TICKS = 4


def static_figure(
    layers: list[SurfaceLayer],
    *,
    cmap="viridis",
    vmin: float = -5.0,
    vmax: float = 10.0,
    scalar_label: str = "margin (mm)",
    scalar_ticks: list[float] | None = None,
    markers: list[tuple[np.ndarray, str, str]] | None = None,
    views: tuple[tuple[float, float], ...] = ((20.0, -60.0), (20.0, 120.0)),
    max_faces: int = 4000,
):
    """Matplotlib figure with one 3D axes per (elevation, azimuth) view.

    Axes are labelled with the patient direction their values grow toward (LPS mm:
    "+x = left", "+y = posterior", "+z = superior"; a direction arrow would read wrong
    in a view from behind, where the x values decrease from left to right on screen);
    ``markers`` = [(point LPS, colour, label)] are drawn as large dots. Each axis has at
    most ``MAX_3D_TICKS`` + 1 ticks (a 6 pt label per 5 mm ran together); keep
    ``scalar_label`` short (a category legend belongs in the caption) and give
    ``scalar_ticks`` (e.g. band edges) to mark the colour bar there. Returns the
    figure (encode it with :func:`hepanav.core.report.figure_to_data_uri`).
    """
    from matplotlib.ticker import MaxNLocator
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    from hepanav.core.report import new_figure

    fig, _ = new_figure(figsize=(5.2 * len(views) + 1.0, 5.0))
    fig.clf()
    all_pts = np.concatenate([lay.vertices for lay in layers])
    lo, hi = all_pts.min(axis=0), all_pts.max(axis=0)
    mid, half = (lo + hi) / 2, float(np.max(hi - lo)) / 2 * 1.05
    scalar_mappable = None
    for k, (elev, azim) in enumerate(views):
        ax = fig.add_subplot(1, len(views), k + 1, projection="3d", computed_zorder=False)
        # translucent layers last so that the opaque surface shows through them
        for layer in sorted(layers, key=lambda lay: -lay.opacity):
            v, f, s = decimate(layer.vertices, layer.faces, max_faces, layer.scalar)
            drawn = SurfaceLayer(layer.name, v, f, s, layer.colour, layer.opacity)
            poly = Poly3DCollection(
                v[f],
                facecolors=face_colours(drawn, cmap, vmin, vmax),
                edgecolors="none",
                linewidths=0,
            )
            ax.add_collection3d(poly)
        for point, colour, label in markers or []:
            ax.scatter(
                *np.asarray(point)[:, None],
                s=60,
                c=colour,
                edgecolors="black",
                depthshade=False,
                label=label,
            )
        ax.set_xlim(mid[0] - half, mid[0] + half)
        ax.set_ylim(mid[1] - half, mid[1] + half)
        ax.set_zlim(mid[2] - half, mid[2] + half)
        ax.set_box_aspect((1, 1, 1))
        ax.view_init(elev=elev, azim=azim)
        ax.set_xlabel("x mm (+x = left)", fontsize=8)
        ax.set_ylabel("y mm (+y = posterior)", fontsize=8)
        ax.set_zlabel("z mm (+z = superior)", fontsize=8)
        ax.tick_params(labelsize=6)
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
            axis.set_major_locator(MaxNLocator(nbins=MAX_3D_TICKS))
        if markers and k == 0:
            ax.legend(fontsize=7, loc="upper left")
    import matplotlib
    import matplotlib.colors as mcolors

    scalar_mappable = matplotlib.cm.ScalarMappable(
        norm=mcolors.Normalize(vmin=vmin, vmax=vmax), cmap=colormap(cmap)
    )
    fig.colorbar(
        scalar_mappable,
        ax=fig.axes,
        shrink=0.6,
        label=scalar_label,
        pad=0.08,
        ticks=scalar_ticks,
    )
    return fig


def mesh_payload(
    layers: list[SurfaceLayer],
    *,
    cmap="viridis",
    vmin: float = -5.0,
    vmax: float = 10.0,
    max_faces: int = 6000,
) -> dict:
    """The JSON document the interactive viewer draws (coordinates rounded to 0.1 mm)."""
    out = []
    for layer in layers:
        v, f, s = decimate(layer.vertices, layer.faces, max_faces, layer.scalar)
        drawn = SurfaceLayer(layer.name, v, f, s, layer.colour, layer.opacity)
        rgb = (face_colours(drawn, cmap, vmin, vmax)[:, :3] * 255).round().astype(int)
        out.append(
            {
                "name": layer.name,
                "opacity": float(layer.opacity),
                "vertices": np.round(v, 1).ravel().tolist(),
                "faces": f.astype(int).ravel().tolist(),
                "colours": rgb.ravel().tolist(),
            }
        )
    return {"layers": out}


def colourbar_css(cmap, vmin: float, vmax: float, steps: int = 12) -> str:
    """A CSS linear-gradient of ``cmap`` (for the legend beside the interactive view).

    A ``ListedColormap`` with few colours (bands) gets hard stops between its bands.
    """
    import matplotlib.colors as mcolors

    cm = colormap(cmap)
    if isinstance(cm, mcolors.ListedColormap) and cm.N <= 16:
        stops = []
        for k in range(cm.N):
            colour = mcolors.to_hex(cm(k / max(cm.N - 1, 1)))
            stops += [f"{colour} {100 * k / cm.N:.1f}%", f"{colour} {100 * (k + 1) / cm.N:.1f}%"]
    else:
        stops = [mcolors.to_hex(cm(t)) + f" {100 * t:.0f}%" for t in np.linspace(0, 1, steps)]
    return "linear-gradient(to right, " + ", ".join(stops) + ")"


def interactive_html(
    layers: list[SurfaceLayer],
    *,
    element_id: str = "view3d",
    cmap="viridis",
    vmin: float = -5.0,
    vmax: float = 10.0,
    scalar_label: str = "margin (mm)",
    markers: list[tuple[np.ndarray, str, str]] | None = None,
    width: int = 640,
    height: int = 480,
) -> str:
    """Self-contained HTML fragment: a rotatable 3D view of ``layers`` (no network).

    Drag to turn, wheel to zoom. The legend lists the layers and the colour bar of
    the scalar (``cmap`` from ``vmin`` to ``vmax``). The result is markup to insert
    unescaped (``markupsafe.Markup``) into a report template.
    """
    from markupsafe import Markup, escape

    payload = mesh_payload(layers, cmap=cmap, vmin=vmin, vmax=vmax)
    payload["markers"] = [
        {"p": [round(float(c), 1) for c in np.asarray(p)], "colour": colour, "label": label}
        for p, colour, label in markers or []
    ]
    script = (
        resources.files("hepanav.imaging.figures")
        .joinpath("mesh_viewer.js")
        .read_text(encoding="utf-8")
    )
    data = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    legend_items = "".join(
        f'<span class="mv-item" style="margin-right:1em"><span class="mv-swatch" '
        f'style="display:inline-block;width:14px;height:10px;margin-right:4px;background:'
        f"{escape(lay.colour) if lay.scalar is None else colourbar_css(cmap, vmin, vmax)};"
        f'opacity:{max(lay.opacity, 0.4):.2f}"></span>{escape(lay.name)}</span>'
        for lay in layers
    ) + "".join(
        f'<span class="mv-item" style="margin-right:1em"><span class="mv-swatch mv-dot" '
        f'style="display:inline-block;width:10px;height:10px;border-radius:5px;'
        f"margin-right:4px;background:"
        f'{escape(colour)}"></span>{escape(label)}</span>'
        for _, colour, label in markers or []
    )
    eid = escape(element_id)
    return Markup(
        f'<div class="meshview" id="{eid}" style="max-width:{width}px">'
        f'<canvas width="{width}" height="{height}" style="width:100%;background:#111;'
        f'border-radius:4px;cursor:grab" aria-label="interactive 3D view"></canvas>'
        f'<div class="mv-legend" style="font-size:.8rem">{legend_items}'
        f'<div>{escape(scalar_label)}: <span style="display:inline-block;width:180px;height:10px;'
        f'vertical-align:middle;background:{colourbar_css(cmap, vmin, vmax)}"></span> '
        f"{vmin:g} \u2026 {vmax:g}</div>"
        f"<div>Drag to turn, wheel to zoom, double-click to reset. Axes: "
        f'<span style="color:#d55e00">L</span> <span style="color:#009e73">P</span> '
        f'<span style="color:#56b4e9">S</span> (LPS).</div></div>'
        f'<script type="application/json" class="mv-data">{data}</script>'
        f"<script>{script}\nhepanavMeshView({json.dumps(element_id)});</script></div>"
    )
