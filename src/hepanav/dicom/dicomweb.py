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
    read_files,
    write_instance,
)

# Instances per STOW-RS request: large enough to amortise HTTP overhead, small enough
# that a failure names the stored objects precisely.
STOW_BATCH = 25


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

    def _call(self, fn, *args, **kwargs):
        """Run one request; turn transport and HTTP failures into one-line errors."""
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
            code = exc.response.status_code if exc.response is not None else "?"
            hint = " (check username/password)" if code in (401, 403) else ""
            raise self._down(f"refused the request: HTTP {code}{hint}") from None

    def find_studies(self, study_uid=None, accession=None) -> list[StudyInfo]:
        filters = {}
        if study_uid:
            filters["StudyInstanceUID"] = study_uid
        if accession:
            filters["AccessionNumber"] = accession
        fields = ["StudyDate", "ModalitiesInStudy", "StudyDescription"]
        found = self._call(self.client.search_for_studies, search_filters=filters, fields=fields)
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
        instances = self._call(lambda: list(self.client.iter_series(study_uid, series_uid)))
        return [write_instance(ds, folder) for ds in instances]

    def store(self, paths: list[Path]) -> list[str]:
        datasets = read_files(paths)
        stored: list[str] = []
        self._stored_before = stored
        for start in range(0, len(datasets), STOW_BATCH):
            batch = datasets[start : start + STOW_BATCH]
            try:
                response = self._call(self.client.store_instances, batch)
            except InputError as exc:
                # A refused batch may have been stored in part, and the HTTP error hides
                # which part: store its instances one by one (storing an instance twice
                # is harmless) to know exactly what the PACS holds.
                stored += self._store_one_by_one(batch, exc, datasets[start + len(batch) :])
                continue
            failed = [
                str(item.ReferencedSOPInstanceUID) for item in response.get("FailedSOPSequence", [])
            ]
            ok = [str(d.SOPInstanceUID) for d in batch if str(d.SOPInstanceUID) not in failed]
            stored += ok
            if failed:
                rest = failed + [str(d.SOPInstanceUID) for d in datasets[start + len(batch) :]]
                raise SendError(f"{len(failed)} object(s) refused by the PACS", stored, rest)
        return stored

    def _store_one_by_one(self, batch, batch_error, rest) -> list[str]:
        stored: list[str] = []
        for i, ds in enumerate(batch):
            try:
                response = self._call(self.client.store_instances, [ds])
                if response.get("FailedSOPSequence"):
                    raise InputError("refused by the PACS", str(ds.SOPInstanceUID))
            except InputError as exc:
                failed = [str(d.SOPInstanceUID) for d in list(batch[i:]) + list(rest)]
                raise SendError(
                    f"{ds.SOPInstanceUID}: {exc.reason}", self._stored_before + stored, failed
                ) from None
            stored.append(str(ds.SOPInstanceUID))
        return stored
