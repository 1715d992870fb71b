"""The HTML report beside each mask: three slices through the seed with the contour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hepanav.core.report import figure_to_data_uri, new_figure, write_html
from hepanav.segmentation.result import Segmentation
from hepanav.segmentation.schema import SegmentationResult

TITLES = {"tumor": "Tumour", "ablation": "Ablation zone", "liver": "Liver"}
CONTOUR = "#E69F00"  # Okabe-Ito orange
SEED = "#56B4E9"  # Okabe-Ito sky blue
EXCLUDE = "#D55E00"  # Okabe-Ito vermillion


def write_report(result: SegmentationResult, seg: Segmentation, ct: sitk.Image, path: Path) -> Path:
    """Write the segmentation report (HTML, figure inline) atomically; return its path."""
    return write_html(
        path,
        "hepanav.segmentation",
        "segmentation.html.j2",
        title=f"{TITLES[result.structure]} segmentation",
        result=result,
        figure=slices_figure(seg, ct),
    )


def _view_grid(seg: Segmentation, ct: sitk.Image) -> sitk.Image:
    """Axis-aligned LPS grid (identity direction) around the mask and seeds, ~1 mm voxels."""
    arr = sitk.GetArrayViewFromImage(seg.mask)
    k, j, i = np.nonzero(arr[::2, ::2, ::2]) if arr.size > 4e6 else np.nonzero(arr)
    step = 2 if arr.size > 4e6 else 1
    idx = np.column_stack([i, j, k]) * step
    sample = idx[:: max(1, len(idx) // 5000)]
    pts = [ct.TransformContinuousIndexToPhysicalPoint(tuple(map(float, p))) for p in sample]
    pts += [s.lps for s in seg.seeds]
    pts = np.asarray(pts)
    pad = 15.0 if seg.structure != "liver" else 10.0
    lo, hi = pts.min(axis=0) - pad, pts.max(axis=0) + pad
    spacing = max(float(min(ct.GetSpacing())), 0.7 if seg.structure != "liver" else 1.5)
    size = np.ceil((hi - lo) / spacing).astype(int) + 1
    ref = sitk.Image([int(v) for v in size], sitk.sitkFloat32)
    ref.SetSpacing([spacing] * 3)
    ref.SetOrigin(tuple(lo))
    return ref


def slices_figure(seg: Segmentation, ct: sitk.Image) -> str:
    """Axial, coronal and sagittal slices through the first seed: CT, contour, seeds.

    Resampled in physical space onto an LPS-aligned grid, shown in radiological
    convention (patient right on the image left) with orientation letters and a
    10 mm scale bar.
    """
    ref = _view_grid(seg, ct)
    img = sitk.GetArrayFromImage(
        sitk.Resample(ct, ref, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
    )
    msk = sitk.GetArrayFromImage(
        sitk.Resample(seg.mask, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    )
    seed = np.rint(ref.TransformPhysicalPointToContinuousIndex(seg.seeds[0].lps)).astype(int)
    seed = np.clip(seed, 0, np.asarray(ref.GetSize()) - 1)
    sp = ref.GetSpacing()[0]
    level = seg.parenchyma_hu if seg.parenchyma_hu is not None else 60.0
    vmin, vmax = level - 200, level + 200
    fig, axes = new_figure(1, 3, figsize=(13, 4.8))
    views = (
        ("axial", img[seed[2]], msk[seed[2]], (seed[0], seed[1]), "upper", ("R", "L", "A", "P")),
        (
            "coronal",
            img[:, seed[1], :],
            msk[:, seed[1], :],
            (seed[0], seed[2]),
            "lower",
            ("R", "L", "S", "I"),
        ),
        (
            "sagittal",
            img[:, :, seed[0]],
            msk[:, :, seed[0]],
            (seed[1], seed[2]),
            "lower",
            ("A", "P", "S", "I"),
        ),
    )
    for ax, view in zip(axes, views, strict=True):
        name, im, m, (u, v), origin, (left, right, top, bottom) = view
        ax.imshow(im, cmap="gray", vmin=vmin, vmax=vmax, origin=origin, interpolation="nearest")
        if m.any():
            ax.contour(m, [0.5], colors=CONTOUR, linewidths=1.6, origin=origin)
        ax.plot([u], [v], marker="+", color=SEED, markersize=16, mew=2.5)
        h, w = im.shape
        for text, (x, y) in (
            (left, (0.02, 0.5)),
            (right, (0.98, 0.5)),
            (top, (0.5, 0.97)),
            (bottom, (0.5, 0.03)),
        ):
            ax.text(
                x,
                y,
                text,
                transform=ax.transAxes,
                color="white",
                ha="center",
                va="center",
                fontsize=12,
                fontweight="bold",
            )
        bar = 10.0 / sp
        y0 = h * (0.06 if origin == "lower" else 0.94)
        ax.plot([w * 0.05, w * 0.05 + bar], [y0, y0], color="white", lw=3)
        ax.text(
            w * 0.05 + bar / 2,
            y0 + (h * 0.04 if origin == "lower" else -h * 0.04),
            "10 mm",
            color="white",
            ha="center",
            fontsize=9,
        )
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    return figure_to_data_uri(fig)
