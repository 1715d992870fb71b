"""The HTML report beside each mask: the contour on the CT through the seed (several
lesions: through each lesion's own seed) and on every k-th axial slice through the whole
mask, drawn with the shared figure toolkit."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hepanav.core.report import figure_to_data_uri, new_figure, write_html
from hepanav.imaging.dicom_series import instance_numbers
from hepanav.imaging.figures import (
    LIVER_WINDOW,
    AxialLevels,
    Plane,
    annotate_plane,
    axial_levels,
    draw_mask,
    figure_legend,
    resample_mask_to_plane,
    resample_to_plane,
    show_plane,
    slice_label,
    standard_plane,
)
from hepanav.segmentation.result import Segmentation
from hepanav.segmentation.schema import SegmentationResult

TITLES = {"tumor": "Tumour", "ablation": "Ablation zone", "liver": "Liver"}
CONTOUR = "#E69F00"  # Okabe-Ito orange
SEED = "#56B4E9"  # Okabe-Ito sky blue
EXCLUDE = "#D55E00"  # Okabe-Ito vermillion
OTHER = "#009E73"  # Okabe-Ito bluish green: another lesion's contour, dashed
#: At most this many axial slices in the montage; beyond, every k-th slice is shown.
MAX_MONTAGE = 16
MONTAGE_COLS = 4
# Margin around the mask in the views, mm (the liver needs less: it fills the view).
_PAD_MM = {"tumor": 15.0, "ablation": 15.0, "liver": 10.0}


@dataclass
class Montage:
    """What the axial montage shows: axial planes at table positions ``shown_z`` (LPS z,
    mm) of the ``count`` levels the mask spans (``first_z``..``last_z``), every
    ``step``-th, ``spacing_mm`` apart (:func:`hepanav.imaging.figures.axial_levels`).

    A CT with axial slices: ``shown`` are the 1-based CT slice numbers (array order) of
    those levels and ``first``..``last`` the first and last slice the mask touches;
    ``shown_instances``, ``first_instance`` and ``last_instance`` their DICOM Instance
    Numbers (what the PACS shows) when the CT was read from a DICOM series with its slices
    kept as they are (:func:`hepanav.imaging.dicom_series.instance_numbers`), else None.
    A CT whose slices are not axial (``view`` "coronal", "sagittal" or "oblique"):
    ``shown`` is empty and ``first``/``last`` are None: the planes are reformats, not CT
    slices."""

    uri: str
    shown: list[int]
    first: int | None
    last: int | None
    step: int
    spacing_mm: float
    shown_z: list[float]
    first_z: float | None
    last_z: float | None
    count: int
    view: str
    shown_instances: list[int | None] = field(default_factory=list)
    first_instance: int | None = None
    last_instance: int | None = None

    @property
    def axial(self) -> bool:
        """The CT's slices are axial: the montage shows CT slices."""
        return self.view == "axial"


@dataclass
class LesionViews:
    """The three planes through lesion ``number`` (1-based, of ``of``): through seed
    ``seed_number`` (1-based, as the report's seed rows; None: through the centroid of
    the lesion's voxels, its seed not found), PNG data URI, window (width, level) HU."""

    number: int
    of: int
    seed_number: int | None
    seed_label: str | None
    uri: str
    window: tuple[float, float]


def write_report(result: SegmentationResult, seg: Segmentation, ct: sitk.Image, path: Path) -> Path:
    """Write the segmentation report (HTML, figures inline) atomically; return its path.

    One lesion (or the liver): one row of three planes through seed 1. Several lesions:
    a row per lesion through its own seed (:func:`lesion_axes`)."""
    window = view_window(seg)
    several = len(seg.lesions) > 1 and seg.lesion_map is not None
    return write_html(
        path,
        "hepanav.segmentation",
        "segmentation.html.j2",
        title=f"{TITLES[result.structure]} segmentation",
        result=result,
        figure=None if several else slices_figure(seg, ct),
        lesion_views=lesion_figures(seg, ct) if several else [],
        montage=montage_figure(seg, ct),
        window=window,
    )


def view_window(seg: Segmentation, parenchyma_hu: float | None = None) -> tuple[float, float]:
    """(width, level) HU of a view: 400 HU wide, centred on the parenchyma when known
    (``parenchyma_hu``, a lesion's own, else ``seg.parenchyma_hu``, lesion 1's)."""
    hu = seg.parenchyma_hu if parenchyma_hu is None else parenchyma_hu
    if hu is None:
        return LIVER_WINDOW
    return (LIVER_WINDOW[0], float(round(hu)))


