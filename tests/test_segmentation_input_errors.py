"""``hepanav segment`` refusals found by a tester: an include point that is not joined,
an exclude point on the seed, a CT with NaN voxels, in raw stored values, or a mask.

Every value is known by construction (a hypodense 8 mm lesion, -45 HU, in a 105 HU
liver block inside a body outline; lesion_case).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cli_helpers import one_line_error
from hepanav.phantoms.lesions import StarShape, paint_shape

sys.path.insert(0, str(Path(__file__).parent))
from segmentation_helpers import LIVER_HU, in_body, lesion_case, liver_block  # noqa: E402


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """(folder, shape, grid, hu, truth): the lesion phantom inside a body, HU as float."""
    _, truth, shape, grid, hu = lesion_case(radius=8.0, contrast=-45.0)
    hu = in_body(hu, grid)
    folder = tmp_path_factory.mktemp("inputerr")
    sitk.WriteImage(sitk.Cast(grid.image(hu), sitk.sitkInt16), str(folder / "ct.nii.gz"))
    return folder, shape, grid, hu, truth


def _xyz(p) -> str:
    return ",".join(f"{v:g}" for v in np.round(p, 2))


def _segment(cli, structure, ct, out, *args):
    return cli("segment", structure, "--ct", ct, *args, "--out", out)


def test_include_inside_the_lesion_is_in_the_mask_with_a_note(cli, case, tmp_path):
    folder, shape, _, _, _ = case
    inc = shape.center + np.array([0.0, 0.0, 4.0])  # half the radius: in the lesion
    out = tmp_path / "t.nii.gz"
    code, _, err = _segment(
        cli,
        "tumor",
        folder / "ct.nii.gz",
        out,
        "--seed",
        _xyz(shape.center),
        "--include",
        _xyz(inc),
    )
    assert code == 0, err
    assert f"--include {_xyz(inc)}" in err and "lies in the mask" in err
    mask = sitk.ReadImage(str(out))
    index = mask.TransformPhysicalPointToIndex(tuple(float(v) for v in inc))
    assert mask[index] == 1


def test_include_in_parenchyma_is_refused_as_different_tissue(cli, case, tmp_path):
    folder, shape, _, _, _ = case
    inc = shape.center + np.array([0.0, 0.0, 14.0])  # 6 mm outside the 8 mm lesion: liver
    code, _, err = _segment(
        cli,
        "tumor",
        folder / "ct.nii.gz",
        tmp_path / "t.nii.gz",
        "--seed",
        _xyz(shape.center),
        "--include",
        _xyz(inc),
    )
    one_line_error(code, err, f"error: --include {_xyz(inc)}: ", "different tissue")
    assert list(tmp_path.iterdir()) == []


def test_include_beyond_the_leak_limit_is_refused(cli, case, tmp_path):
    folder, shape, _, _, _ = case
    inc = shape.center + np.array([0.0, 0.0, 25.0])  # 25 mm from the seed, limit 20
    code, _, err = _segment(
        cli,
        "tumor",
        folder / "ct.nii.gz",
        tmp_path / "t.nii.gz",
        "--seed",
        _xyz(shape.center),
        "--include",
        _xyz(inc),
        "--max-radius-mm",
        "20",
    )
    one_line_error(code, err, f"--include {_xyz(inc)}: ", "25.0 mm", "--max-radius-mm 20")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("offset_mm", [0.0, 0.9])
def test_exclude_on_the_seed_is_named_as_such(cli, case, tmp_path, offset_mm):
    folder, shape, _, _, _ = case
    exc = shape.center + np.array([offset_mm, 0.0, 0.0])  # within one 1 mm voxel
    code, _, err = _segment(
        cli,
        "tumor",
        folder / "ct.nii.gz",
        tmp_path / "t.nii.gz",
        "--seed",
        _xyz(shape.center),
        "--exclude",
        _xyz(exc),
    )
    one_line_error(
        code, err, f"error: --exclude {_xyz(exc)} coincides with --seed {_xyz(shape.center)}"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("structure", ["tumor", "ablation", "liver"])
def test_nan_voxels_are_refused_for_every_structure(cli, case, tmp_path, structure):
    _, shape, grid, hu, _ = case
    bad = np.array(hu, np.float32)
    bad[0, 0, :5] = np.nan  # 5 NaN and 2 infinite voxels, in the air corner
    bad[1, 0, :2] = [np.inf, -np.inf]
    ct = tmp_path / "nan.nii.gz"
    sitk.WriteImage(grid.image(bad), str(ct))
    out = tmp_path / "o" / "m.nii.gz"
    code, _, err = _segment(cli, structure, ct, out, "--seed", _xyz(shape.center))
    one_line_error(code, err, f"{ct}: 7 voxels are NaN or infinite")
    assert not out.parent.exists()


def test_raw_stored_values_are_refused_as_not_hu(cli, case, tmp_path):
    folder, shape, grid, hu, _ = case
    raw = tmp_path / "raw.nii.gz"  # HU + 1024 as uint16, no rescale
    sitk.WriteImage(grid.image(np.rint(hu + 1024).astype(np.uint16)), str(raw))
    code, _, err = _segment(cli, "tumor", raw, tmp_path / "m.nii.gz", "--seed", _xyz(shape.center))
    one_line_error(
        code,
        err,
        f"{raw}: does not look like HU: values 24 to ",  # air -1000 HU stored as 24
        "(16-bit unsigned integer), no air near -1000 HU (no value below 0)",
        "rescale slope/intercept",
        "expected Hounsfield units: air near -1000 HU",
    )
    assert list(tmp_path.iterdir()) == [raw]


def test_a_mask_given_as_the_ct_is_refused(cli, case, tmp_path):
    folder, shape, _, _, truth = case
    path = tmp_path / "mask.nii.gz"
    sitk.WriteImage(truth, str(path))
    code, _, err = _segment(cli, "tumor", path, tmp_path / "m.nii.gz", "--seed", _xyz(shape.center))
    one_line_error(code, err, f"{path}: holds only 2 distinct values (0/1): a mask, not a CT")
    assert list(tmp_path.iterdir()) == [path]


def test_true_hu_cts_pass_the_value_checks(case, shared_data):
    """The checks never refuse a true HU CT: the phantom, a crop inside its liver (no
    air, no fat: minimum > 0 HU) and the real scans."""
    from hepanav.imaging import read_image
    from hepanav.imaging.ctcheck import require_hu_ct

    folder, _, _, _, _ = case
    ct = read_image(folder / "ct.nii.gz")
    require_hu_ct(ct, "ct")
    inner = ct[20:44, 20:44, 16:40]  # inside the liver block
    assert float(sitk.GetArrayViewFromImage(inner).min()) > 0
    require_hu_ct(inner, "inner")
    require_hu_ct(read_image(shared_data / "ct-abdomen-3mm" / "ct.nii.gz"), "3mm")
    require_hu_ct(read_image(shared_data / "ct-abdomen-dicom" / "series"), "dicom")


def test_margin_refuses_nan_in_the_pre_ct(cli, case, tmp_path):
    """``hepanav margin`` reads its CTs through load_image, not the segmentation: NaN in
    --pre is refused there too (before, it reached the registration)."""
    folder, _, grid, hu, truth = case
    bad = np.array(hu, np.float32)
    bad[0, 0, :4] = np.nan
    pre = tmp_path / "pre.nii.gz"
    sitk.WriteImage(grid.image(bad), str(pre))
    zone = tmp_path / "zone.nii.gz"
    sitk.WriteImage(sitk.BinaryDilate(truth, [3, 3, 3]), str(zone))
    tumor = tmp_path / "tumor.nii.gz"
    sitk.WriteImage(truth, str(tumor))
    ct = folder / "ct.nii.gz"
    code, _, err = cli(
        "margin", "--pre", pre, "--post", ct, "--tumor", tumor, "--ablation", zone,
        "--out", tmp_path / "o",
    )  # fmt: skip
    one_line_error(code, err, f"{pre}: 4 voxels are NaN or infinite")
    assert not (tmp_path / "o").exists()


def _lps(grid, hu, xyz_index) -> np.ndarray:
    """LPS mm of the voxel (x, y, z index) of ``hu``'s grid."""
    img = grid.image(np.asarray(hu, np.float32))
    return np.asarray(img.TransformIndexToPhysicalPoint(tuple(int(v) for v in xyz_index)))


