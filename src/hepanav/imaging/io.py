"""Read and write CT images and masks (NIfTI, NRRD, MHA/MHD, DICOM series folders)."""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from hepanav.core.atomic import atomic_path
from hepanav.core.errors import InputError
from hepanav.imaging.dicom import _first_line, read_dicom_series
from hepanav.imaging.header import require_sane_geometry

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def read_image(path: str | Path) -> sitk.Image:
    """Read a 3D image from a file or a DICOM series folder.

    Parameters
    ----------
    path : str or Path
        A NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``, ``.nhdr``) or MetaImage
        (``.mha``, ``.mhd``) file, or a folder with one DICOM series.

    Returns
    -------
    SimpleITK.Image
        3D image with its spacing (mm), origin (LPS mm) and direction.

    Raises
    ------
    InputError
        Missing or unreadable file, unsupported format, not 3D, a vector image.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file or folder does not exist", path)
    if path.is_dir():
        image = read_dicom_series(path)
    else:
        if _suffix(path) not in IMAGE_SUFFIXES + (".dcm",):
            raise InputError(
                f"unsupported image format {_suffix(path)!r}; use NIfTI, NRRD, MHA/MHD "
                "or a DICOM series folder",
                path,
            )
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as exc:
            raise InputError(f"cannot read image: {_first_line(exc)}", path) from None
    require_3d(image, path)
    require_sane_geometry(image, path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"image has {image.GetNumberOfComponentsPerPixel()} components per voxel; "
            "expected a scalar CT or mask",
            path,
        )
    return image


def require_3d(image: sitk.Image, source: str | Path) -> None:
    """Raise ``InputError`` unless ``image`` is a 3D volume with at least 2 slices."""
    size = image.GetSize()
    if image.GetDimension() != 3 or min(size) < 2:
        raise InputError(
            f"expected a 3D volume, got size {'x'.join(map(str, size))} "
            f"({image.GetDimension()}D); 2D images are not supported",
            source,
        )


def write_image(image: sitk.Image, path: str | Path, compress: bool = True) -> Path:
    """Write ``image`` atomically (temporary file, then rename); format from the suffix."""
    path = Path(path)
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=compress)
    return path
