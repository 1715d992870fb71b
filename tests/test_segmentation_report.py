"""The segmentation report's figures: every view carries its position (CT slice and
table z, or LPS y/x), the window/level, orientation letters and a scale bar, and the
contour is shown on every CT slice the mask touches (every k-th when it spans more
than MAX_MONTAGE slices). Ground truth by construction: a hypodense lesion (r 8 mm)
painted at the centre of a liver block of 1 x 1 x 1.25 mm voxels."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).parent))
from segmentation_helpers import lesion_case  # noqa: E402


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    from hepanav.segmentation.pipeline import segment_image

    ct, _, shape, _, _ = lesion_case(radius=8.0, contrast=-45.0)
    seed = ",".join(f"{v:.2f}" for v in shape.center)
    _, seg = segment_image("tumor", ct, "ct.nii.gz", Path("t.nii.gz"), seeds=[seed])
    return ct, seg


def _caption(ax) -> str:
    return ax.get_xlabel()


def _letters(ax) -> dict[str, str]:
    return {t.get_gid(): t.get_text() for t in ax.texts if t.get_gid()}


def test_three_views_through_the_seed_say_where_they_lie(case):
    from hepanav.segmentation.report import slices_axes, view_window

    ct, seg = case
    seed = np.asarray(seg.seeds[0].lps)
    k = int(round(ct.TransformPhysicalPointToContinuousIndex(seed.tolist())[2]))
    width, level = view_window(seg)
    assert width == 400 and level == round(seg.parenchyma_hu)
    fig = slices_axes(seg, ct)
    axes = [ax for ax in fig.axes if hasattr(ax, "hepanav_plane")]
    assert [ax.hepanav_plane.name for ax in axes] == ["axial", "coronal", "sagittal"]
    n = ct.GetSize()[2]
    # the axial view is the plane through the seed (its table z), nearest CT slice k + 1
    assert f"axial slice {k + 1}/{n}" in _caption(axes[0])
    assert f"table z {seed[2]:+.1f} mm" in _caption(axes[0])
    assert axes[0].hepanav_plane.table_mm == pytest.approx(seed[2], abs=1e-6)
    assert f"coronal plane at y {seed[1]:+.1f} mm" in _caption(axes[1])
    assert f"sagittal plane at x {seed[0]:+.1f} mm" in _caption(axes[2])
    for ax, letters in zip(axes, ("RLAP", "RLSI", "APSI"), strict=True):
        assert f"W 400 / L {level:g} HU" in _caption(ax)
        got = _letters(ax)
        assert got["orient-left"] + got["orient-right"] == letters[:2]
        assert got["orient-top"] + got["orient-bottom"] == letters[2:]
        assert ax.hepanav_scalebar.length_mm > 0
        # the seed is drawn where it lies in physical space
        (seed_line,) = [line for line in ax.lines if line.get_gid() == "seed"]
        cr, dist = ax.hepanav_plane.lps_to_pixel(seed[None])
        assert abs(dist[0]) < 1.0
        assert np.allclose(seed_line.get_xydata()[0], cr[0], atol=1e-6)


def test_montage_shows_the_contour_on_every_slice_of_the_mask(case):
    from hepanav.imaging.figures import resample_mask_to_plane
    from hepanav.segmentation.report import MAX_MONTAGE, montage_axes

    ct, seg = case
    arr = sitk.GetArrayViewFromImage(seg.mask)
    slices = [k for k in range(arr.shape[0]) if arr[k].any()]
    assert 8 <= len(slices) <= MAX_MONTAGE  # a 16 mm lesion on 1.25 mm slices
    fig, shown, first, last, step = montage_axes(seg, ct)
    assert shown == slices and step == 1 and (first, last) == (slices[0], slices[-1])
    axes = [ax for ax in fig.axes if hasattr(ax, "hepanav_plane")]
    assert len(axes) == len(slices)
    n = ct.GetSize()[2]
    px_area = float(np.prod(ct.GetSpacing()[:2]))
    for ax, k in zip(axes, slices, strict=True):
        plane = ax.hepanav_plane
        z = ct.TransformIndexToPhysicalPoint((0, 0, k))[2]
        assert plane.table_mm == pytest.approx(z, abs=1e-6)  # the plane through slice k
        assert f"axial slice {k + 1}/{n}" in _caption(ax)
        assert f"table z {z:+.1f} mm" in _caption(ax)
        assert "W 400 / L" in _caption(ax)
        # the contour drawn is the mask on that slice: same area in mm2 (within 15 %)
        on_plane = float((resample_mask_to_plane(seg.mask, plane) >= 0.5).sum())
        area_plane = on_plane * plane.pixel_mm[0] * plane.pixel_mm[1]
        area_slice = float(arr[k].sum()) * px_area
        assert area_plane == pytest.approx(area_slice, rel=0.15)
        assert len(ax.collections) >= 1  # the contour
        # and the mask is inside the view (not cropped away): its slice box fits
        j, i = np.nonzero(arr[k])
        corners = [ct.TransformIndexToPhysicalPoint((int(a), int(b), k)) for a, b in
                   ((i.min(), j.min()), (i.max(), j.max()))]  # fmt: skip
        cr, _ = plane.lps_to_pixel(np.asarray(corners))
        assert (cr >= 0).all() and (cr[:, 0] < plane.shape[1]).all()
        assert (cr[:, 1] < plane.shape[0]).all()


def test_a_tall_mask_shows_every_kth_slice_first_and_last_included():
    from hepanav.segmentation.report import MAX_MONTAGE, montage_slices

    arr = np.zeros((100, 8, 8), np.uint8)
    arr[10:55, 2:5, 2:5] = 1  # 45 slices
    mask = sitk.GetImageFromArray(arr)
    shown, first, last, step = montage_slices(SimpleNamespace(mask=mask), mask)
    assert (first, last, step) == (10, 54, 3)
    assert shown[0] == 10 and shown[-1] == 54 and len(shown) <= MAX_MONTAGE
    assert max(np.diff(shown)) <= step
