"""The figure toolkit (hepanav.imaging.figures) against geometry known by construction."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import SimpleITK as sitk

from hepanav.imaging.figures import (
    annotate_plane,
    checkerboard,
    direction_letters,
    edge_letters,
    line_planes,
    native_plane,
    probe_eye_plane,
    resample_to_plane,
    show_plane,
    slice_caption,
    standard_plane,
)
from hepanav.imaging.figures.surface3d import SurfaceLayer, decimate, interactive_html


def _rotation_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


def _image_with_left_blob(direction: np.ndarray, size=(40, 30, 12), spacing=(1.0, 1.2, 2.5)):
    """An image whose bright blob lies 12 mm to the patient's LEFT (+x) of its centre.

    The blob is placed in physical space, so it is on the left whatever the direction.
    """
    img = sitk.Image(list(size), sitk.sitkFloat32)
    img.SetSpacing(spacing)
    img.SetDirection(direction.ravel().tolist())
    centre_index = (np.asarray(size) - 1) / 2.0
    # origin so that the volume centre is at LPS (10, -20, 30)
    a = direction * np.asarray(spacing)
    img.SetOrigin((np.array([10.0, -20.0, 30.0]) - a @ centre_index).tolist())
    idx = np.indices(size[::-1]).reshape(3, -1).T[:, ::-1]  # (i, j, k)
    lps = idx @ a.T + np.asarray(img.GetOrigin())
    blob = np.linalg.norm(lps - np.array([22.0, -20.0, 30.0]), axis=1) < 4.0
    arr = np.where(blob, 1000.0, 0.0).reshape(size[::-1]).astype(np.float32)
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(img)
    return out


def test_direction_letters_axes_and_oblique():
    assert direction_letters([1, 0, 0]) == "L"
    assert direction_letters([-1, 0, 0]) == "R"
    assert direction_letters([0, 1, 0]) == "P"
    assert direction_letters([0, -1, 0]) == "A"
    assert direction_letters([0, 0, 1]) == "S"
    assert direction_letters([0, 0, -1]) == "I"
    # 30 degrees from +x towards +y: mostly left, partly posterior
    assert direction_letters(_rotation_z(30) @ [1, 0, 0]) == "LP"
    # 5 degrees off an axis is named by the axis alone
    assert direction_letters(_rotation_z(5) @ [1, 0, 0]) == "L"
    with pytest.raises(ValueError):
        direction_letters([0, 0, 0])


def test_native_axial_letters_follow_the_direction_matrix():
    identity = native_plane(_image_with_left_blob(np.eye(3)), 6)
    assert edge_letters(identity.right, identity.down) == {
        "right": "L",
        "left": "R",
        "bottom": "P",
        "top": "A",
    }
    flipped = native_plane(_image_with_left_blob(np.diag([-1.0, 1.0, 1.0])), 6)
    letters = edge_letters(flipped.right, flipped.down)
    assert letters["right"] == "R" and letters["left"] == "L"  # mirrored
    assert letters["top"] == "A" and letters["bottom"] == "P"


@pytest.mark.parametrize(
    "direction",
    [np.eye(3), np.diag([-1.0, 1.0, 1.0]), np.diag([1.0, -1.0, -1.0]), _rotation_z(25)],
    ids=["identity", "x-flipped", "yz-flipped", "oblique-25deg"],
)
def test_blob_appears_on_the_side_its_letter_names(direction):
    """The letter at the edge where the left-sided blob is drawn must be L, in every view."""
    image = _image_with_left_blob(direction)
    mid = image.GetSize()[2] // 2
    native = native_plane(image, mid)
    axial = standard_plane(image, "axial", [10.0, -20.0, 30.0], size_mm=60, pixel_mm=1.0)
    for plane in (native, axial):
        arr = resample_to_plane(image, plane)
        rows, cols = np.nonzero(arr > 500)
        assert len(cols), plane.name
        col, row = cols.mean(), rows.mean()
        cc, rc = (plane.shape[1] - 1) / 2, (plane.shape[0] - 1) / 2
        letters = edge_letters(plane.right, plane.down)
        # the blob is 12 mm from the centre: its screen offset names the side
        dx, dy = (col - cc) * plane.pixel_mm[1], (row - rc) * plane.pixel_mm[0]
        side = (
            ("right" if dx > 0 else "left")
            if abs(dx) > abs(dy)
            else ("bottom" if dy > 0 else "top")
        )
        assert letters[side][0] == "L", (plane.name, side, letters)
    # the standard axial view is radiological whatever the storage: L on the right
    assert edge_letters(axial.right, axial.down)["right"] == "L"


def test_resampling_is_in_physical_space_for_an_oblique_direction():
    """An image whose value is its LPS x coordinate, sampled on an oblique plane."""
    direction = _rotation_z(25) @ np.array(
        [[1, 0, 0], [0, np.cos(0.3), -np.sin(0.3)], [0, np.sin(0.3), np.cos(0.3)]]
    )
    img = sitk.Image([50, 50, 50], sitk.sitkFloat32)
    img.SetSpacing([1.0, 1.0, 1.0])
    img.SetDirection(direction.ravel().tolist())
    img.SetOrigin([-20.0, -25.0, -15.0])
    idx = np.indices((50, 50, 50)).reshape(3, -1).T[:, ::-1]
    lps = idx @ direction.T + np.asarray(img.GetOrigin())
    val = sitk.GetImageFromArray(lps[:, 0].reshape(50, 50, 50).astype(np.float32))
    val.CopyInformation(img)
    centre = lps.mean(axis=0)
    p1, _ = line_planes(
        centre - [10, 5, 3], centre + [10, 5, 3], beyond_mm=2, width_mm=10, pixel_mm=1.0
    )
    arr = resample_to_plane(val, p1)
    rows, cols = np.indices(p1.shape)
    expected = p1.pixel_to_lps(np.stack([cols.ravel(), rows.ravel()], 1))[:, 0]
    assert np.allclose(arr.ravel(), expected, atol=1e-3)


def test_slice_number_and_table_position():
    image = _image_with_left_blob(np.eye(3))
    plane = native_plane(image, 3)
    assert plane.source_slice == 4 and plane.source_slices == 12
    assert plane.table_mm == pytest.approx(image.TransformIndexToPhysicalPoint([0, 0, 3])[2])
    # a reformat through a point records the nearest source slice
    z = image.TransformIndexToPhysicalPoint([0, 0, 7])[2]
    axial = standard_plane(image, "axial", [10.0, -20.0, z + 0.4])
    assert axial.source_slice == 8
    assert axial.table_mm == pytest.approx(z + 0.4)


def _dicom_series_numbered_from_the_top(folder, n=12):
    """A DICOM series of ``n`` axial 2.5 mm slices at LPS z = 0, 2.5, ... written
    superior first, Instance Number 1 the most superior (as scanners number a head-first
    acquisition): the slice at array index k (ascending z) is instance n - k."""
    from dicom_helpers import volume_slices, write_slices

    hu = np.random.default_rng(0).normal(40, 10, (n, 16, 20)).round()
    hu[:, :2] = -1000.0
    zs = [2.5 * (n - 1 - i) for i in range(n)]  # file i: instance i + 1, z descending
    datasets = volume_slices(hu, [(-10.0, -20.0, z) for z in zs], pixel_spacing=(1.0, 1.0))
    write_slices(folder, datasets)
    return folder


def test_caption_gives_lps_z_and_the_dicom_instance_not_the_array_index(tmp_path):
    """Tester: "axial slice k/N" counted k from the inferior end (array index), while the
    PACS shows the Instance Number (here 1 = most superior). The caption now gives the
    LPS z and the DICOM instance of the slice shown, both known by construction."""
    from hepanav.imaging import load_image
    from hepanav.imaging.dicom_series import instance_numbers
    from hepanav.imaging.figures import slice_caption, slice_label

    n = 12
    ct, _ = load_image(_dicom_series_numbered_from_the_top(tmp_path / "series", n))
    assert instance_numbers(ct) == tuple(n - k for k in range(n))
    for k in (0, 4, n - 1):
        z = 2.5 * k  # array index k is at z = 2.5 k (ascending)
        plane = standard_plane(ct, "axial", [-2.0, -12.0, z])
        assert plane.source_slice == k + 1 and plane.source_instance == n - k
        caption = slice_caption(plane, (400, 40))
        assert caption == f"axial z = {z:+.1f} mm (LPS) · DICOM instance {n - k} · W 400 / L 40 HU"
        assert slice_label(plane) == f"DICOM instance {n - k}"
        native = native_plane(ct, k)
        want = f"axial z = {z:+.1f} mm (LPS) · DICOM instance {n - k}"
        assert slice_caption(native, None) == want
    # between slices 4 and 5 (z 10.0 and 12.5), nearer 5: the nearest instance, said so
    between = standard_plane(ct, "axial", [-2.0, -12.0, 11.5])
    assert "axial z = +11.5 mm (LPS) · nearest DICOM instance 7" in slice_caption(between, None)
    # an oblique (needle) plane: its centre's z and the nearest instance
    p1, _ = line_planes([-6.0, -12.0, 2.0], [2.0, -2.0, 8.0], width_mm=10, source=ct)
    want = "oblique plane, centre z = +5.0 mm (LPS) · nearest DICOM instance 10"
    assert slice_caption(p1, None) == want
    # any image made from it (a crop, a copy) no longer knows its instances: never guessed
    crop = ct[:, :, 2:]
    assert instance_numbers(crop) is None and instance_numbers(sitk.Image(ct)) is None
    plane = standard_plane(crop, "axial", [-2.0, -12.0, 10.0])
    assert slice_caption(plane, None) == "axial z = +10.0 mm (LPS)"
    # nor an image whose geometry was changed in place after reading
    moved, _ = load_image(tmp_path / "series")
    moved.SetOrigin((0.0, 0.0, 100.0))
    assert instance_numbers(moved) is None


def test_instances_are_not_claimed_for_a_regularised_series(tmp_path):
    """Variable slice spacing: the reader interpolates a regular grid, whose slices are
    no file's: no instance number is given for them."""
    from dicom_helpers import volume_slices, write_slices
    from hepanav.imaging import load_image
    from hepanav.imaging.dicom_series import instance_numbers

    hu = np.random.default_rng(1).normal(40, 10, (8, 12, 12)).round()
    zs = [0.0, 2.0, 4.0, 6.0, 10.0, 14.0, 18.0, 22.0]  # 2 mm, then 4 mm: variable pitch
    write_slices(tmp_path / "s", volume_slices(hu, [(0.0, 0.0, z) for z in zs]))
    ct, record = load_image(tmp_path / "s")
    assert any("variable slice spacing" in note for note in record.notes)
    assert instance_numbers(ct) is None
    plane = standard_plane(ct, "axial", [4.0, 4.0, 10.0])
    assert plane.source_instance is None and "instance" not in slice_caption(plane, None)


