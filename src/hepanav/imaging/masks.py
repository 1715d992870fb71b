"""Binary masks: reading onto a reference grid, checks, volumes, cropping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from hepanav.core.errors import InputError
from hepanav.imaging.geometry import require_overlap, same_grid
from hepanav.imaging.labels import (
    LabelSpec,
    parse_labels,
    select_labels,
    sidecar_label_names,
)
from hepanav.imaging.resample import resample_like
from hepanav.imaging.rtstruct import RTSTRUCT_SOP_CLASS, read_rtstruct
from hepanav.imaging.schema import InputRecord, record_geometry
from hepanav.imaging.seg import SEG_SOP_CLASS, read_seg
from hepanav.imaging.slicer_seg import is_slicer_seg, read_slicer_seg

# Largest --mask-threshold: float masks hold fractions or probabilities (0-1), percentages
# (0-100) or 8/16-bit scaled probabilities (0-255, 0-65535); no threshold above 65535 can
# select anything in such a map. A threshold <= 0 would select the whole background.
MASK_THRESHOLD_MAX = 65535.0
# Metadata key that marks a float32 image as the partial-volume fraction (0..1) of a
# binary mask, set by the readers when they regularise a tilted or sheared mask; the
# value is the mask's non-zero label.
FRACTION_KEY = "hepanav:fraction-of-label"
FRACTION_NOTE = (
    "partial-volume fractions of the resampling kept: the margin surface is placed at "
    "their 0.5 level, not on the thresholded voxels"
)


def fraction_image(fraction: sitk.Image, label: float) -> sitk.Image:
    """``fraction`` as float32, marked as the partial-volume fraction of a binary mask.

    Parameters
    ----------
    fraction : SimpleITK.Image
        Fraction (0..1) of each voxel inside the mask, e.g. the linear resampling of
        the mask's indicator onto an orthogonal grid.
    label : float
        The mask's non-zero value (what :func:`split_fraction` gives back as label).
    """
    out = sitk.Cast(fraction, sitk.sitkFloat32)
    out.SetMetaData(FRACTION_KEY, repr(float(label)))
    return out


def split_fraction(image: sitk.Image) -> tuple[sitk.Image, sitk.Image | None]:
    """``(labels, fraction)`` of an image marked by :func:`fraction_image`, else ``(image, None)``.

    ``labels`` (float32) holds the mask's label where the fraction is >= 0.5 and 0
    elsewhere: what the reader gives without fractions.
    """
    if not image.HasMetaDataKey(FRACTION_KEY):
        return image, None
    label = float(image.GetMetaData(FRACTION_KEY))
    values = sitk.GetArrayFromImage(image)
    fraction = sitk.GetImageFromArray(values)
    fraction.CopyInformation(image)
    labels = sitk.GetImageFromArray(np.where(values >= 0.5, label, 0.0).astype(np.float32))
    labels.CopyInformation(image)
    return labels, fraction


def check_mask_threshold(threshold: float | None) -> float | None:
    """Validate ``--mask-threshold`` before any file is read: finite, in (0, 65535].

    The threshold applies to non-binary float masks (voxels ``>= threshold`` are inside).
    The range is that of the probability maps HepaNav reads (fractions 0-1, percent,
    8/16-bit scaled, see ``MASK_THRESHOLD_MAX``); once the mask is read the threshold
    must also lie strictly inside its values (``(0, 1)`` for fractions), else the mask
    would be all or nothing. ``None`` (not given) passes through.

    Raises
    ------
    InputError
        One line naming ``--mask-threshold`` and the allowed range.
    """
    from hepanav.core.limits import check_number

    return check_number(threshold, "--mask-threshold", 0.0, MASK_THRESHOLD_MAX, lo_open=True)


def check_threshold_within(threshold: float, lo: float, hi: float, source) -> None:
    """Refuse a ``--mask-threshold`` that would make a float mask all or nothing.

    A mask of fractions (values within [0, 1]) needs a threshold strictly in (0, 1);
    any other float mask a threshold in (min, max] of its values.

    Raises
    ------
    InputError
        Naming ``--mask-threshold``, the threshold and the mask's value range.
    """
    if lo >= 0 and hi <= 1 + 1e-6:
        if not 0 < threshold < 1:
            raise InputError(
                f"{threshold:g} must be strictly between 0 and 1 for a mask of fractions "
                f"({source})",
                "--mask-threshold",
            )
    elif not lo < threshold <= hi:
        raise InputError(
            f"{threshold:g} selects all or none of the mask {source} (values {lo:g} to {hi:g})",
            "--mask-threshold",
        )


def binarize(image: sitk.Image, label: int | None = None) -> sitk.Image:
    """uint8 0/1 mask: voxels equal to ``label``, or all non-zero voxels when ``label`` is None."""
    if label is not None:
        return select_labels(image, label)
    return sitk.Cast(image != 0, sitk.sitkUInt8)


def require_nonempty(mask: sitk.Image, source: str | Path) -> None:
    """Raise ``InputError`` naming ``source`` when ``mask`` has no foreground voxel."""
    if not np.any(sitk.GetArrayViewFromImage(mask)):
        raise InputError("mask is empty (no non-zero voxel)", source)


def read_mask(
    path: str | Path,
    reference: sitk.Image | None = None,
    label: int | None = None,
    *,
    labels: LabelSpec | str | None = None,
    threshold: float | None = None,
) -> sitk.Image:
    """Read a mask as uint8 0/1 on ``reference`` (see :func:`load_mask`; record dropped).

    ``label`` (one value) is kept for older callers; ``labels`` takes numbers or names.
    """
    wanted = labels if labels is not None else label
    return load_mask(path, reference=reference, labels=wanted, threshold=threshold)[0]


def load_mask(
    path: str | Path,
    role: str = "mask",
    *,
    reference: sitk.Image | None = None,
    reference_record: InputRecord | None = None,
    labels: LabelSpec | str | int | None = None,
    threshold: float | None = None,
    grid: sitk.Image | None = None,
    option: str = "--label",
    require_inside: bool = False,
) -> tuple[sitk.Image, InputRecord]:
    """Read a mask from any supported kind of file as uint8 0/1, with its record.

    The arguments, the mask and the errors are those of :func:`load_mask_occupancy`;
    the partial-volume fraction is dropped (and not mentioned in the notes).
    """
    mask, record, _ = load_mask_occupancy(
        path,
        role,
        reference=reference,
        reference_record=reference_record,
        labels=labels,
        threshold=threshold,
        grid=grid,
        option=option,
        require_inside=require_inside,
        _say_fractions=False,
    )
    return mask, record


def load_mask_occupancy(
    path: str | Path,
    role: str = "mask",
    *,
    reference: sitk.Image | None = None,
    reference_record: InputRecord | None = None,
    labels: LabelSpec | str | int | None = None,
    threshold: float | None = None,
    grid: sitk.Image | None = None,
    option: str = "--label",
    require_inside: bool = False,
    _say_fractions: bool = True,
) -> tuple[sitk.Image, InputRecord, sitk.Image | None]:
    """Read a mask from any supported kind of file as uint8 0/1, with its record and,
    when the mask had to be resampled, its partial-volume fraction.

    Parameters
    ----------
    path : str or Path
        A binary mask or label map (NIfTI, NRRD, MHA/MHD, DICOM series folder), a
        DICOM SEG, a DICOM RTSTRUCT, or a 3D Slicer ``.seg.nrrd``; a folder holding
        one SEG or RTSTRUCT file is read as that file.
    role : str
        What the mask is (``tumor``, ``ablation``...), written in the record.
    reference : SimpleITK.Image, optional
        The mask is resampled onto this grid in physical space when the grids
        differ (and must overlap it). RTSTRUCT contours are rasterised on it.
    reference_record : InputRecord, optional
        The reference image's record: a SEG or RTSTRUCT drawn on another series
        or frame of reference is refused.
    labels : str, int or tuple, optional
        Label values, segment/ROI numbers or names to select (``"1,2"``,
        ``"liver"``); several are united. Needed for label maps with several
        labels and files with several segments or ROIs.
    threshold : float, optional
        Threshold for non-binary float masks (fractions, probabilities); 0.5 when
        omitted, said in the record's notes.
    grid : SimpleITK.Image, optional
        Grid to rasterise an RTSTRUCT on when there is no ``reference``.
    option : str
        The command-line option named in errors about labels (``--tumor-label``).
    require_inside : bool
        An RTSTRUCT whose contours lie partly outside the grid they are rasterised on
        is refused (how far, which side) instead of cut there (:func:`read_rtstruct`).
        Masks of the other kinds keep their own grid (or are resampled onto
        ``reference``): check them against the image with
        :func:`hepanav.imaging.geometry.mask_outside_ml`.

    Returns
    -------
    (SimpleITK.Image, InputRecord, SimpleITK.Image or None)
        The mask (uint8 0/1), its record, and the fraction (float32, 0..1, on the
        mask's grid; the mask is ``fraction >= 0.5``) when the reader regularised a
        binary mask (gantry tilt, sheared NIfTI/NRRD/MHA grid) or the mask was
        resampled onto ``reference`` (linear interpolation of the indicator); None
        when the mask was taken voxel for voxel. Thresholding the fraction at 0.5 and
        measuring the surface of the voxels quantises the surface twice (on the
        source grid and on the new one); :func:`hepanav.margin.measure.measure_margin`
        places it from the fraction instead, and the record's notes say so.

    Raises
    ------
    InputError
        Unreadable or truncated file, not a regular file, several labels or
        segments without a choice (those present are listed), an unknown label,
        float values that are neither 0/1 nor fractions, another series or frame
        of reference than the reference image, empty mask, no overlap.
    """
    from hepanav.imaging.header import require_clinical_spacing
    from hepanav.imaging.io import load_image, require_regular_input

    path = Path(path)
    wanted = parse_labels(labels, option)
    require_regular_input(path)
    check_mask_threshold(threshold)
    kind = sniff_mask_file(path)
    fraction = None
    if kind[0] == "seg":
        mask, record = read_seg(kind[1], wanted, threshold, role)
        _check_derived_reference(kind[1], record, reference_record)
    elif kind[0] == "rtstruct":
        target = reference if reference is not None else grid
        if target is None:
            raise InputError(
                "an RTSTRUCT needs the image it was drawn on to be rasterised; give that CT",
                path,
            )
        mask, record = read_rtstruct(
            kind[1], target, wanted, reference_record, role, require_inside=require_inside
        )
    elif kind[0] == "slicer-seg":
        mask, record = read_slicer_seg(path, wanted, role)
    else:
        image, record = load_image(path, role, is_label=True, fractions=True)
        image, fraction = split_fraction(image)
        record.role = role
        mask, notes, segment = mask_from_values(image, wanted, threshold, path, option)
        record.segment = segment
        record.notes.extend(notes)
    require_clinical_spacing(mask, path)
    require_nonempty(mask, path)
    if reference is not None and not same_grid(mask, reference):
        require_overlap(mask, reference, path)
        # The indicator (or the reader's fraction) interpolated linearly and cut at 0.5:
        # keeps the volume on a finer or rotated grid (nearest neighbour does not).
        source = fraction if fraction is not None else sitk.Cast(mask > 0, sitk.sitkFloat32)
        fraction = resample_like(source, reference, pixel_type=sitk.sitkFloat32)
        mask = sitk.Cast(fraction >= 0.5, sitk.sitkUInt8)
        if not np.any(sitk.GetArrayViewFromImage(mask)):
            raise InputError("mask lies outside the image after resampling onto it", path)
        record.notes.append("resampled onto the image grid in physical space")
    if fraction is not None and _say_fractions:
        record.notes.append(FRACTION_NOTE)
    record_geometry(record, mask)
    return mask, record, fraction


def sniff_mask_file(path: Path) -> tuple[str, Path]:
    """``(kind, file)``: kind is 'seg', 'rtstruct', 'slicer-seg' or 'image'."""
    if is_slicer_seg(path):
        return "slicer-seg", path
    candidates = [path]
    if path.is_dir():
        candidates = [p for p in sorted(path.iterdir()) if p.is_file()]
    classes = {p: _sop_class(p) for p in candidates[:5000]}
    derived = {p: c for p, c in classes.items() if c in (SEG_SOP_CLASS, RTSTRUCT_SOP_CLASS)}
    if derived:
        if path.is_dir() and len(derived) > 1:
            raise InputError(
                f"folder holds {len(derived)} SEG/RTSTRUCT files; give the file itself", path
            )
        file, sop = next(iter(derived.items()))
        return ("seg" if sop == SEG_SOP_CLASS else "rtstruct"), file
    return "image", path


def _sop_class(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
        if head[128:132] != b"DICM" and path.suffix.lower() != ".dcm":
            return None
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=["SOPClassUID"])
        return str(getattr(ds, "SOPClassUID", "")) or None
    except Exception:  # not DICOM: left to the image reader
        return None


def _check_derived_reference(path, record: InputRecord, reference_record: InputRecord | None):
    if reference_record is None:
        return
    ref_for, ref_series = (
        reference_record.frame_of_reference_uid,
        reference_record.series_instance_uid,
    )
    if record.frame_of_reference_uid and ref_for and record.frame_of_reference_uid != ref_for:
        raise InputError(
            f"{record.format} is in frame of reference {record.frame_of_reference_uid}, the image "
            f"({reference_record.file}) in {ref_for}; use the segmentation made on this image",
            path,
        )
    if record.referenced_series_uid and ref_series and record.referenced_series_uid != ref_series:
        raise InputError(
            f"{record.format} was made on series {record.referenced_series_uid}, not on the image "
            f"it is used with ({reference_record.file}, series {ref_series})",
            path,
        )


def mask_from_values(
    image: sitk.Image,
    labels: LabelSpec | None,
    threshold: float | None,
    source: str | Path,
    option: str = "--label",
) -> tuple[sitk.Image, list[str], str | None]:
    """Binary uint8 mask from a binary mask, a label map or a float (fraction) mask.

    Returns ``(mask, notes, chosen-labels text)``. A label map with several labels
    and no choice is refused naming the labels; a float mask with values between 0
    and 1 is thresholded at ``threshold`` (0.5 by default) with a note; one whose values
    all lie below the threshold is refused naming the threshold, the value range and
    ``--mask-threshold`` (``InputError``), not called empty.
    """
    array = sitk.GetArrayViewFromImage(image)
    notes: list[str] = []
    is_float = np.issubdtype(array.dtype, np.floating)
    if is_float and not np.all(np.isfinite(array)):
        raise InputError("mask holds NaN or infinite values", source)
    fractional = is_float and bool(np.any(array != np.round(array)))
    names = sidecar_label_names(source) if not Path(source).is_dir() else {}
    if labels:
        if fractional:
            raise InputError(
                "a float mask with fractions has no labels to choose; omit " + option, source
            )
        present = distinct_values(array)
        values = [int(v) for v in present if v != 0]
        wanted: list[int] = []
        for item in labels:
            if isinstance(item, str):
                hits = [k for k, v in names.items() if v.lower() == item.lower()]
                if not hits:
                    raise InputError(
                        f"label name {item!r} unknown: "
                        + (
                            f"names are {', '.join(sorted(names.values()))}"
                            if names
                            else "no <name>.json or labels.json sidecar names them; use numbers"
                        )
                        + f" (labels present: {_list(values, names)})",
                        source,
                    )
                item = hits[0]
            if item not in values:
                raise InputError(
                    f"label {item} not present; labels present: {_list(values, names)}", source
                )
            wanted.append(item)
        return select_labels(image, wanted), notes, ", ".join(map(str, wanted))
    if fractional:
        lo, hi = float(array.min()), float(array.max())
        if threshold is None:
            if lo < 0 or hi > 1 + 1e-6:
                raise InputError(
                    f"float mask with values from {lo:g} to {hi:g} is neither 0/1 nor fractions; "
                    "give --mask-threshold",
                    source,
                )
            threshold = 0.5
            notes.append("non-binary float mask thresholded at 0.5 (default; set --mask-threshold)")
        else:
            check_threshold_within(threshold, lo, hi, source)
            notes.append(f"non-binary float mask thresholded at {threshold:g} (--mask-threshold)")
        if hi < threshold:  # not empty: every non-zero value lies below the threshold
            raise InputError(
                f"every value of the float mask is below the mask threshold {threshold:g} "
                f"(values {lo:g} to {hi:g}): no voxel is inside; give a lower --mask-threshold",
                source,
            )
        mask = sitk.Cast(image >= float(threshold), sitk.sitkUInt8)
        return mask, notes, None
    values = distinct_values(array)
    nonzero = [v for v in values.tolist() if v != 0]
    if len(nonzero) > 1:
        if len(nonzero) > 50:
            raise InputError(
                f"holds {len(nonzero)} distinct values ({min(nonzero):g}..{max(nonzero):g}): "
                "an image, not a mask or label map",
                source,
            )
        raise InputError(
            f"is a label map with labels {_list([int(v) for v in nonzero], names)}; choose with "
            f"{option} (one or several numbers or names)",
            source,
        )
    return sitk.Cast(image != 0, sitk.sitkUInt8), notes, None


def distinct_values(array: np.ndarray) -> np.ndarray:
    """Sorted distinct values; a histogram for small integer types (a sort is 10x slower)."""
    if array.dtype.kind in "iub" and array.dtype.itemsize <= 2 and array.size:
        flat = np.asarray(array).ravel()
        low = int(flat.min())
        counts = np.bincount(flat.astype(np.int64) - low)
        return np.flatnonzero(counts) + low
    return np.unique(array)


def _list(values: list[int], names: dict[int, str]) -> str:
    return ", ".join(f"{v} ({names[v]})" if v in names else str(v) for v in values)


def volume_ml(mask: sitk.Image) -> float:
    """Volume of the non-zero voxels of ``mask`` in millilitres (voxel counting)."""
    count = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
    return count * float(np.prod(mask.GetSpacing())) / 1000.0


def dice(a: sitk.Image, b: sitk.Image) -> float:
    """Dice overlap of two binary masks on the same grid (1 = identical)."""
    x = sitk.GetArrayViewFromImage(a) > 0
    y = sitk.GetArrayViewFromImage(b) > 0
    denom = int(x.sum()) + int(y.sum())
    return 1.0 if denom == 0 else 2.0 * int(np.logical_and(x, y).sum()) / denom


def bounding_box_index(mask: sitk.Image, pad_mm: float = 0.0) -> tuple[list[int], list[int]]:
    """Index box ``(start_xyz, size_xyz)`` of the foreground, grown by ``pad_mm`` and clipped.

    The box is found from the mask's projections on each axis, which is far faster
    than ``np.nonzero`` on a 512 x 512 x 300 volume.
    """
    array = sitk.GetArrayViewFromImage(mask)
    lo, hi = [], []
    for axis in (2, 1, 0):  # array axes of x, y, z
        others = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(np.any(array, axis=others))
        if hit.size == 0:
            raise InputError("mask is empty (no non-zero voxel)", "mask")
        lo.append(hit[0])
        hi.append(hit[-1])
    pad = np.ceil(pad_mm / np.asarray(mask.GetSpacing())).astype(int)
    start = np.maximum(np.array(lo) - pad, 0)
    stop = np.minimum(np.array(hi) + pad, np.asarray(mask.GetSize()) - 1)
    return start.tolist(), (stop - start + 1).tolist()


def crop(image: sitk.Image, start_xyz: list[int], size_xyz: list[int]) -> sitk.Image:
    """Crop ``image`` to an index box; the result keeps its physical position."""
    return sitk.RegionOfInterest(image, size_xyz, start_xyz)