@pytest.mark.parametrize("option", ["--include", "--exclude"])
def test_editing_point_outside_the_image_is_called_a_point(cli, case, tmp_path, option):
    """tester6 10: "--exclude: seed (900.0, ...) mm is outside the image"."""
    folder, shape, _, _, _ = case
    far = shape.center + np.array([900.0, 0.0, 0.0])
    code, _, err = _segment(
        cli,
        "tumor",
        folder / "ct.nii.gz",
        tmp_path / "t.nii.gz",
        "--seed",
        _xyz(shape.center),
        option,
        _xyz(far),
    )
    line = one_line_error(code, err, f"error: {option}: point (", "is outside the image")
    assert "seed" not in line
    assert list(tmp_path.iterdir()) == []


def test_leak_past_max_radius_says_more_than(cli, tmp_path):
    """tester6 11: "grew 16 mm from the seed, past --max-radius-mm 16" read as 16 > 16.
    A hypodense ellipsoid 14 x 8 x 8 mm (semi-axes) reaches past 11 mm along x only."""
    grid, hu = liver_block()
    shape = StarShape.random(
        np.random.default_rng(1), np.zeros(3), np.array([14.0, 8.0, 8.0]), 0.0, (0.0, 0.0, 0.0)
    )
    paint_shape(hu, grid, shape, LIVER_HU - 45.0)
    sitk.WriteImage(sitk.Cast(grid.image(hu), sitk.sitkInt16), str(tmp_path / "ct.nii.gz"))
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = _segment(
        cli,
        "tumor",
        tmp_path / "ct.nii.gz",
        out / "t.nii.gz",
        "--seed",
        _xyz(shape.center),
        "--max-radius-mm",
        "11",
    )
    line = one_line_error(code, err, "grew more than --max-radius-mm 11 from the seed (to ")
    far = line.split("(to ")[1].split(" mm")[0]
    assert float(far) > 11.0 and len(far.split(".")[1]) == 1  # one decimal
    assert list(out.iterdir()) == []


