"""DIMSE PACS access with pynetdicom: C-FIND, C-GET / C-MOVE, C-STORE (Study Root)."""

from __future__ import annotations

import ssl
from contextlib import contextmanager
from pathlib import Path

from pydicom.dataset import Dataset

from hepanav.dicom.pacs import (
    Pacs,
    SendError,
    SeriesInfo,
    StudyInfo,
    _text,
    dimse_status,
    probe_socket,
)

# Storage SOP classes we accept on C-GET / C-MOVE and can send: the images and the
# derived objects of a HepaNav study (CT/MR, SEG, RTSTRUCT, SR, SC, registrations).
_STORAGE = (
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation
    "1.2.840.10008.5.1.4.1.1.481.3",  # RT Structure Set
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
    "1.2.840.10008.5.1.4.1.1.66.1",  # Spatial Registration
    "1.2.840.10008.5.1.4.1.1.66.3",  # Deformable Spatial Registration
    "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF
)
# Image storage classes may arrive compressed, as the PACS holds them: one presentation
# context per transfer syntax, so the PACS can pick the one it stores (a context offering
# several gets one syntax accepted, often the uncompressed one, and a PACS that cannot
# transcode, e.g. Orthanc without a JPEG 2000 codec, then fails the C-GET, status 0xC000).
# These are the syntaxes the series reader decodes: pydicom (Pillow: JPEG baseline/
# extended, JPEG 2000; pyjpegls: JPEG-LS; its own RLE) and, for the rest, GDCM in
# SimpleITK (JPEG lossless). Lossy syntaxes too: the CT is what the PACS holds, and
# refusing it would not bring the original back.
_IMAGE_STORAGE = _STORAGE[:3]
_IMAGE_SYNTAXES = (
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless, First-Order Prediction (SV1)
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless, Non-Hierarchical (Process 14)
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.5",  # RLE Lossless
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline (8 bit)
    "1.2.840.10008.1.2.4.51",  # JPEG Extended (12 bit)
)
_FIND = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Q/R FIND
_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
_GET = "1.2.840.10008.5.1.4.1.2.2.3"


