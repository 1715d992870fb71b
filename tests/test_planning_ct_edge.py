"""``hepanav plan`` with a tumour the CT may not hold (tester): an RTSTRUCT whose contours
reach beyond the CT's slices is refused, not cut; a tumour touching the CT's first or last
slice is planned with a red warning (its extent beyond is unknown)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from cli_helpers import one_line_error
from dicom_helpers import circle_contour, volume_slices, write_rtstruct, write_slices
from hepanav.imaging import load_image, load_mask
from hepanav.imaging.geometry import axis_sides, beyond_field_of_view
from hepanav.planning.pipeline import tumour_at_edge
from planning_helpers import fast_risk_map

SERIES = "1.2.826.0.1.3680043.8.498.7001"
RADIUS = 12.5  # sphere of the RTSTRUCT tumour, mm
PLANES = range(-3, 4)  # its contour planes: centre slice +- 3 slices (7 planes)


@pytest.fixture(scope="module")
def torso(tmp_path_factory):
    """The torso phantom (160 x 128 x 100 voxels, 2.5 x 2.5 x 3 mm, identity direction:
    slice k at LPS z = -148.5 + 3 k, superior with k), its tumour (slices 52..60) and
    labels as NIfTI, the CT also as a DICOM series, and the risk map of the tests."""
    from hepanav.phantoms.planning import make_planning_case

    case = make_planning_case("torso", 24.0, seed=2)
    folder = tmp_path_factory.mktemp("torso_edge")
    for name, image in (("ct", case.ct), ("tumor", case.tumor), ("labels", case.labels)):
        sitk.WriteImage(image, str(folder / f"{name}.nii.gz"))
    fast_risk_map(folder)
    hu = sitk.GetArrayFromImage(case.ct).astype(float)
    ox, oy, oz = case.ct.GetOrigin()
    dz = case.ct.GetSpacing()[2]
    positions = [(ox, oy, oz + k * dz) for k in range(hu.shape[0])]
    datasets = volume_slices(hu, positions, pixel_spacing=(2.5, 2.5), series_uid=SERIES)
    return case, folder, datasets


def _tumour_centre(case):
    idx = np.argwhere(sitk.GetArrayFromImage(case.tumor) > 0)[:, ::-1]
    return np.asarray(case.tumor.TransformContinuousIndexToPhysicalPoint(idx.mean(axis=0)))


def _rtstruct(case, datasets, path, kc):
    """Sphere of radius RADIUS round the tumour's centre (x, y), centred on slice ``kc``:
    one circle contour per plane kc + m (m in PLANES), radius sqrt(R^2 - (3 m)^2)."""
    cx, cy, _ = _tumour_centre(case)
    oz, dz = case.ct.GetOrigin()[2], case.ct.GetSpacing()[2]
    contours = [
        circle_contour((cx, cy, oz + (kc + m) * dz), float(np.sqrt(RADIUS**2 - (dz * m) ** 2)))
        for m in PLANES
    ]
    return write_rtstruct(path, datasets, {"Tumour": contours})


def test_rtstruct_beyond_the_ct_is_refused_saying_how_far_and_which_side(
    cli, torso, tmp_path, monkeypatch
):
    """The CT series holds slices 0..56 only (superior-most at LPS z -148.5 + 3 x 56 =
    19.5 mm); the RTSTRUCT (drawn on the full series, same series and frame of reference)
    has 7 contour planes on slices 54..60: the 4 on slices 57..60 lie beyond the CT, the
    last (3 x 4 =) 12.0 mm superior of its superior-most slice. The old code rasterised
    the 3 planes inside and planned a tumour cut in half; now: one line naming the
    RTSTRUCT, exit 2, nothing derived, nothing written."""
    import hepanav.segmentation.anatomy as anatomy

    case, folder, datasets = torso
    kc, last = 57, 56
    write_slices(tmp_path / "ct", datasets[: last + 1])
    rs = _rtstruct(case, datasets, tmp_path / "rs.dcm", kc)
    calls = []
    monkeypatch.setattr(anatomy, "derive_planning_labels", lambda *a, **k: calls.append(a) or 1 / 0)
    out = tmp_path / "plan"
    code, _, err = cli("plan", "--ct", tmp_path / "ct", "--tumor", rs, "--out", out)
    one_line_error(
        code,
        err,
        "rs.dcm: tumor ROI 'Tumour' extends beyond the planning CT",
        "12.0 mm superior of the planning CT's superior-most slice (LPS z 19.5 mm)",
        "4 of 7 contour planes lie outside its slices",
    )
    assert calls == [] and not out.exists()


def test_rtstruct_inside_the_ct_is_read_whole_and_cut_one_is_noted(torso, tmp_path):
    """Control: on the full series the same RTSTRUCT is read with ``require_inside``, all
    7 planes rasterised. Without ``require_inside`` (other callers) the part beyond the
    cut CT is still dropped, but the record's notes say so (it was silent)."""
    case, _, datasets = torso
    rs = _rtstruct(case, datasets, tmp_path / "rs.dcm", 57)
    write_slices(tmp_path / "full", datasets)
    write_slices(tmp_path / "cut", datasets[:57])
    full, full_record = load_image(tmp_path / "full", "planning CT")
    mask, _ = load_mask(rs, "tumor", grid=full, reference_record=full_record, require_inside=True)
    slices = np.nonzero(sitk.GetArrayFromImage(mask).any(axis=(1, 2)))[0]
    assert slices.tolist() == list(range(54, 61))
    cut = load_image(tmp_path / "cut")[0]
    mask, record = load_mask(rs, "tumor", grid=cut)
    slices = np.nonzero(sitk.GetArrayFromImage(mask).any(axis=(1, 2)))[0]
    assert slices.tolist() == [54, 55, 56]
    assert any(
        "12.0 mm superior of the image's superior-most slice (LPS z 19.5 mm); 4 of 7 "
        "contour planes lie outside its slices: that part dropped" in n
        for n in record.notes
    ), record.notes


