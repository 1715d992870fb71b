"""`hepanav margin --from-pacs PRE --from-pacs-post POST --send`: the pre/post pair from two
studies in a real Orthanc, the same MAM as the same pair run from NIfTI files, and the
SEG + SR stored back into the post study."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

from cli_helpers import one_line_error
from dicom_helpers import circle_contour, write_rtstruct, write_seg
from dicomout_helpers import mask_like, write_study_ct
from hepanav.imaging import read_dicom_series, write_image
from hepanav.imaging.dicomout import read_source_series
from hepanav.imaging.masks import read_mask
from orthanc_helpers import orthanc, pacs_env  # noqa: F401 - fixtures
from test_dicom_roundtrip import _same_patient_and_study

PRE_STUDY, POST_STUDY = "1.2.826.0.1.3680043.8.498.8101", "1.2.826.0.1.3680043.8.498.8201"
SHAPE, SPACING = (32, 64, 64), (1.5, 1.5, 2.0)  # 96 x 96 x 64 mm: room for the region
ORIGIN = (-48.0, -48.0, -32.0)
SHIFT = np.array([8.0, -6.0, 2.0])  # post = pre moved by SHIFT (a patient shift), LPS mm
TUMOUR_R, ZONE_R, ZONE_OFFSET = 6.0, 12.0, np.array([-2.0, 0.0, 0.0])  # MAM 4 mm analytic


def _textured_ct() -> np.ndarray:
    """A body with bright and dark blobs around the lesion: something to register."""
    nz, ny, nx = SHAPE
    z, y, x = np.mgrid[0:nz, 0:ny, 0:nx].astype(float)
    pz, py, px = (z - nz / 2) * SPACING[2], (y - ny / 2) * SPACING[1], (x - nx / 2) * SPACING[0]
    hu = np.where(px**2 + py**2 < 42.0**2, 60.0, -1000.0)
    for (bx, by, bz), r, value in (
        ((-28, -10, -12), 7, 300),
        ((25, 18, 8), 8, -150),
        ((5, 30, -10), 6, 250),
        ((-15, 25, 14), 7, 150),
        ((22, -25, 0), 6, 200),
        ((-5, -30, 12), 5, -100),
    ):
        hu[(px - bx) ** 2 + (py - by) ** 2 + (pz - bz) ** 2 < r**2] = value
    return hu.astype(np.int16)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Pre study (CT + tumour RTSTRUCT 'Tumour') and post study (CT moved by SHIFT, zone
    SEG 'Ablation zone'), plus the same inputs as NIfTI files."""
    return _write_pair(tmp_path_factory.mktemp("pacspair"), PRE_STUDY)


@pytest.fixture(scope="module")
def one_study_pair(tmp_path_factory):
    """The same pair as two CT series (with their objects) of the post study."""
    return _write_pair(tmp_path_factory.mktemp("pacspair1"), POST_STUDY)


def _write_pair(folder, pre_study: str) -> dict:
    volume = _textured_ct()
    pre_files = write_study_ct(
        folder / "pre",
        volume,
        SPACING,
        ORIGIN,
        series_uid=PRE_STUDY + ".1",
        study_uid=pre_study,
        frame_of_reference_uid=PRE_STUDY + ".9",
    )
    post_files = write_study_ct(
        folder / "post",
        volume,
        SPACING,
        tuple(np.add(ORIGIN, SHIFT)),
        series_uid=POST_STUDY + ".1",
        study_uid=POST_STUDY,
        frame_of_reference_uid=POST_STUDY + ".9",
    )
    pre_src, post_src = read_source_series(folder / "pre"), read_source_series(folder / "post")
    pre_ct, post_ct = read_dicom_series(folder / "pre"), read_dicom_series(folder / "post")
    centre = np.asarray(
        pre_ct.TransformContinuousIndexToPhysicalPoint([s / 2 for s in pre_ct.GetSize()])
    )
    contours = [
        circle_contour(
            (centre[0], centre[1], z), float(np.sqrt(TUMOUR_R**2 - (z - centre[2]) ** 2))
        )
        for z in (float(ds.ImagePositionPatient[2]) for ds in pre_src.datasets)
        if abs(z - centre[2]) < TUMOUR_R
    ]
    rt = write_rtstruct(folder / "tumour_rt.dcm", pre_src.datasets, {"Tumour": contours})
    _same_patient_and_study(rt, pre_src.first)
    # The zone in post space: around the tumour's post position, offset by ZONE_OFFSET.
    idx = np.indices(SHAPE).reshape(3, -1)[::-1].T  # (x, y, z) indices
    points = np.asarray(ORIGIN) + SHIFT + idx * np.asarray(SPACING)
    inside = np.linalg.norm(points - (centre + SHIFT + ZONE_OFFSET), axis=1) < ZONE_R
    zone = mask_like(post_ct, inside.reshape(SHAPE))
    seg = write_seg(
        folder / "zone_seg.dcm", post_src.datasets, {"Ablation zone": inside.reshape(SHAPE)}
    )
    nifti = {
        "pre": write_image(pre_ct, folder / "pre.nii.gz"),
        "post": write_image(post_ct, folder / "post.nii.gz"),
        "tumor": write_image(
            read_mask(rt, reference=pre_ct, labels="Tumour"), folder / "tumour.nii.gz"
        ),
        "ablation": write_image(zone, folder / "zone.nii.gz"),
    }
    return {"pre": [*pre_files, rt], "post": [*post_files, seg], "nifti": nifti}


