"""The segmentation's box-cropped implementations give the whole-image results.

Morphology, hole filling, components, the seed balls and the star-shaped bound run
on the bounding box of what they act on (speed, issue 12); each is checked here
against its definition evaluated on the whole image (ITK's distance map of the
full grid, brute-force distances and fits of every voxel).
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from hepanav.imaging.geometry import voxel_to_lps
from hepanav.phantoms.lesions import fibonacci_sphere
from hepanav.segmentation import grow, morphology
from hepanav.segmentation.seeds import Seed


def _image(arr: np.ndarray, spacing=(0.8, 0.7, 1.25), direction=None) -> sitk.Image:
    img = sitk.GetImageFromArray(arr.astype(np.uint8))
    img.SetSpacing(spacing)
    img.SetOrigin((-12.0, 7.5, 3.0))
    if direction is not None:
        img.SetDirection(direction)
    return img


def _full_distance(mask: sitk.Image) -> np.ndarray:
    """ITK's signed Maurer distance (mm) on the whole grid: the definition."""
    return sitk.GetArrayFromImage(
        sitk.SignedMaurerDistanceMap(
            sitk.Cast(mask > 0, sitk.sitkUInt8),
            insideIsPositive=False,
            squaredDistance=False,
            useImageSpacing=True,
        )
    )


def _masks():
    """Blobs inside the grid, touching its edge, with an enclosed cavity and a channel."""
    z, y, x = np.ogrid[:30, :34, :38]
    inner = ((z - 15) / 1.0) ** 2 + ((y - 16) / 1.2) ** 2 + ((x - 18) / 0.9) ** 2 < 49
    cavity = inner & ~(((z - 15) ** 2 + (y - 16) ** 2 + (x - 18) ** 2) < 4)
    edge = ((z - 2) ** 2 + (y - 30) ** 2 + (x - 36) ** 2) < 36
    channel = inner.copy()
    channel[15, 16, 18:] = False  # a one-voxel tunnel from the centre to the edge
    channel[15, 16, 18] = False
    two = inner | (((z - 26) ** 2 + (y - 4) ** 2 + (x - 5) ** 2) < 9)
    return {"inner": inner, "cavity": cavity, "edge": edge, "channel": channel, "two": two}


@pytest.mark.parametrize("name", list(_masks()))
@pytest.mark.parametrize("radius", [0.5, 1.5, 4.0])
def test_dilate_and_erode_equal_the_whole_image_distance_thresholds(name, radius):
    mask = _image(_masks()[name])
    dist = _full_distance(mask)
    dilated = sitk.GetArrayFromImage(morphology.dilate_mm(mask, radius)) > 0
    # Up to float rounding of the distance map itself (1e-5 mm) exactly at the radius.
    sure_in, sure_out = dist <= radius - 1e-4, dist > radius + 1e-4
    assert np.all(dilated[sure_in]) and not np.any(dilated[sure_out])
    background = sitk.Cast(mask == 0, sitk.sitkUInt8)
    dist_bg = _full_distance(background)
    eroded = sitk.GetArrayFromImage(morphology.erode_mm(mask, radius)) > 0
    assert np.all(eroded[dist_bg > radius + 1e-4]) and not np.any(eroded[dist_bg <= radius - 1e-4])
    # The edge mask touches the grid's edge: that is not background (not eroded from
    # it); its nearest background voxel from there is 4.24 mm away.
    if name == "edge":
        assert eroded[0, 30, 36]


@pytest.mark.parametrize("name", list(_masks()))
def test_signed_distance_within_is_exact_inside_and_up_to_the_limit(name):
    mask = _image(_masks()[name])
    dist = _full_distance(mask)
    near = sitk.GetArrayFromImage(morphology.signed_distance_mm(mask, within_mm=3.0))
    sel = dist <= 3.0
    np.testing.assert_allclose(near[sel], dist[sel], atol=1e-4)
    assert np.all(near[~sel] > 3.0)