class DimsePacs(Pacs):
    """A PACS reached over DIMSE at ``settings.host:settings.port``."""

    def _ae(self):
        from pynetdicom import AE

        ae = AE(ae_title=self.settings.calling_ae)
        t = self.settings.timeout_s
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = t
        ae.connection_timeout = t
        return ae

    def _tls(self):
        s = self.settings
        if not s.tls:
            return None
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(s.ca_file) if s.ca_file else None
        )
        if s.cert_file:
            context.load_cert_chain(str(s.cert_file), str(s.key_file))
        return (context, s.host)

    @contextmanager
    def _association(self, ae, **kwargs):
        s = self.settings
        problem = probe_socket(s.host, s.port, s.timeout_s)
        if problem:
            raise self._down(problem)
        try:
            assoc = ae.associate(
                s.host, s.port, ae_title=s.called_ae, tls_args=self._tls(), **kwargs
            )
        except ssl.SSLError:
            raise self._down("TLS handshake failed (check ca_file/cert_file)") from None
        if assoc.is_rejected:
            raise self._down(
                f"refused the association (called AE {s.called_ae!r}, calling AE {s.calling_ae!r})"
            )
        if not assoc.is_established:
            raise self._down(f"no association within {s.timeout_s:g} s (aborted or timed out)")
        try:
            yield assoc
        finally:
            if assoc.is_established:
                assoc.release()

    def _status_error(self, what: str, status) -> None:
        if status is None or "Status" not in status:
            # pynetdicom yields an empty status when the association was aborted or
            # timed out mid-operation.
            raise self._down(f"{what}: no answer within {self.settings.timeout_s:g} s")
        code = int(status.Status)
        if code not in (0x0000, 0xFF00, 0xFF01):
            raise self._down(
                f"{what} failed: status {dimse_status(what, code)}; the PACS's log says why"
            )

    def _retrieve_status(self, op: str, status, study_uid: str, series_uid: str) -> None:
        """Raise one line for a C-GET / C-MOVE response that ends the retrieval badly:
        no answer, a failure, or a final status with failed sub-operations (instances the
        PACS did not send). The line names the series and study, the operation, the
        status code and its meaning (:func:`dimse_status`), the instances not sent and
        what the user can do. Pending responses pass."""
        what = f"{op} of series {series_uid} (study {study_uid})"
        if status is None or "Status" not in status:
            raise self._down(f"{what}: no answer within {self.settings.timeout_s:g} s")
        code = int(status.Status)
        failed = int(status.get("NumberOfFailedSuboperations") or 0)
        if code == 0xFF00 or (code == 0x0000 and not failed):
            return
        s = self.settings
        if failed:
            completed = int(status.get("NumberOfCompletedSuboperations") or 0)
            sent = f", {failed} instance(s) not sent ({completed} sent)"
        else:
            sent = ""
        if code == 0xA801:  # C-MOVE: Move destination unknown
            hint = f"register AE {s.calling_ae!r} (port {s.move_port}) in the PACS"
        elif code in (0xA701, 0xA702):  # Refused: out of resources
            hint = "the PACS is short of resources: try again later"
        elif failed or 0xC000 <= code <= 0xCFFF:
            # Sub-operations failed (instances the PACS could not send), or "Unable to
            # Process" (Orthanc's answer to a C-MOVE whose instances it cannot convert).
            syntax = (
                "hold the series in a transfer syntax (or SOP class) HepaNav did not "
                "propose and cannot convert it (docs/dicom.md, 'Compressed series'; the "
                "PACS's log names it): ask its administrator to enable transcoding, or "
                "retrieve over DICOMweb (protocol dicomweb), which takes any transfer syntax"
            )
            hint = (
                f"the PACS may not reach AE {s.calling_ae!r} at port {s.move_port} (the "
                f"C-MOVE destination), or may {syntax}"
                if op == "C-MOVE"
                else f"the PACS may {syntax}"
            )
        else:
            hint = "the PACS's log says why"
        raise self._down(f"{what} failed: status {dimse_status(op, code)}{sent}; {hint}")

    def _find(self, identifier: Dataset) -> list[Dataset]:
        ae = self._ae()
        ae.add_requested_context(_FIND)
        out = []
        with self._association(ae) as assoc:
            for status, found in assoc.send_c_find(identifier, _FIND):
                self._status_error("C-FIND", status)
                if found is not None and status.Status in (0xFF00, 0xFF01):
                    out.append(found)
        return out

    def find_studies(self, study_uid=None, accession=None) -> list[StudyInfo]:
        q = Dataset()
        q.QueryRetrieveLevel = "STUDY"
        q.StudyInstanceUID = study_uid or ""
        q.AccessionNumber = accession or ""
        q.StudyDate = ""
        q.ModalitiesInStudy = ""
        q.StudyDescription = ""
        return [
            StudyInfo(
                str(d.StudyInstanceUID),
                _text(d, "StudyDate"),
                _text(d, "ModalitiesInStudy"),
                _text(d, "StudyDescription"),
            )
            for d in self._find(q)
        ]

    def find_series(self, study_uid: str) -> list[SeriesInfo]:
        q = Dataset()
        q.QueryRetrieveLevel = "SERIES"
        q.StudyInstanceUID = study_uid
        q.SeriesInstanceUID = ""
        q.Modality = ""
        q.SeriesDescription = ""
        q.NumberOfSeriesRelatedInstances = ""
        out = []
        for d in self._find(q):
            count = d.get("NumberOfSeriesRelatedInstances")
            out.append(
                SeriesInfo(
                    study_uid,
                    str(d.SeriesInstanceUID),
                    _text(d, "Modality"),
                    _text(d, "SeriesDescription"),
                    int(count) if count not in (None, "") else None,
                )
            )
        return out

    def _retrieve_identifier(self, study_uid: str, series_uid: str) -> Dataset:
        q = Dataset()
        q.QueryRetrieveLevel = "SERIES"
        q.StudyInstanceUID = study_uid
        q.SeriesInstanceUID = series_uid
        return q

    def get_series(self, study_uid: str, series_uid: str, folder: Path) -> list[Path]:
        if self.settings.retrieve == "move":
            return self._move_series(study_uid, series_uid, folder)
        from pynetdicom import build_role, evt

        ae = self._ae()
        ae.add_requested_context(_GET)
        for uid in _STORAGE:
            if uid in _IMAGE_STORAGE:
                for syntax in _IMAGE_SYNTAXES:
                    ae.add_requested_context(uid, [syntax])
            else:
                ae.add_requested_context(uid)
        roles = [build_role(uid, scp_role=True) for uid in _STORAGE]
        written: list[Path] = []

        def on_store(event):
            written.append(_write_encoded(event, folder))
            return 0x0000

        handlers = [(evt.EVT_C_STORE, on_store)]
        with self._association(ae, ext_neg=roles, evt_handlers=handlers) as assoc:
            for status, _ in assoc.send_c_get(
                self._retrieve_identifier(study_uid, series_uid), _GET
            ):
                self._retrieve_status("C-GET", status, study_uid, series_uid)
        return written

    def _move_series(self, study_uid: str, series_uid: str, folder: Path) -> list[Path]:
        from pynetdicom import evt

        scp_ae = self._ae()
        for uid in _STORAGE:
            if uid in _IMAGE_STORAGE:
                scp_ae.add_supported_context(uid, _IMAGE_SYNTAXES)
            else:
                scp_ae.add_supported_context(uid)
        written: list[Path] = []

        def on_store(event):
            written.append(_write_encoded(event, folder))
            return 0x0000

        server = scp_ae.start_server(
            (
                "127.0.0.1" if self.settings.host in ("127.0.0.1", "localhost") else "",
                self.settings.move_port,
            ),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, on_store)],
        )
        try:
            ae = self._ae()
            ae.add_requested_context(_MOVE)
            with self._association(ae) as assoc:
                for status, _ in assoc.send_c_move(
                    self._retrieve_identifier(study_uid, series_uid),
                    self.settings.calling_ae,
                    _MOVE,
                ):
                    self._retrieve_status("C-MOVE", status, study_uid, series_uid)
        finally:
            server.shutdown()
        return written

    def store_datasets(self, datasets: list) -> list[str]:
        ae = self._ae()
        contexts = {(str(d.SOPClassUID), str(d.file_meta.TransferSyntaxUID)) for d in datasets}
        for sop, syntax in sorted(contexts):
            ae.add_requested_context(sop, [syntax])
        stored: list[str] = []
        with self._association(ae) as assoc:
            for i, ds in enumerate(datasets):
                status = assoc.send_c_store(ds)
                code = getattr(status, "Status", None)
                if code is None or code not in (0x0000, 0xB000, 0xB007, 0xB006):
                    why = "no answer" if code is None else f"status {dimse_status('C-STORE', code)}"
                    failed = [str(d.SOPInstanceUID) for d in datasets[i:]]
                    raise SendError(
                        f"C-STORE of {ds.SOPInstanceUID} failed ({why})", stored, failed
                    )
                stored.append(str(ds.SOPInstanceUID))
        return stored


def _write_encoded(event, folder: Path) -> Path:
    """Write a received instance as it arrived (Part 10 bytes, no decode/re-encode)."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = event.request.AffectedSOPInstanceUID
    path = folder / f"{uid}.dcm"
    path.write_bytes(event.encoded_dataset(include_meta=True))
    return path
