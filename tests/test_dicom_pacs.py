"""PACS access against a real Orthanc, over DICOMweb and DIMSE (same tests for both)."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pydicom
import pytest

from cli_helpers import one_line_error
from dicomout_helpers import PATIENT_TAGS, write_study_ct
from orthanc_helpers import orthanc, pacs_env  # noqa: F401 - fixtures

PROTOCOLS = [("dicomweb", "get"), ("dimse", "get"), ("dimse", "move")]
ACCESSION = PATIENT_TAGS["0008|0050"]


@pytest.fixture(scope="module")
def ct_files(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("pacs_ct")
    rng = np.random.default_rng(3)
    volume = rng.integers(-1000, 1000, size=(6, 16, 20)).astype(np.int16)
    return write_study_ct(
        folder / "ct",
        volume,
        series_uid="1.2.826.0.1.3680043.8.498.2001",
        study_uid="1.2.826.0.1.3680043.8.498.2000",
    )


@pytest.mark.parametrize(("protocol", "retrieve"), PROTOCOLS)
def test_send_find_get_round_trip(orthanc, pacs_env, ct_files, tmp_path, protocol, retrieve):
    from hepanav.dicom.pacs import open_pacs

    orthanc.clear()
    pacs_env(orthanc.env(protocol, retrieve))
    pacs = open_pacs()
    stored = pacs.store(ct_files)
    originals = {str(pydicom.dcmread(p).SOPInstanceUID): p for p in ct_files}
    assert sorted(stored) == sorted(originals)
    studies = pacs.find_studies(accession=ACCESSION)
    assert [s.study_uid for s in studies] == ["1.2.826.0.1.3680043.8.498.2000"]
    series = pacs.find_series(studies[0].study_uid)
    assert [(s.series_uid, s.modality, s.instances) for s in series] == [
        ("1.2.826.0.1.3680043.8.498.2001", "CT", len(ct_files))
    ]
    got = pacs.get_series(studies[0].study_uid, series[0].series_uid, tmp_path / "got")
    assert len(got) == len(ct_files)
    for path in got:
        ds = pydicom.dcmread(path)
        original = pydicom.dcmread(originals[str(ds.SOPInstanceUID)])
        assert np.array_equal(ds.pixel_array, original.pixel_array)


@pytest.mark.parametrize("protocol", ["dicomweb", "dimse"])
def test_cli_find_get_send_print_no_patient_attributes(
    orthanc,
    pacs_env,
    ct_files,
    tmp_path,
    cli,
    protocol,
):
    orthanc.clear()
    pacs_env(orthanc.env(protocol))
    code, out, err = cli("pacs", "send", ct_files[0].parent)
    assert code == 0, err
    assert f"stored {len(ct_files)} object(s)" in out
    code, out, err = cli("pacs", "find", "--accession", ACCESSION)
    assert code == 0, err
    assert "1.2.826.0.1.3680043.8.498.2000" in out
    code, out2, err = cli("pacs", "find", "--study", "1.2.826.0.1.3680043.8.498.2000")
    assert "1.2.826.0.1.3680043.8.498.2001\tCT" in out2
    code, out3, err = cli("pacs", "get", ACCESSION, "--out", tmp_path / "get")
    assert code == 0, err
    assert len(list((tmp_path / "get").rglob("*.dcm"))) == len(ct_files)
    for text in (out, out2, out3, err):
        for tag in ("0010|0010", "0010|0020", "0010|0030"):
            assert PATIENT_TAGS[tag] not in text
        assert "Phantom" not in text


def _listening_socket_that_never_answers():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s


@pytest.mark.parametrize("protocol", ["dicomweb", "dimse"])
def test_pacs_down_refusing_or_silent_is_one_line(orthanc, pacs_env, cli, protocol):
    # Down: nothing listens on the port.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = orthanc.env(protocol)
    pacs_env(
        {
            **env,
            "HEPANAV_PACS_URL": f"http://127.0.0.1:{port}/dicom-web",
            "HEPANAV_PACS_PORT": str(port),
        }
    )
    one_line_error(*cli("pacs", "find", "--accession", "X")[0::2], "not reachable")
    # Refuses: wrong called AE title (DIMSE) or wrong password (DICOMweb).
    pacs_env({**env, "HEPANAV_PACS_CALLED_AE": "NOT_ORTHANC", "HEPANAV_PACS_PASSWORD": "wrong"})
    line = one_line_error(*cli("pacs", "find", "--accession", "X")[0::2], "refused")
    assert "wrong" not in line  # no credentials in messages
    # Times out: a socket that accepts connections and never answers.
    silent = _listening_socket_that_never_answers()
    try:
        port = silent.getsockname()[1]
        pacs_env(
            {
                **env,
                "HEPANAV_PACS_URL": f"http://127.0.0.1:{port}/dicom-web",
                "HEPANAV_PACS_PORT": str(port),
                "HEPANAV_PACS_TIMEOUT_S": "1",
            }
        )
        one_line_error(*cli("pacs", "find", "--accession", "X")[0::2], "timed out")
    finally:
        silent.close()


def _stored_in_orthanc(orthanc) -> set[str]:
    """SOP Instance UIDs Orthanc holds (what the PACS really stored)."""
    return {
        orthanc.rest(f"/instances/{i}")["MainDicomTags"]["SOPInstanceUID"]
        for i in orthanc.rest("/instances")
    }


def _anonymised_copy(path: Path, dst: Path) -> Path:
    """``path`` with its SOP Class/Instance, Study and Series UIDs emptied in the data set
    (the file meta header keeps its copies), as the real test series is anonymised."""
    ds = pydicom.dcmread(path)
    for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        setattr(ds, keyword, "")
    ds.save_as(dst)
    return dst


@pytest.mark.parametrize("protocol", ["dicomweb", "dimse"])
def test_send_refuses_empty_uids_before_sending_anything(
    orthanc, pacs_env, ct_files, tmp_path, cli, protocol
):
    # Before: DICOMweb said "stored 2 object(s)" while Orthanc refused the anonymised
    # file; DIMSE said "no association within 20 s" (tester6 defects 1 and 2).
    orthanc.clear()
    pacs_env(orthanc.env(protocol))
    anonymised = _anonymised_copy(ct_files[1], tmp_path / "anonymised.dcm")
    one_line_error(
        *cli("pacs", "send", ct_files[0], anonymised)[0::2],
        f"{anonymised}: empty SOPClassUID, SOPInstanceUID, StudyInstanceUID, SeriesInstanceUID",
        "nothing was sent",
    )
    assert _stored_in_orthanc(orthanc) == set()


@pytest.mark.parametrize("protocol", ["dicomweb", "dimse"])
def test_send_counts_only_what_the_pacs_confirms(orthanc, pacs_env, ct_files, protocol):
    """An object the PACS does not store is reported as not stored, and what is reported
    as stored is what the PACS holds: checked against Orthanc's own list."""
    from hepanav.dicom.pacs import SendError, open_pacs

    orthanc.clear()
    pacs_env(orthanc.env(protocol))
    good = [pydicom.dcmread(p) for p in ct_files[:3]]
    bad = pydicom.dcmread(ct_files[3])
    del bad.StudyInstanceUID  # Orthanc refuses an instance without its study
    del bad.SeriesInstanceUID
    bad.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.2999"
    # Sent as they are (store() refuses such a file before sending: tested above).
    with pytest.raises(SendError) as caught:
        open_pacs().store_datasets([good[0], bad, good[1], good[2]])
    error = caught.value
    held = _stored_in_orthanc(orthanc)
    assert set(error.stored) == held and not set(error.failed) & held
    assert str(good[0].SOPInstanceUID) in error.stored
    assert "1.2.826.0.1.3680043.8.498.2999" in error.failed
    assert sorted(error.stored + error.failed) == sorted(
        str(d.SOPInstanceUID) for d in [*good, bad]
    )
    line = str(error)
    assert "stored before the failure" in line and "not confirmed as stored: " in line
    assert "1.2.826.0.1.3680043.8.498.2999" in line.split("not confirmed as stored: ")[1]
    assert "\n" not in line