def test_fill_holes_fills_the_enclosed_cavity_only():
    masks = _masks()
    filled = sitk.GetArrayFromImage(morphology.fill_holes(_image(masks["cavity"]))) > 0
    np.testing.assert_array_equal(filled, masks["inner"])  # the cavity is enclosed
    tunnel = sitk.GetArrayFromImage(morphology.fill_holes(_image(masks["channel"]))) > 0
    np.testing.assert_array_equal(tunnel, masks["channel"])  # open to the grid's edge


@pytest.mark.parametrize("touch_edge", [False, True])
def test_fill_holes_equals_itk_binary_fillhole_on_porous_masks(touch_edge):
    """Many one-voxel holes and pores joined only along edges or corners (where face
    and full connectivity differ): the same voxels as ITK's BinaryFillhole (face-
    connected background) on the whole grid."""
    rng = np.random.default_rng(7)
    z, y, x = np.ogrid[:24, :26, :28]
    ball = (z - 12) ** 2 + (y - 13) ** 2 + (x - 14) ** 2 < 100
    arr = ball & (rng.random(ball.shape) > 0.2)
    if touch_edge:
        arr[:, :3, :] = rng.random((24, 3, 28)) > 0.3
    mask = _image(arr)
    want = sitk.GetArrayFromImage(sitk.BinaryFillhole(mask, False, 1)) > 0
    got = sitk.GetArrayFromImage(morphology.fill_holes(mask)) > 0
    assert np.count_nonzero(want & ~arr) > 50  # the case has holes to fill
    np.testing.assert_array_equal(got, want)


def test_component_at_keeps_the_seeded_component_and_ignores_seeds_outside_it():
    masks = _masks()
    two = _image(masks["two"])
    inner = sitk.GetArrayFromImage(morphology.component_at(two, [(18, 16, 15)])) > 0
    np.testing.assert_array_equal(inner, masks["inner"])
    both = sitk.GetArrayFromImage(morphology.component_at(two, [(18, 16, 15), (5, 4, 26)])) > 0
    np.testing.assert_array_equal(both, masks["two"])
    none = sitk.GetArrayFromImage(morphology.component_at(two, [(0, 33, 0)]))
    assert not none.any()


@pytest.mark.parametrize("radius", [-1.0, 0.0, 2.0, 6.3, 11.0])
def test_ball_mask_is_the_set_of_voxel_centres_within_the_radius(radius):
    img = _image(np.zeros((30, 34, 38)))
    seeds = [Seed((0.0, 0.0, 0.0), (3, 30, 20), "a"), Seed((0.0, 0.0, 0.0), (20, 10, 2), "b")]
    ball = sitk.GetArrayFromImage(grow._ball_mask(img, seeds, radius)) > 0
    k, j, i = np.indices(ball.shape)
    sp = img.GetSpacing()
    d = np.min(
        [
            np.sqrt(((i - a) * sp[0]) ** 2 + ((j - b) * sp[1]) ** 2 + ((k - c) * sp[2]) ** 2)
            for a, b, c in (s.index for s in seeds)
        ],
        axis=0,
    )
    np.testing.assert_array_equal(ball, d <= max(radius, 0.0))  # no radius: the seeds
    assert ball[2, 10, 20] and ball[20, 30, 3]  # the seeds (array order z, y, x)


