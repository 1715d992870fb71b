"""``hepanav plan`` without a label map: structures derived from the CT, absent groups in red."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from browser_helpers import chromium, screenshot  # noqa: E402, F401  (pytest fixtures)
from planning_helpers import fast_risk_map  # noqa: E402

# Bone ids (TotalSegmentator v2): sacrum, vertebrae, arm/shoulder bones, ribs, sternum; not
# the costal cartilages (117: 100-150 HU, not bone by attenuation).
BONE = list(range(25, 51)) + list(range(69, 79)) + list(range(92, 117))
LUNG = [10, 11, 12, 13, 14]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b)))


@pytest.fixture(scope="module")
def procedural(tmp_path_factory):
    pytest.importorskip("hepanav.phantoms.abdomen")
    from hepanav.phantoms.planning import make_planning_case

    case = make_planning_case("procedural", 30.0, seed=0)
    folder = tmp_path_factory.mktemp("derived")
    sitk.WriteImage(case.ct, str(folder / "ct.nii.gz"))
    sitk.WriteImage(case.tumor, str(folder / "tumor.nii.gz"))
    return case, folder


def test_derived_structures_overlap_the_phantom_truth(procedural):
    """Thresholds: each is what a no-go mask needs, checked against the measured values
    (bone 0.881, body 0.987, liver 0.927 on 2026-11-30)."""
    from hepanav.phantoms.body import body_sd
    from hepanav.segmentation.anatomy import derive_planning_labels

    case, _ = procedural
    derived = derive_planning_labels(case.ct, case.tumor)
    got = sitk.GetArrayFromImage(derived.labels)
    truth = sitk.GetArrayFromImage(case.labels)
    # Bone is a no-go: finding it matters more than its edge. Measured: 99.2 % of the
    # true bone found, Dice 0.881 (ribs and vertebrae at 1.5 mm are 2-7 voxels thick, so
    # the one partial-volume voxel layer the closing adds is 15-40 % of them).
    bone = np.isin(got, [31, 97])
    assert bone[np.isin(truth, BONE)].mean() >= 0.97
    assert _dice(bone, np.isin(truth, BONE)) >= 0.85
    # Lung and gas: the lung bases must be found (>= 0.93 of them) and what is called
    # lung/gas lies in the lungs or the gas-filled bowel of the phantom (measured 0.957;
    # the rest is the one-voxel partial-volume rim around them, labelled tissue): >= 0.94.
    lung = got == 10
    assert lung[np.isin(truth, LUNG)].mean() >= 0.93
    assert np.isin(truth, LUNG + [6, 18, 19, 20])[lung].mean() >= 0.94
    ct = sitk.GetArrayFromImage(case.ct)
    # Body: the phantom's outline is analytic (body_sd < 0 in every slice); the derived
    # one is made on a 4 mm grid, so one 4 mm voxel ring of a 11 l body: Dice >= 0.97.
    x = case.ct.GetOrigin()[0] + case.ct.GetSpacing()[0] * np.arange(ct.shape[2])
    y = case.ct.GetOrigin()[1] + case.ct.GetSpacing()[1] * np.arange(ct.shape[1])
    body_truth = np.broadcast_to(body_sd(x[None, :], y[:, None])[None] < 0, ct.shape)
    assert _dice(sitk.GetArrayFromImage(derived.body) > 0, body_truth) >= 0.97
    # Liver (with its derived vessels and the tumour) against liver + its vessels + tumour.
    liver_truth = np.isin(truth, [5, 64, 200]) | (sitk.GetArrayFromImage(case.tumor) > 0)
    assert _dice(np.isin(got, [5, 200]), liver_truth) >= 0.90
    # Derived vessels (portal venous phantom) are vessels.
    vessels = np.isin(truth, [52, 63, 64, 200])
    assert vessels[got == 200].mean() >= 0.9 and vessels[got == 52].mean() >= 0.85
    assert set(derived.derived) >= {"body outline", "spine", "ribs", "lung and gas", "liver"}
    # Costal cartilage (140 HU, tester4: a needle ran 9.75 mm through it unnoticed): most
    # of it found (measured 86.5 % on `hepanav phantom`), and what is called cartilage
    # outside it is the partial-volume rim of true rib/cartilage (within 3 mm), never the
    # liver.
    from scipy import ndimage

    cart = got == 117
    assert cart[truth == 117].mean() >= 0.80
    bony = np.isin(truth, BONE + [117])
    far = ndimage.distance_transform_edt(~bony, sampling=case.ct.GetSpacing()[::-1]) > 3.0
    assert np.count_nonzero(cart & far) <= 0.02 * np.count_nonzero(cart)
    assert not np.any(cart & (truth == 5))
    assert "costal cartilages" in derived.derived and not derived.not_found


def test_derived_structures_on_the_real_dicom_scan(shared_data):
    """Portal-venous real scan (20 slices of 2 mm): liver, bone and vessels against its
    TotalSegmentator labels. Measured 2026-11-30: liver Dice 0.947; bone 73.9 % found
    (ribs 81 %, vertebrae 56 %: trabecular bone of 150-250 HU, near enhanced blood, is
    only partly reached), Dice 0.712; derived portal/hepatic veins 89 % in the liver or
    portal vein label."""
    from hepanav.imaging import read_image, resample_labels_like
    from hepanav.segmentation.anatomy import derive_planning_labels

    ct = read_image(shared_data / "ct-abdomen-dicom" / "series")
    truth = sitk.GetArrayFromImage(
        resample_labels_like(read_image(shared_data / "ct-abdomen-dicom" / "labels.nii.gz"), ct)
    )
    from scipy import ndimage

    depth = ndimage.distance_transform_edt(truth == 5, sampling=ct.GetSpacing()[::-1])
    k, j, i = np.unravel_index(int(np.argmax(depth)), depth.shape)
    zz, yy, xx = np.indices(truth.shape)
    sx, sy, sz = ct.GetSpacing()
    sphere = ((xx - i) * sx) ** 2 + ((yy - j) * sy) ** 2 + ((zz - k) * sz) ** 2 <= 8.0**2
    tumour = sitk.GetImageFromArray(sphere.astype(np.uint8))
    tumour.CopyInformation(ct)
    got = sitk.GetArrayFromImage(derive_planning_labels(ct, tumour).labels)
    assert _dice(np.isin(got, [5, 200]), truth == 5) >= 0.92
    bone = np.isin(truth, BONE)
    assert np.isin(got, [31, 97])[bone].mean() >= 0.70
    assert np.isin(truth, [5, 64])[got == 200].mean() >= 0.8


def test_plan_without_labels_names_derived_and_absent_groups_in_red(
    cli,
    screenshot,
    procedural,
    tmp_path,
):
    _, folder = procedural
    risk = yaml.safe_load(fast_risk_map(tmp_path).read_text(encoding="utf-8"))
    keep = {"bone", "aorta_and_vena_cava", "portal_and_hepatic_veins", "lung", "gallbladder"}
    risk["structures"] = [s for s in risk["structures"] if s["name"] in keep]
    (tmp_path / "risk.yaml").write_text(yaml.safe_dump(risk), encoding="utf-8")
    out = tmp_path / "plan"
    code, stdout, err = cli(
        "plan",
        "--ct", folder / "ct.nii.gz",
        "--tumor", folder / "tumor.nii.gz",
        "--label-map", tmp_path / "risk.yaml",
        "--out", out,
    )  # fmt: skip
    assert code == 0, err
    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    assert plan["inputs"]["labels"] == "derived from the CT"
    assert {"spine", "ribs", "lung and gas", "liver", "portal and hepatic veins"} <= set(
        plan["derived_structures"]
    )
    # Gallbladder is never derived: the one absent group, said in JSON, message, report.
    assert [a["name"] for a in plan["absent_structures"]] == ["gallbladder"]
    assert "WARNING" in plan["message"] and "gallbladder" in plan["message"]
    assert "WARNING" in stdout
    shot = screenshot(out / "report.html")
    box = shot.page.locator("div.absent-structures")
    assert box.count() == 1 and "gallbladder" in box.inner_text()
    colour = box.evaluate("e => getComputedStyle(e).color")
    assert colour == "rgb(198, 40, 40)"  # the report's red (.bad)
    assert "DERIVED from the CT" in shot.page.inner_text("body")


def test_plan_with_a_label_map_lacking_a_group_warns(tmp_path):
    """A given label map without the heat-sink vessels: the JSON says so (never silent)."""
    from hepanav.planning.risk import absent_groups, load_risk_map

    labels = np.zeros((4, 4, 4), np.uint16)
    labels[0, 0, 0], labels[1, 1, 1] = 5, 97
    absent = absent_groups(labels, load_risk_map())
    names = [a.name for a in absent]
    assert "portal_and_hepatic_veins" in names and "bone" not in names
    vessel = next(a for a in absent if a.name == "portal_and_hepatic_veins")
    assert vessel.heat_sink and "cooling" in vessel.message


def test_plan_reads_a_totalsegmentator_folder(cli, tmp_path):
    """--labels FOLDER (one NIfTI per structure, liver_vessels task included): the
    vessels inside TotalSegmentator's liver mask are the heat-sink group."""
    from hepanav.imaging.labels import anatomy_label_names
    from hepanav.phantoms.planning import make_planning_case

    case = make_planning_case("torso", 24.0, seed=2)
    labels = sitk.GetArrayFromImage(case.labels)
    folder = tmp_path / "totalseg"
    folder.mkdir()
    table = anatomy_label_names()
    for label in np.unique(labels):
        if label in (0, 200):
            continue
        mask = labels == label
        if label == 5:  # TotalSegmentator's liver holds its vessels
            mask = np.isin(labels, [5, 200])
        image = sitk.GetImageFromArray(mask.astype(np.uint8))
        image.CopyInformation(case.labels)
        sitk.WriteImage(image, str(folder / f"{table[int(label)]}.nii.gz"))
    vessels = sitk.GetImageFromArray((labels == 200).astype(np.uint8))
    vessels.CopyInformation(case.labels)
    sitk.WriteImage(vessels, str(folder / "liver_vessels.nii.gz"))
    sitk.WriteImage(case.ct, str(tmp_path / "ct.nii.gz"))
    sitk.WriteImage(case.tumor, str(tmp_path / "tumor.nii.gz"))
    code, _, err = cli(
        "plan",
        "--ct", tmp_path / "ct.nii.gz",
        "--tumor", tmp_path / "tumor.nii.gz",
        "--labels", folder,
        "--label-map", fast_risk_map(tmp_path),
        "--out", tmp_path / "plan",
    )  # fmt: skip
    assert code == 0, err
    plan = json.loads((tmp_path / "plan" / "plan.json").read_text(encoding="utf-8"))
    from hepanav.planning.risk import absent_groups, load_risk_map, partly_given_groups

    given = set(np.unique(labels).tolist()) - {0}  # a file per structure, vessels included
    expected = [a.name for a in absent_groups(labels.astype(np.uint16), load_risk_map())]
    wholly = len(expected)
    expected += [a.name for a in partly_given_groups(given, given, load_risk_map())]
    # The partly given bone group is split (since 2026-12-01): its limb and girdle bones
    # are 'not needed here' (no unlabelled bone on the CT within reach), the costal
    # cartilages (no file; the torso has none for the CT derivation to find) stay a gap.
    names = [a["name"] for a in plan["absent_structures"]]
    assert list(dict.fromkeys(names)) == expected and names.count("bone") == 2
    partial = [a["partial"] for a in plan["absent_structures"]]
    assert partial == [False] * wholly + [True] * (len(names) - wholly)
    bone = [a for a in plan["absent_structures"] if a["name"] == "bone"]
    assert [b["in_reach"] for b in bone] == [False, True] and bone[1]["labels"] == [117]
    assert "portal_and_hepatic_veins" not in expected
    # Nothing was added from the CT: no derived structure is listed.
    assert plan["derived_structures"] == {}
    # Tester6 defect 8: the folder is an input record and a row of the report's Inputs.
    n_files = len(list(folder.glob("*.nii.gz")))
    record = plan["input_records"][-1]
    assert [r["role"] for r in plan["input_records"]] == ["planning CT", "tumor", "organ labels"]
    assert record["file"] == "totalseg/"
    assert record["format"] == f"TotalSegmentator folder, {n_files} files"
    assert record["size"] == list(case.ct.GetSize()) and record["notes"] == []
    html = (tmp_path / "plan" / "report.html").read_text(encoding="utf-8")
    assert f"<td>totalseg/</td><td>TotalSegmentator folder, {n_files} files</td>" in html


