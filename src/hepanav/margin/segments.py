"""Masks of a margin result on the ablation-zone (post CT) grid, for DICOM SEG export.

Written by the pipeline as ``OUT/segments/*.nii.gz`` so that ``hepanav dicom export``
can turn any margin result folder into a SEG without recomputing anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

from hepanav.imaging import lps_to_voxel, physical_extent, write_image
from hepanav.imaging.resample import resample_mask_like
from hepanav.margin.schema import SAFE_MARGIN_MM

if TYPE_CHECKING:
    from hepanav.margin.pipeline import MarginRun

SEGMENTS_DIR = "segments"
REGISTRATION_FILE = "post_to_pre.h5"
# File stem -> segment label, in SEG segment-number order.
SEGMENT_FILES = {
    "tumor_post": "Tumour (in post-procedure space)",
    "ablation_zone": "Ablation zone",
    "residual_tumor": "Residual tumour outside the zone",
    "margin_0_5mm_surface": "Tumour surface with margin 0-5 mm",
}


def margin_segments(run: MarginRun) -> dict[str, sitk.Image]:
    """uint8 0/1 masks on the ablation-zone grid (LPS mm), keyed like ``SEGMENT_FILES``.

    - ``tumor_post``: the tumour mask mapped into post space through the registration
      (pre/post mode) or resampled in physical space (one space), as a linearly
      interpolated fraction thresholded at 0.5 (``resample_mask_like``);
    - ``ablation_zone``: the zone mask as read;
    - ``residual_tumor``: the measurement's residual (tumour mask voxel boxes outside the
      zone mask's voxel boxes, on the analysis grid's sub-voxels) rasterised to the zone
      grid: a voxel is residual when at least half of its sub-voxels are, so its volume
      equals ``residual_volume_ml`` up to that rounding;
    - ``margin_0_5mm_surface``: voxels holding analysed tumour-surface vertices whose
      signed margin is in [0, 5) mm (each vertex to its nearest voxel).
    """
    zone = run.images["ablation"]
    transform = run.registration.transform if run.registration else None
    tumor = _tumor_on(zone, run.images["tumor"], transform, run.measurement.grid)
    m = run.measurement
    residual = _residual_on(zone, m.residual_points_lps, m.grid)
    keep = m.analysed & (m.margin_mm >= 0.0) & (m.margin_mm < SAFE_MARGIN_MM)
    surface = np.zeros(sitk.GetArrayViewFromImage(zone).shape, dtype=np.uint8)
    if np.any(keep):
        index = np.rint(lps_to_voxel(zone, m.tumor_mesh.vertices[keep])).astype(int)
        size = np.asarray(zone.GetSize())
        inside = np.all((index >= 0) & (index < size), axis=1)
        index = index[inside]
        surface[index[:, 2], index[:, 1], index[:, 0]] = 1
    surface_image = sitk.GetImageFromArray(surface)
    surface_image.CopyInformation(zone)
    return {
        "tumor_post": tumor,
        "ablation_zone": sitk.Cast(zone, sitk.sitkUInt8),
        "residual_tumor": residual,
        "margin_0_5mm_surface": surface_image,
    }


def _tumor_on(zone: sitk.Image, tumor: sitk.Image, transform, grid: sitk.Image) -> sitk.Image:
    """The tumour resampled onto the zone grid, only inside the box of the analysis grid.

    The analysis grid holds the whole (mapped) tumour (checked by the measurement), so
    resampling the full post CT grid through a B-spline would only add zeros, slowly.
    """
    lo, hi = physical_extent(grid)
    corners = np.array(
        [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    )
    index = lps_to_voxel(zone, corners)
    size = np.asarray(zone.GetSize())
    start = np.clip(np.floor(index.min(0)).astype(int) - 1, 0, size - 1)
    stop = np.clip(np.ceil(index.max(0)).astype(int) + 1, 0, size - 1)
    box = sitk.RegionOfInterest(zone, (stop - start + 1).tolist(), start.tolist())
    local = sitk.GetArrayFromImage(resample_mask_like(tumor, box, transform))
    full = np.zeros(sitk.GetArrayViewFromImage(zone).shape, dtype=np.uint8)
    full[start[2] : stop[2] + 1, start[1] : stop[1] + 1, start[0] : stop[0] + 1] = local
    out = sitk.GetImageFromArray(full)
    out.CopyInformation(zone)
    return out


def _residual_on(zone: sitk.Image, points_lps: np.ndarray, grid: sitk.Image) -> sitk.Image:
    """uint8 mask on ``zone``'s grid: voxels holding >= half their sub-voxels in ``points_lps``.

    ``points_lps`` (shape (M, 3), LPS mm) are sub-voxel centres of ``grid``, which splits
    each zone voxel into ``round(zone spacing / grid spacing)`` parts per axis.
    """
    counts = np.zeros(sitk.GetArrayFromImage(zone).shape, dtype=np.int32)
    if len(points_lps):
        index = np.rint(lps_to_voxel(zone, points_lps)).astype(int)
        size = np.asarray(zone.GetSize())
        index = index[np.all((index >= 0) & (index < size), axis=1)]
        np.add.at(counts, (index[:, 2], index[:, 1], index[:, 0]), 1)
    parts = np.prod(np.rint(np.divide(zone.GetSpacing(), grid.GetSpacing())))
    out = sitk.GetImageFromArray((2 * counts >= parts).astype(np.uint8) * (counts > 0))
    out.CopyInformation(zone)
    return out


def write_segments(run: MarginRun, out: Path) -> dict[str, Path]:
    """Write :func:`margin_segments` as ``out/segments/<name>.nii.gz``; return the paths."""
    folder = Path(out) / SEGMENTS_DIR
    paths = {
        name: write_image(mask, folder / f"{name}.nii.gz")
        for name, mask in margin_segments(run).items()
    }
    if run.registration is not None:
        # The post -> pre transform (ITK convention, LPS mm) for the DICOM (Deformable)
        # Spatial Registration export.
        paths["transform"] = folder / REGISTRATION_FILE
        sitk.WriteTransform(run.registration.transform, str(paths["transform"]))
    return paths
