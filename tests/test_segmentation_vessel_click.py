"""A click on a vessel (a bright tube running through the scan) must be refused as a
tumour, naming the seed; a lesion of the same HU beside that vessel must still be
segmented. Analytic phantoms on a 3 mm grid (the grid on which the tube once passed:
no voxel centre lay within the 1.6 mm the cut test looked at), ground truth by
construction."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.special import erf

from hepanav.core.errors import InputError
from hepanav.segmentation.seeds import make_seeds
from hepanav.segmentation.tumor import segment_tumor

SPACING_MM = 3.0
SIZE = 50  # voxels per axis: a 150 mm cube
LIVER_HU, BRIGHT_HU, NOISE_HU = 90.0, 180.0, 8.0
TUBE_R_MM, SPHERE_R_MM = 3.0, 8.0
BLUR_MM = 1.5  # the scanner's edge spread (SD of the Gaussian PSF)
# Tube along z through the whole scan at (x, y) = (TUBE_X, 0); the sphere's centre
# 3 mm beyond the tube's surface, at (0, 0, 0).
TUBE_X_MM = SPHERE_R_MM + 3.0 + TUBE_R_MM


def _grid() -> np.ndarray:
    """Voxel-centre LPS coordinates (z, y, x, 3), mm; origin so the cube is centred on 0."""
    c = (np.arange(SIZE) - (SIZE - 1) / 2) * SPACING_MM
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    return np.stack([x, y, z], -1)


def _step(distance_inside_mm: np.ndarray) -> np.ndarray:
    """Blurred step: 1 deep inside, 0.5 at the surface, 0 outside."""
    return 0.5 * (1 + erf(distance_inside_mm / (BLUR_MM * np.sqrt(2))))


def _image(with_sphere: bool) -> tuple[sitk.Image, np.ndarray]:
    p = _grid()
    tube = _step(TUBE_R_MM - np.hypot(p[..., 0] - TUBE_X_MM, p[..., 1]))
    arr = LIVER_HU + (BRIGHT_HU - LIVER_HU) * tube
    truth = np.zeros(arr.shape, bool)
    if with_sphere:
        r = np.linalg.norm(p, axis=-1)
        arr = arr + (BRIGHT_HU - arr) * _step(SPHERE_R_MM - r)
        truth = r < SPHERE_R_MM
    arr = arr + np.random.default_rng(7).normal(0.0, NOISE_HU, arr.shape)
    image = sitk.GetImageFromArray(arr.astype(np.float32))
    image.SetSpacing((SPACING_MM,) * 3)
    image.SetOrigin((-(SIZE - 1) / 2 * SPACING_MM,) * 3)
    return image, truth


def test_click_on_a_vessel_is_refused_as_tubular():
    ct, _ = _image(with_sphere=False)
    seeds = make_seeds(ct, [(TUBE_X_MM, 0.0, 0.0)])
    with pytest.raises(InputError) as err:
        segment_tumor(ct, seeds)
    message = str(err.value)
    assert "looks like a vessel: tubular" in message
    assert "--seed" in message and "\n" not in message


def test_lesion_beside_the_vessel_is_accepted():
    ct, truth = _image(with_sphere=True)
    seg = segment_tumor(ct, make_seeds(ct, [(0.0, 0.0, 0.0)]))
    mask = sitk.GetArrayFromImage(seg.mask) > 0
    dice = 2 * np.count_nonzero(mask & truth) / (mask.sum() + truth.sum())
    assert dice >= 0.9
