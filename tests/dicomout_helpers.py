"""Helpers for the DICOM output / PACS tests: synthetic studies and dciodvfy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from dicom_helpers import write_ct_series

STUDY_UID = "1.2.826.0.1.3680043.8.498.77"
FOR_UID = "1.2.826.0.1.3680043.8.498.78"
# Synthetic patient attributes (no real person): enough for PACS queries and for the
# pseudonymisation tests to find them removed.
PATIENT_TAGS = {
    "0010|0010": "Phantom^Hepa",
    "0010|0020": "HN-PHANTOM-1",
    "0010|0030": "19600101",
    "0010|0040": "O",
    "0008|0050": "ACC0001",
    "0008|0020": "20260101",
    "0008|0030": "101500",
    "0008|0021": "20260101",
    "0008|0022": "20260101",
    "0008|0023": "20260101",
    "0008|0031": "101600",
    "0008|0090": "Referrer^Doctor",
    "0020|0010": "1",
    "0020|0011": "3",
    "0008|103e": "CT post ablation",
    "0008|0080": "Phantom Hospital",
    "0008|1030": "CT abdomen",
    "0018|0015": "ABDOMEN",
    "0020|0052": FOR_UID,
    "0020|1040": "",
    "0018|0060": "120",
    "0008|0008": "ORIGINAL\\PRIMARY\\AXIAL",
    "0008|0070": "Phantom Scanner Inc",
    "0028|1050": "40",
    "0028|1051": "400",
}


def write_study_ct(
    folder: Path,
    volume_zyx: np.ndarray,
    spacing_xyz=(0.8, 0.8, 2.0),
    origin_xyz=(-100.0, -120.0, -50.0),
    series_uid: str = "1.2.826.0.1.3680043.8.498.1001",
    study_uid: str = STUDY_UID,
    frame_of_reference_uid: str = FOR_UID,
) -> list[Path]:
    """A CT series with synthetic patient/study attributes (valid enough for a PACS)."""
    tags = dict(PATIENT_TAGS)
    tags["0020|000d"] = study_uid
    tags["0020|0052"] = frame_of_reference_uid
    return write_ct_series(folder, volume_zyx, spacing_xyz, origin_xyz, series_uid, extra_tags=tags)


def mask_like(image: sitk.Image, array_zyx: np.ndarray) -> sitk.Image:
    """uint8 mask with ``image``'s geometry."""
    mask = sitk.GetImageFromArray(array_zyx.astype(np.uint8))
    mask.CopyInformation(image)
    return mask


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) lines of dciodvfy for one file."""
    exe = shutil.which("dciodvfy")
    assert exe, "dciodvfy (dicom3tools) is missing; run make sysdeps"
    # dciodvfy echoes values as stored (UTF-8 or not): decoded without failing on them
    run = subprocess.run(
        [exe, "-new", str(path)], capture_output=True, encoding="utf-8", errors="replace"
    )
    lines = (run.stdout + run.stderr).splitlines()
    errors = [ln for ln in lines if ln.startswith("Error")]
    warnings = [ln for ln in lines if ln.startswith("Warning")]
    return errors, warnings


def sphere_case(folder: Path, shape=(24, 48, 48), spacing=(1.0, 1.0, 2.0)):
    """A CT series (DICOM) with a tumour sphere (r 6 mm) and a zone sphere (r 12 mm, 2 mm off).

    Returns (ct_folder, ct_image, tumour_mask, zone_mask); the masks lie on the CT grid.
    The analytic MAM is 12 - 6 - 2 = 4 mm (toward +x), before voxelisation.
    """
    from hepanav.imaging import read_dicom_series

    nz, ny, nx = shape
    z, y, x = np.mgrid[0:nz, 0:ny, 0:nx].astype(float)
    body = ((x - nx / 2) ** 2 + (y - ny / 2) ** 2) < (0.45 * nx) ** 2
    volume = np.where(body, 60, -1000).astype(np.int16)
    write_study_ct(folder / "ct", volume, spacing_xyz=spacing)
    ct = read_dicom_series(folder / "ct")
    cx, cy, cz = nx / 2 * spacing[0], ny / 2 * spacing[1], nz / 2 * spacing[2]
    px, py, pz = x * spacing[0], y * spacing[1], z * spacing[2]
    tumour = (px - cx) ** 2 + (py - cy) ** 2 + (pz - cz) ** 2 < 6.0**2
    zone = (px - cx + 2.0) ** 2 + (py - cy) ** 2 + (pz - cz) ** 2 < 12.0**2
    return folder / "ct", ct, mask_like(ct, tumour), mask_like(ct, zone)


def qualitative_texts(sr, code_value: str) -> list[str] | None:
    """The TEXT items of an SR's TID 1500 Qualitative Evaluations container (UMLS
    C0034375), all named ``code_value`` of 99HEPANAV (PL003 plan warning, MW001 margin
    warning), in order; None without a container."""
    containers = [
        i
        for i in sr.ContentSequence
        if i.ValueType == "CONTAINER"
        and i.ConceptNameCodeSequence[0].CodeValue == "C0034375"
        and i.ConceptNameCodeSequence[0].CodingSchemeDesignator == "UMLS"
    ]
    if not containers:
        return None
    assert len(containers) == 1
    items = containers[0].ContentSequence
    assert all(i.ValueType == "TEXT" and i.RelationshipType == "CONTAINS" for i in items)
    names = {
        (c.CodeValue, c.CodingSchemeDesignator)
        for c in (i.ConceptNameCodeSequence[0] for i in items)
    }
    assert names == {(code_value, "99HEPANAV")}
    return [str(i.TextValue) for i in items]
