"""hepanav.imaging: readers, geometry checks and physical-space resampling."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from dicom_helpers import write_ct_series
from hepanav.core import InputError, atomic_path
from hepanav.imaging import (
    Geometry,
    physical_extent,
    read_image,
    read_mask,
    resample_isotropic,
    resample_labels_like,
    resample_mask_like,
    same_grid,
    select_labels,
    volume_ml,
    voxel_to_lps,
    write_image,
)

ROTATED = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # 90 degrees about z


def _image(shape_zyx=(10, 12, 14), spacing=(0.7, 0.8, 2.5), direction=ROTATED, value=None):
    array = np.zeros(shape_zyx, np.uint8) if value is None else value
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin((10.0, -20.0, 30.0))
    image.SetDirection(direction)
    return image


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_read_write_keeps_geometry(tmp_path, suffix):
    image = _image(value=np.arange(10 * 12 * 14, dtype=np.int16).reshape(10, 12, 14))
    path = write_image(image, tmp_path / f"ct{suffix}")
    back = read_image(path)
    assert same_grid(back, image)
    assert Geometry.of(back).size == Geometry.of(image).size
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_image(tmp_path / "nope.nii.gz")
    (tmp_path / "ct.txt").write_text("hello")
    with pytest.raises(InputError, match="unsupported image format"):
        read_image(tmp_path / "ct.txt")
    (tmp_path / "broken.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(InputError, match="cannot read image"):
        read_image(tmp_path / "broken.nii.gz")


def test_2d_input_is_refused(tmp_path):
    flat = sitk.GetImageFromArray(np.zeros((1, 8, 8), np.int16))
    path = write_image(flat, tmp_path / "flat.nii.gz")
    with pytest.raises(InputError, match="2D"):
        read_image(path)


def test_empty_mask_and_no_overlap(tmp_path):
    ct = _image()
    empty = write_image(_image(), tmp_path / "empty.nii.gz")
    with pytest.raises(InputError, match="empty"):
        read_mask(empty, ct)
    far = _image(value=np.ones((10, 12, 14), np.uint8))
    far.SetOrigin((1000.0, 1000.0, 1000.0))
    with pytest.raises(InputError, match="does not overlap"):
        read_mask(write_image(far, tmp_path / "far.nii.gz"), ct)


def test_voxel_to_lps_matches_simpleitk():
    image = _image()
    idx = np.array([[0, 0, 0], [3, 4, 5], [13.5, 11.2, 9.9]])
    expected = [image.TransformContinuousIndexToPhysicalPoint(p.tolist()) for p in idx]
    np.testing.assert_allclose(voxel_to_lps(image, idx), expected)


def test_resample_flipped_label_map_in_physical_space():
    """A label map stored with a flipped row axis lands on the same anatomy."""
    ct = _image(direction=(1, 0, 0, 0, 1, 0, 0, 0, 1), spacing=(1.0, 1.0, 2.0))
    truth = np.zeros((10, 12, 14), np.uint8)
    truth[2:5, 1:4, 3:9] = 7
    labels_ct = sitk.GetImageFromArray(truth)
    labels_ct.CopyInformation(ct)
    # Same physical content, row axis flipped: y index runs the other way.
    flipped = sitk.GetImageFromArray(truth[:, ::-1, :].copy())
    flipped.SetSpacing(ct.GetSpacing())
    flipped.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, 1))
    flipped.SetOrigin(ct.TransformIndexToPhysicalPoint((0, 11, 0)))
    back = resample_labels_like(flipped, ct)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), truth)
    # Indexing the raw arrays together would be wrong:
    assert not np.array_equal(sitk.GetArrayFromImage(flipped), truth)


def test_resample_mask_keeps_volume_on_finer_grid():
    coarse = _image(
        shape_zyx=(20, 40, 40), spacing=(2.0, 2.0, 2.0), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)
    )
    zz, yy, xx = np.mgrid[:20, :40, :40]
    ball = ((xx - 20) ** 2 + (yy - 20) ** 2 + (zz - 10) ** 2 <= 8**2).astype(np.uint8)
    mask = sitk.GetImageFromArray(ball)
    mask.CopyInformation(coarse)
    fine = resample_isotropic(coarse, 1.0)
    assert np.allclose(physical_extent(fine)[0], physical_extent(coarse)[0])
    assert np.allclose(physical_extent(fine)[1], physical_extent(coarse)[1])
    fine_mask = resample_mask_like(mask, fine)
    analytic_ml = 4 / 3 * np.pi * 16.0**3 / 1000
    assert volume_ml(fine_mask) == pytest.approx(analytic_ml, rel=0.03)


def test_select_labels():
    labels = _image(value=np.array([0, 5, 97, 98, 5, 3] * 280, np.uint8).reshape(10, 12, 14))
    ribs = select_labels(labels, range(97, 116))
    assert int(sitk.GetArrayFromImage(ribs).sum()) == 2 * 280
    assert same_grid(ribs, labels)


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


class TestDicomSeries:
    volume = (np.arange(6 * 16 * 16) % 200).astype(np.int16).reshape(6, 16, 16)

    def test_reads_geometry(self, tmp_path):
        write_ct_series(tmp_path, self.volume)
        image = read_image(tmp_path)
        assert image.GetSize() == (16, 16, 6)
        np.testing.assert_allclose(image.GetSpacing(), (0.8, 0.8, 2.0), atol=1e-4)
        np.testing.assert_allclose(image.GetOrigin(), (-100.0, -120.0, -50.0), atol=1e-4)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), self.volume)

    def test_missing_slice(self, tmp_path):
        paths = write_ct_series(tmp_path, self.volume)
        paths[3].unlink()
        with pytest.raises(InputError, match="1 missing slice"):
            read_image(tmp_path)

    def test_uneven_slices(self, tmp_path):
        write_ct_series(tmp_path, self.volume, slice_positions_mm=[0, 2, 4, 6.9, 8, 10])
        with pytest.raises(InputError, match="unevenly spaced"):
            read_image(tmp_path)

    def test_several_series_are_named(self, tmp_path):
        write_ct_series(tmp_path, self.volume, series_uid="1.2.3.4.1", prefix="a")
        write_ct_series(tmp_path, self.volume, series_uid="1.2.3.4.2", prefix="b")
        with pytest.raises(InputError, match=r"2 DICOM series .*1\.2\.3\.4\.1.*1\.2\.3\.4\.2"):
            read_image(tmp_path)

    def test_empty_folder(self, tmp_path, capfd):
        with pytest.raises(InputError, match="no DICOM series"):
            read_image(tmp_path)
        # ITK's own multi-line warning must not precede our one-line error.
        assert "WARNING" not in capfd.readouterr().err


@pytest.mark.realdata
def test_real_dicom_labels_resampled_onto_series(shared_data):
    """Liver label of the flipped label map lands on liver tissue (about 93 HU)."""
    ct = read_image(shared_data / "ct-abdomen-dicom" / "series")
    liver = read_mask(shared_data / "ct-abdomen-dicom" / "labels.nii.gz", ct, label=5)
    ct_hu = sitk.GetArrayFromImage(ct)
    hu = ct_hu[sitk.GetArrayFromImage(liver) > 0]
    assert 80 < float(np.median(hu)) < 110
    assert np.mean((hu > 50) & (hu < 140)) > 0.9
    # The raw (unresampled) label array indexes other tissue, much of it air.
    raw = sitk.GetArrayFromImage(read_image(shared_data / "ct-abdomen-dicom" / "labels.nii.gz"))
    raw_hu = ct_hu[raw == 5]
    assert np.mean((raw_hu > 50) & (raw_hu < 140)) < 0.75


def test_atomic_path_gives_usual_permissions(tmp_path):
    import os

    umask = os.umask(0)
    os.umask(umask)
    with atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text("x")
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_anatomy_labels_agree_with_totalsegmentator_sidecar(shared_data):
    """Our id table names every class of the real scan's TotalSegmentator sidecar alike."""
    from hepanav.imaging import anatomy_label_names, read_label_names

    sidecar = read_label_names(shared_data / "ct-abdomen-dicom" / "labels.json")
    ours = anatomy_label_names()
    common = set(sidecar) & set(ours)
    assert len(common) >= 25
    assert {i: ours[i] for i in common} == {i: sidecar[i] for i in common}
    assert ours[200] == "hepatic_veins"


def test_bounding_box_index_pads_in_mm_and_clips():
    from hepanav.imaging import bounding_box_index, crop

    array = np.zeros((10, 12, 14), np.uint8)
    array[3:5, 2:7, 0:4] = 1  # z 3-4, y 2-6, x 0-3
    mask = _image(value=array)  # spacing 0.7 x 0.8 x 2.5 mm
    assert bounding_box_index(mask) == ([0, 2, 3], [4, 5, 2])
    # 2 mm of padding: 3 voxels in x (0.7 mm), 3 in y (0.8 mm), 1 in z (2.5 mm); x clips at 0.
    start, size = bounding_box_index(mask, pad_mm=2.0)
    assert (start, size) == ([0, 0, 2], [7, 10, 4])
    cropped = crop(mask, start, size)
    assert int(sitk.GetArrayFromImage(cropped).sum()) == int(array.sum())
    assert cropped.GetOrigin() == mask.TransformIndexToPhysicalPoint(start)
    with pytest.raises(InputError, match="empty"):
        bounding_box_index(_image())


def test_atomic_path_refuses_a_folder(tmp_path):
    with pytest.raises(InputError, match="is a folder"), atomic_path(tmp_path):
        pass
