"""``hepanav therapy``: both command forms, outputs, demo, and one-line errors (exit 2)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from cli_helpers import one_line_error
from hepanav import DISCLAIMER
from hepanav.therapy.commands import DOSE_OUTSIDE_EXIT_CODE
from hepanav.therapy.schema import TherapyReport

CASE = {
    "case_id": "cli-crc",
    "primary": "crc",
    "lesions": [{"size_mm": 62, "segment": 7, "near_major_vessel": True}],
    "extrahepatic_disease": False,
    "ecog": 1,
    "resectable": True,
    "lung_shunt_fraction_percent": 25,
    "lung_dose_gy": 35,
}


def write_case(tmp_path, data, name="case.yaml"):
    path = tmp_path / name
    path.write_text(json.dumps(data) if name.endswith(".json") else yaml.safe_dump(data))
    return path


def verdicts(out_dir):
    report = TherapyReport.model_validate_json(
        (out_dir / "therapy.json").read_text(encoding="utf-8")
    )
    return {o.therapy: o.verdict for o in report.options}, report


def test_default_and_explicit_evaluate_give_the_same_result(cli, tmp_path):
    case = write_case(tmp_path, CASE)
    code1, out1, _ = cli("therapy", case, "--out", tmp_path / "a")
    code2, _, _ = cli("therapy", "evaluate", case, "--out", tmp_path / "b")
    assert code1 == code2 == 0
    assert "thermal_ablation: relative_contraindication" in out1
    a = (tmp_path / "a" / "therapy.json").read_text(encoding="utf-8")
    assert a == (tmp_path / "b" / "therapy.json").read_text(encoding="utf-8")
    got, report = verdicts(tmp_path / "a")
    assert got["tare"] == "contraindicated" and got["resection"] == "indicated"
    assert report.disclaimer == DISCLAIMER
    assert set(report.not_evaluated) == {"systemic"}
    html = (tmp_path / "a" / "therapy.html").read_text(encoding="utf-8")
    assert DISCLAIMER in html and "TARE-04" in html and "TARE-01" in html
    assert "data:image/png;base64," in html


def test_options_before_the_case_also_route_to_evaluate(cli, tmp_path):
    code, _, _ = cli("therapy", "--out", tmp_path / "o", write_case(tmp_path, CASE))
    assert code == 0 and (tmp_path / "o" / "therapy.json").is_file()


def test_group_help_lists_both_subcommands(cli):
    code, out, _ = cli("therapy", "--help")
    assert code == 0 and "evaluate" in out and "dose" in out


def test_schemas_are_exported():
    schema = TherapyReport.model_json_schema()
    assert {"options", "not_evaluated", "disclaimer"} <= set(schema["properties"])


def test_json_case_file(cli, tmp_path):
    case = write_case(tmp_path, CASE, "case.json")
    code, _, _ = cli("therapy", case, "--out", tmp_path / "o")
    assert code == 0
    assert verdicts(tmp_path / "o")[0]["thermal_ablation"] == "relative_contraindication"


def test_therapy_json_keys(cli, tmp_path):
    cli("therapy", write_case(tmp_path, CASE), "--out", tmp_path / "o")
    data = json.loads((tmp_path / "o" / "therapy.json").read_text(encoding="utf-8"))
    option = data["options"][0]
    assert {"therapy", "verdict", "reasons", "missing_fields"} <= set(option)
    assert {"rule_id", "text", "source"} <= set(option["reasons"][0])
    assert "disclaimer" in data


def test_dose_command(cli):
    code, out, _ = cli(
        "therapy",
        "dose",
        "--drug",
        "cisplatin",
        "--dose",
        "50",
        "--unit",
        "mg/m2",
        "--route",
        "IA",
        "--height-cm",
        "180",
        "--weight-kg",
        "80",
    )
    assert code == 0
    assert "= 100 mg" in out and "BSA 2.00 m2 (Mosteller)" in out and "WITHIN" in out


def test_dose_json(cli):
    code, out, _ = cli(
        "therapy",
        "dose",
        "--drug",
        "5-FU",
        "--dose",
        "2000",
        "--unit",
        "mg",
        "--route",
        "intra-arterial",
        "--json",
    )
    assert code == DOSE_OUTSIDE_EXIT_CODE == 1  # a finding, documented in docs/therapy.md
    data = json.loads(out)
    assert data["result"] == "above" and data["range_mg"] == [1000.0, 1500.0]
    assert data["disclaimer"] == DISCLAIMER


BAD_CASES = [
    ({"primry": "crc"}, "field 'primry': unknown field"),
    ({"ki67_percent": "high"}, "field 'ki67_percent'"),
    ({"resectable": "yes"}, "field 'resectable'"),
    ({"lesions": [{"size_mm": -5}]}, "field 'lesions[0].size_mm': -5: Input should be greater"),
    # 3.1 cm typed as 3.1: refused with the unit named, not decided as a 3 mm lesion.
    (
        {"lesions": [{"size_mm": 3.1}]},
        "field 'lesions[0].size_mm': 3.1: Input should be greater than or equal to 5 mm; "
        "sizes are in millimetres",
    ),
    ({"lesions": [{"size_mm": 310}]}, "field 'lesions[0].size_mm': 310: Input should be less"),
    ({"lesions": [{"size_mm": 20, "segment": 9}]}, "field 'lesions[0].segment'"),
    ({"primary": "lung"}, "field 'primary'"),
    ({"lesions": [{"size_mm": float("inf")}]}, "field 'lesions[0].size_mm'"),
    ({"bilirubin_mg_dl": float("nan")}, "field 'bilirubin_mg_dl'"),
    ({"lesions": []}, "field 'lesions': List should have at least 1 item"),
    # Percent fields typed as fractions (25 % lung shunt as 0.25, 70 % burden as 0.7):
    # read as percent they fell below every threshold (TARE/TACE contraindications lost).
    (
        {"lung_shunt_fraction_percent": 0.25},
        "field 'lung_shunt_fraction_percent': a number between 0 and 1 is ambiguous",
    ),
    ({"liver_tumor_burden_percent": 0.7}, "field 'liver_tumor_burden_percent': a number"),
    ({"net_grade": "G4"}, "field 'net_grade'"),
    ({"future_liver_remnant_percent": 0.3}, "field 'future_liver_remnant_percent'"),
    ({"lung_shunt_fraction_percent": "25"}, "with the % sign"),
]


def test_codes_in_any_case_and_a_ki67_under_one_percent_are_read(cli, tmp_path):
    """``primary: CRC`` is ``crc`` and ``net_grade: g1`` is ``G1`` (as the registry takes
    codes); a Ki-67 of 0.5 is 0.5 % (common in G1 NETs; the registry takes it too), the
    same as the unambiguous "0.5 %": each pair gives the same therapy.json."""
    base = {"lesions": [{"size_mm": 20}], "ecog": 0, "sstr_positive": True}
    pairs = [
        ({"primary": "CRC"}, {"primary": "crc"}),
        ({"primary": " Net ", "net_grade": "g1"}, {"primary": "net", "net_grade": "G1"}),
        ({"primary": "net", "ki67_percent": 0.5}, {"primary": "net", "ki67_percent": "0.5 %"}),
    ]
    for i, (given, canonical) in enumerate(pairs):
        outs = []
        for j, data in enumerate((given, canonical)):
            out = tmp_path / f"o{i}{j}"
            code, _, err = cli("therapy", write_case(tmp_path, {**base, **data}), "--out", out)
            assert code == 0, err
            outs.append((out / "therapy.json").read_text(encoding="utf-8"))
        assert outs[0] == outs[1], given
    # Ki-67 0.5 % is below PRRT-02's 20 %; 25 (%) is above it.
    verdict = {}
    for ki67 in (0.5, 25):
        out = tmp_path / f"k{ki67}"
        data = {**base, "primary": "net", "ki67_percent": ki67}
        assert cli("therapy", write_case(tmp_path, data), "--out", out)[0] == 0
        verdict[ki67] = verdicts(out)[0]["prrt"]
    assert verdict[0.5] != "relative_contraindication"
    assert verdict[25] == "relative_contraindication"


@pytest.mark.parametrize("data,expected", BAD_CASES)
def test_bad_case_is_one_line_exit_2(cli, tmp_path, data, expected):
    case = write_case(tmp_path, data)
    code, _, err = cli("therapy", case, "--out", tmp_path / "o")
    one_line_error(code, err, expected)
    assert str(case) in err
    assert not (tmp_path / "o" / "therapy.json").exists()


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--drug", "aspirin", "--dose", "50", "--unit", "mg"], "--drug: unknown drug 'aspirin'"),
        (["--drug", "ddp", "--dose", "50", "--unit", "mg/l"], "--unit: unknown unit 'mg/l'"),
        (["--drug", "ddp", "--dose", "-5", "--unit", "mg"], "--dose: must be a positive number"),
        (["--drug", "ddp", "--dose", "abc", "--unit", "mg"], "--dose: not a number: 'abc'"),
        (["--drug", "ddp", "--dose", "50", "--unit", "mg/m2"], "--weight-kg: required"),
        (["--drug", "ddp", "--dose", "50", "--unit", "mg", "--route", "iv"], "--route"),
    ],
)
def test_bad_dose_is_one_line_exit_2(cli, args, expected):
    code, _, err = cli("therapy", "dose", *args)
    one_line_error(code, err, expected)


def test_bad_rule_file_names_file_and_rule(cli, tmp_path):
    rules = tmp_path / "my_rules.yaml"
    rules.write_text(
        yaml.safe_dump(
            {
                "rules": [
                    {
                        "id": "MY-01",
                        "therapy": "tare",
                        "effect": "contraindication",
                        "text": "t",
                        "condition": {"field": "lung_shunt", "op": "gt", "value": 20},
                        "source": {
                            "citation": "c",
                            "title": "t",
                            "year": 2020,
                            "doi": "10.1000/x",
                            "quote": "q",
                        },
                    }
                ]
            }
        )
    )
    code, _, err = cli(
        "therapy", write_case(tmp_path, CASE), "--out", tmp_path / "o", "--rules", rules
    )
    one_line_error(code, err, "rule 'MY-01'")
    assert str(rules) in err and "unknown field 'lung_shunt'" in err


def test_case_file_not_utf8(cli, tmp_path):
    case = tmp_path / "case.yaml"
    case.write_bytes(b"\xff\xfe\x00p")
    code, _, err = cli("therapy", case, "--out", tmp_path / "o")
    one_line_error(code, err, "not UTF-8")


def test_out_is_a_file(cli, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    code, _, err = cli("therapy", write_case(tmp_path, CASE), "--out", blocker)
    line = one_line_error(code, err, f"{blocker}: exists and is not a folder; give a folder name")
    assert "File exists" not in line  # no stray capital mid-sentence (tester)


def test_missing_case_file(cli, tmp_path):
    code, _, err = cli("therapy", tmp_path / "nope.yaml", "--out", tmp_path / "o")
    one_line_error(code, err, "case file does not exist")


def test_demo_writes_reports(tmp_path):
    from hepanav.therapy.demo import run

    paths = run(tmp_path)
    assert len(paths) == 4 and all(p.is_file() and p.suffix == ".html" for p in paths)
    dose = json.loads((tmp_path / "dose_check.json").read_text(encoding="utf-8"))
    assert dose["total_mg"] == 100.0 and dose["result"] == "within"


def _rule_file(tmp_path, **source):
    rule = {
        "id": "MY-01",
        "therapy": "tare",
        "effect": "contraindication",
        "text": "t",
        "condition": {"field": "lung_shunt_fraction_percent", "op": "gt", "value": 20},
        "source": {
            "citation": "c",
            "title": "t",
            "year": 2020,
            "doi": "10.1000/x",
            "quote": "q",
            **source,
        },
    }
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"rules": [rule]}))
    return path


def test_javascript_url_never_becomes_a_link(cli, tmp_path):
    bad = _rule_file(tmp_path, url="javascript:alert(document.cookie)")
    code, _, err = cli(
        "therapy", write_case(tmp_path, CASE), "--out", tmp_path / "o", "--rules", bad
    )
    one_line_error(code, err, "rule 'MY-01'", "http")
    assert not (tmp_path / "o").exists()
    # A rule that passes validation is linked through its DOI, with an https address only.
    good = _rule_file(tmp_path, url="https://example.org/paper")
    code, _, err = cli(
        "therapy", write_case(tmp_path, CASE), "--out", tmp_path / "o", "--rules", good
    )
    assert code == 0, err
    html = (tmp_path / "o" / "therapy.html").read_text(encoding="utf-8")
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs and all(h.startswith("https://") for h in hrefs)
    assert "javascript:" not in html.lower()
    # Even a Source built around validation cannot render a non-http link.
    from hepanav.therapy.schema import Source

    src = Source.model_construct(
        citation="c", title="t", year=2020, doi=None, pmid=None, quote="q", url="javascript:x"
    )
    assert src.link is None


def test_output_that_would_overwrite_the_input_is_refused(cli, tmp_path):
    out = tmp_path / "out"
    code, _, err = cli("therapy", write_case(tmp_path, CASE), "--out", out)
    assert code == 0, err
    # therapy.json is not a case file, but name it as the case: it must not be replaced
    case_copy = out / "therapy.json"
    before = case_copy.read_bytes()
    code, _, err = cli("therapy", case_copy, "--out", out)
    one_line_error(code, err, "would overwrite the input therapy.json")
    assert case_copy.read_bytes() == before


@pytest.mark.parametrize(
    "case_id",
    [
        "John Smith",
        "Smith, John",
        "DOB 1961-04-12",
        "12.04.1961",
        "MRN 00123456",
        "4711234567",
        "j.smith@example.org",
        "+49 30 1234 5678",
    ],
)
def test_identifier_like_case_id_is_refused_without_echo(cli, tmp_path, case_id):
    code, out, err = cli(
        "therapy", write_case(tmp_path, {**CASE, "case_id": case_id}), "--out", tmp_path / "o"
    )
    line = one_line_error(code, err, "case_id", "value not shown")
    assert case_id not in line and case_id not in out
    assert not (tmp_path / "o").exists()


def test_pseudonymous_case_id_is_kept(cli, tmp_path):
    code, _, err = cli(
        "therapy", write_case(tmp_path, {**CASE, "case_id": "NET-07"}), "--out", tmp_path / "o"
    )
    assert code == 0, err
    assert '"case_id": "NET-07"' in (tmp_path / "o" / "therapy.json").read_text(encoding="utf-8")


def test_regimen_dose_checks(cli):
    code, out, err = cli(
        "therapy", "dose", "--regimen", "deb-tace-doxorubicin", "--dose", "150", "--unit", "mg"
    )
    assert code == 0, err
    assert "WITHIN" in out and "up to 150 mg per session" in out
    assert "UNVERIFIED" not in out and "Poon" in out
    # a protocol dose that was not found in its source's text: the line says so
    code, out, err = cli(
        "therapy", "dose", "--regimen", "ctace-doxorubicin", "--dose", "50", "--unit", "mg/m2"
    )
    assert code == 0 and "WITHIN" in out and "UNVERIFIED" in out
    # above the protocol dose: the finding is printed and the exit code is 1, not 0
    code, out, err = cli(
        "therapy", "dose", "--regimen", "deb-tace-doxorubicin", "--dose", "151", "--unit", "mg"
    )
    assert code == 1 and "ABOVE the protocol dose" in out and err.strip() == ""
    # doxorubicin alone is not compared with the 40-60 mg historical range any more
    code, _, err = cli("therapy", "dose", "--drug", "doxorubicin", "--dose", "150", "--unit", "mg")
    one_line_error(code, err, "--drug", "deb-tace-doxorubicin", "--historical")
    code, out, _ = cli(
        "therapy",
        "dose",
        "--drug",
        "doxorubicin",
        "--dose",
        "150",
        "--unit",
        "mg",
        "--historical",
        "--json",
    )
    data = json.loads(out)
    assert data["result"] == "above" and data["table"] == "historical intra-arterial ranges"
    code, out, _ = cli(
        "therapy",
        "dose",
        "--regimen",
        "hai-oxaliplatin",
        "--dose",
        "180",
        "--unit",
        "mg",
        "--height-cm",
        "170",
        "--weight-kg",
        "70",
        "--json",
    )
    data = json.loads(out)
    # BSA sqrt(170*70/3600) = 1.818 m2; 100 mg/m2 -> 182 mg: 180 mg is within
    assert data["result"] == "within" and data["bsa_m2"] == 1.82 and data["patient_mg"] == 180
    code, out, _ = cli(
        "therapy",
        "dose",
        "--regimen",
        "hai-floxuridine",
        "--dose",
        "0.35",
        "--unit",
        "mg/kg",
        "--per",
        "day",
        "--json",
    )
    assert json.loads(out)["result"] == "above" and code == 1
    code, out, _ = cli(
        "therapy",
        "dose",
        "--regimen",
        "hai-floxuridine",
        "--dose",
        "0.3",
        "--unit",
        "mg/kg",
        "--per",
        "day",
    )
    # a verified protocol dose: WITHIN, exit 0, no UNVERIFIED mark
    assert code == 0 and "WITHIN" in out and "UNVERIFIED" not in out
    code, _, err = cli(
        "therapy", "dose", "--regimen", "hai-floxuridine", "--dose", "0.2", "--unit", "mg/kg"
    )
    one_line_error(code, err, "--per")


def test_report_screenshot_shows_grey_no_contraindication_and_sources(cli, tmp_path):
    from fluorescence_screens import screenshot

    data = {
        "case_id": "NET-07",
        "primary": "net",
        "net_grade": "G1",
        "ki67_percent": 2,
        "sstr_positive": True,
        "lesions": [{"size_mm": 25, "near_major_vessel": False}, {"size_mm": 18}],
        "extrahepatic_disease": False,
        "resectable": True,
        "bilioenteric_anastomosis": True,
        "selective_arterial_access": True,
    }
    out = tmp_path / "o"
    code, _, err = cli("therapy", write_case(tmp_path, data), "--out", out)
    assert code == 0, err
    page = screenshot(out / "therapy.html", tmp_path / "therapy_report.png")
    try:
        import shutil

        shutil.copy(tmp_path / "therapy_report.png", "/tmp/fluo/therapy_report.png")
    except OSError:
        pass
    text = page["text"]
    assert "indicated" in text and "relative contraindication" in text
    assert "pending: lesions[].near_major_vessel" in text
    html = (out / "therapy.html").read_text(encoding="utf-8")
    # indicated in the green class, no contraindication found in grey, never green
    assert re.search(r'class="ok">indicated<', html)
    assert re.search(r'class="grey">no contraindication found', html)
    assert not re.search(r'class="ok">no contraindication', html)
    assert "DOI 10.1056/NEJMoa1607427" in html and "https://doi.org/10.1056/NEJMoa1607427" in html


# --- a key given twice in the case file (tester T1) ------------------------------------
@pytest.mark.parametrize(
    "name,text,key",
    [
        # lung_dose_gy 45 Gy (TARE contraindication > 30 Gy), then 10: the 45 was dropped.
        (
            "dup.yaml",
            "primary: crc\nlesions:\n  - size_mm: 30\nlung_dose_gy: 45\nlung_dose_gy: 10\n",
            "duplicate key 'lung_dose_gy' (line 5)",
        ),
        (
            "dup.json",
            '{"primary": "crc", "lesions": [{"size_mm": 30}], '
            '"lung_shunt_fraction_percent": 25, "lung_shunt_fraction_percent": 5}',
            "duplicate key 'lung_shunt_fraction_percent'",
        ),
        ("nested.yaml", "lesions:\n  - {size_mm: 40, size_mm: 20}\n", "duplicate key 'size_mm'"),
    ],
)
def test_a_key_given_twice_is_refused_naming_file_and_key(cli, tmp_path, name, text, key):
    case = tmp_path / name
    case.write_text(text)
    code, _, err = cli("therapy", case, "--out", tmp_path / "o")
    one_line_error(code, err, key, str(case))
    assert not (tmp_path / "o").exists()


def test_yaml_merge_keys_may_still_be_overridden():
    from hepanav.core.validation import parse_yaml

    data = parse_yaml("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\n", "m.yaml")
    assert data["c"] == {"x": 3, "y": 2}


def test_web_therapy_form_refuses_a_key_given_twice(tmp_path):
    from hepanav.core.errors import InputError
    from hepanav.web.workflows import run_therapy

    with pytest.raises(InputError, match="duplicate key 'lung_dose_gy'"):
        run_therapy("primary: crc\nlung_dose_gy: 45\nlung_dose_gy: 10\n", tmp_path)


# --- percent fields (tester T2) ----------------------------------------------------------
def test_percent_as_percent_keeps_the_tare_and_tace_contraindications(cli, tmp_path):
    """25 % lung shunt (> 20 %: TARE relative contraindication) and 70 % tumour burden
    (> 60 %: TACE relative contraindication), as in the tester's percent.yaml."""
    data = {
        "primary": "crc",
        "lesions": [{"size_mm": 40}],
        "lung_shunt_fraction_percent": 25,
        "liver_tumor_burden_percent": 70,
        "bilirubin_mg_dl": 0.8,
        "ecog": 1,
    }
    code, _, err = cli("therapy", write_case(tmp_path, data), "--out", tmp_path / "o")
    assert code == 0, err
    got, _ = verdicts(tmp_path / "o")
    assert got["tare"] == got["tace"] == "relative_contraindication"


def test_a_value_under_one_percent_is_written_with_the_sign(tmp_path):
    from hepanav.therapy.cases import case_from_data

    case = case_from_data(
        {
            "lung_shunt_fraction_percent": "0.25 %",
            "ki67_percent": 0,
            "liver_tumor_burden_percent": 1,
        }
    )
    assert case.lung_shunt_fraction_percent == 0.25
    assert case.ki67_percent == 0 and case.liver_tumor_burden_percent == 1
