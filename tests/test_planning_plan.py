"""Planning on the analytic torso and on the real DICOM scan; CLI and bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from cli_helpers import one_line_error
from hepanav.phantoms.planning import TORSO_LABELS, make_planning_case, make_torso, place_tumor
from hepanav.planning.devices import load_device
from hepanav.planning.planner import align_inputs, plan
from hepanav.planning.risk import load_risk_map
from planning_helpers import fast_risk_map, violations_by_rasterising


@pytest.fixture(scope="module")
def torso_case():
    return make_planning_case("torso", 30.0, seed=0)


@pytest.fixture(scope="module")
def torso_plan(torso_case, tmp_path_factory):
    risk = load_risk_map(fast_risk_map(tmp_path_factory.mktemp("risk")))
    device = load_device("neuwave-pr-65w-10min")
    inp = align_inputs(torso_case.ct, torso_case.tumor, torso_case.labels, TORSO_LABELS, risk)
    return plan(inp, risk, device, 5.0), risk, device


@pytest.mark.slow
def test_torso_plan_covers_tumour_and_margin(torso_plan):
    out, _, _ = torso_plan
    res = out.result
    assert res.feasible, res.message
    assert res.coverage_target >= 0.99
    assert res.coverage_tumor >= 0.99
    assert res.needle_count == len(res.needles) >= 2  # 4 cm target > one 3.6 x 2.7 cm zone
    assert res.candidate_zones > 0 and res.target_points > 0
    assert 0.0 <= res.coverage_probability <= 1.0


@pytest.mark.slow
def test_torso_plan_keeps_clearance_checked_by_rasterising(torso_plan, torso_case):
    out, risk, _ = torso_plan
    assert violations_by_rasterising(torso_case.labels, out.result.needles, risk) == []
    assert out.result.min_clearance_mm >= min(r.clearance_mm for r in risk.structures)


@pytest.mark.slow
def test_torso_plan_respects_length_angle_and_skin_entry(torso_plan, torso_case):
    out, risk, device = torso_plan
    ct = torso_case.ct
    arr = sitk.GetArrayViewFromImage(ct)
    for needle in out.result.needles:
        assert needle.length_mm <= device.needle_length_mm + 1e-6
        assert needle.angle_from_axial_deg <= risk.trajectory.max_angle_from_axial_deg + 1e-6
        d = np.asarray(needle.direction)
        # the entry is on the skin: air just outside, body just inside
        outside = ct.TransformPhysicalPointToIndex(
            (np.asarray(needle.entry_lps_mm) - 4 * d).tolist()
        )
        inside = ct.TransformPhysicalPointToIndex(
            (np.asarray(needle.entry_lps_mm) + 4 * d).tolist()
        )
        assert arr[outside[::-1]] < -500 < arr[inside[::-1]]
    for probe in out.result.probes:
        # zone centre = tip - offset along the needle, per the device table
        centre = np.asarray(probe.tip_lps_mm) - device.tip_to_center_mm * np.asarray(
            probe.zone_direction
        )
        assert np.allclose(centre, probe.zone_center_lps_mm, atol=1e-6)


@pytest.mark.slow
def test_closed_rib_cage_has_no_feasible_plan_and_says_why(tmp_path):
    ct, labels, names = make_torso(closed_rib_cage=True)
    ct, tumor, _ = place_tumor(ct, labels, 30.0, seed=0)
    risk = load_risk_map(fast_risk_map(tmp_path))
    inp = align_inputs(ct, tumor, labels, names, risk)
    res = plan(inp, risk, load_device("neuwave-pr-65w-10min"), 5.0).result
    assert not res.feasible
    assert res.needle_count == 0
    assert "No feasible plan" in res.message
    # The closed shell is labelled rib_right_9; rejections are named per risk-map group.
    assert "within clearance of bone: ribs right 9 (clearance 3 mm)" in res.message


@pytest.mark.slow
def test_real_dicom_scan_plan(shared_data, tmp_path):
    # The scan is a 40 mm slab (20 x 2 mm): trajectories must stay nearly in plane, and
    # reach the skin inside the slab.
    case = make_planning_case("dicom", 20.0, seed=0, data_dir=shared_data)
    risk = load_risk_map(fast_risk_map(tmp_path))
    inp = align_inputs(case.ct, case.tumor, case.labels, case.label_names, risk)
    device = load_device("neuwave-pr-65w-10min")
    res = plan(inp, risk, device, 5.0).result
    # Every entry is at the skin: air outside it in the scan (a line leaving the slab
    # through its top or bottom face would "enter" inside the liver).
    from hepanav.planning.needle_table import entry_on_skin

    assert res.needles
    for needle in res.needles:
        entry, tip = np.asarray(needle.entry_lps_mm), np.asarray(needle.tip_lps_mm)
        assert entry_on_skin(case.ct, entry, tip - entry), needle.needle
    if res.feasible:
        assert res.coverage_target >= 0.99
    else:  # on this slab few in-plane lines reach the skin: said, with the reason
        assert "No feasible plan" in res.message
        assert "entry not at the skin (no air outside it in the scan)" in res.message
    assert violations_by_rasterising(case.labels, res.needles, risk) == []
    for needle in res.needles:
        assert needle.length_mm <= device.needle_length_mm + 1e-6
        assert needle.angle_from_axial_deg <= risk.trajectory.max_angle_from_axial_deg + 1e-6
        assert all(np.isfinite(v) for v in needle.clearance_mm.values())


# ----------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def torso_files(torso_case, tmp_path_factory):
    folder = tmp_path_factory.mktemp("torso")
    for name, image in (
        ("ct", torso_case.ct),
        ("tumor", torso_case.tumor),
        ("labels", torso_case.labels),
    ):
        sitk.WriteImage(image, str(folder / f"{name}.nii.gz"))
    (folder / "labels.json").write_text(json.dumps({str(k): v for k, v in TORSO_LABELS.items()}))
    fast_risk_map(folder)
    return folder


@pytest.mark.slow
def test_cli_plan_writes_plan_markups_and_report(cli, torso_files, tmp_path):
    f = torso_files
    code, out, err = cli(
        "plan",
        "--ct",
        f / "ct.nii.gz",
        "--tumor",
        f / "tumor.nii.gz",
        "--labels",
        f / "labels.nii.gz",
        "--label-map",
        f / "risk.yaml",
        "--margin",
        "5",
        "--device",
        "neuwave-pr-65w-10min",
        "--out",
        tmp_path,
    )
    assert code == 0, err
    plan_json = json.loads((tmp_path / "plan.json").read_text(encoding="utf-8"))
    assert plan_json["disclaimer"].startswith("HepaNav is research software")
    for key in (
        "coverage_tumor",
        "coverage_target",
        "min_clearance_mm",
        "needle_count",
        "coverage_probability",
    ):
        assert key in plan_json
    probe = plan_json["probes"][0]
    for key in (
        "entry_lps_mm",
        "tip_lps_mm",
        "zone_center_lps_mm",
        "zone_axes_mm",
        "zone_direction",
        "device",
    ):
        assert key in probe
    markups = json.loads((tmp_path / "trajectories.mrk.json").read_text(encoding="utf-8"))
    assert len([m for m in markups["markups"] if m["type"] == "Line"]) == plan_json["needle_count"]
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Not a medical device" in html and "data:image/png;base64" in html


def _plan_cli(cli, f, out, *extra, tumor=None, labels=None):
    """``hepanav plan`` on the torso files, with the tumour/labels/options replaced."""
    return cli(
        "plan",
        "--ct",
        f / "ct.nii.gz",
        "--tumor",
        tumor or f / "tumor.nii.gz",
        "--labels",
        labels or f / "labels.nii.gz",
        "--out",
        out / "plan",
        *extra,
    )


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--margin", "-1", "margin must be a finite number in [0, 20] mm"),
        ("--margin", "nan", "margin must be a finite number in [0, 20] mm"),
        ("--device", "laser-9000", "unknown device 'laser-9000'"),
    ],
)
def test_cli_bad_option(cli, torso_files, tmp_path, option, value, expected):
    code, _, err = _plan_cli(cli, torso_files, tmp_path, option, value)
    assert expected in one_line_error(code, err)


def test_cli_empty_label_map(cli, torso_files, tmp_path):
    f = torso_files
    empty = sitk.Image(sitk.ReadImage(str(f / "labels.nii.gz")))
    empty = empty * 0
    sitk.WriteImage(empty, str(tmp_path / "empty.nii.gz"))
    code, _, err = _plan_cli(cli, f, tmp_path, labels=tmp_path / "empty.nii.gz")
    assert "label map is empty" in one_line_error(code, err)


@pytest.mark.parametrize(
    ("pixel", "shift", "sign", "expected"),
    [
        (sitk.sitkFloat32, 0.5, 1, "label map has non-integer values"),
        (sitk.sitkInt16, 0.0, -1, "label ids must lie in 0..65535, found -"),
    ],
)
def test_cli_labels_that_are_not_label_ids(
    cli, torso_files, tmp_path, pixel, shift, sign, expected
):
    labels = sitk.Cast(sitk.ReadImage(str(torso_files / "labels.nii.gz")), pixel) * sign + shift
    sitk.WriteImage(labels, str(tmp_path / "bad_labels.nii.gz"))
    code, _, err = _plan_cli(cli, torso_files, tmp_path, labels=tmp_path / "bad_labels.nii.gz")
    assert expected in one_line_error(code, err)


def test_float_label_ids_are_accepted_as_uint16(torso_case):
    risk = load_risk_map()
    labels = sitk.Cast(torso_case.labels, sitk.sitkFloat32)
    inp = align_inputs(torso_case.ct, torso_case.tumor, labels, TORSO_LABELS, risk)
    assert inp.labels.GetPixelID() == sitk.sitkUInt16
    np.testing.assert_array_equal(
        sitk.GetArrayViewFromImage(inp.labels), sitk.GetArrayViewFromImage(torso_case.labels)
    )


def test_cli_tumour_outside_the_liver(cli, torso_files, tmp_path, torso_case):
    f = torso_files
    lab = sitk.GetArrayFromImage(torso_case.labels)
    tum = np.zeros_like(lab, dtype=np.uint8)
    k = np.argwhere(lab == 6)[len(np.argwhere(lab == 6)) // 2]  # a voxel in the stomach
    tum[k[0] - 2 : k[0] + 3, k[1] - 2 : k[1] + 3, k[2] - 2 : k[2] + 3] = 1
    image = sitk.GetImageFromArray(tum)
    image.CopyInformation(torso_case.ct)
    sitk.WriteImage(image, str(tmp_path / "stomach_tumor.nii.gz"))
    code, _, err = _plan_cli(cli, f, tmp_path, tumor=tmp_path / "stomach_tumor.nii.gz")
    assert "tumour lies outside the liver" in one_line_error(code, err)


def test_cli_labels_not_overlapping_the_ct(cli, torso_files, tmp_path):
    f = torso_files
    labels = sitk.ReadImage(str(f / "labels.nii.gz"))
    labels.SetOrigin((5000.0, 5000.0, 5000.0))
    sitk.WriteImage(labels, str(tmp_path / "far.nii.gz"))
    code, _, err = _plan_cli(cli, f, tmp_path, labels=tmp_path / "far.nii.gz")
    assert "does not overlap" in one_line_error(code, err)


def test_labels_on_another_grid_are_resampled_in_physical_space(torso_case):
    # Flip the row axis (as the real scan's label file does) and halve the resolution in z:
    # the same physical label map must be found on the CT grid.
    labels = torso_case.labels
    arr = sitk.GetArrayFromImage(labels)[:, ::-1, :]
    flipped = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    flipped.SetSpacing(labels.GetSpacing())
    flipped.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, 1))
    last_row = labels.TransformIndexToPhysicalPoint((0, labels.GetSize()[1] - 1, 0))
    flipped.SetOrigin(last_row)
    risk = load_risk_map()
    inp = align_inputs(torso_case.ct, torso_case.tumor, flipped, TORSO_LABELS, risk)
    assert np.array_equal(
        sitk.GetArrayViewFromImage(inp.labels), sitk.GetArrayViewFromImage(labels)
    )


@pytest.mark.slow
def test_procedural_phantom_plan(tmp_path):
    pytest.importorskip("hepanav.phantoms.abdomen")
    case = make_planning_case("procedural", 30.0, seed=0)
    risk = load_risk_map(fast_risk_map(tmp_path))
    inp = align_inputs(case.ct, case.tumor, case.labels, case.label_names, risk)
    res = plan(inp, risk, load_device("neuwave-pr-65w-10min"), 5.0).result
    assert res.feasible, res.message
    assert res.coverage_target >= 0.99
    assert violations_by_rasterising(case.labels, res.needles, risk) == []
    assert all(n.length_mm <= 200.0 for n in res.needles)


@pytest.mark.slow
def test_cli_entry_region_restricts_the_skin_entries(cli, torso_files, torso_case, tmp_path):
    # Allow only the anterior skin (y < -40 mm, LPS: anterior is -y).
    f = torso_files
    ct = torso_case.ct
    y = np.asarray(ct.GetOrigin())[1] + np.arange(ct.GetSize()[1]) * ct.GetSpacing()[1]
    region = np.zeros(sitk.GetArrayViewFromImage(ct).shape, dtype=np.uint8)
    region[:, y < -40.0, :] = 1
    image = sitk.GetImageFromArray(region)
    image.CopyInformation(ct)
    sitk.WriteImage(image, str(tmp_path / "entry.nii.gz"))
    risk = fast_risk_map(tmp_path, entry_region_mask="entry.nii.gz")
    code, _, err = cli(
        "plan",
        "--ct",
        f / "ct.nii.gz",
        "--tumor",
        f / "tumor.nii.gz",
        "--labels",
        f / "labels.nii.gz",
        "--label-map",
        risk,
        "--out",
        tmp_path / "plan",
    )
    assert code == 0, err
    res = json.loads((tmp_path / "plan" / "plan.json").read_text(encoding="utf-8"))
    assert res["needle_count"] > 0
    # entries inside the region, up to one working-grid block (2.5 mm) + one voxel of growth
    assert all(n["entry_lps_mm"][1] < -40.0 + 6.0 for n in res["needles"])


@pytest.mark.slow
def test_parallel_needles_option(torso_case, tmp_path):
    risk = load_risk_map(fast_risk_map(tmp_path, parallel=True))
    inp = align_inputs(torso_case.ct, torso_case.tumor, torso_case.labels, TORSO_LABELS, risk)
    res = plan(inp, risk, load_device("neuwave-pr-65w-10min"), 5.0).result
    assert res.feasible, res.message
    dirs = np.array([n.direction for n in res.needles])
    assert np.allclose(dirs, dirs[0], atol=1e-9)
    assert violations_by_rasterising(torso_case.labels, res.needles, risk) == []


@pytest.mark.slow
def test_plan_shaped_by_the_time_limit_says_it_is_not_reproducible(torso_case, tmp_path):
    """A 0.5 s optimiser budget always leaves the LP-reduced stage out: the plan then
    depends on the wall clock, and plan.json says so (flag, NOTE in the message)."""
    risk = load_risk_map(fast_risk_map(tmp_path, optimiser_time_limit_s=0.5))
    inp = align_inputs(torso_case.ct, torso_case.tumor, torso_case.labels, TORSO_LABELS, risk)
    res = plan(inp, risk, load_device("neuwave-pr-65w-10min"), 5.0).result
    assert res.needles, res.message
    assert res.optimiser_time_limited is True
    assert "NOTE: the optimiser stopped at its time limit (optimiser_time_limit_s = 0.5 s)" in (
        res.message
    )
    assert "not reproducible" in res.message
    assert "on the final needle pool" not in res.optimiser_status
