"""Property-based tests: every parser of users' files, fed generated text and structures.

Each parser is called directly (not through the CLI) with >= 2,000 generated inputs:
well-formed documents, random text, truncated documents, deep nesting (up to 1,200
levels), YAML alias bombs, NaN/Infinity/huge numbers. The only acceptable outcomes are
a result or a one-line ``InputError``; any other exception is a traceback for the user.
Each example is bounded in time by the hypothesis ``deadline``.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hepanav.core.errors import InputError
from reliability_helpers import PLAN_TEMPLATE, device_entry

N = 2000
SETTINGS = settings(
    max_examples=N,
    deadline=2000,  # ms per example: a hang or a blow-up fails the test
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
WORK = Path(tempfile.mkdtemp(prefix="hepanav-prop-"))

# ----------------------------------------------------------------------------- strategies
numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -5, 10**12, 1e-9, 1e308, -1e308, 5e-324, 2**63, 2**64]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20))
structures = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=15,
)


def _deep(kind: str, depth: int) -> str:
    if kind == "json-list":
        return "[" * depth + "]" * depth
    if kind == "json-dict":
        return '{"a":' * depth + "1" + "}" * depth
    if kind == "yaml-flow":
        return "a: " + "[" * depth + "]" * depth
    return "".join("  " * i + "a:\n" for i in range(depth)) + "  " * depth + "1\n"


deep_texts = st.builds(
    _deep,
    st.sampled_from(["json-list", "json-dict", "yaml-flow", "yaml-block"]),
    st.integers(min_value=1, max_value=1200),
)
BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=False)
    )
    + "j: [*i, *i]\n"
)


def _dump(data, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, allow_nan=True)
    try:
        return yaml.safe_dump(data)
    except (yaml.YAMLError, ValueError):
        return "{}"


documents = st.builds(_dump, structures, st.sampled_from(["json", "yaml"]))


@st.composite
def truncated(draw, base):
    text = draw(base)
    cut = draw(st.integers(min_value=0, max_value=max(len(text), 0)))
    return text[:cut]


texts = st.one_of(
    documents,
    truncated(documents),
    deep_texts,
    st.text(max_size=300),
    st.just(BOMB) | st.text(max_size=5),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
)


def _one_line(exc: InputError) -> None:
    assert "\n" not in str(exc) and str(exc).strip()


def _file(text: str, name: str) -> Path:
    path = WORK / name
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return path


def _only_input_errors(fn, *args):
    try:
        return fn(*args)
    except InputError as exc:
        _one_line(exc)
        return None


# ----------------------------------------------------------------------------- core parsers
@SETTINGS
@given(texts)
def test_parse_json_never_tracebacks(text):
    from hepanav.core.validation import MAX_DEPTH, parse_json

    data = _only_input_errors(parse_json, text, "x.json")
    if data is not None:
        _assert_bounded(data, MAX_DEPTH)


@SETTINGS
@given(texts)
def test_parse_yaml_never_tracebacks(text):
    from hepanav.core.validation import MAX_DEPTH, parse_yaml

    data = _only_input_errors(parse_yaml, text, "x.yaml")
    if data is not None:
        _assert_bounded(data, MAX_DEPTH)


def _assert_bounded(data, max_depth, depth=0):
    """What a reader returns is finite and within the depth bound."""
    assert depth <= max_depth
    if isinstance(data, float):
        assert math.isfinite(data)
    elif isinstance(data, dict):
        for v in data.values():
            _assert_bounded(v, max_depth, depth + 1)
    elif isinstance(data, list):
        for v in data[:50]:
            _assert_bounded(v, max_depth, depth + 1)


# ----------------------------------------------------------------------------- file readers
def _reader_cases():
    from hepanav.imaging.labels import read_label_names
    from hepanav.margin.landmarks import read_landmarks
    from hepanav.planning.devices import load_device
    from hepanav.planning.pipeline import _load_plan
    from hepanav.planning.risk import load_risk_map
    from hepanav.registry.margin_import import read_margin_json
    from hepanav.therapy.cases import load_case
    from hepanav.therapy.rules import load_rule_file

    return {
        "case.yaml": load_case,
        "case.json": load_case,
        "rules.yaml": load_rule_file,
        "device.yaml": load_device,
        "risk.yaml": load_risk_map,
        "plan.json": _load_plan,
        "labels.json": read_label_names,
        "margin.json": read_margin_json,
        "points.mrk.json": read_landmarks,
        "points.csv": read_landmarks,
    }


@pytest.mark.parametrize("name", list(_reader_cases()))
def test_file_readers_never_traceback(name):
    reader = _reader_cases()[name]

    @SETTINGS
    @given(texts)
    def run(text):
        _only_input_errors(reader, _file(text, name))

    run()


# Structured inputs near the schema: the right keys with hostile values.
DEVICE_KEYS = [
    "power_w",
    "time_min",
    "chart_length_mm",
    "chart_width_mm",
    "in_vivo_factor",
    "tip_to_center_mm",
    "needle_length_mm",
    "needle_diameter_mm",
    "heat_sink_vessel_mm",
    "heat_sink_trim_mm",
    "pullback_step_mm",
    "max_positions",
]
TRAJECTORY_KEYS = [
    "max_angle_from_axial_deg",
    "forbidden_approach_half_angle_deg",
    "min_needle_spacing_mm",
    "direction_count",
    "lateral_step_mm",
    "grid_mm",
    "placement_error_sd_mm",
    "monte_carlo_draws",
    "coverage_goal",
    "optimiser_time_limit_s",
]


@SETTINGS
@given(st.dictionaries(st.sampled_from(DEVICE_KEYS), numbers, min_size=1, max_size=4))
def test_device_numbers_finite_and_bounded(values):
    from hepanav.planning.devices import load_device

    path = _file(yaml.safe_dump({"devices": [device_entry(values)]}), "device.yaml")
    device = _only_input_errors(load_device, path)
    if device is not None:
        for key in DEVICE_KEYS:
            v = getattr(device, key)
            assert v is None or math.isfinite(v)
        assert 1 <= device.pullback_step_mm <= 200 and device.max_positions <= 10


@SETTINGS
@given(
    st.dictionaries(st.sampled_from(TRAJECTORY_KEYS), numbers, max_size=4),
    st.lists(numbers, min_size=1, max_size=3),
    st.lists(numbers, min_size=1, max_size=3),
)
def test_risk_map_numbers_and_label_ids_bounded(trajectory, labels, liver):
    from hepanav.planning.risk import load_risk_map

    data = {
        "liver_labels": liver,
        "structures": [{"name": "s", "labels": labels, "clearance_mm": 5}],
        "trajectory": trajectory,
    }
    risk = _only_input_errors(load_risk_map, _file(yaml.safe_dump(data), "risk.yaml"))
    if risk is not None:
        ids = [*risk.liver_labels, *risk.structures[0].labels]
        assert all(1 <= i <= 65535 for i in ids)  # 1e12 and -5 are refused, never ignored
        t = risk.trajectory
        assert t.direction_count <= 2000 and t.monte_carlo_draws <= 10_000
        assert all(math.isfinite(float(getattr(t, k) or 0)) for k in TRAJECTORY_KEYS)


@SETTINGS
@given(st.one_of(numbers, st.text(max_size=8)), st.sampled_from(["margin_mm", "direction"]))
def test_plan_json_numbers_checked(value, where):
    from hepanav.planning.pipeline import _load_plan

    data = json.loads(PLAN_TEMPLATE)
    if where == "margin_mm":
        data["margin_mm"] = value
    else:
        data["needles"][0]["direction"] = [value, 0, 0]
    text = json.dumps(data, allow_nan=True, default=str)
    plan = _only_input_errors(_load_plan, _file(text, "plan.json"))
    if plan is not None:
        assert 0 <= plan.margin_mm <= 20
        assert abs(math.dist(plan.needles[0].direction, (0, 0, 0)) - 1) <= 1e-3


@SETTINGS
@given(st.floats(allow_nan=True, allow_infinity=True), st.booleans())
def test_subcapsular_mm_option(value, subcapsular):
    from hepanav.margin.pipeline import MarginInputs

    inputs = MarginInputs(Path("t"), Path("a"), liver=Path("l"), subcapsular_mm=value)
    try:
        inputs.check()
    except InputError as exc:
        assert str(exc).startswith("--subcapsular-mm")
    else:
        assert 0 <= value <= 20


@SETTINGS
@given(numbers)
def test_plan_margin_option(value):
    from hepanav.planning.pipeline import run_plan

    try:
        run_plan(Path("/nonexistent/ct.nii.gz"), Path("t"), Path("l"), None, value, "x", WORK)
    except InputError as exc:
        _one_line(exc)
        ok = isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 20
        assert str(exc).startswith("--margin") != ok


@SETTINGS
@given(
    st.one_of(numbers, st.text(max_size=10)),
    st.floats(allow_nan=True),
    st.floats(allow_nan=True),
    st.booleans(),
)
def test_check_number(value, lo, hi, lo_open):
    from hepanav.core.limits import check_number

    try:
        check_number(value, "--x", lo, hi, lo_open=lo_open)
    except (InputError, TypeError) as exc:
        if isinstance(exc, TypeError):
            assert isinstance(value, str)
    else:
        assert not (isinstance(value, float) and not math.isfinite(value))


@SETTINGS
@given(
    st.one_of(
        st.text(max_size=60),
        st.builds(
            lambda s, rest: f"{s}:{rest}",
            st.sampled_from(
                [
                    "http",
                    "https",
                    "javascript",
                    "JaVaScRiPt",
                    "data",
                    "file",
                    " java\tscript",
                    "vbscript",
                ]
            ),
            st.text(max_size=40),
        ),
    )
)
def test_safe_url_only_http(url):
    from hepanav.core.report import safe_url

    shown = safe_url(url)
    assert shown == "" or shown.lower().startswith(("http://", "https://"))


def test_plan_template_is_valid():
    """The template above is a valid plan, so the property test varies one field only."""
    from hepanav.planning.pipeline import _load_plan

    plan = _load_plan(_file(PLAN_TEMPLATE, "plan.json"))
    assert plan.margin_mm == 5.0
