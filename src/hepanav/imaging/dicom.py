"""Read a DICOM CT series from a folder (compatibility layer over :mod:`dicom_series`)."""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk


def series_uids(folder: Path) -> list[str]:
    """Handles of the image series in ``folder``: the Series Instance UID, or
    ``no-UID-n`` for a series whose files carry none (header scan with pydicom)."""
    from hepanav.imaging.dicom_series import scan_folder

    found, _ = scan_folder(Path(folder))
    return [info.handle for info in found.values() if info.image]


def read_dicom_series(folder: str | Path, series: str | None = None) -> sitk.Image:
    """Read the CT series in ``folder`` as a 3D image in LPS mm.

    See :func:`hepanav.imaging.dicom_series.read_dicom_path` (which also returns the
    record of what was read and done) for the checks and the errors raised.
    """
    from hepanav.imaging.dicom_series import read_dicom_path

    return read_dicom_path(folder, series=series)[0]


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__
