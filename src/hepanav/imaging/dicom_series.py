"""DICOM CT series and Enhanced (multi-frame) CT read from their headers (pydicom).

SimpleITK/GDCM sort slices by position but assume the slices are stacked along
their normal at even steps, and take the geometry from the first file. Real
folders break that: gantry tilt (the stack is oblique to the slice normal),
variable pitch, localizer (scout) images in the series, duplicated slices,
per-slice Rescale Slope/Intercept, Enhanced CT whose frames carry their own
positions (DICOM PS3.3 C.7.6.16, Multi-frame Functional Groups). This module
checks every file's orientation and position against the slice normal, drops
what is not part of the volume (and says so), and regularises tilted or
unevenly spaced stacks onto an orthogonal grid in physical space with linear
interpolation between neighbouring slices, as 3D Slicer's "acquisition geometry
regularization" and dcm2niix's tilt correction do.

An image stacked from its slices as they are (no regularisation) remembers each
slice's Instance Number (0020,0013), what a PACS shows: :func:`instance_numbers`.
"""

from __future__ import annotations

import weakref
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from scipy import ndimage

from hepanav.core.errors import InputError
from hepanav.imaging.schema import InputRecord, display_name

# Objects that are not image slices (they have no pixel grid of their own).
_NON_IMAGE_MODALITIES = {"SEG", "RTSTRUCT", "SR", "PR", "KO", "REG", "RTPLAN", "RTDOSE", "DOC"}
# Relative tolerance on slice steps: scanners write positions rounded to ~0.01 mm.
_SPACING_RTOL = 0.02
# Larger angles between the stack and the slice normal are not a gantry tilt.
_MAX_TILT_DEG = 45.0
_MAX_FILES = 20000


@dataclass
class Frame:
    """One 2D slice: a single-frame file or one frame of an Enhanced CT file."""

    file: Path
    frame: int  # 0-based frame index in its file
    position: np.ndarray  # Image Position (Patient), LPS mm of the first pixel's centre
    orientation: np.ndarray  # 6 direction cosines: row direction, then column direction
    shape: tuple[int, int]  # rows, columns
    pixel_spacing: tuple[float, float]  # between rows, between columns (mm)
    slope: float
    intercept: float
    localizer: bool
    sop_uid: str
    pixels: np.ndarray | None = field(default=None, repr=False)
    instance: int | None = None  # Instance Number (0020,0013); None for Enhanced CT frames

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.orientation[:3], self.orientation[3:])


@dataclass
class SeriesInfo:
    """What a folder holds per series: used to list and choose series."""

    uid: str  # Series Instance UID; "" when the files carry none (anonymised exports)
    description: str
    modality: str
    files: list[Path]
    frames: int
    localizer_only: bool
    image: bool
    header: pydicom.Dataset | None = field(default=None, repr=False)
    label: str = ""  # handle for --series when there is no UID: "no-UID-1", "no-UID-2", ...

    @property
    def handle(self) -> str:
        return self.uid or self.label

    def describe(self) -> str:
        what = f"{self.frames} {'frame' if self.frames == 1 else 'slices'}"
        number = _str(self.header, "SeriesNumber")
        extra = f" (no Series Instance UID, series number {number or '?'})" if not self.uid else ""
        return f"{self.handle}{extra} '{self.description}' {self.modality or '?'} {what}"


def scan_folder(folder: Path) -> tuple[dict[str, SeriesInfo], int]:
    """Group the DICOM files of ``folder`` (not recursive) by series identity.

    The identity is the Series Instance UID; files without one (anonymised exports
    strip it) are grouped by :func:`_identity` instead, so that two such series in
    one folder are never merged into one stack. Returns the series (keyed by that
    identity) and the number of files that are not DICOM.
    """
    files = [p for p in sorted(folder.iterdir()) if not p.name.startswith(".")]
    if len(files) > _MAX_FILES:
        raise InputError(f"folder holds {len(files)} files; at most {_MAX_FILES} are read", folder)
    series: dict[str, SeriesInfo] = {}
    skipped = 0
    for path in files:
        if not path.is_file():
            continue
        ds = _header(path)
        if ds is None:
            skipped += 1
            continue
        _add(series, path, ds)
    for n, info in enumerate((s for s in series.values() if not s.uid), start=1):
        info.label = f"no-UID-{n}"
    return series, skipped