def test_line_planes_contain_the_needle_entry_left_of_tip():
    entry, tip = np.array([80.0, -60.0, 10.0]), np.array([20.0, 0.0, -5.0])
    for plane in line_planes(entry, tip):
        cr, dist = plane.lps_to_pixel(np.array([entry, tip]))
        assert np.allclose(dist, 0.0, atol=1e-9)
        assert cr[0, 0] < cr[1, 0]
        assert abs(cr[0, 1] - cr[1, 1]) < 1e-6  # the needle runs horizontally
    a, b = line_planes(entry, tip)
    assert abs(a.down @ b.down) < 1e-9
    eye = probe_eye_plane(tip, tip - entry)
    u = (tip - entry) / np.linalg.norm(tip - entry)
    assert np.allclose(eye.normal, u)


def test_scale_bar_length_in_pixels_matches_its_label():
    from hepanav.core.report import new_figure

    image = _image_with_left_blob(np.eye(3))
    plane = standard_plane(image, "axial", [10.0, -20.0, 30.0], size_mm=60, pixel_mm=0.5)
    fig, ax = new_figure(figsize=(5, 5))
    show_plane(ax, plane, resample_to_plane(image, plane), window=(400, 40))
    annotate_plane(ax, plane, window=(400, 40))
    fig.canvas.draw()
    bar = ax.hepanav_scalebar
    assert re.fullmatch(r"\d+ mm", bar.label) and float(bar.label.split()[0]) == bar.length_mm
    line = next(a for a in ax.lines if a.get_gid() == "scalebar")
    (x0, _), (x1, _) = ax.transData.transform(np.column_stack([line.get_xdata(), line.get_ydata()]))
    image_artist = ax.images[0]
    box = image_artist.get_window_extent()
    px_per_mm = box.width / plane.extent_mm[1]
    assert abs(abs(x1 - x0) / px_per_mm - bar.length_mm) < 0.02 * bar.length_mm
    # the caption states the plane's LPS z (no array slice number) and window
    assert ax.get_xlabel().startswith("axial z = +30.0 mm (LPS)")
    assert "slice" not in ax.get_xlabel()
    assert "W 400 / L 40 HU" in ax.get_xlabel()
    texts = {t.get_gid(): t.get_text() for t in ax.texts if t.get_gid()}
    assert texts["orient-right"] == "L" and texts["orient-top"] == "A"


