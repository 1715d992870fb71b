"""Body outline covers every slice, row and column (BinShrink remainder, issue 12)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from hepanav.segmentation.body import body_mask


def _cylinder_body(size, spacing, radius_mm=40.0):
    """Air with a water cylinder along z through every slice, elliptic (semi-axes 2 x
    ``radius_mm`` in x, ``radius_mm`` in y) so that the field of view cuts it at the first
    and last columns (a partial field of view); the truth is the cylinder itself."""
    nx, ny, nz = size
    origin = (-0.5 * (nx - 1) * spacing[0], -0.5 * (ny - 1) * spacing[1], 10.0)
    x = origin[0] + spacing[0] * np.arange(nx)
    y = origin[1] + spacing[1] * np.arange(ny)
    inside = ((x[None, :] / 2.0) ** 2 + y[:, None] ** 2) <= radius_mm**2
    truth = np.broadcast_to(inside, (nz, ny, nx)).copy()
    hu = np.where(truth, 40.0, -1000.0).astype(np.int16)
    ct = sitk.GetImageFromArray(hu)
    ct.SetSpacing(spacing)
    ct.SetOrigin(origin)
    return ct, truth


@pytest.mark.parametrize(
    ("size", "spacing"),
    [
        # 1.33 mm -> shrink factor 3; 31 slices = 10 x 3 + 1, 73 = 24 x 3 + 1 columns.
        ((73, 70, 31), (1.33, 1.33, 1.33)),
        # 0.8 x 0.8 x 1.0 mm -> factors 5, 5, 4; 23 slices = 5 x 4 + 3.
        ((127, 121, 23), (0.8, 0.8, 1.0)),
    ],
)
def test_body_mask_covers_every_slice(size, spacing):
    ct, truth = _cylinder_body(size, spacing)
    factors = [max(1, round(4.0 / s)) for s in spacing]
    assert any(n % f for n, f in zip(size, factors, strict=True))  # the case under test
    body = sitk.GetArrayFromImage(body_mask(ct)) > 0
    # Body on the first and the last slice, and on every slice the same disc.
    assert body[0].any() and body[-1].any()
    per_slice = body.reshape(body.shape[0], -1).sum(axis=1)
    assert per_slice.min() == per_slice.max()
    # Against the truth: the 4 mm grid costs at most a coarse voxel at the edge.
    agree = np.mean(body == truth)
    assert agree >= 0.97
    assert body[truth].mean() >= 0.97
    # The body cut by the field of view: covered on the first and the last column too.
    mid = truth.shape[1] // 2
    assert truth[:, mid, -1].all() and body[:, mid, -1].all() and body[:, mid, 0].all()


def test_seed_on_the_last_slice_is_not_outside_the_body(tmp_path):
    """Issue 12 repro: a seed on the last slice (127 slices of 1.5 mm in the phantom,
    factor 3) was refused as "outside the body outline". On the cylinder (31 slices,
    factor 3) a seed on the last slice passes the body check; whatever the segmenter
    then says, it is not that."""
    from hepanav.core.errors import InputError
    from hepanav.segmentation.pipeline import segment_image

    ct, truth = _cylinder_body((73, 70, 31), (1.33, 1.33, 1.33))
    voxel = "36,35,30"
    assert truth[30, 35, 36]
    try:
        segment_image(
            "liver", ct, "ct.nii.gz", tmp_path / "l.nii.gz", seed_voxels=[voxel], report=False
        )
    except InputError as exc:
        assert "outside the body" not in str(exc)
