"""Margin -> DICOM: every warning of the result reaches the SR and the Secondary Captures.

A radiologist reading the margin from the PACS sees the SR's numbers: a MAM that is only
a bound because of the image border, not decisive, from automatic masks, or measured
after a registration stage that was not kept must be said beside them. The old export
wrote none of it (no Qualitative Evaluations container, Image Comments without warnings).

Known answers by construction: tumour r 8 mm and zone r 13 mm concentric (true MAM
5.0 mm) on a 1 mm grid cut at x = 11.3 mm (33 columns): the zone is cut by the image
border at the MAM point, so the MAM (~3.3 mm) is a LOWER bound and not decisive
(tests/test_margin_border_bound.py); tumour r 6 mm and zone r 14 mm concentric on the
sphere CT: MAM ~8 mm +- 1 mm, decisive, no warning.
"""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from dicomout_helpers import dciodvfy, mask_like, qualitative_texts, sphere_case, write_study_ct
from hepanav.dicom.export import export_result
from hepanav.dicom.margin_objects import margin_warnings, registration_notes
from hepanav.imaging import write_image
from hepanav.margin.measure import BOUND_WARNINGS
from hepanav.margin.pipeline import MarginInputs, run_margin
from hepanav.margin.schema import MarginResult, Registration
from margin_helpers import ball, voxelise
from test_dicom_objects import ACCEPTED_WARNINGS

CODE = "MW001"  # 99HEPANAV Margin warning


def _sr(dicom):
    return pydicom.dcmread(dicom / "margin_sr.dcm")


def _figures(dicom):
    figures = sorted(dicom.glob("margin_figure*.dcm"))
    assert figures  # the report's figures as Secondary Captures
    return figures


def _valid(path):
    errors, warnings = dciodvfy(path)
    assert errors == [], (path.name, errors)
    unexplained = [w for w in warnings if not any(a in w for a in ACCEPTED_WARNINGS)]
    assert unexplained == [], (path.name, unexplained)


def _in_order(comments: str, texts: list[str]) -> None:
    """Each text appears in ``comments`` as ``WARNING: <text>``, in the given order."""
    at = 0
    for text in texts:
        found = comments.find(f"WARNING: {text}", at)
        assert found >= 0, text
        at = found + 1


@pytest.fixture(scope="module")
def border_case(tmp_path_factory):
    """The zone cut by the image border at the MAM point, on a DICOM CT of the masks' grid."""
    folder = tmp_path_factory.mktemp("border")
    keep = [33, 44, 44]
    tumour, zone = (
        sitk.RegionOfInterest(voxelise(ball((0, 0, 0), r), (1.0, 1.0, 1.0), 44), keep, [0, 0, 0])
        for r in (8.0, 13.0)
    )
    body = np.full(tuple(reversed(keep)), 60, dtype=np.int16)
    write_study_ct(folder / "ct", body, spacing_xyz=(1.0, 1.0, 1.0), origin_xyz=zone.GetOrigin())
    write_image(tumour, folder / "tumour.nii.gz")
    write_image(zone, folder / "zone.nii.gz")
    run_margin(
        MarginInputs(tumor=folder / "tumour.nii.gz", ablation=folder / "zone.nii.gz"),
        folder / "result",
    )
    export_result(folder / "result", folder / "dicom", folder / "ct")
    result = MarginResult.model_validate_json((folder / "result" / "margin.json").read_text())
    return folder, result


