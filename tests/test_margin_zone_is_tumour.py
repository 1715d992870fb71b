"""A zone that is the tumour itself, and a negative MAM shown as 0.0 (tester, two defects).

1. The same CT as pre and post with the same click segmented the tumour twice (Dice
   0.997): "MAM 0.0 mm, incomplete" with no plausibility flag. Now ``plausibility`` says
   the zone is the TUMOUR ITSELF (and, for the same image, SAME IMAGE first),
   ``zone_is_tumor`` is true, the MAM is NOT decisive and the verdict line says
   IMPLAUSIBLE, on the terminal, in the report, on the web page and in the DICOM SR text.
2. A MAM of -0.014 mm was printed "0.0 mm" beside "incomplete": a negative margin is now
   never shown as 0 (``core.report.format_margin``): CLI, report, figure legends, SR text.

Known by construction:

* the zone mask is the tumour mask's voxels on a lattice shifted by -0.014 mm along x:
  the zone is the tumour translated by 0.014 mm, so the tumour sticks out of it by
  exactly 0.014 mm at its +x pole: true MAM -0.014 mm (each surface is computed on its
  own lattice and resampled, so the measured value is -0.014 to within interpolation,
  a few µm); the two regions coincide to 0.014 mm, Dice ~1;
* tumour and zone in the pair mode on the same CT, the zone the tumour mask minus one
  surface voxel: Dice 2(n-1)/(2n-1) > 0.99;
* overlap figures of analytic balls (Dice 2 / (1 + (1 + m/r)^3) for concentric balls;
  the share of a ball of radius r inside its copy shifted by d: 1 - 3d/4r + d^3/16r^3).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import SimpleITK as sitk

from hepanav.core.report import format_margin
from hepanav.margin.plausibility import (
    ZONE_IS_TUMOUR_VERDICT,
    plausibility_warnings,
    tumour_zone_overlap,
    zone_is_tumour_warning,
)

SHIFT_MM = 0.014  # the tester's MAM was -0.014 mm


# --- the formatter ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "digits", "text"),
    [
        (-0.014, 1, "-0.01"),  # the tester's MAM: was "0.0"
        (-0.014, 2, "-0.01"),
        (-0.04, 1, "-0.04"),
        (-0.004, 1, "-0.004"),
        (-0.004, 2, "-0.004"),
        (-0.0004, 1, "< 0"),  # below 1 µm: the sign, not a made-up digit
        (-0.06, 1, "-0.1"),
        (-1.234, 2, "-1.23"),
        (0.04, 1, "0.0"),  # non-negative: as format_number
        (0.0, 1, "0.0"),
        (-0.0, 1, "0.0"),  # negative zero is no negative margin
        (4.96, 1, "5.0"),
        (None, 1, "\u2014"),
    ],
)
def test_a_negative_margin_is_never_shown_as_zero(value, digits, text):
    assert format_margin(value, digits) == text


# --- overlap thresholds on analytic balls ---------------------------------------------------


def _ball_field(radius, centre=(0.0, 0.0, 0.0), step=0.25, extent=24.0):
    """Occupancy-like field (0.5 + signed distance) of a ball on a fine grid."""
    axis = np.arange(-extent, extent + step / 2, step)
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    d = np.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2)
    return (0.5 + (radius - d)).astype(np.float32)


@pytest.mark.parametrize(
    ("r", "zone_r", "shift", "flagged"),
    [
        (15.0, 15.5, 0.0, True),  # 0.5 mm all round: Dice 2/(1+1.033^3) = 0.95
        (15.0, 16.5, 0.0, False),  # 1.5 mm all round: Dice 0.86 (a real if poor zone)
        (10.0, 15.0, 0.0, False),  # 5 mm all round: Dice 0.46
        (10.0, 10.0, 2.0, True),  # same size, 2 mm apart: 85 % inside, volume ratio 1
        (10.0, 10.0, 4.0, False),  # same size, 4 mm apart: 70 % inside
        (10.0, 10.8, 3.0, False),  # 87 % inside but 26 % larger: Dice 0.77, neither rule
    ],
)
def test_zone_is_tumour_thresholds(r, zone_r, shift, flagged):
    tumour = _ball_field(r)
    zone = _ball_field(zone_r, (shift, 0.0, 0.0))
    overlap = tumour_zone_overlap(tumour, zone)
    if shift == 0.0:
        assert overlap.dice == pytest.approx(2 / (1 + (zone_r / r) ** 3), abs=0.005)
        assert overlap.tumour_inside == pytest.approx(1.0)
    elif zone_r == r:
        d = shift
        assert overlap.tumour_inside == pytest.approx(
            1 - 3 * d / (4 * r) + d**3 / (16 * r**3), abs=0.005
        )
    assert overlap.zone_is_tumour is flagged


def test_zone_is_tumour_replaces_zone_smaller():
    """A zone that is the tumour, a voxel smaller: one warning (not "swapped?")."""
    overlap = tumour_zone_overlap(_ball_field(10.0), _ball_field(9.98))
    assert overlap.zone_is_tumour
    text = zone_is_tumour_warning(overlap, same_pre_post=True)
    assert text.startswith("--pre and --post are the SAME IMAGE")
    warnings = plausibility_warnings(4.19, 4.16, 0.0, text)
    assert warnings == [text]
    assert "SMALLER" in plausibility_warnings(4.19, 4.16, 0.0)[0]  # without: as before


# --- end to end: the zone is the tumour shifted by 0.014 mm (true MAM -0.014 mm) ------------


def _shifted_pair(tmp_path):
    size, origin = 40, np.array([-20.0, -20.0, -20.0])
    idx = np.indices((size,) * 3).reshape(3, -1)[::-1].T.astype(float)
    inside = np.linalg.norm(idx + origin - [0.3, -0.2, 0.45], axis=1) <= 8.0
    array = inside.reshape((size,) * 3).astype(np.uint8)
    paths = {}
    for name, shift in (("tumor", 0.0), ("ablation", -SHIFT_MM)):
        image = sitk.GetImageFromArray(array)
        image.SetOrigin((origin + [shift, 0.0, 0.0]).tolist())
        paths[name] = tmp_path / f"{name}.nii.gz"
        sitk.WriteImage(image, str(paths[name]))
    return paths


def test_zone_equal_to_the_tumour_flagged_and_its_negative_mam_shown(cli, tmp_path):
    from hepanav.dicom.margin_objects import margin_warnings
    from hepanav.margin.measure import measure_margin
    from hepanav.margin.schema import MarginResult
    from hepanav.margin.verdict import verdict
    from hepanav.margin.views import slices_axes

    paths = _shifted_pair(tmp_path)
    out = tmp_path / "out"
    code, stdout, err = cli(
        "margin", "--tumor", paths["tumor"], "--ablation", paths["ablation"], "--out", out
    )
    assert code == 0, err
    data = json.loads((out / "margin.json").read_text(encoding="utf-8"))
    result = MarginResult.model_validate(data)
    assert result.min_margin_mm == pytest.approx(-SHIFT_MM, abs=0.003)
    assert result.category == "incomplete"
    # 1: the zone is the tumour: flagged, not decisive, the verdict says IMPLAUSIBLE
    assert result.zone_is_tumor and result.tumor_zone_dice > 0.99
    assert len(result.plausibility) == 1 and "TUMOUR ITSELF" in result.plausibility[0]
    assert "SAME IMAGE" not in result.plausibility[0]  # two files, two lattices
    assert not result.uncertainty.decisive
    assert "tumour itself" in result.uncertainty.rule
    said = verdict(result)
    assert said["why"] == ZONE_IS_TUMOUR_VERDICT and not said["decisive"]
    lines = stdout.splitlines()
    assert lines[0].startswith("MAM -0.01 mm ± 1.4 mm (incomplete, NOT decisive: IMPLAUSIBLE")
    assert "WARNING: the ablation zone is (nearly) the TUMOUR ITSELF" in stdout
    # 2: the MAM is -0.01, never 0.0: terminal, web verdict, report, SR text, figures
    assert "MAM 0.0" not in stdout
    assert said["value"].startswith("-0.01 mm")
    html = (out / "report.html").read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", "", re.sub(r"data:image/png;base64,[^\"]+", "", html))
    assert "Minimal ablative margin (MAM):\n  -0.01 mm" in text
    assert "MAM-0.01 mm" in text  # the table (2 digits)
    assert "MAM -0.01 mm, interval -1.4 to 1.4 mm" in text
    assert "MAM point (-0.01 mm" in html  # the interactive 3D view's marker
    assert not re.search(r"MAM[^.]{0,40}\b0\.00? mm", text)
    assert "TUMOUR ITSELF" in text and 'class="bad plausibility"' in html
    sr_texts = margin_warnings(result)
    assert sr_texts[0] == said["line"] and "MAM -0.01 mm" in sr_texts[0]
    assert "IMPLAUSIBLE" in sr_texts[0] and result.plausibility[0] in sr_texts
    tumour, zone = (sitk.ReadImage(str(paths[k])) for k in ("tumor", "ablation"))
    fig = slices_axes(measure_margin(tumour, zone), None, zone)
    legend = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert "MAM point (-0.01 mm)" in legend
    import matplotlib.pyplot as plt

    plt.close(fig)


# --- the pair mode: the same CT as pre and post ---------------------------------------------


@pytest.fixture(scope="module")
def case():
    from hepanav.phantoms.ablation_case import build_case, case_parameters

    params = case_parameters(spacing_mm=(2.0, 2.0, 2.0), deformation={"max_displacement_mm": 0.0})
    return build_case(0, params)


def test_same_ct_as_pre_and_post_with_the_tumour_as_zone_says_both(case, tmp_path):
    from hepanav.margin.pipeline import run_margin_pipeline
    from hepanav.margin.verdict import verdict

    tumour = case.pre_tumor
    array = sitk.GetArrayFromImage(tumour)
    z, y, x = np.argwhere(array > 0)[np.argmax(np.argwhere(array > 0)[:, 2])]
    array[z, y, x] = 0  # one surface voxel less: not identical, Dice 2(n-1)/(2n-1)
    zone = sitk.GetImageFromArray(array)
    zone.CopyInformation(tumour)
    n = int(np.count_nonzero(sitk.GetArrayViewFromImage(tumour)))
    assert 2 * (n - 1) / (2 * n - 1) > 0.99
    run = run_margin_pipeline(
        tumour, zone, tmp_path, pre=case.pre_ct, post=case.pre_ct, report=False
    )
    r = run.result
    assert r.registration.mode == "same_image"
    assert r.zone_is_tumor and r.tumor_zone_dice > 0.98
    assert len(r.plausibility) == 1  # not also "SMALLER ... swapped?" (zone a voxel smaller)
    assert r.plausibility[0].startswith("--pre and --post are the SAME IMAGE")
    assert "TUMOUR ITSELF" in r.plausibility[0]
    assert not r.uncertainty.decisive
    assert "IMPLAUSIBLE" in verdict(r)["line"]


def test_tester_reproduction_same_ct_same_click(cli, tmp_path, monkeypatch):
    """``hepanav phantom`` then the same CT and the same click as pre and post."""
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("phantom", "--out", "case")
    assert code == 0, err
    seed = "-65.25,25.5,27.5"
    code, stdout, err = cli(
        "margin",
        "--pre",
        "case/pre_ct.nii.gz",
        "--post",
        "case/pre_ct.nii.gz",
        f"--tumor-seed={seed}",
        f"--ablation-seed={seed}",
        "--out",
        "res",
    )
    assert code == 0, err
    data = json.loads((tmp_path / "res" / "margin.json").read_text(encoding="utf-8"))
    assert data["zone_is_tumor"] and data["tumor_zone_dice"] >= 0.9
    assert data["plausibility"][0].startswith("--pre and --post are the SAME IMAGE")
    assert not data["uncertainty"]["decisive"]
    assert "IMPLAUSIBLE" in stdout.splitlines()[0]
    assert "WARNING: --pre and --post are the SAME IMAGE" in stdout
    if data["min_margin_mm"] < 0:  # the tester's run: -0.014 mm
        assert format_margin(data["min_margin_mm"]) != "0.0"
        assert f"MAM {format_margin(data['min_margin_mm'])} mm" in stdout
