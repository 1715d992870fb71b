"""Liver from one click on the two real scans against their liver labels."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from hepanav.core.errors import InputError
from hepanav.imaging import binarize, read_image, resample_mask_like
from hepanav.segmentation.liver import segment_liver
from hepanav.segmentation.metrics import dice
from hepanav.segmentation.seeds import make_seeds


def _deepest_voxel(mask: sitk.Image) -> tuple[int, int, int]:
    """The liver voxel farthest from the liver's edge (and the scan's): one click."""
    a = np.pad(sitk.GetArrayFromImage(mask) > 0, 1)
    d = ndimage.distance_transform_edt(a, sampling=mask.GetSpacing()[::-1])[1:-1, 1:-1, 1:-1]
    k, j, i = np.unravel_index(int(np.argmax(d)), d.shape)
    return int(i), int(j), int(k)


# Measured Dice (docs/segmentation.md): 0.914 (3 mm, unenhanced) and 0.951 (DICOM,
# portal venous); the target is 0.90 on both (issue 12).
@pytest.mark.parametrize(
    ("ct_rel", "liver_rel", "label", "min_dice"),
    [
        ("ct-abdomen-3mm/ct.nii.gz", "ct-abdomen-3mm/liver.nii.gz", None, 0.90),
        ("ct-abdomen-dicom/series", "ct-abdomen-dicom/labels.nii.gz", 5, 0.94),
    ],
)
def test_liver_one_click_real_scans(shared_data, ct_rel, liver_rel, label, min_dice):
    ct = read_image(shared_data / ct_rel)
    truth = resample_mask_like(binarize(read_image(shared_data / liver_rel), label), ct)
    seg = segment_liver(ct, make_seeds(ct, None, [_deepest_voxel(truth)]))
    assert dice(seg.mask, truth) >= min_dice


def _analytic_abdomen(noise_hu: float = 10.0, seed: int = 0):
    """Body (fat, 8 mm muscle wall, visceral fat), a portal-venous liver (100 HU) with two
    enhancing vessels inside (170 HU, radius 5 mm), touching the muscle wall, and a spleen
    of similar attenuation (105 HU) joined to it by a 4 mm bridge. Returns (CT, liver truth
    with its vessels, liver centre LPS mm, vessel voxels inside the liver (bool z, y, x))."""
    spacing, size = (1.5, 1.5, 2.5), (140, 120, 70)
    origin = tuple(-0.5 * (n - 1) * s for n, s in zip(size, spacing, strict=True))
    axes = zip(origin[::-1], spacing[::-1], size[::-1], strict=True)
    z, y, x = np.meshgrid(*[o + s * np.arange(n) for o, s, n in axes], indexing="ij")
    r_body = np.sqrt((x / 100.0) ** 2 + (y / 85.0) ** 2)
    hu = np.full(x.shape, -1000.0)
    hu[r_body <= 1.0] = -100.0  # subcutaneous fat
    hu[r_body <= 1.0 - 10.0 / 90.0] = 55.0  # muscle wall, about 8-10 mm
    hu[r_body <= 1.0 - 19.0 / 90.0] = -90.0  # visceral fat
    centre = np.array([-35.0, 0.0, 0.0])
    liver = ((x - centre[0]) / 45.0) ** 2 + (y / 50.0) ** 2 + (z / 60.0) ** 2 <= 1.0
    liver &= r_body <= 1.0 - 10.0 / 90.0  # the liver lies against the muscle wall
    spleen = ((x - 50.0) / 22.0) ** 2 + ((y - 10.0) / 28.0) ** 2 + (z / 35.0) ** 2 <= 1.0
    bridge = ((y - 5.0) ** 2 + z**2 <= 2.0**2) & (x > -5.0) & (x < 35.0)
    vessels = ((x + 55.0) ** 2 + (y + 15.0) ** 2 <= 25.0) | (
        (x + 25.0) ** 2 + (y - 20.0) ** 2 <= 25.0
    )
    hu[spleen | bridge] = 105.0
    hu[liver] = 100.0
    hu[liver & vessels] = 170.0
    rng = np.random.default_rng(seed)
    hu += ndimage.gaussian_filter(rng.normal(0.0, noise_hu * 1.8, hu.shape), 0.6)
    ct = sitk.GetImageFromArray(hu.astype(np.int16))
    truth = sitk.GetImageFromArray(liver.astype(np.uint8))
    for img in (ct, truth):
        img.SetSpacing(spacing)
        img.SetOrigin(origin)
    return ct, truth, centre, liver & vessels


def test_liver_one_click_analytic_phantom():
    """Vessels inside are filled, the bridge to the spleen and the muscle wall stay out."""
    ct, truth, centre, vessels = _analytic_abdomen()
    seg = segment_liver(ct, make_seeds(ct, [tuple(centre + [0.0, -20.0, 0.0])]))
    mask = sitk.GetArrayFromImage(seg.mask) > 0
    t = sitk.GetArrayFromImage(truth) > 0
    # Measured: Dice 0.951, 94.5 % of the liver (its vessels included) found; what is
    # lost is one voxel layer of the capsule (the 2 mm working grid).
    assert dice(seg.mask, truth) >= 0.94
    # The spleen (x > 30 mm) is not liver; the vessel voxels are.
    x_mm = np.asarray(seg.mask.GetOrigin()[0]) + 1.5 * np.arange(mask.shape[2])
    assert not mask[:, :, x_mm > 30.0].any()
    assert mask[t].mean() >= 0.93
    # The enhancing vessels inside are filled in (measured 95 % overall); only where a
    # vessel reaches the capsule (the liver's top and bottom 15 mm, where it runs out of
    # the liver like a hilar vessel) is it left out.
    assert mask[vessels].mean() >= 0.93
    assert mask[20:50][vessels[20:50]].all()


def _liver_phantom(dark: bool = False, spleen: bool = False, noise_hu: float = 8.0):
    """Body (fat, muscle wall, visceral fat; midline x = 0, LPS), a portal-venous liver
    (100 HU) right of the midline whose left lobe crosses it (centre x = -30 mm, semi-axes
    60 x 50 x 60 mm: from the right muscle wall to x = +30 mm).

    ``dark``: its posterior third (y > 5 mm) is darker, down to 65 HU, through a 15 mm
    gradient (as the darker part of the portal-venous scan's liver, 55-75 HU beside
    93-100 HU; it is liver in the truth). ``spleen``: a 105 HU spleen on the left
    (centre x = +62 mm, about 230 ml), not touching the liver.

    Returns (CT, liver truth, spleen truth or None)."""
    spacing, size = (2.0, 2.0, 2.5), (110, 95, 48)
    origin = tuple(-0.5 * (n - 1) * s for n, s in zip(size, spacing, strict=True))
    axes = zip(origin[::-1], spacing[::-1], size[::-1], strict=True)
    z, y, x = np.meshgrid(*[o + s * np.arange(n) for o, s, n in axes], indexing="ij")
    r_body = np.sqrt((x / 105.0) ** 2 + (y / 90.0) ** 2)
    hu = np.full(x.shape, -1000.0)
    hu[r_body <= 1.0] = -100.0
    hu[r_body <= 1.0 - 10.0 / 90.0] = 55.0
    hu[r_body <= 1.0 - 19.0 / 90.0] = -90.0
    liver = ((x + 30.0) / 60.0) ** 2 + (y / 50.0) ** 2 + (z / 55.0) ** 2 <= 1.0
    liver &= r_body <= 1.0 - 10.0 / 90.0
    value = np.full(x.shape, 100.0)
    if dark:
        value -= 35.0 * np.clip((y - 5.0) / 15.0, 0.0, 1.0)
    spleen_mask = None
    if spleen:
        spleen_mask = ((x - 62.0) / 30.0) ** 2 + ((y - 15.0) / 40.0) ** 2 + (z / 45.0) ** 2 <= 1.0
        spleen_mask &= ~liver
        hu[spleen_mask] = 105.0
    hu[liver] = value[liver]
    rng = np.random.default_rng(3)
    hu += ndimage.gaussian_filter(rng.normal(0.0, noise_hu * 1.8, hu.shape), 0.6)
    ct = sitk.GetImageFromArray(hu.astype(np.int16))
    truth = sitk.GetImageFromArray(liver.astype(np.uint8))
    for img in (ct, truth):
        img.SetSpacing(spacing)
        img.SetOrigin(origin)
    return ct, truth, spleen_mask


def test_liver_click_in_a_darker_part_gives_the_whole_liver():
    """Issue 12: a click in the liver's darker part (here its posterior third, 65 HU
    against 100 HU) estimated the parenchyma from a 15 mm ball (about 70 HU) and kept
    only that part (Dice about 0.5, accepted). The HU re-estimated from the grown
    region, moved up where the window cut it, gives the whole liver."""
    ct, truth, _ = _liver_phantom(dark=True)
    seg = segment_liver(ct, make_seeds(ct, [(-40.0, 32.0, 0.0)]))
    assert sitk.GetArrayFromImage(truth)[24, 63, 35]  # the click is in the liver
    assert dice(seg.mask, truth) >= 0.92
    assert seg.parenchyma_hu >= 90.0  # the liver's peak, not the darker part's


def test_liver_click_in_the_left_lobe_is_accepted():
    """A click left of the midline (x = +12 mm, 18 mm deep) grows the whole liver, whose
    centre is right of the midline: accepted."""
    ct, truth, _ = _liver_phantom(spleen=True)
    seg = segment_liver(ct, make_seeds(ct, [(12.0, 0.0, 0.0)]))
    assert dice(seg.mask, truth) >= 0.92


def test_spleen_click_refused_by_side():
    """A click in the spleen (same HU as the liver, about 230 ml, left of the midline) is
    refused by the side of the midline, not accepted as a liver."""
    ct, _, spleen = _liver_phantom(spleen=True)
    assert spleen is not None and spleen[24, 55, 86]
    seeds = make_seeds(ct, [(62.0, 15.0, 0.0)])
    with pytest.raises(InputError, match="left of the body's midline"):
        segment_liver(ct, seeds)


# Real scans: the clicks of issue 12's tester (skip without the data).
@pytest.mark.parametrize(
    ("point", "min_dice"),
    [
        # In the darker posterior part on the last slice: was 241 ml, Dice 0.49, "68 HU".
        ((-90.3, -127.0, -766.5), 0.94),
        # Random deep click, before Dice 0.735 (bench.eval_liver_clicks).
        ((-69.82, -129.89, -794.5), 0.94),
        # Left lobe, left of the midline: accepted (measured 0.95).
        ((1.46, -231.46, -768.5), 0.94),
    ],
)
def test_liver_tester_clicks_dicom(shared_data, point, min_dice):
    ct = read_image(shared_data / "ct-abdomen-dicom/series")
    labels = read_image(shared_data / "ct-abdomen-dicom/labels.nii.gz")
    truth = resample_mask_like(binarize(labels, 5), ct)
    seeds = make_seeds(ct, [point])
    assert (sitk.GetArrayViewFromImage(truth) > 0)[seeds[0].index[::-1]]
    assert dice(segment_liver(ct, seeds).mask, truth) >= min_dice


def test_spleen_click_refused_dicom(shared_data):
    """Was accepted: 220 ml, 88 % spleen."""
    ct = read_image(shared_data / "ct-abdomen-dicom/series")
    spleen = resample_mask_like(
        binarize(read_image(shared_data / "ct-abdomen-dicom/labels.nii.gz"), 1), ct
    )
    seeds = make_seeds(ct, [(83.5, -98.6, -790.5)])
    assert (sitk.GetArrayViewFromImage(spleen) > 0)[seeds[0].index[::-1]]
    with pytest.raises(InputError, match="left of the body's midline"):
        segment_liver(ct, seeds)


def test_liver_worst_random_click_3mm(shared_data):
    """Random deep click on the unenhanced 3 mm scan: before Dice 0.742 (39 HU)."""
    ct = read_image(shared_data / "ct-abdomen-3mm/ct.nii.gz")
    truth = resample_mask_like(
        binarize(read_image(shared_data / "ct-abdomen-3mm/liver.nii.gz")), ct
    )
    seg = segment_liver(ct, make_seeds(ct, [(-104.04, -107.32, 385.3)]))
    assert dice(seg.mask, truth) >= 0.90
