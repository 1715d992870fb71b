"""The local stage's low-DOF corrections, ``local_transform="affine"`` / ``"rigid"``.

Known answer by construction: the post scan is a smooth soft-tissue texture (40-60 HU
scale, inside the window: no voxel clamped) resampled through a known transform
``truth`` (post -> pre points). The local stage starts from ``truth`` spoiled by a known
offset ``B`` applied first (``start(x) = truth(B(x))``): rotation about a point near the
zone, translation, and (affine only) an anisotropic scale. The ideal correction is
``B^-1``, an affine (rigid) map, which the stage must recover at the tumour surface
inside the excluded hole (zone dilated by ``exclusion_mm``; the tumour lies 10 mm from
the centre, well within the region's untapered part).
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from hepanav.margin.registration import RegistrationSettings, local_stage

SHIFT_MM = np.array([1.3, -0.9, 2.2])
CENTRE = (3.0, -2.0, 1.0)  # the offset's centre of rotation, LPS mm (not the zone's)


@pytest.fixture(scope="module")
def textured_pair():
    """(pre CT, pre tumour, post CT, post zone, true post -> pre transform)."""
    rng = np.random.default_rng(11)
    n = 44
    texture = ndimage.gaussian_filter(rng.normal(size=(n, n, n)), 1.5)
    hu = 50.0 + 25.0 * texture / texture.std()
    pre = sitk.GetImageFromArray(np.clip(hu, -90.0, 240.0).astype(np.float32))
    pre.SetSpacing((3.0, 3.0, 3.0))
    pre.SetOrigin((-66.0, -66.0, -66.0))
    zz, yy, xx = np.mgrid[:n, :n, :n] * 3.0 - 66.0
    tumour = sitk.GetImageFromArray((np.sqrt(xx**2 + yy**2 + zz**2) <= 10.0).astype(np.uint8))
    tumour.CopyInformation(pre)
    grid = sitk.Image([36, 36, 22], sitk.sitkFloat32)
    grid.SetSpacing((3.0, 3.0, 5.0))
    grid.SetOrigin((-52.5 - SHIFT_MM).tolist())
    truth = sitk.TranslationTransform(3, SHIFT_MM.tolist())
    u = sitk.GetArrayFromImage(sitk.Resample(pre, grid, truth, sitk.sitkLinear, -1000.0))
    post = sitk.GetImageFromArray(np.round(u).astype(np.int16))
    post.CopyInformation(grid)
    zone = sitk.Resample(tumour, grid, truth, sitk.sitkNearestNeighbor, 0)
    zone = sitk.Cast(sitk.BinaryDilate(zone, [2, 2, 1]), sitk.sitkUInt8)
    return pre, tumour, post, zone, truth


def _offset(kind: str) -> sitk.Transform:
    """The known spoiling offset ``B`` (post space, applied before the truth)."""
    rigid = sitk.Euler3DTransform(CENTRE, np.radians(1.5), np.radians(-1.0), np.radians(2.0))
    rigid.SetTranslation((0.8, 0.6, -0.7))
    if kind == "rigid":
        return rigid
    affine = sitk.AffineTransform(3)
    affine.SetCenter(CENTRE)
    affine.SetMatrix((np.diag([1.02, 0.985, 1.01]) @ np.reshape(rigid.GetMatrix(), (3, 3))).ravel())
    affine.SetTranslation(rigid.GetTranslation())
    return affine


def _tumour_error(start: sitk.Transform, correction: sitk.Transform, kept: bool) -> float:
    """Largest |T(x) - (x + SHIFT_MM)| over 200 points of the true post tumour surface, mm."""
    final = sitk.CompositeTransform([start, correction]) if kept else start
    points = np.random.default_rng(0).normal(size=(200, 3))
    points = 10.0 * points / np.linalg.norm(points, axis=1)[:, None] - SHIFT_MM
    mapped = np.array([final.TransformPoint(p.tolist()) for p in points])
    return float(np.linalg.norm(mapped - points - SHIFT_MM, axis=1).max())


@pytest.mark.parametrize("kind", ["affine", "rigid"])
def test_low_dof_local_stage_recovers_a_known_offset(textured_pair, kind):
    pre, tumour, post, zone, truth = textured_pair
    start = sitk.CompositeTransform([truth, _offset(kind)])
    assert _tumour_error(start, start, False) > 1.0  # the offset to undo, at the tumour
    settings = RegistrationSettings(local_transform=kind)
    correction, info = local_stage(pre, post, zone, tumour, start, settings)
    assert info.accepted, info.note
    assert _tumour_error(start, correction, info.accepted) < 0.15


def test_low_dof_local_stage_at_the_truth_stays(textured_pair):
    """Started at the true transform, the affine stage moves the tumour by < 0.05 mm
    (or is refused)."""
    pre, tumour, post, zone, truth = textured_pair
    settings = RegistrationSettings(local_transform="affine")
    correction, info = local_stage(pre, post, zone, tumour, truth, settings)
    assert _tumour_error(truth, correction, info.accepted) < 0.05