def _header(path: Path) -> pydicom.Dataset | None:
    try:
        return pydicom.dcmread(str(path), stop_before_pixels=True)
    except Exception:  # InvalidDicomError, truncated headers: not a DICOM slice
        return None


def _identity(ds: pydicom.Dataset) -> str:
    """Series identity of a file without Series Instance UID.

    Series Number and Description, the study, Frame of Reference, series/acquisition
    date and time, modality and the slice orientation: what differs between two
    series of one study even when the UIDs were stripped (a localizer in such a
    folder becomes its own, localizer-only, series and is passed over).
    """
    orientation = getattr(ds, "ImageOrientationPatient", None)
    try:
        ori = tuple(round(float(v), 3) + 0.0 for v in orientation) if orientation else ()
    except (TypeError, ValueError):
        ori = ()
    fields = [
        "SeriesNumber",
        "SeriesDescription",
        "StudyInstanceUID",
        "FrameOfReferenceUID",
        "SeriesDate",
        "SeriesTime",
        "Modality",
    ]
    return "no-UID|" + "|".join(str(getattr(ds, k, "") or "") for k in fields) + f"|{ori}"


def _add(series: dict[str, SeriesInfo], path: Path, ds: pydicom.Dataset) -> None:
    uid = str(getattr(ds, "SeriesInstanceUID", "") or "")
    key = uid or _identity(ds)
    modality = str(getattr(ds, "Modality", "") or "")
    image = modality not in _NON_IMAGE_MODALITIES and (
        "ImagePositionPatient" in ds or "PerFrameFunctionalGroupsSequence" in ds
    )
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    localizer = "LOCALIZER" in [str(v).upper() for v in (getattr(ds, "ImageType", []) or [])]
    info = series.get(key)
    if info is None:
        info = series[key] = SeriesInfo(
            uid=uid,
            description=str(getattr(ds, "SeriesDescription", "") or ""),
            modality=modality,
            files=[],
            frames=0,
            localizer_only=True,
            image=image,
            header=ds,
        )
    info.files.append(path)
    info.frames += frames
    info.localizer_only &= localizer
    info.image |= image


def choose_series(
    series: dict[str, SeriesInfo], wanted: str | None, folder: Path
) -> tuple[SeriesInfo, list[str]]:
    """The series to read: the only image series, or the one ``wanted`` names.

    Series made only of localizer images are passed over (with a note) unless
    named. Raises ``InputError`` listing every series (UID, description,
    modality, slice count) when the choice is ambiguous or matches nothing.
    """
    images = [s for s in series.values() if s.image]
    listing = "; ".join(s.describe() for s in images)
    if not images:
        raise InputError("no DICOM series found in this folder", folder)
    notes: list[str] = []
    if wanted:
        key = wanted.strip()
        hits = [s for s in images if s.handle == key]
        if not hits:
            hits = [s for s in images if key.lower() in s.description.lower()]
        if not hits:
            raise InputError(
                f"no series matches --series {key!r}; series present: {listing}", folder
            )
        if len(hits) > 1:
            raise InputError(
                f"--series {key!r} matches {len(hits)} series "
                f"({'; '.join(s.describe() for s in hits)}); "
                "give the Series Instance UID (or the no-UID-n handle listed)",
                folder,
            )
        chosen = hits[0]
    else:
        volumes = [s for s in images if not s.localizer_only] or images
        if len(volumes) > 1:
            raise InputError(
                f"folder holds {len(volumes)} DICOM series ({listing}); choose one with "
                "--series UID or a description substring"
                + (" (or the no-UID-n handle listed)" if any(not v.uid for v in volumes) else ""),
                folder,
            )
        chosen = volumes[0]
        passed = [s for s in images if s is not chosen]
        if passed:
            notes.append(
                f"passed over {len(passed)} localizer-only series "
                f"({'; '.join(s.describe() for s in passed)})"
            )
    others = [s for s in series.values() if not s.image]
    if others:
        notes.append(
            f"ignored {sum(len(s.files) for s in others)} non-image DICOM object(s) in the folder"
        )
    return chosen, notes


def read_dicom_path(
    path: str | Path,
    series: str | None = None,
    role: str = "image",
    is_label: bool = False,
    fractions: bool = False,
) -> tuple[sitk.Image, InputRecord]:
    """Read a DICOM series folder or an Enhanced CT file as a 3D image in LPS mm.

    :func:`read_dicom_frames` without the frames kept.
    """
    image, record, _ = read_dicom_frames(path, series, role, is_label, fractions)
    return image, record


