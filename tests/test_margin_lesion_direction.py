"""Per-lesion directions and residual volume, against ground truth known by construction.

Two spherical lesions 40 mm apart. Zone 1 surrounds lesion 1, shifted 2 mm superior
(short margin 2 mm on lesion 1's inferior side); zone 2 is a sphere of radius 8 mm
shifted by ``OFFSET`` from lesion 2 (r 7 mm), so lesion 2's residual lies on the side
OPPOSITE to ``OFFSET``. Directions must be measured from each lesion's own centroid (not
from the centre of both lesions), and the residual volume must equal the analytic
volume of the sphere minus the intersection of the two spheres (the lens).
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from hepanav.margin.measure import measure_margin
from hepanav.margin.segments import _residual_on

C1 = np.array([40.0, 60.0, 60.0])
C2 = np.array([80.0, 60.0, 60.0])
R1, R2, R_Z1, R_Z2 = 8.0, 7.0, 12.0, 8.0
OFFSET = np.array([2.4, -3.2, 0.0])  # zone 2 centre - lesion 2 centre, LPS mm (|4| mm)


def _balls(size, balls, spacing=(1.0, 1.0, 1.0)) -> sitk.Image:
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), -1)
    points = idx * np.asarray(spacing)
    inside = np.zeros(size, dtype=bool)
    for centre, radius in balls:
        inside |= np.linalg.norm(points - centre, axis=-1) <= radius
    image = sitk.GetImageFromArray(inside.transpose(2, 1, 0).astype(np.uint8))
    image.SetSpacing(spacing)
    return image


def _lens_residual_ml(r: float, big: float, d: float) -> float:
    """Sphere r minus its intersection with a sphere of radius big, centres d apart, ml."""
    inter = (
        np.pi
        * (big + r - d) ** 2
        * (d * d + 2 * d * r - 3 * r * r + 2 * d * big + 6 * r * big - 3 * big * big)
        / (12 * d)
    )
    return (4 / 3 * np.pi * r**3 - inter) / 1000


@pytest.fixture(scope="module")
def two_lesions():
    size = (110, 90, 90)
    tumour = _balls(size, [(C1, R1), (C2, R2)])
    zone = _balls(size, [(C1 + [0, 0, 2.0], R_Z1), (C2 + OFFSET, R_Z2)])
    return measure_margin(tumour, zone), zone


def test_residual_direction_from_its_own_lesion(two_lesions):
    m, _ = two_lesions
    assert len(m.residual_regions) == 1
    region = m.residual_regions[0]
    assert region.lesion == 2
    assert np.linalg.norm(np.subtract(region.lesion_centroid_lps_mm, C2)) < 0.3
    expected = -OFFSET / np.linalg.norm(OFFSET)
    assert float(np.dot(region.direction_lps, expected)) > 0.9


def test_short_region_direction_from_its_own_lesion(two_lesions):
    m, _ = two_lesions
    lesion1 = [r for r in m.short_regions if r.lesion == 1]
    assert lesion1, m.short_regions
    worst = min(lesion1, key=lambda r: r.min_margin_mm)
    assert float(np.dot(worst.direction_lps, [0, 0, -1.0])) > 0.9
    assert worst.direction == "inferior"


def test_residual_volume_is_the_lens_and_agrees_everywhere(two_lesions):
    m, zone = two_lesions
    analytic = _lens_residual_ml(R2, R_Z2, float(np.linalg.norm(OFFSET)))  # 0.383 ml
    total = sum(r.volume_ml for r in m.residual_regions)
    assert total == pytest.approx(m.residual_volume_ml, rel=1e-9)
    # 1 mm voxels on a lens ~2.5 mm thick: voxelisation of both masks, within 10 %
    assert m.residual_volume_ml == pytest.approx(analytic, rel=0.10)
    written = _residual_on(zone, m.residual_points_lps, m.grid)
    written_ml = float(sitk.GetArrayFromImage(written).sum()) / 1000
    assert written_ml == pytest.approx(m.residual_volume_ml, rel=0.10)


def test_single_lesion_direction_unchanged():
    size = (80, 80, 80)
    c = np.array([40.0, 40.0, 40.0])
    m = measure_margin(_balls(size, [(c, R2)]), _balls(size, [(c + OFFSET, R_Z2)]))
    (region,) = m.residual_regions
    assert region.lesion == 1
    expected = -OFFSET / np.linalg.norm(OFFSET)
    assert float(np.dot(region.direction_lps, expected)) > 0.9


# --- a lesion the zone misses entirely (tester4) ---------------------------------------

C3 = np.array([85.0, 60.0, 60.0])  # lesion 2, 45 mm from lesion 1; no zone near it


@pytest.fixture(scope="module")
def missed(tmp_path_factory):
    """Lesion 1 (r 8 mm) inside a zone of r 14 mm (margin 6 mm all round), lesion 2
    (r 6 mm) with no zone: the whole of lesion 2 is residual tumour; the MAM is the
    distance from lesion 2's far side to the zone: -(45 - 14 + 6) = -37 mm."""
    from hepanav.imaging import write_image
    from hepanav.margin.pipeline import MarginInputs, run_margin

    size = (110, 90, 90)
    folder = tmp_path_factory.mktemp("missed")
    write_image(_balls(size, [(C1, R1), (C3, 6.0)]), folder / "t.nii.gz")
    write_image(_balls(size, [(C1, 14.0)]), folder / "z.nii.gz")
    run = run_margin(MarginInputs(tumor=folder / "t.nii.gz", ablation=folder / "z.nii.gz"),
                     folder / "out")  # fmt: skip
    html = (folder / "out" / "report.html").read_text(encoding="utf-8")
    return run, html


