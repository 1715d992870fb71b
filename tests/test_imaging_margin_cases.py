"""The input kinds of issue 9 measured end to end: MAM within 0.5 mm of the analytic 7 mm.

Tumour: sphere r = 8 mm; ablation zone: concentric sphere r = 15 mm, so the true
minimal ablative margin is 7.0 mm everywhere. Each case writes the two masks
through one of the readers' awkward input kinds and runs the margin pipeline
(masks in one space), as ``hepanav margin`` does.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from dicom_helpers import volume_slices, write_seg, write_slicer_seg, write_slices
from hepanav.core import InputError
from hepanav.imaging import load_mask, load_mask_occupancy
from hepanav.imaging.geometry import voxel_to_lps
from hepanav.margin.measure import measure_margin
from hepanav.margin.pipeline import MarginInputs, read_inputs, run_margin
from test_imaging_dicom import sample_slices, tilted_frame
from test_imaging_inputs import sheared_affine_lps, write_sheared_nifti

CENTER = np.array([1.0, -2.0, 4.0])
R_TUMOR, R_ZONE, TRUE_MAM = 8.0, 15.0, 7.0


def ball(radius):
    return lambda lps: (np.linalg.norm(lps - CENTER, axis=-1) <= radius).astype(float)


def _run(tmp_path, **kw):
    run = run_margin(MarginInputs(**kw), tmp_path / "out", report=False)
    return run.result


def _analytic_on(grid: sitk.Image, radius: float) -> sitk.Image:
    """The exact ball sampled at the voxel centres of ``grid`` (the best any reader can give)."""
    k, j, i = np.meshgrid(*(np.arange(n) for n in grid.GetSize()[::-1]), indexing="ij")
    lps = voxel_to_lps(grid, np.stack([i, j, k], axis=-1).reshape(-1, 3)).reshape(*k.shape, 3)
    mask = sitk.GetImageFromArray(ball(radius)(lps).astype(np.uint8))
    mask.CopyInformation(grid)
    return mask


def assert_mam(tmp_path, **kw):
    """MAM within 0.5 mm of 7 mm (issue 9's bound), and within 0.25 mm of what the same
    method gives on the exact voxelisation of the analytic shapes on the regularised grid:
    the reader adds no error of its own.

    Measured (issue 9, docs/margin.md "Smoothest separating field"): the readers' masks
    read MEASURED_CASES; the exact voxelisation of these balls on the same grids
    MEASURED_EXACT. Before the smoothest separating field (Gaussian field alone): 6.40 /
    6.42 / 6.39 mm, exact voxelisation 6.50 / 6.53 / 6.55 mm (the minimum picked the
    half-voxel terraces of both surfaces at their poles).
    """
    run = run_margin(MarginInputs(**kw), tmp_path / "out", report=False)
    mam = run.result.min_margin_mm
    baseline = measure_margin(
        _analytic_on(run.images["tumor"], R_TUMOR), _analytic_on(run.images["ablation"], R_ZONE)
    ).figures()["min_margin_mm"]
    assert abs(mam - baseline) <= 0.25, (mam, baseline)
    assert abs(mam - TRUE_MAM) <= 0.5, (mam, baseline)
    return run.result


def assert_fractions_help(tmp_path, **kw):
    """The kept fractions bring the MAM at least 0.1 mm closer to 7 mm than the same
    masks thresholded (measured: 0.22 mm at 5 degrees tilt, 0.15 mm sheared)."""
    occupancies = {}
    images = read_inputs(MarginInputs(**kw), [], occupancies)
    assert set(occupancies) == {"tumor", "ablation"}
    for key, fraction in occupancies.items():
        values = sitk.GetArrayViewFromImage(fraction)
        mask = sitk.GetArrayViewFromImage(images[key])
        assert 0.0 <= values.min() and values.max() <= 1.0
        assert np.any((values > 0.05) & (values < 0.95))  # fractions, not 0/1
        np.testing.assert_array_equal(mask != 0, values >= 0.5)
    kept = measure_margin(images["tumor"], images["ablation"], occupancies=occupancies)
    thresholded = measure_margin(images["tumor"], images["ablation"])
    gain = abs(thresholded.min_margin_mm - TRUE_MAM) - abs(kept.min_margin_mm - TRUE_MAM)
    assert gain >= 0.1, (kept.min_margin_mm, thresholded.min_margin_mm)


@pytest.mark.parametrize("tilt", [5.0, 20.0])
def test_tilted_dicom_series_masks(tmp_path, tilt):
    row, col, _ = tilted_frame(tilt)
    # The table moves along z; a tilted slice reaches the sphere's bottom from far below it.
    positions = [
        (CENTER[0] - 27.0, CENTER[1] - 30.0, CENTER[2] + z) for z in np.arange(-34.0, 22.1, 1.0)
    ]
    for name, radius in (("tumor", R_TUMOR), ("zone", R_ZONE)):
        # 0.8 mm pixels, 1 mm table steps: a usual liver CT reconstruction.
        values = sample_slices(ball(radius), positions, row, col, (80, 70), pixel=0.8)
        datasets = volume_slices(
            values,
            positions,
            orientation=(*row, *col),
            pixel_spacing=(0.8, 0.8),
            intercept=0.0,
            series_uid=f"1.2.826.0.1.3680043.8.498.40{int(tilt)}{len(name)}",
        )
        write_slices(tmp_path / name, datasets)
    result = assert_mam(tmp_path, tumor=tmp_path / "tumor", ablation=tmp_path / "zone")
    notes = [n for r in result.inputs for n in r.notes]
    assert any(f"gantry tilt of {tilt:.1f} degrees" in n for n in notes)
    assert sum("partial-volume fractions" in n for n in notes) == 2
    if tilt == 5.0:
        assert_fractions_help(tmp_path, tumor=tmp_path / "tumor", ablation=tmp_path / "zone")


def test_sheared_nifti_masks(tmp_path):
    matrix, origin = sheared_affine_lps(
        20.0, pixel=1.0, step=1.0, origin=CENTER + (-27.0, -30.0, -34.0)
    )
    for name, radius in (("tumor", R_TUMOR), ("zone", R_ZONE)):
        write_sheared_nifti(
            tmp_path / f"{name}.nii.gz", ball(radius), (56, 64, 57), matrix, origin, dtype=np.uint8
        )
    result = assert_mam(
        tmp_path, tumor=tmp_path / "tumor.nii.gz", ablation=tmp_path / "zone.nii.gz"
    )
    assert any("sheared grid" in n for r in result.inputs for n in r.notes)
    assert all(any("partial-volume fractions" in n for n in r.notes) for r in result.inputs)
    assert_fractions_help(
        tmp_path, tumor=tmp_path / "tumor.nii.gz", ablation=tmp_path / "zone.nii.gz"
    )


def _grid_values(spacing=(1.0, 1.0, 1.0), size=(40, 40, 40)):
    origin = CENTER - (np.asarray(size) - 1) / 2 * np.asarray(spacing)
    k, j, i = np.meshgrid(*(np.arange(n) for n in size[::-1]), indexing="ij")
    lps = np.stack([i, j, k], axis=-1) * np.asarray(spacing) + origin
    return lps, origin


def test_label_map_given_as_both_masks(tmp_path):
    lps, origin = _grid_values()
    labels = np.where(ball(R_TUMOR)(lps) > 0, 1, np.where(ball(R_ZONE)(lps) > 0, 2, 0)).astype(
        np.uint8
    )
    image = sitk.GetImageFromArray(labels)
    image.SetOrigin(origin.tolist())
    path = tmp_path / "labels.nii.gz"
    sitk.WriteImage(image, str(path))
    with pytest.raises(
        InputError, match=r"label map with labels 1, 2; choose with --ablation-label"
    ):
        _run(tmp_path, tumor=path, ablation=path)
    result = _run(tmp_path, tumor=path, ablation=path, tumor_label="1", ablation_label="1,2")
    assert abs(result.min_margin_mm - TRUE_MAM) <= 0.5, result.min_margin_mm
    assert [r.segment for r in result.inputs] == ["1, 2", "1"]
    # Names from a labels.json sidecar work alike.
    (tmp_path / "labels.json").write_text(json.dumps({"1": "tumor", "2": "zone"}))
    named = _run(
        tmp_path, tumor=path, ablation=path, tumor_label="tumor", ablation_label="tumor,zone"
    )
    assert named.min_margin_mm == pytest.approx(result.min_margin_mm)


def test_two_segment_seg_and_two_layer_seg_nrrd(tmp_path):
    spacing = (1.0, 1.0, 1.0)
    lps, origin = _grid_values(spacing, size=(40, 40, 40))
    tumor, zone = ball(R_TUMOR)(lps), ball(R_ZONE)(lps)
    positions = [tuple(lps[k, 0, 0]) for k in range(lps.shape[0])]
    cts = volume_slices(np.zeros(tumor.shape), positions, pixel_spacing=(1.0, 1.0))
    write_slices(tmp_path / "ct", cts)
    seg = write_seg(tmp_path / "seg.dcm", cts, {"Tumor": tumor, "Ablation zone": zone})
    with pytest.raises(InputError, match=r"2 segments \(1 'Tumor', 2 'Ablation zone'\)"):
        _run(tmp_path, tumor=seg, ablation=seg)
    result = _run(tmp_path, tumor=seg, ablation=seg, tumor_label="tumor", ablation_label="2")
    assert abs(result.min_margin_mm - TRUE_MAM) <= 0.5, result.min_margin_mm
    assert result.inputs[0].format == "DICOM SEG"
    nrrd_path = write_slicer_seg(
        tmp_path / "s.seg.nrrd",
        [tumor.transpose(2, 1, 0), zone.transpose(2, 1, 0)],
        [("Tumor", 0, 1), ("Ablation zone", 1, 1)],
        spacing=spacing,
        origin_lps=tuple(origin),
    )
    result = _run(
        tmp_path,
        tumor=nrrd_path,
        ablation=nrrd_path,
        tumor_label="Tumor",
        ablation_label="ablation zone",
    )
    assert abs(result.min_margin_mm - TRUE_MAM) <= 0.5, result.min_margin_mm


def test_float_fraction_masks_thresholded(tmp_path):
    """Partial-volume fractions (linear resampling) counted as >= 0.5, not every non-zero voxel."""
    lps, origin = _grid_values((1.0, 1.0, 1.0))
    sub = np.linspace(-0.375, 0.375, 4)
    offsets = np.stack(np.meshgrid(sub, sub, sub, indexing="ij"), axis=-1).reshape(-1, 3)
    for name, radius in (("tumor", R_TUMOR), ("zone", R_ZONE)):
        fraction = np.mean([ball(radius)(lps + o) for o in offsets], axis=0).astype(np.float32)
        image = sitk.GetImageFromArray(fraction)
        image.SetOrigin(origin.tolist())
        sitk.WriteImage(image, str(tmp_path / f"{name}.nii.gz"))
    result = _run(tmp_path, tumor=tmp_path / "tumor.nii.gz", ablation=tmp_path / "zone.nii.gz")
    assert abs(result.min_margin_mm - TRUE_MAM) <= 0.5, result.min_margin_mm
    true_ml = 4 / 3 * np.pi * R_TUMOR**3 / 1000
    assert result.tumor_volume_ml == pytest.approx(true_ml, rel=0.03)
    assert any("thresholded at 0.5" in n for r in result.inputs for n in r.notes)


def test_mask_resampled_onto_its_image_keeps_its_fraction(tmp_path):
    """A mask on another grid than its CT: the fraction comes with the mask (iso-0.5 of the
    linear resampling, the voxels it cuts), said in the notes; ``load_mask`` drops it."""
    lps, origin = _grid_values((1.0, 1.0, 1.0), size=(30, 30, 30))
    image = sitk.GetImageFromArray(ball(R_TUMOR)(lps).astype(np.uint8))
    image.SetOrigin(origin.tolist())
    path = tmp_path / "tumor.nii.gz"
    sitk.WriteImage(image, str(path))
    ct = sitk.Image([40, 40, 36], sitk.sitkInt16)
    ct.SetSpacing((0.7, 0.7, 0.8))
    ct.SetOrigin((CENTER - (13.65, 13.3, 14.1)).tolist())
    mask, record, fraction = load_mask_occupancy(path, "tumor", reference=ct)
    assert fraction.GetSize() == ct.GetSize() and fraction.GetSpacing() == ct.GetSpacing()
    values = sitk.GetArrayViewFromImage(fraction)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(mask) != 0, values >= 0.5)
    assert np.any((values > 0.05) & (values < 0.95))
    assert any("partial-volume fractions" in n for n in record.notes)
    plain, plain_record = load_mask(path, "tumor", reference=ct)
    np.testing.assert_array_equal(
        sitk.GetArrayViewFromImage(plain), sitk.GetArrayViewFromImage(mask)
    )
    assert not any("partial-volume fractions" in n for n in plain_record.notes)
    # Taken voxel for voxel: no fraction.
    assert load_mask_occupancy(path, "tumor")[2] is None
