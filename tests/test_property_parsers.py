"""Property-based tests: every parser of users' files and every numeric option, fed
generated text, structures and numbers.

Each parser is called directly (not through the CLI) with >= 2,000 generated inputs:
well-formed documents, random text, truncated documents, deep nesting (up to 1,200
levels), YAML alias bombs, NaN/Infinity/huge numbers. The only acceptable outcomes are
a result or a one-line ``InputError``; any other exception is a traceback for the user.
Each example is bounded in time (the hypothesis ``deadline``; in the test that feeds one
text to every file parser, a bound of 2 s CPU time around each parser call).

Cost: the text of an example is generated once and given to all fourteen file parsers
(generating it costs more than parsing it), so each parser still sees 2,000 examples.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import shutil
import signal
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hepanav.core.errors import InputError

# Imported once here, not inside the first example (its deadline).
from hepanav.planning.pipeline import run_verification
from hepanav.segmentation.pipeline import segment_file
from hepanav.segmentation.seeds import parse_triplet
from reliability_helpers import PLAN_TEMPLATE, device_entry

N = 2000
SETTINGS = settings(
    max_examples=N,
    deadline=2000,  # ms per example: a hang or a blow-up fails the test
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
WORK = Path(tempfile.mkdtemp(prefix="hepanav-prop-"))
atexit.register(shutil.rmtree, WORK, ignore_errors=True)

# ----------------------------------------------------------------------------- strategies
numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -5, 10**12, 1e-9, 1e308, -1e308, 5e-324, 2**63, 2**64]),
)
# What a float option of the CLI receives (Typer converts "1e30", "nan", "inf" to float).
floats = numbers.map(float)
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


def _yaml(data) -> str:
    """YAML text of ``data`` (libyaml's emitter: the pure-Python one cost more than parsing)."""
    return yaml.dump(data, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper))


def _dump(data, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, allow_nan=True)
    try:
        return _yaml(data)
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


