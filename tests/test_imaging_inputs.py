"""NIfTI/NRRD/MHA geometry, truncated files, FIFOs, and mask values (binary, labels, fractions)."""

from __future__ import annotations

import os
import re

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from hepanav.core import InputError
from hepanav.imaging import load_image, load_mask, read_image, write_image
from hepanav.imaging.geometry import voxel_to_lps

RAS = np.diag([-1.0, -1.0, 1.0])


def sheared_affine_lps(tilt_deg: float, pixel=1.0, step=2.0, origin=(-32.0, -32.0, -20.0)):
    """Index -> LPS matrix and origin of a gantry-tilted acquisition (shear in y-z)."""
    t = np.radians(tilt_deg)
    row, col = np.array([1.0, 0, 0]), np.array([0.0, np.cos(t), np.sin(t)])
    stack = np.array([0.0, 0.0, 1.0])  # the table moves along z
    return np.stack([row * pixel, col * pixel, stack * step], axis=1), np.asarray(origin)


def write_sheared_nifti(path, func, shape_xyz, matrix, origin, dtype=np.float32, qform_plain=True):
    i, j, k = np.meshgrid(*(np.arange(n) for n in shape_xyz), indexing="ij")
    lps = np.stack([i, j, k], axis=-1) @ matrix.T + origin
    data = func(lps).astype(dtype)
    affine = np.eye(4)
    affine[:3, :3] = RAS @ matrix
    affine[:3, 3] = RAS @ origin
    image = nib.Nifti1Image(data, affine)
    image.set_sform(affine, code=1)
    if qform_plain:  # what converters write: the shear dropped from the qform
        plain = affine.copy()
        plain[:3, 2] = RAS @ (
            np.cross(matrix[:, 0], matrix[:, 1])
            / np.linalg.norm(np.cross(matrix[:, 0], matrix[:, 1]))
            * np.linalg.norm(matrix[:, 2])
        )
        image.set_qform(plain, code=1)
    nib.save(image, str(path))
    return path


def sphere(center, radius, inside=1.0):
    c = np.asarray(center)
    return lambda lps: np.where(np.linalg.norm(lps - c, axis=-1) <= radius, inside, 0.0)


def _centroid(image, threshold=0.5):
    idx = np.argwhere(sitk.GetArrayFromImage(image) > threshold)[:, ::-1].astype(float)
    return voxel_to_lps(image, idx).mean(axis=0)


