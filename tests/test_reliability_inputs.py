"""Hostile inputs through the real commands: outputs that are inputs, FIFOs, truncated
images, markup in user text. Every case: exit 2, one ``error:`` line, nothing written,
the input untouched (or, for reports, the text shown escaped)."""

from __future__ import annotations

import json
import os
import re
import signal
from importlib import resources
from pathlib import Path

import pytest
import SimpleITK as sitk

from cli_helpers import one_line_error
from reliability_helpers import PLAN_TEMPLATE, hu_ct, sphere

CASE = (
    resources.files("hepanav.therapy") / "data" / "examples" / "crc_large_near_hepatic_vein.yaml"
).read_text("utf-8")


@pytest.fixture(autouse=True)
def _no_hang():
    """A FIFO that were opened would block forever: fail after 60 s instead."""

    def boom(*_):
        raise TimeoutError("command blocked (FIFO opened?)")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture()
def masks(tmp_path):
    out = {}
    for name, image in {
        "tumor": sphere((1.0, 0, 0), 6.0),
        "ablation": sphere((0, 0, 0), 10.0),
        "liver": sphere((0, 0, 0), 16.0),
    }.items():
        out[name] = tmp_path / f"{name}.nii.gz"
        sitk.WriteImage(image, str(out[name]))
    return out


# ----------------------------------------------------------------------------- output = input
def test_margin_output_folder_holding_an_input_is_refused(cli, masks, tmp_path):
    out = tmp_path / "OUT"
    out.mkdir()
    inside = out / "margin_map.nii.gz"
    inside.write_bytes(masks["ablation"].read_bytes())
    before = inside.read_bytes()
    code, _, err = cli("margin", "--tumor", masks["tumor"], "--ablation", inside, "--out", out)
    one_line_error(code, err, str(out), "holds the input")
    assert inside.read_bytes() == before


def test_margin_output_folder_holding_its_ct_is_refused(cli, masks, tmp_path):
    """--ct (drawn behind the report's outlines) is an input too: OUT/ct.nii.gz survives."""
    out = tmp_path / "OUT"
    out.mkdir()
    ct = out / "ct.nii.gz"
    ct.write_bytes(masks["liver"].read_bytes())
    before = ct.read_bytes()
    code, _, err = cli("margin", "--tumor", masks["tumor"], "--ablation", masks["ablation"],
                       "--ct", ct, "--out", out)  # fmt: skip
    one_line_error(code, err, str(out), "holds the input")
    assert ct.read_bytes() == before


def test_therapy_case_inside_its_output_folder_is_refused(cli, tmp_path):
    out = tmp_path / "OUT"
    out.mkdir()
    case = out / "therapy.json"
    case.write_text(CASE)
    code, _, err = cli("therapy", case, "--out", out)
    line = one_line_error(code, err)
    assert "holds the input" in line or "would overwrite the input" in line
    assert case.read_text() == CASE


def test_render_onto_its_own_recording_is_refused(cli, tmp_path):
    rec = tmp_path / "rec.mp4"
    rec.write_bytes(b"not really a video, but the user's file")
    code, _, err = cli("fluoro", "render", "--nir", rec, "--out", rec)
    line = one_line_error(code, err)
    assert "is also an input" in line or "would overwrite the input" in line
    assert rec.read_bytes() == b"not really a video, but the user's file"


def test_output_inside_an_input_folder_is_refused(cli, masks, tmp_path):
    series = tmp_path / "dicom-series"
    series.mkdir()
    code, _, err = cli(
        "margin", "--tumor", masks["tumor"], "--ablation", masks["ablation"],
        "--pre", series, "--post", series, "--liver-pre", masks["liver"],
        "--liver-post", masks["liver"], "--out", series / "out",
    )  # fmt: skip
    one_line_error(code, err, "inside the input folder")
    assert list(series.iterdir()) == []