def test_a_mam_bound_by_the_image_border_is_said_in_the_sr_and_the_figures(border_case):
    """The SR holds the verdict (MAM AT LEAST ..., LOWER BOUND, NOT decisive) and every
    warning of margin.json, in order, as *Margin warning* TEXT items; each figure's
    Image Comments repeats them; "±" of the rule survives (UTF-8); both stay valid."""
    folder, result = border_case
    # ground truth of the case: a lower bound, not decisive, said in margin.json
    assert result.min_margin_bound == "lower" and not result.uncertainty.decisive
    assert result.min_margin_mm == pytest.approx(3.3, abs=0.4)
    assert BOUND_WARNINGS["lower"] in result.warnings
    assert result.plausibility == [] and result.uncertainty.interval_withheld_reason is None
    sr = _sr(folder / "dicom")
    texts = qualitative_texts(sr, CODE)
    assert texts is not None, "the SR has no warnings container"
    verdict = texts[0]
    assert verdict.startswith("MAM at least 3.")
    assert "LOWER BOUND: zone cut by the image border at the MAM point" in verdict
    assert "NOT decisive" in verdict and "±0.5 mm" in verdict
    # then margin.json's warnings, every one, in their order, and nothing else
    assert texts[1:] == result.warnings
    assert texts == margin_warnings(result)
    assert sr.SpecificCharacterSet == "ISO_IR 192"
    for path in _figures(folder / "dicom"):
        sc = pydicom.dcmread(path)
        _in_order(str(sc.ImageComments), texts)
        assert sc.SpecificCharacterSet == "ISO_IR 192"
    _valid(folder / "dicom" / "margin_sr.dcm")
    _valid(_figures(folder / "dicom")[0])


@pytest.fixture(scope="module")
def guarded_method():
    """A real ``registration.method`` with both notes of a stage not kept: the global
    stages forced 15 mm off (the metric guard keeps the initial alignment) and the local
    stage refused (allowed to move no point by more than 0.01 mm)."""
    from test_margin_metric_guard import START_BETTER, _pair, _register, _wrong_global_stages

    with pytest.MonkeyPatch.context() as patch:
        _wrong_global_stages(patch)
        result = _register(_pair(**START_BETTER), local_max_correction_mm=0.01)
    assert result.mode == "lesion_region" and not result.local.accepted
    return result.method, result.local.note


def test_every_kind_of_margin_warning_is_text_in_the_sr(border_case, guarded_method, cli, tmp_path):
    """A result with each kind (verdict, plausibility, warnings, subcapsular surface left
    out, registration stages not kept with the mode), exported by ``hepanav dicom
    export``: one TEXT item each in the terminal's and report's order."""
    folder, result = border_case
    method, local_note = guarded_method
    case = tmp_path / "result"
    shutil.copytree(folder / "result", case)
    small = (
        "the ablation zone (0.50 ml) is SMALLER than the tumour (2.14 ml): --pre and --post "
        "swapped, or the zone under-segmented?"
    )
    doubts = result.model_copy(
        update={
            "plausibility": [small],
            "subcapsular_exclusion_mm": 3.0,
            "subcapsular_excluded_fraction": 0.123,
            "registration": Registration(
                mode="lesion_region", method=method, liver_dice=None, tre_mm=None, seconds=9.0
            ),
        }
    )
    (case / "margin.json").write_text(doubts.model_dump_json(), encoding="utf-8")
    code, _, err = cli(
        "dicom", "export", case, "--source", folder / "ct", "--out", tmp_path / "dicom"
    )
    assert code == 0, err
    texts = qualitative_texts(_sr(tmp_path / "dicom"), CODE)
    guard = method[method.index("the rigid + B-spline result") :]
    assert guard.endswith("the initial alignment was kept instead")
    assert local_note.startswith("refused: it moved a point by ")
    assert texts == [
        texts[0],  # the verdict line (previous test)
        small,
        *result.warnings,
        "12.3% of the tumour surface lies within 3 mm of the liver capsule and was left "
        "out of every figure (subcapsular exclusion)",
        "registration (lesion region (no liver masks: soft tissue around the ablation "
        f"zone)): the local stage near the zone was not kept ({local_note}); {guard}",
    ]
    assert texts[0].startswith("MAM at least 3.")
    for path in _figures(tmp_path / "dicom"):
        _in_order(str(pydicom.dcmread(path).ImageComments), texts)
    _valid(tmp_path / "dicom" / "margin_sr.dcm")


