"""Read a DICOM CT series from a folder, refusing ambiguous or incomplete series.

GDCM (through SimpleITK) groups files by Series Instance UID and sorts them by
position; we then check what it does not: that the folder holds exactly one
series and that the slices are evenly spaced with none missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hepanav.core.errors import InputError

# Relative tolerance on slice spacing: scanners write positions rounded to ~0.01 mm.
_SPACING_RTOL = 0.02


def series_uids(folder: Path) -> list[str]:
    """Series Instance UIDs of the DICOM files in ``folder`` (GDCM's grouping)."""
    # ITK prints a multi-line warning for a folder without series; we raise our own
    # one-line error for that case, so keep ITK quiet here.
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        return list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def _slice_positions(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Image Position (Patient) of every file and the slice normal, in LPS mm."""
    positions, normal = [], None
    reader = sitk.ImageFileReader()
    for name in files:
        reader.SetFileName(name)
        reader.ReadImageInformation()
        try:
            positions.append([float(v) for v in reader.GetMetaData("0020|0032").split("\\")])
            if normal is None:
                iop = [float(v) for v in reader.GetMetaData("0020|0037").split("\\")]
                normal = np.cross(iop[:3], iop[3:])
        except RuntimeError:
            raise InputError(
                "DICOM file has no Image Position/Orientation (Patient); not a CT slice",
                name,
            ) from None
    return np.asarray(positions), np.asarray(normal)


def check_slice_spacing(files: list[str], folder: Path) -> float:
    """Check the slices of one series are evenly spaced; return the spacing in mm.

    Raises
    ------
    InputError
        When slices are missing (a gap of about a multiple of the usual spacing),
        duplicated, or unevenly spaced.
    """
    if len(files) < 2:
        raise InputError(f"DICOM series has {len(files)} slice; a 3D CT needs at least 2", folder)
    positions, normal = _slice_positions(files)
    along = np.sort(positions @ normal)
    steps = np.diff(along)
    step = float(np.median(steps))
    if step <= 1e-6:
        raise InputError("DICOM series has several slices at the same position", folder)
    bad = np.flatnonzero(np.abs(steps - step) > _SPACING_RTOL * step)
    if bad.size:
        i = int(bad[0])
        gap = float(steps[i])
        ratio = gap / step
        if ratio > 1.5 and abs(ratio - round(ratio)) < 0.1:
            what = f"{round(ratio) - 1} missing slice(s)"
        else:
            what = "unevenly spaced slices"
        raise InputError(
            f"DICOM series has {what}: gap of {gap:.2f} mm between slices {i} and {i + 1} "
            f"(at {along[i]:.2f} and {along[i + 1]:.2f} mm along the slice normal) where the "
            f"usual spacing is {step:.2f} mm",
            folder,
        )
    return step


def read_dicom_series(folder: str | Path) -> sitk.Image:
    """Read the single CT series in ``folder`` as a 3D image in LPS mm.

    Parameters
    ----------
    folder : str or Path
        A folder holding the DICOM files of exactly one series.

    Returns
    -------
    SimpleITK.Image
        The volume with spacing, origin and direction from the DICOM headers,
        rescaled to Hounsfield units by GDCM (Rescale Slope/Intercept).

    Raises
    ------
    InputError
        No series, several series (their UIDs are named), missing or uneven slices.
    """
    folder = Path(folder)
    uids = series_uids(folder)
    if not uids:
        raise InputError("no DICOM series found in this folder", folder)
    if len(uids) > 1:
        raise InputError(
            f"folder holds {len(uids)} DICOM series ({', '.join(uids)}); put one series per folder",
            folder,
        )
    files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uids[0]))
    check_slice_spacing(files, folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"cannot read DICOM series: {_first_line(exc)}", folder) from None


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__