def read_dicom_frames(
    path: str | Path,
    series: str | None = None,
    role: str = "image",
    is_label: bool = False,
    fractions: bool = False,
) -> tuple[sitk.Image, InputRecord, list[Frame]]:
    """Read a DICOM series folder or an Enhanced CT file as a 3D image in LPS mm, and
    return the frames that make up the image (ascending along the slice normal; their
    pixels released).

    The one reader of DICOM CT series: the images of every command (``margin``,
    ``segment``, ``plan``) and the source slices that DICOM objects reference
    (:func:`hepanav.imaging.dicomout.read_source_series`) are the same frames, dropped
    for the same reasons and said in the same notes.

    Parameters
    ----------
    path : str or Path
        A folder with one or several DICOM series (choose with ``series``), or one
        multi-frame (Enhanced CT) file.
    series : str, optional
        Series Instance UID or a substring of the Series Description.
    role : str
        Written in the returned record.
    is_label : bool
        A mask or label map: each label's fraction is interpolated and cut at 0.5
        when regularising, instead of interpolating the values.
    fractions : bool
        With ``is_label``: a binary mask (one non-zero value) that had to be
        regularised comes back as its float32 partial-volume fraction, marked by
        :func:`hepanav.imaging.masks.fraction_image`.

    Returns
    -------
    (SimpleITK.Image, InputRecord, list of Frame)
        Hounsfield units (per-slice Rescale Slope/Intercept applied exactly; int16
        when every value is an integer, else float32), the record whose notes
        say every file dropped (and why) and every regularisation, and the frames kept.

    Raises
    ------
    InputError
        No or several series (listed), fewer than 2 slices, missing slices, unevenly
        spaced slices that are not a variable-pitch series, different slices at one
        position, slices not stacked along a line, unreadable pixel data.
    """
    path = Path(path)
    if path.is_dir():
        found, _ = scan_folder(path)
        info, notes = choose_series(found, series, path)
        files = info.files
    else:
        ds = _header(path)
        if ds is None:
            raise InputError("not a readable DICOM file", path)
        found: dict[str, SeriesInfo] = {}
        _add(found, path, ds)
        info, notes = choose_series(found, series, path)
        files = [path]
    frames = [f for per_file in _map_files(_frames_of, files) for f in per_file]
    kept: list[Frame] = []
    image, more = frames_to_image(frames, path, is_label=is_label, fractions=fractions, kept=kept)
    for f in kept:
        f.pixels = None  # in the image now
    header = info.header
    record = InputRecord(
        role=role,
        file=display_name(path),
        format="DICOM Enhanced CT" if any(f.frame > 0 for f in frames) else "DICOM series",
        series_instance_uid=info.uid or None,
        study_instance_uid=_str(header, "StudyInstanceUID"),
        frame_of_reference_uid=_str(header, "FrameOfReferenceUID"),
        series_description=info.description or None,
        modality=info.modality or None,
        acquisition_date=_str(header, "AcquisitionDate")
        or _str(header, "SeriesDate")
        or _str(header, "StudyDate"),
        notes=notes + more,
    )
    return image, record, kept