def test_liver_seed_goes_with_derived_labels_only(cli, tmp_path):
    from cli_helpers import one_line_error

    code, _, err = cli(
        "plan",
        "--ct", tmp_path / "ct.nii.gz",
        "--tumor", tmp_path / "t.nii.gz",
        "--labels", tmp_path / "l.nii.gz",
        "--liver-seed", "1,2,3",
        "--out", tmp_path / "o",
    )  # fmt: skip
    one_line_error(code, err, "--liver-seed", "not both")
    assert not (tmp_path / "o").exists()


def test_totalsegmentator_folder_missing_members_of_a_group_is_said(tmp_path):
    """A folder with liver, spleen and stomach only (tester): 'bowel_and_stomach' has its
    stomach but NO file for esophagus, small bowel, duodenum or colon, so it is listed as
    partly given with exactly those ids (hand count from the risk map: 6, 15, 18, 19, 20);
    an EMPTY colon file (structure outside the field of view) counts as given."""
    from hepanav.imaging.totalseg import read_totalsegmentator
    from hepanav.planning.risk import load_risk_map, partly_given_groups

    grid = np.zeros((6, 6, 6), np.uint8)

    def write(name, index=None):
        arr = grid.copy()
        if index is not None:
            arr[index] = 1
        sitk.WriteImage(sitk.GetImageFromArray(arr), str(tmp_path / f"{name}.nii.gz"))

    write("liver", (1, 1, 1))
    write("spleen", (2, 2, 2))
    write("stomach", (3, 3, 3))
    risk = load_risk_map()
    read = read_totalsegmentator(tmp_path)
    present = set(np.unique(sitk.GetArrayViewFromImage(read.image)).tolist())
    partial = {a.name: a for a in partly_given_groups(read.given, present, risk)}
    assert partial["bowel_and_stomach"].labels == [15, 18, 19, 20]
    assert partial["bowel_and_stomach"].partial
    assert "esophagus, small bowel, duodenum, colon" in partial["bowel_and_stomach"].message
    assert partial["spleen_and_pancreas"].labels == [7]  # pancreas has no file
    assert "kidney" not in partial  # wholly absent: absent_groups' job, not repeated
    write("colon")  # empty: segmented, outside the field of view
    read = read_totalsegmentator(tmp_path)
    partial = {a.name: a for a in partly_given_groups(read.given, present, risk)}
    assert partial["bowel_and_stomach"].labels == [15, 18, 19]