def test_beyond_field_of_view_names_sides_by_direction():
    """A 10 x 8 x 6 image, 2 mm voxels; with the slice axis flipped (direction z -1) its
    first slice is the superior one. Points 3 slices beyond each end and 1.5 columns
    beyond the low x end (index -1.5: right, direction x +1), measured from the
    outermost voxel centres."""
    image = sitk.Image(10, 8, 6, sitk.sitkUInt8)
    image.SetSpacing((2.0, 2.0, 2.0))
    image.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, -1))
    assert axis_sides(image) == [
        ("right", "left"),
        ("anterior", "posterior"),
        ("superior", "inferior"),
    ]
    ijk = np.array([[4.0, 4.0, -3.0], [4.0, 4.0, 8.0], [-1.5, 3.0, 2.0], [9.4, 7.4, 5.4]])
    points = np.array([image.TransformContinuousIndexToPhysicalPoint(p.tolist()) for p in ijk])
    assert beyond_field_of_view(points, image) == pytest.approx(
        {"superior": 6.0, "inferior": 6.0, "right": 3.0}
    )
    assert beyond_field_of_view(points[3:], image) == {}  # within the voxels' box


def _mask_on(ct, slices):
    array = np.zeros(sitk.GetArrayViewFromImage(ct).shape, np.uint8)
    array[slices, 3:5, 3:5] = 1
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(ct)
    return mask


@pytest.mark.parametrize("flipped", [False, True])
def test_tumour_at_edge_names_the_slice_touched(flipped):
    """A 10 x 8 x 6 CT (3 mm slices, origin z 10): a tumour on slices 1..4 keeps off the
    edges; on slices 0..2 it touches slice 0, inferior (z 10.0) with the identity
    direction, superior with the slice axis flipped (z 10.0 too: slice 0 stays at the
    origin); on slices 3..5 the other end, z 10 +- 15."""
    ct = sitk.Image(10, 8, 6, sitk.sitkInt16)
    ct.SetSpacing((2.0, 2.0, 3.0))
    ct.SetOrigin((0.0, 0.0, 10.0))
    if flipped:
        ct.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, -1))
    first, other = ("superior", "inferior") if flipped else ("inferior", "superior")
    last_z = 10.0 - 15.0 if flipped else 10.0 + 15.0
    assert tumour_at_edge(_mask_on(ct, slice(1, 5)), ct) == ([], "")
    sides, text = tumour_at_edge(_mask_on(ct, slice(0, 3)), ct)
    assert sides == [first]
    assert text.startswith(f"the tumour touches the CT's {first}-most slice (LPS z 10.0 mm)")
    assert "the plan's coverage of the tumour cannot be verified" in text
    sides, text = tumour_at_edge(_mask_on(ct, slice(3, 6)), ct)
    assert sides == [other] and f"{other}-most slice (LPS z {last_z:.1f} mm)" in text
    sides, _ = tumour_at_edge(_mask_on(ct, slice(0, 6)), ct)
    assert sides == [first, other]