def test_settings_come_from_a_file_and_tls_is_checked(tmp_path, pacs_env, monkeypatch):
    from hepanav.core.errors import InputError
    from hepanav.dicom.dicomweb import DicomWebPacs
    from hepanav.dicom.dimse import DimsePacs
    from hepanav.dicom.settings import load_settings

    ca = tmp_path / "ca.pem"
    ca.write_text("not checked until a connection is made\n")
    config = tmp_path / "pacs.toml"
    config.write_text(
        'protocol = "dicomweb"\nurl = "https://pacs.example/dicom-web"\ntls = true\n'
        f'ca_file = "{ca}"\nusername = "reader"\npassword = "s3cret"\n'
        'host = "pacs.example"\nport = 11112\ncalled_ae = "PACS"\n'
    )
    pacs_env({"HEPANAV_PACS_CONFIG": str(config)})
    settings = load_settings()
    assert settings.url == "https://pacs.example/dicom-web" and settings.ca_file == ca
    assert "s3cret" not in repr(settings) and "s3cret" not in settings.where()
    web = DicomWebPacs(settings)
    assert web.client._session.verify == str(ca)
    monkeypatch.setenv("HEPANAV_PACS_PROTOCOL", "dimse")  # environment beats the file
    settings = load_settings()
    assert settings.protocol == "dimse" and settings.called_ae == "PACS"
    with pytest.raises(Exception):  # noqa: B017 - the fake CA is not a certificate
        DimsePacs(settings)._tls()
    monkeypatch.setenv("HEPANAV_PACS_URL", "http://pacs.example/dicom-web")
    monkeypatch.setenv("HEPANAV_PACS_PROTOCOL", "dicomweb")
    with pytest.raises(InputError, match="not https"):
        load_settings()
    monkeypatch.setenv("HEPANAV_PACS_CA_FILE", str(tmp_path / "missing.pem"))
    monkeypatch.setenv("HEPANAV_PACS_URL", "https://pacs.example/dicom-web")
    with pytest.raises(InputError, match="missing.pem"):
        load_settings()


