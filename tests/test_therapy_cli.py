"""``hepanav therapy``: both command forms, outputs, demo, and one-line errors (exit 2)."""

from __future__ import annotations

import json

import pytest
import yaml

from cli_helpers import one_line_error
from hepanav import DISCLAIMER
from hepanav.therapy.schema import TherapyReport

CASE = {
    "case_id": "cli-crc",
    "primary": "crc",
    "lesions": [{"size_mm": 62, "segment": 7, "near_major_vessel": True}],
    "extrahepatic_disease": False,
    "ecog": 1,
    "resectable": True,
    "lung_shunt_fraction_percent": 25,
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
    assert got["tare"] == "contraindicated" and got["resection"] == "eligible"
    assert report.disclaimer == DISCLAIMER
    assert set(report.not_evaluated) == {"hai", "systemic"}
    html = (tmp_path / "a" / "therapy.html").read_text(encoding="utf-8")
    assert DISCLAIMER in html and "TARE-01" in html and "data:image/png;base64," in html


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
    assert code == 0
    data = json.loads(out)
    assert data["result"] == "above" and data["range_mg"] == [1000.0, 1500.0]
    assert data["disclaimer"] == DISCLAIMER


BAD_CASES = [
    ({"primry": "crc"}, "field 'primry': unknown field"),
    ({"ki67_percent": "high"}, "field 'ki67_percent'"),
    ({"resectable": "yes"}, "field 'resectable'"),
    ({"lesions": [{"size_mm": -5}]}, "field 'lesions[0].size_mm': Input should be greater than 0"),
    ({"lesions": [{"size_mm": 20, "segment": 9}]}, "field 'lesions[0].segment'"),
    ({"primary": "lung"}, "field 'primary'"),
    ({"lesions": [{"size_mm": float("inf")}]}, "field 'lesions[0].size_mm'"),
    ({"bilirubin_mg_dl": float("nan")}, "field 'bilirubin_mg_dl'"),
    ({"lesions": []}, "field 'lesions': List should have at least 1 item"),
]


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
                        "source": {"citation": "c", "quote": "q"},
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
    one_line_error(code, err, f"{blocker}: File exists")


def test_missing_case_file(cli, tmp_path):
    code, _, err = cli("therapy", tmp_path / "nope.yaml", "--out", tmp_path / "o")
    one_line_error(code, err, "case file does not exist")


def test_demo_writes_reports(tmp_path):
    from hepanav.therapy.demo import run

    paths = run(tmp_path)
    assert len(paths) == 4 and all(p.is_file() and p.suffix == ".html" for p in paths)
    dose = json.loads((tmp_path / "dose_check.json").read_text(encoding="utf-8"))
    assert dose["total_mg"] == 100.0 and dose["result"] == "within"
