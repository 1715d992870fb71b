"""Images for the in-browser viewer (NiiVue reads NIfTI; DICOM folders are converted once)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def nifti_of_dicom(folder: Path, cache: Path) -> Path:
    """A NIfTI copy of a DICOM series folder, read with HepaNav's checked reader.

    The copy is cached under ``cache`` by the folder's path and modification time.
    Geometry (spacing, origin, direction) is kept, so NiiVue's RAS world coordinates
    are the series' LPS coordinates with x and y negated.
    """
    from hepanav.imaging import read_image, write_image

    stamp = f"{folder.resolve()}:{folder.stat().st_mtime_ns}".encode()
    target = cache / f"{hashlib.sha256(stamp).hexdigest()[:16]}.nii.gz"
    if not target.exists():
        write_image(read_image(folder), target)
    return target


def warped_pre(pre: Path, result: Path, cache: Path) -> Path | None:
    """The pre CT resampled onto the post CT's grid through the margin registration.

    Uses ``segments/post_to_pre.h5`` (the pre/post transform, post points -> pre points,
    which is what resampling needs) and the post grid of ``segments/ablation_zone.nii.gz``.
    Linear interpolation, outside value -1024 HU. Returns ``None`` when the result has no
    registration (masks in one space). Cached under ``cache``.
    """
    import SimpleITK as sitk

    from hepanav.imaging import read_image, write_image

    transform_file = result / "segments" / "post_to_pre.h5"
    grid_file = result / "segments" / "ablation_zone.nii.gz"
    if not transform_file.is_file() or not grid_file.is_file():
        return None
    target = cache / "pre_in_post.nii.gz"
    if not target.exists():
        transform = sitk.ReadTransform(str(transform_file))
        grid = sitk.ReadImage(str(grid_file))
        moved = sitk.Resample(
            read_image(pre), grid, transform, sitk.sitkLinear, -1024.0, sitk.sitkInt16
        )
        write_image(moved, target)
    return target