def test_dicomweb_answer_confirming_nothing_is_not_counted_as_stored(
    orthanc, pacs_env, ct_files, tmp_path
):
    """Orthanc answers a STOW-RS of an object without UIDs with HTTP 200 and empty
    Referenced and Failed SOP Sequences (tester6 defect 1): not stored, and said so."""
    from hepanav.dicom.pacs import SendError, open_pacs

    orthanc.clear()
    pacs_env(orthanc.env("dicomweb"))
    ds = pydicom.dcmread(_anonymised_copy(ct_files[1], tmp_path / "anonymised.dcm"))
    with pytest.raises(SendError, match="not confirmed as stored") as caught:
        open_pacs().store_datasets([ds])
    assert caught.value.stored == [] and len(caught.value.failed) == 1
    assert _stored_in_orthanc(orthanc) == set()


@pytest.mark.parametrize("protocol", ["dicomweb", "dimse"])
def test_send_to_a_pacs_that_is_down_is_one_line(orthanc, pacs_env, ct_files, cli, protocol):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = orthanc.env(protocol)
    pacs_env(
        {
            **env,
            "HEPANAV_PACS_URL": f"http://127.0.0.1:{port}/dicom-web",
            "HEPANAV_PACS_PORT": str(port),
        }
    )
    line = one_line_error(*cli("pacs", "send", ct_files[0], ct_files[1])[0::2], "not reachable")
    if protocol == "dicomweb":
        assert "stored before the failure: none (0 of 2 objects)" in line
