"""``hepanav margin``: outputs of a run, and every bad input -> one line, exit code 2."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import SimpleITK as sitk

from cli_helpers import one_line_error
from dicom_helpers import write_ct_series
from hepanav import DISCLAIMER
from hepanav.margin.pipeline import NO_SURFACE_MM
from hepanav.margin.schema import MarginResult

SPACING = (1.0, 1.0, 1.0)


def sphere_mask(centre, radius, size=(44, 44, 44), origin=(-21.5, -21.5, -21.5)) -> sitk.Image:
    idx = np.indices(size[::-1]).reshape(3, -1)[::-1].T.astype(float)
    points = idx * np.asarray(SPACING) + np.asarray(origin)
    inside = np.linalg.norm(points - np.asarray(centre), axis=1) <= radius
    image = sitk.GetImageFromArray(inside.reshape(size[::-1]).astype(np.uint8))
    image.SetSpacing(SPACING)
    image.SetOrigin(origin)
    return image


@pytest.fixture()
def masks(tmp_path):
    """Tumour r = 8 offset 2 mm in a zone R = 13 (MAM = 3 mm), liver, and a small CT."""
    paths = {
        "tumor": sphere_mask((2.0, 0, 0), 8.0),
        "ablation": sphere_mask((0, 0, 0), 13.0),
        "liver": sphere_mask((0, 0, 0), 20.0),
    }
    # A CT in HU (read through load_ct): liver 60 HU, fat -100 HU with 8 HU noise inside a
    # body of radius 21 mm, air (-1000 HU) in the corners beyond it.
    hu = sitk.GetArrayFromImage(sitk.Cast(paths["liver"], sitk.sitkInt16) * 160 - 100)
    hu = hu + np.random.default_rng(0).normal(0.0, 8.0, hu.shape)
    body = sitk.GetArrayFromImage(sphere_mask((0, 0, 0), 21.0)) > 0
    ct = sitk.GetImageFromArray(np.where(body, hu, -1000.0).round().astype(np.int16))
    ct.CopyInformation(paths["liver"])
    out = {}
    for name, image in {**paths, "ct": ct}.items():
        out[name] = tmp_path / f"{name}.nii.gz"
        sitk.WriteImage(image, str(out[name]))
    return out


def test_margin_run_writes_json_map_and_report(cli, masks, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = cli(
        "margin",
        "--tumor",
        masks["tumor"],
        "--ablation",
        masks["ablation"],
        "--liver",
        masks["liver"],
        "--out",
        out,
    )
    assert code == 0, err
    assert "MAM 3." in stdout or "MAM 2.9" in stdout
    assert " mm ± " in stdout.splitlines()[0]  # the interval's half-width on the line
    result = MarginResult.model_validate_json((out / "margin.json").read_text(encoding="utf-8"))
    raw = json.loads((out / "margin.json").read_text(encoding="utf-8"))
    for key in (
        "min_margin_mm",
        "percentiles_mm",
        "surface_fraction_below_0mm",
        "surface_fraction_below_5mm",
        "shell_coverage_5mm",
        "shell_coverage_6mm",
        "category",
        "short_regions",
        "subcapsular_excluded_fraction",
        "tumor_volume_ml",
        "ablation_volume_ml",
        "registration",
        "disclaimer",
    ):
        assert key in raw
    assert set(raw["registration"]) >= {"liver_dice", "tre_mm", "seconds"}
    assert result.min_margin_mm == pytest.approx(3.0, abs=0.5)
    assert result.category == "0-5mm"
    assert result.registration.tre_mm is None and result.registration.liver_dice is None
    assert result.disclaimer == DISCLAIMER
    # The short region faces +x (left), where the tumour is closest to the zone surface.
    assert result.short_regions[0].direction == "left"
    # The margin map: -1000 off the tumour surface, the margins on it.
    margin_map = sitk.ReadImage(str(out / "margin_map.nii.gz"))
    values = sitk.GetArrayFromImage(margin_map)
    painted = values[values > NO_SURFACE_MM]
    assert painted.min() == pytest.approx(result.min_margin_mm, abs=1e-4)
    assert painted.max() == pytest.approx(13.0 - 8.0 + 2.0, abs=0.5)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Not a medical device" in html and html.count("data:image/png;base64") == 3


def test_subcapsular_option_reports_the_excluded_fraction(cli, masks, tmp_path):
    # Liver of radius 20 around a tumour reaching 10 mm from the centre: the capsule is
    # 10 mm away, so 5 mm exclusion leaves everything, 12 mm removes the +x side.
    args = [
        "margin",
        "--tumor",
        masks["tumor"],
        "--ablation",
        masks["ablation"],
        "--liver",
        masks["liver"],
        "--subcapsular",
    ]
    code, _, err = cli(*args, "--out", tmp_path / "a")
    assert code == 0, err
    assert (
        json.loads((tmp_path / "a" / "margin.json").read_text(encoding="utf-8"))[
            "subcapsular_excluded_fraction"
        ]
        == 0.0
    )
    code, _, err = cli(*args, "--subcapsular-mm", "12", "--out", tmp_path / "b")
    assert code == 0, err
    # Points with |p| > 8 are within 12 mm of the capsule: the cap cos > (64-4-64)/32.
    fraction = json.loads((tmp_path / "b" / "margin.json").read_text(encoding="utf-8"))[
        "subcapsular_excluded_fraction"
    ]
    assert fraction == pytest.approx((1 - (64 - 4 - 64) / 32) / 2, abs=0.04)


# ---- bad inputs: one line, exit 2 ------------------------------------------------------


def test_missing_file(cli, masks, tmp_path):
    code, _, err = cli(
        "margin",
        "--tumor",
        tmp_path / "nope.nii.gz",
        "--ablation",
        masks["ablation"],
        "--out",
        tmp_path / "o",
    )
    one_line_error(code, err, "nope.nii.gz", "does not exist")


def test_unreadable_file(cli, masks, tmp_path):
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"this is not a NIfTI file")
    code, _, err = cli(
        "margin", "--tumor", masks["tumor"], "--ablation", broken, "--out", tmp_path / "o"
    )
    one_line_error(code, err, "broken.nii.gz", "cannot read")


def test_2d_input(cli, masks, tmp_path):
    flat = sitk.GetImageFromArray(np.ones((1, 20, 20), np.uint8))
    path = tmp_path / "flat.nii.gz"
    sitk.WriteImage(flat, str(path))
    code, _, err = cli(
        "margin", "--tumor", path, "--ablation", masks["ablation"], "--out", tmp_path / "o"
    )
    one_line_error(code, err, "flat.nii.gz", "3D")


def test_empty_mask(cli, masks, tmp_path):
    empty = sitk.Image([20, 20, 20], sitk.sitkUInt8)
    path = tmp_path / "empty.nii.gz"
    sitk.WriteImage(empty, str(path))
    code, _, err = cli(
        "margin", "--tumor", masks["tumor"], "--ablation", path, "--out", tmp_path / "o"
    )
    one_line_error(code, err, "empty.nii.gz", "empty")


def test_masks_not_overlapping(cli, masks, tmp_path):
    far = sphere_mask((500.0, 0, 0), 8.0, origin=(478.5, -21.5, -21.5))
    path = tmp_path / "far.nii.gz"
    sitk.WriteImage(far, str(path))
    code, _, err = cli(
        "margin", "--tumor", path, "--ablation", masks["ablation"], "--out", tmp_path / "o"
    )
    one_line_error(code, err, "far.nii.gz", "does not overlap")


def pair_args(masks, **override):
    args = {
        "--pre": masks["ct"],
        "--post": masks["ct"],
        "--tumor": masks["tumor"],
        "--ablation": masks["ablation"],
        "--liver-pre": masks["liver"],
        "--liver-post": masks["liver"],
    }
    args.update(override)
    flat = ["margin"]
    for key, value in args.items():
        if value is not None:
            flat += [key, value]
    return flat


def test_mask_not_overlapping_its_image(cli, masks, tmp_path):
    far = sphere_mask((500.0, 0, 0), 8.0, origin=(478.5, -21.5, -21.5))
    path = tmp_path / "far_tumor.nii.gz"
    sitk.WriteImage(far, str(path))
    code, _, err = cli(*pair_args(masks, **{"--tumor": path}), "--out", tmp_path / "o")
    one_line_error(code, err, "far_tumor.nii.gz", "does not overlap")


def test_incomplete_pair_options(cli, masks, tmp_path):
    code, _, err = cli(*pair_args(masks, **{"--liver-post": None}), "--out", tmp_path / "o")
    one_line_error(code, err, "--liver-post")


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_bad_subcapsular_distance(cli, masks, tmp_path, value):
    code, _, err = cli(
        "margin",
        "--tumor",
        masks["tumor"],
        "--ablation",
        masks["ablation"],
        "--liver",
        masks["liver"],
        "--subcapsular",
        "--subcapsular-mm",
        value,
        "--out",
        tmp_path / "o",
    )
    one_line_error(code, err, "--subcapsular-mm", "finite distance >= 0")


def test_subcapsular_distance_without_the_exclusion(cli, masks, tmp_path):
    # Running without the exclusion the user gave a distance for would mislead.
    code, _, err = cli(
        "margin",
        "--tumor",
        masks["tumor"],
        "--ablation",
        masks["ablation"],
        "--liver",
        masks["liver"],
        "--subcapsular-mm",
        "3",
        "--out",
        tmp_path / "o",
    )
    one_line_error(code, err, "--subcapsular-mm", "only applies with --subcapsular")
    assert not (tmp_path / "o").exists()


def test_subcapsular_without_a_liver_mask_names_the_option_given(cli, masks, tmp_path):
    # --subcapsular-mm was not given: the error names --subcapsular and what it needs.
    code, _, err = cli(
        "margin",
        "--tumor",
        masks["tumor"],
        "--ablation",
        masks["ablation"],
        "--subcapsular",
        "--out",
        tmp_path / "o",
    )
    one_line_error(code, err, "--subcapsular", "needs a liver mask: --liver")
    assert "--subcapsular-mm" not in err
    assert not (tmp_path / "o").exists()


def test_tumour_given_as_liver(cli, masks, tmp_path):
    # The tumour (r = 8) lies inside the dilated ablation-zone exclusion (r = 13 + 5):
    # nothing would be left for the registration metric.
    liver = masks["tumor"]
    code, _, err = cli(
        *pair_args(masks, **{"--liver-pre": liver, "--liver-post": liver}), "--out", tmp_path / "o"
    )
    one_line_error(code, err, "--liver-post", "no liver left for the registration")


def test_bad_landmark_file(cli, masks, tmp_path):
    bad = tmp_path / "points.csv"
    bad.write_text("name,a,b\n1,2,3\n")
    code, _, err = cli(
        *pair_args(masks), "--landmarks-pre", bad, "--landmarks-post", bad, "--out", tmp_path / "o"
    )
    one_line_error(code, err, "points.csv", "id,x,y,z")


def _series(folder, **kwargs):
    volume = np.full((6, 16, 16), 40, np.int16)
    return write_ct_series(folder, volume, spacing_xyz=(1.0, 1.0, 2.0), **kwargs)


def test_dicom_series_with_missing_slice(cli, masks, tmp_path):
    folder = tmp_path / "missing"
    paths = _series(folder)
    paths[3].unlink()
    code, _, err = cli(*pair_args(masks, **{"--pre": folder}), "--out", tmp_path / "o")
    one_line_error(code, err, "missing", "missing slice")


def test_dicom_series_unevenly_spaced(cli, masks, tmp_path):
    folder = tmp_path / "uneven"
    _series(folder, slice_positions_mm=[0.0, 2.0, 4.0, 7.0, 9.0, 11.0])
    code, _, err = cli(*pair_args(masks, **{"--post": folder}), "--out", tmp_path / "o")
    one_line_error(code, err, "uneven", "unevenly spaced")


def test_dicom_folder_with_several_series(cli, masks, tmp_path):
    folder = tmp_path / "two"
    _series(folder, series_uid="1.2.826.0.1.3680043.8.498.11", prefix="a")
    _series(folder, series_uid="1.2.826.0.1.3680043.8.498.22", prefix="b")
    code, _, err = cli(*pair_args(masks, **{"--pre": folder}), "--out", tmp_path / "o")
    one_line_error(
        code, err, "2 DICOM series", "1.2.826.0.1.3680043.8.498.11", "1.2.826.0.1.3680043.8.498.22"
    )


def test_margin_writes_the_surface_meshes_in_ras_with_the_margin_per_vertex(cli, masks, tmp_path):
    """GIfTI meshes for the web viewer: tumour r = 8 mm at LPS (2, 0, 0) = RAS (-2, 0, 0),
    zone R = 13 mm at the origin; the margin of a tumour vertex is 13 - its distance from
    the zone centre (spheres), the value the layer must carry."""
    import nibabel as nib

    out = tmp_path / "out"
    code, _, err = cli(
        "margin", "--tumor", masks["tumor"], "--ablation", masks["ablation"], "--out", out
    )
    assert code == 0, err
    tumour = nib.load(str(out / "surface" / "tumour.surf.gii"))
    points = tumour.agg_data("NIFTI_INTENT_POINTSET")
    faces = tumour.agg_data("NIFTI_INTENT_TRIANGLE")
    assert tumour.darrays[0].coordsys.dataspace == 1  # NIFTI_XFORM_SCANNER_ANAT (RAS)
    assert faces.max() == len(points) - 1 and len(faces) > 100
    radius = np.linalg.norm(points - np.array([-2.0, 0.0, 0.0]), axis=1)
    assert np.abs(radius - 8.0).max() < 0.5
    margin = nib.load(str(out / "surface" / "tumour_margin.func.gii")).darrays[0].data
    assert margin.shape == (len(points),)
    expected = 13.0 - np.linalg.norm(points, axis=1)
    assert np.abs(margin - expected).max() < 0.5
    result = json.loads((out / "margin.json").read_text(encoding="utf-8"))
    assert margin.min() == pytest.approx(result["min_margin_mm"], abs=0.1)
    zone = nib.load(str(out / "surface" / "ablation_zone.surf.gii"))
    zone_points = zone.agg_data("NIFTI_INTENT_POINTSET")
    assert np.abs(np.linalg.norm(zone_points, axis=1) - 13.0).max() < 0.5


def test_masks_from_seeds_are_never_decisive_and_recorded_where_they_end(masks, tmp_path):
    """Masks segmented from seeds (``margin --tumor-seed/--ablation-seed``) carry an error
    the interval does not hold: the same measurement that is decisive with given masks
    (MAM 3 mm, u about 1 mm: 3 mm from both 0 and 5 mm) is reported NOT decisive, the rule
    says why, and each seeded input is recorded at its final place, not the temporary
    folder it was read from."""
    from hepanav.margin.pipeline import MarginInputs, run_margin

    given = run_margin(
        MarginInputs(tumor=masks["tumor"], ablation=masks["ablation"]),
        tmp_path / "given",
        report=False,
    ).result
    assert given.uncertainty.decisive  # the baseline: the rule alone lets it through
    final = tmp_path / "final" / "segmentation" / "zone-final.nii.gz"
    seeded = run_margin(
        MarginInputs(
            tumor=masks["tumor"], ablation=masks["ablation"], from_seeds={"ablation": final}
        ),
        tmp_path / "seeded",
        report=False,
    ).result
    assert seeded.min_margin_mm == pytest.approx(given.min_margin_mm)
    assert not seeded.uncertainty.decisive
    # given masks: [MAM - u, MAM + u]; seeded: no interval (u leaves out the segmentation
    # error, so it would claim a bound it does not have), and the reason says so
    mam, u = given.min_margin_mm, given.uncertainty.half_width_mm
    assert given.uncertainty.min_margin_interval_mm == pytest.approx((mam - u, mam + u))
    assert given.uncertainty.interval_withheld_reason is None
    assert seeded.uncertainty.min_margin_interval_mm is None
    reason = seeded.uncertainty.interval_withheld_reason
    assert "ablation zone was segmented automatically" in reason
    assert "not the segmentation error" in reason
    assert "seeds (ablation zone)" in seeded.uncertainty.rule
    assert "NOT included" in seeded.uncertainty.source
    files = {r.role: r for r in seeded.inputs}
    assert files["ablation zone"].file.endswith("zone-final.nii.gz")
    assert any("from a seed" in n for n in files["ablation zone"].notes)
    assert files["tumor"].file.endswith("tumor.nii.gz")
    assert not any("from a seed" in n for n in files["tumor"].notes)


def test_a_mask_written_by_hepanav_segment_is_known_as_automatic(masks, tmp_path):
    """The web application and a user running ``segment`` then ``margin`` pass the masks as
    files: the segmentation record beside a mask (``<stem>.json`` with the structure and its
    seeds) marks it as automatic, so the MAM is not decisive there either; a JSON file
    that is not such a record (or none) changes nothing."""
    import shutil

    from hepanav.margin.pipeline import MarginInputs, automatic_segmentation, run_margin

    zone = tmp_path / "zone.nii.gz"
    shutil.copy(masks["ablation"], zone)
    assert not automatic_segmentation(zone)
    (tmp_path / "zone.json").write_text('{"note": "something else"}', encoding="utf-8")
    assert not automatic_segmentation(zone)
    (tmp_path / "zone.json").write_text(
        '{"structure": "ablation", "seeds": [{"lps_mm": [0, 0, 0]}]}', encoding="utf-8"
    )
    assert automatic_segmentation(zone)
    result = run_margin(
        MarginInputs(tumor=masks["tumor"], ablation=zone), tmp_path / "out", report=False
    ).result
    assert not result.uncertainty.decisive and "ablation zone" in result.uncertainty.rule


def test_terminal_line_of_seeded_masks_has_no_interval(cli, masks, tmp_path):
    """Through the command: a mask written by ``hepanav segment`` gives no ± in the terminal
    line and a null interval with its reason in margin.json."""
    import shutil

    zone = tmp_path / "zone.nii.gz"
    shutil.copy(masks["ablation"], zone)
    (tmp_path / "zone.json").write_text(
        '{"structure": "ablation", "seeds": [{"lps_mm": [0, 0, 0]}]}', encoding="utf-8"
    )
    code, stdout, err = cli(
        "margin", "--tumor", masks["tumor"], "--ablation", zone, "--out", tmp_path / "o"
    )
    assert code == 0, err
    first = stdout.splitlines()[0]
    assert re.match(
        r"MAM (2\.9|3\.0|3\.1) mm \(no interval: automatic masks\) \(0-5mm, NOT decisive\)", first
    ), first
    assert "±" not in first
    assert "no interval: the ablation zone was segmented automatically" in stdout
    data = json.loads((tmp_path / "o" / "margin.json").read_text(encoding="utf-8"))
    assert data["uncertainty"]["min_margin_interval_mm"] is None
    assert "segmented automatically" in data["uncertainty"]["interval_withheld_reason"]
    report = (tmp_path / "o" / "report.html").read_text(encoding="utf-8")
    assert "no interval</strong>: the ablation zone was segmented automatically" in report


def test_terminal_line_names_the_residual_tumour(cli, masks, tmp_path):
    """Tumour r = 8 offset 6 mm in a zone R = 13: MAM = 13 - 14 = -1 mm; the tumour outside
    the zone is the sphere minus its lens with the zone, 4/3 pi 8^3 - pi 15^2 213 / 72 =
    53.6 mm^3. The terminal line names the residual region and its volume."""
    tumour = tmp_path / "tumour_out.nii.gz"
    sitk.WriteImage(sphere_mask((6.0, 0, 0), 8.0), str(tumour))
    code, stdout, err = cli(
        "margin", "--tumor", tumour, "--ablation", masks["ablation"], "--out", tmp_path / "o"
    )
    assert code == 0, err
    data = json.loads((tmp_path / "o" / "margin.json").read_text(encoding="utf-8"))
    assert data["min_margin_mm"] == pytest.approx(-1.0, abs=0.3)
    regions = data["residual_regions"]
    assert len(regions) == 1
    volume = sum(r["volume_ml"] for r in regions)
    assert volume == pytest.approx(4 / 3 * np.pi * 8**3 / 1000 - np.pi * 225 * 213 / 72 / 1000,
                                   rel=0.5)  # fmt: skip
    first = stdout.splitlines()[0]
    assert "(incomplete" in first
    assert f"residual tumour: 1 region(s), {volume:.2f} ml outside the zone" in first


def test_terminal_line_never_prints_a_negative_zero(masks, tmp_path):
    """No "-0.0": a zero is 0.0 whatever its sign bit, and a NEGATIVE MAM that rounds to 0
    at one digit keeps its sign with more digits (-0.04 -> -0.04; it was 0.0 beside
    "incomplete", tester: -0.014 mm), as in the report (``core.report.format_margin``)."""
    from hepanav.margin.commands import result_line
    from hepanav.margin.pipeline import MarginInputs, run_margin

    result = run_margin(
        MarginInputs(tumor=masks["tumor"], ablation=masks["ablation"]),
        tmp_path / "o",
        report=False,
    ).result
    for value in (-0.0, 0.04):
        line = result_line(result.model_copy(update={"min_margin_mm": value}))
        assert line.startswith("MAM 0.0 mm ± "), line
    line = result_line(result.model_copy(update={"min_margin_mm": -0.04}))
    assert line.startswith("MAM -0.04 mm ± "), line
    assert result_line(result.model_copy(update={"min_margin_mm": -0.06})).startswith("MAM -0.1")


@pytest.mark.parametrize(
    ("value", "digits", "text"),
    [(0.000125, 2, "<0.01"), (0.004, 2, "<0.01"), (0.006, 2, "0.01"), (0.0, 2, "0.00"),
     (0.4, 0, "<1"), (1.5, 2, "1.50"), (None, 2, "\u2014")],
)  # fmt: skip
def test_a_small_residual_volume_is_never_shown_as_zero(value, digits, text):
    """Tester9: one residual voxel (0.000125 ml) printed "1 region(s), 0.00 ml outside
    the zone"; ``core.report.format_amount`` keeps a non-zero amount off zero."""
    from hepanav.core.report import format_amount

    assert format_amount(value, digits) == text


