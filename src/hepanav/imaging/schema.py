"""Typed descriptions of image geometry."""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk
from pydantic import BaseModel, ConfigDict, Field


class Geometry(BaseModel):
    """The grid of a 3D image in physical space (ITK conventions, LPS, millimetres).

    ``size`` and ``spacing`` are in (x, y, z) order, ``direction`` is the 3x3
    matrix of the axes' unit vectors as columns, flattened row-major (as
    ``SimpleITK.Image.GetDirection``).
    """

    model_config = ConfigDict(frozen=True)

    size: tuple[int, int, int] = Field(description="voxels along x, y, z")
    spacing: tuple[float, float, float] = Field(description="voxel size along x, y, z in mm")
    origin: tuple[float, float, float] = Field(description="centre of voxel (0,0,0), LPS mm")
    direction: tuple[float, ...] = Field(description="3x3 direction cosines, row-major")

    @classmethod
    def of(cls, image: sitk.Image) -> Geometry:
        """Geometry of a 3D SimpleITK image."""
        return cls(
            size=tuple(image.GetSize()),
            spacing=tuple(image.GetSpacing()),
            origin=tuple(image.GetOrigin()),
            direction=tuple(image.GetDirection()),
        )


class InputRecord(BaseModel):
    """What one input file or series was and what the reader did with it.

    Results (margin.json, plan.json) list one record per input so that a
    wrong-patient or wrong-series mistake is visible, and so that every
    regularisation, dropped file or threshold the reader applied is said
    (``notes``). Paths are relative to the working folder, or the bare file name
    when the file lies outside it: never absolute (they may name a patient).
    """

    role: str = Field(description="what the input is used as, e.g. 'tumor', 'post CT'")
    file: str = Field(description="file or folder, relative to the working folder or basename")
    format: str = Field(
        description="e.g. 'DICOM series', 'DICOM SEG', 'NIfTI', '3D Slicer seg.nrrd'"
    )
    series_instance_uid: str | None = None
    study_instance_uid: str | None = None
    frame_of_reference_uid: str | None = None
    series_description: str | None = None
    modality: str | None = None
    acquisition_date: str | None = Field(None, description="DICOM date YYYYMMDD as written")
    referenced_series_uid: str | None = Field(
        None, description="SEG/RTSTRUCT: the image series it was drawn on"
    )
    segment: str | None = Field(None, description="segment/ROI/label(s) chosen from the file")
    size: tuple[int, int, int] | None = Field(None, description="voxels x, y, z as used")
    spacing: tuple[float, float, float] | None = Field(None, description="mm x, y, z as used")
    notes: list[str] = Field(default_factory=list, description="what the reader did, in words")


def display_name(path: str | Path) -> str:
    """``path`` relative to the working folder, or its base name when outside it."""
    path = Path(path)
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix() or "."
    except (ValueError, OSError):
        return path.name


def record_geometry(record: InputRecord, image: sitk.Image) -> InputRecord:
    """Fill ``size`` and ``spacing`` of ``record`` from ``image`` (in place; returned)."""
    record.size = tuple(int(v) for v in image.GetSize())
    record.spacing = tuple(round(float(v), 4) for v in image.GetSpacing())
    return record


def note_lines(records: list[InputRecord]) -> list[str]:
    """One terminal line per reader's note, ``"note: ROLE (FILE): NOTE"``: what the
    reader did to each input (units converted, slices dropped, a mask thresholded or
    resampled...), so that it is not only in the JSON and the report."""
    return [f"note: {r.role} ({r.file}): {note}" for r in records for note in r.notes]
