"""``hepanav pacs get`` and ``pacs send`` against a real Orthanc: errors name the command's
own argument, and a folder with a stray non-DICOM file is sent without it (tester: the
error of ``pacs get UNKNOWN`` named ``--from-pacs``; ``pacs send FOLDER`` refused the whole
folder for one README.txt)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from cli_helpers import one_line_error
from dicomout_helpers import write_study_ct
from orthanc_helpers import orthanc, pacs_env  # noqa: F401 - fixtures
from test_dicom_pacs import _stored_in_orthanc

UNKNOWN = "1.2.826.0.1.3680043.8.498.4999"


@pytest.fixture(scope="module")
def ct_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("getsend")
    volume = np.random.default_rng(5).integers(-1000, 1000, size=(4, 12, 14)).astype(np.int16)
    return write_study_ct(folder / "ct", volume, series_uid="1.2.826.0.1.3680043.8.498.4001",
                          study_uid="1.2.826.0.1.3680043.8.498.4000")  # fmt: skip


def test_unknown_study_names_the_argument_it_was_given_in(
    orthanc, pacs_env, ct_files, tmp_path, cli
):
    from hepanav.dicom.pacs import open_pacs

    orthanc.clear()
    pacs_env(orthanc.env("dicomweb"))
    line = one_line_error(
        *cli("pacs", "get", UNKNOWN, "--out", tmp_path / "got")[0::2],
        "error: pacs get KEY: no study with this Study Instance UID or Accession Number",
    )
    assert "--from-pacs" not in line
    assert not (tmp_path / "got").exists()
    # The post study of a margin pair names its own option (was --from-pacs as well).
    open_pacs().store(ct_files)
    one_line_error(
        *cli("margin", "--from-pacs", "1.2.826.0.1.3680043.8.498.4000", "--from-pacs-post",
             UNKNOWN, "--tumor", "T", "--ablation", "Z", "--out", tmp_path / "r")[0::2],
        "error: --from-pacs-post: no study with this Study Instance UID",
    )  # fmt: skip
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("protocol", ["dicomweb", "dimse"])
def test_send_skips_files_that_are_not_dicom_and_says_which(
    orthanc, pacs_env, ct_files, tmp_path, cli, protocol
):
    import shutil

    orthanc.clear()
    pacs_env(orthanc.env(protocol))
    folder = tmp_path / "export"
    shutil.copytree(ct_files[0].parent, folder)
    (folder / "README.txt").write_text("CT of the phantom\n")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(range(256)) * 4)
    code, stdout, err = cli("pacs", "send", folder)
    assert code == 0, err
    notes = [ln for ln in stdout.splitlines() if ln.startswith("note:")]
    assert notes == [
        f"note: skipped 2 file(s) that are not DICOM (no DICOM file meta header): "
        f"{folder / '.DS_Store'}, {folder / 'README.txt'}"
    ]
    assert f"stored {len(ct_files)} object(s)" in stdout
    assert _stored_in_orthanc(orthanc) == {str(pydicom.dcmread(p).SOPInstanceUID) for p in ct_files}


@pytest.mark.parametrize("broken", ["truncated", "cut before its pixel data", "no dicom at all"])
def test_send_still_refuses_broken_dicom_or_no_dicom(
    orthanc, pacs_env, ct_files, tmp_path, cli, broken
):
    """A DICOM file cut short (pydicom reads it without an error: pixel data 10 bytes
    short, or none at all), or a folder of non-DICOM files only: one line, exit 2,
    nothing stored."""
    import shutil

    orthanc.clear()
    pacs_env(orthanc.env("dicomweb"))
    folder = tmp_path / "export"
    if broken == "no dicom at all":
        folder.mkdir()
        (folder / "README.txt").write_text("nothing here\n")
        one_line_error(
            *cli("pacs", "send", folder)[0::2],
            f"{folder}: no DICOM file among the 1 file(s) given",
            "nothing was sent",
        )
        assert _stored_in_orthanc(orthanc) == set()
        return
    shutil.copytree(ct_files[0].parent, folder)
    victim = folder / ct_files[2].name
    data = victim.read_bytes()
    if broken == "truncated":  # the old code sent it: 3 objects "stored"
        victim.write_bytes(data[:-10])
        what = f"pixel data truncated: {12 * 14 * 2 - 10} of {12 * 14 * 2} bytes"
    else:  # beside a file that is skipped
        (folder / "README.txt").write_text("CT of the phantom\n")
        victim.write_bytes(data[: data.rindex(b"\xe0\x7f\x10\x00")])  # before (7FE0,0010)
        what = "an image without pixel data: the file ends early"
    one_line_error(
        *cli("pacs", "send", folder)[0::2],
        f"{victim}: a broken DICOM file ({what}); nothing was sent",
    )
    assert _stored_in_orthanc(orthanc) == set()
