"""Write DICOM objects atomically, one file per SOP instance."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset

from hepanav.core.atomic import atomic_path


def write_dataset(ds: Dataset, folder: Path, name: str) -> Path:
    """Write ``ds`` as ``folder/name.dcm`` (DICOM Part 10 file with its meta header)."""
    target = Path(folder) / f"{name}.dcm"
    with atomic_path(target) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return target
