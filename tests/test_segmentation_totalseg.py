"""TotalSegmentator folders and multi-label files read onto one label map."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from hepanav.core.errors import InputError
from hepanav.imaging.totalseg import LIVER_VESSELS_ID, read_totalsegmentator


def _mask(box, flip=False):
    arr = np.zeros((10, 12, 14), np.uint8)
    arr[box] = 1
    img = sitk.GetImageFromArray(arr[:, ::-1, :].copy() if flip else arr)
    img.SetSpacing((2.0, 2.0, 3.0))
    if flip:  # same physical voxels, row axis stored the other way round
        img.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, 1))
        img.SetOrigin((0.0, 22.0, 0.0))
    return img


def test_folder_ids_vessels_flipped_grid_and_unknown_files(tmp_path):
    sitk.WriteImage(_mask(np.s_[2:5, 2:6, 2:6]), str(tmp_path / "liver.nii.gz"))
    sitk.WriteImage(_mask(np.s_[6:8, 1:3, 1:3], flip=True), str(tmp_path / "aorta.nii.gz"))
    sitk.WriteImage(_mask(np.s_[3:4, 3:4, 3:5]), str(tmp_path / "liver_vessels.nii.gz"))
    sitk.WriteImage(_mask(np.s_[0:1, 0:1, 0:1]), str(tmp_path / "mystery_organ.nii.gz"))
    # The CT's grid (unflipped) as the reference: the aorta is resampled onto it.
    result = read_totalsegmentator(tmp_path, reference=_mask(np.s_[0:0]))
    arr = sitk.GetArrayViewFromImage(result.image)
    assert result.names == {5: "liver", 52: "aorta", LIVER_VESSELS_ID: "hepatic_veins"}
    assert result.skipped == ["mystery_organ.nii.gz"]
    assert np.count_nonzero(arr == 52) == 2 * 2 * 2  # flipped storage, same voxels
    assert arr[7, 1, 1] == 52
    # The liver_vessels task's vessels lie inside TotalSegmentator's liver mask: they
    # become the heat-sink id there although liver.nii.gz is read first (name order).
    assert np.count_nonzero(arr == 5) + np.count_nonzero(arr == LIVER_VESSELS_ID) == 3 * 4 * 4
    assert np.count_nonzero(arr == LIVER_VESSELS_ID) == 1 * 1 * 2
    assert (arr[3:4, 3:4, 3:5] == LIVER_VESSELS_ID).all()


def test_multilabel_file_and_errors(tmp_path):
    arr = np.zeros((6, 6, 6), np.uint8)
    arr[1:3, 1:3, 1:3] = 5
    arr[4, 4, 4] = 97
    path = tmp_path / "seg.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path))
    result = read_totalsegmentator(path)
    assert result.names == {5: "liver", 97: "rib_left_6"}
    with pytest.raises(InputError, match="no TotalSegmentator structure"):
        read_totalsegmentator(
            tmp_path / "empty_dir" if (tmp_path / "empty_dir").mkdir() is None else tmp_path
        )
    with pytest.raises(InputError, match="does not exist"):
        read_totalsegmentator(tmp_path / "nope")


def test_liver_vessels_task_is_the_risk_maps_heat_sink_group(tmp_path):
    """liver_vessels.nii.gz -> id 200 -> the default risk map's heat-sink group, and a
    plan's absent-group check finds it present (not the silent loss inside the liver)."""
    from hepanav.planning.risk import absent_groups, load_risk_map

    sitk.WriteImage(_mask(np.s_[2:8, 2:10, 2:12]), str(tmp_path / "liver.nii.gz"))
    sitk.WriteImage(_mask(np.s_[4:6, 5:7, 3:11]), str(tmp_path / "liver_vessels.nii.gz"))
    sitk.WriteImage(_mask(np.s_[2:8, 2:10, 2:12]), str(tmp_path / "liver_tumor.nii.gz"))
    result = read_totalsegmentator(tmp_path)
    arr = sitk.GetArrayViewFromImage(result.image)
    assert np.count_nonzero(arr == LIVER_VESSELS_ID) == 2 * 2 * 8
    assert result.skipped == ["liver_tumor.nii.gz"]  # not a structure id: listed, not guessed
    risk = load_risk_map()
    group = next(r for r in risk.structures if LIVER_VESSELS_ID in r.labels)
    assert group.heat_sink and group.name == "portal_and_hepatic_veins"
    assert group.name not in [a.name for a in absent_groups(result.image, risk)]