def _map_files(func, files: list[Path]) -> list:
    """``func`` over ``files`` on every core (decoding compressed slices dominates)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    workers = min(len(files), os.cpu_count() or 1)
    if workers <= 1:
        return [func(f) for f in files]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(func, files))


def _str(ds, keyword: str) -> str | None:
    value = getattr(ds, keyword, None) if ds is not None else None
    return str(value) if value not in (None, "") else None


def _group(ds, index: int, sequence: str):
    """Functional group item ``sequence`` of frame ``index`` (per-frame, else shared)."""
    per_frame = getattr(ds, "PerFrameFunctionalGroupsSequence", None)
    if per_frame is not None and index < len(per_frame):
        item = getattr(per_frame[index], sequence, None)
        if item:
            return item[0]
    shared = getattr(ds, "SharedFunctionalGroupsSequence", None)
    if shared:
        item = getattr(shared[0], sequence, None)
        if item:
            return item[0]
    return None


def _floats(value, n: int, what: str, file: Path) -> np.ndarray:
    try:
        out = np.asarray([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        out = np.zeros(0)
    if out.size != n or not np.all(np.isfinite(out)):
        raise InputError(f"{what} must hold {n} finite numbers", file)
    return out


def _frames_of(file: Path) -> list[Frame]:
    """Read one file (pixels included) into its frames."""
    try:
        ds = pydicom.dcmread(str(file))
    except Exception as exc:
        raise InputError(f"cannot read DICOM file ({_line(exc)})", file) from None
    pixels = _pixels(ds, file)
    image_type = [str(v).upper() for v in (getattr(ds, "ImageType", []) or [])]
    rows, cols = int(ds.Rows), int(ds.Columns)
    count = int(getattr(ds, "NumberOfFrames", 1) or 1)
    frames = []
    if "PerFrameFunctionalGroupsSequence" in ds or count > 1:
        for i in range(count):
            pos = _group(ds, i, "PlanePositionSequence")
            ori = _group(ds, i, "PlaneOrientationSequence")
            meas = _group(ds, i, "PixelMeasuresSequence")
            trans = _group(ds, i, "PixelValueTransformationSequence")
            ftype = _group(ds, i, "CTImageFrameTypeSequence")
            if pos is None or ori is None or meas is None:
                raise InputError(
                    f"frame {i + 1} has no Plane Position/Orientation or Pixel Measures "
                    "functional group",
                    file,
                )
            frame_type = [str(v).upper() for v in (getattr(ftype, "FrameType", []) or [])]
            frames.append(
                Frame(
                    file=file,
                    frame=i,
                    position=_floats(pos.ImagePositionPatient, 3, "Image Position (Patient)", file),
                    orientation=_floats(
                        ori.ImageOrientationPatient, 6, "Image Orientation (Patient)", file
                    ),
                    shape=(rows, cols),
                    pixel_spacing=tuple(_floats(meas.PixelSpacing, 2, "Pixel Spacing", file)),
                    slope=float(getattr(trans, "RescaleSlope", 1.0) if trans else 1.0),
                    intercept=float(getattr(trans, "RescaleIntercept", 0.0) if trans else 0.0),
                    localizer="LOCALIZER" in frame_type or "LOCALIZER" in image_type,
                    sop_uid=f"{getattr(ds, 'SOPInstanceUID', file.name)}#{i + 1}",
                    pixels=pixels[i] if pixels.ndim == 3 else pixels,
                )
            )
        return frames
    if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
        raise InputError(
            "DICOM file has no Image Position/Orientation (Patient); not a CT slice", file
        )
    return [
        Frame(
            file=file,
            frame=0,
            position=_floats(ds.ImagePositionPatient, 3, "Image Position (Patient)", file),
            orientation=_floats(ds.ImageOrientationPatient, 6, "Image Orientation (Patient)", file),
            shape=(rows, cols),
            pixel_spacing=tuple(
                _floats(getattr(ds, "PixelSpacing", [1, 1]), 2, "Pixel Spacing", file)
            ),
            slope=float(getattr(ds, "RescaleSlope", 1.0) or 1.0),
            intercept=float(getattr(ds, "RescaleIntercept", 0.0) or 0.0),
            localizer="LOCALIZER" in image_type,
            sop_uid=str(getattr(ds, "SOPInstanceUID", file.name)),
            pixels=pixels if pixels.ndim == 2 else pixels[0],
            instance=_instance_number(ds),
        )
    ]


def _instance_number(ds: pydicom.Dataset) -> int | None:
    """Instance Number (0020,0013) as an integer, None when absent or not an integer."""
    value = getattr(ds, "InstanceNumber", None)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


#: id(image) -> (its geometry when stacked, Instance Number of each slice k).
_INSTANCES: dict[int, tuple[tuple, tuple[int | None, ...]]] = {}


def _geometry(image: sitk.Image) -> tuple:
    return (image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection())


def _remember_instances(image: sitk.Image, frames: list[Frame]) -> None:
    """Remember the Instance Number of each slice of ``image`` (stacked from ``frames``
    one for one, in its slice order) for as long as the image object lives."""
    numbers = tuple(f.instance for f in frames)
    if len(numbers) != image.GetSize()[2] or all(n is None for n in numbers):
        return
    key = id(image)
    _INSTANCES[key] = (_geometry(image), numbers)
    weakref.finalize(image, _INSTANCES.pop, key, None)


def instance_numbers(image: sitk.Image) -> tuple[int | None, ...] | None:
    """The Instance Number (0020,0013) of each slice ``k`` (third index axis, 0-based) of
    ``image``, as the PACS numbers the series' images; None for an unknown slice.

    Known only for the very image object the DICOM reader returned when it stacked the
    slices as they are (no gantry-tilt or variable-pitch regularisation: those slices are
    interpolated, no file's), and while its size, spacing, origin and direction are
    those it was read with; any image made from it (a copy, a crop, a permutation, a
    resampling) has none. Returns None when none is known.
    """
    entry = _INSTANCES.get(id(image))
    if entry is None or entry[0] != _geometry(image):
        return None
    return entry[1]


def _pixels(ds: pydicom.Dataset, file: Path) -> np.ndarray:
    """Stored pixel values (before Rescale Slope/Intercept)."""
    if "PixelData" not in ds:
        raise InputError("DICOM image has no pixel data", file)
    try:
        return np.asarray(ds.pixel_array)
    except (RuntimeError, NotImplementedError) as exc:  # no decoder here: let GDCM decode it
        first = _line(exc)
    except Exception as exc:  # short or malformed pixel data: never padded
        raise InputError(f"pixel data is truncated or corrupt ({_line(exc)})", file) from None
    from hepanav.imaging.io import captured_native_stderr

    try:
        with captured_native_stderr():
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(file))
            # GDCM applies Rescale Slope/Intercept itself: undo it to get stored values.
            array = sitk.GetArrayFromImage(reader.Execute()).astype(np.float64)
    except RuntimeError:
        raise InputError(f"cannot decode pixel data ({first})", file) from None
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    return (array - intercept) / slope


def frames_to_image(
    frames: list[Frame],
    source: Path,
    is_label: bool = False,
    fractions: bool = False,
    kept: list[Frame] | None = None,
) -> tuple[sitk.Image, list[str]]:
    """Check, filter, sort and stack frames into a 3D image; see the module docstring.

    ``kept``, when given, receives the frames the image is made of, in its slice order.
    """
    notes: list[str] = []
    dropped: list[tuple[Frame, str]] = []  # frames left out of the stack and why
    frames = _drop_localizers(frames, notes, dropped)
    frames = _keep_majority(frames, notes, dropped)
    if len(frames) < 2:
        raise InputError(f"DICOM series has {len(frames)} slice; a 3D CT needs at least 2", source)
    row, col = frames[0].orientation[:3], frames[0].orientation[3:]
    if abs(row @ col) > 1e-3:
        raise InputError("Image Orientation (Patient) row and column are not orthogonal", source)
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    normal = np.cross(row, col)
    frames.sort(key=lambda f: float(f.position @ normal))
    frames = _drop_duplicates(frames, normal, notes, source)
    if len(frames) < 2:
        raise InputError("DICOM series has 1 distinct slice; a 3D CT needs at least 2", source)
    s = np.array([f.position @ normal for f in frames])
    steps = np.diff(s)
    _check_steps(
        steps,
        s,
        source,
        [(float(f.position @ normal), f"{_names([f])}: {why}") for f, why in dropped],
    )
    if kept is not None:
        kept[:] = frames
    dy, dx = frames[0].pixel_spacing  # between rows, between columns
    offsets = np.array(
        [
            [(f.position - frames[0].position) @ row, (f.position - frames[0].position) @ col]
            for f in frames
        ]
    )
    tilt = _tilt_degrees(frames, s, normal, offsets, (dx, dy), source)
    volume, dtype = _stack_values(frames, notes)
    uniform = np.allclose(steps, np.median(steps), rtol=_SPACING_RTOL, atol=0.0)
    in_plane_still = np.all(np.abs(offsets) < 0.01 * min(dx, dy) + 1e-3)
    if uniform and in_plane_still:
        step = float(np.median(steps))
        image = sitk.GetImageFromArray(volume.astype(dtype))
        image.SetSpacing((dx, dy, step))
        image.SetOrigin(frames[0].position.tolist())
        image.SetDirection(np.stack([row, col, normal], axis=1).flatten().tolist())
        _remember_instances(image, frames)
        return image, notes
    image = _regularise(
        volume, frames, s, offsets, row, col, normal, (dx, dy), uniform, is_label, fractions
    )
    size = "x".join(map(str, image.GetSize()))
    spacing = "/".join(f"{v:.3g}" for v in image.GetSpacing())
    if not in_plane_still:
        notes.append(
            f"gantry tilt of {tilt:.1f} degrees regularised onto an orthogonal grid in physical "
            f"space ({size} voxels, {spacing} mm), as 3D Slicer and dcm2niix do"
        )
    if not uniform:
        notes.append(
            f"variable slice spacing ({steps.min():.3g} to {steps.max():.3g} mm) regularised "
            f"onto a regular {image.GetSpacing()[2]:.3g} mm grid in physical space "
            "(linear interpolation between neighbouring slices)"
        )
    return image, notes


def _drop_localizers(
    frames: list[Frame], notes: list[str], dropped: list[tuple[Frame, str]] | None = None
) -> list[Frame]:
    scouts = [f for f in frames if f.localizer]
    if scouts and len(scouts) < len(frames):
        notes.append(f"dropped {len(scouts)} localizer (scout) image(s): {_names(scouts)}")
        if dropped is not None:
            dropped += [(f, "a localizer (scout) image") for f in scouts]
        return [f for f in frames if not f.localizer]
    return frames


def _keep_majority(
    frames: list[Frame], notes: list[str], dropped: list[tuple[Frame, str]] | None = None
) -> list[Frame]:
    def key(f: Frame):
        return (tuple(np.round(f.orientation, 3)), f.shape, tuple(np.round(f.pixel_spacing, 4)))

    counts = Counter(key(f) for f in frames)
    best, n = counts.most_common(1)[0]
    if n < len(frames):
        odd = [f for f in frames if key(f) != best]
        if n <= len(odd):
            raise InputError(
                "slices of the series differ in orientation, size or pixel spacing and no "
                "majority is clear; split the series",
                frames[0].file.parent,
            )
        reference = next(f for f in frames if key(f) == best)
        whys = {f.file: _difference(f, reference, n) for f in odd}
        notes.append(
            f"dropped {len(odd)} image(s) that differ from the other {n}: "
            + "; ".join(f"{_names([f])} ({whys[f.file]})" for f in odd[:3])
            + (f" and {len(odd) - 3} more" if len(odd) > 3 else "")
        )
        if dropped is not None:
            dropped += [(f, whys[f.file]) for f in odd]
    return [f for f in frames if key(f) == best]


def _difference(f: Frame, ref: Frame, n: int) -> str:
    """What sets frame ``f`` apart from ``ref`` (one of the ``n`` majority frames)."""
    parts = []
    if not np.allclose(np.round(f.orientation, 3), np.round(ref.orientation, 3)):
        parts.append("another orientation")
    if f.shape != ref.shape:
        parts.append(
            f"size {f.shape[1]}x{f.shape[0]} where the others have {ref.shape[1]}x{ref.shape[0]}"
        )
    if not np.allclose(np.round(f.pixel_spacing, 4), np.round(ref.pixel_spacing, 4)):
        parts.append(
            "pixel spacing "
            + "/".join(f"{v:.4g}" for v in f.pixel_spacing)
            + " mm where the others have "
            + "/".join(f"{v:.4g}" for v in ref.pixel_spacing)
            + " mm"
        )
    return ", ".join(parts) or "another geometry"


def _drop_duplicates(frames: list[Frame], normal, notes, source) -> list[Frame]:
    kept: list[Frame] = [frames[0]]
    dropped: list[Frame] = []
    for f in frames[1:]:
        prev = kept[-1]
        if np.linalg.norm(f.position - prev.position) < 1e-3:
            same = (
                f.slope == prev.slope
                and f.intercept == prev.intercept
                and np.array_equal(f.pixels, prev.pixels)
            )
            if not same:
                raise InputError(
                    f"two different slices at the same position "
                    f"({prev.file.name} and {f.file.name}, "
                    f"{float(f.position @ normal):.2f} mm along the slice normal); several "
                    "acquisitions in one series? split them",
                    source,
                )
            dropped.append(f)
            continue
        kept.append(f)
    if dropped:
        notes.append(f"dropped {len(dropped)} exact duplicate slice(s): {_names(dropped)}")
    return kept


def _check_steps(
    steps: np.ndarray,
    s: np.ndarray,
    source: Path,
    dropped: list[tuple[float, str]] | None = None,
) -> None:
    """Refuse missing slices and erratic steps; allow runs of one spacing (variable pitch).

    ``dropped`` (position along the normal, reason) are frames left out before stacking:
    a gap where one was is said as that drop, not as a missing slice.
    """
    if np.any(steps <= 1e-3):
        raise InputError("DICOM series has several slices at the same position", source)
    step = float(np.median(steps))
    close = lambda a, b: abs(a - b) <= _SPACING_RTOL * max(a, b)  # noqa: E731
    for i, gap in enumerate(steps):
        if close(gap, step):
            continue
        before = steps[i - 1] if i > 0 else None
        after = steps[i + 1] if i + 1 < len(steps) else None
        in_run = (before is not None and close(gap, before)) or (
            after is not None and close(gap, after)
        )
        between = (
            before is not None
            and after is not None
            and min(before, after) < gap < max(before, after)
        )
        if in_run or between:
            continue  # variable pitch: a run of another constant spacing, or its transition
        inside = [why for pos, why in (dropped or []) if s[i] + 1e-3 < pos < s[i + 1] - 1e-3]
        if inside:
            raise InputError(
                f"DICOM series has a gap of {gap:.2f} mm between slices {i} and {i + 1} (at "
                f"{s[i]:.2f} and {s[i + 1]:.2f} mm along the slice normal) where "
                + ("a slice was" if len(inside) == 1 else f"{len(inside)} slices were")
                + f" dropped, not missing: {'; '.join(inside[:3])}; the volume cannot be "
                "stacked without "
                + ("it" if len(inside) == 1 else "them")
                + ": repair or split the series",
                source,
            )
        ratio = gap / step
        if ratio > 1.5 and abs(ratio - round(ratio)) < 0.1:
            what = f"{round(ratio) - 1} missing slice(s)"
        else:
            what = "unevenly spaced slices"
        raise InputError(
            f"DICOM series has {what}: gap of {gap:.2f} mm between slices {i} and {i + 1} "
            f"(at {s[i]:.2f} and {s[i + 1]:.2f} mm along the slice normal) where the "
            f"usual spacing is {step:.2f} mm",
            source,
        )


def _tilt_degrees(frames, s, normal, offsets, pixel, source) -> float:
    """Angle between the stack direction and the slice normal; refuse non-linear stacks."""
    if len(frames) < 2:
        return 0.0
    ds = s - s[0]
    # In-plane offsets must grow linearly with the distance along the normal.
    slope = np.linalg.lstsq(ds[:, None], offsets, rcond=None)[0]
    residual = np.abs(offsets - ds[:, None] * slope)
    if np.any(residual > 0.5 * min(pixel)):
        raise InputError(
            "DICOM slices are not stacked along a straight line (in-plane positions jump "
            f"by up to {residual.max():.2f} mm); split or repair the series",
            source,
        )
    tilt = float(np.degrees(np.arctan(np.linalg.norm(slope))))
    if tilt > _MAX_TILT_DEG:
        raise InputError(
            f"the slice stack runs {tilt:.0f} degrees from the slice normal; not a gantry tilt "
            "(check Image Orientation/Position)",
            source,
        )
    return tilt


def _stack_values(frames: list[Frame], notes: list[str]) -> tuple[np.ndarray, type]:
    """Volume (k, rows, cols) in rescaled units, exact per slice; int16 when possible."""
    slopes = {f.slope for f in frames}
    intercepts = {f.intercept for f in frames}
    raw = np.stack([np.asarray(f.pixels) for f in frames])
    if len(slopes) == 1 and len(intercepts) == 1:
        values = raw.astype(np.float64) * frames[0].slope + frames[0].intercept
    else:
        slope = np.array([f.slope for f in frames])[:, None, None]
        intercept = np.array([f.intercept for f in frames])[:, None, None]
        values = raw.astype(np.float64) * slope + intercept
        notes.append(
            f"Rescale Slope/Intercept differ between slices ({len(slopes)} slopes, "
            f"{len(intercepts)} intercepts); applied per slice"
        )
    integral = np.all(values == np.round(values))
    if integral and values.min() >= -32768 and values.max() <= 32767:
        return values, np.int16
    if (
        integral
        and values.min() >= np.iinfo(np.int32).min
        and values.max() <= np.iinfo(np.int32).max
    ):
        return values, np.int32
    return values, np.float32


def _regularise(
    volume, frames, s, offsets, row, col, normal, pixel, uniform, is_label, fractions=False
) -> sitk.Image:
    """Resample the stack onto an orthogonal grid (row, col, normal) in physical space."""
    dx, dy = pixel
    steps = np.diff(s)
    dz = float(np.median(steps)) if uniform else float(steps.min())
    ny, nx = volume.shape[1:]
    # In-plane box covering every slice.
    u_lo, v_lo = offsets[:, 0].min(), offsets[:, 1].min()
    u_hi, v_hi = offsets[:, 0].max() + (nx - 1) * dx, offsets[:, 1].max() + (ny - 1) * dy
    nx_out = int(np.floor((u_hi - u_lo) / dx + 1e-6)) + 1
    ny_out = int(np.floor((v_hi - v_lo) / dy + 1e-6)) + 1
    nz_out = int(np.floor((s[-1] - s[0]) / dz + 1e-6)) + 1
    if nx_out * ny_out * nz_out > 4 * volume.size + 10**6:
        raise InputError(
            "regularising this series would need an unreasonably large grid", frames[0].file.parent
        )
    labels = [v for v in np.unique(volume).tolist() if v != 0] if is_label else []
    single = fractions and len(labels) == 1
    if single:
        out = _resample_stack(
            (volume != 0).astype(np.float32),
            s,
            offsets,
            dz,
            (dx, dy),
            (v_lo, u_lo),
            (nz_out, ny_out, nx_out),
            0.0,
        )
    elif is_label:
        out = _regularise_labels(
            volume,
            lambda v: _resample_stack(
                v, s, offsets, dz, (dx, dy), (v_lo, u_lo), (nz_out, ny_out, nx_out), 0.0
            ),
        )
    else:
        out = _resample_stack(
            volume,
            s,
            offsets,
            dz,
            (dx, dy),
            (v_lo, u_lo),
            (nz_out, ny_out, nx_out),
            float(volume.min()),
        )
    image = sitk.GetImageFromArray(out)
    image.SetSpacing((dx, dy, dz))
    origin = frames[0].position + u_lo * row + v_lo * col
    image.SetOrigin(origin.tolist())
    image.SetDirection(np.stack([row, col, normal], axis=1).flatten().tolist())
    if single:
        from hepanav.imaging.masks import fraction_image

        return fraction_image(image, labels[0])
    return image


def _resample_stack(volume, s, offsets, dz, pixel, low, shape, fill) -> np.ndarray:
    """Linear interpolation in plane (shift per slice) and between the two nearest slices."""
    dx, dy = pixel
    v_lo, u_lo = low
    nz_out, ny_out, nx_out = shape
    out = np.empty(shape, dtype=np.float32)
    cache: dict[int, np.ndarray] = {}

    def shifted(k: int) -> np.ndarray:
        if k not in cache:
            if len(cache) > 4:
                cache.clear()
            cache[k] = ndimage.affine_transform(
                volume[k].astype(np.float64),
                np.ones(2),
                offset=((v_lo - offsets[k, 1]) / dy, (u_lo - offsets[k, 0]) / dx),
                output_shape=(ny_out, nx_out),
                order=1,
                cval=fill,
            )
        return cache[k]

    for m in range(nz_out):
        target = s[0] + m * dz
        k1 = int(np.clip(np.searchsorted(s, target, side="right"), 1, len(s) - 1))
        k0 = k1 - 1
        w = float(np.clip((target - s[k0]) / (s[k1] - s[k0]), 0.0, 1.0))
        if w <= 1e-9:
            out[m] = shifted(k0)
        elif w >= 1 - 1e-9:
            out[m] = shifted(k1)
        else:
            out[m] = (1 - w) * shifted(k0) + w * shifted(k1)
    return out


def _regularise_labels(volume: np.ndarray, resample) -> np.ndarray:
    """Labels resampled as fractions: each voxel takes the label covering >= half of it.

    Nearest-neighbour would move a mask's surface by up to half a voxel; the
    fraction of each label, interpolated linearly and cut at 0.5, keeps it in place
    (the same rule as :func:`hepanav.imaging.resample.resample_mask_like`).
    """
    labels = [v for v in np.unique(volume).tolist() if v != 0]
    if len(labels) > 64:
        raise InputError("a label map with more than 64 labels cannot be regularised", "labels")
    out = None
    best = None
    for value in labels:
        fraction = resample((volume == value).astype(np.float32))
        if out is None:
            out = np.zeros(fraction.shape, dtype=np.float32)
            best = np.zeros(fraction.shape, dtype=np.float32)
        take = (fraction >= 0.5) & (fraction > best)
        out[take] = value
        best = np.maximum(best, fraction)
    if out is None:
        out = resample(np.zeros_like(volume, dtype=np.float32))
    return out


def _names(frames: list[Frame]) -> str:
    names = [f.file.name + (f" frame {f.frame + 1}" if f.frame else "") for f in frames]
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__