def test_sheared_sform_resampled_not_replaced_by_qform(tmp_path):
    matrix, origin = sheared_affine_lps(20.0)
    path = write_sheared_nifti(
        tmp_path / "ct.nii.gz", sphere((0, 0, 3), 9.0, 100.0), (64, 64, 24), matrix, origin
    )
    image, record = load_image(path)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(direction.T @ direction, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(_centroid(image, 50.0), (0, 0, 3), atol=0.25)
    assert any("sheared grid (20.0 degrees" in n for n in record.notes)
    assert any("qform and sform disagree" in n for n in record.notes)
    # SimpleITK alone follows the qform here: the sphere lands millimetres away.
    assert np.linalg.norm(_centroid(sitk.ReadImage(str(path)), 50.0) - (0, 0, 3)) > 1.5


def test_sheared_nrrd_made_orthogonal(tmp_path):
    import nrrd

    matrix, origin = sheared_affine_lps(10.0)
    i, j, k = np.meshgrid(*(np.arange(n) for n in (64, 64, 24)), indexing="ij")
    data = sphere((0, 0, 3), 9.0, 100.0)(np.stack([i, j, k], axis=-1) @ matrix.T + origin)
    path = tmp_path / "ct.nrrd"
    nrrd.write(
        str(path),
        data.astype(np.int16),
        {
            "space": "left-posterior-superior",
            "space directions": matrix.T,
            "space origin": origin,
            "kinds": ["domain"] * 3,
        },
    )
    image, record = load_image(path)
    np.testing.assert_allclose(_centroid(image, 50.0), (0, 0, 3), atol=0.25)
    assert any("sheared grid (10.0 degrees" in n for n in record.notes)


def test_plain_nifti_has_no_notes(tmp_path):
    image = sitk.GetImageFromArray(np.zeros((4, 5, 6), np.int16))
    image.SetSpacing((0.7, 0.8, 2.5))
    image.SetDirection((0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    back, record = load_image(write_image(image, tmp_path / "a.nii.gz"))
    assert record.notes == [] and record.format == "NIfTI"
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection(), atol=1e-6)


def test_truncated_gzip_nifti_refused(tmp_path):
    image = sitk.GetImageFromArray(
        np.random.default_rng(0).integers(0, 100, (30, 30, 30)).astype(np.int16)
    )
    path = write_image(image, tmp_path / "ct.nii.gz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"ct\.nii\.gz: file is truncated or corrupt"):
        read_image(path)


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[:30],  # cut inside the header: was "cannot work out file type"
        lambda d: d[:-4],  # cut in the trailer (length)
        lambda d: d[: len(d) // 2] + bytes([d[len(d) // 2] ^ 0x55]) + d[len(d) // 2 + 1 :],
        lambda d: d[:-6] + bytes([d[-6] ^ 0x55]) + d[-5:],  # CRC-32 damaged
    ],
    ids=["cut-in-header", "cut-in-trailer", "bit-flip-in-data", "bit-flip-in-crc"],
)
def test_corrupt_gzip_nifti_refused(tmp_path, damage):
    """nibabel stops at the end of the voxel data and never checks the CRC: a flipped bit
    in the middle gave other voxel values with no error. The stream is checked to its end."""
    image = sitk.GetImageFromArray(
        np.random.default_rng(0).integers(0, 100, (30, 30, 30)).astype(np.int16)
    )
    path = write_image(image, tmp_path / "ct.nii.gz")
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(InputError, match=r"ct\.nii\.gz: file is truncated or corrupt"):
        read_image(path)


def test_concatenated_gzip_members_are_one_valid_nifti(tmp_path):
    import gzip

    array = np.random.default_rng(1).integers(0, 100, (8, 9, 10)).astype(np.int16)
    path = write_image(sitk.GetImageFromArray(array), tmp_path / "ct.nii.gz")
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(path)), array)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_truncated_compressed_nrrd_mha_refused(tmp_path, capfd, suffix):
    image = sitk.GetImageFromArray(
        np.random.default_rng(0).integers(0, 100, (30, 30, 30)).astype(np.int16)
    )
    path = write_image(image, tmp_path / f"ct{suffix}")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 2000])
    with pytest.raises(InputError, match=rf"ct\{suffix}: .*(truncated|completely)"):
        read_image(path)
    assert capfd.readouterr().err == ""


def test_mhd_with_short_raw_file_refused(tmp_path, capfd):
    image = sitk.GetImageFromArray(np.zeros((10, 10, 10), np.int16))
    path = tmp_path / "ct.mhd"
    sitk.WriteImage(image, str(path))  # not atomic: the header names ct.raw
    raw = tmp_path / "ct.raw"
    raw.write_bytes(raw.read_bytes()[:1000])
    with pytest.raises(
        InputError, match=r"ct\.mhd: pixel data is truncated: 1000 of 2000 bytes in ct\.raw"
    ):
        read_image(path)
    assert capfd.readouterr().err == ""


def test_fifo_and_folder_refused(tmp_path):
    fifo = tmp_path / "mask.nii.gz"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="is a FIFO, not a regular file"):
        read_image(fifo)
    with pytest.raises(InputError, match="is a FIFO"):
        load_mask(fifo)
    with pytest.raises(InputError, match="no DICOM series"):
        read_image(tmp_path / ".")


def _label_map(tmp_path, values, dtype=np.uint8, name="map.nii.gz"):
    image = sitk.GetImageFromArray(np.asarray(values, dtype=dtype))
    return write_image(image, tmp_path / name)


def test_label_map_without_choice_refused_naming_labels(tmp_path):
    array = np.zeros((6, 6, 6), np.uint8)
    array[1:3] = 1
    array[3:5] = 2
    path = _label_map(tmp_path, array)
    with pytest.raises(
        InputError, match=r"is a label map with labels 1, 2; choose with --tumor-label"
    ):
        load_mask(path, option="--tumor-label")
    zone, record = load_mask(path, labels="1,2")
    assert int(sitk.GetArrayFromImage(zone).sum()) == 4 * 36
    tumour, _ = load_mask(path, labels=1)
    assert int(sitk.GetArrayFromImage(tumour).sum()) == 2 * 36
    with pytest.raises(InputError, match=r"label 3 not present; labels present: 1, 2"):
        load_mask(path, labels="3")


