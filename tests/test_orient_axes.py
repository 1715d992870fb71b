"""Coronal and sagittal CT stacks give the same results as the axial CT they permute.

Known answer by construction: ``SimpleITK.PermuteAxes`` keeps every voxel at its
physical position (the direction is permuted with the array), so a coronal stack
(array axes x, z, y) or a sagittal one (z, y, x) of the same CT is the same patient in
the same world. Every step must give the same mask (mapped onto the axial grid) and
the same needle table. Before ``hepanav.imaging.orient``, steps that fill holes "per
axial slice" or find the midline in "the entry's slice" read the array's third index as
S-I and gave other results on such stacks.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).parent))

PERMUTATIONS = {"coronal": [0, 2, 1], "sagittal": [2, 1, 0]}


def _on_axial(image: sitk.Image, axial: sitk.Image) -> np.ndarray:
    """``image`` (a permuted stack) on the axial grid, by physical position (nearest)."""
    out = sitk.Resample(image, axial, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return sitk.GetArrayFromImage(out)


def _same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing())
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-6)
        and np.allclose(a.GetDirection(), b.GetDirection())
    )


@pytest.fixture(scope="module")
def procedural():
    pytest.importorskip("hepanav.phantoms.abdomen")
    from hepanav.phantoms.planning import make_planning_case

    return make_planning_case("procedural", 30.0, seed=0)


@pytest.fixture(scope="module")
def torso():
    from hepanav.phantoms.planning import make_planning_case

    return make_planning_case("torso", 30.0, seed=0)


def test_axial_order_is_an_exact_permutation_and_back():
    from hepanav.imaging.orient import axial_order, to_input_order

    rng = np.random.default_rng(0)
    ct = sitk.GetImageFromArray(rng.integers(-1000, 1000, (7, 6, 5)).astype(np.int16))
    ct.SetSpacing((0.7, 0.8, 2.5))
    ct.SetOrigin((-10.0, 20.0, 30.0))
    ct.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, -1))  # feet first: flips are kept
    assert axial_order(ct)[0] is ct
    for order in PERMUTATIONS.values():
        stack = sitk.PermuteAxes(ct, order)
        axial, code = axial_order(stack)
        assert _same_grid(axial, ct)
        assert np.array_equal(sitk.GetArrayFromImage(axial), sitk.GetArrayFromImage(ct))
        back = to_input_order(axial, code, stack)
        assert _same_grid(back, stack)
        assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(stack))


def test_oblique_ct_is_refused_naming_the_input():
    from hepanav.core.errors import InputError
    from hepanav.imaging.orient import axial_order

    ct = sitk.Image([4, 4, 4], sitk.sitkInt16)
    a = np.radians(20.0)
    ct.SetDirection((1, 0, 0, 0, np.cos(a), -np.sin(a), 0, np.sin(a), np.cos(a)))
    with pytest.raises(InputError, match=r"^ct\.nii\.gz: oblique image \(20\.0 deg"):
        axial_order(ct, "ct.nii.gz")
    tilt = np.radians(2.0)  # within 5 degrees: taken as axial
    ct.SetDirection((1, 0, 0, 0, np.cos(tilt), -np.sin(tilt), 0, np.sin(tilt), np.cos(tilt)))
    assert axial_order(ct)[0] is ct


@pytest.mark.parametrize("structure", ["tumor", "ablation", "liver"])
def test_segment_refuses_a_rotated_oblique_ct_naming_its_file(cli, tmp_path, structure):
    """Every structure of ``hepanav segment`` computes the body outline slice by slice,
    so a CT whose axes are rotated 20 degrees about z is refused for each (one line, exit
    2, nothing written), naming the file (before: ``CT: oblique image ...``)."""
    from cli_helpers import one_line_error
    from segmentation_helpers import in_body, lesion_case

    _, _, shape, grid, hu = lesion_case(radius=8.0, contrast=-45.0)
    ct = sitk.Cast(grid.image(in_body(hu, grid)), sitk.sitkInt16)
    a = np.radians(20.0)
    ct.SetDirection((np.cos(a), -np.sin(a), 0, np.sin(a), np.cos(a), 0, 0, 0, 1))
    path = tmp_path / "rotated.nii.gz"
    sitk.WriteImage(ct, str(path))
    centre = ct.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in ct.GetSize()])
    seed = ",".join(f"{v:.2f}" for v in centre)
    out = tmp_path / "o" / "m.nii.gz"
    code, _, err = cli("segment", structure, "--ct", path, "--seed", seed, "--out", out)
    one_line_error(code, err, f"error: {path}: oblique image (20.0 deg off the patient axes")
    assert not out.parent.exists()


@pytest.mark.parametrize("view", sorted(PERMUTATIONS))
def test_liver_mask_is_the_same_on_a_permuted_stack(procedural, view):
    """Liver: measured on main before the fix, the coronal/sagittal masks differed from
    the axial one (hole filling in coronal/sagittal planes)."""
    from hepanav.segmentation.anatomy import tumour_liver_seed
    from hepanav.segmentation.liver import segment_liver
    from hepanav.segmentation.seeds import Seed

    ct = procedural.ct
    seed = tumour_liver_seed(ct, procedural.tumor)
    ref = sitk.GetArrayFromImage(segment_liver(ct, [seed]).mask) > 0
    stack = sitk.PermuteAxes(ct, PERMUTATIONS[view])
    index = stack.TransformPhysicalPointToIndex(seed.lps)
    got = segment_liver(stack, [Seed(seed.lps, tuple(index), seed.label)]).mask
    assert _same_grid(got, stack)
    assert np.array_equal(_on_axial(got, ct) > 0, ref)


@pytest.mark.parametrize("view", sorted(PERMUTATIONS))
def test_derived_planning_labels_are_the_same_on_a_permuted_stack(procedural, view):
    from hepanav.segmentation.anatomy import derive_planning_labels

    ct, tumor = procedural.ct, procedural.tumor
    ref = derive_planning_labels(ct, tumor)
    order = PERMUTATIONS[view]
    got = derive_planning_labels(sitk.PermuteAxes(ct, order), sitk.PermuteAxes(tumor, order))
    assert _same_grid(got.labels, sitk.PermuteAxes(ct, order))
    assert np.array_equal(_on_axial(got.labels, ct), sitk.GetArrayFromImage(ref.labels))
    assert np.array_equal(_on_axial(got.body, ct), sitk.GetArrayFromImage(ref.body))
    assert got.derived == ref.derived


def _fake_plan(entry, tip):
    from hepanav.planning.devices import load_device

    needle = SimpleNamespace(needle=1, entry_lps_mm=list(entry), tip_lps_mm=list(tip))
    return SimpleNamespace(device=load_device("neuwave-pr-65w-10min"), needles=[needle], probes=[])


@pytest.mark.parametrize("view", sorted(PERMUTATIONS))
def test_needle_table_is_the_same_on_a_permuted_stack(torso, view):
    """Entry slice, offsets from the midline and the structures passed: the same."""
    from hepanav.phantoms.planning import TORSO_LABELS
    from hepanav.planning.needle_table import needle_guides

    ct, labels, tumour = torso.ct, torso.labels, torso.tumor
    idx = np.argwhere(sitk.GetArrayFromImage(tumour) > 0).mean(axis=0)[::-1]
    tip = np.asarray(ct.TransformContinuousIndexToPhysicalPoint(idx.tolist()))
    # An entry 60 mm anterior (-y) and 40 mm to the patient's right (-x) of the tip.
    entry = tip + np.array([-40.0, -60.0, 0.0])
    plan = _fake_plan(entry, tip)
    ref = needle_guides(plan, ct, labels, TORSO_LABELS, tumour=tumour)[0]
    order = PERMUTATIONS[view]
    got = needle_guides(
        plan,
        sitk.PermuteAxes(ct, order),
        sitk.PermuteAxes(labels, order),
        TORSO_LABELS,
        tumour=sitk.PermuteAxes(tumour, order),
    )[0]
    assert ref.midline_from != "none"
    assert got.model_dump() == ref.model_dump()


@pytest.mark.slow
def test_plan_is_the_same_on_a_coronal_stack(torso, tmp_path):
    """``hepanav plan`` files: same needles, feasibility and needle table (within a
    voxel, 2.5 mm); masks on the input's grid."""
    import json

    from hepanav.phantoms.planning import TORSO_LABELS
    from hepanav.planning.pipeline import run_plan
    from planning_helpers import fast_risk_map

    results = {}
    for view, order in (("axial", [0, 1, 2]), ("coronal", PERMUTATIONS["coronal"])):
        folder = tmp_path / view
        folder.mkdir()
        for name, image in (("ct", torso.ct), ("tumor", torso.tumor), ("labels", torso.labels)):
            sitk.WriteImage(sitk.PermuteAxes(image, order), str(folder / f"{name}.nii.gz"))
        (folder / "labels.json").write_text(
            json.dumps({str(k): v for k, v in TORSO_LABELS.items()})
        )
        risk = fast_risk_map(folder)
        out, _ = run_plan(
            folder / "ct.nii.gz",
            folder / "tumor.nii.gz",
            folder / "labels.nii.gz",
            risk,
            5.0,
            "neuwave-pr-65w-10min",
            folder / "plan",
            solver="greedy",  # deterministic (the MILP stops at a time limit)
        )
        results[view] = (out.result, folder)
    ref, got = results["axial"][0], results["coronal"][0]
    assert got.feasible == ref.feasible
    assert len(got.needles) == len(ref.needles)
    for a, b in zip(ref.needles, got.needles, strict=True):
        assert np.allclose(a.entry_lps_mm, b.entry_lps_mm, atol=2.5)
        assert np.allclose(a.tip_lps_mm, b.tip_lps_mm, atol=2.5)
    # The needle table (entry slice, offsets from the midline): main read the coronal
    # array's slices as axial here.
    for a, b in zip(ref.guides, got.guides, strict=True):
        assert b.entry_slice == a.entry_slice
        assert b.midline_from == a.midline_from
        assert abs(b.entry_lr_from_midline_mm - a.entry_lr_from_midline_mm) <= 2.5
        assert abs(b.entry_ap_from_anterior_skin_mm - a.entry_ap_from_anterior_skin_mm) <= 2.5
    # The tumour crop written lies on the coronal input's lattice (same direction and
    # spacing, origin at a whole voxel index) and holds the axial plan's crop.
    crop = sitk.ReadImage(str(results["coronal"][1] / "plan" / "tumor.nii.gz"))
    coronal_ct = sitk.ReadImage(str(results["coronal"][1] / "ct.nii.gz"))
    assert np.allclose(crop.GetDirection(), coronal_ct.GetDirection())
    assert np.allclose(crop.GetSpacing(), coronal_ct.GetSpacing())
    index = coronal_ct.TransformPhysicalPointToContinuousIndex(crop.GetOrigin())
    assert np.allclose(index, np.round(index), atol=1e-4)
    axial_crop = sitk.ReadImage(str(results["axial"][1] / "plan" / "tumor.nii.gz"))
    assert np.array_equal(_on_axial(crop, axial_crop), sitk.GetArrayFromImage(axial_crop))


def test_align_inputs_gives_the_ct_in_axial_array_order(torso):
    """The planner's body outline fills axial slices by array index: its CT is axial."""
    from hepanav.phantoms.planning import TORSO_LABELS
    from hepanav.planning.planner import align_inputs
    from hepanav.planning.risk import load_risk_map

    order = PERMUTATIONS["coronal"]
    inp = align_inputs(
        sitk.PermuteAxes(torso.ct, order),
        sitk.PermuteAxes(torso.tumor, order),
        sitk.PermuteAxes(torso.labels, order),
        TORSO_LABELS,
        load_risk_map(),
    )
    assert _same_grid(inp.ct, torso.ct)
    assert np.array_equal(sitk.GetArrayFromImage(inp.labels), sitk.GetArrayFromImage(torso.labels))
    assert np.array_equal(sitk.GetArrayFromImage(inp.tumor), sitk.GetArrayFromImage(torso.tumor))