def test_import_errors_out_onto_the_import_file_is_refused(cli, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("patient_id\nP1\n")
    code, _, err = cli("registry", "import", rows, "--errors-out", rows, "--db",
                       f"sqlite:///{tmp_path / 'r.sqlite'}")  # fmt: skip
    one_line_error(code, err, "is also an input")
    assert rows.read_text() == "patient_id\nP1\n"


def test_plan_into_the_folder_of_its_inputs_is_refused(cli, masks, tmp_path):
    code, _, err = cli("plan", "--ct", masks["liver"], "--tumor", masks["tumor"], "--labels",
                       masks["liver"], "--out", tmp_path)  # fmt: skip
    one_line_error(code, err, "holds the input")


def test_out_holding_the_users_files_is_refused(cli, tmp_path):
    (tmp_path / "case.yaml").write_text(CASE)
    docs = tmp_path / "Documents"
    docs.mkdir()
    (docs / "thesis.docx").write_text("years of work")
    code, _, err = cli("therapy", tmp_path / "case.yaml", "--out", docs)
    one_line_error(code, err, "HepaNav did not write")
    assert (docs / "thesis.docx").read_text() == "years of work"


# ----------------------------------------------------------------------------- FIFOs
def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (lambda t: ["therapy", _fifo(t / "case.yaml"), "--out", t / "o"], "regular file"),
        (
            lambda t: ["therapy", _write(t / "c.yaml", CASE), "--rules", _fifo(t / "r.yaml"),
                       "--out", t / "o"],
            "FIFO",
        ),
        (lambda t: ["verify-placement", "--plan", _fifo(t / "plan.json"), "--control-ct",
                    t / "ct.nii.gz", "--out", t / "o"], "regular file"),
        (lambda t: ["registry", "import", _fifo(t / "rows.csv"), "--db",
                    _db(t)], "regular file"),
        (lambda t: ["registry", "import-margin", _fifo(t / "margin.json"), "--patient-id", "P1",
                    "--procedure-id", "A", "--lesion-id", "L1", "--db",
                    _db(t)], "regular file"),
    ],
    ids=["therapy-case", "therapy-rules", "verify-plan", "registry-import", "import-margin"],
)  # fmt: skip
def test_fifo_as_a_text_input_is_refused_without_blocking(cli, tmp_path, argv, fragment):
    code, _, err = cli(*argv(tmp_path))
    one_line_error(code, err, fragment)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("option", ["--device", "--label-map"])
def test_fifo_as_plan_device_or_risk_map(cli, masks, tmp_path, option):
    fifo = _fifo(tmp_path / "in.yaml")
    code, _, err = cli("plan", "--ct", masks["liver"], "--tumor", masks["tumor"], "--labels",
                       masks["liver"], option, fifo, "--out", tmp_path / "o")  # fmt: skip
    one_line_error(code, err, "regular file")


@pytest.mark.parametrize(
    "argv",
    [
        lambda t, m: ["margin", "--tumor", _fifo(t / "f.nii.gz"), "--ablation", m["ablation"],
                      "--out", t / "o"],
        lambda t, m: ["plan", "--ct", _fifo(t / "f.nii.gz"), "--tumor", m["tumor"], "--labels",
                      m["liver"], "--out", t / "o"],
        lambda t, m: ["segment", "tumor", "--ct", _fifo(t / "f.nii.gz"), "--seed", "0,0,0",
                      "--out", t / "o" / "mask.nii.gz"],
        lambda t, m: ["phantom", "--base-ct", _fifo(t / "f.nii.gz"), "--base-liver",
                      m["liver"], "--out", t / "o"],
    ],
    ids=["margin --tumor", "plan --ct", "segment --ct", "phantom --base-ct"],
)  # fmt: skip
def test_fifo_as_an_image_input_is_refused_without_blocking(cli, masks, tmp_path, argv):
    code, _, err = cli(*argv(tmp_path, masks))
    one_line_error(code, err, "f.nii.gz", "FIFO")
    assert not (tmp_path / "o").exists()


def _db(folder: Path) -> str:
    from hepanav.registry.db import make_engine, upgrade

    url = f"sqlite:///{folder / 'r.sqlite'}"
    upgrade(make_engine(url))
    return url


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- truncated gzip
@pytest.fixture()
def images(tmp_path):
    """Every image input of every command, as a small valid ``.nii.gz`` named after its
    key (so the error line can be checked to name the right one); the plan folder holds
    a valid plan.json with its tumour crop and heat-sink band beside it."""
    inputs = tmp_path / "in"
    plan = inputs / "plan"
    plan.mkdir(parents=True)
    spheres = {
        "tumor": sphere((1.0, 0, 0), 6.0),
        "ablation": sphere((0, 0, 0), 10.0),
        "liver": sphere((0, 0, 0), 16.0),
    }
    p = {}
    ct = hu_ct(spheres["liver"])  # the CTs are read through load_ct: HU values
    for key, image in {
        **spheres,
        "ct": ct,
        "pre": ct,
        "post": ct,
        "liver-pre": spheres["liver"],
        "liver-post": spheres["liver"],
        "labels": spheres["liver"],
        "control-ct": ct,
    }.items():
        p[key] = inputs / f"{key}.nii.gz"
        sitk.WriteImage(image, str(p[key]))
    # The needle inside the control CT's 36 mm field of view: verify-placement refuses a
    # control CT that does not hold the planned target before it reads the crops.
    plan_data = json.loads(PLAN_TEMPLATE)
    plan_data["needles"][0].update(entry_lps_mm=[0, 0, -15], tip_lps_mm=[0, 0, 5], length_mm=20)
    p["plan"] = _write(plan / "plan.json", json.dumps(plan_data))
    for key, name, image in (
        ("plan-tumor-crop", "tumor.nii.gz", spheres["tumor"]),
        ("plan-heat-sink-band", "heat_sink_band.nii.gz", sphere((0, 0, 0), 0.0)),
    ):
        p[key] = plan / name
        sitk.WriteImage(image, str(p[key]))
    return p