def test_zone_click_in_fat_is_refused_as_fat_not_moved(cli, tmp_path):
    """tester6 9: a zone click in fat (-100 HU, no gas near) was moved silently to tissue
    and the error named the moved point with a wrong cause; refused as fat now."""
    _, _, _, grid, hu = lesion_case(radius=8.0, contrast=-45.0)
    hu = in_body(hu, grid, body_radius=31, fat_from=19)  # 12 mm of fat, air beyond
    sitk.WriteImage(sitk.Cast(grid.image(hu), sitk.sitkInt16), str(tmp_path / "ct.nii.gz"))
    centre = np.asarray(grid.shape) / 2  # z, y, x
    click = _lps(grid, hu, (centre[2] + 25, centre[1], centre[0]))  # mid-fat, 6 mm from air
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = _segment(
        cli, "ablation", tmp_path / "ct.nii.gz", out / "z.nii.gz", "--seed", _xyz(click)
    )
    line = one_line_error(
        code, err, f"error: --seed {_xyz(click)} (", "seed is in fat (", "no soft tissue"
    )
    assert "moved" not in line and "leaked" not in line
    assert f"({', '.join(f'{v:.1f}' for v in click)}) mm" in line  # the click itself
    assert list(out.iterdir()) == []


def test_zone_click_in_lung_inside_the_body_is_refused_as_lung(cli, tmp_path):
    """tester6 9: a zone click in lung (-850 HU, enclosed by the body) 3.75 mm above the
    liver was moved 6 mm onto the liver silently and refused for its boundary fat
    ("57% of the grown region's boundary is fat"); refused as air or lung now, as for a
    tumour."""
    _, _, _, grid, hu = lesion_case(radius=8.0, contrast=-45.0)
    hu = in_body(hu, grid, body_radius=31, fat_from=19)  # 12 mm fat keeps the lung inside
    top = 44  # lung on slices 44-51 (z index), tissue above and below
    lung = np.zeros(hu.shape, bool)
    lung[top:52] = True
    hu[lung & (hu > -50)] = -850.0
    sitk.WriteImage(sitk.Cast(grid.image(hu), sitk.sitkInt16), str(tmp_path / "ct.nii.gz"))
    centre = np.asarray(grid.shape) / 2  # z, y, x
    click = _lps(grid, hu, (centre[2] + 5, centre[1], top + 3))
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = _segment(
        cli, "ablation", tmp_path / "ct.nii.gz", out / "z.nii.gz", "--seed", _xyz(click)
    )
    line = one_line_error(code, err, f"error: --seed {_xyz(click)} (", "seed is in air or lung")
    assert "moved" not in line
    assert list(out.iterdir()) == []


def test_zone_click_on_a_gas_bubble_inside_the_zone_is_moved_and_named(cli, tmp_path):
    """Gas inside a zone (a 2.5 mm bubble) still moves the click to the nearest tissue,
    and the note says how far and from what HU."""
    _, _, shape, grid, hu = lesion_case(radius=10.0, contrast=-45.0)
    z, y, x = np.indices(grid.shape)
    c = np.asarray(grid.shape) / 2
    bubble = (z - c[0]) ** 2 * 1.25**2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= 2.5**2
    hu = np.where(bubble, -900.0, hu)
    sitk.WriteImage(sitk.Cast(grid.image(hu), sitk.sitkInt16), str(tmp_path / "ct.nii.gz"))
    click = _lps(grid, hu, (c[2], c[1], c[0]))
    code, _, err = _segment(
        cli, "ablation", tmp_path / "ct.nii.gz", tmp_path / "z.nii.gz", "--seed", _xyz(click)
    )
    assert code == 0, err
    assert f"--seed {_xyz(click)} moved " in err and "mm off gas (" in err
