"""DICOM Segmentation (SEG) objects as binary masks (highdicom).

A SEG holds one or more segments, each a stack of frames placed in the frame of
reference by its Plane Position (Patient); frames may be sparse (only slices
that hold the segment). highdicom's ``get_volume`` places every frame by its
position on a regular grid (DICOM PS3.3 C.8.20, Segmentation IOD).
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import SimpleITK as sitk

from hepanav.core.errors import InputError
from hepanav.imaging.affine import image_from_affine
from hepanav.imaging.labels import LabelSpec, choose_segments
from hepanav.imaging.schema import InputRecord, display_name

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def segments_of(seg) -> list[tuple[int, str]]:
    """``(SegmentNumber, SegmentLabel)`` of every segment in a SEG dataset."""
    return [
        (int(item.SegmentNumber), str(getattr(item, "SegmentLabel", "") or ""))
        for item in getattr(seg, "SegmentSequence", [])
    ]


def referenced_series_uid(ds) -> str | None:
    """SeriesInstanceUID of the image series a SEG (or other derived object) references."""
    for item in getattr(ds, "ReferencedSeriesSequence", []) or []:
        if "SeriesInstanceUID" in item:
            return str(item.SeriesInstanceUID)
    return None


def read_seg(
    path: str | Path,
    labels: LabelSpec | None = None,
    threshold: float | None = None,
    role: str = "mask",
) -> tuple[sitk.Image, InputRecord]:
    """Read the chosen segment(s) of a DICOM SEG as a uint8 0/1 mask in LPS mm.

    Parameters
    ----------
    path : str or Path
        A DICOM SEG file.
    labels : tuple of int or str, optional
        Segment numbers or labels (names, case-insensitive); several are united.
        Required when the SEG holds more than one segment.
    threshold : float, optional
        For FRACTIONAL SEGs: fraction (0..1) at or above which a voxel is inside;
        0.5 when omitted (said in the record's notes).
    role : str
        Role written in the returned record.

    Returns
    -------
    (SimpleITK.Image, InputRecord)
        Mask on the SEG's own grid, and what was read.

    Raises
    ------
    InputError
        Not a SEG, unreadable, no/unknown/ambiguous segment (the segments present
        are listed), frames that do not form a regular grid.
    """
    path = Path(path)
    try:
        seg = hd.seg.segread(str(path))
    except Exception as exc:  # highdicom raises plain ValueError/AttributeError
        raise InputError(f"not a readable DICOM SEG ({_one_line(exc)})", path) from None
    chosen = choose_segments(segments_of(seg), labels, "segment", path)
    numbers = [n for n, _ in chosen]
    notes: list[str] = []
    try:
        volume = seg.get_volume(segment_numbers=numbers, combine_segments=False)
    except Exception as exc:
        raise InputError(
            f"SEG frames do not form a regular 3D grid ({_one_line(exc)})", path
        ) from None
    array = np.asarray(volume.array)
    if array.ndim == 4:
        values = array.astype(np.float32)
        fractional = str(getattr(seg, "SegmentationType", "BINARY")) == "FRACTIONAL"
        if fractional:
            cut = 0.5 if threshold is None else threshold
            if threshold is not None and not 0 < threshold < 1:
                # get_volume gives fractions (0-1): any other cut selects all or nothing.
                raise InputError(
                    f"{threshold:g} must be strictly between 0 and 1 for a fractional SEG ({path})",
                    "--mask-threshold",
                )
            inside = np.any(values >= cut, axis=3)
            notes.append(
                f"fractional SEG thresholded at {cut:g}"
                + ("" if threshold is not None else " (default; set --mask-threshold)")
            )
        else:
            inside = np.any(values > 0, axis=3)
    else:
        inside = array > 0
    if len(numbers) > 1:
        notes.append(f"segments {', '.join(map(str, numbers))} united into one mask")
    # highdicom: affine maps (slice, row, column) array indices to LPS mm.
    affine = np.asarray(volume.affine, dtype=float)
    matrix = affine[:3, :3][:, ::-1]  # columns for (x=column, y=row, z=slice)
    image, more = image_from_affine(
        inside.astype(np.uint8), matrix, affine[:3, 3], source=str(path), is_label=True
    )
    notes.extend(more)
    record = InputRecord(
        role=role,
        file=display_name(path),
        format="DICOM SEG",
        series_instance_uid=_str(seg, "SeriesInstanceUID"),
        study_instance_uid=_str(seg, "StudyInstanceUID"),
        frame_of_reference_uid=_str(seg, "FrameOfReferenceUID"),
        series_description=_str(seg, "SeriesDescription"),
        modality=_str(seg, "Modality"),
        acquisition_date=_str(seg, "ContentDate") or _str(seg, "SeriesDate"),
        referenced_series_uid=referenced_series_uid(seg),
        segment=", ".join(f"{n} '{name}'" for n, name in chosen),
        notes=notes,
    )
    return image, record


def _str(ds, keyword: str) -> str | None:
    value = getattr(ds, keyword, None)
    return str(value) if value not in (None, "") else None


def _one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__
