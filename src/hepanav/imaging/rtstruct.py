"""DICOM RT Structure Set (RTSTRUCT) ROIs rasterised into masks in physical space.

Contours are closed planar polygons in LPS mm (DICOM PS3.3 C.8.8.6, ROI Contour
Module). Each contour is mapped into the continuous index space of the image it
was drawn on, filled in its plane with the even-odd rule (so an inner contour on
the same plane is a hole, as DICOM and 3D Slicer treat it), and every image
slice takes the nearest contour plane. Open or self-intersecting contours are
refused: their inside is undefined.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from skimage.draw import polygon2mask

from hepanav.core.errors import InputError
from hepanav.imaging.geometry import beyond_field_of_view, describe_beyond, lps_to_voxel
from hepanav.imaging.labels import LabelSpec, choose_segments
from hepanav.imaging.schema import InputRecord, display_name

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
# A contour lies in one image slice when its points' slice index spreads less than this.
_PLANE_TOL_VOXELS = 0.3


def _rois(ds) -> list[tuple[int, str, str | None]]:
    return [
        (
            int(item.ROINumber),
            str(getattr(item, "ROIName", "") or ""),
            str(getattr(item, "ReferencedFrameOfReferenceUID", "") or "") or None,
        )
        for item in getattr(ds, "StructureSetROISequence", [])
    ]


def referenced_series_uid(ds) -> str | None:
    """SeriesInstanceUID of the image series an RTSTRUCT was drawn on."""
    for frame in getattr(ds, "ReferencedFrameOfReferenceSequence", []) or []:
        for study in getattr(frame, "RTReferencedStudySequence", []) or []:
            for series in getattr(study, "RTReferencedSeriesSequence", []) or []:
                if "SeriesInstanceUID" in series:
                    return str(series.SeriesInstanceUID)
    return None


def rtstruct_info(path: str | Path) -> tuple[pydicom.Dataset, list[tuple[int, str]]]:
    """The dataset and its ``(ROINumber, ROIName)`` list; ``InputError`` if not an RTSTRUCT."""
    path = Path(path)
    try:
        ds = pydicom.dcmread(str(path))
    except Exception as exc:
        raise InputError(f"not a readable DICOM file ({exc})", path) from None
    if str(getattr(ds, "SOPClassUID", "")) != RTSTRUCT_SOP_CLASS:
        raise InputError("not a DICOM RT Structure Set", path)
    return ds, [(n, name) for n, name, _ in _rois(ds)]


def read_rtstruct(
    path: str | Path,
    reference: sitk.Image,
    labels: LabelSpec | None = None,
    reference_record: InputRecord | None = None,
    role: str = "mask",
    *,
    require_inside: bool = False,
) -> tuple[sitk.Image, InputRecord]:
    """Rasterise the chosen ROI(s) of an RTSTRUCT on the grid of ``reference``.

    Parameters
    ----------
    path : str or Path
        An RTSTRUCT file.
    reference : SimpleITK.Image
        The image the contours were drawn on (its grid receives the mask).
    labels : tuple of int or str, optional
        ROI names (case-insensitive) or ROI numbers; several are united. Required
        when the file holds more than one ROI.
    reference_record : InputRecord, optional
        The reference image's record: its Frame of Reference and Series UIDs are
        checked against those the RTSTRUCT references.
    role : str
        Role written in the returned record.
    require_inside : bool
        Refuse contours that lie partly outside ``reference``'s field of view (a
        contour plane beyond its first or last slice, or points beyond its in-plane
        edges) instead of dropping that part: the mask would be cut there (e.g. the
        tumour of a plan). Without it, the part dropped is said in the record's notes.

    Returns
    -------
    (SimpleITK.Image, InputRecord)
        uint8 0/1 mask on ``reference``'s grid and what was read.

    Raises
    ------
    InputError
        Unknown/ambiguous ROI (ROIs present are listed), ROI without contours,
        open or self-intersecting or non-planar contours, another frame of
        reference or series than the reference image; with ``require_inside``,
        contours partly outside the reference image (how far, which side).
    """
    path = Path(path)
    ds, rois = rtstruct_info(path)
    chosen = choose_segments(rois, labels, "ROI", path)
    listing = ", ".join(f"'{name}'" for _, name in rois)
    notes: list[str] = []
    for_uids = {n: f for n, _, f in _rois(ds)}
    series_uid = referenced_series_uid(ds)
    _check_reference(
        path, [for_uids.get(n) for n, _ in chosen], series_uid, reference_record, notes
    )
    size = np.asarray(reference.GetSize())
    planes: dict[float, np.ndarray] = {}
    points_lps: list[np.ndarray] = []
    contours_by_roi = {
        int(item.ReferencedROINumber): list(getattr(item, "ContourSequence", []) or [])
        for item in getattr(ds, "ROIContourSequence", [])
    }
    for number, name in chosen:
        contours = contours_by_roi.get(number, [])
        if not contours:
            raise InputError(f"ROI '{name}' has no contours (ROIs present: {listing})", path)
        roi_planes: dict[float, np.ndarray] = {}
        for c, contour in enumerate(contours, start=1):
            kind = str(getattr(contour, "ContourGeometricType", "CLOSED_PLANAR"))
            where = f"ROI '{name}' contour {c}"
            if kind != "CLOSED_PLANAR":
                raise InputError(
                    f"{where} is {kind}; only CLOSED_PLANAR contours enclose a region", path
                )
            points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
            if len(points) < 3 or not np.all(np.isfinite(points)):
                raise InputError(f"{where} has fewer than 3 finite points", path)
            points_lps.append(points)
            ijk = lps_to_voxel(reference, points)
            if np.ptp(ijk[:, 2]) > _PLANE_TOL_VOXELS:
                raise InputError(
                    f"{where} does not lie in one slice plane of the image it is used with "
                    f"(spans {np.ptp(ijk[:, 2]):.2f} slices)",
                    path,
                )
            if _self_intersects(ijk[:, :2]):
                raise InputError(f"{where} is self-intersecting; its inside is undefined", path)
            k = round(float(np.mean(ijk[:, 2])), 2)
            filled = polygon2mask((int(size[1]), int(size[0])), ijk[:, [1, 0]])
            # Even-odd rule: a contour inside another on the same plane is a hole.
            roi_planes[k] = filled if k not in roi_planes else np.logical_xor(roi_planes[k], filled)
        for k, plane in roi_planes.items():
            planes[k] = plane if k not in planes else np.logical_or(planes[k], plane)
    beyond = beyond_field_of_view(np.concatenate(points_lps), reference)
    if beyond:
        outside_note = _outside_text(beyond, planes, int(size[2]), reference, reference_record)
        if require_inside:
            names = ", ".join(f"'{name}'" for _, name in chosen)
            raise InputError(
                f"{role} ROI {names} extends beyond {outside_note}: rasterised on it, the "
                "part outside would be dropped and the target cut; give an image that "
                "covers all of it",
                path,
            )
        notes.append(f"contours beyond {outside_note}: that part dropped (the mask is cut)")
    array = _stack(planes, int(size[2]))
    if not array.any():
        raise InputError("the chosen ROI lies outside the image it is used with", path)
    if len(chosen) > 1:
        notes.append(f"ROIs {', '.join(repr(n) for _, n in chosen)} united into one mask")
    notes.append(f"contours rasterised on the image grid ({len(planes)} contour planes)")
    mask = sitk.GetImageFromArray(array.astype(np.uint8))
    mask.CopyInformation(reference)
    record = InputRecord(
        role=role,
        file=display_name(path),
        format="DICOM RTSTRUCT",
        series_instance_uid=_str(ds, "SeriesInstanceUID"),
        study_instance_uid=_str(ds, "StudyInstanceUID"),
        frame_of_reference_uid=for_uids.get(chosen[0][0]),
        series_description=_str(ds, "SeriesDescription") or _str(ds, "StructureSetLabel"),
        modality=_str(ds, "Modality"),
        acquisition_date=_str(ds, "StructureSetDate"),
        referenced_series_uid=series_uid,
        segment=", ".join(f"{n} '{name}'" for n, name in chosen),
        notes=notes,
    )
    return mask, record


def _outside_text(beyond, planes, nz: int, reference, reference_record) -> str:
    """'the planning CT: its contours reach 5.0 mm inferior of the planning CT's
    inferior-most slice (LPS z 40.0 mm); 2 of 9 contour planes lie outside its slices'."""
    what = reference_record.role if reference_record is not None else "image"
    tol = 1e-3
    outside = sum(1 for k in planes if k < -0.5 - tol or k > nz - 0.5 + tol)
    text = f"the {what}: its contours reach {describe_beyond(beyond, reference, what)}"
    if outside:
        text += f"; {outside} of {len(planes)} contour planes lie outside its slices"
    return text


