"""Margin report figures: residual tumour, MAM crosshair, 3D view, CT background, fusion check.

Analytic spheres: tumour r = 8 mm offset along +x (patient LEFT) in a zone R = 13 mm;
offset 2 mm gives MAM = +3 mm (no residual), offset 7 mm gives MAM = -2 mm (residual
tumour on the left).
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

from browser_helpers import chromium, screenshot  # noqa: F401  (pytest fixtures)
from hepanav.imaging.figures import edge_letters, resample_mask_to_plane, resample_to_plane
from hepanav.margin.measure import measure_margin
from hepanav.margin.views import fusion_figure, mam_point, slices_axes

SIZE = (44, 44, 44)


def sphere(centre, radius, direction=np.eye(3)) -> sitk.Image:
    """A sphere mask in physical space on a 1 mm grid centred on the origin."""
    img = sitk.Image(list(SIZE), sitk.sitkUInt8)
    img.SetDirection(direction.ravel().tolist())
    half = (np.asarray(SIZE) - 1) / 2.0
    img.SetOrigin((-(direction @ half)).tolist())
    idx = np.indices(SIZE[::-1]).reshape(3, -1)[::-1].T.astype(float)
    lps = idx @ direction.T + np.asarray(img.GetOrigin())
    inside = np.linalg.norm(lps - np.asarray(centre), axis=1) <= radius
    out = sitk.GetImageFromArray(inside.reshape(SIZE[::-1]).astype(np.uint8))
    out.CopyInformation(img)
    return out


def write_case(folder, offset_mm, direction=np.eye(3)):
    folder.mkdir(parents=True, exist_ok=True)
    images = {
        "tumor": sphere((offset_mm, 0, 0), 8.0, direction),
        "ablation": sphere((0, 0, 0), 13.0, direction),
    }
    liver = sphere((0, 0, 0), 20.0, direction)
    # A CT in HU (read through load_ct): fat -100, liver 60, tumour 20 HU with 8 HU noise
    # inside a body of radius 21 mm, air (-1000 HU) in the corners beyond it.
    hu = sitk.GetArrayFromImage(
        sitk.Cast(liver, sitk.sitkInt16) * 160
        - 100
        + sitk.Cast(images["tumor"], sitk.sitkInt16) * -40
    ) + np.random.default_rng(0).normal(0.0, 8.0, SIZE[::-1])
    body = sitk.GetArrayFromImage(sphere((0, 0, 0), 21.0, direction)) > 0
    images["ct"] = sitk.GetImageFromArray(np.where(body, hu, -1000.0).round().astype(np.int16))
    images["ct"].CopyInformation(liver)
    paths = {}
    for name, image in images.items():
        paths[name] = folder / f"{name}.nii.gz"
        sitk.WriteImage(image, str(paths[name]))
    return paths


def run(cli, paths, out, *extra):
    code, stdout, err = cli(
        "margin", "--tumor", paths["tumor"], "--ablation", paths["ablation"], "--out", out, *extra
    )
    assert code == 0, err
    return (out / "report.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("offset, residual_rows", [(2.0, 0), (7.0, 1)], ids=["mam+3", "mam-2"])
def test_residual_table_appears_exactly_when_mam_is_negative(
    cli,
    screenshot,
    tmp_path,
    offset,
    residual_rows,
):
    paths = write_case(tmp_path / "case", offset)
    html = run(cli, paths, tmp_path / "out", "--ct", paths["ct"])
    shot = screenshot(tmp_path / "out" / "report.html")
    page = shot.page
    assert shot.console_errors == []
    rows = page.locator("table.residual tr")
    assert rows.count() == (residual_rows + 1 if residual_rows else 0)
    if residual_rows:
        cells = rows.nth(1).locator("td").all_inner_texts()
        assert cells[1] == "1"  # the lesion (one here)
        assert cells[2] == "left"  # the tumour pokes out toward the patient's left
        assert float(cells[3].split()[0]) == pytest.approx(-2.0, abs=0.5)
        assert "incomplete ablation" in page.inner_text("body")
    else:
        assert "None: no part of the analysed tumour surface" in page.inner_text("body")
    # three static figures (slices, 3D, histogram) and the interactive 3D view, drawn offline
    assert html.count("data:image/png;base64") == 3
    assert page.locator("#margin3d").get_attribute("data-drawn") == "1"
    assert "no CT given" not in html  # --ct was given
    assert re.search(r"MAM point .*LPS", page.inner_text("body"))


def test_no_ct_says_outlines_only(cli, tmp_path):
    paths = write_case(tmp_path / "case", 2.0)
    html = run(cli, paths, tmp_path / "out")
    assert "no CT given: outlines only" in html


def test_ct_from_another_patient_is_refused(cli, tmp_path):
    paths = write_case(tmp_path / "case", 2.0)
    far = sitk.ReadImage(str(paths["ct"]))
    far.SetOrigin((500.0, 500.0, 500.0))
    sitk.WriteImage(far, str(tmp_path / "far.nii.gz"))
    code, _, err = cli(
        "margin",
        "--tumor",
        paths["tumor"],
        "--ablation",
        paths["ablation"],
        "--ct",
        tmp_path / "far.nii.gz",
        "--out",
        tmp_path / "out",
    )
    assert code == 2 and "far.nii.gz" in err and "overlap" in err


@pytest.mark.parametrize(
    "direction",
    [np.eye(3), np.diag([-1.0, 1.0, 1.0]), np.diag([-1.0, -1.0, 1.0])],
    ids=["identity", "x-flipped", "xy-flipped"],
)
def test_mam_crosshair_and_letters_follow_patient_space(direction):
    """The residual tumour is on the patient's left: it must be drawn on the side lettered L."""
    tumour = sphere((7.0, 0, 0), 8.0, direction)
    zone = sphere((0, 0, 0), 13.0, direction)
    m = measure_margin(tumour, zone)
    point = mam_point(m)
    assert point[0] == pytest.approx(15.0, abs=1.0)  # left pole of the tumour
    fig = slices_axes(m, None, zone)
    axes = [ax for ax in fig.axes if hasattr(ax, "hepanav_plane")]
    assert [ax.hepanav_plane.name for ax in axes] == ["axial", "coronal", "sagittal"]
    for ax in axes[:2]:  # axial and coronal: the tumour lies toward R of the MAM point
        plane = ax.hepanav_plane
        letters = {t.get_gid(): t.get_text() for t in ax.texts if t.get_gid()}
        assert letters["orient-right"] == "L" and letters["orient-left"] == "R"
        frac = resample_mask_to_plane(tumour, plane)
        cols = np.nonzero(frac >= 0.5)[1]
        crosshair_col = plane.lps_to_pixel(point[None])[0][0, 0]
        assert cols.mean() < crosshair_col - 3  # tumour body on the screen's left (patient R)
        assert edge_letters(plane.right, plane.down)["right"] == "L"
        # crosshair lines were drawn at the MAM point
        assert sum(1 for line in ax.lines if line.get_gid() == "crosshair") == 4
    sag = axes[2]
    letters = {t.get_gid(): t.get_text() for t in sag.texts if t.get_gid()}
    assert letters["orient-left"] == "A" and letters["orient-top"] == "S"
    # each caption names its own plane and where it lies (not the axial slice/table z)
    captions = [ax.get_xlabel() for ax in axes]
    found = re.match(r"axial z = ([+-]\d+\.\d) mm \(LPS\)", captions[0])
    assert found and float(found[1]) == pytest.approx(point[2], abs=0.051), captions[0]
    assert "slice" not in captions[0]  # no array slice number (tester: not the PACS's)
    for caption, plane, axis in zip(captions[1:], ("coronal", "sagittal"), (1, 0), strict=True):
        found = re.match(rf"{plane} plane at ([xy]) ([+-]\d+\.\d) mm \(LPS\)", caption)
        assert found, caption
        assert found[1] == "xy"[axis] and "slice" not in caption and "table" not in caption
        assert float(found[2]) == pytest.approx(point[axis], abs=0.051)
    assert float(re.search(r"x ([+-][\d.]+)", captions[2])[1]) == pytest.approx(15.0, abs=1.0)
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_fusion_checkerboard_aligns_only_with_the_right_transform(tmp_path):
    """Pre CT = post CT moved 6 mm; with the true transform the checkerboard is seamless."""
    post = sitk.Cast(sphere((0, 0, 0), 14.0), sitk.sitkFloat32) * 200 - 100
    shift = np.array([6.0, 0.0, 0.0])
    pre = sitk.Resample(
        post, post, sitk.TranslationTransform(3, (-shift).tolist()), sitk.sitkLinear, -100.0
    )
    transform = sitk.TranslationTransform(3, shift.tolist())  # post point -> pre point
    from hepanav.imaging.figures import three_planes

    for plane in three_planes(post, (0, 0, 0), size_mm=40, pixel_mm=1.0):
        a = resample_to_plane(post, plane, default_value=-100)
        good = resample_to_plane(pre, plane, default_value=-100, transform=transform)
        bad = resample_to_plane(pre, plane, default_value=-100)
        assert np.abs(a - good).mean() < 2.0
        if plane.name != "sagittal":  # the shift is along x, in the axial/coronal planes
            assert np.abs(a - bad).mean() > 10.0
    tumour = sphere((0, 0, 0), 6.0)
    m = measure_margin(tumour, sphere((0, 0, 0), 12.0))
    liver = sphere((0, 0, 0), 18.0)
    run = SimpleNamespace(
        images={"post": post, "pre": pre, "liver_post": liver, "liver_pre": liver},
        registration=SimpleNamespace(transform=transform),
        measurement=m,
    )
    uri = fusion_figure(run, size_mm=40)
    assert uri.startswith("data:image/png;base64,") and len(uri) > 5000


def test_ct_option_is_refused_in_the_pair_mode(cli, tmp_path):
    paths = write_case(tmp_path / "case", 2.0)
    code, _, err = cli(
        "margin",
        "--tumor",
        paths["tumor"],
        "--ablation",
        paths["ablation"],
        "--pre",
        paths["ct"],
        "--post",
        paths["ct"],
        "--liver-pre",
        paths["ablation"],
        "--liver-post",
        paths["ablation"],
        "--ct",
        paths["ct"],
        "--out",
        tmp_path / "o",
    )
    assert code == 2 and "--ct" in err and "--post" in err
