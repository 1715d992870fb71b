"""A MAM the image border makes a bound is flagged and decisive only where it can be.

A larger zone only raises signed margins. Where the zone mask is cut by the image edge at
the MAM point, the measured MAM is a LOWER bound of the true one; where part of the tumour
lies outside the image, the measured MAM (over the part inside) is an UPPER bound of the
lesion's. Balls on a 1 mm grid cropped by ``RegionOfInterest``: the true margins are known.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from hepanav.margin.commands import result_line
from hepanav.margin.pipeline import run_margin_pipeline
from margin_helpers import ball, voxelise

SPACING = (1.0, 1.0, 1.0)


def _cropped(tumour_shape, zone_shape, keep_x: int):
    """Tumour and zone masks on a 44 mm cube cut to x indices 0 .. keep_x - 1."""
    full_t = voxelise(tumour_shape, SPACING, extent_mm=44)
    full_z = voxelise(zone_shape, SPACING, extent_mm=44)
    keep = [keep_x, 44, 44]
    return (
        sitk.RegionOfInterest(full_t, keep, [0, 0, 0]),
        sitk.RegionOfInterest(full_z, keep, [0, 0, 0]),
    )


def _run(tmp_path, tumour, zone, report=False):
    run = run_margin_pipeline(tumour, zone, tmp_path, report=report)
    written = json.loads((tmp_path / "margin.json").read_text())
    return run.result, written


def test_zone_cut_by_the_border_at_the_mam_point_is_a_lower_bound_not_decisive(tmp_path):
    # Tumour r 8 and zone r 13 around the origin: true MAM 5.0 mm. The image ends at
    # x = 11.3 mm (33 columns): the zone is cut there, 3.3 mm from the tumour, so the
    # measured MAM is ~3.3-3.4 mm, in 0-5mm, over 1 mm clear of 0 and 5 mm with u 0.5 mm:
    # "decisive" before, although the true MAM is 5.0.
    tumour, zone = _cropped(ball((0, 0, 0), 8.0), ball((0, 0, 0), 13.0), 33)
    x_edge = zone.TransformContinuousIndexToPhysicalPoint([32.5, 0, 0])[0]
    result, written = _run(tmp_path, tumour, zone, report=True)
    assert result.min_margin_mm == pytest.approx(x_edge - 8.0, abs=0.4)
    assert written["min_margin_bound"] == "lower"
    u = written["uncertainty"]
    assert u["decisive"] is False
    low, high = u["min_margin_interval_mm"]
    # the interval holds the true MAM; its upper end is the margin measured against the
    # real zone surface (5.0 mm) + u, not infinity
    assert low <= 5.0 <= high
    assert high == pytest.approx(5.0 + u["half_width_mm"], abs=0.4)
    assert any("LOWER BOUND" in w for w in written["warnings"])
    assert "LOWER BOUND" in u["rule"]
    line = result_line(result)
    assert line.startswith("MAM at least 3.") and "LOWER BOUND" in line
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "at least 3." in html and "LOWER BOUND" in html and "NOT decisive" in html


def test_zone_cut_by_the_border_away_from_the_mam_point_stays_exact_and_decisive(tmp_path):
    # The tumour r 8 at x = -3: margin 2.0 mm toward -x (exact, real zone surface); toward
    # +x the cut zone gives >= 5.5 mm. The MAM is a measurement: no bound, decisive.
    tumour, zone = _cropped(ball((-3, 0, 0), 8.0), ball((0, 0, 0), 13.0), 33)
    result, written = _run(tmp_path, tumour, zone)
    assert result.min_margin_mm == pytest.approx(2.0, abs=0.3)
    assert written["min_margin_bound"] is None
    assert written["uncertainty"]["decisive"] is True
    low, high = written["uncertainty"]["min_margin_interval_mm"]
    assert high - low == pytest.approx(2 * written["uncertainty"]["half_width_mm"])


def test_tumour_cut_by_the_border_gives_an_upper_bound_decisive_only_below_zero(tmp_path):
    # Tumour r 8, zone r 15, image ending at x ~ 3 mm: the assessable part has 7 mm, the
    # part outside the image is unknown: the lesion's MAM is AT MOST 7 (+u) mm.
    tumour, zone = _cropped(ball((0, 0, 0), 8.0), ball((0, 0, 0), 15.0), 25)
    result, written = _run(tmp_path, tumour, zone)
    assert result.min_margin_mm == pytest.approx(7.0, abs=0.5)
    assert written["min_margin_bound"] == "upper"
    assert written["uncertainty"]["decisive"] is False
    assert written["uncertainty"]["min_margin_interval_mm"] is None
    assert "UPPER BOUND" in written["uncertainty"]["interval_withheld_reason"]
    line = result_line(result)
    assert line.startswith("MAM at most ") and "UPPER BOUND" in line


def test_tumour_cut_by_the_border_and_outside_the_zone_is_decisive_incomplete(tmp_path):
    # The zone r 15 centred 14 mm toward -y: the tumour point (0, 8, 0), inside the image,
    # is 7 mm outside the zone. Whatever lies beyond the image, the lesion's MAM is at
    # most -7 + u < 0: "incomplete" is decisive.
    tumour, zone = _cropped(ball((0, 0, 0), 8.0), ball((0, -14, 0), 15.0), 25)
    result, written = _run(tmp_path, tumour, zone)
    assert result.min_margin_mm == pytest.approx(-7.0, abs=0.5)
    assert written["min_margin_bound"] == "upper"
    assert written["category"] == "incomplete"
    assert written["uncertainty"]["decisive"] is True


def test_mam_inside_the_image_without_border_contact_has_no_bound(tmp_path):
    tumour = voxelise(ball((0, 0, 0), 8.0), SPACING, extent_mm=44)
    zone = voxelise(ball((0, 0, 0), 15.0), SPACING, extent_mm=44)
    result, written = _run(tmp_path, tumour, zone)
    assert written["min_margin_bound"] is None
    assert written["uncertainty"]["decisive"] is True
    assert np.isclose(result.min_margin_mm, 7.0, atol=0.3)