def _only_input_errors(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except InputError as exc:
        _one_line(exc)
        return None


# ----------------------------------------------------------------------------- text parsers
def _parsers():
    """Every parser of a user's text file: name -> (file suffix, or None for a string; parser)."""
    from hepanav.core.validation import parse_json, parse_yaml
    from hepanav.imaging.labels import read_label_names
    from hepanav.margin.landmarks import read_landmarks
    from hepanav.planning.devices import load_device
    from hepanav.planning.pipeline import _load_plan
    from hepanav.planning.risk import load_risk_map
    from hepanav.registry.mapping import load_mapping
    from hepanav.registry.margin_import import read_margin_json
    from hepanav.registry.reading import read_table
    from hepanav.therapy.cases import load_case
    from hepanav.therapy.rules import load_rule_file

    return {
        "parse_json": (None, lambda text: parse_json(text, "x.json")),
        "parse_yaml": (None, lambda text: parse_yaml(text, "x.yaml")),
        "therapy case (.yaml)": (".yaml", load_case),
        "therapy case (.json)": (".json", load_case),
        "therapy rules": (".yaml", load_rule_file),
        "device file": (".yaml", load_device),
        "risk map": (".yaml", load_risk_map),
        "plan.json": (".json", _load_plan),
        "labels.json": (".json", read_label_names),
        "margin.json (registry import-margin)": (".json", read_margin_json),
        "landmarks (.mrk.json)": (".mrk.json", read_landmarks),
        "landmarks (.csv)": (".csv", read_landmarks),
        "registry import table (.csv)": (".csv", read_table),
        "registry import mapping": (".yaml", load_mapping),
    }


# Each parser call is bounded: 2 s of this process's CPU time (a blow-up; CPU time, so that
# other processes on a busy machine do not count) and 60 s of wall time (a hang).
PARSE_CPU_S, PARSE_WALL_S = 2.0, 60.0


@contextlib.contextmanager
def _bounded(name: str):
    """Fail when a parser call uses more than PARSE_CPU_S of CPU or PARSE_WALL_S of wall time.

    The timer's exception may be swallowed (a parser catching OSError, a callback of the
    garbage collector), so expiry is also recorded and checked after the call."""
    expired: list[int] = []

    def on_timer(signum, _frame):
        expired.append(signum)
        raise TimeoutError(f"{name}: no result within the time bound")

    old = {sig: signal.signal(sig, on_timer) for sig in (signal.SIGPROF, signal.SIGALRM)}
    signal.setitimer(signal.ITIMER_PROF, PARSE_CPU_S)
    signal.setitimer(signal.ITIMER_REAL, PARSE_WALL_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if expired:
        raise AssertionError(
            f"{name}: more than {PARSE_CPU_S:g} s of CPU or {PARSE_WALL_S:g} s in all "
            "(a blow-up or a hang)"
        )


@settings(SETTINGS, deadline=None)  # bounded per parser call instead (_bounded)
@given(st.one_of(texts, st.binary(max_size=200)))
def test_every_parser_of_users_files_never_tracebacks(text):
    """One generated text (or raw bytes, not always UTF-8) through every parser of users'
    files, so each sees 2,000 examples: a result or a one-line InputError; what the
    JSON/YAML parsers return is finite and within the depth bound."""
    from hepanav.core.validation import MAX_DEPTH

    if isinstance(text, bytes):
        data, text = text, text.decode("latin-1")
    else:
        data = text.encode("utf-8", "surrogatepass")
    parsers = _parsers()
    for suffix in {suffix for suffix, _ in parsers.values() if suffix}:
        (WORK / f"in{suffix}").write_bytes(data)
    for name, (suffix, parse) in parsers.items():
        with _bounded(name):
            try:
                result = parse(text if suffix is None else WORK / f"in{suffix}")
            except InputError as exc:
                _one_line(exc)
                continue
            except Exception as exc:
                raise AssertionError(f"{name}: {type(exc).__name__} escaped") from exc
        if suffix is None:
            _assert_bounded(result, MAX_DEPTH)


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
@given(
    st.dictionaries(st.sampled_from(DEVICE_KEYS), numbers, min_size=1, max_size=4),
    st.dictionaries(st.sampled_from(TRAJECTORY_KEYS), numbers, max_size=4),
    st.lists(numbers, min_size=1, max_size=3),
    st.lists(numbers, min_size=1, max_size=3),
    st.one_of(numbers, st.text(max_size=8)),
    st.sampled_from(["margin_mm", "direction"]),
)
def test_numbers_in_device_risk_map_and_plan_files_finite_and_bounded(
    device_values, trajectory, labels, liver, plan_value, plan_where
):
    """The right keys with hostile numbers, in a device file, a risk map and a plan.json
    (one example feeds all three, so each sees 2,000): refused in one line, or finite and
    within the documented range."""
    from hepanav.planning.devices import load_device
    from hepanav.planning.pipeline import _load_plan
    from hepanav.planning.risk import load_risk_map

    path = _file(_yaml({"devices": [device_entry(device_values)]}), "device.yaml")
    device = _only_input_errors(load_device, path)
    if device is not None:
        for key in DEVICE_KEYS:
            v = getattr(device, key)
            assert v is None or math.isfinite(v)
        assert 1 <= device.pullback_step_mm <= 200 and device.max_positions <= 10

    data = {
        "liver_labels": liver,
        "structures": [{"name": "s", "labels": labels, "clearance_mm": 5}],
        "trajectory": trajectory,
    }
    risk = _only_input_errors(load_risk_map, _file(_yaml(data), "risk.yaml"))
    if risk is not None:
        ids = [*risk.liver_labels, *risk.structures[0].labels]
        assert all(1 <= i <= 65535 for i in ids)  # 1e12 and -5 are refused, never ignored
        t = risk.trajectory
        assert t.direction_count <= 2000 and t.monte_carlo_draws <= 10_000
        assert all(math.isfinite(float(getattr(t, k) or 0)) for k in TRAJECTORY_KEYS)

    plan_data = json.loads(PLAN_TEMPLATE)
    if plan_where == "margin_mm":
        plan_data["margin_mm"] = plan_value
    else:
        plan_data["needles"][0]["direction"] = [plan_value, 0, 0]
    text = json.dumps(plan_data, allow_nan=True, default=str)
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


def _as_text(values) -> str:
    """Numbers as a user types them on the command line ("1.5,nan,1e+30")."""
    return ",".join(str(v) for v in values)


def _finite_model(model) -> None:
    """Every number in a validated option model is finite."""
    _assert_bounded(json.loads(model.model_dump_json()), 64)


@SETTINGS
@given(
    st.one_of(st.none(), floats),
    floats,
    floats,
    st.one_of(st.none(), st.lists(numbers, min_size=3, max_size=5)),
    floats,
    st.integers(min_value=-(10**12), max_value=10**12),
    st.lists(numbers, min_size=1, max_size=3),
)
def test_fluorescence_numeric_options(mm_per_px, inner, outer, roi, min_cnr, min_area, gain):
    """--mm-per-px, --bg-inner-px, --bg-outer-px, --bg-roi, --min-cnr, --min-area-px and
    --gain-range (NaN once gave at_risk=false for 32 spots): refused in one line naming the
    option, or finite and in range."""
    from hepanav.fluorescence.commands import _display_options, _settings, _validated
    from hepanav.fluorescence.schema import MAX_CNR, MarginCriterion

    roi_text = None if roi is None else _as_text(roi)
    settings_ = _only_input_errors(_settings, None, mm_per_px, inner, outer, roi_text)
    if settings_ is not None:
        _finite_model(settings_)
        if mm_per_px is not None:
            assert settings_.mm_per_px > 0
    rule = _only_input_errors(_validated, MarginCriterion, min_cnr=min_cnr, min_area_px=min_area)
    if rule is not None:
        _finite_model(rule)
        assert 0 <= rule.min_cnr <= MAX_CNR and 0 <= rule.min_area_px <= 10**8
    shown = _only_input_errors(_display_options, "overlay", "green", "fixed", _as_text(gain))
    if shown is not None:
        low, high = shown.fixed_range
        assert math.isfinite(low) and math.isfinite(high) and low < high


@SETTINGS
@given(floats, st.one_of(st.none(), floats), st.one_of(st.none(), floats),
       st.sampled_from(["mg", "mg/m2", "mg/kg"]))  # fmt: skip
def test_therapy_dose_numbers(dose, height, weight, unit):
    """therapy dose --dose/--height-cm/--weight-kg: one line naming the option, or a finite
    dose in mg (1e308 mg/kg once printed "inf mg")."""
    from hepanav.therapy.dose import total_dose_mg

    try:
        mg, bsa = total_dose_mg(dose, unit, height, weight)
    except InputError as exc:
        _one_line(exc)
        assert str(exc).startswith(("--dose", "--height-cm", "--weight-kg"))
    else:
        assert math.isfinite(mg) and mg > 0 and (bsa is None or math.isfinite(bsa))


@SETTINGS
@given(floats, floats, st.lists(numbers, min_size=2, max_size=4), st.booleans(), floats)
def test_verify_tolerances_and_seed_coordinates(lateral, depth, seed, integer, radius):
    """verify-placement --lateral-tolerance/--depth-tolerance (0-20] mm and segment
    --max-radius-mm (0-300] mm are checked before any file is read; segment
    --seed/--seed-voxel and margin --tumor-seed X,Y,Z are three finite numbers."""
    try:
        run_verification(WORK / "absent.json", WORK / "absent.nii.gz", WORK,
                         lateral_tolerance_mm=lateral, depth_tolerance_mm=depth)  # fmt: skip
    except InputError as exc:
        _one_line(exc)
        bad = [v for v in (lateral, depth) if not (math.isfinite(v) and 0 < v <= 20)]
        assert str(exc).startswith(("--lateral-tolerance", "--depth-tolerance")) == bool(bad)
    try:
        segment_file("tumor", WORK / "absent.nii.gz", WORK / "m.nii.gz", seeds=["0,0,0"],
                     max_radius_mm=radius)  # fmt: skip
    except InputError as exc:
        _one_line(exc)
        ok = math.isfinite(radius) and 0 < radius <= 300
        assert str(exc).startswith("--max-radius-mm") != ok
    xyz = _only_input_errors(parse_triplet, _as_text(seed), "--seed", integer)
    if xyz is not None:
        assert len(xyz) == 3 and all(math.isfinite(v) for v in xyz)


@SETTINGS
@given(floats, st.lists(st.integers(-(10**6), 10**9), min_size=3, max_size=3), floats,
       floats, floats, st.lists(floats, min_size=3, max_size=3), floats, floats)  # fmt: skip
def test_phantom_and_mask_threshold_options(
    spacing, size, noise, radius, margin, offset, displacement, threshold
):
    """phantom --spacing/--size/--noise/--tumor-radius/--margin/--offset/--max-displacement
    (validated in the schema: a ValidationError is one line in the CLI shell) and
    margin --mask-threshold (0, 65535]."""
    from pydantic import ValidationError

    from hepanav.margin.pipeline import MarginInputs
    from hepanav.phantoms.ablation_case import case_parameters

    try:
        params = case_parameters(
            spacing_mm=(spacing,) * 3, size=tuple(size), noise_hu=noise,
            tumor={"radius_mm": radius}, zone={"margin_mm": margin, "offset_lps": offset},
            deformation={"max_displacement_mm": displacement},
        )  # fmt: skip
    except (InputError, ValidationError):
        pass
    else:
        _finite_model(params)
        assert all(8 <= n <= 4096 for n in params.size)
    try:
        MarginInputs(Path("t"), Path("a"), mask_threshold=threshold).check()
    except InputError as exc:
        assert str(exc).startswith("--mask-threshold")
        assert not (math.isfinite(threshold) and 0 < threshold <= 65535)
    else:
        assert math.isfinite(threshold) and 0 < threshold <= 65535


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
