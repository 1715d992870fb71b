"""Retrieval failures read as one line a user can act on, provoked in a real Orthanc: the
series and study, the operation, the status code AND its meaning, what to do; exit 2,
nothing written. Before, the user saw "C-GET failed with status 0xC000" or "refused the
request: HTTP 500" and nothing else.

Orthanc holds a CT series in JPEG 2000 Part 2 (1.2.840.10008.1.2.4.92): a transfer
syntax HepaNav does not propose over DIMSE and Orthanc 1.10 cannot transcode (its log:
"Cannot transcode ... from transfer syntax 1.2.840.10008.1.2.4.92"), so C-GET and C-MOVE
fail in their storage sub-operations, every time. Over DICOMweb the same series comes
back as stored (any transfer syntax); its failures are provoked by asking for a series
Orthanc does not hold (HTTP 404) and, with the client made to ask for Explicit VR Little
Endian as it once did, by a JPEG 2000 series Orthanc cannot transcode (HTTP 500).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from cli_helpers import one_line_error
from dicomout_helpers import write_study_ct
from orthanc_helpers import orthanc, pacs_env  # noqa: F401 - fixtures
from test_dicom_pacs_compressed import _compress_j2k

STUDY = "1.2.826.0.1.3680043.8.498.3200"
SERIES = "1.2.826.0.1.3680043.8.498.3201"
J2K_PART2 = "1.2.840.10008.1.2.4.92"  # JPEG 2000 Part 2 Multi-component Lossless


@pytest.fixture(scope="module")
def odd_series(tmp_path_factory) -> tuple[Path, Path]:
    """(JPEG 2000 Lossless folder, the same labelled JPEG 2000 Part 2) of one CT series."""
    root = tmp_path_factory.mktemp("odd")
    volume = np.random.default_rng(7).integers(-1000, 1500, size=(3, 16, 12)).astype(np.int16)
    plain = write_study_ct(root / "plain", volume, series_uid=SERIES, study_uid=STUDY)
    (root / "j2k").mkdir()
    (root / "part2").mkdir()
    for path in plain:
        _compress_j2k(path, root / "j2k" / path.name)
        ds = pydicom.dcmread(root / "j2k" / path.name)
        ds.file_meta.TransferSyntaxUID = J2K_PART2
        ds.save_as(root / "part2" / path.name, enforce_file_format=True)
    return root / "j2k", root / "part2"


def _store(orthanc, pacs_env, folder: Path) -> None:
    from hepanav.dicom.pacs import open_pacs

    orthanc.clear()
    pacs_env(orthanc.env("dimse"))
    files = sorted(folder.iterdir())
    assert len(open_pacs().store(files)) == len(files)


@pytest.mark.parametrize("retrieve", ["get", "move"])
def test_dimse_retrieval_of_a_syntax_not_proposed_says_status_meaning_and_what_to_do(
    orthanc, pacs_env, odd_series, cli, tmp_path, retrieve
):
    _store(orthanc, pacs_env, odd_series[1])
    pacs_env(orthanc.env("dimse", retrieve))
    op = {"get": "C-GET", "move": "C-MOVE"}[retrieve]
    out = tmp_path / "study"
    line = one_line_error(
        *cli("pacs", "get", STUDY, "--out", out)[0::2],
        f"{op} of series {SERIES} (study {STUDY}) failed: status 0xC000 (Failure: "
        "Unable to Process)",
        "hold the series in a transfer syntax (or SOP class) HepaNav did not propose",
        "retrieve over DICOMweb (protocol dicomweb), which takes any transfer syntax",
    )
    if retrieve == "get":  # Orthanc counts the instance it failed to send (and stops)
        assert "Unable to Process), 1 instance(s) not sent (0 sent); the PACS may hold" in line
    else:  # C-MOVE: Orthanc gives no counts; our storage SCP may be what it missed
        assert "Unable to Process); the PACS may not reach AE 'HEPANAV' at port" in line
    assert not out.exists()


def test_dicomweb_retrieval_failures_name_path_status_and_the_servers_words(
    orthanc, pacs_env, odd_series, cli, tmp_path, monkeypatch
):
    import hepanav.dicom.dicomweb as dicomweb
    from hepanav.core.errors import InputError
    from hepanav.dicom.pacs import open_pacs

    _store(orthanc, pacs_env, odd_series[0])
    pacs_env(orthanc.env("dicomweb"))
    # A series the PACS does not hold (gone since the search): HTTP 404.
    with pytest.raises(InputError) as caught:
        open_pacs().get_series(STUDY, "1.2.826.0.1.3680043.8.498.3299", tmp_path / "none")
    assert str(caught.value) == (
        f"PACS DICOMweb {orthanc.dicomweb_url}: WADO-RS retrieve of series "
        f"1.2.826.0.1.3680043.8.498.3299 (study {STUDY}) refused: HTTP 404 Not Found (GET "
        f"/dicom-web/studies/{STUDY}/series/1.2.826.0.1.3680043.8.498.3299), the PACS said "
        '"Accessing an inexistent series with WADO-RS: 1.2.826.0.1.3680043.8.498.3299"; '
        "the PACS does not hold this series (deleted since the search?)"
    )
    # Asking for Explicit VR Little Endian (dicomweb-client's default, as HepaNav once
    # did): Orthanc cannot transcode JPEG 2000 and answers HTTP 500.
    monkeypatch.setattr(
        dicomweb, "ANY_TRANSFER_SYNTAX", (("application/dicom", "1.2.840.10008.1.2.1"),)
    )
    out = tmp_path / "study"
    one_line_error(
        *cli("pacs", "get", STUDY, "--out", out)[0::2],
        f"WADO-RS retrieve of series {SERIES} (study {STUDY}) refused: HTTP 500 Internal "
        f"Server Error (GET /dicom-web/studies/{STUDY}/series/{SERIES}), the PACS said "
        '"Error encountered within the plugin engine"; the PACS failed producing the '
        "series (e.g. it cannot convert the transfer syntax it holds it in)",
    )
    assert not out.exists()


def test_status_meanings_come_from_pynetdicom():
    """The meaning of a DIMSE status is pynetdicom's for the service (PS3.4 Annex C)."""
    from hepanav.dicom.pacs import dimse_status

    assert dimse_status("C-GET", 0xC000) == "0xC000 (Failure: Unable to Process)"
    assert dimse_status("C-GET", 0xA702) == (
        "0xA702 (Failure: Refused: Out of resources, unable to perform sub-operations)"
    )
    assert dimse_status("C-GET", 0xB000) == (
        "0xB000 (Warning: Sub-operations complete, one or more failures or warnings)"
    )
    assert dimse_status("C-MOVE", 0xA801) == "0xA801 (Failure: Move destination unknown)"
    assert dimse_status("C-STORE", 0xA700) == "0xA700 (Failure: Refused: Out of Resources)"
    assert dimse_status("C-FIND", 0x0123) == "0x0123 (Failure: No Such Action)"  # PS3.7 C.4
    assert dimse_status("C-FIND", 0x1234) == "0x1234 (Unknown: no meaning defined for C-FIND)"