def _margin(p, o):
    return ["margin", "--tumor", p["tumor"], "--ablation", p["ablation"], "--liver",
            p["liver"], "--ct", p["ct"], "--out", o]  # fmt: skip


def _margin_pair(p, o):
    return ["margin", "--pre", p["pre"], "--post", p["post"], "--tumor", p["tumor"],
            "--ablation", p["ablation"], "--liver-pre", p["liver-pre"], "--liver-post",
            p["liver-post"], "--out", o]  # fmt: skip


def _plan(p, o):
    return ["plan", "--ct", p["ct"], "--tumor", p["tumor"], "--labels", p["labels"],
            "--out", o]  # fmt: skip


def _verify(p, o):
    return ["verify-placement", "--plan", p["plan"], "--control-ct", p["control-ct"],
            "--out", o]  # fmt: skip


def _segment(p, o):
    return ["segment", "tumor", "--ct", p["ct"], "--seed", "0,0,0", "--out",
            o / "tumor.nii.gz"]  # fmt: skip


def _phantom(p, o):
    return ["phantom", "--base-ct", p["ct"], "--base-liver", p["liver"], "--out", o]


# Every option (or file a command reads beside another) that is an image; each is cut
# in half in turn, the others stay valid.
TRUNCATED = [
    ("margin --tumor", _margin, "tumor"),
    ("margin --ablation", _margin, "ablation"),
    ("margin --liver", _margin, "liver"),
    ("margin --ct", _margin, "ct"),
    ("margin --pre", _margin_pair, "pre"),
    ("margin --post", _margin_pair, "post"),
    ("margin --liver-pre", _margin_pair, "liver-pre"),
    ("margin --liver-post", _margin_pair, "liver-post"),
    ("plan --ct", _plan, "ct"),
    ("plan --tumor", _plan, "tumor"),
    ("plan --labels", _plan, "labels"),
    ("verify-placement --control-ct", _verify, "control-ct"),
    ("verify-placement plan tumour crop", _verify, "plan-tumor-crop"),
    ("verify-placement plan heat-sink band", _verify, "plan-heat-sink-band"),
    ("segment --ct", _segment, "ct"),
    ("phantom --base-ct", _phantom, "ct"),
    ("phantom --base-liver", _phantom, "liver"),
]


@pytest.mark.parametrize(("argv", "which"), [c[1:] for c in TRUNCATED],
                         ids=[c[0] for c in TRUNCATED])  # fmt: skip
def test_truncated_gzip_for_every_image_input(cli, images, tmp_path, argv, which):
    """A ``.nii.gz`` cut in half (gzip would give a zero-filled image, MAM -21.5 mm
    instead of 3.75 mm): exit 2, one line naming that file, nothing written."""
    bad = images[which]
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    out = tmp_path / "o"
    code, _, err = cli(*argv(images, out))
    line = one_line_error(code, err, bad.name, "truncated or corrupt")
    if bad.parent.name == "plan":
        assert f"plan/{bad.name}" in line or f"plan{os.sep}{bad.name}" in line
    assert not out.exists()
    assert not list(tmp_path.glob(".o*")), "a temporary output was left behind"


# ----------------------------------------------------------------------------- HTML
TEMPLATES = sorted(Path(__file__).parents[1].glob("src/hepanav/*/templates/*.html.j2"))


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_report_template_escapes_and_filters_links(template):
    """Autoescape is on for every report page; no ``|safe``, no ``autoescape false``; every
    ``href`` built from data goes through ``safe_url``; every ``src`` is a figure URI."""
    from hepanav.core.report import _environment

    package = f"hepanav.{template.parent.parent.name}"
    env = _environment(package)
    assert env.autoescape(template.name) is True if callable(env.autoescape) else env.autoescape
    text = template.read_text(encoding="utf-8")
    assert not re.search(r"\|\s*safe\b(?!_)", text) and "autoescape false" not in text
    for href in re.findall(r'href="\{\{([^}]*)\}\}"', text):
        assert "safe_url" in href, href
    for src in re.findall(r'src="\{\{([^}]*)\}\}"', text):
        assert not re.search(r"url|link|source|input|case", src), src  # a generated figure