def test_checkerboard_alternates_in_mm_squares():
    image = _image_with_left_blob(np.eye(3))
    plane = standard_plane(image, "axial", [10.0, -20.0, 30.0], size_mm=40, pixel_mm=1.0)
    a, b = np.zeros(plane.shape), np.ones(plane.shape)
    board = checkerboard(a, b, plane, square_mm=10)
    assert board[0, 0] == 0 and board[0, 10] == 1 and board[10, 10] == 0 and board[10, 0] == 1


def test_decimate_keeps_the_worst_scalar_and_interactive_html_is_offline():
    from skimage.measure import marching_cubes

    zz, yy, xx = np.mgrid[-20:21, -20:21, -20:21]
    verts, faces, _, _ = marching_cubes((xx**2 + yy**2 + zz**2).astype(float), 15.0**2)
    scalar = verts[:, 0] - 3.0
    scalar[0] = -9.0
    v, f, s = decimate(verts, faces, 500, scalar)
    assert len(f) <= 500 and s.min() == pytest.approx(-9.0)
    html = interactive_html(
        [
            SurfaceLayer("tumour", verts, faces, scalar),
            SurfaceLayer("zone", verts * 1.2, faces, colour="#009E73", opacity=0.3),
        ],
        markers=[(verts[0], "#F0E442", "MAM point")],
    )
    assert "http" not in html.lower().replace("http-equiv", "")
    data = re.search(
        r'<script type="application/json" class="mv-data">(.*?)</script>', str(html), re.S
    ).group(1)
    payload = json.loads(data)
    assert [layer["name"] for layer in payload["layers"]] == ["tumour", "zone"]
    assert payload["markers"][0]["label"] == "MAM point"