def test_a_missed_lesion_is_whole_lesion_untreated_not_a_direction(missed):
    """Residual and lesion centres coincide (the whole lesion): main gave a noise
    direction ("anterior-superior"); now "whole lesion 2 outside the zone (untreated)",
    direction_lps (0, 0, 0), lesion 2, and the whole sphere's volume."""
    run, _ = missed
    r = run.result
    assert r.min_margin_mm == pytest.approx(-37.0, abs=1.0)
    assert len(r.residual_regions) == 1
    region = r.residual_regions[0]
    assert region.lesion == 2
    assert region.direction == "whole lesion 2 outside the zone (untreated)"
    assert tuple(region.direction_lps) == (0.0, 0.0, 0.0)
    assert region.volume_ml == pytest.approx(4 / 3 * np.pi * 6.0**3 / 1000, rel=0.1)


def test_report_names_the_lesion_and_a_far_negative_mam_is_decisive(missed):
    """The report's residual table has the lesion number; MAM -37 mm with u < 1 mm is
    decisive ('incomplete', not "NOT decisive")."""
    run, html = missed
    u = run.result.uncertainty
    assert u.decisive and u.half_width_mm < 1.0
    assert run.result.category == "incomplete"
    assert "NOT decisive" not in html
    row = html[html.index("R1</td>") :]
    row = row[: row.index("</tr>")]
    assert '<td class="num">2</td><td>whole lesion 2 outside the zone (untreated)</td>' in row


def test_partial_residual_keeps_its_direction(two_lesions):
    """A residual that is a part of its lesion (the lens of lesion 2 above) still has a
    direction in words, not "whole lesion"."""
    m, _ = two_lesions
    assert "whole" not in m.residual_regions[0].direction
    assert "lesion" not in m.residual_regions[0].direction


@pytest.mark.parametrize(
    "mam, decisive", [(-37.0, True), (-6.5, True), (-5.5, False), (-1.0, False)]
)
def test_automatic_masks_decisive_only_far_below_zero(mam, decisive):
    """From masks segmented from seeds the MAM may be up to 5 mm too low (phantoms): it
    is decisive only more than u + 5 mm below 0 (here u = 0.5 mm: below -5.5 mm)."""
    from types import SimpleNamespace

    from hepanav.margin.pipeline import margin_uncertainty

    grid = sitk.Image([4, 4, 4], sitk.sitkUInt8)  # 1 mm voxels: u = 0.5 mm floor only
    u = margin_uncertainty(
        SimpleNamespace(min_margin_mm=mam), grid, grid, None, None, None, ("tumor",)
    )
    assert u.half_width_mm == pytest.approx(0.5)
    assert u.decisive is decisive
    assert u.min_margin_interval_mm is None  # still no interval from automatic masks


@pytest.mark.parametrize(
    "fraction, text",
    [(0.99952, ">99.9"), (1.0, "100.0"), (0.0, "0.0"), (0.00004, "<0.1"), (0.9611, "96.1"),
     (0.012, "1.2"), (None, "\u2014")],
)  # fmt: skip
def test_percent_never_rounded_to_a_bound_it_does_not_reach(fraction, text):
    """tester4: "5 mm shell inside the zone 100.0 %" beside "margin < 5 mm: 1.2 %" (shell
    0.99952 on the demo's seeds case)."""
    from hepanav.core.report import format_percent

    assert format_percent(fraction) == text


def test_report_labels_area_and_volume_shares(missed):
    """The report says which figure is a surface-area share and which a shell-volume
    share, and prints the shell with the never-rounded-to-100 rule."""
    from hepanav.core.report import format_percent

    run, html = missed
    assert "tumour surface with margin &lt; 5 mm (share of the surface area)" in html
    shell = "5 mm shell inside the zone (share of the volume within 5 mm outside the tumour)"
    cell = html[html.index(shell) :]
    cell = cell[cell.index('class="num">') + 12 : cell.index(" %</td>")]
    assert cell == format_percent(run.result.shell_coverage_5mm).replace(">", "&gt;")