def test_folder_without_vessel_files_gets_the_heat_sink_veins_from_the_ct(procedural, tmp_path):
    """Portal-venous phantom, TotalSegmentator folder without portal vein and
    liver_vessels files: the heat-sink veins are derived from the CT inside the given
    liver (measured on `hepanav phantom`: 43 % of the true veins, 97 % of the voxels
    called vein are vein) and the entry says so, instead of a bare red gap."""
    from types import SimpleNamespace

    from hepanav.imaging.labels import anatomy_label_names
    from hepanav.imaging.totalseg import read_totalsegmentator
    from hepanav.planning.commands import _deriver
    from hepanav.planning.devices import load_device
    from hepanav.planning.pipeline import add_structure_warnings, fill_from_ct
    from hepanav.planning.risk import load_risk_map

    case, _ = procedural
    truth = sitk.GetArrayFromImage(case.labels)
    table = anatomy_label_names()
    for label in set(np.unique(truth).tolist()) - {0, 64, 200}:
        mask = sitk.GetImageFromArray((truth == label).astype(np.uint8))
        mask.CopyInformation(case.labels)
        sitk.WriteImage(mask, str(tmp_path / f"{table[int(label)]}.nii.gz"))
    read = read_totalsegmentator(tmp_path, reference=case.ct)
    risk = load_risk_map()
    fill = fill_from_ct(
        case.ct,
        case.tumor,
        read.image,
        risk,
        load_device("neuwave-pr-65w-10min"),
        _deriver(None),
        read.given,
    )
    got = sitk.GetArrayFromImage(fill.labels) == 200
    veins = np.isin(truth, [64, 200])
    assert got[veins].mean() >= 0.3 and veins[got].mean() >= 0.9
    result = SimpleNamespace(
        message="", absent_structures=[], derived_structures={}, derivation_notes=[]
    )
    add_structure_warnings(result, read.image, risk, given=read.given, fill=fill)
    entry = next(a for a in result.absent_structures if a.name == "portal_and_hepatic_veins")
    assert entry.heat_sink and entry.in_reach and entry.derived_from_ct