def _mask_box(seg: Segmentation, ct: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """LPS bounding box (lo, hi) of the mask's voxel centres and the seeds, mm."""
    return _box(seg.mask, [s.lps for s in seg.seeds])


def _box(mask: sitk.Image, points) -> tuple[np.ndarray, np.ndarray]:
    """LPS bounding box (lo, hi) of the non-zero voxel centres of ``mask`` (any grid,
    e.g. a sub-box of the CT's) and the LPS ``points``, mm."""
    mask = sitk.Cast(mask > 0, sitk.sitkUInt8)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    pts = [np.asarray(p, dtype=float) for p in points]
    if stats.HasLabel(1):
        x0, y0, z0, nx, ny, nz = stats.GetBoundingBox(1)
        for i in (x0, x0 + nx - 1):
            for j in (y0, y0 + ny - 1):
                for k in (z0, z0 + nz - 1):
                    pts.append(np.asarray(mask.TransformIndexToPhysicalPoint((i, j, k))))
    pts = np.asarray(pts)
    return pts.min(axis=0), pts.max(axis=0)


def _pixel_mm(seg: Segmentation, ct: sitk.Image) -> float:
    return max(float(min(ct.GetSpacing())), 0.7 if seg.structure != "liver" else 1.5)


def _draw_view(
    ax, plane: Plane, seg, ct, window, title, *, slab_mm: float, mask=None, others=None
) -> bool:
    """CT, contour and the seeds within ``slab_mm`` of the plane, with the toolkit's
    letters, scale bar and position/window caption; True when the mask cuts it.

    ``mask`` (default ``seg.mask``) is drawn solid orange; ``others`` (the other
    lesions' voxels, any grid), when given, dashed bluish green; ``ax.hepanav_others``
    says whether they cut the plane."""
    show_plane(ax, plane, resample_to_plane(ct, plane, default_value=-1000.0), window=window)
    if others is not None:
        ax.hepanav_others = draw_mask(
            ax, plane, resample_mask_to_plane(others, plane), OTHER, lw=1.4, linestyle="dashed"
        )
    mask = seg.mask if mask is None else mask
    cut = draw_mask(ax, plane, resample_mask_to_plane(mask, plane), CONTOUR, lw=1.6)
    for seeds, colour in ((seg.seeds, SEED), (seg.include, SEED), (seg.exclude, EXCLUDE)):
        if not seeds:
            continue
        cr, dist = plane.lps_to_pixel(np.asarray([s.lps for s in seeds], dtype=float))
        near = np.abs(dist) <= slab_mm
        if near.any():
            ax.plot(cr[near, 0], cr[near, 1], "+", color=colour, ms=14, mew=2.2, gid="seed")
    annotate_plane(ax, plane, title=title, window=window)
    ax.xaxis.label.set_fontsize(7)
    return cut


def slices_figure(seg: Segmentation, ct: sitk.Image) -> str:
    """:func:`slices_axes` as a PNG data URI."""
    return figure_to_data_uri(slices_axes(seg, ct))


def slices_axes(seg: Segmentation, ct: sitk.Image):
    """Axial, coronal and sagittal planes through the first seed: CT, contour, seeds.

    Resampled in physical space (SimpleITK) onto LPS-aligned planes of the figure
    toolkit, radiological convention, each with orientation letters, a scale bar, where
    it lies (CT slice and table z for the axial view, LPS y/x for the others) and the
    window/level.
    """
    lo, hi = _mask_box(seg, ct)
    pad = _PAD_MM[seg.structure]
    seed = np.asarray(seg.seeds[0].lps, dtype=float)
    # planes around the mask (and the CT's z extent, no wider), centred on the seed so
    # the seed sits on all three
    half = np.maximum(np.abs(hi - seed), np.abs(seed - lo)) + pad
    half_xy = float(max(half[0], half[1]))
    half_z = float(min(half[2], half_xy))
    window = view_window(seg)
    fig, axes = new_figure(1, 3, figsize=(13, 4.9))
    px = _pixel_mm(seg, ct)
    for ax, view in zip(axes, ("axial", "coronal", "sagittal"), strict=True):
        size = (2 * half_xy, 2 * half_xy) if view == "axial" else (2 * half_z, 2 * half_xy)
        plane = standard_plane(ct, view, seed, size_mm=size, pixel_mm=px)
        _draw_view(ax, plane, seg, ct, window, f"{view} through seed 1", slab_mm=px)
    figure_legend(
        fig,
        [("line", CONTOUR, "contour of the mask"), ("cross", SEED, "seed")]
        + ([("cross", EXCLUDE, "exclude point")] if seg.exclude else []),
    )
    fig.tight_layout()
    return fig


def lesion_figures(seg: Segmentation, ct: sitk.Image) -> list[LesionViews]:
    """:func:`lesion_axes` of every lesion as PNG data URIs, in the order of ``seg.lesions``."""
    out = []
    for n in range(1, len(seg.lesions) + 1):
        fig, seed_number, label, window = lesion_axes(seg, ct, n)
        out.append(
            LesionViews(n, len(seg.lesions), seed_number, label, figure_to_data_uri(fig), window)
        )
    return out


def lesion_seed(seg: Segmentation, n: int):
    """Where lesion ``n`` (1-based) is viewed from: ``(lps, seed_number, label)`` of the
    seed that started it (``seg.lesions[n - 1]["seeds"][0]``; a zone click moved off gas:
    the moved point), ``seed_number`` 1-based in ``seg.seeds``; when that seed is not
    found (never expected), the centroid of the lesion's voxels with ``None, None``.

    Raises
    ------
    ValueError
        ``n`` out of range, or no seed and no voxel of that lesion.
    """
    if not 1 <= n <= len(seg.lesions):
        raise ValueError(f"lesion {n} of {len(seg.lesions)}")
    first = (seg.lesions[n - 1].get("seeds") or [None])[0]
    for m, s in enumerate(seg.seeds, 1):
        if s.label == first:
            return np.asarray(s.lps, dtype=float), m, s.label
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(seg.lesion_map == n, sitk.sitkUInt8))
    if not stats.HasLabel(1):
        raise ValueError(f"lesion {n} has no seed and no voxel to show")
    return np.asarray(stats.GetCentroid(1), dtype=float), None, None


