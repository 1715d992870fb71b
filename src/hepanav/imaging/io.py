"""Read and write CT images and masks (NIfTI, NRRD, MHA/MHD, DICOM series folders).

Every reader checks that the file was read to its end (a truncated ``.nii.gz``
or a ``.mhd`` with a short raw file is an error naming the file, never a
zero-filled image), refuses FIFOs and devices, reads NIfTI through nibabel so
that the true sform (with any shear) is used, and returns an
:class:`~hepanav.imaging.schema.InputRecord` saying what it did.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hepanav.core.atomic import atomic_path
from hepanav.core.errors import InputError
from hepanav.imaging.affine import image_from_affine, orthogonal_image
from hepanav.imaging.dicom import _first_line
from hepanav.imaging.header import require_clinical_spacing, require_sane_geometry
from hepanav.imaging.schema import InputRecord, display_name, record_geometry

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
_FORMATS = {
    ".nii": "NIfTI",
    ".nii.gz": "NIfTI",
    ".nrrd": "NRRD",
    ".nhdr": "NRRD",
    ".mha": "MetaImage",
    ".mhd": "MetaImage",
    ".dcm": "DICOM file",
}


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def require_regular_input(path: str | Path, allow_dir: bool = True) -> None:
    """Raise ``InputError`` unless ``path`` is a regular file (or a folder when allowed).

    FIFOs, sockets and devices are refused without opening them: reading a FIFO
    blocks forever and a device never ends.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError("file or folder does not exist", path) from None
    except OSError as exc:
        raise InputError(f"cannot access ({exc.strerror})", path) from None
    if stat.S_ISDIR(mode):
        if not allow_dir:
            raise InputError("is a folder; a file is expected here", path)
        return
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
        raise InputError(f"is {kind}, not a regular file", path)


def read_image(path: str | Path, *, series: str | None = None) -> sitk.Image:
    """Read a 3D image from a file or a DICOM series folder (see :func:`load_image`)."""
    return load_image(path, series=series)[0]


def load_image(
    path: str | Path,
    role: str = "image",
    *,
    series: str | None = None,
    is_label: bool = False,
    fractions: bool = False,
) -> tuple[sitk.Image, InputRecord]:
    """Read a 3D image and say what was read and done.

    Parameters
    ----------
    path : str or Path
        A NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``, ``.nhdr``) or MetaImage
        (``.mha``, ``.mhd``) file, a DICOM file (Enhanced multi-frame CT), or a
        folder with DICOM series.
    role : str
        What the image is used as (written in the record).
    series : str, optional
        For a DICOM folder with several series: a Series Instance UID or a
        substring of the Series Description.
    is_label : bool
        The image is a mask or label map: its labels' fractions are resampled
        linearly and cut at 0.5 if a tilted or sheared grid has to be regularised.
    fractions : bool
        With ``is_label``: a binary mask (one non-zero value) that had to be
        regularised comes back as its float32 partial-volume fraction, marked by
        :func:`hepanav.imaging.masks.fraction_image` (see :func:`hepanav.imaging.load_mask`).

    Returns
    -------
    (SimpleITK.Image, InputRecord)
        3D image with spacing (mm), origin (LPS mm) and orthogonal direction, and
        its record (notes: regularised tilt, resampled shear, dropped files...).

    Raises
    ------
    InputError
        Missing, unreadable, truncated or corrupt file; a FIFO or device; an
        unsupported format; not 3D; a vector image; an ambiguous DICOM folder;
        a voxel size outside :data:`hepanav.imaging.header.CLINICAL_SPACING_MM`
        (units not mm; the message names the unit a NIfTI header declares); a NIfTI
        whose ``xyzt_units`` spatial code is not a length unit.

    Notes
    -----
    NIfTI lengths (voxel sizes and the qform/sform) are in the header's spatial unit
    (``xyzt_units``, :data:`NIFTI_LENGTH_UNITS`): mm is read as it is, metres and microns
    are converted to mm (the record's notes say so), and an unknown unit (code 0,
    nibabel's default) is taken as mm, as ITK and 3D Slicer do.
    """
    from hepanav.imaging.dicom_series import read_dicom_path

    path = Path(path)
    require_regular_input(path)
    suffix = _suffix(path)
    units = None  # what the header declares about its length unit (NIfTI), in words
    if path.is_dir() or suffix == ".dcm":
        image, record = read_dicom_path(
            path, series=series, role=role, is_label=is_label, fractions=fractions
        )
    else:
        if suffix not in IMAGE_SUFFIXES:
            raise InputError(
                f"unsupported image format {suffix!r}; use NIfTI, NRRD, MHA/MHD "
                "or a DICOM series folder",
                path,
            )
        if series is not None:
            raise InputError("--series applies to DICOM folders only", path)
        record = InputRecord(role=role, file=display_name(path), format=_FORMATS[suffix])
        if suffix in (".nii", ".nii.gz"):
            image, notes, units = _read_nifti(path, is_label, fractions)
        else:
            image, notes = _read_itk(path, suffix, is_label, fractions)
        record.notes.extend(notes)
    require_3d(image, path)
    require_sane_geometry(image, path, units)
    require_clinical_spacing(image, path, units)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"image has {image.GetNumberOfComponentsPerPixel()} components per voxel; "
            "expected a scalar CT or mask",
            path,
        )
    record_geometry(record, image)
    return image, record