def test_label_names_from_sidecar(tmp_path):
    array = np.zeros((6, 6, 6), np.uint8)
    array[1:3] = 5
    array[3:5] = 7
    path = _label_map(tmp_path, array, name="labels.nii.gz")
    (tmp_path / "labels.json").write_text('{"5": "liver", "7": "tumor"}')
    liver, record = load_mask(path, labels="Liver")
    assert int(sitk.GetArrayFromImage(liver).sum()) == 2 * 36 and record.segment == "5"
    with pytest.raises(InputError, match=r"labels 5 \(liver\), 7 \(tumor\)"):
        load_mask(path)


def test_float_fraction_mask_thresholded_with_note(tmp_path):
    array = np.zeros((6, 6, 6), np.float32)
    array[2:4] = 1.0
    array[1] = 0.4
    array[4] = 0.6
    path = _label_map(tmp_path, array, dtype=np.float32, name="frac.nii.gz")
    mask, record = load_mask(path)
    assert int(sitk.GetArrayFromImage(mask).sum()) == 3 * 36
    assert any("thresholded at 0.5" in n for n in record.notes)
    mask, record = load_mask(path, threshold=0.3)
    assert int(sitk.GetArrayFromImage(mask).sum()) == 4 * 36
    # A probability map with a small floor is not "all tumour".
    floor = np.full((6, 6, 6), 0.01, np.float32)
    floor[2:4] = 0.97
    mask, _ = load_mask(_label_map(tmp_path, floor, dtype=np.float32, name="p.nii.gz"))
    assert int(sitk.GetArrayFromImage(mask).sum()) == 2 * 36
    wide = _label_map(tmp_path, array * 100, dtype=np.float32, name="pct.nii.gz")
    array[2, 2, 2] = 37.5
    wide = _label_map(tmp_path, array, dtype=np.float32, name="pct.nii.gz")
    with pytest.raises(InputError, match="neither 0/1 nor fractions; give --mask-threshold"):
        load_mask(wide)


def test_binary_mask_of_255_is_binary(tmp_path):
    array = np.zeros((6, 6, 6), np.uint8)
    array[2:4] = 255
    mask, record = load_mask(_label_map(tmp_path, array))
    assert int(sitk.GetArrayFromImage(mask).sum()) == 2 * 36 and record.notes == []


@pytest.mark.parametrize(
    ("spacing", "shown"),
    [((0.08, 0.08, 0.15), "0.08 x 0.08 x 0.15 mm"), ((8.0, 8.0, 50.0), "8 x 8 x 50 mm")],
)
def test_voxel_size_outside_clinical_range_refused(tmp_path, spacing, shown):
    # A mask written in cm (or with a header in another unit) scales every distance.
    image = sitk.GetImageFromArray(np.zeros((4, 5, 6), np.uint8))
    image.SetSpacing(spacing)
    path = write_image(image, tmp_path / "mask_cm.nii.gz")
    with pytest.raises(InputError, match=r"mask_cm\.nii\.gz: voxel size " + re.escape(shown)):
        load_image(path)
    with pytest.raises(InputError, match="check that the units are mm"):
        load_mask(path)


def test_float_mask_below_the_threshold_is_not_called_empty():
    """A probability mask whose maximum (0.4) lies below the threshold is refused naming
    the threshold, its value range and --mask-threshold; a lower threshold reads it."""
    from hepanav.imaging.masks import mask_from_values

    arr = np.zeros((4, 5, 6), dtype=np.float32)
    arr[1:3, 1:4, 1:5] = 0.2  # 24 voxels
    arr[1, 1, 1:3] = 0.4  # 2 of them at 0.4
    image = sitk.GetImageFromArray(arr)
    for threshold, shown in ((None, "0.5"), (0.6, "0.6")):
        with pytest.raises(InputError) as info:
            mask_from_values(image, None, threshold, "tumor_p04.nii.gz")
        text = str(info.value)
        assert f"below the mask threshold {shown}" in text and "--mask-threshold" in text
        assert "values 0 to 0.4" in text and "tumor_p04.nii.gz" in text
        assert "empty" not in text
    mask, _, _ = mask_from_values(image, None, 0.3, "tumor_p04.nii.gz")
    assert int(sitk.GetArrayViewFromImage(mask).sum()) == 2
    mask, _, _ = mask_from_values(image, None, 0.1, "tumor_p04.nii.gz")
    assert int(sitk.GetArrayViewFromImage(mask).sum()) == 24
