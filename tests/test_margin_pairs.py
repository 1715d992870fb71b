"""Registration near the lesion on realistic pairs built from the real CT (issue 12).

Two pairs from bench/bench_margin_pairs.py (the larger evaluation): lesions implanted
into the real scan, 12-18 mm breathing-like deformation, 20-38 mm / 5-10 degree patient
motion, +/-30 HU contrast change, 4-5 mm post slices, +/-60 mm post field of view, zone
offsets in opposite directions. Truth: the MAM from the continuous shapes.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.realdata]


@pytest.mark.parametrize("seed", [0, 1])
def test_lesion_region_registration_on_realistic_pairs(shared_data, monkeypatch, seed):
    import bench.bench_margin_pairs as pairs

    monkeypatch.setattr(pairs, "DATA", shared_data)
    row = pairs.evaluate(seed)
    # Issue 12's targets are |MAM error| <= 0.7 mm and lesion-region no worse than 0.3 mm
    # beyond liver-driven. NOT MET yet (docs/margin.md, "Realistic pairs"): measured on
    # these two pairs lesion-region +0.77 / -0.92 mm, liver-driven +0.14 / -1.26 mm. This
    # test holds the achieved state so that it cannot silently get worse.
    assert abs(row["lesion_region_error_mm"]) <= 1.2, row
    assert abs(row["lesion_region_error_mm"]) <= abs(row["liver_error_mm"]) + 1.0, row
