"""3D Slicer segmentation files (``.seg.nrrd``) as binary masks (pynrrd).

Slicer stores segments as label values in one or more layers (a 4D NRRD whose
first axis is the layer when segments overlap) and names them in the header
(``SegmentN_Name``, ``SegmentN_LabelValue``, ``SegmentN_Layer``; Slicer's
"Segmentation labelmap file format", slicer.readthedocs.io). Segment numbers are
1-based in header order (Segment0 is number 1), like DICOM SEG segment numbers.
"""

from __future__ import annotations

import re
from pathlib import Path

import nrrd
import numpy as np
import SimpleITK as sitk

from hepanav.core.errors import InputError
from hepanav.imaging.affine import image_from_affine
from hepanav.imaging.labels import LabelSpec, choose_segments
from hepanav.imaging.schema import InputRecord, display_name

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def is_slicer_seg(path: str | Path) -> bool:
    """True for a file named ``*.seg.nrrd``."""
    return Path(path).name.lower().endswith(".seg.nrrd")


def _segments(header: dict) -> list[dict]:
    found = {}
    for key, value in header.items():
        m = re.fullmatch(r"Segment(\d+)_(\w+)", str(key))
        if m:
            found.setdefault(int(m.group(1)), {})[m.group(2)] = value
    return [found[i] for i in sorted(found)]


def read_slicer_seg(
    path: str | Path, labels: LabelSpec | None = None, role: str = "mask"
) -> tuple[sitk.Image, InputRecord]:
    """Read the chosen segment(s) of a 3D Slicer ``.seg.nrrd`` as a uint8 0/1 mask.

    Parameters
    ----------
    path : str or Path
        The ``.seg.nrrd`` file (one or several layers).
    labels : tuple of int or str, optional
        Segment names (case-insensitive) or 1-based segment numbers; several are
        united. Required when the file holds more than one segment.
    role : str
        Role written in the returned record.

    Returns
    -------
    (SimpleITK.Image, InputRecord)
        Mask in LPS mm on the file's grid (sheared grids made orthogonal) and what was read.

    Raises
    ------
    InputError
        Unreadable or truncated file, no/unknown/ambiguous segment (segments
        present are listed), an unknown coordinate space.
    """
    path = Path(path)
    try:
        data, header = nrrd.read(str(path))
    except Exception as exc:  # pynrrd raises NRRDError, ValueError, zlib/EOF errors
        raise InputError(f"cannot read NRRD file completely ({exc})", path) from None
    segments = _segments(header)
    available = [(i + 1, str(s.get("Name", s.get("ID", "")))) for i, s in enumerate(segments)]
    chosen = choose_segments(available, labels, "segment", path)
    kinds = [str(k) for k in header.get("kinds", [])]
    if data.ndim == 4:
        layer_axis = next((a for a, k in enumerate(kinds) if k not in ("domain", "space")), 0)
        data = np.moveaxis(data, layer_axis, 0)
    elif data.ndim == 3:
        data = data[None]
    else:
        raise InputError(f"expected a 3D or 4D segmentation, got {data.ndim}D", path)
    inside = np.zeros(data.shape[1:], dtype=bool)  # (x, y, z): pynrrd's Fortran order
    for number, _ in chosen:
        seg = segments[number - 1]
        try:
            layer = int(seg.get("Layer", 0) or 0)
            value = int(seg.get("LabelValue", 1) or 1)
        except (TypeError, ValueError):
            raise InputError(f"segment {number}: Layer/LabelValue are not integers", path) from None
        if layer >= data.shape[0]:
            raise InputError(
                f"segment {number} names layer {layer}, the file has {data.shape[0]}", path
            )
        inside |= data[layer] == value
    directions = [d for d in header.get("space directions", []) if d is not None]
    directions = [
        np.asarray(d, dtype=float)
        for d in directions
        if np.all(np.isfinite(np.asarray(d, dtype=float)))
    ]
    if len(directions) != 3:
        raise InputError("NRRD header has no 3 spatial 'space directions'", path)
    matrix = np.stack(directions, axis=1)
    origin = np.asarray(header.get("space origin", [0.0, 0.0, 0.0]), dtype=float)
    space = str(header.get("space", "left-posterior-superior")).lower()
    if space in ("right-anterior-superior", "ras"):
        matrix, origin = _RAS_TO_LPS @ matrix, _RAS_TO_LPS @ origin
    elif space not in ("left-posterior-superior", "lps"):
        raise InputError(f"unsupported NRRD space {space!r}; expected LPS or RAS", path)
    image, notes = image_from_affine(
        np.ascontiguousarray(inside.transpose(2, 1, 0)).astype(np.uint8),
        matrix,
        origin,
        source=str(path),
        is_label=True,
    )
    if len(chosen) > 1:
        notes.append(f"segments {', '.join(repr(n) for _, n in chosen)} united into one mask")
    record = InputRecord(
        role=role,
        file=display_name(path),
        format="3D Slicer seg.nrrd",
        segment=", ".join(f"{n} '{name}'" for n, name in chosen),
        notes=notes,
    )
    return image, record