def _check_reference(path, for_uids, series_uid, reference_record, notes) -> None:
    ref_for = reference_record.frame_of_reference_uid if reference_record else None
    ref_series = reference_record.series_instance_uid if reference_record else None
    for uid in for_uids:
        if uid and ref_for and uid != ref_for:
            raise InputError(
                f"RTSTRUCT contours are in frame of reference {uid}, the image "
                f"({reference_record.file}) in {ref_for}; use the structure set of this image",
                path,
            )
    if series_uid and ref_series and series_uid != ref_series:
        raise InputError(
            f"RTSTRUCT was drawn on series {series_uid}, not on the image it is used with "
            f"({reference_record.file}, series {ref_series})",
            path,
        )
    if not ref_for:
        notes.append(
            "the image has no DICOM frame of reference: the RTSTRUCT's could not be checked "
            "against it (contours placed by their LPS coordinates)"
        )


def _stack(planes: dict[float, np.ndarray], nz: int) -> np.ndarray:
    """Each image slice takes the nearest contour plane within half the plane spacing."""
    ny, nx = next(iter(planes.values())).shape
    out = np.zeros((nz, ny, nx), dtype=bool)
    ks = np.array(sorted(planes))
    half = 0.5 * (float(np.min(np.diff(ks))) if len(ks) > 1 else 1.0)
    half = max(half, 0.5)
    for z in range(nz):
        nearest = ks[np.argmin(np.abs(ks - z))]
        if abs(nearest - z) <= half + 1e-6:
            out[z] = planes[float(nearest)]
    return out


