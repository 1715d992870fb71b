"""The segmentation report's figures: every view carries its position (LPS z, or LPS
y/x; the DICOM instance when the CT came from a DICOM series), the window/level,
orientation letters and a scale bar, and the contour is shown on every CT slice the
mask touches (every k-th when it spans more than MAX_MONTAGE slices). Ground truth by
construction: a hypodense lesion (r 8 mm) painted at the centre of a liver block of
1 x 1 x 1.25 mm voxels."""

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
    # the axial view is the plane through the seed: its LPS z, no array slice number
    # (a NIfTI CT: no DICOM instance)
    assert _caption(axes[0]).startswith(f"axial z = {seed[2]:+.1f} mm (LPS) · W 400")
    assert axes[0].hepanav_plane.source_slice == k + 1 and f"/{n}" not in _caption(axes[0])
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
    fig, levels, shown, step = montage_axes(seg, ct)
    assert levels.view == "axial" and levels.slices == slices
    assert shown == list(range(len(slices))) and step == 1
    axes = [ax for ax in fig.axes if hasattr(ax, "hepanav_plane")]
    assert len(axes) == len(slices)
    n = ct.GetSize()[2]
    px_area = float(np.prod(ct.GetSpacing()[:2]))
    for ax, k in zip(axes, slices, strict=True):
        plane = ax.hepanav_plane
        z = ct.TransformIndexToPhysicalPoint((0, 0, k))[2]
        assert ax.get_title() == f"z = {z:+.1f} mm"  # a NIfTI CT: no DICOM instance
        assert plane.table_mm == pytest.approx(z, abs=1e-6)  # the plane through slice k
        assert plane.source_slice == k + 1 and plane.source_slices == n
        assert _caption(ax).startswith(f"axial z = {z:+.1f} mm (LPS)")
        assert "slice" not in _caption(ax)
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


# Two hypodense spheres (LPS mm centres, radii, HU below the 105 HU liver) at different
# heights (z on slice centres), 20 mm apart in x: their coronal planes (y 0) also cut the
# other lesion (shown dashed as another lesion).
TWO = (((-10.0, 0.0, -5.625), 7.0, -45.0), ((10.0, 0.0, 5.625), 5.5, -65.0))


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """(ct, result, seg, html text, folder) of ``hepanav segment tumor`` with one seed
    at each sphere's centre, written with its report."""
    from hepanav.phantoms.lesions import paint_shape
    from hepanav.segmentation.pipeline import segment_image, write_outputs
    from segmentation_helpers import LIVER_HU, liver_block, sphere

    grid, hu = liver_block(size=(80, 64, 48), spacing=(1.0, 1.0, 1.25))
    for centre, radius, contrast in TWO:
        paint_shape(hu, grid, sphere(radius, center=centre), LIVER_HU + contrast)
    ct = grid.image(hu)
    seeds = [",".join(f"{v:g}" for v in c) for c, _, _ in TWO]
    folder = tmp_path_factory.mktemp("two")
    out = folder / "t.nii.gz"
    result, seg = segment_image("tumor", ct, "ct.nii.gz", out, seeds=seeds)
    write_outputs(result, seg, ct, out)
    return ct, result, seg, (folder / "t.html").read_text(encoding="utf-8"), folder


