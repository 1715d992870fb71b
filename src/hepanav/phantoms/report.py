"""A quick-look HTML page of an ablation case: slices through the lesions and the truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hepanav.core.report import figure_to_data_uri, new_figure, write_html

WINDOW_HU = (-160.0, 240.0)  # abdominal soft-tissue window


def _plane(
    image: sitk.Image,
    center,
    view: str,
    half_mm: float,
    step_mm: float,
    nearest: bool,
    default: float = -1000.0,
):
    """Axial or coronal plane through ``center`` (LPS mm), resampled in physical space.

    Returns a 2D array displayed radiologically: patient right on the left, anterior
    (axial) or superior (coronal) at the top.
    """
    n = int(2 * half_mm / step_mm) + 1
    cx, cy, cz = center
    if view == "axial":
        size, origin = (n, n, 1), (cx - half_mm, cy - half_mm, cz)
    else:
        size, origin = (n, 1, n), (cx - half_mm, cy, cz - half_mm)
    interp = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    default = 0.0 if nearest else default
    out = sitk.Resample(
        image,
        size,
        sitk.Transform(),
        interp,
        origin,
        (step_mm,) * 3,
        (1, 0, 0, 0, 1, 0, 0, 0, 1),
        default,
        sitk.sitkFloat32,
    )
    arr = sitk.GetArrayFromImage(out)
    return arr[0] if view == "axial" else arr[::-1, 0, :]


def slices_figure(case, half_mm: float = 60.0) -> str:
    """Pre and post CT through the tumour and zone centres with their contours; data URI."""
    fig, axes = new_figure(2, 2, figsize=(10, 10))
    rows = (
        (
            "pre",
            case.pre_ct,
            case.truth.tumor_center_pre_lps,
            ((case.pre_tumor, "red", "tumour"), (case.pre_liver, "lime", "liver")),
        ),
        (
            "post",
            case.post_ct,
            case.truth.zone_center_post_lps,
            (
                (case.post_ablation, "yellow", "ablation zone"),
                (case.truth_post_tumor, "red", "true tumour"),
                (case.post_liver, "lime", "liver"),
            ),
        ),
    )
    extent = (-half_mm, half_mm, -half_mm, half_mm)
    for r, (name, ct, center, masks) in enumerate(rows):
        for c, view in enumerate(("axial", "coronal")):
            ax = axes[r, c]
            ax.imshow(
                _plane(ct, center, view, half_mm, 0.5, False),
                cmap="gray",
                vmin=WINDOW_HU[0],
                vmax=WINDOW_HU[1],
                extent=extent,
            )
            for mask, colour, _label in masks:
                m = _plane(mask, center, view, half_mm, 0.5, True)
                if m.any():
                    ax.contour(
                        m, [0.5], colors=colour, linewidths=1.0, extent=extent, origin="upper"
                    )
            ax.set_title(f"{name} CT, {view}")
            ax.set_xlabel("mm")
        legend = ", ".join(f"{lab} ({col})" for _m, col, lab in masks)
        axes[r, 0].set_ylabel(legend, fontsize=8)
    fig.tight_layout()
    return figure_to_data_uri(fig)


def displacement_figure(case) -> str:
    """Displacement magnitude on the coronal plane through the zone; data URI."""
    field = case.displacement_post_to_pre
    mag = sitk.VectorMagnitude(field)
    center = case.truth.zone_center_post_lps
    plane = _plane(mag, center, "coronal", 150.0, 2.0, False, default=np.nan)
    fig, ax = new_figure(figsize=(6, 5))
    im = ax.imshow(plane, cmap="viridis", extent=(-150, 150, -150, 150))
    fig.colorbar(im, ax=ax, label="|displacement| (mm)")
    ax.set_title("true displacement, coronal plane through the zone")
    ax.set_xlabel("mm")
    return figure_to_data_uri(fig)


def _grid(image: sitk.Image) -> str:
    size = " x ".join(str(n) for n in image.GetSize())
    spacing = " x ".join(f"{s:.2f}" for s in image.GetSpacing())
    return f"{size} voxels of {spacing} mm"


def write_case_report(case, description, path: str | Path) -> Path:
    """Write ``case.html`` for a built case (``CaseData``) and its ``AblationCase``."""
    shift = np.linalg.norm(case.landmarks_post - case.landmarks_pre, axis=1)
    figures = [
        {
            "uri": slices_figure(case),
            "caption": "Pre scan through the tumour centre and post scan through the zone "
            "centre (abdominal window). Contours: voxel masks of the case.",
        }
    ]
    figures.append(
        {
            "uri": displacement_figure(case),
            "caption": "Magnitude of the known post-to-pre displacement.",
        }
    )
    return write_html(
        path,
        "hepanav.phantoms",
        "phantom_case.html.j2",
        title="HepaNav ablation case",
        case=description,
        truth=case.truth,
        figures=figures,
        pre_grid=_grid(case.pre_ct),
        post_grid=_grid(case.post_ct),
        n_landmarks=len(shift),
        landmark_shift=float(shift.mean()),
    )
