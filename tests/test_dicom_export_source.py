"""``hepanav dicom export RESULT --source SERIES``: only the series the result was measured
on (tester: the PRE CT of a margin pair was accepted, exit 0, and the margin SEG/SR went
into the pre study with the pre Frame of Reference; only a mask/volume overlap was checked).

Known by construction: the pre/post pair of tests/test_dicom_pacs_pair.py (pre study
...8101, CT series ...8101.1; post study ...8201, CT series ...8201.1, moved by (8, -6, 2) mm; both
CT volumes overlap the result's masks). The result is measured on the post CT.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from cli_helpers import one_line_error
from dicomout_helpers import sphere_case, write_study_ct
from hepanav.imaging import write_image
from hepanav.imaging.dicomout import read_source_series
from hepanav.margin.pipeline import MarginInputs, run_margin
from orthanc_helpers import orthanc, pacs_env  # noqa: F401 - fixtures
from test_dicom_pacs_pair import POST_STUDY, PRE_STUDY, _write_pair
from test_dicom_plan import plan_dir  # noqa: F401 - fixture

PRE_SERIES, POST_SERIES = PRE_STUDY + ".1", POST_STUDY + ".1"
UNUSED = "1.2.826.0.1.3680043.8.498.8301"  # study and series of a CT no result was made on


@pytest.fixture(scope="module")
def pair_result(tmp_path_factory):
    """A pre/post margin from the DICOM pair (CT folders, tumour RTSTRUCT on pre, zone SEG
    on post), as ``hepanav margin --pre --post`` computes it."""
    folder = tmp_path_factory.mktemp("exportsource")
    _write_pair(folder, PRE_STUDY)
    run_margin(
        MarginInputs(
            pre=folder / "pre",
            post=folder / "post",
            tumor=folder / "tumour_rt.dcm",
            ablation=folder / "zone_seg.dcm",
        ),
        folder / "result",
    )
    return folder


def _other_series(src, dst, series_uid: str, study_uid: str):
    """A copy of the CT series ``src`` under another Series (and Study) Instance UID and
    new SOP Instance UIDs: the same voxels and geometry, another series."""
    dst.mkdir()
    for n, path in enumerate(sorted(src.iterdir())):
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID, ds.StudyInstanceUID = series_uid, study_uid
        ds.SOPInstanceUID = f"{series_uid}.{n + 1}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(dst / path.name)
    return dst


def test_the_pre_ct_as_source_is_refused(pair_result, cli, tmp_path):
    """The tester's case: ``--source`` the PRE CT of the pair (it overlaps every mask of
    the result, so the overlap check passed) was exit 0 with the objects in the pre
    study; now one line naming --source, the series given and the post CT's."""
    folder = pair_result
    recorded = json.loads((folder / "result" / "margin.json").read_text())["inputs"]
    assert {r["role"]: r["series_instance_uid"] for r in recorded}["post CT"] == POST_SERIES
    out = tmp_path / "dicom"
    code, stdout, err = cli(
        "dicom", "export", folder / "result", "--source", folder / "pre", "--out", out
    )
    line = one_line_error(code, err, "--source: series " + PRE_SERIES, POST_SERIES)
    assert "is not the series the result was measured on" in line
    assert "the post CT in margin.json" in line and "nothing was written" in line
    assert stdout == "" and not out.exists()


def test_a_wrong_pre_series_is_refused_and_the_right_ones_export(pair_result, cli, tmp_path):
    """``--pre`` (the registration objects' source image) is checked the same way; the
    recorded pair exports, into the post study and its Frame of Reference."""
    folder = pair_result
    out = tmp_path / "dicom"
    base = ["dicom", "export", folder / "result", "--out", out, "--source", folder / "post"]
    line = one_line_error(
        *cli(*base, "--pre", folder / "post")[0::2], "--pre: series " + POST_SERIES, PRE_SERIES
    )
    assert "the pre CT in margin.json" in line
    assert not out.exists()
    code, stdout, err = cli(*base, "--pre", folder / "pre")
    assert code == 0, err
    assert "could not be verified" not in stdout
    post = read_source_series(folder / "post")
    seg = pydicom.dcmread(out / "margin_seg.dcm")
    assert seg.StudyInstanceUID == POST_STUDY
    assert seg.FrameOfReferenceUID == post.frame_of_reference_uid == POST_STUDY + ".9"
    assert pydicom.dcmread(out / "margin_sr.dcm").StudyInstanceUID == POST_STUDY
    assert (out / "margin_registration_rigid.dcm").is_file()
    assert "no registration (REG) objects" not in stdout


def test_a_pair_result_without_pre_says_the_registration_is_left_out(pair_result, cli, tmp_path):
    """Tester9: --source without --pre (and none recorded: the result was made from
    folders given on the command line) wrote no REG objects and said nothing."""
    folder = pair_result
    out = tmp_path / "dicom"
    code, stdout, err = cli("dicom", "export", folder / "result", "--source", folder / "post",
                            "--out", out)  # fmt: skip
    assert code == 0, err
    assert not list(out.glob("margin_registration*"))
    assert (
        "note: no registration (REG) objects written: the pre CT series of this pre/post "
        "result is not known; give --pre PRE_SERIES to add them"
    ) in stdout.splitlines()


def test_another_series_of_the_same_geometry_is_refused(pair_result, cli, tmp_path):
    """Same voxels and grid as the post CT (the overlap is perfect), another series."""
    folder = pair_result
    other = _other_series(folder / "post", tmp_path / "other", UNUSED + ".1", UNUSED)
    out = tmp_path / "dicom"
    one_line_error(
        *cli("dicom", "export", folder / "result", "--source", other, "--out", out)[0::2],
        f"--source: series {UNUSED}.1",
        POST_SERIES,
    )
    assert not out.exists()