def test_two_lesions_each_get_three_planes_through_their_own_seed(two):
    """Lesion n's views go through ITS seed (the plane's table z and CT slice are the
    seed's), are labelled lesion n/2 and carry letters, scale bar and W/L; its own
    contour is the solid one (the mask's lesion n voxels), the other lesion dashed."""
    from hepanav.imaging.figures import resample_mask_to_plane
    from hepanav.segmentation.report import lesion_axes

    ct, result, seg, _, _ = two
    assert len(seg.lesions) == 2 and seg.lesion_map is not None
    n_slices = ct.GetSize()[2]
    for n, (centre, radius, _) in enumerate(TWO, 1):
        seed = np.asarray(centre)
        k = ct.TransformPhysicalPointToIndex(tuple(centre))[2]
        fig, seed_number, label, window = lesion_axes(seg, ct, n)
        assert seed_number == n and label == f"--seed {','.join(f'{v:g}' for v in centre)}"
        assert window == (400, round(seg.lesions[n - 1]["parenchyma_hu"]))
        axes = [ax for ax in fig.axes if hasattr(ax, "hepanav_plane")]
        assert [ax.hepanav_plane.name for ax in axes] == ["axial", "coronal", "sagittal"]
        assert all(ax.get_title() == f"lesion {n}/2: {ax.hepanav_plane.name} through seed {n}"
                   for ax in axes)  # fmt: skip
        axial = axes[0].hepanav_plane
        assert axial.table_mm == pytest.approx(seed[2], abs=1e-6)
        assert axial.source_slice == k + 1
        assert axial.source_slices == n_slices
        assert _caption(axes[0]).startswith(f"axial z = {seed[2]:+.1f} mm (LPS)")
        assert f"coronal plane at y {seed[1]:+.1f} mm" in _caption(axes[1])
        assert f"sagittal plane at x {seed[0]:+.1f} mm" in _caption(axes[2])
        own = sitk.Cast(seg.lesion_map == n, sitk.sitkUInt8)
        for ax, letters in zip(axes, ("RLAP", "RLSI", "APSI"), strict=True):
            plane = ax.hepanav_plane
            assert np.allclose(plane.centre, seed, atol=1e-6)  # centred on its seed
            assert f"W 400 / L {window[1]:g} HU" in _caption(ax)
            got = _letters(ax)
            assert got["orient-left"] + got["orient-right"] == letters[:2]
            assert got["orient-top"] + got["orient-bottom"] == letters[2:]
            assert ax.hepanav_scalebar.length_mm > 0
            (seed_line,) = [line for line in ax.lines if line.get_gid() == "seed"]
            cr, _ = plane.lps_to_pixel(seed[None])  # its seed drawn where it lies
            assert np.isclose(seed_line.get_xydata(), cr[0], atol=1e-6).all(axis=1).any()
            # the lesion's voxels fill its own contour: the plane holds the sphere's
            # cross-section through its centre (pi r^2, within 25 %)
            area = float((resample_mask_to_plane(own, plane) >= 0.5).sum())
            area *= plane.pixel_mm[0] * plane.pixel_mm[1]
            assert area == pytest.approx(np.pi * radius**2, rel=0.25)
        # only the coronal planes (y 0, 41-44 mm wide) reach the other lesion, 20 mm
        # off in x and 11.25 mm in z; the axial and sagittal miss it
        assert [ax.hepanav_others for ax in axes] == [False, True, False]


def test_two_lesion_report_has_a_row_of_planes_per_lesion(two):
    ct, result, seg, html, _ = two
    assert html.count('<figure class="lesion-views"') == 2
    assert html.count("<img") == 3  # two lesions' planes and the montage
    for n in (1, 2):
        assert f'<h3 id="lesion-{n}">Lesion {n} of 2 (seed {n}, --seed' in html
        assert f'alt="lesion {n} of 2: axial, coronal and sagittal planes through seed {n}' in html
        assert f"W 400 / L {round(seg.lesions[n - 1]['parenchyma_hu'])} HU, centred" in html
    assert "Slices through the seed</h2>" not in html  # the one-lesion figure is not there
    # each lesion's own HU values in its row; the lesion-1-only top-level rows are gone
    assert "attenuation at the seed</td>" not in html
    row = next(line for line in html.splitlines() if "<td>lesion 2 of 2</td>" in line)
    assert f"parenchyma {round(result.lesions[1].parenchyma_hu)} HU" in row


def test_one_lesion_report_keeps_one_row_of_planes(case, tmp_path):
    from hepanav.segmentation.pipeline import segment_image, write_outputs

    ct, _ = case
    seed = ",".join(f"{v:.2f}" for v in np.asarray(ct.TransformContinuousIndexToPhysicalPoint(
        [(n - 1) / 2 for n in ct.GetSize()])))  # fmt: skip
    out = tmp_path / "t.nii.gz"
    result, seg = segment_image("tumor", ct, "ct.nii.gz", out, seeds=[seed])
    write_outputs(result, seg, ct, out)
    html = (tmp_path / "t.html").read_text(encoding="utf-8")
    assert len(seg.lesions) == 1
    assert "Slices through the seed</h2>" in html and 'class="lesion-views"' not in html
    assert html.count("<img") == 2
    assert "attenuation at the seed</td>" in html