@pytest.mark.parametrize(
    "direction", [None, (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)], ids=["axial", "rotated"]
)
def test_star_bound_equals_the_per_voxel_fit(direction):
    """A lobulated blob: the bound equals the fit evaluated at every voxel's direction."""
    z, y, x = np.ogrid[:40, :44, :48]
    r = np.sqrt((z - 20.0) ** 2 + (y - 22.0) ** 2 + (x - 24.0) ** 2)
    lobes = 1.0 + 0.2 * np.cos(3 * np.arctan2(y - 22.0, x - 24.0))
    hu = np.where(r < 9.0 * lobes, 40.0, 110.0).astype(np.float32)
    img = sitk.GetImageFromArray(hu)
    img.SetSpacing((0.8, 0.8, 1.0))
    if direction is not None:
        img.SetDirection(direction)
    seed = Seed(img.TransformIndexToPhysicalPoint((24, 22, 20)), (24, 22, 20), "s")
    limit = 18.0
    got = sitk.GetArrayFromImage(grow.star_bound(img, [seed], 75.0, "hypo", limit)) > 0
    # The definition: every voxel centre, its direction from the seed, the fit there.
    u = fibonacci_sphere(grow.STAR_RAYS)
    coef = grow.fit_radial(u, grow.edge_radii_mm(img, seed, 75.0, "hypo", limit, u))
    k, j, i = np.indices(got.shape)
    v = voxel_to_lps(img, np.column_stack([i.ravel(), j.ravel(), k.ravel()])) - seed.lps
    d = np.linalg.norm(v, axis=1)
    dirs = v / np.maximum(d, 1e-6)[:, None]
    r_fit = np.clip(grow._sphere_basis(dirs, grow.STAR_DEGREE) @ coef, 0.0, limit)
    pad = max(grow.STAR_FIT_PAD_MM, float(max(img.GetSpacing())))
    want = ((d <= limit) & (d <= grow.STAR_FIT_FACTOR * r_fit + pad)).reshape(got.shape)
    # Float rounding may only flip voxels exactly on the bound (none expected here).
    assert np.count_nonzero(got != want) <= 2
    assert 0.5 * want.sum() < got.sum() < 2 * want.sum() and want[20, 22, 24]


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_sphere_eval_equals_the_basis_matrix_product(degree):
    rng = np.random.default_rng(degree)
    u = rng.normal(size=(500, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    basis = grow._sphere_basis(u, degree)
    coef = rng.normal(size=basis.shape[1]) * 5.0
    got = grow._sphere_eval([u[:, 0], u[:, 1], u[:, 2]], coef, degree)
    np.testing.assert_allclose(got, basis @ coef, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "spacing", [(0.8, 0.8, 1.0), (0.8, 0.7, 1.25), (1.0, 1.0, 1.0), (0.7, 0.7, 3.0)]
)
@pytest.mark.parametrize("radius", [0.5, 1.0, 1.01, 1.5, 2.0, 2.5])
def test_small_balls_by_shifting_equal_the_distance_map_thresholds(spacing, radius, monkeypatch):
    """Dilation and erosion by the ball's voxel offsets (the fast path) give the same
    voxels as the threshold of ITK's distance map, on a porous mask touching the
    grid's edge, including exact ties (2 mm on 1 mm voxels)."""
    rng = np.random.default_rng(3)
    z, y, x = np.ogrid[:26, :30, :34]
    arr = (((z - 13) / 9.0) ** 2 + ((y - 15) / 11.0) ** 2 + ((x - 17) / 12.0) ** 2 < 1) & (
        rng.random((26, 30, 34)) > 0.3
    )
    arr[:, :2, :] = True
    mask = _image(arr, spacing=spacing)
    fast = [
        sitk.GetArrayFromImage(f(mask, radius)) for f in (morphology.dilate_mm, morphology.erode_mm)
    ]
    monkeypatch.setattr(morphology, "MAX_BALL_OFFSETS", 0)  # every ball by the distance map
    assert morphology.ball_offsets(spacing, radius) is None
    slow = [
        sitk.GetArrayFromImage(f(mask, radius)) for f in (morphology.dilate_mm, morphology.erode_mm)
    ]
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(a, b)


def test_ball_offsets_leave_ambiguous_ties_to_the_distance_map():
    # 4 mm on 0.8 mm voxels: 5 x 0.8 is 4 only up to float rounding (the map decides).
    assert morphology.ball_offsets((0.8, 0.8, 1.0), 4.0) is None
    # 2 mm on 1 mm slices: an exact tie, inside; 1.01 mm: the 6 face neighbours.
    offsets = morphology.ball_offsets((0.8, 0.8, 1.0), 2.0)
    assert [2, 0, 0] in offsets.tolist() and [0, 0, 3] not in offsets.tolist()
    assert len(morphology.ball_offsets((0.8, 0.8, 1.0), 1.01)) == 7
