"""Registration near the lesion on realistic pairs built from the real CT (issue 12).

Two pairs from bench/bench_margin_pairs.py (the larger evaluation) with the MAM measured
through the true transform (measurement only) and through each registration (total), and
the registration error at the tumour surface: lesions implanted into the real scan,
12-18 mm breathing-like deformation, 20-38 mm / 5-10 degree patient motion, +/-30 HU
contrast change, 4-5 mm post slices, +/-60 mm post field of view, zone
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
    # The benchmark separates measurement from registration: the true transform maps the
    # tumour surface exactly (field interpolation < 0.1 mm), and the MAM measured with it
    # is the measurement-only error (4-5 mm post slices: half a slice bounds it).
    assert row["true_transform_tre_max_mm"] < 0.1, row
    assert abs(row["true_transform_mam_error_mm"]) <= 0.6, row
    for mode in ("liver", "lesion_region"):
        total, part = row[f"{mode}_error_mm"], row[f"{mode}_registration_part_mm"]
        assert total == pytest.approx(row["true_transform_mam_error_mm"] + part, abs=0.011)
        # 1-Lipschitz: the registration's part of the MAM error is bounded by its error at
        # the tumour surface; the margin.json uncertainty covers the total error.
        assert abs(part) <= row[f"{mode}_tre_max_mm"] + 0.1, row
        assert abs(total) <= row[f"{mode}_uncertainty_mm"], row
    # Issue 12's targets: |MAM error| <= 0.7 mm, lesion-region no worse than 0.3 mm beyond
    # liver-driven. Met on these two pairs since the local stage near the zone (measured
    # liver +0.19 / +0.10 mm, lesion-region +0.36 / +0.03 mm; before it +0.26 / -1.19 and
    # +0.42 / -0.79). Over 8 pairs the totals are NOT all within 0.7 mm: the measurement
    # with the true transform is 1.0-1.6 mm low on 3 of them (docs/margin.md).
    for mode in ("liver", "lesion_region"):
        assert row[f"{mode}_local_kept"], row
        assert abs(row[f"{mode}_error_mm"]) <= 0.7, row
    assert abs(row["lesion_region_error_mm"]) <= abs(row["liver_error_mm"]) + 0.3, row