def _self_intersects(points: np.ndarray) -> bool:
    """True when two non-adjacent edges of the closed polygon ``points`` (N, 2) cross."""
    pts = points[np.r_[True, np.any(np.diff(points, axis=0) != 0, axis=1)]]  # drop repeats
    if len(pts) > 1 and np.allclose(pts[0], pts[-1]):
        pts = pts[:-1]
    n = len(pts)
    if n < 4:
        return False
    a, b = pts, np.roll(pts, -1, axis=0)
    for start in range(0, n, 256):  # chunks bound memory for long contours
        i = np.arange(start, min(n, start + 256))[:, None]
        j = np.arange(n)[None, :]
        pairs = (j > i + 1) & ~((i == 0) & (j == n - 1))
        ii, jj = np.nonzero(pairs)
        ii = ii + start
        if ii.size == 0:
            continue
        p, r = a[ii], b[ii] - a[ii]
        q, s = a[jj], b[jj] - a[jj]
        denom = r[:, 0] * s[:, 1] - r[:, 1] * s[:, 0]
        qp = q - p
        t_num = qp[:, 0] * s[:, 1] - qp[:, 1] * s[:, 0]
        u_num = qp[:, 0] * r[:, 1] - qp[:, 1] * r[:, 0]
        ok = np.abs(denom) > 1e-12
        t = np.where(ok, t_num / np.where(ok, denom, 1), -1)
        u = np.where(ok, u_num / np.where(ok, denom, 1), -1)
        eps = 1e-9
        if np.any(ok & (t > eps) & (t < 1 - eps) & (u > eps) & (u < 1 - eps)):
            return True
    return False


def _str(ds, keyword: str) -> str | None:
    value = getattr(ds, keyword, None)
    return str(value) if value not in (None, "") else None
