"""Query, retrieve and store against a PACS over DICOMweb or DIMSE, behind one interface.

- DICOMweb (PS3.18): QIDO-RS search, WADO-RS retrieve, STOW-RS store (dicomweb-client).
- DIMSE (PS3.7): C-FIND, C-GET or C-MOVE, C-STORE (pynetdicom), Study Root model.

Every network failure becomes one :class:`~hepanav.core.errors.InputError` line that
names the server (never credentials) and what went wrong: not reachable, refused,
timed out. Patient attributes are never printed or logged.
"""

from __future__ import annotations

import logging
import socket
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from hepanav.core.errors import HepaNavError, InputError
from hepanav.dicom.settings import PacsSettings

# The libraries log connection failures and protocol chatter on stderr; our errors are
# the one line the user needs, and their logs could contain query keys.
for _name in ("pynetdicom", "dicomweb_client", "urllib3"):
    logging.getLogger(_name).setLevel(logging.CRITICAL + 1)


@dataclass(frozen=True)
class SeriesInfo:
    """One series of a study, as the PACS describes it (no patient attributes)."""

    study_uid: str
    series_uid: str
    modality: str
    description: str
    instances: int | None


@dataclass(frozen=True)
class StudyInfo:
    """One study (no patient attributes): UID, date, modalities."""

    study_uid: str
    study_date: str
    modalities: str
    description: str


class SendError(HepaNavError):
    """A store that failed part-way: names the objects the PACS confirmed as stored and
    the others (refused, or never sent after the failure), as one line."""

    def __init__(self, message: str, stored: list[str], failed: list[str]) -> None:
        self.stored, self.failed = stored, failed
        stored_txt = ", ".join(stored) if stored else "none"
        super().__init__(
            f"pacs send: {message}; stored before the failure: {stored_txt} "
            f"({len(stored)} of {len(stored) + len(failed)} objects); "
            f"not confirmed as stored: {', '.join(failed) if failed else 'none'}"
        )


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value) if value is not None else ""


class Pacs(ABC):
    """A PACS: find studies and series, get a series into a folder, store files."""

    def __init__(self, settings: PacsSettings) -> None:
        self.settings = settings

    @abstractmethod
    def find_studies(
        self, study_uid: str | None = None, accession: str | None = None
    ) -> list[StudyInfo]:
        """Studies matching a Study Instance UID and/or an Accession Number."""

    @abstractmethod
    def find_series(self, study_uid: str) -> list[SeriesInfo]:
        """The series of one study."""

    @abstractmethod
    def get_series(self, study_uid: str, series_uid: str, folder: Path) -> list[Path]:
        """Retrieve every instance of a series as DICOM files in ``folder``."""

    def store(self, paths: list[Path]) -> list[str]:
        """Store DICOM files; return the SOP Instance UIDs the PACS confirmed.

        Every file is read and checked (:func:`read_files`) before the first is sent.
        Raises :class:`SendError` naming what was and was not stored.
        """
        return self.store_datasets(read_files(paths))

    @abstractmethod
    def store_datasets(self, datasets: list[Dataset]) -> list[str]:
        """Send data sets as they are (no check); the SOP Instance UIDs the PACS confirmed."""

    def resolve_study(self, key: str, option: str) -> str:
        """Study Instance UID for ``key``: a Study Instance UID or an Accession Number.

        ``option`` is where the user gave ``key`` (e.g. ``--from-pacs``, ``pacs get KEY``),
        named in the errors.

        Raises
        ------
        InputError
            No study or several studies match.
        """
        found = self.find_studies(study_uid=key) if _looks_like_uid(key) else []
        if not found:
            found = self.find_studies(accession=key)
        if not found:
            raise InputError(
                "no study with this Study Instance UID or Accession Number on "
                f"{self.settings.where()}",
                option,
            )
        if len(found) > 1:
            raise InputError(f"{len(found)} studies match; give the Study Instance UID", option)
        return found[0].study_uid

    def _down(self, what: str) -> InputError:
        return InputError(what, f"PACS {self.settings.where()}")


