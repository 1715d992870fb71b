"""DICOMweb PACS access with dicomweb-client (QIDO-RS, WADO-RS, STOW-RS)."""

from __future__ import annotations

from pathlib import Path

import requests

from hepanav.core.errors import InputError
from hepanav.dicom.pacs import (
    Pacs,
    SendError,
    SeriesInfo,
    StudyInfo,
    _text,
    http_failure,
    write_instance,
)

# Instances per STOW-RS request: large enough to amortise HTTP overhead, small enough
# that a failure names the stored objects precisely.
STOW_BATCH = 25
# WADO-RS Accept: application/dicom in whatever transfer syntax the PACS stores
# (dicomweb-client's documented wildcard, PS3.18 8.7.3.5.2).
ANY_TRANSFER_SYNTAX = (("application/dicom", "*"),)


class DicomWebPacs(Pacs):
    """A PACS reached over DICOMweb at ``settings.url``."""

    def __init__(self, settings) -> None:
        super().__init__(settings)
        from dicomweb_client.api import DICOMwebClient
        from pydicom.dataset import Dataset

        self._Dataset = Dataset
        session = requests.Session()
        if settings.username:
            password = settings.password.get_secret_value() if settings.password else ""
            session.auth = (settings.username, password)
        if settings.ca_file:
            session.verify = str(settings.ca_file)
        if settings.cert_file:
            session.cert = (str(settings.cert_file), str(settings.key_file))
        self.client = DICOMwebClient(
            settings.url.rstrip("/"), session=session, timeout=settings.timeout_s
        )

    def _call(self, fn, *args, what: str = "request", retrieve: bool = False, **kwargs):
        """Run one request; turn transport and HTTP failures into one-line errors.

        ``what`` names the request in an HTTP error (:func:`http_failure`, e.g. 'QIDO-RS
        search'); ``retrieve`` marks a WADO-RS retrieval (its hints)."""
        t = self.settings.timeout_s
        try:
            return fn(*args, **kwargs)
        except requests.exceptions.SSLError:
            raise self._down("TLS handshake failed (check ca_file/cert_file)") from None
        except requests.exceptions.ConnectTimeout:
            raise self._down(f"no answer within {t:g} s (timed out)") from None
        except requests.exceptions.ReadTimeout:
            raise self._down(f"no answer within {t:g} s (timed out)") from None
        except requests.exceptions.ConnectionError:
            raise self._down("not reachable (connection refused: is it running?)") from None
        except requests.exceptions.HTTPError as exc:
            down = self._down(http_failure(what, exc.response, retrieve))
            raise _Refused(down.reason, down.source) from None

    def find_studies(self, study_uid=None, accession=None) -> list[StudyInfo]:
        filters = {}
        if study_uid:
            filters["StudyInstanceUID"] = study_uid
        if accession:
            filters["AccessionNumber"] = accession
        fields = ["StudyDate", "ModalitiesInStudy", "StudyDescription"]
        found = self._call(
            self.client.search_for_studies,
            search_filters=filters,
            fields=fields,
            what="QIDO-RS search for studies",
        )
        out = []
        for item in found:
            ds = self._Dataset.from_json(item)
            out.append(
                StudyInfo(
                    str(ds.StudyInstanceUID),
                    _text(ds, "StudyDate"),
                    _text(ds, "ModalitiesInStudy"),
                    _text(ds, "StudyDescription"),
                )
            )
        return out

    def find_series(self, study_uid: str) -> list[SeriesInfo]:
        found = self._call(
            self.client.search_for_series,
            study_instance_uid=study_uid,
            fields=["SeriesDescription", "NumberOfSeriesRelatedInstances"],
            what=f"QIDO-RS search for the series of study {study_uid}",
        )
        out = []
        for item in found:
            ds = self._Dataset.from_json(item)
            count = ds.get("NumberOfSeriesRelatedInstances")
            out.append(
                SeriesInfo(
                    study_uid,
                    str(ds.SeriesInstanceUID),
                    _text(ds, "Modality"),
                    _text(ds, "SeriesDescription"),
                    int(count) if count not in (None, "") else None,
                )
            )
        return out

    def get_series(self, study_uid: str, series_uid: str, folder: Path) -> list[Path]:
        # Any transfer syntax: the instances as the PACS holds them (e.g. JPEG 2000
        # lossless CT). dicomweb-client asks for Explicit VR Little Endian by default,
        # which makes the server transcode, and a server that cannot (Orthanc's DICOMweb
        # plugin 1.7: HTTP 500) fails the retrieval. The series reader decodes the
        # compressed syntaxes (docs/dicom.md, "Compressed series").
        instances = self._call(
            lambda: list(
                self.client.iter_series(study_uid, series_uid, media_types=ANY_TRANSFER_SYNTAX)
            ),
            what=f"WADO-RS retrieve of series {series_uid} (study {study_uid})",
            retrieve=True,
        )
        return [write_instance(ds, folder) for ds in instances]

    def store_datasets(self, datasets: list) -> list[str]:
        """Store with STOW-RS; an object counts as stored only when the PACS confirms it.

        The STOW-RS response (PS3.18 10.5.3) lists the stored objects in its
        ReferencedSOPSequence and the refused ones in its FailedSOPSequence; an object
        in neither (a server that dropped a part it could not parse) is not stored.
        """
        stored: list[str] = []
        self._stored_before = stored
        for start in range(0, len(datasets), STOW_BATCH):
            batch = datasets[start : start + STOW_BATCH]
            try:
                response = self._call(self.client.store_instances, batch, what="STOW-RS store")
            except _Refused as exc:
                # A refused batch may have been stored in part, and the HTTP error hides
                # which part: store its instances one by one (storing an instance twice
                # is harmless) to know exactly what the PACS holds.
                stored += self._store_one_by_one(batch, exc, datasets[start + len(batch) :])
                continue
            except InputError as exc:  # down or timed out: this batch is not confirmed
                failed = [str(d.SOPInstanceUID) for d in datasets[start:]]
                raise SendError(str(exc), stored, failed) from None
            confirmed = _confirmed(response)
            uids = [str(d.SOPInstanceUID) for d in batch]
            stored += [uid for uid in uids if uid in confirmed]
            missing = [uid for uid in uids if uid not in confirmed]
            if missing:
                rest = [str(d.SOPInstanceUID) for d in datasets[start + len(batch) :]]
                raise SendError(
                    _not_stored(response, len(missing), len(batch)), stored, missing + rest
                )
        return stored

    def _store_one_by_one(self, batch, batch_error, rest) -> list[str]:
        """Send a refused batch's objects one at a time; every one the PACS refuses is
        named, the others are confirmed. Stops at the first transport failure (PACS
        down, timed out): what was not re-sent then is not confirmed, and the later
        batches are never sent."""
        stored: list[str] = []
        refused: list[str] = []
        why = ""
        for i, ds in enumerate(batch):
            uid = str(ds.SOPInstanceUID)
            try:
                response = self._call(self.client.store_instances, [ds], what="STOW-RS store")
            except _Refused as exc:
                refused.append(uid)
                why = why or f"{uid}: {exc.reason}"
                continue
            except InputError as exc:
                failed = refused + [str(d.SOPInstanceUID) for d in list(batch[i:]) + list(rest)]
                raise SendError(
                    f"{uid}: {exc.reason}", self._stored_before + stored, failed
                ) from None
            if uid in _confirmed(response):
                stored.append(uid)
            else:
                refused.append(uid)
                why = why or f"{uid}: {_not_stored(response, 1, 1)}"
        if refused:
            more = f" and {len(refused) - 1} more" if len(refused) > 1 else ""
            raise SendError(
                f"{why}{more}",
                self._stored_before + stored,
                refused + [str(d.SOPInstanceUID) for d in rest],
            )
        return stored


class _Refused(InputError):
    """The DICOMweb server answered with an HTTP error (it is up, it refused)."""


def _confirmed(response) -> set[str]:
    """SOP Instance UIDs a STOW-RS response confirms as stored (ReferencedSOPSequence)."""
    return {
        str(item.ReferencedSOPInstanceUID)
        for item in response.get("ReferencedSOPSequence", [])
        if "ReferencedSOPInstanceUID" in item
    }


def _not_stored(response, n: int, of: int) -> str:
    """Why ``n`` of ``of`` objects sent in one request are not stored (one phrase)."""
    reasons = sorted(
        {
            f"0x{int(item.FailureReason):04X}"
            for item in response.get("FailedSOPSequence", [])
            if item.get("FailureReason") is not None
        }
    )
    if reasons:
        codes = ", ".join(reasons)
        return f"the PACS refused {n} of the {of} object(s) of one request (failure reason {codes})"
    return (
        f"the PACS did not confirm {n} of the {of} object(s) of one request as stored "
        "(not in its answer's ReferencedSOPSequence)"
    )
