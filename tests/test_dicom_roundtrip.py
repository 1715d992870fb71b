"""Must show: CT + tumour RTSTRUCT + zone SEG in Orthanc -> `hepanav margin --from-pacs
... --send` -> SEG, SR and SC back in Orthanc, with the same voxels and the same MAM."""

from __future__ import annotations

import json

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from cli_helpers import one_line_error
from dicom_helpers import circle_contour, write_rtstruct, write_seg
from dicomout_helpers import PATIENT_TAGS, sphere_case
from hepanav.imaging import dice
from hepanav.imaging.dicomout import read_source_series
from orthanc_helpers import orthanc, pacs_env  # noqa: F401 - fixtures
from test_dicom_objects import _numeric_items, _seg_on_ct_grid

ACCESSION = PATIENT_TAGS["0008|0050"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """CT series, tumour RTSTRUCT ('Tumour', circles of a 6 mm sphere) and zone SEG."""
    folder = tmp_path_factory.mktemp("roundtrip")
    ct_dir, ct, _, zone = sphere_case(folder)
    source = read_source_series(ct_dir)
    centre = np.asarray(ct.TransformContinuousIndexToPhysicalPoint([s / 2 for s in ct.GetSize()]))
    contours = []
    for ds in source.datasets:
        z = float(ds.ImagePositionPatient[2])
        if abs(z - centre[2]) < 6.0:
            contours.append(
                circle_contour(
                    (centre[0], centre[1], z), float(np.sqrt(36.0 - (z - centre[2]) ** 2))
                )
            )
    rt = write_rtstruct(folder / "rtstruct.dcm", source.datasets, {"Tumour": contours})
    _same_patient_and_study(rt, source.first)
    seg = write_seg(
        folder / "zone_seg.dcm", source.datasets, {"Ablation zone": sitk.GetArrayFromImage(zone)}
    )
    return folder, [*sorted(ct_dir.iterdir()), rt, seg]


def _same_patient_and_study(path, ct) -> None:
    ds = pydicom.dcmread(path)
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "StudyID",
        "AccessionNumber",
        "ReferringPhysicianName",
    ):
        setattr(ds, keyword, ct.get(keyword, ""))
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize("protocol", ["dicomweb", "dimse"])
def test_margin_from_pacs_and_back(orthanc, pacs_env, study, tmp_path, cli, protocol):
    from hepanav.dicom.pacs import open_pacs

    orthanc.clear()
    pacs_env(orthanc.env(protocol))
    _, files = study
    pacs = open_pacs()
    pacs.store(files)
    out = tmp_path / "result"
    code, stdout, err = cli(
        "margin",
        "--from-pacs",
        ACCESSION,
        "--tumor",
        "Tumour",
        "--ablation",
        "Ablation zone",
        "--out",
        out,
        "--send",
    )
    assert code == 0, err
    assert "stored" in stdout
    result = json.loads((out / "margin.json").read_text())

    study_uid = pacs.resolve_study(ACCESSION, "--from-pacs")
    ours = {
        s.modality: s for s in pacs.find_series(study_uid) if s.description.startswith("HepaNav")
    }
    assert set(ours) == {"SEG", "SR", "OT"}
    got = {m: pacs.get_series(study_uid, s.series_uid, tmp_path / m) for m, s in ours.items()}

    # SEG: the same voxels as the NIfTI masks of the result (Dice 1.0), on the CT.
    seg = hd.seg.segread(got["SEG"][0])
    ct_dir = next(p.parent for p in files if p.parent.name == "ct")
    volume = seg.get_volume(combine_segments=False)
    stems = {
        "Tumour (in post-procedure space)": "tumor_post",
        "Ablation zone": "ablation_zone",
        "Residual tumour outside the zone": "residual_tumor",
        "Tumour surface with margin 0-5 mm": "margin_0_5mm_surface",
    }
    for item in seg.SegmentSequence:
        nifti = sitk.ReadImage(str(out / "segments" / f"{stems[item.SegmentLabel]}.nii.gz"))
        expected = sitk.GetArrayFromImage(nifti).astype(bool)
        array = _seg_on_ct_grid(volume, int(item.SegmentNumber) - 1, expected.shape, ct_dir)
        from_seg = sitk.GetImageFromArray(array.astype(np.uint8))
        from_seg.CopyInformation(nifti)
        assert dice(from_seg, sitk.Cast(nifti > 0, sitk.sitkUInt8)) == 1.0, item.SegmentLabel
    # SR: the MAM of margin.json.
    sr = pydicom.dcmread(got["SR"][0])
    assert _numeric_items(sr)[("MM001", "99HEPANAV")][0] == pytest.approx(
        result["min_margin_mm"], abs=1e-9
    )
    # The result sits in the patient's study.
    assert sr.StudyInstanceUID == seg.StudyInstanceUID == study_uid
    assert len(got["OT"]) >= 2


def test_study_without_ct_or_roi_is_one_line(orthanc, pacs_env, study, tmp_path, cli):
    from hepanav.dicom.pacs import open_pacs

    orthanc.clear()
    pacs_env(orthanc.env("dicomweb"))
    _, files = study
    open_pacs().store([files[-1]])  # the SEG only: no CT in the study
    one_line_error(
        *cli(
            "margin",
            "--from-pacs",
            ACCESSION,
            "--tumor",
            "Tumour",
            "--ablation",
            "Ablation zone",
            "--out",
            tmp_path / "r",
        )[0::2],
        "holds no CT series",
    )
    open_pacs().store(files[:-1])
    line = one_line_error(
        *cli(
            "margin",
            "--from-pacs",
            ACCESSION,
            "--tumor",
            "Tumor",
            "--ablation",
            "Ablation zone",
            "--out",
            tmp_path / "r",
        )[0::2],
        "no ROI or segment named 'Tumor'",
        "Tumour",
        "Ablation zone",
    )
    assert "--tumor" in line


def test_several_ct_series_need_a_choice(orthanc, pacs_env, study, tmp_path, cli):
    import numpy as np

    from dicomout_helpers import STUDY_UID, write_study_ct
    from hepanav.dicom.pacs import open_pacs

    orthanc.clear()
    pacs_env(orthanc.env("dimse"))
    _, files = study
    other = write_study_ct(
        tmp_path / "arterial",
        np.zeros((4, 8, 8), np.int16),
        series_uid="1.2.826.0.1.3680043.8.498.5555",
        study_uid=STUDY_UID,
    )
    open_pacs().store([*files, *other])
    ct_uid = pydicom.dcmread(files[0]).SeriesInstanceUID
    one_line_error(
        *cli(
            "margin",
            "--from-pacs",
            ACCESSION,
            "--tumor",
            "Tumour",
            "--ablation",
            "Ablation zone",
            "--out",
            tmp_path / "r",
        )[0::2],
        "2 CT series",
        "KEY/SERIES_UID",
    )
    code, out, err = cli(
        "margin",
        "--from-pacs",
        f"{ACCESSION}/{ct_uid}",
        "--tumor",
        "Tumour",
        "--ablation",
        "Ablation zone",
        "--out",
        tmp_path / "r",
    )
    assert code == 0, err
    sources = json.loads((tmp_path / "r" / "dicom_sources.json").read_text())["pacs"]
    assert sources["ct_series_instance_uid"] == ct_uid
