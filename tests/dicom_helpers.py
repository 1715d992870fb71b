"""Write small synthetic CT DICOM series for tests (with SimpleITK's GDCM writer)."""

from __future__ import annotations

import locale
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def write_ct_series(
    folder: Path,
    volume_zyx: np.ndarray,
    spacing_xyz: tuple[float, float, float] = (0.8, 0.8, 2.0),
    origin_xyz: tuple[float, float, float] = (-100.0, -120.0, -50.0),
    series_uid: str = "1.2.826.0.1.3680043.8.498.1001",
    slice_positions_mm: list[float] | None = None,
    prefix: str = "slice",
    extra_tags: dict[str, str] | None = None,
) -> list[Path]:
    """Write ``volume_zyx`` (HU, int16) as one DICOM file per slice; return the file paths.

    ``slice_positions_mm`` overrides the z position of each slice (to make uneven
    spacing); by default slices are ``spacing_xyz[2]`` apart starting at ``origin_xyz[2]``.
    ``extra_tags`` ("gggg|eeee" -> value) are added to (or override) every slice's
    header, e.g. a Frame of Reference UID or synthetic patient attributes.
    """
    # GDCM's writer switches the process locale to "C" and leaves it there, which
    # would make later text I/O with the default encoding ASCII; restore it.
    saved = locale.setlocale(locale.LC_ALL)
    try:
        return _write(
            folder, volume_zyx, spacing_xyz, origin_xyz, series_uid, slice_positions_mm, prefix,
            extra_tags or {},
        )
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def _write(
    folder, volume_zyx, spacing_xyz, origin_xyz, series_uid, slice_positions_mm, prefix, extra_tags
):
    folder.mkdir(parents=True, exist_ok=True)
    nz = volume_zyx.shape[0]
    zs = slice_positions_mm or [origin_xyz[2] + k * spacing_xyz[2] for k in range(nz)]
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    paths = []
    for k in range(nz):
        image = sitk.GetImageFromArray(volume_zyx[k : k + 1].astype(np.int16))
        image.SetSpacing(spacing_xyz)
        tags = {
            "0008|0060": "CT",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0008|0018": f"{series_uid}.{k + 1}",
            "0020|000d": "1.2.826.0.1.3680043.8.498.1",
            "0020|000e": series_uid,
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.4f}" for v in (origin_xyz[0], origin_xyz[1], zs[k])),
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0028|0030": f"{spacing_xyz[1]:.4f}\\{spacing_xyz[0]:.4f}",
            "0018|0050": f"{spacing_xyz[2]:.4f}",
            "0028|1052": "0",
            "0028|1053": "1",
        }
        tags.update(extra_tags)
        for tag, value in tags.items():
            image.SetMetaData(tag, value)
        path = folder / f"{prefix}{k:03d}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(image)
        paths.append(path)
    return paths