def lesion_axes(seg: Segmentation, ct: sitk.Image, n: int):
    """Axial, coronal and sagittal planes through lesion ``n``'s own seed (1-based;
    :func:`lesion_seed`), cropped to that lesion's voxels (``seg.lesion_map``) plus the
    margin: its contour solid orange, any other lesion cutting the plane dashed bluish
    green, the seeds; titled ``lesion n/N``, with the toolkit's letters, scale bar,
    position (LPS mm, DICOM instance) and window/level (W 400, L = the lesion's own
    parenchyma HU).

    Returns ``(figure, seed_number, seed_label, window)`` (seed_number 1-based in
    ``seg.seeds``, None with the label when viewed through the centroid).

    Raises
    ------
    ValueError
        No ``seg.lesion_map`` (not a tumour/zone from :mod:`hepanav.segmentation.multi`),
        or ``n`` out of range.
    """
    if seg.lesion_map is None:
        raise ValueError("no lesion map: not a tumour or zone segmented per lesion")
    centre, seed_number, label = lesion_seed(seg, n)
    record = seg.lesions[n - 1]
    own = sitk.Cast(seg.lesion_map == n, sitk.sitkUInt8)
    others = sitk.Cast((seg.lesion_map > 0) * (seg.lesion_map != n), sitk.sitkUInt8)
    lo, hi = _box(own, [centre])
    pad = _PAD_MM[seg.structure]
    half = np.maximum(np.abs(hi - centre), np.abs(centre - lo)) + pad
    half_xy = float(max(half[0], half[1]))
    half_z = float(min(half[2], half_xy))
    window = view_window(seg, record.get("parenchyma_hu"))
    through = f"seed {seed_number}" if seed_number is not None else "its centroid"
    of = len(seg.lesions)
    fig, axes = new_figure(1, 3, figsize=(13, 4.9))
    px = _pixel_mm(seg, ct)
    other_cut = False
    for ax, view in zip(axes, ("axial", "coronal", "sagittal"), strict=True):
        size = (2 * half_xy, 2 * half_xy) if view == "axial" else (2 * half_z, 2 * half_xy)
        plane = standard_plane(ct, view, centre, size_mm=size, pixel_mm=px)
        title = f"lesion {n}/{of}: {view} through {through}"
        _draw_view(ax, plane, seg, ct, window, title, slab_mm=px, mask=own, others=others)
        ax.hepanav_lesion = n
        other_cut |= bool(ax.hepanav_others)
    figure_legend(
        fig,
        [("line", CONTOUR, f"contour of lesion {n}"), ("cross", SEED, "seed")]
        + ([("dashed", OTHER, "contour of another lesion")] if other_cut else [])
        + ([("cross", EXCLUDE, "exclude point")] if seg.exclude else []),
    )
    fig.tight_layout()
    return fig, seed_number, label, window


def montage_levels(seg: Segmentation, ct: sitk.Image) -> tuple[AxialLevels, list[int], int]:
    """The axial levels of the mask (:func:`hepanav.imaging.figures.axial_levels` on the
    CT's sampling), the indices (0-based, into ``levels.z_mm``) of those shown and the
    step: every level when the mask spans at most :data:`MAX_MONTAGE`, else every k-th
    (first and last included)."""
    levels = axial_levels(seg.mask, ct)
    n = len(levels.z_mm)
    if n == 0:
        return levels, [], 1
    step = max(1, math.ceil((n - 1) / (MAX_MONTAGE - 1))) if n > MAX_MONTAGE else 1
    shown = list(range(0, n, step))
    if shown[-1] != n - 1:
        shown.append(n - 1)
    return levels, shown, step