def load_ct(
    path: str | Path, role: str = "CT", *, series: str | None = None
) -> tuple[sitk.Image, InputRecord]:
    """Read a CT in Hounsfield units: :func:`load_image`, then the value checks of
    :func:`hepanav.imaging.ctcheck.require_hu_ct`.

    The one reader of every command's CT (``segment --ct``, ``margin --pre/--post/--ct``,
    ``plan --ct``, ``verify-placement --control-ct``, ``phantom --base-ct``), so that a
    CT that is not in HU is refused the same way everywhere, before anything is computed
    from it.

    Parameters
    ----------
    path : str or Path
        As :func:`load_image`.
    role : str
        What the CT is used as (written in the record).
    series : str, optional
        For a DICOM folder with several series (see :func:`load_image`).

    Returns
    -------
    (SimpleITK.Image, InputRecord)
        As :func:`load_image`: 3D, spacing (mm), origin (LPS mm), orthogonal direction.

    Raises
    ------
    InputError
        Everything :func:`load_image` refuses; NaN or infinite voxels; a mask or label
        map; values that cannot be HU (normalised 0..1, an 8-bit display image, raw
        stored values without rescale slope/intercept): ``FILE: does not look like HU:
        values 0 to 1 (32-bit float), ...; expected Hounsfield units: air near -1000 HU,
        ...``.
    """
    from hepanav.imaging.ctcheck import require_hu_ct

    image, record = load_image(path, role, series=series)
    require_hu_ct(image, path)
    return image, record


#: NIfTI ``xyzt_units`` spatial codes (bits 0-2; NIFTI_UNITS_*): (name, mm per unit).
#: 0 (unknown) is taken as mm, as nibabel, ITK and 3D Slicer do.
NIFTI_LENGTH_UNITS = {
    0: ("no unit (xyzt_units 0)", 1.0),
    1: ("metres (NIFTI_UNITS_METER)", 1000.0),
    2: ("mm (NIFTI_UNITS_MM)", 1.0),
    3: ("microns (NIFTI_UNITS_MICRON)", 0.001),
}


def nifti_length_unit(header, source: str | Path) -> tuple[str, float]:
    """(name, mm per unit) of a NIfTI header's spatial unit (:data:`NIFTI_LENGTH_UNITS`).

    Raises ``InputError`` naming ``source`` when the spatial bits of ``xyzt_units``
    hold a code that is no length unit (4-7)."""
    code = int(header["xyzt_units"]) & 0x07
    if code not in NIFTI_LENGTH_UNITS:
        raise InputError(
            f"NIfTI header's spatial unit code is {code} (xyzt_units "
            f"{int(header['xyzt_units'])}), not a length unit (0 unknown, 1 m, 2 mm, 3 micron)",
            source,
        )
    return NIFTI_LENGTH_UNITS[code]