def test_plan_of_a_tumour_touching_the_ct_end_warns_in_json_and_report(cli, torso, tmp_path):
    """The CT cut after slice 60, the tumour's superior-most slice (LPS z -148.5 + 180 =
    31.5 mm): the tumour lies wholly inside, so the plan runs, but it touches the CT's
    superior-most slice. plan.json lists the side and the warning (also in the message),
    the report shows it in red. The full CT (tumour slices 52..60 of 0..99) touches
    nothing."""
    case, folder, _ = torso
    size = list(case.ct.GetSize())
    cut = sitk.RegionOfInterest(case.ct, [size[0], size[1], 61], [0, 0, 0])
    sitk.WriteImage(cut, str(tmp_path / "ct_cut.nii.gz"))
    assert tumour_at_edge(case.tumor, case.ct) == ([], "")
    out = tmp_path / "plan"
    code, stdout, err = cli(
        "plan",
        "--ct", tmp_path / "ct_cut.nii.gz",
        "--tumor", folder / "tumor.nii.gz",
        "--labels", folder / "labels.nii.gz",
        "--label-map", folder / "risk.yaml",
        "--out", out,
    )  # fmt: skip
    assert code == 0, err
    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    expected = "the tumour touches the CT's superior-most slice (LPS z 31.5 mm)"
    assert plan["tumour_at_ct_edge"] == ["superior"]
    assert len(plan["warnings"]) == 1 and plan["warnings"][0].startswith(expected)
    assert "coverage of the tumour cannot be verified" in plan["warnings"][0]
    assert f"WARNING: {expected}" in plan["message"] and expected in stdout
    html = (out / "report.html").read_text(encoding="utf-8")
    box = html.split('class="bad plan-warning"', 1)[1].split("</p>", 1)[0]
    box = box.replace("&#39;", "'")
    assert "background:#fde8e8" in box and f"WARNING: {expected}" in box


def test_dicom_export_of_a_plan_touching_the_ct_end_carries_the_warning(cli, torso, tmp_path):
    """The same cut CT (slices 0..60) as a DICOM series, planned with --dicom-out: the
    warning of plan.json reaches the PACS objects. The SR holds every warning of the plan
    as a TEXT item *Plan warning* (the edge warning first, the same text), each report
    figure's Secondary Capture says it in Image Comments; both stay valid (dciodvfy). The
    old export wrote neither: a radiologist reading the plan from the PACS never saw it."""
    import pydicom

    from dicomout_helpers import dciodvfy
    from hepanav.dicom.plan_objects import plan_warnings
    from hepanav.planning.schema import PlanResult
    from test_dicom_objects import ACCEPTED_WARNINGS
    from test_dicom_plan import sr_warnings

    case, folder, datasets = torso
    write_slices(tmp_path / "ct", datasets[:61])
    out, dicom = tmp_path / "plan", tmp_path / "dicom"
    # Only a feasible plan is written to DICOM, and the planner's MILP has a wall-clock
    # limit (3 s in the tests' risk map): on a loaded machine this plan came out
    # infeasible and the export refused it. A generous limit keeps it feasible.
    risk = fast_risk_map(tmp_path, optimiser_time_limit_s=60.0)
    code, _, err = cli(
        "plan",
        "--ct", tmp_path / "ct",
        "--tumor", folder / "tumor.nii.gz",
        "--labels", folder / "labels.nii.gz",
        "--label-map", risk,
        "--out", out,
        "--dicom-out", dicom,
    )  # fmt: skip
    assert code == 0, err
    plan = PlanResult.model_validate_json((out / "plan.json").read_text(encoding="utf-8"))
    assert plan.tumour_at_ct_edge == ["superior"]
    edge = next(w for w in plan.warnings if w.startswith("the tumour touches"))
    assert edge.startswith("the tumour touches the CT's superior-most slice (LPS z 31.5 mm)")
    sr = pydicom.dcmread(dicom / "plan_sr.dcm")
    assert sr_warnings(sr) == plan_warnings(plan) and edge in sr_warnings(sr)
    figures = sorted(dicom.glob("plan_figure*.dcm"))
    assert figures
    for path in figures:
        comments = str(pydicom.dcmread(path).ImageComments)
        assert f"WARNING: {edge}" in comments
    for path in [dicom / "plan_sr.dcm", figures[0]]:
        errors, warnings = dciodvfy(path)
        assert errors == []
        assert all(any(a in w for a in ACCEPTED_WARNINGS) for w in warnings), warnings
