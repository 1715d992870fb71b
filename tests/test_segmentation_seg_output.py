"""``hepanav segment ... --out MASK.dcm``: a DICOM SEG on the CT series, read back exactly."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cli_helpers import one_line_error

sys.path.insert(0, str(Path(__file__).parent))
from dicomout_helpers import dciodvfy, write_study_ct  # noqa: E402
from segmentation_helpers import in_body, lesion_case  # noqa: E402

SERIES_UID = "1.2.826.0.1.3680043.8.498.1001"


@pytest.fixture(scope="module")
def dicom_ct(tmp_path_factory):
    """A hypodense lesion (r 8 mm) in a liver block inside a body, as a DICOM series."""
    ct, _, shape, grid, hu = lesion_case(radius=8.0, contrast=-45.0)
    hu = in_body(hu, grid)
    folder = tmp_path_factory.mktemp("segdcm")
    write_study_ct(
        folder / "ct",
        np.rint(hu).astype(np.int16),
        spacing_xyz=ct.GetSpacing(),
        origin_xyz=ct.GetOrigin(),
        series_uid=SERIES_UID,
    )
    sitk.WriteImage(sitk.Cast(ct, sitk.sitkInt16), str(folder / "ct.nii.gz"))
    return folder, ",".join(f"{v:.2f}" for v in shape.center)


def test_segment_writes_dicom_seg_identical_to_nifti(cli, dicom_ct, tmp_path):
    from hepanav.imaging import read_image, resample_mask_like
    from hepanav.imaging.seg import read_seg
    from hepanav.segmentation.metrics import dice

    folder, seed = dicom_ct
    ct_dir = folder / "ct"
    code, _, err = cli(
        "segment", "tumor", "--ct", ct_dir, "--seed", seed, "--out", tmp_path / "t.dcm"
    )
    assert code == 0, err
    code, _, err = cli(
        "segment", "tumor", "--ct", ct_dir, "--seed", seed, "--out", tmp_path / "t.nii.gz"
    )
    assert code == 0, err
    seg_mask, record = read_seg(tmp_path / "t.dcm")
    assert record.referenced_series_uid == SERIES_UID
    ct = read_image(ct_dir)
    nifti = sitk.ReadImage(str(tmp_path / "t.nii.gz"))
    on_ct = resample_mask_like(seg_mask, ct)
    assert np.count_nonzero(sitk.GetArrayViewFromImage(nifti)) > 1000  # a real lesion
    assert dice(on_ct, nifti) == 1.0
    assert json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))["structure"] == "tumor"
    assert (tmp_path / "t.html").is_file()
    errors, _ = dciodvfy(tmp_path / "t.dcm")
    assert errors == []


def test_dicom_seg_needs_a_dicom_ct(cli, dicom_ct, tmp_path):
    folder, seed = dicom_ct
    out = tmp_path / "t.dcm"
    code, _, err = cli(
        "segment", "tumor", "--ct", folder / "ct.nii.gz", "--seed", seed, "--out", out
    )
    one_line_error(code, err, "t.dcm", "DICOM SEG", "DICOM series folder")
    assert not any(tmp_path.iterdir())
