"""Input reading defects found by a tester (2026-12): a CT whose values cannot be HU
(normalised 0..1, an 8-bit display image, raw stored values) read by every command that
reads a CT, and NIfTI lengths in metres or microns (``xyzt_units``) read as mm.

Every value is known by construction: the lesion phantom inside a body outline (air
-1000 HU, fat -100 HU, liver 105 HU, lesion 60 HU; ``segmentation_helpers``) for the
CTs, voxel sizes 0.8 x 0.8 x 2 mm at LPS origin (-10, -20, -30) mm for the NIfTI units.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cli_helpers import one_line_error

sys.path.insert(0, str(Path(__file__).parent))
from reliability_helpers import PLAN_TEMPLATE  # noqa: E402
from segmentation_helpers import in_body, lesion_case  # noqa: E402

EXPECTED = "expected Hounsfield units: air near -1000 HU"


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """(folder, grid, hu, seed "x,y,z"): a true HU CT (int16) and its lesion mask."""
    _, truth, shape, grid, hu = lesion_case(radius=8.0, contrast=-45.0)
    hu = in_body(hu, grid)
    folder = tmp_path_factory.mktemp("hu")
    sitk.WriteImage(sitk.Cast(grid.image(hu), sitk.sitkInt16), str(folder / "ct.nii.gz"))
    sitk.WriteImage(truth, str(folder / "tumor.nii.gz"))
    sitk.WriteImage(sitk.BinaryDilate(truth, [3, 3, 3]), str(folder / "zone.nii.gz"))
    liver = sitk.Cast(sitk.GetImageFromArray((hu > 0).astype(np.uint8)), sitk.sitkUInt8)
    liver.CopyInformation(truth)
    sitk.WriteImage(liver, str(folder / "liver.nii.gz"))
    seed = ",".join(f"{v:.2f}" for v in shape.center)
    return folder, grid, hu, seed


def _normalised(hu: np.ndarray) -> np.ndarray:
    """HU mapped linearly onto exactly 0..1 (float32)."""
    return ((hu - hu.min()) / (hu.max() - hu.min())).astype(np.float32)


def _display(hu: np.ndarray, dtype) -> np.ndarray:
    """A W 200 / L 40 window (-60..140 HU) mapped onto 0..255: air and fat clip at 0, the
    brightest liver voxels (105 HU + 10 HU noise) at 255."""
    out = np.clip(np.rint((hu + 60.0) / 200.0 * 255.0), 0, 255).astype(dtype)
    assert out.min() == 0 and out.max() == 255  # both ends reached by construction
    return out


# (name, array from HU, what the message says): none of these can be Hounsfield units.
NOT_HU = [
    ("norm01", _normalised, "values 0 to 1 (32-bit float), every value within [-10, 10]"),
    ("zscore", lambda hu: ((hu - hu.mean()) / hu.std()).astype(np.float32), "within [-10, 10]"),
    (
        "display_uint8",
        lambda hu: _display(hu, np.uint8),
        "values 0 to 255 (8-bit unsigned integer), an 8-bit image with no value below 0",
    ),
    (
        "display_float",
        lambda hu: _display(hu, np.float32),
        "values 0 to 255 (32-bit float), running from exactly 0 to exactly 255",
    ),
    (
        "raw_uint16",
        lambda hu: np.rint(hu + 1024).astype(np.uint16),
        "values 24 to ",  # air -1000 HU stored as 24
    ),
]


def _write(grid, array, path: Path) -> Path:
    img = sitk.GetImageFromArray(array)
    img.CopyInformation(grid.image(np.zeros(grid.shape, np.float32)))
    sitk.WriteImage(img, str(path))
    return path


@pytest.mark.parametrize("name, convert, found", NOT_HU, ids=[c[0] for c in NOT_HU])
def test_values_that_cannot_be_hu_are_refused_with_the_range(case, tmp_path, name, convert, found):
    from hepanav.core.errors import InputError
    from hepanav.imaging import load_ct

    _, grid, hu, _ = case
    path = _write(grid, convert(hu), tmp_path / f"{name}.nii.gz")
    with pytest.raises(InputError) as info:
        load_ct(path)
    text = str(info.value)
    assert text.startswith(f"{path}: does not look like HU: ") and "\n" not in text
    assert found in text and EXPECTED in text


def _segment(p, o):
    return ["segment", "tumor", "--ct", p["ct"], "--seed", p["seed"], "--out", o / "t.nii.gz"]


def _margin_pre(p, o):
    return ["margin", "--pre", p["ct"], "--post", p["good"], "--tumor", p["tumor"],
            "--ablation", p["zone"], "--out", o]  # fmt: skip


def _margin_post(p, o):
    return ["margin", "--pre", p["good"], "--post", p["ct"], "--tumor", p["tumor"],
            "--ablation", p["zone"], "--out", o]  # fmt: skip


def _margin_ct(p, o):
    return ["margin", "--tumor", p["tumor"], "--ablation", p["zone"], "--ct", p["ct"],
            "--out", o]  # fmt: skip


def _plan(p, o):
    return ["plan", "--ct", p["ct"], "--tumor", p["tumor"], "--labels", p["liver"], "--out", o]


def _verify(p, o):
    return ["verify-placement", "--plan", p["plan"], "--control-ct", p["ct"], "--out", o]


def _phantom(p, o):
    return ["phantom", "--base-ct", p["ct"], "--base-liver", p["liver"], "--out", o]


COMMANDS = {
    "segment --ct": _segment,
    "margin --pre": _margin_pre,
    "margin --post": _margin_post,
    "margin --ct": _margin_ct,
    "plan --ct": _plan,
    "verify-placement --control-ct": _verify,
    "phantom --base-ct": _phantom,
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_a_ct_normalised_to_0_1(cli, case, tmp_path, command):
    """Before: only ``segment`` checked HU, and it let 0..1 through (then blamed the seed:
    "1 HU around the seed is water-density fluid"); margin, plan, verify-placement and
    phantom read any values. Now one line naming the file and the range, exit 2, nothing
    written."""
    folder, grid, hu, seed = case
    ct = _write(grid, _normalised(hu), tmp_path / "ct01.nii.gz")
    plan = tmp_path / "plan" / "plan.json"
    plan.parent.mkdir()
    plan.write_text(PLAN_TEMPLATE)
    paths = {
        "ct": ct,
        "good": folder / "ct.nii.gz",
        "tumor": folder / "tumor.nii.gz",
        "zone": folder / "zone.nii.gz",
        "liver": folder / "liver.nii.gz",
        "seed": seed,
        "plan": plan,
    }
    out = tmp_path / "o"
    code, _, err = cli(*COMMANDS[command](paths, out))
    one_line_error(
        code, err, f"error: {ct}: does not look like HU: values 0 to 1 (32-bit float)", EXPECTED
    )
    assert not out.exists()
    assert not list(tmp_path.glob(".o*"))


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_a_ct_cropped_into_the_liver_is_hu(case, tmp_path, dtype):
    """No false refusal: a crop inside the liver (no air, no fat; every value above 0 and
    below 255) and a crop holding fat and liver (-100..+155 HU) are HU and pass, whatever
    their pixel type (16-bit or float)."""
    from hepanav.imaging import load_ct

    _, grid, hu, _ = case
    inner = hu[20:36, 20:44, 20:44]  # inside the 105 HU liver block
    assert 0 < inner.min() and inner.max() < 255
    outer = hu[20:36, 28:36, 5:40]  # the fat ring (-100 HU) and the liver, no air
    assert outer.min() == -100 and outer.max() > 100
    for name, part in (("inner", inner), ("outer", outer)):
        path = tmp_path / f"{name}.nii.gz"
        img = sitk.GetImageFromArray(np.rint(part).astype(dtype))
        img.SetSpacing(grid.image(np.zeros(grid.shape, np.float32)).GetSpacing())
        sitk.WriteImage(img, str(path))
        ct, _ = load_ct(path)
        assert ct.GetSize() == part.shape[::-1]


def test_true_hu_ct_and_real_scans_pass_load_ct(case, shared_data):
    from hepanav.imaging import load_ct

    folder, _, _, _ = case
    load_ct(folder / "ct.nii.gz")
    load_ct(shared_data / "ct-abdomen-3mm" / "ct.nii.gz")
    load_ct(shared_data / "ct-abdomen-dicom" / "series")


def test_not_hu_reason_rules():
    from hepanav.imaging.ctcheck import not_hu_reason

    rng = np.random.default_rng(0)
    liver = rng.normal(105, 10, (8, 8, 8))
    assert not_hu_reason(liver.astype(np.float32)) is None  # ~70..140 HU: HU
    assert not_hu_reason(np.rint(liver).astype(np.int16)) is None
    assert "within [-10, 10]" in not_hu_reason(liver / 1000.0)
    assert "8-bit image" in not_hu_reason(np.rint(liver).astype(np.uint8))
    ends = np.rint(liver).astype(np.int16)
    ends[0, 0, :2] = (0, 255)  # clipped at exactly both ends of the 8-bit range
    assert "exactly 0 to exactly 255" in not_hu_reason(ends)
    ends[0, 0, 2] = -1  # one value below 0: could be HU
    assert not_hu_reason(ends) is None


# --- NIfTI xyzt_units ------------------------------------------------------------------

SPACING_MM = (0.8, 0.8, 2.0)
ORIGIN_LPS_MM = (-10.0, -20.0, -30.0)


def _nifti(path: Path, unit: str, mm_per_unit: float, data=None, spacing=SPACING_MM) -> Path:
    """A NIfTI (RAS affine) whose lengths are written in ``unit``: spacing and origin
    divided by ``mm_per_unit``; sform and qform both set (code 1)."""
    import nibabel as nib

    if data is None:
        data = np.random.default_rng(0).normal(60, 20, (12, 10, 8)).astype(np.float32)
        data[0] = -1000.0
    f = 1.0 / mm_per_unit
    # LPS origin (-10, -20, -30) is RAS (10, 20, -30); the first two axes point to L and P.
    affine = np.diag([-spacing[0] * f, -spacing[1] * f, spacing[2] * f, 1.0])
    affine[:3, 3] = np.array([10.0, 20.0, -30.0]) * f
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units(xyz=unit)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    nib.save(img, str(path))
    return path


@pytest.mark.parametrize(
    "unit, mm_per_unit, note",
    [
        ("meter", 1000.0, "metres (NIFTI_UNITS_METER): voxel sizes and position converted"),
        ("micron", 0.001, "microns (NIFTI_UNITS_MICRON): voxel sizes and position converted"),
        ("mm", 1.0, None),
        ("unknown", 1.0, None),
    ],
)
def test_nifti_lengths_in_metres_or_microns_are_read_in_mm(tmp_path, unit, mm_per_unit, note):
    """Before: the unit was ignored (a file in metres read as 0.0008 mm voxels and was
    refused as "voxel spacing must lie in [0.001, 100] mm", a file in microns as 800 mm
    voxels). Now the spacing and origin are converted to mm and the notes say so."""
    from hepanav.imaging import load_image, load_mask

    path = _nifti(tmp_path / f"ct_{unit}.nii.gz", unit, mm_per_unit)
    image, record = load_image(path)
    assert image.GetSpacing() == pytest.approx(SPACING_MM, rel=1e-6)
    assert image.GetOrigin() == pytest.approx(ORIGIN_LPS_MM, rel=1e-6)
    if note is None:
        assert record.notes == []
    else:
        assert any(note in n for n in record.notes), record.notes
    # A 4 x 4 x 4 voxel cube in the same unit: 64 x 0.8 x 0.8 x 2 mm3 = 0.08192 ml.
    cube = np.zeros((12, 10, 8), np.uint8)
    cube[2:6, 2:6, 2:6] = 1
    mask_path = _nifti(tmp_path / f"m_{unit}.nii.gz", unit, mm_per_unit, data=cube)
    from hepanav.imaging import volume_ml

    mask, _ = load_mask(mask_path)
    assert volume_ml(mask) == pytest.approx(64 * 0.8 * 0.8 * 2.0 / 1000.0, rel=1e-5)


def test_nifti_in_metres_whose_numbers_are_mm_names_metres(tmp_path):
    """A header saying metres over numbers in mm (0.8 "m" voxels): 800 mm after the
    conversion, refused, and the message names the unit the header declares."""
    from hepanav.core.errors import InputError
    from hepanav.imaging import load_image

    path = _nifti(tmp_path / "wrong_m.nii.gz", "meter", 1.0)
    with pytest.raises(InputError) as info:
        load_image(path)
    text = str(info.value)
    assert text.startswith(f"{path}: voxel spacing must lie in [0.001, 100] mm")
    assert "800, 800, 2000 mm" in text and "metres (NIFTI_UNITS_METER)" in text


def test_clinical_spacing_message_names_the_declared_unit_not_cm(tmp_path):
    """A NIfTI declaring mm with 0.08 x 0.08 x 0.2 mm voxels: the message names mm, the
    unit the header declares (before: "a header in cm gives voxels 10 times too small")."""
    from hepanav.core.errors import InputError
    from hepanav.imaging import load_image

    path = _nifti(tmp_path / "tiny.nii.gz", "mm", 1.0, spacing=(0.08, 0.08, 0.2))
    with pytest.raises(InputError) as info:
        load_image(path)
    text = str(info.value)
    assert "voxel size 0.08 x 0.08 x 0.2 mm lies outside 0.2-20 mm" in text
    assert "the NIfTI header gives its lengths in mm (NIFTI_UNITS_MM)" in text
    assert "cm" not in text


def test_nifti_spatial_code_that_is_no_length_unit_is_refused(tmp_path):
    import nibabel as nib

    from hepanav.core.errors import InputError
    from hepanav.imaging import load_image

    path = _nifti(tmp_path / "odd.nii.gz", "mm", 1.0)
    img = nib.load(str(path))
    img.header["xyzt_units"] = 5  # bits 0-2 = 5: not 0 (unknown), 1 m, 2 mm or 3 micron
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header), str(path))
    with pytest.raises(InputError, match=r"spatial unit code is 5 .*not a length unit"):
        load_image(path)


def test_margin_on_masks_in_metres_equals_the_same_masks_in_mm(cli, tmp_path):
    """``hepanav margin`` on concentric balls r 8 and 13 mm written in metres: the same
    MAM as the same masks written in mm (about 5 mm by construction), and the
    conversion in the inputs' notes of margin.json. Before: refused (0.001 mm voxels)."""
    grid = np.indices((40, 40, 40)).transpose(1, 2, 3, 0).astype(float) - 19.5
    r = np.linalg.norm(grid, axis=-1)
    one = (1.0, 1.0, 1.0)
    results, outputs = {}, {}
    for unit, mm_per_unit in (("meter", 1000.0), ("mm", 1.0)):
        ball = {"t": (r <= 8).astype(np.uint8), "z": (r <= 13).astype(np.uint8)}
        tumor = _nifti(tmp_path / f"t_{unit}.nii.gz", unit, mm_per_unit, ball["t"], one)
        zone = _nifti(tmp_path / f"z_{unit}.nii.gz", unit, mm_per_unit, ball["z"], one)
        out = tmp_path / f"o_{unit}"
        code, printed, err = cli("margin", "--tumor", tumor, "--ablation", zone, "--out", out)
        assert code == 0, err
        results[unit] = json.loads((out / "margin.json").read_text(encoding="utf-8"))
        outputs[unit] = printed
    notes = [n for i in results["meter"]["inputs"] for n in i["notes"]]
    assert sum("metres (NIFTI_UNITS_METER)" in n for n in notes) == 2, notes
    # ... and on the terminal, one line per input, naming it (tester 9).
    lines = [x for x in outputs["meter"].splitlines() if "NIFTI_UNITS_METER" in x]
    assert [x.split(":")[0] for x in lines] == ["note", "note"], outputs["meter"]
    assert any("(t_meter.nii.gz)" in x for x in lines), lines
    assert any("(z_meter.nii.gz)" in x for x in lines), lines
    assert "NIFTI_UNITS" not in outputs["mm"]
    mam = results["mm"]["min_margin_mm"]
    assert 4.0 < mam < 6.0
    # Within 0.02 mm, not exactly: the metre file's affine is float32 (0.001 m is
    # 1.00000005 mm), so its grid differs from the mm file's by ~1e-7 relative.
    assert results["meter"]["min_margin_mm"] == pytest.approx(mam, abs=0.02)
