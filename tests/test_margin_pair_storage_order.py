"""Pair mode: the same pre images stored with flipped axes give the same margin.

Flipping the x and y index axes of a file (direction diag(-1, -1, 1), origin at the
opposite corner) keeps every voxel at its physical point. The registration's working
grids (isotropic resampling from the image's corner, multi-resolution shrinking) follow
the index axes, so on the make-demo phantom such a pre scan moved the MAM 5.06 -> 4.74
mm. The pipeline now hands the registration every image in LPS storage order.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from hepanav.imaging.orient import lps_order
from hepanav.margin import pipeline, registration
from hepanav.margin.pipeline import run_margin_pipeline


def _flipped(image: sitk.Image) -> sitk.Image:
    """``image`` stored with its x and y index axes reversed (same physical voxels)."""
    array = sitk.GetArrayFromImage(image)
    out = sitk.GetImageFromArray(array[:, ::-1, ::-1].copy())
    out.SetSpacing(image.GetSpacing())
    d = np.asarray(image.GetDirection()).reshape(3, 3)
    n = image.GetSize()
    out.SetOrigin(image.TransformIndexToPhysicalPoint((n[0] - 1, n[1] - 1, 0)))
    out.SetDirection((d @ np.diag([-1.0, -1.0, 1.0])).ravel().tolist())
    return out


def _ct(size=(30, 26, 20), spacing=(1.5, 1.5, 2.0), seed=0) -> sitk.Image:
    rng = np.random.default_rng(seed)
    image = sitk.GetImageFromArray(rng.normal(50, 20, size[::-1]).astype(np.int16))
    image.SetSpacing(spacing)
    image.SetOrigin((-20.0, -18.0, -15.0))
    return image


def _ball(reference: sitk.Image, centre, radius) -> sitk.Image:
    idx = np.indices(reference.GetSize()[::-1]).reshape(3, -1)[::-1].T.astype(float)
    points = np.array([reference.TransformContinuousIndexToPhysicalPoint(i.tolist()) for i in idx])
    inside = np.linalg.norm(points - np.asarray(centre), axis=1) <= radius
    mask = sitk.GetImageFromArray(inside.reshape(reference.GetSize()[::-1]).astype(np.uint8))
    mask.CopyInformation(reference)
    return mask


def test_lps_order_restores_the_array_of_a_flipped_image():
    image = _ct()
    same = lps_order(_flipped(image))
    assert np.array_equal(sitk.GetArrayFromImage(same), sitk.GetArrayFromImage(image))
    assert np.allclose(same.GetOrigin(), image.GetOrigin(), atol=1e-9)
    assert np.allclose(same.GetDirection(), image.GetDirection())
    assert lps_order(image) is image  # already in LPS order: not copied


def test_registration_sees_the_same_images_whatever_the_storage_order(tmp_path, monkeypatch):
    pre, post = _ct(seed=1), _ct(seed=2)
    tumour = _ball(pre, (0, 0, 0), 5.0)
    zone = _ball(post, (0, 0, 0), 9.0)
    seen = []

    class Stop(Exception):
        pass

    def recorder(pre_ct, post_ct, pre_liver, post_liver, post_exclude, pre_exclude, settings):
        seen.append(
            [
                (sitk.GetArrayFromImage(x), np.round(x.GetOrigin(), 9), x.GetDirection())
                for x in (pre_ct, post_ct, post_exclude, pre_exclude)
            ]
        )
        raise Stop

    monkeypatch.setattr(pipeline, "register_pre_to_post", recorder)
    for p, t in ((pre, tumour), (_flipped(pre), _flipped(tumour))):
        with pytest.raises(Stop):
            run_margin_pipeline(t, zone, tmp_path, pre=p, post=post, report=False)
    first, second = seen
    for (a, oa, da), (b, ob, db) in zip(first, second, strict=True):
        assert np.array_equal(a, b)
        assert np.allclose(oa, ob) and np.allclose(da, db)


@pytest.mark.parametrize("mode", ["liver", "lesion_region"])
def test_register_pre_to_post_called_directly_sees_lps_ordered_images(monkeypatch, mode):
    """Direct callers (bench, web) get the same working images for a flipped pre scan:
    the first step of both modes, ``_working_grid``, receives identical arrays."""
    pre, post = _ct(seed=1), _ct(seed=2)
    tumour = _ball(pre, (0, 0, 0), 5.0)
    zone = _ball(post, (0, 0, 0), 9.0)
    pre_liver = _ball(pre, (0, 0, 0), 16.0)
    post_liver = _ball(post, (0, 0, 0), 16.0)
    seen = []

    class Stop(Exception):
        pass

    def recorder(ct, mask, settings, pad_mm=None):
        seen.append(
            [
                (sitk.GetArrayFromImage(x), np.round(x.GetOrigin(), 9), x.GetDirection())
                for x in (ct, mask)
            ]
        )
        if len(seen) % 2 == 0:  # post then pre grid recorded: stop before registering
            raise Stop
        return ct, mask

    monkeypatch.setattr(registration, "_working_grid", recorder)
    for p, t, liver in (
        (pre, tumour, pre_liver),
        (_flipped(pre), _flipped(tumour), _flipped(pre_liver)),
    ):
        livers = (liver, post_liver) if mode == "liver" else (None, None)
        with pytest.raises(Stop):
            registration.register_pre_to_post(p, post, *livers, zone, t)
    assert len(seen) == 4
    for (a, oa, da), (b, ob, db) in zip(seen[1], seen[3], strict=True):  # the pre grids
        assert np.array_equal(a, b)
        assert np.allclose(oa, ob) and np.allclose(da, db)
