"""Which faces of its image a mask touches: a structure cut by the image border.

A mask with voxels in the first or last row/column/slice of its grid may continue
beyond the image: its volume and size are then lower bounds, and a margin measured on
it is not that of the whole lesion. ``hepanav segment`` reports the faces
(``SegmentationResult.border_faces``) and ``hepanav margin`` leaves the cut surface out
(:mod:`hepanav.margin.measure`); both use :func:`border_faces`.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

#: Anatomical side of the +x, +y, +z LPS axes and of their negatives.
_SIDES = {(0, 1): "left", (0, -1): "right", (1, 1): "posterior", (1, -1): "anterior"}
_SIDES |= {(2, 1): "superior", (2, -1): "inferior"}


def foreground_box(mask: sitk.Image) -> tuple[np.ndarray, np.ndarray] | None:
    """Inclusive index box ``(lo, hi)`` (x, y, z order) of the non-zero voxels, or None
    when the mask is empty (from axis projections: fast on a 512 x 512 x 300 volume)."""
    array = sitk.GetArrayViewFromImage(mask)  # the caller's image, not a temporary
    lo, hi = [], []
    for axis_zyx in (2, 1, 0):  # x, y, z
        other = tuple(a for a in range(3) if a != axis_zyx)
        hit = np.flatnonzero(np.any(array, axis=other))
        if hit.size == 0:
            return None
        lo.append(hit[0])
        hi.append(hit[-1])
    return np.array(lo), np.array(hi)


def face_name(image: sitk.Image, axis: int, last: bool) -> str:
    """``"superior (last slice, k = 119)"``: the face of index axis ``axis`` (0 = i,
    1 = j, 2 = k), first or ``last`` index, named by the LPS side its outward normal
    points to most (the image's direction matrix)."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    normal = direction[:, axis] * (1.0 if last else -1.0)
    lps = int(np.argmax(np.abs(normal)))
    side = _SIDES[(lps, int(np.sign(normal[lps])))]
    index = image.GetSize()[axis] - 1 if last else 0
    what = ("column", "row", "slice")[axis]
    return f"{side} ({'last' if last else 'first'} {what}, {'ijk'[axis]} = {index})"


def border_faces(mask: sitk.Image, box: tuple[np.ndarray, np.ndarray] | None = None) -> list[str]:
    """Names (:func:`face_name`) of the image faces the mask's non-zero voxels touch;
    empty when it lies wholly inside (or is empty). ``box``: its index box
    (:func:`foreground_box`) when already known."""
    box = foreground_box(mask) if box is None else box
    if box is None:
        return []
    lo, hi = box
    size = np.asarray(mask.GetSize()) - 1
    faces = []
    for axis in range(mask.GetDimension()):
        if lo[axis] == 0:
            faces.append(face_name(mask, axis, False))
        if hi[axis] == size[axis]:
            faces.append(face_name(mask, axis, True))
    return faces


def border_warning(what: str, faces: list[str]) -> str:
    """The warning for a ``what`` (e.g. "tumour") touching ``faces`` of its image."""
    return (
        f"the {what} touches the image border ({len(faces)} face{'s' if len(faces) > 1 else ''}: "
        f"{'; '.join(faces)}): it may continue outside the image, so its volume and "
        "diameter are LOWER BOUNDS"
    )