def _read_nifti(
    path: Path, is_label: bool, fractions: bool = False
) -> tuple[sitk.Image, list[str], str]:
    """NIfTI through nibabel: the sform when set (with its shear), else the qform; lengths
    converted to mm from the header's unit (:func:`nifti_length_unit`). Returns the image,
    the notes and what the header declares about its unit, in words (named in the
    spacing errors)."""
    import nibabel as nib

    if path.name.lower().endswith(".gz") and _starts_with(path, b"\x1f\x8b"):
        # nibabel stops reading at the end of the voxel data: a flipped bit in the
        # deflate stream then gives other voxel values, silently, and a stream cut before
        # the header ends is "cannot work out file type". zlib checks the whole stream
        # to its CRC-32 and length trailer first (one extra pass, constant memory).
        _gunzip_length(path, 0, path)
    try:
        nifti = nib.load(str(path))
        data = np.asanyarray(nifti.dataobj)
    except (EOFError, zlib.error, OSError) as exc:
        raise InputError(f"file is truncated or corrupt ({_first_line(exc)})", path) from None
    except Exception as exc:  # nibabel raises ImageFileError, HeaderDataError, ValueError
        raise InputError(f"cannot read image: {_first_line(exc)}", path) from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(
            f"expected a 3D volume, got shape {'x'.join(map(str, data.shape))} ({data.ndim}D)", path
        )
    if data.dtype == np.float64:
        data = data.astype(np.float32)
    elif data.dtype == np.bool_:
        data = data.astype(np.uint8)
    header = nifti.header
    unit, mm_per_unit = nifti_length_unit(header, path)
    sform, scode = header.get_sform(coded=True)
    qform, qcode = header.get_qform(coded=True)
    notes: list[str] = []
    if scode and scode > 0:
        affine = sform
        if qcode and qcode > 0:
            notes.extend(_compare_forms(qform * mm_per_unit, sform * mm_per_unit))
    elif qcode and qcode > 0:
        affine = qform
    else:
        affine = header.get_base_affine()
        notes.append("NIfTI has neither sform nor qform: voxel sizes only, origin at the corner")
    if mm_per_unit != 1.0:
        declared = (
            f"the NIfTI header gives its lengths in {unit}: voxel sizes and position "
            f"converted to mm (x {mm_per_unit:g})"
        )
        notes.append(declared)
    elif unit.startswith("no unit"):
        declared = f"the NIfTI header declares {unit}: mm assumed"
    else:
        declared = f"the NIfTI header gives its lengths in {unit}"
    matrix = _RAS_TO_LPS @ affine[:3, :3] * mm_per_unit
    origin = _RAS_TO_LPS @ affine[:3, 3] * mm_per_unit
    image, more = image_from_affine(
        np.ascontiguousarray(data.transpose(2, 1, 0)),
        matrix,
        origin,
        source=str(path),
        is_label=is_label,
        default_value=0.0 if is_label else float(np.min(data)) if data.size else 0.0,
        fractions=fractions,
    )
    return image, notes + more, declared


def _compare_forms(qform: np.ndarray, sform: np.ndarray) -> list[str]:
    """A note when qform and sform place the grid differently (corner distance, mm)."""
    if qform is None or sform is None:
        return []
    corners = np.array([[i, j, k, 1.0] for i in (0, 100) for j in (0, 100) for k in (0, 100)])
    gap = float(np.max(np.linalg.norm((corners @ qform.T - corners @ sform.T)[:, :3], axis=1)))
    if gap <= 0.01:
        return []
    return [
        f"qform and sform disagree (up to {gap:.2f} mm within 100 voxels); the sform was used, "
        "as nibabel and 3D Slicer do"
    ]


def _read_itk(
    path: Path, suffix: str, is_label: bool, fractions: bool = False
) -> tuple[sitk.Image, list[str]]:
    _check_complete(path, suffix)
    with captured_native_stderr() as chatter:
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as exc:
            detail = _chatter_line(chatter) or _first_line(exc)
            raise InputError(f"cannot read image completely: {detail}", path) from None
    if image.GetDimension() != 3:
        return image, []
    default = 0.0 if is_label else float(sitk.GetArrayViewFromImage(image).min())
    return orthogonal_image(
        image, source=str(path), is_label=is_label, default_value=default, fractions=fractions
    )


@contextlib.contextmanager
def captured_native_stderr():
    """Capture what C++ libraries (ITK, MetaIO, GDCM) print on file descriptor 2.

    Yields a list that receives the captured text, so callers can fold it into a
    one-line error instead of leaving several lines on the user's terminal.
    """
    lines: list[str] = []
    try:
        fd = os.dup(2)
    except OSError:
        yield lines
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(fd, 2)
            os.close(fd)
            tmp.seek(0)
            lines.extend(tmp.read(65536).decode("utf-8", "replace").splitlines())


def _chatter_line(lines: list[str]) -> str:
    text = " ".join(ln.strip() for ln in lines if ln.strip())
    return text[:300]


def _check_complete(path: Path, suffix: str) -> None:
    """Refuse MetaImage/NRRD files whose pixel data is shorter than the header says."""
    if suffix in (".mha", ".mhd"):
        _check_metaimage(path)
    elif suffix in (".nrrd", ".nhdr"):
        _check_nrrd(path)


_META_TYPES = {
    "MET_UCHAR": 1,
    "MET_CHAR": 1,
    "MET_USHORT": 2,
    "MET_SHORT": 2,
    "MET_UINT": 4,
    "MET_INT": 4,
    "MET_ULONG": 8,
    "MET_LONG": 8,
    "MET_ULONG_LONG": 8,
    "MET_LONG_LONG": 8,
    "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
}


