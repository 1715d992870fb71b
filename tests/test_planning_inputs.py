"""``hepanav plan`` inputs (tester6): a tumour mask not in, or partly outside, the planning
CT is refused before anything is derived; rejections counted per risk-map group."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

from cli_helpers import one_line_error
from hepanav.imaging.geometry import mask_outside_ml
from hepanav.imaging.labels import anatomy_label_names
from hepanav.planning.planner import _behind_text, _reason_text
from hepanav.planning.report import _reasons
from hepanav.planning.risk import load_risk_map

RIBS = list(range(97, 104)) + list(range(109, 116))  # 14 ribs: left 6-12, right 6-12


@pytest.fixture(scope="module")
def torso_files(tmp_path_factory):
    from hepanav.phantoms.planning import make_planning_case

    case = make_planning_case("torso", 24.0, seed=2)
    folder = tmp_path_factory.mktemp("torso")
    for name, image in (("ct", case.ct), ("tumor", case.tumor), ("labels", case.labels)):
        sitk.WriteImage(image, str(folder / f"{name}.nii.gz"))
    return case, folder


def _moved(tumor: sitk.Image, shift_mm) -> sitk.Image:
    """The same voxels with the origin moved by ``shift_mm`` (x, y, z)."""
    moved = sitk.Image(tumor)
    moved.SetOrigin([o + s for o, s in zip(tumor.GetOrigin(), shift_mm, strict=True)])
    return moved


@pytest.fixture
def no_derivation(monkeypatch):
    """Fails the test if the CT derivation (hepanav.segmentation.anatomy) is run."""
    import hepanav.segmentation.anatomy as anatomy

    calls = []
    monkeypatch.setattr(anatomy, "derive_planning_labels", lambda *a, **k: calls.append(a) or 1 / 0)
    return calls


@pytest.mark.parametrize("with_labels", [False, True])
def test_tumour_not_overlapping_the_ct_is_refused_before_any_derivation(
    cli, torso_files, tmp_path, no_derivation, with_labels
):
    """Tester6 defect 13: moved 1000 mm away, the tumour is refused in one line (the same
    with and without --labels), no CT derivation runs and nothing is written."""
    case, folder = torso_files
    far = tmp_path / "t_far.nii.gz"
    sitk.WriteImage(_moved(case.tumor, (1000.0, 1000.0, 1000.0)), str(far))
    labels = ("--labels", folder / "labels.nii.gz") if with_labels else ()
    out = tmp_path / "plan"
    code, _, err = cli(
        "plan", "--ct", folder / "ct.nii.gz", "--tumor", far, *labels, "--out", out
    )  # fmt: skip
    one_line_error(code, err, "t_far.nii.gz", "does not overlap the image in physical space")
    assert no_derivation == [] and not out.exists()


@pytest.mark.parametrize("with_labels", [False, True])
def test_tumour_partly_outside_the_ct_is_refused_with_how_much(
    cli, torso_files, tmp_path, no_derivation, with_labels
):
    """Tester6 defect 14: a planning CT that ends in the middle of the tumour (the torso
    CT cut after the tumour's middle slice; tumour and labels on the full grid). Known by
    construction: the tumour's voxels in the slices cut off lie outside. Refused (a plan
    for a cut tumour is not a plan); the message names --tumor, the outside volume and
    how far beyond which side of the CT (torso: 3 mm slices from LPS z -148.5, superior
    with the slice index); nothing derived, nothing written."""
    case, folder = torso_files
    t = sitk.GetArrayFromImage(case.tumor) > 0
    ks = np.nonzero(t.any(axis=(1, 2)))[0]
    cut = int((ks.min() + ks.max()) // 2) + 1  # the CT keeps slices 0 .. cut - 1
    size = list(case.ct.GetSize())
    ct_cut = sitk.RegionOfInterest(case.ct, [size[0], size[1], cut], [0, 0, 0])
    sitk.WriteImage(ct_cut, str(tmp_path / "ct_cut.nii.gz"))
    voxel_ml = float(np.prod(case.tumor.GetSpacing())) / 1000.0
    outside = np.count_nonzero(t[cut:]) * voxel_ml
    total = np.count_nonzero(t) * voxel_ml
    assert 0 < outside < total
    labels = ("--labels", folder / "labels.nii.gz") if with_labels else ()
    out = tmp_path / "plan"
    code, _, err = cli(
        "plan",
        "--ct", tmp_path / "ct_cut.nii.gz",
        "--tumor", folder / "tumor.nii.gz",
        *labels,
        "--out", out,
    )  # fmt: skip
    one_line_error(
        code,
        err,
        "tumor.nii.gz",
        "--tumor extends beyond the planning CT",
        f"{outside:.2f} ml of its {total:.2f} ml ({100 * outside / total:.0f}%) lie outside",
        # How far beyond which side: the tumour's last slice ks.max() lies
        # ks.max() - (cut - 1) slices of 3 mm beyond the CT's last, superior, slice.
        f"reaching {3.0 * (ks.max() - cut + 1):.1f} mm superior of the CT's superior-most "
        f"slice (LPS z {-148.5 + 3.0 * (cut - 1):.1f} mm)",
    )
    assert no_derivation == [] and not out.exists()


def test_mask_outside_ml_counts_voxel_centres_outside_the_box():
    """A 2x finer grid over exactly the CT's box lies wholly inside (its outermost centres
    are a quarter CT voxel inside the edge); moved by one CT voxel in x, its last two
    columns of fine voxels lie outside."""
    ct = sitk.Image(10, 8, 6, sitk.sitkInt16)
    ct.SetSpacing((2.0, 2.0, 2.0))
    fine = sitk.Image(20, 16, 12, sitk.sitkUInt8) + 1
    fine.SetSpacing((1.0, 1.0, 1.0))
    fine.SetOrigin((-0.5, -0.5, -0.5))  # the CT's box starts at -1 mm
    total = 20 * 16 * 12 / 1000.0
    assert mask_outside_ml(fine, ct) == (0.0, total)
    fine.SetOrigin((1.5, -0.5, -0.5))
    assert mask_outside_ml(fine, ct) == pytest.approx((2 * 16 * 12 / 1000.0, total))


def _cand(reasons: dict[str, int]):
    return SimpleNamespace(reasons=Counter(reasons), lines_checked=sum(reasons.values()))


def test_rejections_are_counted_per_risk_map_group():
    """Tester6 defect 18: 14 separate TotalSegmentator rib labels block 6 trajectories each
    (84 of 200 in all), fewer than each of four other reasons (20-40). Counted per label the
    ribs never reach the top 4; counted per group, bone is named first, with its ribs."""
    names = {i: anatomy_label_names()[i] for i in RIBS}
    reasons = {f"blocked by {i}": 6 for i in RIBS}
    reasons |= {
        "entry across the midline (ipsilateral entry required)": 40,
        "skin farther than the needle length": 30,
        "entry not at the skin (no air outside it in the scan)": 26,
        "blocked by 64": 12,  # portal vein ...
        "blocked by 200": 8,  # ... and hepatic veins: one heat-sink group, 20
    }
    risk = load_risk_map()
    text = _reason_text(_cand(reasons), names, risk)
    parts = _reasons("No feasible plan. " + text + ".")
    assert parts == [
        "42% cross or pass within clearance of bone: ribs left 6-12, ribs right 6-12 "
        "(clearance 3 mm)",
        "20% entry across the midline (ipsilateral entry required)",
        "15% skin farther than the needle length",
        "13% entry not at the skin (no air outside it in the scan)",
    ]
    assert _behind_text(_cand(reasons), names, risk) == ""  # 42 % is not most
    most = {f"blocked by {i}": 10 for i in RIBS} | {"skin farther than the needle length": 5}
    assert _behind_text(_cand(most), names, risk) == (
        " The tumour lies behind bone: ribs left 6-12, ribs right 6-12 from most entries."
    )


def test_a_derived_name_with_a_semicolon_stays_one_reason():
    """The derived large vessels' name holds a ';' (the report splits reasons on it)."""
    from hepanav.segmentation.anatomy import NAMES

    reasons = {"blocked by 52": 3, "skin farther than the needle length": 1}
    parts = _reasons(_reason_text(_cand(reasons), dict(NAMES), load_risk_map()))
    assert len(parts) == 2 and parts[0].startswith("75% cross or pass within clearance of ")
    assert "aorta_and_vena_cava: large enhancing vessels: aorta, vena cava" in parts[0]


