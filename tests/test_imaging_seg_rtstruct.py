"""Masks from DICOM SEG, RTSTRUCT and 3D Slicer .seg.nrrd: right voxels or one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from dicom_helpers import (
    circle_contour,
    volume_slices,
    write_rtstruct,
    write_seg,
    write_slicer_seg,
    write_slices,
)
from hepanav.core import InputError
from hepanav.imaging import load_image, load_mask

NZ, NY, NX = 10, 24, 28
SPACING = (0.8, 0.8)  # between rows, columns
DZ = 2.0
ORIGIN = (-10.0, -12.0, 40.0)


def _ct(tmp_path, name="ct", series_uid="1.2.826.0.1.3680043.8.498.2001"):
    hu = np.full((NZ, NY, NX), 40.0)
    positions = [(ORIGIN[0], ORIGIN[1], ORIGIN[2] + k * DZ) for k in range(NZ)]
    datasets = volume_slices(hu, positions, pixel_spacing=SPACING, series_uid=series_uid)
    write_slices(tmp_path / name, datasets)
    return datasets


def _lps_grid():
    k, j, i = np.meshgrid(np.arange(NZ), np.arange(NY), np.arange(NX), indexing="ij")
    return ORIGIN[0] + i * SPACING[1], ORIGIN[1] + j * SPACING[0], ORIGIN[2] + k * DZ


def _two_segments():
    x, y, z = _lps_grid()
    r2 = (x - 1.0) ** 2 + (y + 2.0) ** 2 + (z - 49.0) ** 2
    tumor = (r2 <= 4.0**2).astype(np.uint8)
    zone = (r2 <= 7.0**2).astype(np.uint8)
    return tumor, zone


class TestSeg:
    def test_two_segments_refused_without_choice_and_read_by_name_or_number(self, tmp_path):
        cts = _ct(tmp_path)
        tumor, zone = _two_segments()
        path = write_seg(tmp_path / "seg.dcm", cts, {"tumor": tumor, "zone": zone})
        ct, ct_record = load_image(tmp_path / "ct")
        with pytest.raises(InputError, match=r"2 segments \(1 'tumor', 2 'zone'\)"):
            load_mask(path, reference=ct, reference_record=ct_record)
        by_name, record = load_mask(path, "ablation", reference=ct, labels="zone")
        by_number, _ = load_mask(path, reference=ct, labels="1")
        np.testing.assert_array_equal(sitk.GetArrayFromImage(by_name), zone)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(by_number), tumor)
        assert record.format == "DICOM SEG" and record.segment == "2 'zone'"
        assert record.referenced_series_uid == ct_record.series_instance_uid
        with pytest.raises(
            InputError, match=r"no segment 'liver'; segments present: 1 'tumor', 2 'zone'"
        ):
            load_mask(path, labels="liver")

    def test_sparse_frames_placed_by_position(self, tmp_path):
        """Only slices 3..6 hold the segment: the SEG stores 4 frames, placed on the CT slices."""
        cts = _ct(tmp_path)
        tumor, _ = _two_segments()
        assert tumor[:2].sum() == 0 and tumor[-2:].sum() == 0
        path = write_seg(tmp_path / "seg.dcm", cts, {"tumor": tumor})
        import pydicom

        assert int(pydicom.dcmread(path).NumberOfFrames) == int(
            np.count_nonzero(tumor.any(axis=(1, 2)))
        )
        ct = load_image(tmp_path / "ct")[0]
        mask, _ = load_mask(path, reference=ct)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(mask), tumor)
        # Without a reference, the SEG's own (cropped) grid sits at the same LPS place.
        own, _ = load_mask(path)
        centre = np.mean(
            [
                own.TransformIndexToPhysicalPoint(tuple(int(v) for v in p[::-1]))
                for p in np.argwhere(sitk.GetArrayFromImage(own))
            ],
            axis=0,
        )
        np.testing.assert_allclose(centre, (1.0, -2.0, 49.0), atol=0.5)

    def test_seg_of_another_series_refused(self, tmp_path):
        cts = _ct(tmp_path)
        _ct(tmp_path, "other", series_uid="1.2.826.0.1.3680043.8.498.2002")
        tumor, _ = _two_segments()
        path = write_seg(tmp_path / "seg.dcm", cts, {"tumor": tumor})
        other, other_record = load_image(tmp_path / "other")
        with pytest.raises(InputError, match="was made on series 1.2.826.0.1.3680043.8.498.2001"):
            load_mask(path, reference=other, reference_record=other_record)

    def test_fractional_seg_thresholded_with_note(self, tmp_path):
        cts = _ct(tmp_path)
        tumor, zone = _two_segments()
        fraction = 0.3 * zone + 0.7 * tumor  # 1.0 in the tumour, 0.3 in the rest of the zone
        path = write_seg(tmp_path / "seg.dcm", cts, {"p": fraction}, fractional=True)
        ct = load_image(tmp_path / "ct")[0]
        mask, record = load_mask(path, reference=ct)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(mask), tumor)
        assert any("thresholded at 0.5" in n for n in record.notes)
        low, _ = load_mask(path, reference=ct, threshold=0.25)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(low), zone)


def _ring_rois(z_values, radius=5.0, hole=None):
    contours = []
    for z in z_values:
        contours.append(circle_contour((1.0, -2.0, z), radius, n=96))
        if hole:
            contours.append(circle_contour((1.0, -2.0, z), hole, n=96)[::-1])
    return contours


class TestRtstruct:
    def test_contours_rasterised_with_holes_and_several_per_slice(self, tmp_path):
        cts = _ct(tmp_path)
        zs = [ORIGIN[2] + k * DZ for k in range(3, 7)]
        second = [circle_contour((-6.0, 4.0, z), 2.0, n=48) for z in zs]
        path = write_rtstruct(
            tmp_path / "rs.dcm",
            cts,
            {"Tumor": _ring_rois(zs, 5.0, hole=2.5) + second, "Liver": _ring_rois(zs, 9.0)},
        )
        ct, ct_record = load_image(tmp_path / "ct")
        with pytest.raises(InputError, match=r"2 ROIs \(1 'Tumor', 2 'Liver'\)"):
            load_mask(path, reference=ct, reference_record=ct_record)
        mask, record = load_mask(
            path, "tumor", reference=ct, reference_record=ct_record, labels="tumor"
        )
        got = sitk.GetArrayFromImage(mask).astype(bool)
        x, y, z = _lps_grid()
        r = np.hypot(x - 1.0, y + 2.0)
        on = (z >= zs[0] - 0.1) & (z <= zs[-1] + 0.1)
        # Pixel centres clearly inside/outside (0.15 mm from a polygon edge) must agree.
        ring = on & (r < 5.0 - 0.15) & (r > 2.5 + 0.15)
        small = on & (np.hypot(x + 6.0, y - 4.0) < 2.0 - 0.15)
        assert got[ring].all() and got[small].all()
        outside = ~on | ((r > 5.0 + 0.15) | (r < 2.5 - 0.15)) & (
            np.hypot(x + 6.0, y - 4.0) > 2.0 + 0.15
        )
        assert not got[outside].any()
        assert record.format == "DICOM RTSTRUCT" and "'Tumor'" in record.segment

    def test_missing_roi_lists_present(self, tmp_path):
        cts = _ct(tmp_path)
        path = write_rtstruct(tmp_path / "rs.dcm", cts, {"GTV": _ring_rois([48.0])})
        ct = load_image(tmp_path / "ct")[0]
        with pytest.raises(InputError, match=r"no ROI 'zone'; ROIs present: 1 'GTV'"):
            load_mask(path, reference=ct, labels="zone")

    def test_open_contour_refused(self, tmp_path):
        cts = _ct(tmp_path)
        path = write_rtstruct(
            tmp_path / "rs.dcm", cts, {"GTV": _ring_rois([48.0])}, geometric_type="OPEN_PLANAR"
        )
        with pytest.raises(InputError, match="OPEN_PLANAR"):
            load_mask(path, reference=load_image(tmp_path / "ct")[0])

    def test_self_intersecting_contour_refused(self, tmp_path):
        cts = _ct(tmp_path)
        bowtie = np.array(
            [[-4.0, -4.0, 48.0], [4.0, 4.0, 48.0], [4.0, -4.0, 48.0], [-4.0, 4.0, 48.0]]
        )
        path = write_rtstruct(tmp_path / "rs.dcm", cts, {"GTV": [bowtie]})
        with pytest.raises(InputError, match="self-intersecting"):
            load_mask(path, reference=load_image(tmp_path / "ct")[0])

    def test_other_frame_of_reference_refused(self, tmp_path):
        cts = _ct(tmp_path)
        path = write_rtstruct(
            tmp_path / "rs.dcm",
            cts,
            {"GTV": _ring_rois([48.0])},
            frame_of_reference_uid="1.2.3.999",
        )
        ct, ct_record = load_image(tmp_path / "ct")
        with pytest.raises(InputError, match="frame of reference 1.2.3.999"):
            load_mask(path, reference=ct, reference_record=ct_record)

    def test_rtstruct_needs_its_image(self, tmp_path):
        cts = _ct(tmp_path)
        path = write_rtstruct(tmp_path / "rs.dcm", cts, {"GTV": _ring_rois([48.0])})
        with pytest.raises(InputError, match="needs the image it was drawn on"):
            load_mask(path)


class TestSlicerSeg:
    def _layers(self):
        shape = (12, 10, 8)  # x, y, z
        tumor = np.zeros(shape, np.uint8)
        tumor[4:7, 3:6, 2:5] = 1
        zone = np.zeros(shape, np.uint8)
        zone[2:10, 1:9, 1:7] = 1  # overlaps the tumour: a second layer
        return tumor, zone

    @pytest.mark.parametrize("space", ["left-posterior-superior", "right-anterior-superior"])
    def test_two_layers_by_name_or_number(self, tmp_path, space):
        tumor, zone = self._layers()
        path = write_slicer_seg(
            tmp_path / "s.seg.nrrd",
            [tumor, zone],
            [("Tumor", 0, 1), ("Ablation zone", 1, 1)],
            spacing=(0.7, 0.8, 2.5),
            origin_lps=(10.0, -20.0, 30.0),
            space=space,
        )
        with pytest.raises(InputError, match=r"2 segments \(1 'Tumor', 2 'Ablation zone'\)"):
            load_mask(path)
        mask, record = load_mask(path, labels="ablation zone")
        np.testing.assert_array_equal(sitk.GetArrayFromImage(mask), zone.transpose(2, 1, 0))
        np.testing.assert_allclose(mask.GetOrigin(), (10.0, -20.0, 30.0), atol=1e-6)
        np.testing.assert_allclose(mask.GetSpacing(), (0.7, 0.8, 2.5), atol=1e-6)
        np.testing.assert_allclose(mask.GetDirection(), np.eye(3).ravel(), atol=1e-9)
        first, _ = load_mask(path, labels=1)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(first), tumor.transpose(2, 1, 0))
        both, record = load_mask(path, labels="1,2")
        assert int(sitk.GetArrayFromImage(both).sum()) == int((tumor | zone).sum())
        assert record.format == "3D Slicer seg.nrrd"