def test_pair_from_two_studies_and_back(orthanc, pacs_env, pair, tmp_path, cli):
    from hepanav.dicom.pacs import open_pacs

    orthanc.clear()
    pacs_env(orthanc.env("dicomweb"))
    pacs = open_pacs()
    pacs.store([*pair["pre"], *pair["post"]])
    out = tmp_path / "pacs"
    code, stdout, err = cli(
        "margin",
        "--from-pacs",
        PRE_STUDY,
        "--from-pacs-post",
        POST_STUDY,
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
    from_pacs = json.loads((out / "margin.json").read_text())

    n = pair["nifti"]
    code, _, err = cli(
        "margin",
        "--pre",
        n["pre"],
        "--post",
        n["post"],
        "--tumor",
        n["tumor"],
        "--ablation",
        n["ablation"],
        "--out",
        tmp_path / "nifti",
    )
    assert code == 0, err
    from_files = json.loads((tmp_path / "nifti" / "margin.json").read_text())
    assert from_pacs["min_margin_mm"] == pytest.approx(from_files["min_margin_mm"], abs=0.05)
    # The registration found the patient shift: the MAM is near the analytic 4 mm (the
    # unregistered pair would give 12 - 6 - |SHIFT + ZONE_OFFSET| < 0 mm; the lesion-centroid
    # start alone 6 mm).
    assert from_pacs["min_margin_mm"] == pytest.approx(4.0, abs=1.0)

    sources = json.loads((out / "dicom_sources.json").read_text())["pacs"]
    assert sources["study_instance_uid"] == POST_STUDY
    assert sources["pre"]["study_instance_uid"] == PRE_STUDY
    assert sources["pre"]["ct_series_instance_uid"] == PRE_STUDY + ".1"

    # SEG and SR came back into the post study (and nothing into the pre study).
    ours = {
        s.modality: s for s in pacs.find_series(POST_STUDY) if s.description.startswith("HepaNav")
    }
    assert {"SEG", "SR", "OT", "REG"} <= set(ours)
    assert not [s for s in pacs.find_series(PRE_STUDY) if s.description.startswith("HepaNav")]
    sr_file = pacs.get_series(POST_STUDY, ours["SR"].series_uid, tmp_path / "sr")[0]
    sr = pydicom.dcmread(sr_file)
    from test_dicom_objects import _numeric_items

    assert _numeric_items(sr)[("MM001", "99HEPANAV")][0] == pytest.approx(
        from_pacs["min_margin_mm"], abs=1e-9
    )
    assert sr.StudyInstanceUID == POST_STUDY


def test_pair_options_refused_before_network(tmp_path, cli, monkeypatch):
    # A PACS that does not exist: every refusal must come before a connection is tried.
    monkeypatch.setenv("HEPANAV_PACS_PROTOCOL", "dicomweb")
    monkeypatch.setenv("HEPANAV_PACS_URL", "http://127.0.0.1:9/dicom-web")
    base = ["margin", "--tumor", "T", "--ablation", "Z", "--out", tmp_path / "r"]
    one_line_error(
        *cli(*base, "--from-pacs-post", "B")[0::2], "--from-pacs-post", "needs --from-pacs"
    )
    one_line_error(
        *cli(*base, "--from-pacs", "A", "--from-pacs-post", "A")[0::2],
        "--from-pacs-post",
        "KEY/SERIES_UID",
    )
    one_line_error(
        *cli(*base, "--from-pacs", "A", "--from-pacs-post", "B", "--pre", tmp_path)[0::2],
        "--pre",
        "does not apply",
    )
    one_line_error(
        *cli(*base, "--from-pacs", "A", "--from-pacs-post", "B", "--liver-pre", "Liver")[0::2],
        "--liver-post",
    )
    one_line_error(
        *cli(*base, "--from-pacs", "A", "--liver-pre", "L", "--liver-post", "L")[0::2],
        "--from-pacs-post",
    )
    assert not (tmp_path / "r").exists()
    code, stdout, _ = cli("margin", "--help")
    assert code == 0 and "--from-pacs-post" in stdout


def test_pair_unknown_name_lists_the_pre_study(orthanc, pacs_env, pair, tmp_path, cli):
    from hepanav.dicom.pacs import open_pacs

    orthanc.clear()
    pacs_env(orthanc.env("dicomweb"))
    open_pacs().store([*pair["pre"], *pair["post"]])
    line = one_line_error(
        *cli(
            "margin",
            "--from-pacs",
            PRE_STUDY,
            "--from-pacs-post",
            POST_STUDY,
            "--tumor",
            "GTV",
            "--ablation",
            "Ablation zone",
            "--out",
            tmp_path / "r",
        )[0::2],
        "no ROI or segment named 'GTV' in the pre-procedure study",
        "Tumour",
    )
    assert "--tumor" in line


def test_pair_as_two_series_of_one_study(
    orthanc,
    pacs_env,
    pair,
    one_study_pair,
    tmp_path,
    cli,
):
    """Pre and post CT in one study, each with its own object: KEY/SERIES_UID on both
    options, and each side takes only the objects drawn on its CT."""
    from hepanav.dicom.pacs import open_pacs

    orthanc.clear()
    pacs_env(orthanc.env("dicomweb"))
    open_pacs().store([*one_study_pair["pre"], *one_study_pair["post"]])
    base = ["margin", "--tumor", "Tumour", "--ablation", "Ablation zone"]
    one_line_error(
        *cli(
            *base,
            "--from-pacs",
            POST_STUDY,
            "--from-pacs-post",
            f"{POST_STUDY}/{POST_STUDY}.1",
            "--out",
            tmp_path / "r",
        )[0::2],
        "2 CT series",
        "--from-pacs KEY/SERIES_UID",
    )
    # The post CT's zone SEG is not a candidate on the pre side: the name is not found there.
    one_line_error(
        *cli(
            "margin",
            "--tumor",
            "Ablation zone",
            "--ablation",
            "Ablation zone",
            "--from-pacs",
            f"{POST_STUDY}/{PRE_STUDY}.1",
            "--from-pacs-post",
            f"{POST_STUDY}/{POST_STUDY}.1",
            "--out",
            tmp_path / "r",
        )[0::2],
        "no ROI or segment named 'Ablation zone' in the pre-procedure study",
        "--tumor",
    )
    code, _, err = cli(
        *base,
        "--from-pacs",
        f"{POST_STUDY}/{PRE_STUDY}.1",
        "--from-pacs-post",
        f"{POST_STUDY}/{POST_STUDY}.1",
        "--out",
        tmp_path / "one",
    )
    assert code == 0, err
    n = pair["nifti"]
    code, _, err = cli(
        "margin",
        "--pre",
        n["pre"],
        "--post",
        n["post"],
        "--tumor",
        n["tumor"],
        "--ablation",
        n["ablation"],
        "--out",
        tmp_path / "nifti",
    )
    assert code == 0, err
    mam = (
        json.loads((tmp_path / d / "margin.json").read_text())["min_margin_mm"]
        for d in ("one", "nifti")
    )
    assert next(mam) == pytest.approx(next(mam), abs=0.05)
