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