def dimse_status(operation: str, code: int) -> str:
    """A DIMSE status as the user reads it: ``0xC000 (Failure: Unable to Process)``.

    ``operation`` is 'C-FIND', 'C-GET', 'C-MOVE' or 'C-STORE'; the category and meaning
    are pynetdicom's for that service (``pynetdicom.status``, from PS3.4 Annex C / B and
    PS3.7 Annex C); a code the service does not define gets pynetdicom's category only.
    """
    from pynetdicom import status as st

    table = {
        "C-FIND": st.QR_FIND_SERVICE_CLASS_STATUS,
        "C-GET": st.QR_GET_SERVICE_CLASS_STATUS,
        "C-MOVE": st.QR_MOVE_SERVICE_CLASS_STATUS,
        "C-STORE": st.STORAGE_SERVICE_CLASS_STATUS,
    }[operation]
    category, meaning = table.get(code, (st.code_to_category(code), ""))
    meaning = meaning or f"no meaning defined for {operation}"
    return f"0x{code:04X} ({category}: {meaning})"


def http_failure(what: str, response, retrieve: bool = False) -> str:
    """One line for an HTTP error answer of a DICOMweb server: ``what`` (e.g. 'WADO-RS
    retrieve of series X (study Y)') refused, the status code and its phrase (RFC 9110,
    Python's ``http.HTTPStatus``), method and URL path (no query: it may hold search
    keys), the answer's own first line when short, and what the user can do.

    ``retrieve``: the request fetched instances (a 404 then means the series is gone, a
    500 may be a transfer syntax the server cannot produce).
    """
    from http import HTTPStatus
    from urllib.parse import urlsplit

    if response is None:
        return f"{what} refused: an HTTP error without an answer"
    code = int(response.status_code)
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = response.reason or "non-standard status"
    method = response.request.method if response.request is not None else "request"
    path = urlsplit(response.url or "").path
    said = _first_line(response)
    said = f', the PACS said "{said}"' if said else ""
    if code in (401, 403):
        hint = "check username/password"
    elif code == 404 and retrieve:
        hint = "the PACS does not hold this series (deleted since the search?)"
    elif code == 404:
        hint = "check the url setting (the PACS's DICOMweb base URL)"
    elif code == 406:
        hint = "the PACS cannot send it as application/dicom (HepaNav takes any transfer syntax)"
    elif code == 500 and retrieve:
        hint = (
            "the PACS failed producing the series (e.g. it cannot convert the transfer "
            "syntax it holds it in); its log says why"
        )
    elif code in (502, 503, 504):
        hint = "the PACS, or a proxy in front of it, is unavailable or overloaded: try again later"
    else:
        hint = "the PACS's log says why"
    return f"{what} refused: HTTP {code} {phrase} ({method} {path}){said}; {hint}"


def _first_line(response, limit: int = 160) -> str:
    """The first line of an error answer's body when short and plain (``Details`` or
    ``Message`` of a JSON object, as Orthanc answers); '' otherwise (HTML pages, long)."""
    import json

    try:
        text = response.text.strip()
    except (RuntimeError, ValueError):  # a streamed body already consumed, undecodable
        return ""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        found = [data.get(k) for k in ("Details", "Message", "message", "detail", "error")]
        text = next((v for v in found if isinstance(v, str) and v.strip()), "")
    elif data is not None:
        return ""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if not line or len(line) > limit or line.startswith("<") or not line.isprintable():
        return ""
    return line


def _looks_like_uid(key: str) -> bool:
    return "." in key and all(part.isdigit() for part in key.split("."))


def write_instance(ds: Dataset, folder: Path) -> Path:
    """Write one retrieved instance as ``folder/<SOPInstanceUID>.dcm``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def open_pacs(settings: PacsSettings | None = None) -> Pacs:
    """The :class:`Pacs` for the configured protocol (settings from file + environment)."""
    from hepanav.dicom.settings import load_settings

    settings = settings or load_settings()
    if settings.protocol == "dicomweb":
        from hepanav.dicom.dicomweb import DicomWebPacs

        return DicomWebPacs(settings)
    from hepanav.dicom.dimse import DimsePacs

    return DimsePacs(settings)


def probe_socket(host: str, port: int, timeout_s: float) -> str | None:
    """None when a TCP connection opens, else why not (one phrase)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except ConnectionRefusedError:
        return "not reachable (connection refused: is it running?)"
    except TimeoutError:
        return f"no answer within {timeout_s:g} s (timed out)"
    except OSError as exc:
        return f"not reachable ({exc.strerror or type(exc).__name__})"