def test_a_result_from_nifti_files_says_the_source_was_not_verified(cli, tmp_path):
    """No DICOM series recorded (masks as NIfTI): exported as before (overlap check), with
    a note that the series could not be verified against the result."""
    ct_dir, _, tumour, zone = sphere_case(tmp_path)
    write_image(tumour, tmp_path / "t.nii.gz")
    write_image(zone, tmp_path / "z.nii.gz")
    run_margin(MarginInputs(tumor=tmp_path / "t.nii.gz", ablation=tmp_path / "z.nii.gz"),
               tmp_path / "result")  # fmt: skip
    out = tmp_path / "dicom"
    code, stdout, err = cli("dicom", "export", tmp_path / "result", "--source", ct_dir,
                            "--out", out)  # fmt: skip
    assert code == 0, err
    series = read_source_series(ct_dir).series_uid
    assert (
        f"note: --source series {series} could not be verified against the result: it "
        "records no DICOM series for the image the result lies on"
    ) in stdout
    assert "only its overlap with the result's masks was checked" in stdout
    assert (out / "margin_seg.dcm").is_file()


def test_a_plan_is_exported_only_on_its_planning_ct(plan_dir, cli, tmp_path):  # noqa: F811
    """plan.json records the planning CT's series (input record 'planning CT'): another
    series of the same geometry is refused; the planning CT exports without a note."""
    from hepanav.imaging import load_image
    from hepanav.planning.schema import PlanResult

    folder, ct_dir, _, _, plan = plan_dir
    result = tmp_path / "plan"
    shutil.copytree(folder / "result", result)
    _, record = load_image(ct_dir, "planning CT")
    plan = plan.model_copy(update={"input_records": [record]})
    (result / "plan.json").write_text(plan.model_dump_json())
    assert PlanResult.model_validate_json((result / "plan.json").read_text()).input_records
    other = _other_series(ct_dir, tmp_path / "other", UNUSED + ".1", UNUSED)
    one_line_error(
        *cli("dicom", "export", result, "--source", other, "--out", tmp_path / "bad")[0::2],
        f"--source: series {UNUSED}.1",
        f"{record.series_instance_uid} (the planning CT in plan.json)",
    )
    assert not (tmp_path / "bad").exists()
    code, stdout, err = cli("dicom", "export", result, "--source", ct_dir, "--out", tmp_path / "d")
    assert code == 0, err
    assert "could not be verified" not in stdout


def test_a_from_pacs_result_is_exported_only_on_the_fetched_ct(orthanc, pacs_env, cli, tmp_path):
    """``margin --from-pacs`` (one space) records the fetched CT series in
    dicom_sources.json: a later export on another CT of the same geometry is refused."""
    from dicom_helpers import write_seg
    from hepanav.dicom.pacs import open_pacs

    ct_dir, ct, tumour, zone = sphere_case(tmp_path / "study")
    source = read_source_series(ct_dir)
    seg = write_seg(
        tmp_path / "masks.dcm",
        source.datasets,
        {"Tumour": sitk.GetArrayFromImage(tumour), "Ablation zone": sitk.GetArrayFromImage(zone)},
    )
    orthanc.clear()
    pacs_env(orthanc.env("dicomweb"))
    open_pacs().store([*sorted(ct_dir.iterdir()), seg])
    result = tmp_path / "result"
    code, _, err = cli("margin", "--from-pacs", source.study_uid, "--tumor", "Tumour",
                       "--ablation", "Ablation zone", "--out", result)  # fmt: skip
    assert code == 0, err
    pacs = json.loads((result / "dicom_sources.json").read_text())["pacs"]
    assert pacs["ct_series_instance_uid"] == source.series_uid
    volume = sitk.GetArrayFromImage(ct).astype(np.int16)
    other = tmp_path / "other"
    write_study_ct(other, volume, spacing_xyz=ct.GetSpacing(), origin_xyz=ct.GetOrigin(),
                   series_uid=UNUSED + ".1", study_uid=UNUSED)  # fmt: skip
    one_line_error(
        *cli("dicom", "export", result, "--source", other, "--out", tmp_path / "d")[0::2],
        f"--source: series {UNUSED}.1",
        f"{source.series_uid} (the CT fetched from the PACS (dicom_sources.json))",
    )
    assert not (tmp_path / "d").exists()
    code, stdout, err = cli("dicom", "export", result, "--source", ct_dir, "--out", tmp_path / "ok")
    assert code == 0, err
    assert "could not be verified" not in stdout


def test_dicom_out_with_a_pre_ct_file_writes_the_objects_without_registration(
    pair_result, cli, tmp_path
):
    """``margin --pre PRE.nii.gz --post DICOM_FOLDER --dicom-out D``: the registration
    objects need the pre CT as a DICOM series, the others do not. Was: the result line,
    then "error: pre.nii.gz: not a folder with a DICOM series", exit 2, and D half-written
    (SEG, SR and SCs without the REGs)."""
    folder = pair_result
    out = tmp_path / "dicom"
    code, stdout, err = cli("margin", "--pre", folder / "pre.nii.gz", "--post", folder / "post",
                            "--tumor", folder / "tumour.nii.gz", "--ablation",
                            folder / "zone_seg.dcm", "--out", tmp_path / "r", "--dicom-out",
                            out)  # fmt: skip
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert "margin_seg.dcm" in names and "margin_sr.dcm" in names
    assert not [n for n in names if "registration" in n]
    assert pydicom.dcmread(out / "margin_seg.dcm").StudyInstanceUID == POST_STUDY
    assert f"wrote {out / 'margin_seg.dcm'}" in stdout