def test_retrieve_status_lines_without_a_pacs():
    """Statuses a real PACS does not give on demand, through the same formatter: a
    C-MOVE destination the PACS does not know, a PACS out of resources, a warning with
    failed sub-operations; pending and success pass."""
    from pydicom.dataset import Dataset

    from hepanav.core.errors import InputError
    from hepanav.dicom.dimse import DimsePacs
    from hepanav.dicom.settings import PacsSettings

    pacs = DimsePacs(PacsSettings(protocol="dimse", host="pacs.example", port=104, move_port=11113))

    def status(code, failed=None, completed=None):
        ds = Dataset()
        ds.Status = code
        if failed is not None:
            ds.NumberOfFailedSuboperations = failed
            ds.NumberOfCompletedSuboperations = completed
        return ds

    def line(op, ds):
        with pytest.raises(InputError) as caught:
            pacs._retrieve_status(op, ds, "1.2.3", "1.2.3.4")
        return caught.value.reason

    pacs._retrieve_status("C-GET", status(0xFF00, 1, 2), "1.2.3", "1.2.3.4")  # pending
    pacs._retrieve_status("C-GET", status(0x0000, 0, 3), "1.2.3", "1.2.3.4")
    assert line("C-MOVE", status(0xA801)) == (
        "C-MOVE of series 1.2.3.4 (study 1.2.3) failed: status 0xA801 (Failure: Move "
        "destination unknown); register AE 'HEPANAV' (port 11113) in the PACS"
    )
    assert line("C-GET", status(0xA702, 3, 0)) == (
        "C-GET of series 1.2.3.4 (study 1.2.3) failed: status 0xA702 (Failure: Refused: Out "
        "of resources, unable to perform sub-operations), 3 instance(s) not sent (0 sent); "
        "the PACS is short of resources: try again later"
    )
    text = line("C-GET", status(0xB000, 2, 40))
    assert text.startswith(
        "C-GET of series 1.2.3.4 (study 1.2.3) failed: status 0xB000 (Warning: Sub-operations "
        "complete, one or more failures or warnings), 2 instance(s) not sent (40 sent); the "
        "PACS may hold the series in a transfer syntax (or SOP class) HepaNav did not propose"
    )
    assert line("C-GET", Dataset()) == (
        "C-GET of series 1.2.3.4 (study 1.2.3): no answer within 30 s"
    )
