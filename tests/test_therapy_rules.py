"""Condition language (three-valued logic), rule-file validation and verdict combination."""

from __future__ import annotations

import itertools

import pytest
import yaml

from hepanav.core import InputError
from hepanav.therapy.conditions import FIELDS, case_facts, evaluate, parse_condition
from hepanav.therapy.engine import combine
from hepanav.therapy.rules import RULES_DIR, load_rule_file, load_rules
from hepanav.therapy.schema import Case

T, F, U = True, False, None
# Known truth values for the three leaves below: resectable, cachexia, ecog > 2.
LEAF = {
    T: {"field": "resectable", "op": "eq", "value": True},
    F: {"field": "cachexia", "op": "eq", "value": True},
    U: {"field": "ki67_percent", "op": "gt", "value": 20},
}
FACTS = {"resectable": True, "cachexia": False, "ki67_percent": None}


def kleene_and(a, b):
    if a is False or b is False:
        return False
    return None if (a is None or b is None) else True


def kleene_or(a, b):
    if a is True or b is True:
        return True
    return None if (a is None or b is None) else False


@pytest.mark.parametrize("a,b", list(itertools.product([T, F, U], repeat=2)))
def test_all_any_follow_kleene_truth_tables(a, b):
    both = [LEAF[a], LEAF[b]]
    assert evaluate(parse_condition({"all": both}), FACTS)[0] is kleene_and(a, b)
    assert evaluate(parse_condition({"any": both}), FACTS)[0] is kleene_or(a, b)


def test_not_keeps_unknown_and_reports_missing_field():
    assert evaluate(parse_condition({"not": LEAF[T]}), FACTS) == (False, frozenset())
    assert evaluate(parse_condition({"not": LEAF[U]}), FACTS) == (None, {"ki67_percent"})


def test_decided_combination_asks_for_nothing():
    # all(false, unknown) is false: the unknown field cannot change it
    assert evaluate(parse_condition({"all": [LEAF[F], LEAF[U]]}), FACTS) == (False, frozenset())


def test_lesion_derived_facts():
    case = Case(
        lesions=[
            {"size_mm": 12.5, "near_major_vessel": False},
            {"size_mm": 41.0},  # vessel relation unknown
        ]
    )
    facts = case_facts(case)
    assert facts["lesion_count"] == 2
    assert facts["max_lesion_size_mm"] == 41.0
    assert facts["any_lesion_near_major_vessel"] is None
    case.lesions[1].near_major_vessel = True
    assert case_facts(case)["any_lesion_near_major_vessel"] is True
    assert case_facts(Case())["lesion_count"] is None


def test_fields_mirror_the_case_model():
    scalar = set(Case.model_fields) - {"case_id", "lesions"}
    derived = {"lesion_count", "max_lesion_size_mm", "any_lesion_near_major_vessel"}
    assert set(FIELDS) == scalar | derived
    assert FIELDS["primary"].choices == ("crc", "net", "hcc", "other")
    assert FIELDS["ecog"].kind == "number" and FIELDS["cachexia"].kind == "bool"


# (outcomes, verdict): the precedence documented in hepanav.therapy.engine
COMBINATIONS = [
    ([("indication", T), ("relative_contraindication", F)], "eligible"),
    ([], "eligible"),
    ([("indication", F), ("contraindication", U)], "contraindicated"),
    ([("contraindication", T), ("relative_contraindication", T)], "contraindicated"),
    ([("contraindication", U), ("relative_contraindication", T)], "insufficient_data"),
    ([("indication", U)], "insufficient_data"),
    (
        [("relative_contraindication", T), ("relative_contraindication", U)],
        "relative_contraindication",
    ),
    ([("relative_contraindication", U), ("indication", T)], "insufficient_data"),
]


@pytest.mark.parametrize("outcomes,verdict", COMBINATIONS)
def test_combine_precedence(outcomes, verdict):
    assert combine(outcomes) == verdict


def test_builtin_tables_load_and_every_rule_has_a_quoted_source():
    rules = load_rules()
    assert len(rules) >= 15
    assert {r.file for r in rules} == {p.name for p in RULES_DIR.glob("*.yaml")}
    assert all(r.source.citation.strip() and r.source.quote.strip() for r in rules)


GOOD = {
    "id": "TST-01",
    "therapy": "tare",
    "effect": "contraindication",
    "text": "test",
    "condition": {"field": "lung_shunt_fraction_percent", "op": "gt", "value": 20},
    "source": {"citation": "c", "quote": "q"},
}

BAD_RULES = [
    ({"colour": "red"}, "colour"),  # unknown rule key
    ({"effect": "maybe"}, "effect"),
    ({"therapy": "surgery"}, "therapy"),
    ({"therapy": []}, "names no therapy"),
    (
        {"condition": {"field": "tumour_size", "op": "gt", "value": 3}},
        "unknown field 'tumour_size'",
    ),
    ({"condition": {"field": "ecog", "op": "gt", "value": "two"}}, "'ecog' is a number"),
    ({"condition": {"field": "cachexia", "op": "eq", "value": "yes"}}, "'cachexia' is boolean"),
    ({"condition": {"field": "primary", "op": "eq", "value": "lung"}}, "'primary' is one of"),
    ({"condition": {"field": "cachexia", "op": "gt", "value": 1}}, "needs a numeric field"),
    ({"condition": {"field": "ecog", "op": "approx", "value": 1}}, "unknown operator"),
    ({"condition": {"field": "ecog", "op": "gt", "value": 1, "unit": "x"}}, "unknown keys"),
    ({"condition": {"all": []}}, "non-empty list"),
    ({"condition": {"any": [{"field": "ecog", "op": "gt"}]}}, "condition.any[0]: missing keys"),
    ({"source": {"citation": "c"}}, "source.quote"),
]


@pytest.mark.parametrize("change,expected", BAD_RULES)
def test_bad_rule_names_file_rule_and_problem(tmp_path, change, expected):
    path = tmp_path / "bad_rules.yaml"
    path.write_text(yaml.safe_dump({"rules": [GOOD, {**GOOD, "id": "TST-02", **change}]}))
    with pytest.raises(InputError) as exc:
        load_rule_file(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: rule 'TST-02': ")
    assert expected in message
    assert "\n" not in message


def test_duplicate_rule_ids_across_files(tmp_path):
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text(yaml.safe_dump({"rules": [GOOD]}))
    with pytest.raises(InputError, match="rule 'TST-01': duplicate id"):
        load_rules(sorted(tmp_path.glob("*.yaml")))


def test_unknown_top_level_key(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"rules": [GOOD], "version": 2}))
    with pytest.raises(InputError, match="unknown top-level keys"):
        load_rule_file(path)


def test_rule_file_not_utf8(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_bytes(b"\xff\xferules: []")
    with pytest.raises(InputError, match="not UTF-8"):
        load_rule_file(path)
