"""Unit tests of hepanav.planning: devices, risk map, zones, geometry, robustness, markups."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from hepanav.core.errors import InputError
from hepanav.planning.devices import builtin_devices, load_device
from hepanav.planning.risk import label_lookup, load_risk_map
from hepanav.planning.robustness import coverage_under_error
from hepanav.planning.schema import TrajectoryRules
from hepanav.planning.trajectories import (
    allowed_directions,
    angle_from_axial_deg,
    conflicting_pairs,
    segment_distances,
)
from hepanav.planning.zones import inside_zones, large_vessels


def test_neuwave_in_vivo_zone_matches_the_clinical_measurement():
    # domain brief: chart 4.7 x 3.5 cm, patients 3.6 x 2.7 cm
    axes = load_device("neuwave-pr-65w-10min").zone_axes_mm
    assert axes[0] == pytest.approx(36.0, abs=0.5)
    assert axes[1] == pytest.approx(27.0, abs=0.5)


def test_every_builtin_device_has_a_source_and_single_and_cluster_rfa_exist():
    devices = builtin_devices()
    kinds = {d.kind for d in devices.values()}
    assert {"microwave", "rfa", "rfa_cluster"} <= kinds
    assert all(d.source for d in devices.values())


def test_unknown_device_lists_the_known_ones():
    with pytest.raises(InputError, match="unknown device 'nope'.*neuwave-pr-65w-10min"):
        load_device("nope")


def test_user_device_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "devices:\n  - {name: my-mwa, kind: microwave, chart_length_mm: 40, chart_width_mm: 30,"
        " in_vivo_factor: 0.8, tip_to_center_mm: 15, needle_length_mm: 150,"
        " needle_diameter_mm: 1.5, heat_sink_trim_mm: 2, pullback_step_mm: 10,"
        " source: my bench test}\n"
    )
    device = load_device(str(path))
    assert device.name == "my-mwa"
    assert device.zone_axes_mm == pytest.approx((32.0, 24.0, 24.0))
    bad = tmp_path / "bad.yaml"
    bad.write_text("devices:\n  - {name: x, kind: laser}\n")
    with pytest.raises(InputError, match="bad.yaml"):
        load_device(str(bad))


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("chart_length_mm", 4.7, "devices[0].chart_length_mm: 4.7 mm is implausible"),
        ("chart_width_mm", 3.5, "devices[0].chart_width_mm: 3.5 mm is implausible"),
        ("power_w", 0.065, "devices[0].power_w: 0.065 W is implausible"),
    ],
)
def test_device_values_in_the_wrong_unit_are_refused(tmp_path, field, value, expected):
    """A chart given in cm as mm (4.7 for 47 mm) or power in kW as W (0.065 for 65 W)."""
    entry = {
        "name": "x", "kind": "microwave", "power_w": 65, "time_min": 10,
        "chart_length_mm": 47, "chart_width_mm": 35, "in_vivo_factor": 0.77,
        "tip_to_center_mm": 18, "needle_length_mm": 200, "needle_diameter_mm": 1.5,
        "heat_sink_trim_mm": 2, "pullback_step_mm": 10, "source": "s",
    }  # fmt: skip
    path = tmp_path / "dev.yaml"
    path.write_text(yaml.safe_dump({"devices": [entry]}), encoding="utf-8")
    assert load_device(str(path)).chart_length_mm == 47.0
    path.write_text(yaml.safe_dump({"devices": [{**entry, field: value}]}), encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_device(str(path))
    assert str(info.value).count("\n") == 0 and expected in str(info.value)
    assert info.value.source == str(path)


@pytest.mark.parametrize(
    ("load", "what"), [(load_device, "device file"), (load_risk_map, "label-map file")]
)
def test_binary_or_missing_user_files_are_input_errors(tmp_path, load, what):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xa4\xff\x00\x81 not text")
    with pytest.raises(InputError, match=f"{what} is not UTF-8 text") as info:
        load(str(binary))
    assert info.value.source == str(binary)
    with pytest.raises(InputError, match=f"{what} does not exist"):
        load(str(tmp_path / "missing.yaml"))


def test_risk_map_maps_ribs_to_bone_and_rejects_bad_fields(tmp_path):
    risk = load_risk_map()
    table = label_lookup(risk, 200)
    names = [r.name for r in risk.structures]
    assert names[table[112]] == "bone"  # rib_right_9
    assert names[table[200]] == "portal_and_hepatic_veins"
    assert table[5] == -1  # liver is not a no-go structure
    bad = tmp_path / "r.yaml"
    bad.write_text("liver_labels: [5]\nstructures:\n  - {name: a, labels: [1], clearance_mm: -1}\n")
    with pytest.raises(InputError, match="clearance_mm"):
        load_risk_map(bad)


def test_inside_zones_on_the_ellipsoid_axes():
    c = np.zeros((1, 3))
    d = np.array([[0.0, 0.0, 1.0]])
    axes = (40.0, 20.0, 20.0)  # semi-axes 20 along z, 10 across
    pts = np.array([[0, 0, 19.9], [0, 0, 20.1], [9.9, 0, 0], [0, 10.1, 0], [5, 5, 10]])
    assert inside_zones(pts, c, d, axes).tolist() == [True, False, True, False, True]
    assert inside_zones(pts[:1], c, d, axes, shrink_mm=0.5).tolist() == [False]


def test_large_vessels_keeps_wide_and_drops_thin_tubes():
    z, y, x = np.mgrid[0:40, 0:60, 0:60] * 0.5  # 0.5 mm voxels
    thin = (y - 7.5) ** 2 + (x - 7.5) ** 2 <= 1.0**2  # 2 mm wide
    wide = (y - 20) ** 2 + (x - 20) ** 2 <= 3.0**2  # 6 mm wide
    big = large_vessels(thin | wide, np.array([0.5, 0.5, 0.5]), 3.0)
    assert not big[thin].any()
    inner = slice(5, -5)  # the opening also trims the tube where it meets the volume border
    assert big[inner][wide[inner]].mean() > 0.9


def test_segment_distances_against_brute_force():
    rng = np.random.default_rng(3)
    p0, p1, q0, q1 = (rng.uniform(-20, 20, (50, 3)) for _ in range(4))
    fast = segment_distances(p0, p1, q0, q1)
    t = np.linspace(0, 1, 801)
    for i in range(50):
        a = p0[i] + t[:, None] * (p1[i] - p0[i])
        b = q0[i] + t[:, None] * (q1[i] - q0[i])
        brute = np.min(np.linalg.norm(a[:, None] - b[None], axis=-1))
        assert fast[i] == pytest.approx(brute, abs=0.1)
    e = np.array([[0, 0, 0], [0, 0, 0.0]])
    pairs = conflicting_pairs(e, np.array([[100, 0, 0], [100, 3, 0.0]]), 5.0)
    assert pairs == [(0, 1)]


def test_allowed_directions_respect_angle_and_forbidden_side():
    rules = TrajectoryRules(max_angle_from_axial_deg=20, forbidden_approach_half_angle_deg=60)
    dirs = allowed_directions(rules)
    assert len(dirs) > 10
    assert np.all(angle_from_axial_deg(dirs) <= 20 + 1e-9)
    # entry at -d must not be within 60 deg of posterior (+y)
    assert np.all((-dirs) @ np.array([0, 1.0, 0]) < np.cos(np.radians(60)) + 1e-12)


def test_coverage_under_error_zero_sd_is_deterministic_and_error_reduces_it():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-8, 8, (2000, 3))
    pts = pts[np.linalg.norm(pts, axis=1) <= 8]
    c, d = np.zeros((1, 3)), np.array([[0, 0, 1.0]])
    exact = coverage_under_error(pts, c, d, np.array([0]), (30, 20, 20), 0.0, 20)
    assert np.all(exact == 1.0)
    shaken = coverage_under_error(pts, c, d, np.array([0]), (30, 20, 20), 4.0, 200)
    assert shaken.mean() < 1.0
    assert np.all(shaken <= 1.0)


def test_slicer_markups_are_lps_lines(tmp_path):
    from hepanav.planning.schema import Needle, PlanResult, Probe
    from hepanav.planning.slicer import write_markups

    device = load_device("rfa-single-3cm")
    needle = Needle(
        needle=1,
        entry_lps_mm=(0, -100, 0),
        tip_lps_mm=(0, 0, 0),
        direction=(0, 1, 0),
        length_mm=100,
        angle_from_axial_deg=0,
        min_clearance_mm=10,
        clearance_mm={},
    )
    probe = Probe(
        needle=1,
        position=1,
        entry_lps_mm=(0, -100, 0),
        tip_lps_mm=(0, 0, 0),
        zone_center_lps_mm=(0, -15, 0),
        zone_axes_mm=device.zone_axes_mm,
        zone_direction=(0, 1, 0),
        device=device.name,
    )
    plan = PlanResult(
        feasible=True,
        message="",
        device=device,
        margin_mm=5,
        probes=[probe],
        needles=[needle],
        needle_count=1,
        coverage_tumor=1,
        coverage_target=1,
        min_clearance_mm=10,
        healthy_liver_ablated_ml=1,
        heat_sink_limited_fraction=0,
        placement_error_sd_mm=2,
        coverage_probability=1,
        coverage_target_mean_under_error=1,
        coverage_tumor_probability=1,
        candidate_lines=1,
        candidate_lines_valid=1,
        candidate_zones=1,
        target_points=1,
        optimiser="milp",
        optimiser_time_s=0,
        optimiser_status="optimal",
        planning_time_s=0,
        rules=TrajectoryRules(),
        inputs={},
    )
    doc = json.loads(write_markups(plan, tmp_path / "t.mrk.json").read_text(encoding="utf-8"))
    line = doc["markups"][0]
    assert line["type"] == "Line" and line["coordinateSystem"] == "LPS"
    assert line["controlPoints"][0]["position"] == [0.0, -100.0, 0.0]
    assert line["controlPoints"][1]["position"] == [0.0, 0.0, 0.0]
    assert doc["markups"][1]["controlPoints"][0]["position"] == [0.0, -15.0, 0.0]


def test_heat_sink_band_follows_the_trim_distance_around_wide_vessels_only():
    from hepanav.planning.zones import heat_sink_band

    device = load_device("rfa-single-3cm")  # trim 4 mm, vessels > 3 mm
    spacing = np.array([0.5, 0.5, 0.5])
    z, y, x = np.mgrid[0:30, 0:80, 0:80] * 0.5
    wide = (y - 20) ** 2 + (x - 20) ** 2 <= 3.0**2  # 6 mm wide
    thin = (y - 20) ** 2 + (x - 30) ** 2 <= 0.75**2  # 1.5 mm wide
    band = heat_sink_band(wide | thin, spacing, device)
    mid = 15  # away from the volume border along z
    # the wide vessel's wall is at x = 23 mm on the row y = 20 mm (index 40)
    assert band[mid, 40, 53]  # x = 26.5 mm: 3.5 mm from the wall
    assert not band[mid, 40, 55]  # x = 27.5 mm: 4.5 mm from the wall
    assert not band[mid, 40, 62]  # x = 31 mm: 1 mm beside the thin vessel only