def test_cli_ct_with_spacing_in_cm_is_refused(cli, torso_files, tmp_path):
    """The torso CT (2.5 x 2.5 x 3 mm, 400 x 320 x 300 mm) with its header in cm reads as
    0.25 x 0.25 x 0.3 mm voxels over a 40 x 32 x 30 mm field: refused in one line, nothing
    written; the same CT in mm is accepted by the check."""
    from hepanav.planning.pipeline import check_ct_units

    case, folder = torso_files
    cm = sitk.Image(case.ct)
    cm.SetSpacing([s / 10 for s in case.ct.GetSpacing()])
    cm.SetOrigin([o / 10 for o in case.ct.GetOrigin()])
    sitk.WriteImage(cm, str(tmp_path / "ct_cm.nii.gz"))
    out = tmp_path / "plan"
    code, _, err = cli(
        "plan",
        "--ct", tmp_path / "ct_cm.nii.gz",
        "--tumor", folder / "tumor.nii.gz",
        "--labels", folder / "labels.nii.gz",
        "--out", out,
    )  # fmt: skip
    one_line_error(
        code,
        err,
        "ct_cm.nii.gz",
        "implausible for an abdominal CT",
        "voxels 0.25 x 0.25 x 0.3 mm over a 40 x 32 x 30 mm field of view",
        "in cm instead of mm",
    )
    assert not out.exists()
    check_ct_units(case.ct, "ct.nii.gz")  # mm: no error