def test_3d_axes_name_the_direction_their_values_grow_toward():
    """The static 3D view is drawn from two sides; in the second the x values decrease
    from left to right on screen, so an arrow label ("R -> L") would read backwards. The
    labels name where each LPS axis grows, which holds in every view."""
    from hepanav.imaging.figures.surface3d import static_figure

    tetra = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], float)
    faces = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]])
    fig = static_figure([SurfaceLayer("t", tetra, faces, None, "#0072B2", 1.0)])
    axes3d = [ax for ax in fig.axes if hasattr(ax, "get_zlabel")]
    assert len(axes3d) == 2
    for ax in axes3d:
        assert "+x = left" in ax.get_xlabel() and "+y = posterior" in ax.get_ylabel()
        assert "+z = superior" in ax.get_zlabel()
        assert "\u2192" not in ax.get_xlabel() + ax.get_ylabel() + ax.get_zlabel()


@pytest.mark.parametrize("inches", [1.1, 3.3, 5.0])  # a montage thumbnail shown small .. full
def test_scale_bar_label_is_clear_of_the_bar(inches):
    """The label ("5 mm") lies above the bar, outline to outline, at any figure size
    (tester6 12: on montage thumbnails it was drawn over the bar)."""
    from hepanav.core.report import new_figure

    image = _image_with_left_blob(np.eye(3))
    plane = standard_plane(image, "axial", [10.0, -20.0, 30.0], size_mm=30, pixel_mm=0.5)
    fig, ax = new_figure(figsize=(inches, inches), dpi=110)
    show_plane(ax, plane, resample_to_plane(image, plane), window=(400, 40))
    annotate_plane(ax, plane, window=(400, 40))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    line = next(a for a in ax.lines if a.get_gid() == "scalebar")
    label = next(t for t in ax.texts if t.get_text() == ax.hepanav_scalebar.label)
    px_per_pt = fig.dpi / 72.0
    # the bar's drawn thickness: its line or its outline stroke, whichever is wider
    strokes = [e._gc.get("linewidth", 0) for e in line.get_path_effects()]
    half = max([line.get_linewidth(), *strokes]) / 2 * px_per_pt
    (bx0, by), (bx1, _) = ax.transData.transform(
        np.column_stack([line.get_xdata(), line.get_ydata()])
    )
    box = label.get_window_extent(renderer)
    outline = max(e._gc.get("linewidth", 0) for e in label.get_path_effects()) / 2 * px_per_pt
    assert box.y0 - outline > by + half  # display y grows upward: label above the bar
    assert min(bx0, bx1) <= box.x0 + box.width / 2 <= max(bx0, bx1)  # centred over it