def test_terminal_line_shows_a_one_voxel_residual_as_below_the_last_digit(masks, tmp_path):
    from hepanav.margin.commands import result_line
    from hepanav.margin.pipeline import MarginInputs, run_margin

    result = run_margin(
        MarginInputs(tumor=masks["tumor"], ablation=masks["ablation"]),
        tmp_path / "o",
        report=False,
    ).result
    line = result_line(result.model_copy(update={"residual_volume_ml": 0.000125}))
    assert "<0.01 ml outside the zone" in line, line


def test_seeded_run_checks_the_output_folder_before_segmenting(cli, masks, tmp_path):
    """An --out holding a user's file is refused before any segmentation: the seed, outside
    the CT, would be refused by the segmentation, so the error naming --out shows that the
    output was checked first; the user's file is untouched and nothing is created."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    seeded = ("margin", "--pre", masks["ct"], "--post", masks["ct"], "--tumor-seed",
              "500,500,500", "--ablation", masks["ablation"])  # fmt: skip
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = cli(*seeded, "--out", out)
    one_line_error(code, err, "mine", "holds files HepaNav did not write")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    # a refusal by the segmentation itself creates nothing either (not the parent of --out)
    code, _, err = cli(*seeded, "--out", tmp_path / "new" / "o")
    one_line_error(code, err, "--tumor-seed")
    assert not (tmp_path / "new").exists()


def test_masks_in_cm_refused(cli, masks, tmp_path):
    # Spacing and origin divided by 10 (a header in cm): the margin would read 0.3 mm.
    image = sitk.ReadImage(str(masks["tumor"]))
    image.SetSpacing(tuple(s / 10 for s in image.GetSpacing()))
    image.SetOrigin(tuple(o / 10 for o in image.GetOrigin()))
    cm = tmp_path / "tumor_cm.nii.gz"
    sitk.WriteImage(image, str(cm))
    code, _, err = cli(
        "margin", "--tumor", cm, "--ablation", masks["ablation"], "--out", tmp_path / "o"
    )
    one_line_error(code, err, "tumor_cm.nii.gz", "voxel size 0.1 x 0.1 x 0.1 mm", "units are mm")
    assert not (tmp_path / "o").exists()


def test_landmarks_in_ras_warned_in_json_report_and_terminal(cli, masks, tmp_path):
    # The pre images are the post images moved by t: a point p of post lies at p + t in
    # pre. Landmarks written in RAS (x, y negated) in both files give a TRE of
    # |(2 tx, 2 ty, 0)| = 20 mm at every landmark with the right registration.
    t = np.array([6.0, -8.0, 0.0])
    pre = {}
    for name in ("ct", "liver", "tumor"):
        image = sitk.ReadImage(str(masks[name]))
        image.SetOrigin(tuple(np.asarray(image.GetOrigin()) + t))
        pre[name] = tmp_path / f"pre_{name}.nii.gz"
        sitk.WriteImage(image, str(pre[name]))
    post_points = np.array([[5.0, 3.0, -4.0], [-6.0, 8.0, 2.0], [0.0, -9.0, 7.0]])
    ras = np.array([-1.0, -1.0, 1.0])
    for name, points in (("pre", (post_points + t) * ras), ("post", post_points * ras)):
        rows = [f"{i + 1},{x},{y},{z}" for i, (x, y, z) in enumerate(points)]
        (tmp_path / f"{name}.csv").write_text("id,x,y,z\n" + "\n".join(rows) + "\n")
    out = tmp_path / "out"
    code, stdout, err = cli(
        *pair_args(
            masks,
            **{"--pre": pre["ct"], "--liver-pre": pre["liver"], "--tumor": pre["tumor"]},
        ),
        "--landmarks-pre",
        tmp_path / "pre.csv",
        "--landmarks-post",
        tmp_path / "post.csv",
        "--out",
        out,
    )
    assert code == 0, err
    result = MarginResult.model_validate_json((out / "margin.json").read_text(encoding="utf-8"))
    assert result.registration.tre_mm["mean"] == pytest.approx(20.0, abs=1.0)
    warning = next(w for w in result.warnings if w.startswith("landmark TRE"))
    assert "both landmark files are likely in RAS, not LPS" in warning
    assert f"warning: {warning}" in stdout.splitlines()
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Warning: landmark TRE mean" in html and "likely in RAS" in html


def test_report_colours_an_adequate_mam_green_only_when_decisive(tmp_path):
    """Tumour r = 8 mm offset 2 mm in a zone R = 17 mm: MAM 7 mm by construction, above
    the 5 mm threshold. With given masks the MAM is decisive and shows green ('ok'); the
    same masks marked as segmented from seeds are NOT decisive, so the headline MAM and the
    "no short margin" line turn orange ('warn') and say so (a radiologist skimming the
    colours must not read 'adequate' from a MAM the tool cannot vouch for)."""
    from hepanav.margin.pipeline import MarginInputs, run_margin

    for name, image in {
        "tumor": sphere_mask((2.0, 0, 0), 8.0),
        "ablation": sphere_mask((0, 0, 0), 17.0),
    }.items():
        sitk.WriteImage(image, str(tmp_path / f"{name}.nii.gz"))
    tumor, zone = tmp_path / "tumor.nii.gz", tmp_path / "ablation.nii.gz"
    given = run_margin(MarginInputs(tumor=tumor, ablation=zone), tmp_path / "given")
    seeded = run_margin(
        MarginInputs(tumor=tumor, ablation=zone, from_seeds={"ablation": zone}),
        tmp_path / "seeded",
    )
    assert given.result.min_margin_mm == pytest.approx(7.0, abs=0.6)
    assert given.result.uncertainty.decisive and not seeded.result.uncertainty.decisive
    html_given = (tmp_path / "given" / "report.html").read_text(encoding="utf-8")
    html_seeded = (tmp_path / "seeded" / "report.html").read_text(encoding="utf-8")
    headline = r'Minimal ablative margin \(MAM\):\s*<strong class="(\w+)">'
    assert re.search(headline, html_given).group(1) == "ok"
    assert re.search(headline, html_seeded).group(1) == "warn"
    assert "interval " in html_given.split("category")[0]  # the interval beside the MAM
    assert re.search(r'<p class="ok">None: the whole analysed', html_given)
    assert re.search(r'<p class="warn">None: the whole analysed', html_seeded)
    assert "NOT decisive" in html_seeded.split("<table>")[0]


def test_same_mask_as_tumour_and_zone_refused(cli, masks, tmp_path):
    """The tumour mask given again as the zone (tester: MAM -2.9e-14 mm, "incomplete", no
    warning) is refused before anything is written; a zone differing by one voxel is not."""
    out = tmp_path / "o"
    code, _, err = cli(
        "margin", "--tumor", masks["tumor"], "--ablation", masks["tumor"], "--out", out
    )
    one_line_error(code, err, "--ablation", "identical voxel for voxel")
    assert not out.exists() or not any(out.iterdir())
    grown = sitk.ReadImage(str(masks["tumor"]))
    grown[33, 22, 22] = 1  # x = -21.5 + 33 = 11.5 mm: beyond the +x pole (2 + 8 = 10)
    path = tmp_path / "grown.nii.gz"
    sitk.WriteImage(grown, str(path))
    original = sitk.ReadImage(str(masks["tumor"]))
    assert sitk.GetArrayFromImage(grown).sum() == sitk.GetArrayFromImage(original).sum() + 1
    code, _, err = cli("margin", "--tumor", masks["tumor"], "--ablation", path, "--out", out)
    assert "identical" not in err