def test_each_lesion_records_its_own_hu_the_top_level_is_lesion_1s(two):
    """MASK.json: lesions[i] carry the lesion's own lesion_hu / parenchyma_hu / window_hu
    / appearance (lesion 2 is 20 HU darker by construction; its values are those of a
    run with its seed alone); the top-level fields are lesion 1's, and say so."""
    import json

    from hepanav.segmentation.pipeline import segment_image
    from hepanav.segmentation.schema import LesionRecord, SegmentationResult
    from segmentation_helpers import LIVER_HU

    ct, _, _, _, folder = two
    record = json.loads((folder / "t.json").read_text(encoding="utf-8"))
    lesions = record["lesions"]
    keys = ("lesion_hu", "parenchyma_hu", "window_hu", "appearance")
    for lesion, (_, _, contrast) in zip(lesions, TWO, strict=True):
        assert lesion["lesion_hu"] == pytest.approx(LIVER_HU + contrast, abs=8)
        assert lesion["parenchyma_hu"] == pytest.approx(LIVER_HU, abs=8)
        lo, hi = lesion["window_hu"]
        assert lo < lesion["lesion_hu"] < hi < lesion["parenchyma_hu"]
        assert lesion["appearance"] == "hypo"
    assert lesions[1]["lesion_hu"] < lesions[0]["lesion_hu"] - 10
    assert {k: record[k] for k in keys} == {k: lesions[0][k] for k in keys}
    alone, _ = segment_image("tumor", ct, "ct.nii.gz", folder / "two.nii.gz",
                             seeds=[",".join(f"{v:g}" for v in TWO[1][0])])  # fmt: skip
    assert lesions[1]["lesion_hu"] == alone.lesion_hu
    assert lesions[1]["parenchyma_hu"] == alone.parenchyma_hu
    assert tuple(lesions[1]["window_hu"]) == pytest.approx(alone.window_hu, abs=1e-9)
    # the schema says which lesion the top-level values are; old records still load
    fields = SegmentationResult.model_json_schema()["properties"]
    for key in keys:
        assert "lesion 1" in fields[key]["description"], key
        assert f"lesions[i].{key}" in fields[key]["description"], key
    own = LesionRecord.model_json_schema()["properties"]
    assert {"lesion_hu", "parenchyma_hu", "window_hu", "appearance"} <= set(own)
    old = LesionRecord.model_validate(
        {"seeds": ["--seed 1,2,3"], "volume_ml": 1.0, "equivalent_diameter_mm": 12.4}
    )
    assert old.parenchyma_hu is None and old.window_hu is None


# --- a CT whose slices are not axial (tester4: coronal/sagittal stacks of the same data) --


@pytest.mark.parametrize("order, view", [((0, 2, 1), "coronal"), ((2, 1, 0), "sagittal")])
def test_montage_of_a_non_axial_stack_shows_the_axial_planes_through_the_mask(case, order, view):
    """The same CT and mask re-stacked with coronal (or sagittal) slices (SimpleITK
    PermuteAxes: the voxels stay where they are in LPS). The montage must show the
    same axial planes as for the axial stack (same table z, the contour on each, the
    same area), captioned as axial reformats of a coronal/sagittal series without a
    slice number, and the report must say the CT's slices are not axial. On main it
    showed one fixed off-lesion plane 9-10 times, no contour, captioned "slice 95..."."""
    import dataclasses

    from hepanav.imaging.figures import resample_mask_to_plane
    from hepanav.segmentation.report import montage_axes, montage_figure, montage_slices

    ct, seg = case
    _, axial_levels, axial_shown, _ = montage_axes(seg, ct)
    want_z = [axial_levels.z_mm[i] for i in axial_shown]
    stacked = dataclasses.replace(seg, mask=sitk.PermuteAxes(seg.mask, list(order)))
    pct = sitk.PermuteAxes(ct, list(order))
    assert pct.GetSize() != ct.GetSize()  # really re-stacked
    fig, levels, shown, step = montage_axes(stacked, pct)
    assert levels.view == view and levels.slices is None
    assert [levels.z_mm[i] for i in shown] == pytest.approx(want_z, abs=1e-6)
    assert levels.step_mm == pytest.approx(ct.GetSpacing()[2])
    axes = [ax for ax in fig.axes if hasattr(ax, "hepanav_plane")]
    assert len(axes) == len(want_z)
    arr = sitk.GetArrayViewFromImage(seg.mask)
    px_area = float(np.prod(ct.GetSpacing()[:2]))
    for ax, z, k in zip(axes, want_z, axial_levels.slices, strict=True):
        plane = ax.hepanav_plane
        assert plane.table_mm == pytest.approx(z, abs=1e-6)
        caption = _caption(ax)
        assert f"axial reformat of a {view} series" in caption and "slice " not in caption
        assert f"z = {z:+.1f} mm (LPS)" in caption and "instance" not in caption
        on_plane = float((resample_mask_to_plane(stacked.mask, plane) >= 0.5).sum())
        area_plane = on_plane * plane.pixel_mm[0] * plane.pixel_mm[1]
        assert area_plane == pytest.approx(float(arr[k].sum()) * px_area, rel=0.15)
        assert len(ax.collections) >= 1  # the contour is drawn
    montage = montage_figure(stacked, pct)
    assert not montage.axial and montage.shown == [] and montage.count == len(want_z)
    with pytest.raises(ValueError, match=f"{view}, not axial"):
        montage_slices(stacked, pct)


