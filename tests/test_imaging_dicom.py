"""DICOM series read right or refused: tilt, scouts, duplicates, pitch, slopes, Enhanced CT."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from dicom_helpers import enhanced_ct_dataset, volume_slices, write_slices
from hepanav.core import InputError
from hepanav.imaging import load_image
from hepanav.imaging.geometry import voxel_to_lps

PIXEL = 1.0


def tilted_frame(tilt_deg: float):
    """Row, column and normal of a slice tilted about the left-right (x) axis."""
    t = np.radians(tilt_deg)
    row = np.array([1.0, 0.0, 0.0])
    col = np.array([0.0, np.cos(t), np.sin(t)])
    return row, col, np.cross(row, col)


def tilted_positions(tilt_deg: float, n: int, table_step: float, start=(-32.0, -32.0, -20.0)):
    """Positions of a gantry-tilted acquisition: the table moves along z only."""
    return [(start[0], start[1], start[2] + k * table_step) for k in range(n)]


def sample_slices(func, positions, row, col, shape, pixel=PIXEL):
    """Evaluate ``func(lps (..., 3))`` at every pixel centre of every slice: (k, rows, cols)."""
    j, i = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    out = []
    for p in positions:
        lps = np.asarray(p) + i[..., None] * pixel * row + j[..., None] * pixel * col
        out.append(func(lps))
    return np.stack(out)


def sphere_hu(center, radius, inside=100.0, outside=0.0):
    c = np.asarray(center)
    return lambda lps: np.where(np.linalg.norm(lps - c, axis=-1) <= radius, inside, outside)


def _centroid_lps(image, threshold):
    array = sitk.GetArrayFromImage(image)
    idx = np.argwhere(array > threshold)[:, ::-1].astype(float)
    return voxel_to_lps(image, idx).mean(axis=0)


@pytest.mark.parametrize("tilt", [5.0, 20.0])
def test_tilted_series_regularised_in_physical_space(tmp_path, tilt):
    row, col, _ = tilted_frame(tilt)
    positions = tilted_positions(tilt, 24, 2.0)
    center = (0.0, 0.0, 3.0)
    hu = sample_slices(sphere_hu(center, 9.0), positions, row, col, (64, 64))
    write_slices(
        tmp_path / "ct",
        volume_slices(hu, positions, orientation=(*row, *col), pixel_spacing=(1, 1)),
    )
    image, record = load_image(tmp_path / "ct", "CT")
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(direction.T @ direction, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(image.GetSpacing()[2], 2.0 * np.cos(np.radians(tilt)), rtol=1e-6)
    np.testing.assert_allclose(_centroid_lps(image, 50.0), center, atol=0.25)
    assert any(f"gantry tilt of {tilt:.1f} degrees" in n for n in record.notes)
    # Reading by GDCM without regularisation puts the sphere elsewhere (the defect fixed).
    naive = sitk.ImageSeriesReader()
    naive.SetFileNames(sorted(str(p) for p in (tmp_path / "ct").iterdir()))
    shift = np.linalg.norm(_centroid_lps(naive.Execute(), 50.0) - center)
    assert shift > 1.5


def test_scout_in_series_is_dropped_and_said(tmp_path):
    positions = [(-16.0, -16.0, float(z)) for z in range(0, 20, 2)]
    hu = sample_slices(sphere_hu((0, 0, 9), 6.0), positions, np.eye(3)[0], np.eye(3)[1], (32, 32))
    datasets = volume_slices(hu, positions, pixel_spacing=(1, 1))
    scout = volume_slices(
        np.zeros((1, 32, 32)), [(-16.0, 0.0, 30.0)], orientation=(1, 0, 0, 0, 0, -1)
    )[0]
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    scout.SOPInstanceUID = scout.SOPInstanceUID + ".99"
    write_slices(tmp_path / "ct", datasets + [scout])
    image, record = load_image(tmp_path / "ct")
    assert image.GetSize() == (32, 32, 10)
    np.testing.assert_allclose(_centroid_lps(image, 50), (0, 0, 9), atol=0.3)
    assert any("dropped 1 localizer (scout) image(s): ct010.dcm" in n for n in record.notes)


def test_odd_orientation_without_localizer_flag_dropped_by_majority(tmp_path):
    positions = [(-16.0, -16.0, float(z)) for z in range(0, 20, 2)]
    datasets = volume_slices(np.zeros((10, 32, 32)), positions, pixel_spacing=(1, 1))
    odd = volume_slices(
        np.zeros((1, 32, 32)), [(-16.0, 0.0, 30.0)], orientation=(1, 0, 0, 0, 0, -1)
    )[0]
    odd.SOPInstanceUID = odd.SOPInstanceUID + ".98"
    write_slices(tmp_path / "ct", datasets + [odd])
    image, record = load_image(tmp_path / "ct")
    assert image.GetSize() == (32, 32, 10)
    assert any(
        "dropped 1 image(s) that differ from the other 10: ct010.dcm (another orientation" in n
        for n in record.notes
    )


def test_duplicate_slice_dropped_and_conflicting_slice_refused(tmp_path):
    positions = [(-8.0, -8.0, float(z)) for z in range(6)]
    hu = np.arange(6 * 16 * 16, dtype=float).reshape(6, 16, 16) % 300
    datasets = volume_slices(hu, positions, pixel_spacing=(1, 1))
    dup = volume_slices(hu[2:3], positions[2:3], pixel_spacing=(1, 1))[0]
    dup.SOPInstanceUID = dup.SOPInstanceUID + ".77"
    write_slices(tmp_path / "ct", datasets + [dup])
    image, record = load_image(tmp_path / "ct")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), hu)
    assert any("dropped 1 exact duplicate slice(s)" in n for n in record.notes)
    other = volume_slices(hu[2:3] + 5, positions[2:3], pixel_spacing=(1, 1))[0]
    other.SOPInstanceUID = other.SOPInstanceUID + ".78"
    write_slices(tmp_path / "ct2", datasets + [other])
    with pytest.raises(InputError, match="two different slices at the same position"):
        load_image(tmp_path / "ct2")


def test_variable_pitch_regularised_onto_regular_grid(tmp_path):
    zs = [0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 12.0]
    positions = [(-8.0, -8.0, z) for z in zs]
    ramp = lambda lps: 10.0 * lps[..., 2] + lps[..., 0]  # noqa: E731 - linear: interpolated exactly
    hu = sample_slices(ramp, positions, np.eye(3)[0], np.eye(3)[1], (16, 16))
    write_slices(tmp_path / "ct", volume_slices(hu, positions, pixel_spacing=(1, 1)))
    image, record = load_image(tmp_path / "ct")
    assert image.GetSize() == (16, 16, 13)
    np.testing.assert_allclose(image.GetSpacing(), (1, 1, 1))
    k, j, i = np.meshgrid(*(np.arange(n) for n in image.GetSize()[::-1]), indexing="ij")
    lps = voxel_to_lps(image, np.stack([i, j, k], axis=-1).reshape(-1, 3)).reshape(*k.shape, 3)
    np.testing.assert_allclose(sitk.GetArrayFromImage(image), ramp(lps), atol=1e-3)
    assert any("variable slice spacing (1 to 2 mm)" in n for n in record.notes)


def test_per_slice_rescale_slope_is_exact(tmp_path):
    positions = [(0.0, 0.0, float(z)) for z in range(4)]
    slopes = [1.0, 0.5, 0.25, 2.0]
    rng = np.random.default_rng(3)
    stored = rng.integers(0, 3000, size=(4, 8, 8))
    hu = np.stack([stored[k] * slopes[k] - 1024.0 for k in range(4)])
    write_slices(tmp_path / "ct", volume_slices(hu, positions, pixel_spacing=(1, 1), slopes=slopes))
    image, record = load_image(tmp_path / "ct")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image).astype(np.float64), hu)
    assert sitk.GetArrayViewFromImage(image).dtype == np.float32
    assert any("applied per slice" in n for n in record.notes)


def test_enhanced_ct_uneven_frames_positions_right(tmp_path):
    zs = [10.0, 11.0, 12.0, 13.0, 15.0, 17.0, 19.0, 21.0]
    order = [3, 0, 6, 1, 7, 2, 5, 4]  # frames stored out of order
    positions = [(-8.0, -8.0, zs[o]) for o in order]
    ramp = lambda lps: 10.0 * lps[..., 2]  # noqa: E731
    hu = sample_slices(ramp, positions, np.eye(3)[0], np.eye(3)[1], (16, 16))
    folder = tmp_path / "enh"
    folder.mkdir()
    enhanced_ct_dataset(hu, positions, pixel_spacing=(1, 1)).save_as(
        folder / "enhanced.dcm", enforce_file_format=True
    )
    image, record = load_image(folder)
    assert image.GetSize() == (16, 16, 12)
    np.testing.assert_allclose(image.GetOrigin(), (-8, -8, 10))
    np.testing.assert_allclose(image.GetSpacing(), (1, 1, 1))
    np.testing.assert_allclose(
        sitk.GetArrayFromImage(image)[:, 5, 5], 10.0 * np.arange(10, 22), atol=1e-3
    )
    assert record.format == "DICOM Enhanced CT"
    # The file itself is accepted too; an even Enhanced CT keeps its true spacing.
    even = [(-8.0, -8.0, 10.0 + 2.5 * k) for k in range(5)]
    enhanced_ct_dataset(hu[:5], even, pixel_spacing=(1, 1)).save_as(
        tmp_path / "even.dcm", enforce_file_format=True
    )
    image, record = load_image(tmp_path / "even.dcm")
    np.testing.assert_allclose(image.GetSpacing(), (1, 1, 2.5))
    assert record.notes == []


def test_several_series_listed_and_chosen(tmp_path):
    positions = [(0.0, 0.0, float(z)) for z in range(5)]
    a = volume_slices(
        np.zeros((5, 8, 8)), positions, series_uid="1.2.3.4.1", description="Arterial phase"
    )
    b = volume_slices(
        np.full((5, 8, 8), 7.0), positions[:4], series_uid="1.2.3.4.2", description="Portal venous"
    )
    write_slices(tmp_path / "ct", a, prefix="a")
    write_slices(tmp_path / "ct", b, prefix="b")
    with pytest.raises(
        InputError,
        match=r"2 DICOM series \(1\.2\.3\.4\.1 'Arterial phase' CT 5 slices; "
        r"1\.2\.3\.4\.2 'Portal venous' CT 4 slices\); choose one with --series",
    ):
        load_image(tmp_path / "ct")
    image, record = load_image(tmp_path / "ct", series="venous")
    assert image.GetSize() == (8, 8, 4) and record.series_description == "Portal venous"
    image, record = load_image(tmp_path / "ct", series="1.2.3.4.1")
    assert image.GetSize() == (8, 8, 5) and record.series_instance_uid == "1.2.3.4.1"
    with pytest.raises(InputError, match="no series matches --series 'delayed'"):
        load_image(tmp_path / "ct", series="delayed")


def test_truncated_dicom_slice_refused(tmp_path):
    positions = [(0.0, 0.0, float(z)) for z in range(3)]
    paths = write_slices(tmp_path / "ct", volume_slices(np.zeros((3, 16, 16)), positions))
    paths[1].write_bytes(paths[1].read_bytes()[:-100])
    with pytest.raises(InputError, match=r"ct001\.dcm: pixel data is truncated or corrupt"):
        load_image(tmp_path / "ct")


def _anonymised(datasets, number: int):
    """Datasets of an anonymised export: no Series Instance UID, their own number."""
    for ds in datasets:
        del ds.SeriesInstanceUID
        ds.SeriesNumber = number
    return datasets


def test_series_without_uid_are_not_merged(tmp_path):
    # Two series of one study without Series Instance UID (anonymised export): the
    # second's slices lie 1 mm above the first's, 200 HU brighter. Merged, they would
    # read as one 10-slice stack at 1 mm.
    positions = [(0.0, 0.0, 2.0 * k) for k in range(5)]
    a = volume_slices(np.zeros((5, 8, 8)), positions, description="Arterial phase")
    shifted = [(x, y, z + 1.0) for x, y, z in positions]
    b = volume_slices(np.full((5, 8, 8), 200.0), shifted, description="Portal venous")
    for ds in b:
        ds.SOPInstanceUID = ds.SOPInstanceUID + ".9"
    write_slices(tmp_path / "ct", _anonymised(a, 1), prefix="a")
    write_slices(tmp_path / "ct", _anonymised(b, 2), prefix="b")
    with pytest.raises(
        InputError,
        match=r"2 DICOM series \(no-UID-1 \(no Series Instance UID, series number 1\) "
        r"'Arterial phase' CT 5 slices; no-UID-2 \(no Series Instance UID, series number 2\) "
        r"'Portal venous' CT 5 slices\); choose one with --series",
    ):
        load_image(tmp_path / "ct")
    for wanted in ("no-UID-2", "venous"):
        image, record = load_image(tmp_path / "ct", series=wanted)
        assert image.GetSize() == (8, 8, 5) and image.GetSpacing()[2] == pytest.approx(2.0)
        assert image.GetOrigin()[2] == pytest.approx(1.0)
        assert np.all(sitk.GetArrayFromImage(image) == 200)
        assert record.series_instance_uid is None
        assert record.series_description == "Portal venous"


def test_one_series_without_uid_is_read(tmp_path):
    positions = [(0.0, 0.0, 2.0 * k) for k in range(4)]
    write_slices(tmp_path / "ct", _anonymised(volume_slices(np.zeros((4, 8, 8)), positions), 3))
    image, record = load_image(tmp_path / "ct")
    assert image.GetSize() == (8, 8, 4) and record.series_instance_uid is None
