"""Plan -> DICOM: SEG (target, planned zones) and SR (needle polylines, length, angle)."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from dicomout_helpers import dciodvfy, qualitative_texts, sphere_case
from hepanav.dicom.plan_objects import plan_warnings
from hepanav.imaging import write_image
from hepanav.planning.devices import load_device
from hepanav.planning.schema import Needle, PlanResult, Probe, TrajectoryRules
from test_dicom_objects import ACCEPTED_WARNINGS, _numeric_items, _walk


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plan")
    ct_dir, ct, tumour, _ = sphere_case(folder)
    write_image(tumour, folder / "result" / "tumor.nii.gz")
    device = load_device("neuwave-pr-65w-10min").model_copy(update={"tip_to_center_mm": 5.0})
    centre = np.asarray(
        ct.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in ct.GetSize()])
    )
    d = np.array([0.0, 0.6, 0.8])  # entry -> tip, 36.87 deg from the axial plane
    tip = centre + 5.0 * d
    entry = tip - 80.0 * d
    probe = Probe(
        needle=1,
        position=1,
        entry_lps_mm=tuple(entry),
        tip_lps_mm=tuple(tip),
        zone_center_lps_mm=tuple(centre),
        zone_axes_mm=(20.0, 14.0, 14.0),
        zone_direction=tuple(d),
        device=device.name,
    )
    needle = Needle(
        needle=1,
        entry_lps_mm=tuple(entry),
        tip_lps_mm=tuple(tip),
        direction=tuple(d),
        length_mm=80.0,
        angle_from_axial_deg=36.87,
        min_clearance_mm=7.5,
        clearance_mm={"vessels": 7.5},
    )
    plan = PlanResult(
        feasible=True,
        message="test plan",
        device=device,
        margin_mm=5.0,
        probes=[probe],
        needles=[needle],
        needle_count=1,
        coverage_tumor=1.0,
        coverage_target=0.97,
        min_clearance_mm=7.5,
        healthy_liver_ablated_ml=1.0,
        heat_sink_limited_fraction=0.0,
        placement_error_sd_mm=2.0,
        coverage_probability=0.9,
        coverage_target_mean_under_error=0.95,
        coverage_tumor_probability=0.95,
        candidate_lines=1,
        candidate_lines_valid=1,
        candidate_zones=1,
        target_points=1,
        optimiser="test",
        optimiser_time_s=0.0,
        optimiser_status="optimal",
        planning_time_s=0.0,
        rules=TrajectoryRules(),
        inputs={"ct": str(ct_dir), "tumor_crop": "tumor.nii.gz"},
    )
    (folder / "result" / "plan.json").write_text(plan.model_dump_json())
    return folder, ct_dir, ct, tumour, plan


def test_plan_export_via_cli_is_valid_and_matches_the_plan(plan_dir, cli):
    folder, ct_dir, ct, tumour, plan = plan_dir
    code, out, err = cli("dicom", "export", folder / "result", "--out", folder / "dicom")
    assert code == 0, err  # the CT folder comes from plan.json's inputs
    seg_path, sr_path = folder / "dicom" / "plan_seg.dcm", folder / "dicom" / "plan_sr.dcm"
    for path in (seg_path, sr_path):
        errors, warnings = dciodvfy(path)
        assert errors == []
        assert all(any(a in w for a in ACCEPTED_WARNINGS) for w in warnings), warnings
    seg = hd.seg.segread(seg_path)
    volume = seg.get_volume(combine_segments=False)
    counts = {
        s.SegmentLabel: int(volume.array[..., int(s.SegmentNumber) - 1].sum())
        for s in seg.SegmentSequence
    }
    assert counts["Planning target (tumour)"] == int(sitk.GetArrayViewFromImage(tumour).sum())
    zone = counts["Planned ablation zone needle 1 position 1"]
    expected = 4 / 3 * np.pi * 10.0 * 7.0 * 7.0 / np.prod(ct.GetSpacing())  # voxels
    assert zone == pytest.approx(expected, rel=0.08)
    sr = pydicom.dcmread(sr_path)
    values = _numeric_items(sr)
    assert values[("410668003", "SCT")] == (80.0, "mm")
    assert values[("ND002", "99HEPANAV")] == pytest.approx((36.87, "deg"))
    lines = [
        np.asarray(i.GraphicData, float).reshape(-1, 3)
        for i in _walk(sr.ContentSequence)
        if i.ValueType == "SCOORD3D"
    ]
    n = plan.needles[0]
    assert len(lines) == 1
    assert np.allclose(lines[0], [n.entry_lps_mm, n.tip_lps_mm], atol=1e-3)
    # A plan without warnings: no Qualitative Evaluations container, no warning text.
    assert plan_warnings(plan) == []
    assert sr_warnings(sr) is None


def sr_warnings(sr) -> list[str] | None:
    """The SR's TEXT items named Plan warning (99HEPANAV PL003) in its Qualitative
    Evaluations container, in order; None without a container."""
    return qualitative_texts(sr, "PL003")


def test_every_plan_warning_is_text_in_the_sr(plan_dir, cli, tmp_path):
    """A plan with each kind of warning (tumour at the CT's edge in ``warnings``, a no-go
    group absent within needle reach, one derived from the CT instead, one 'not needed
    here', a label-map note (not ASCII), a liver derived from the CT): one TEXT item per
    warning in the SR, in the report's order, the 'not needed here' group not among them;
    it stays valid (dciodvfy, highdicom reads it). The old export wrote none of them."""
    import shutil

    from hepanav.planning.pipeline import LIVER_DERIVED
    from hepanav.planning.schema import AbsentStructure

    folder, _, _, _, plan = plan_dir
    case = tmp_path / "case"
    shutil.copytree(folder, case, ignore=shutil.ignore_patterns("dicom*"))
    edge = (
        "the tumour touches the CT's superior-most slice (LPS z 31.5 mm): the CT may end "
        "inside the tumour; the plan's coverage of the tumour cannot be verified"
    )
    absent = dict(heat_sink=False, clearance_mm=5.0)
    doubts = plan.model_copy(
        update={
            "warnings": [edge],
            "absent_structures": [
                AbsentStructure(
                    name="bone",
                    labels=[25],
                    labels_named="sacrum",
                    **absent,
                    message="no-go group 'bone' is ABSENT from the label map: needles are "
                    "not kept 5 mm from it",
                ),
                AbsentStructure(
                    name="bowel",
                    labels=[18],
                    **absent,
                    message="no-go group 'bowel' is ABSENT from the label map: needles are "
                    "not kept 5 mm from it; DERIVED from the CT instead (air threshold): "
                    "3.0 ml within needle reach of the tumour added to the risk map",
                    derived_from_ct="DERIVED from the CT instead (air threshold)",
                ),
                AbsentStructure(
                    name="lung",
                    labels=[10],
                    **absent,
                    in_reach=False,
                    message="'lung' missing from the label map, but not needed here",
                ),
            ],
            # not ASCII (a user's structure name): UTF-8, not "?"
            "derivation_notes": ["'Rippenknorpel' (Gefäße ≥ 2 mm) not derived from the CT"],
            "derived_structures": {LIVER_DERIVED: "region growing; 1.5 ml added"},
        }
    )
    (case / "result" / "plan.json").write_text(doubts.model_dump_json())
    code, _, err = cli("dicom", "export", case / "result", "--out", case / "dicom")
    assert code == 0, err
    sr_path = case / "dicom" / "plan_sr.dcm"
    errors, warnings = dciodvfy(sr_path)
    assert errors == []
    assert all(any(a in w for a in ACCEPTED_WARNINGS) for w in warnings), warnings
    assert sr_warnings(pydicom.dcmread(sr_path)) == [
        edge,
        "no-go group 'bone' is ABSENT from the label map: needles are not kept 5 mm from "
        "it (sacrum)",
        doubts.absent_structures[1].message,
        "'Rippenknorpel' (Gefäße ≥ 2 mm) not derived from the CT",
        "the label map has no liver: the liver was DERIVED from the CT (region growing; "
        "1.5 ml added). Check it on the CT.",
    ]
    report = hd.sr.srread(sr_path)
    assert len(report.content.get_volumetric_roi_measurement_groups()) == 1


def test_dicom_sources_are_relative_and_a_moved_or_changed_series_is_refused(
    plan_dir, cli, tmp_path
):
    """dicom_sources.json records the CT folder relative to the result folder with a
    fingerprint of its series (never an absolute path); dicom export resolves it against
    the result folder and refuses, in one line, a series gone or changed."""
    import json
    import shutil

    from cli_helpers import one_line_error
    from hepanav.dicom.export import SOURCES_FILE, write_sources

    folder, ct_dir, *_ = plan_dir
    case = tmp_path / "case"
    shutil.copytree(folder, case)
    ct = case / ct_dir.relative_to(folder)
    result = case / "result"
    plan = json.loads((result / "plan.json").read_text())
    plan["inputs"]["ct"] = "elsewhere"  # only dicom_sources.json can name the series
    (result / "plan.json").write_text(json.dumps(plan))
    write_sources(result, ct, None)
    text = (result / SOURCES_FILE).read_text()
    assert str(tmp_path) not in text
    files = sum(1 for p in ct.rglob("*") if p.is_file())
    assert json.loads(text)["source"]["path"] == "../" + ct.name
    assert json.loads(text)["source"]["files"] == files
    code, _, err = cli("dicom", "export", result, "--out", tmp_path / "d1")
    assert code == 0, err
    assert (tmp_path / "d1" / "plan_seg.dcm").is_file()

    victim = sorted(p for p in ct.rglob("*") if p.is_file())[-1]
    kept = victim.read_bytes()
    victim.unlink()
    code, _, err = cli("dicom", "export", result, "--out", tmp_path / "d2")
    one_line_error(code, err, SOURCES_FILE, "has changed", "--source")
    assert not (tmp_path / "d2").exists()
    victim.write_bytes(kept)

    ct.rename(case / "moved")
    code, _, err = cli("dicom", "export", result, "--out", tmp_path / "d3")
    one_line_error(code, err, SOURCES_FILE, "no longer there")
    assert not (tmp_path / "d3").exists()
    code, _, err = cli("dicom", "export", result, "--source", case / "moved", "--out",
                       tmp_path / "d4")  # fmt: skip
    assert code == 0, err


def test_an_infeasible_plan_is_not_exported_to_dicom(plan_dir, cli, tmp_path):
    """A plan that does not cover the target has no 'planned ablation zones' to store: the
    export is refused in one line and nothing is written (the web sign-off refuses it too)."""
    import shutil

    from cli_helpers import one_line_error

    folder, _, _, _, plan = plan_dir
    case = tmp_path / "case"
    shutil.copytree(folder, case, ignore=shutil.ignore_patterns("dicom*"))
    infeasible = plan.model_copy(update={"feasible": False, "message": "not covered"})
    (case / "result" / "plan.json").write_text(infeasible.model_dump_json())
    code, _, err = cli("dicom", "export", case / "result", "--out", tmp_path / "out")
    one_line_error(code, err, "plan.json", "not feasible")
    assert not (tmp_path / "out").exists()