def test_axial_view_of_a_coronal_stack_does_not_claim_an_axial_slice(case):
    """The three-plane figure's axial view of a coronal stack: "axial reformat of a
    coronal series" and its table z (main said "axial slice 104/173": a coronal slice)."""
    import dataclasses

    from hepanav.segmentation.report import slices_axes

    ct, seg = case
    order = [0, 2, 1]
    stacked = dataclasses.replace(seg, mask=sitk.PermuteAxes(seg.mask, order))
    fig = slices_axes(stacked, sitk.PermuteAxes(ct, order))
    axes = [ax for ax in fig.axes if hasattr(ax, "hepanav_plane")]
    seed = np.asarray(seg.seeds[0].lps)
    assert _caption(axes[0]).startswith("axial reformat of a coronal series")
    assert f"z = {seed[2]:+.1f} mm (LPS)" in _caption(axes[0])
    assert f"coronal plane at y {seed[1]:+.1f} mm" in _caption(axes[1])


def test_report_of_a_coronal_stack_says_its_slices_are_not_axial(case, tmp_path):
    from hepanav.segmentation.pipeline import segment_image, write_outputs

    ct, seg_axial = case
    pct = sitk.PermuteAxes(ct, [0, 2, 1])
    seed = ",".join(f"{v:.2f}" for v in seg_axial.seeds[0].lps)
    out = tmp_path / "t.nii.gz"
    result, seg = segment_image("tumor", pct, "ct.nii.gz", out, seeds=[seed])
    write_outputs(result, seg, pct, out)
    html = (tmp_path / "t.html").read_text(encoding="utf-8")
    assert "The CT's slices are coronal, not axial" in html
    assert "as in the slice captions" not in html
    assert "coronal CT slice" in html
    # the same mask as on the axial stack, voxel for voxel in LPS
    back = sitk.PermuteAxes(seg.mask, [0, 2, 1])
    assert np.array_equal(
        sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(seg_axial.mask)
    )


def test_report_of_a_dicom_ct_names_the_dicom_instances(case, tmp_path):
    """The same CT written as a DICOM series numbered from the top (Instance Number 1 =
    most superior slice, as a head-first acquisition): each montage view is titled with
    the instance a PACS shows for that slice (n - k for array slice k), its caption gives
    LPS z and that instance, and the report names the first and last instances."""
    from dicom_helpers import volume_slices, write_slices
    from hepanav.imaging import load_ct
    from hepanav.segmentation.pipeline import segment_image, write_outputs
    from hepanav.segmentation.report import montage_axes, montage_figure

    ct_nifti, seg_nifti = case
    hu = sitk.GetArrayFromImage(ct_nifti)
    n = hu.shape[0]
    positions = [ct_nifti.TransformIndexToPhysicalPoint((0, 0, k)) for k in range(n)][::-1]
    dy, dx = ct_nifti.GetSpacing()[1], ct_nifti.GetSpacing()[0]
    datasets = volume_slices(np.rint(hu[::-1]), positions, pixel_spacing=(dy, dx))
    write_slices(tmp_path / "series", datasets)  # file i: instance i + 1, superior first
    ct, record = load_ct(tmp_path / "series")
    assert record.format == "DICOM series" and ct.GetSize() == ct_nifti.GetSize()
    seed = ",".join(f"{v:.2f}" for v in seg_nifti.seeds[0].lps)
    out = tmp_path / "t.nii.gz"
    result, seg = segment_image("tumor", ct, tmp_path / "series", out, seeds=[seed])
    fig, levels, shown, _ = montage_axes(seg, ct)
    axes = [ax for ax in fig.axes if hasattr(ax, "hepanav_plane")]
    assert levels.view == "axial" and len(axes) == len(shown) >= 8
    for ax, i in zip(axes, shown, strict=True):
        k, z = levels.slices[i], levels.z_mm[i]
        assert ax.get_title() == f"DICOM instance {n - k}"
        caption = _caption(ax).replace("\n", " · ")  # the montage's two-line caption
        assert caption.startswith(f"axial z = {z:+.1f} mm (LPS) · DICOM instance {n - k} · W")
    montage = montage_figure(seg, ct)
    first, last = levels.slices[0], levels.slices[-1]
    assert (montage.first_instance, montage.last_instance) == (n - first, n - last)
    write_outputs(result, seg, ct, out)
    html = (tmp_path / "t.html").read_text(encoding="utf-8")
    assert f"(DICOM instances {n - first} to {n - last})" in html
