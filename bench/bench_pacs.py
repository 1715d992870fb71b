"""PACS benchmark: fetch a 300-slice CT series from a real Orthanc over DICOMweb (WADO-RS)
and over DIMSE (C-GET), and store objects (STOW-RS, C-STORE), each timed against the raw
library transfer of the same objects in the same run.

Baselines (same process, same Orthanc, same series):

* fetch: ``dicomweb_client.DICOMwebClient.retrieve_series`` / a bare pynetdicom C-GET
  that keeps the datasets in memory; ours also writes every instance to disk (Part 10)
  and checks statuses;
* store: ``DICOMwebClient.store_instances`` / a bare pynetdicom association sending
  every dataset with ``send_c_store``; ours reads the files, batches, checks each status.

Orthanc runs from ``tests/orthanc_helpers.py`` (generated config, loopback, temporary
storage) and is stopped at the end. Each figure is the median of ``REPEATS`` runs.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SLICES = 300
SIZE = 256  # pixels per side: 300 x 256 x 256 int16 = 39 MB of pixel data
REPEATS = 3
TESTS = Path(__file__).resolve().parents[1] / "tests"


def _median_s(fn) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _raw_cget(settings, study_uid: str, series_uid: str) -> int:
    from pydicom.dataset import Dataset
    from pynetdicom import AE, build_role, evt
    from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelGet

    kept = []

    def on_store(event):
        kept.append(event.dataset)
        return 0x0000

    ae = AE(ae_title=settings.calling_ae)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate(
        settings.host,
        settings.port,
        ae_title=settings.called_ae,
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    q = Dataset()
    q.QueryRetrieveLevel = "SERIES"
    q.StudyInstanceUID, q.SeriesInstanceUID = study_uid, series_uid
    for _ in assoc.send_c_get(q, StudyRootQueryRetrieveInformationModelGet):
        pass
    assoc.release()
    return len(kept)


def _raw_cstore(settings, datasets) -> None:
    from pynetdicom import AE

    ae = AE(ae_title=settings.calling_ae)
    for sop in {(d.SOPClassUID, d.file_meta.TransferSyntaxUID) for d in datasets}:
        ae.add_requested_context(sop[0], [sop[1]])
    assoc = ae.associate(settings.host, settings.port, ae_title=settings.called_ae)
    for d in datasets:
        assoc.send_c_store(d)
    assoc.release()


def main() -> dict:
    sys.path.insert(0, str(TESTS))
    import pydicom

    from dicomout_helpers import write_study_ct
    from orthanc_helpers import orthanc_missing, start_orthanc

    missing = orthanc_missing()
    if missing:
        print(f"skipped: {missing}")
        return {"skipped": missing}
    results: dict = {"slices": SLICES, "matrix": f"{SIZE}x{SIZE}", "repeats": REPEATS}
    with tempfile.TemporaryDirectory(prefix="bench-pacs-") as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        volume = rng.integers(-1000, 1500, size=(SLICES, SIZE, SIZE)).astype(np.int16)
        files = write_study_ct(tmp / "ct", volume, series_uid=SERIES, study_uid=STUDY)
        datasets = [pydicom.dcmread(p) for p in files]
        megabytes = sum(p.stat().st_size for p in files) / 1e6
        results["series_mb"] = round(megabytes, 1)
        server = start_orthanc(tmp / "orthanc")
        saved = {k: v for k, v in os.environ.items() if k.startswith("HEPANAV_PACS_")}
        try:
            for protocol in ("dicomweb", "dimse"):
                os.environ.update(server.env(protocol))
                results.update(_protocol(protocol, server, files, datasets, tmp, megabytes))
        finally:
            server.stop()
            for key in [k for k in os.environ if k.startswith("HEPANAV_PACS_")]:
                del os.environ[key]
            os.environ.update(saved)
    for key, value in results.items():
        print(f"{key}: {value}")
    return results


STUDY, SERIES = "1.2.826.0.1.3680043.8.498.9000", "1.2.826.0.1.3680043.8.498.9001"


def _protocol(protocol, server, files, datasets, tmp, megabytes) -> dict:
    """Store and fetch figures of one protocol (settings from the environment)."""
    from hepanav.dicom.pacs import open_pacs
    from hepanav.dicom.settings import load_settings

    settings = load_settings()
    pacs = open_pacs(settings)

    def ours_store():
        server.clear()
        pacs.store(files)

    def raw_store():
        server.clear()
        if protocol == "dicomweb":
            pacs.client.store_instances(datasets)
        else:
            _raw_cstore(settings, datasets)

    out = {f"{protocol}_store": _figures(_median_s(ours_store), _median_s(raw_store), megabytes)}
    fetched = []

    def ours_get():
        fetched.append(len(pacs.get_series(STUDY, SERIES, tmp / f"get_{time.time_ns()}")))

    def raw_get():
        if protocol == "dicomweb":
            assert len(pacs.client.retrieve_series(STUDY, SERIES)) == SLICES
        else:
            assert _raw_cget(settings, STUDY, SERIES) == SLICES

    name = "dicomweb_fetch" if protocol == "dicomweb" else "cget_fetch"
    out[name] = _figures(_median_s(ours_get), _median_s(raw_get), megabytes)
    assert fetched == [SLICES] * REPEATS
    return out


def _figures(ours_s: float, raw_s: float, megabytes: float) -> dict:
    return {
        "hepanav_s": round(ours_s, 2),
        "raw_library_s": round(raw_s, 2),
        "overhead_ratio": round(ours_s / raw_s, 2),
        "hepanav_mb_per_s": round(megabytes / ours_s, 1),
    }


if __name__ == "__main__":
    main()