def _check_metaimage(path: Path) -> None:
    with path.open("rb") as fh:
        head = fh.read(65536)
    fields: dict[str, str] = {}
    header_len = 0
    for raw in head.split(b"\n"):
        header_len += len(raw) + 1
        line = raw.decode("latin-1").strip()
        key, _, value = line.partition("=")
        fields[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            break
    try:
        dims = [int(v) for v in fields.get("DimSize", "").split()]
        item = _META_TYPES[fields.get("ElementType", "")] * int(
            fields.get("ElementNumberOfChannels", "1")
        )
    except (KeyError, ValueError):
        return  # ITK reports malformed headers itself
    if not dims or fields.get("CompressedData", "False").lower() == "true":
        return  # compressed data: ITK checks the decompressed length (error caught)
    expected = int(np.prod(dims)) * item
    data_file = fields.get("ElementDataFile", "")
    if data_file == "LOCAL":
        have = path.stat().st_size - header_len
        where = path
    elif data_file and data_file != "LIST" and "%" not in data_file:
        target = path.parent / data_file
        if not target.is_file():
            raise InputError(f"its data file {data_file!r} does not exist", path)
        have = target.stat().st_size - max(int(fields.get("HeaderSize", "0") or 0), 0)
        where = target
    else:
        return
    if have < expected:
        raise InputError(
            f"pixel data is truncated: {have} of {expected} bytes in {Path(where).name}", path
        )


def _check_nrrd(path: Path) -> None:
    import nrrd

    try:
        header = nrrd.read_header(str(path))
    except Exception as exc:
        raise InputError(f"not a readable NRRD header ({_first_line(exc)})", path) from None
    try:
        sizes = [int(v) for v in header["sizes"]]
        dtype = nrrd.reader._determine_datatype(header)
    except Exception:
        return  # ITK reports malformed headers itself
    expected = int(np.prod(sizes)) * dtype.itemsize
    encoding = str(header.get("encoding", "raw")).lower()
    data_file = header.get("data file") or header.get("datafile")
    target = path.parent / data_file if data_file else path
    if data_file and not target.is_file():
        raise InputError(f"its data file {data_file!r} does not exist", path)
    offset = 0 if data_file else _nrrd_header_length(path)
    if encoding == "raw":
        have = target.stat().st_size - offset
    elif encoding in ("gzip", "gz"):
        have = _gunzip_length(target, offset, path)
    else:
        return
    if have < expected:
        raise InputError(f"pixel data is truncated: {have} of {expected} bytes", path)


def _nrrd_header_length(path: Path) -> int:
    with path.open("rb") as fh:
        head = fh.read(1 << 20)
    end = head.find(b"\n\n")
    return end + 2 if end >= 0 else len(head)


def _starts_with(path: Path, magic: bytes) -> bool:
    """Whether the file begins with ``magic`` (a .nii.gz that is no gzip file is left to
    nibabel, which names it unreadable)."""
    with path.open("rb") as fh:
        return fh.read(len(magic)) == magic


def _gunzip_length(target: Path, offset: int, source: Path) -> int:
    """Decompressed length of the gzip data at ``offset`` (every member, each to its CRC-32
    and length trailer); a stream that ends early or is corrupt is an ``InputError``."""
    total = 0
    with target.open("rb") as fh:
        fh.seek(offset)
        stream = zlib.decompressobj(wbits=47)
        pending = b""
        try:
            while chunk := pending or fh.read(1 << 20):
                pending = b""
                total += len(stream.decompress(chunk))
                if stream.eof:
                    # A further member (concatenated gzip is valid gzip), else the end.
                    rest = stream.unused_data or fh.read(1 << 20)
                    if not rest:
                        return total
                    if rest[:2] != b"\x1f\x8b":
                        return total  # trailing bytes after the stream: not data
                    stream, pending = zlib.decompressobj(wbits=47), rest
        except zlib.error as exc:
            raise InputError(f"file is truncated or corrupt (gzip: {exc})", source) from None
    raise InputError("file is truncated or corrupt (the gzip stream ends early)", source)


def require_3d(image: sitk.Image, source: str | Path) -> None:
    """Raise ``InputError`` unless ``image`` is a 3D volume with at least 2 slices."""
    size = image.GetSize()
    if image.GetDimension() != 3 or min(size) < 2:
        raise InputError(
            f"expected a 3D volume, got size {'x'.join(map(str, size))} "
            f"({image.GetDimension()}D); 2D images are not supported",
            source,
        )


def write_image(image: sitk.Image, path: str | Path, compress: bool = True) -> Path:
    """Write ``image`` atomically (temporary file, then rename); format from the suffix."""
    path = Path(path)
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=compress)
    return path
