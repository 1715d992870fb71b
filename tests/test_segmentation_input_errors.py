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

sys.path.insert(0, str(Path(__file__).parent))
from segmentation_helpers import in_body, lesion_case  # noqa: E402


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
    assert f"--include {_xyz(inc)}" in err and "lie in the mask" in err
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
