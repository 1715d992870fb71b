"""Tiny disconnected components of the tumour mask: left out with a warning, never silently.

Tumour ball r 8 mm, zone ball r 14 mm (true MAM 6.0 mm) on a 1 mm grid. A one-voxel slip
20 mm from the centre (6 mm outside the zone) made the MAM about -6 mm ("incomplete")
with no word; a second real lesion (ball r 3 mm, 0.11 ml) must still be measured.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from hepanav.margin.measure import measure_margin
from margin_helpers import ball, voxelise

SPACING = (1.0, 1.0, 1.0)


def _masks(extra=None):
    shape = ball((0, 0, 0), 8.0)
    if extra is not None:
        first = shape
        shape = lambda p: first(p) | extra(p)  # noqa: E731
    tumour = voxelise(shape, SPACING, extent_mm=48)
    zone = voxelise(ball((0, 0, 0), 14.0), SPACING, extent_mm=48)
    return tumour, zone


def _with_voxel(mask: sitk.Image, point_lps) -> sitk.Image:
    index = mask.TransformPhysicalPointToIndex(tuple(float(v) for v in point_lps))
    out = sitk.Image(mask)
    out[index] = 1
    return out


def test_one_voxel_slip_far_from_the_lesion_is_left_out_with_a_warning():
    tumour, zone = _masks()
    clean = measure_margin(tumour, zone)
    slipped = measure_margin(_with_voxel(tumour, (20.0, 0.0, 0.0)), zone)
    assert clean.min_margin_mm == pytest.approx(6.0, abs=0.3)
    # the slip does not turn the MAM into -6 mm: the figures are those of the lesion
    assert slipped.min_margin_mm == pytest.approx(clean.min_margin_mm, abs=1e-6)
    assert slipped.category == clean.category == "5-10mm"
    assert slipped.residual_regions == []
    assert slipped.tumor_volume_ml == pytest.approx(clean.tumor_volume_ml)
    notes = [w for w in slipped.warnings if "LEFT OUT" in w]
    assert len(notes) == 1 and "1 voxel (1.0 mm^3)" in notes[0]
    assert not any("LEFT OUT" in w for w in clean.warnings)


def test_slip_is_left_out_of_the_partial_volume_fractions_too():
    # A reader that resampled the mask keeps fractions; the speck must not come back
    # through them.
    tumour, zone = _masks()
    slipped = _with_voxel(tumour, (20.0, 0.0, 0.0))
    fraction = sitk.Cast(slipped, sitk.sitkFloat32)
    m = measure_margin(slipped, zone, occupancies={"tumor": fraction})
    assert m.min_margin_mm == pytest.approx(6.0, abs=0.3)
    assert any("LEFT OUT" in w for w in m.warnings)


def test_second_real_lesion_outside_the_zone_is_measured_not_dropped():
    # Lesion 2: ball r 3 mm (0.11 ml) centred 20 mm away, 3-9 mm outside the zone.
    tumour, zone = _masks(ball((20.0, 0.0, 0.0), 3.0))
    m = measure_margin(tumour, zone)
    lesion2_ml = 4 / 3 * np.pi * 27 / 1000
    assert m.tumor_volume_ml == pytest.approx(4 / 3 * np.pi * 512 / 1000 + lesion2_ml, rel=0.05)
    assert m.min_margin_mm == pytest.approx(14.0 - 23.0, abs=0.5)
    assert m.category == "incomplete"
    assert any(r.direction.startswith("whole lesion 2") for r in m.residual_regions)
    assert not any("LEFT OUT" in w for w in m.warnings)


def test_small_separate_component_above_the_limit_is_kept_with_a_warning():
    # 27 voxels (3 x 3 x 3 mm, over the 20 mm^3 limit, under 0.1 ml): a lesion, measured,
    # but named in the warnings.
    tumour, zone = _masks()
    cube = sitk.Image(tumour)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dz in (-1, 0, 1):
                cube = _with_voxel(cube, (20.0 + dx, dy, dz))
    m = measure_margin(cube, zone)
    assert m.min_margin_mm < -4.0
    assert any("small separate component" in w for w in m.warnings)
    assert not any("LEFT OUT" in w for w in m.warnings)