HOSTILE_RULES = """
rules:
  - id: EMB-01
    therapy: [tae]
    effect: contraindication
    text: "<script>alert(1)</script> cachexia"
    condition: {field: cachexia, op: eq, value: false}
    source:
      citation: "<b>citation</b>"
      title: "<i>title</i>"
      year: 2020
      pmid: 1
      quote: "<script>alert(2)</script>"
      url: "javascript:alert('x')"
"""


def test_therapy_report_escapes_text_and_drops_javascript_links(cli, tmp_path):
    case = _write(tmp_path / "case.yaml", CASE)
    # A javascript: link in a rule file never becomes a live link: refused at load ...
    rules = _write(tmp_path / "rules.yaml", HOSTILE_RULES)
    code, _, err = cli("therapy", case, "--rules", rules, "--out", tmp_path / "o")
    one_line_error(code, err, "url")
    # ... and every text of a rule is shown escaped.
    rules = _write(
        tmp_path / "rules.yaml",
        HOSTILE_RULES.replace("javascript:alert('x')", "https://example.org/?q=<x>"),
    )
    code, _, err = cli("therapy", case, "--rules", rules, "--out", tmp_path / "o")
    assert code == 0, err
    html = (tmp_path / "o" / "therapy.html").read_text(encoding="utf-8")
    assert "<script>" not in html and "<b>citation" not in html and "<i>title" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown, escaped
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert "q=<x>" not in html
    from hepanav.core.report import safe_url

    assert safe_url("javascript:alert('x')") == ""  # the template filter, second line of defence


def test_fluorescence_report_escapes_input_names(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # inputs are recorded relative to the working folder
    from hepanav.phantoms.fluorescence import Camera, FluoroLesion, render_sequence, save_frames

    frames = list(
        render_sequence(
            [FluoroLesion((40, 40), 6.0, depth_mm=0.5, pattern="homogeneous", surface_tbr=5.0)],
            Camera(width=96, height=80, mm_per_px=0.4),
            n_frames=2,
            seed=1,
        )
    )
    nir, _ = save_frames(frames, tmp_path / "<img src=x onerror=alert(1)>")
    code, _, err = cli("fluoro", "analyze", "--nir", nir, "--out", tmp_path / "o", "--no-video")
    assert code == 0, err
    html = (tmp_path / "o" / "report.html").read_text(encoding="utf-8")
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


# ----------------------------------------------------------------------------- numeric bounds
@pytest.mark.parametrize(
    "argv, fragment",
    [
        (("phantom", "--seed", str(2**32)), "--seed"),
        (("phantom", "--seed", "1" + "0" * 40), "--seed"),
        (("segment", "tumor", "--ct", "{tumor}", "--seed", "0,0,0", "--max-radius-mm", "301"),
         "--max-radius-mm"),
        (("margin", "--tumor", "{tumor}", "--ablation", "{ablation}", "--mask-threshold",
          "70000"), "--mask-threshold"),
        (("margin", "--tumor", "{tumor}", "--ablation", "{ablation}", "--mask-threshold", "0"),
         "--mask-threshold"),
    ],
)  # fmt: skip
def test_numeric_options_above_their_upper_bound_are_one_line(cli, masks, tmp_path, argv, fragment):
    out = tmp_path / "OUT"
    args = [a.format(**{k: str(v) for k, v in masks.items()}) for a in argv]
    args += ["--out", str(out / "m.nii.gz") if argv[0] == "segment" else str(out)]
    code, _, err = cli(*args)
    one_line_error(code, err, fragment)
    assert not out.exists()


@pytest.mark.parametrize("threshold, ok", [(0.5, True), (1.0, False), (1.5, False)])
def test_mask_threshold_must_lie_inside_a_fraction_mask(tmp_path, threshold, ok):
    """A fraction mask (0-1) thresholded at >= 1 would be empty or nearly: refused by name;
    0.5 selects by construction the voxels >= 0.5 (the sphere of radius 6 mm)."""
    from hepanav.core.errors import InputError
    from hepanav.imaging.masks import load_mask

    image = sitk.Cast(sphere((0, 0, 0), 6.0), sitk.sitkFloat32) * 0.75
    image = sitk.Add(image, 0.1)  # values 0.1 outside, 0.85 inside: fractions
    path = tmp_path / "fractions.nii.gz"
    sitk.WriteImage(image, str(path))
    if ok:
        mask, _ = load_mask(path, "tumor", threshold=threshold)
        assert (
            sitk.GetArrayFromImage(mask).sum()
            == sitk.GetArrayFromImage(sphere((0, 0, 0), 6.0)).sum()
        )
    else:
        with pytest.raises(InputError, match="strictly between 0 and 1"):
            load_mask(path, "tumor", threshold=threshold)