# The UIDs a PACS files an object under (PS3.3 C.12.1, C.7.2.1, C.7.3.1): an object
# without one cannot be stored (Orthanc: "missing StudyInstanceUID, SeriesInstanceUID
# or SOPInstanceUID"), and a DIMSE association cannot even be proposed for an empty
# SOP Class UID.
SEND_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


def read_files(paths: Iterable[Path], not_dicom: list[Path] | None = None) -> list[Dataset]:
    """Read DICOM files for sending, all before any is sent.

    ``not_dicom``: when given, a file that is not DICOM at all (pydicom finds no DICOM
    file meta header / 'DICM' prefix: a README.txt, a .DS_Store) is appended to it and
    left out instead of refused; the caller says which were left out.

    Raises
    ------
    InputError
        A file that is not DICOM (without ``not_dicom``); a DICOM file that is broken
        (pydicom fails on it, or an image cut short: :func:`_cut_short`); one whose SOP
        Class, SOP Instance, Study or Series Instance UID is empty (an anonymised
        export): named with the UIDs it lacks. In every case nothing is sent. The files
        are sent as they are: HepaNav does not invent UIDs for a PACS
        (:func:`hepanav.imaging.dicomout.source.read_source_series` derives them, in
        memory, only to reference such a series from the objects it writes).
    """
    from hepanav.imaging.dicom_series import _line
    from hepanav.imaging.dicomout.source import uid_value

    out = []
    empty: list[tuple[Path, list[str]]] = []
    for path in paths:
        try:
            ds = pydicom.dcmread(path)
        except pydicom.errors.InvalidDicomError:
            if not_dicom is None:
                raise InputError("not a DICOM file (no DICOM file meta header)", path) from None
            not_dicom.append(Path(path))
            continue
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise InputError(f"not a readable file ({why}); nothing was sent", path) from None
        except Exception as exc:  # noqa: BLE001 - a DICOM file broken anywhere in its body
            raise InputError(
                f"a broken DICOM file ({type(exc).__name__}: {_line(exc)}); nothing was sent",
                path,
            ) from None
        short = _cut_short(ds)
        if short:
            raise InputError(f"a broken DICOM file ({short}); nothing was sent", path)
        missing = [k for k in SEND_UIDS if not uid_value(ds, k)]
        if missing:
            empty.append((Path(path), missing))
        out.append(ds)
    if empty:
        path, missing = empty[0]
        more = f" (and {len(empty) - 1} more of the {len(out)} files)" if len(empty) > 1 else ""
        raise InputError(
            f"empty {', '.join(missing)} (anonymised?); a PACS cannot store an object "
            f"without them{more}: nothing was sent",
            path,
        )
    return out


def _cut_short(ds: Dataset) -> str | None:
    """Why a DICOM image that pydicom read without error was cut short, or None.

    pydicom reads a file that ends early without an error: what is missing is simply not
    there. An image (Rows present) without any pixel data, or whose uncompressed Pixel
    Data is shorter than Rows x Columns x samples x frames need, was cut short. Not
    checked: compressed pixel data, objects without pixel data (SR, RTSTRUCT, REG).
    """
    from pydicom.pixels.utils import get_expected_length

    pixels = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
    if "Rows" in ds and not any(k in ds for k in pixels):
        return "an image without pixel data: the file ends early"
    if "PixelData" not in ds:
        return None
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None or syntax.is_compressed:
        return None
    try:
        expected = int(get_expected_length(ds, "bytes"))
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    have = len(ds.PixelData)
    return f"pixel data truncated: {have} of {expected} bytes" if have < expected else None