def test_automatic_masks_and_registration_notes_alone(border_case):
    """A MAM from masks segmented from seeds, decisive (far below 0 mm) but without an
    interval: the verdict says 'no interval' and the reason follows; a kept registration
    is no warning."""
    _, result = border_case
    reason = "the tumour was segmented automatically from a seed: u (±0.5 mm) covers ..."
    auto = result.model_copy(
        update={
            "min_margin_mm": -37.0,
            "min_margin_bound": None,
            "category": "incomplete",
            "warnings": [],
            "uncertainty": result.uncertainty.model_copy(
                update={
                    "min_margin_interval_mm": None,
                    "interval_withheld_reason": reason,
                    "decisive": True,
                }
            ),
        }
    )
    assert margin_warnings(auto) == [
        "MAM -37.0 mm (no interval: automatic masks) (incomplete)",
        f"no interval for the MAM: {reason}",
    ]
    kept = "rigid ..., then a local B-spline (35 mm grid) on the post scan's acquired voxels"
    assert registration_notes(kept) == []


def test_a_decisive_result_without_warnings_has_no_container(tmp_path):
    """Tumour r 6 mm, zone r 14 mm, concentric: MAM ~8 mm, decisive, no warning: the SR
    has no Qualitative Evaluations container, the figures' comments no WARNING."""
    ct_dir, ct, _, _ = sphere_case(tmp_path)
    nz, ny, nx = sitk.GetArrayViewFromImage(ct).shape
    z, y, x = np.mgrid[0:nz, 0:ny, 0:nx].astype(float)
    sx, sy, sz = ct.GetSpacing()
    r2 = ((x - nx / 2) * sx) ** 2 + ((y - ny / 2) * sy) ** 2 + ((z - nz / 2) * sz) ** 2
    write_image(mask_like(ct, r2 < 6.0**2), tmp_path / "tumour.nii.gz")
    write_image(mask_like(ct, r2 < 14.0**2), tmp_path / "zone.nii.gz")
    run = run_margin(
        MarginInputs(tumor=tmp_path / "tumour.nii.gz", ablation=tmp_path / "zone.nii.gz"),
        tmp_path / "result",
    )
    r = run.result
    assert r.min_margin_mm == pytest.approx(8.0, abs=0.6) and r.uncertainty.decisive
    assert r.warnings == [] and r.plausibility == [] and r.min_margin_bound is None
    assert margin_warnings(r) == []
    export_result(tmp_path / "result", tmp_path / "dicom", ct_dir)
    assert qualitative_texts(_sr(tmp_path / "dicom"), CODE) is None
    for path in _figures(tmp_path / "dicom"):
        assert "WARNING" not in str(pydicom.dcmread(path).ImageComments)


def test_figure_comments_that_are_not_ascii_are_utf8(tmp_path):
    """A warning with characters beyond Latin-1 (a plan's structure name 'Gefäße ≥ 2 mm')
    reads back exactly from a Secondary Capture; before, Image Comments were written as
    Latin-1 bytes under the default (ASCII) repertoire and '≥' became '?'."""
    import io

    import highdicom as hd
    from PIL import Image

    from hepanav.imaging.dicomout import (
        build_secondary_capture,
        read_source_series,
        write_dataset,
    )

    ct_dir, _, _, _ = sphere_case(tmp_path)
    source = read_source_series(ct_dir)
    png = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(png, "PNG")
    texts = ["MAM 4.0 mm ± 1.0 mm", "'Rippenknorpel' (Gefäße ≥ 2 mm) not derived"]
    sc = build_secondary_capture(png.getvalue(), source.first, hd.UID(), 1, "f", warnings=texts)
    path = write_dataset(sc, tmp_path, "figure")
    back = pydicom.dcmread(path)
    assert back.SpecificCharacterSet == "ISO_IR 192"
    assert str(back.ImageComments) == (
        "HepaNav report figure: f. WARNING: MAM 4.0 mm ± 1.0 mm WARNING: 'Rippenknorpel' "
        "(Gefäße ≥ 2 mm) not derived"
    )
    _valid(path)
