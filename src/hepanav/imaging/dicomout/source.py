"""The source CT series a derived object refers to: its datasets, in the image's slice order."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from hepanav.core.errors import InputError

# Position tolerance when matching DICOM slices to an image grid, mm.
_POSITION_TOL_MM = 0.01


@dataclass
class SourceSeries:
    """The datasets of one image series, sorted along the slice normal (= SimpleITK z order).

    Attributes
    ----------
    datasets : list of pydicom.Dataset
        One per slice, ascending along the slice normal (the order of
        :func:`hepanav.imaging.read_dicom_series`'s z axis).
    folder : Path
        Where they were read from (for error messages).
    notes : list of str
        What the series reader dropped and why (duplicates, localizers, slices of another
        geometry: the notes of :func:`hepanav.imaging.dicom_series.read_dicom_frames`) and
        identifiers :func:`read_source_series` had to recover or derive (an anonymised
        series with emptied UIDs); say them beside every object written on the series.
    image : SimpleITK.Image or None
        The series as the reader made it (the grid the objects' masks must lie on).
    """

    datasets: list[Dataset]
    folder: Path
    notes: list[str] = field(default_factory=list)
    image: sitk.Image | None = field(default=None, repr=False)

    @property
    def first(self) -> Dataset:
        return self.datasets[0]

    @property
    def study_uid(self) -> str:
        return str(self.first.StudyInstanceUID)

    @property
    def series_uid(self) -> str:
        return str(self.first.SeriesInstanceUID)

    @property
    def frame_of_reference_uid(self) -> str:
        return str(self.first.FrameOfReferenceUID)

    def check_grid(self, image: sitk.Image, source: str | Path) -> None:
        """Raise ``InputError`` unless ``image`` lies on this series' voxel grid.

        Compares size, spacing, direction and the position of every slice (LPS mm).
        """
        ds = self.first
        rows, cols = int(ds.Rows), int(ds.Columns)
        size = image.GetSize()
        if (size[0], size[1], size[2]) != (cols, rows, len(self.datasets)):
            raise InputError(
                f"mask grid {size[0]}x{size[1]}x{size[2]} is not the grid of series "
                f"{self.series_uid} ({cols}x{rows}x{len(self.datasets)})",
                source,
            )
        iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
        direction = np.asarray(image.GetDirection()).reshape(3, 3)
        if not (
            np.allclose(direction[:, 0], iop[:3], atol=1e-4)
            and np.allclose(direction[:, 1], iop[3:], atol=1e-4)
        ):
            raise InputError(f"mask orientation differs from series {self.series_uid}", source)
        spacing = [float(v) for v in ds.PixelSpacing]  # row spacing (y), column spacing (x)
        if not np.allclose(image.GetSpacing()[:2], (spacing[1], spacing[0]), atol=1e-4):
            raise InputError(f"mask pixel spacing differs from series {self.series_uid}", source)
        for k, slice_ds in enumerate(self.datasets):
            expected = np.asarray(image.TransformIndexToPhysicalPoint((0, 0, k)))
            found = np.asarray(slice_ds.ImagePositionPatient, dtype=float)
            if np.max(np.abs(expected - found)) > _POSITION_TOL_MM:
                raise InputError(
                    f"mask slice {k} at {np.round(expected, 2).tolist()} mm has no slice of "
                    f"series {self.series_uid} at that position",
                    source,
                )


def _normal(ds: Dataset) -> np.ndarray:
    iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
    return np.cross(iop[:3], iop[3:])


def sort_slices(datasets: list[Dataset]) -> list[Dataset]:
    """Datasets ascending along the slice normal (position . normal), as GDCM sorts them."""
    normal = _normal(datasets[0])
    return sorted(
        datasets, key=lambda d: float(np.dot(np.asarray(d.ImagePositionPatient, float), normal))
    )


def read_source_series(folder: str | Path) -> SourceSeries:
    """Read the slices of the single image series in ``folder`` that the series reader
    stacks into the image (:func:`hepanav.imaging.dicom_series.read_dicom_frames`): an
    exact duplicate slice, a localizer or a slice of another geometry is left out here as
    it is from the image every command reads, with the same notes.

    Raises
    ------
    InputError
        No DICOM image files, several series, slices without position/orientation, a
        slice without a Frame of Reference UID, or slices in different frames of reference;
        everything the series reader refuses.
    """
    from hepanav.imaging.dicom_series import read_dicom_frames

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("not a folder with a DICOM series", folder)
    image, record, frames = read_dicom_frames(folder)
    datasets = []
    for path in dict.fromkeys(f.file for f in frames):  # the image's slice order
        try:
            ds = pydicom.dcmread(path)
        except pydicom.errors.InvalidDicomError:
            continue
        if "ImagePositionPatient" in ds and "PixelData" in ds:
            datasets.append(ds)
    if not datasets:
        raise InputError("no DICOM image slices found", folder)
    notes = list(record.notes) + _repair_identifiers(datasets, folder)
    series = {str(d.SeriesInstanceUID) for d in datasets}
    if len(series) > 1:
        raise InputError(
            f"folder holds {len(series)} image series ({', '.join(sorted(series))}); "
            "put one series per folder",
            folder,
        )
    # Every object written references one frame of reference: every slice must carry it,
    # and the same one (slice 0 alone once stood for the series).
    missing = sum("FrameOfReferenceUID" not in d for d in datasets)
    if missing:
        which = "" if missing == len(datasets) else f" in {missing} of {len(datasets)} slices"
        raise InputError(f"source series has no Frame of Reference UID{which}", folder)
    frames = {str(d.FrameOfReferenceUID) for d in datasets}
    if len(frames) > 1:
        raise InputError(
            f"source series has {len(frames)} different Frame of Reference UIDs; one series "
            "lies in one frame of reference",
            folder,
        )
    ordered = sort_slices(datasets)
    notes += _fill_slice_thickness(ordered, folder)
    return SourceSeries(ordered, folder, notes, image)


def _slice_spacing(datasets: list[Dataset]) -> float | None:
    """Median distance between consecutive slice positions along the slice normal, mm
    (None for a single slice or coincident positions)."""
    if len(datasets) < 2:
        return None
    normal = _normal(datasets[0])
    pos = np.array([np.dot(np.asarray(d.ImagePositionPatient, float), normal) for d in datasets])
    steps = np.diff(pos)
    steps = steps[steps > 1e-6]
    return float(np.median(steps)) if steps.size else None


def _fill_slice_thickness(datasets: list[Dataset], folder: Path) -> list[str]:
    """Fill an absent or empty Slice Thickness (0018,0050) in memory from the slice spacing.

    Slice Thickness is Type 2 in the CT Image module (may be empty) and some exporters
    leave it out; a derived object's Pixel Measures (SEG: Type 1 in its shared functional
    groups) need a value, and highdicom reads it from the first source slice. The slice
    spacing (median distance between slice positions, mm) stands in for it; the files
    are never changed. Returns the note to say beside every object written.

    Raises
    ------
    InputError
        The tag is missing and there is no spacing to take it from (a single slice).
    """
    missing = [d for d in datasets if d.get("SliceThickness", None) in (None, "")]
    if not missing:
        return []
    spacing = _slice_spacing(datasets)
    if spacing is None:
        raise InputError(
            "source series has no Slice Thickness (0018,0050) and a single slice position "
            "to derive it from; a DICOM object written on it needs one",
            folder,
        )
    value = round(spacing, 6)
    for ds in missing:
        ds.SliceThickness = value
    return [
        f"{len(missing)} of {len(datasets)} source slices have no Slice Thickness "
        f"(0018,0050); the slice spacing, {value:g} mm, is written as the thickness of the "
        "objects made on the series"
    ]


def uid_value(ds: Dataset, keyword: str) -> str:
    """The UID ``keyword`` of ``ds`` as text; "" when absent, empty or blank."""
    return str(ds.get(keyword, "") or "").strip()


def _repair_identifiers(datasets: list[Dataset], folder: Path) -> list[str]:
    """Fill the UIDs an anonymiser emptied, in memory (the files are never changed).

    A DICOM object written on a series (SEG, SR, registration) references each slice by
    its SOP Class and SOP Instance UID and the series and study by theirs; highdicom
    looks the SOP Class UID up (``KeyError: ''`` on an empty one). Some anonymisers
    (e.g. the TotalSegmentator test series) empty these in the data set but keep the
    Part 10 file meta header, whose Media Storage SOP Class/Instance UIDs must equal
    them (PS3.10 7.1): those are taken. An empty Study or Series Instance UID in every
    slice has no other copy: one is derived from the slices' SOP Instance UIDs (the same
    series always gives the same UIDs, so every object written on it lands in one study
    and series) and said in the returned notes: a PACS holding the original series
    will not link the objects to it.

    Raises
    ------
    InputError
        A slice without any SOP Instance UID or SOP Class UID, two slices with one UID,
        or a Study/Series Instance UID empty in some slices only.
    """
    notes = []
    recovered = 0
    for ds in datasets:
        meta = getattr(ds, "file_meta", None)
        fixed = False
        for keyword, meta_keyword in (
            ("SOPClassUID", "MediaStorageSOPClassUID"),
            ("SOPInstanceUID", "MediaStorageSOPInstanceUID"),
        ):
            if uid_value(ds, keyword):
                continue
            value = uid_value(meta, meta_keyword) if meta is not None else ""
            if not value:
                where = getattr(ds, "filename", None) or folder
                raise InputError(
                    f"slice has no {keyword} (empty in the data set and in the file meta "
                    "header); a DICOM object cannot reference it",
                    where,
                )
            setattr(ds, keyword, value)
            fixed = True
        recovered += fixed
    if recovered:
        notes.append(
            f"{recovered} of {len(datasets)} source slices had an empty SOP Class/Instance "
            "UID in the data set (anonymised); taken from their file meta header"
        )
    instances = [uid_value(ds, "SOPInstanceUID") for ds in datasets]
    if len(set(instances)) != len(instances):
        raise InputError(
            "two slices share one SOP Instance UID; a DICOM object cannot tell them apart",
            folder,
        )
    for keyword, name in (("StudyInstanceUID", "study"), ("SeriesInstanceUID", "series")):
        empty = sum(not uid_value(ds, keyword) for ds in datasets)
        if not empty:
            continue
        if empty < len(datasets):
            raise InputError(
                f"{keyword} is empty in {empty} of {len(datasets)} slices; one series "
                "carries one UID",
                folder,
            )
        value = generate_uid(entropy_srcs=[f"hepanav source {name}", *sorted(instances)])
        for ds in datasets:
            setattr(ds, keyword, value)
        notes.append(
            f"source series has an empty {keyword} (anonymised); HepaNav derived {value} "
            f"from its slices' SOP Instance UIDs: the objects written do not link to the "
            f"original {name} in a PACS"
        )
    return notes
