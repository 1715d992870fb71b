"""A JPEG 2000 lossless CT stored in a real Orthanc comes back as it is stored, over
DICOMweb (WADO-RS, any transfer syntax) and DIMSE (C-GET and C-MOVE with compressed
presentation contexts), and reads through the series reader as the same HU on the same grid.

Orthanc 1.10 cannot transcode JPEG 2000 (no codec without the GDCM plugin): before the
retrieval accepted compressed syntaxes, DICOMweb failed with HTTP 500 and C-GET with
status 0xC000 (tester6 defect 15).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless

from dicomout_helpers import write_study_ct
from orthanc_helpers import orthanc, pacs_env  # noqa: F401 - fixtures

STUDY = "1.2.826.0.1.3680043.8.498.3000"
SERIES = "1.2.826.0.1.3680043.8.498.3001"


def _j2k_lossless(stored: np.ndarray) -> bytes:
    """A JPEG 2000 codestream, reversible 5/3 wavelet (lossless), of a uint16 frame."""
    out = io.BytesIO()
    Image.fromarray(stored).save(out, format="JPEG2000", no_jp2=True, irreversible=False)
    return out.getvalue()


def _compress_j2k(path: Path, dst: Path) -> Path:
    """Re-encode one uncompressed CT file as JPEG 2000 Lossless (1.2.840.10008.1.2.4.90).

    The stored values are shifted into unsigned 16 bit (Pixel Representation 0) and
    the Rescale Intercept lowered by the same 1024, so the HU are unchanged.
    """
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(np.int32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    stored = (ds.pixel_array.astype(np.int32) + 1024).astype(np.uint16)
    ds.PixelRepresentation = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.RescaleIntercept = float(ds.RescaleIntercept) - 1024
    ds.PixelData = encapsulate([_j2k_lossless(stored)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.LossyImageCompression = "00"
    ds.save_as(dst, enforce_file_format=True)
    back = pydicom.dcmread(dst)
    assert np.array_equal(back.pixel_array * 1.0 + float(back.RescaleIntercept), hu)
    return dst


@pytest.fixture(scope="module")
def j2k_series(tmp_path_factory) -> tuple[Path, Path]:
    """(uncompressed folder, JPEG 2000 lossless folder) of one synthetic CT series."""
    root = tmp_path_factory.mktemp("j2k")
    rng = np.random.default_rng(15)
    volume = rng.integers(-1000, 1500, size=(5, 24, 20)).astype(np.int16)
    plain = write_study_ct(root / "plain", volume, series_uid=SERIES, study_uid=STUDY)
    (root / "j2k").mkdir()
    for path in plain:
        _compress_j2k(path, root / "j2k" / path.name)
    return root / "plain", root / "j2k"


@pytest.mark.parametrize(
    ("protocol", "retrieve"), [("dicomweb", "get"), ("dimse", "get"), ("dimse", "move")]
)
def test_jpeg2000_ct_is_retrieved_as_stored_and_reads_as_the_same_hu(
    orthanc, pacs_env, j2k_series, tmp_path, protocol, retrieve
):
    from hepanav.dicom.pacs import open_pacs
    from hepanav.imaging import read_dicom_series

    plain, j2k = j2k_series
    orthanc.clear()
    pacs_env(orthanc.env(protocol, retrieve))
    pacs = open_pacs()
    files = sorted(j2k.iterdir())
    assert len(pacs.store(files)) == len(files)
    got = pacs.get_series(STUDY, SERIES, tmp_path / "got")
    assert len(got) == len(files)
    syntaxes = {str(pydicom.dcmread(p).file_meta.TransferSyntaxUID) for p in got}
    assert syntaxes == {JPEG2000Lossless}  # as stored: not transcoded
    truth = read_dicom_series(plain)
    image = read_dicom_series(tmp_path / "got")
    assert np.array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(truth))
    assert image.GetSize() == truth.GetSize()
    np.testing.assert_allclose(image.GetOrigin(), truth.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(image.GetSpacing(), truth.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(image.GetDirection(), truth.GetDirection(), atol=1e-6)
