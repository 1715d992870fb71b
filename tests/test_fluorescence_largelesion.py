"""Lesions larger than the background model's opening kernel (branch fluobig), on synthetic
frames whose values are known by construction: a disc of 3000 DN on a 1000 DN liver with
Gaussian noise of SD 20 DN has TBR 3, CNR (3000 - 1000) / 20 = 100, pattern homogeneous.

Before the fix the background (an opening with a kernel of 40 % of the shorter side)
followed discs wider than the kernel: a 120-px disc on a 240-px-high frame came out as a
"rim", a 240-px disc was cut into two "partial" lesions (TBR 1.6, CNR 1.1) and a surface
inside it was "clear", all without a warning."""

from __future__ import annotations

import numpy as np
import pytest

from hepanav.fluorescence.analyze import FrameAnalyzer
from hepanav.fluorescence.margin import check_frame
from hepanav.fluorescence.schema import AnalysisSettings

H, W = 240, 320
LIVER, LESION, NOISE = 1000.0, 3000.0, 20.0
TRUE_TBR, TRUE_CNR = LESION / LIVER, (LESION - LIVER) / NOISE
CX, CY = 160, 120


def _disc(r):
    yy, xx = np.mgrid[:H, :W]
    return (xx - CX) ** 2 + (yy - CY) ** 2 <= r * r


def _nir(r, seed=0):
    rng = np.random.default_rng(seed)
    img = LIVER + rng.normal(0, NOISE, (H, W))
    inside = _disc(r)
    img[inside] = LESION + rng.normal(0, NOISE, int(inside.sum()))
    return np.clip(np.rint(img), 0, 4095).astype(np.uint16)


# Radius 30: 25 % of the shorter side (always fine); 60, 80, 100: 50 to 83 %, wider than
# the default kernel (the disc covers 15 to 41 % of the frame).
@pytest.mark.parametrize("radius", [30, 60, 80, 100])
def test_large_lesion_is_measured_right(radius):
    result = FrameAnalyzer(AnalysisSettings(), 12).analyze(_nir(radius))
    assert result.warnings == []
    (les,) = result.lesions
    assert les.pattern == "homogeneous"
    assert les.tbr == pytest.approx(TRUE_TBR, rel=0.03)
    assert les.cnr == pytest.approx(TRUE_CNR, rel=0.1)
    assert les.area_px == pytest.approx(np.pi * radius**2, rel=0.05)
    assert les.centroid_xy == pytest.approx((CX, CY), abs=1.0)


def test_lesion_larger_than_half_the_frame_is_not_measured_and_warned():
    # Radius 120: the disc is the whole frame height and 59 % of the frame: there is no
    # liver majority to estimate the background from.
    result = FrameAnalyzer(AnalysisSettings(), 12).analyze(_nir(120))
    assert any("background model invalid" in w and "zoom out" in w for w in result.warnings)
    for les in result.lesions:  # whatever is found is not measured nor classified
        assert les.pattern == "undetermined"
        assert les.tbr is None and les.cnr is None and les.tbr_rim is None


@pytest.mark.parametrize("radius", [60, 100])
def test_surface_inside_a_large_lesion_is_at_risk(radius):
    surface = _disc(20)
    frame = check_frame(0, _nir(radius), surface, AnalysisSettings(), 4095)
    assert frame.at_risk and not frame.undetermined
    (spot,) = [s for s in frame.spots if s.meets_criterion]
    assert spot.background == "region ring"
    assert spot.tbr == pytest.approx(TRUE_TBR, rel=0.03)
    assert spot.cnr == pytest.approx(TRUE_CNR, rel=0.1)


def test_surface_inside_a_lesion_larger_than_half_the_frame_is_never_clear():
    frame = check_frame(0, _nir(120), _disc(20), AnalysisSettings(), 4095)
    assert frame.at_risk and frame.undetermined
    assert any("background model invalid" in w for w in frame.warnings)
