"""A liver mask that does not contain the tumour is named: warned, and refused for the
subcapsular exclusion (which blamed --subcapsular-mm before).

Tumour ball r 8 mm, zone ball r 14 mm on a 1 mm grid; livers by construction.
"""

from __future__ import annotations

import pytest

from hepanav.core.errors import InputError
from hepanav.margin.measure import measure_margin
from hepanav.margin.pipeline import run_margin_pipeline
from margin_helpers import ball, minus, voxelise

SPACING = (1.0, 1.0, 1.0)
EXTENT = 70.0


def _mask(shape):
    return voxelise(shape, SPACING, extent_mm=EXTENT)


TUMOUR = ball((0, 0, 0), 8.0)
ZONE = ball((0, 0, 0), 14.0)
# A liver ball r 10 mm centred 22 mm away: not a voxel of the tumour in it.
LIVER_ELSEWHERE = ball((-22.0, 0, 0), 10.0)
# A liver ball r 34 mm holding the tumour, its capsule 20 mm from it.
LIVER = ball((-12.0, 0, 0), 34.0)


def test_liver_mask_elsewhere_is_warned_naming_the_liver_option():
    m = measure_margin(_mask(TUMOUR), _mask(ZONE), _mask(LIVER_ELSEWHERE))
    notes = [w for w in m.warnings if "does not contain the tumour" in w]
    assert len(notes) == 1 and "(--liver)" in notes[0] and "only 0 %" in notes[0]
    assert m.min_margin_mm == pytest.approx(6.0, abs=0.3)  # the figures are unchanged


def test_liver_mask_elsewhere_with_subcapsular_is_refused_naming_the_liver(tmp_path):
    with pytest.raises(InputError) as err:
        run_margin_pipeline(
            _mask(TUMOUR),
            _mask(ZONE),
            tmp_path,
            liver=_mask(LIVER_ELSEWHERE),
            subcapsular_mm=5.0,
            report=False,
        )
    assert err.value.source == "--liver"
    assert "does not contain the tumour" in str(err.value)


def test_liver_label_leaving_the_tumour_out_is_named_too():
    # A liver label with the tumour cut out (as in label maps with separate tumour labels)
    liver = _mask(minus(LIVER, TUMOUR))
    with pytest.raises(InputError) as err:
        measure_margin(_mask(TUMOUR), _mask(ZONE), liver, subcapsular_mm=5.0)
    assert err.value.source == "--liver"
    assert "leaves the tumour out" in str(err.value)


def test_liver_holding_the_tumour_gives_no_warning_and_keeps_the_figures():
    m = measure_margin(_mask(TUMOUR), _mask(ZONE), _mask(LIVER), subcapsular_mm=5.0)
    assert not any("does not contain" in w for w in m.warnings)
    assert m.subcapsular_excluded_fraction == 0.0  # capsule 20 mm away
    assert m.min_margin_mm == pytest.approx(6.0, abs=0.3)