def montage_slices(seg: Segmentation, ct: sitk.Image) -> tuple[list[int], int, int, int]:
    """0-based CT slice indices for the montage of a CT with axial slices, the first and
    last slice the mask touches, and the step (:func:`montage_levels`).

    Raises
    ------
    ValueError
        The CT's slices are not axial (its slice numbers are not table positions; use
        :func:`montage_levels`).
    """
    levels, shown, step = montage_levels(seg, ct)
    if levels.slices is None:
        raise ValueError(f"the CT's slices are {levels.view}, not axial")
    if not shown:
        return [], -1, -1, 1
    return [levels.slices[i] for i in shown], levels.slices[0], levels.slices[-1], step


def montage_figure(seg: Segmentation, ct: sitk.Image) -> Montage:
    """:func:`montage_axes` as a PNG data URI with what it shows."""
    fig, levels, shown, step = montage_axes(seg, ct)
    uri = figure_to_data_uri(fig, dpi=72) if fig is not None else ""
    z = levels.z_mm
    slices = levels.slices
    numbers = instance_numbers(ct) if slices else None
    instances = [numbers[k] for k in slices] if numbers is not None else []
    return Montage(
        uri=uri,
        shown=[slices[i] + 1 for i in shown] if slices is not None else [],
        first=slices[0] + 1 if slices else None,
        last=slices[-1] + 1 if slices else None,
        step=step,
        spacing_mm=levels.step_mm,
        shown_z=[z[i] for i in shown],
        first_z=z[0] if z else None,
        last_z=z[-1] if z else None,
        count=len(z),
        view=levels.view,
        shown_instances=[instances[i] for i in shown] if instances else [],
        first_instance=instances[0] if instances else None,
        last_instance=instances[-1] if instances else None,
    )


def montage_axes(seg: Segmentation, ct: sitk.Image):
    """The contour on the axial plane through every (or every k-th) level of table z
    the mask spans (:func:`montage_levels`).

    Each view is an axial plane resampled in physical space (any direction matrix is
    shown in radiological convention): with axial CT slices, through the centre of one
    CT slice, titled with its DICOM instance when known, else its z, and captioned
    "axial z = -123.5 mm (LPS) · DICOM instance 57"; with coronal, sagittal or oblique
    CT slices, a reformat at one level of the CT's sampling along z, titled with its z
    and captioned "axial reformat of a coronal series · z = ... mm (LPS)"
    (:func:`hepanav.imaging.figures.slice_caption`). Cropped to the mask plus a
    margin, with the window/level. Returns ``(figure, levels, shown, step)``: the figure
    (None for an empty mask), :class:`hepanav.imaging.figures.AxialLevels`, the indices
    of the levels shown and the step.
    """
    levels, shown, step = montage_levels(seg, ct)
    if not shown:
        return None, levels, shown, step
    lo, hi = _mask_box(seg, ct)
    pad = _PAD_MM[seg.structure]
    centre = (lo + hi) / 2.0
    side = float(max(hi[0] - lo[0], hi[1] - lo[1]) + 2 * pad)
    px = _pixel_mm(seg, ct)
    window = view_window(seg)
    rows = math.ceil(len(shown) / MONTAGE_COLS)
    fig, axes = new_figure(
        rows, MONTAGE_COLS, figsize=(3.3 * MONTAGE_COLS, 3.7 * rows), squeeze=False
    )
    for ax, i in zip(axes.ravel(), shown, strict=False):
        z = levels.z_mm[i]
        plane = standard_plane(ct, "axial", (centre[0], centre[1], z), size_mm=side, pixel_mm=px)
        title = slice_label(plane)
        # slab: half the sampling along z, so a seed is drawn on its own level only
        _draw_view(ax, plane, seg, ct, window, title, slab_mm=levels.step_mm / 2)
        # The montage is shown at about a third of the 3-plane figure's scale per view:
        # a caption legible there (tester: 7 pt read as ~6 px) needs a larger font, and
        # two lines so that neighbouring captions do not run into each other.
        caption = ax.xaxis.label.get_text()
        ax.set_xlabel(caption.replace(" · ", "\n", 1), fontsize=10, linespacing=1.3)
    for ax in axes.ravel()[len(shown) :]:
        ax.axis("off")
    fig.tight_layout(h_pad=3.0)  # room for the two-line captions above the next row
    return fig, levels, shown, step
