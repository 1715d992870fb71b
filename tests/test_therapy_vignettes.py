"""Clinical vignettes: each asserts verdicts AND the rule ids that produced them.

The expected verdicts follow from the rules' sources by hand (e.g. COLLISION: each
CRLM <= 3 cm; TARE: lung shunt fraction > 20% excludes). A final test checks that
every rule in the built-in tables decides at least one vignette.
"""

from __future__ import annotations

import copy

import pytest

from hepanav.therapy.cases import case_from_data
from hepanav.therapy.engine import deciding_rule_ids, evaluate_case
from hepanav.therapy.rules import load_rules

RULES = load_rules()

# A complete, unremarkable CRC case: every field known, nothing against anything.
BASE = {
    "primary": "crc",
    "lesions": [{"size_mm": 20, "segment": 6, "near_major_vessel": False}],
    "extrahepatic_disease": False,
    "ecog": 0,
    "bilirubin_mg_dl": 0.8,
    "albumin_g_dl": 4.0,
    "future_liver_remnant_percent": 60,
    "liver_tumor_burden_percent": 10,
    "resectable": True,
    "bilioenteric_anastomosis": False,
    "portal_vein_thrombosis": False,
    "lung_shunt_fraction_percent": 5,
    "selective_arterial_access": True,
    "cachexia": False,
    "prior_liver_radiation": False,
}


def case(**changes):
    data = copy.deepcopy(BASE)
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def lesions(*sizes, near=False):
    return [{"size_mm": s, "near_major_vessel": near} for s in sizes]


NET = {"primary": "net", "sstr_positive": True}

# name -> (case data, {therapy: (verdict, [deciding rule ids])}, {therapy: missing fields})
VIGNETTES = {
    "net_g1_oligometastatic_resectable": (
        case(**NET, net_grade="G1", ki67_percent=2, lesions=lesions(25, 18)),
        {
            "resection": ("eligible", ["RES-01"]),
            "thermal_ablation": ("eligible", []),
            "prrt": ("eligible", ["PRRT-01"]),
            "tae": ("eligible", []),
        },
        {},
    ),
    "net_g2_oligometastatic_resectable": (
        case(**NET, net_grade="G2", ki67_percent=15, lesions=lesions(28, 12)),
        {"resection": ("eligible", ["RES-01"]), "prrt": ("eligible", ["PRRT-01"])},
        {},
    ),
    "net_diffuse_bilobar_sstr_positive": (
        case(
            **NET,
            net_grade="G2",
            ki67_percent=8,
            lesions=lesions(60, 45, 35, 30, 25, 20, 18, 15, 12, 11, 10, 9),
            resectable=False,
            liver_tumor_burden_percent=60,
        ),
        {
            "resection": ("contraindicated", ["RES-01"]),
            "thermal_ablation": ("relative_contraindication", ["ABL-01"]),
            # COL-03 (> 10 lesions) is a COLLISION (CRC) criterion: not for NET
            "stereotactic_ablation": ("eligible", []),
            "prrt": ("eligible", ["PRRT-01"]),
            "tae": ("relative_contraindication", ["EMB-03"]),
            "tace": ("relative_contraindication", ["EMB-03"]),
            "tare": ("relative_contraindication", ["EMB-03"]),
        },
        {},
    ),
    "crc_three_lesions_up_to_3cm": (
        case(lesions=lesions(30, 22, 15)),
        {
            "resection": ("eligible", ["RES-01"]),
            "thermal_ablation": ("eligible", []),
            "stereotactic_ablation": ("eligible", []),
            "prrt": ("contraindicated", ["PRRT-01"]),
        },
        {"prrt": []},
    ),
    "crc_lesion_over_5cm_near_hepatic_veins": (
        case(lesions=lesions(62, near=True)),
        {
            "resection": ("eligible", ["RES-01"]),
            "thermal_ablation": ("relative_contraindication", ["ABL-01", "VES-01"]),
            "stereotactic_ablation": ("relative_contraindication", ["VES-01"]),
        },
        {},
    ),
    "bilioenteric_anastomosis_and_tace": (
        case(bilioenteric_anastomosis=True),
        {
            "tace": ("relative_contraindication", ["TACE-01"]),
            "tare": ("relative_contraindication", ["TARE-04"]),
            "tae": ("eligible", []),
        },
        {},
    ),
    "lung_shunt_25_percent_and_tare": (
        case(lung_shunt_fraction_percent=25),
        {"tare": ("contraindicated", ["TARE-01"]), "tace": ("eligible", [])},
        {},
    ),
    "lung_shunt_exactly_20_percent": (  # "> 20%" excludes: 20% itself does not
        case(lung_shunt_fraction_percent=20),
        {"tare": ("eligible", [])},
        {},
    ),
    "bilirubin_3_mg_dl": (
        case(bilirubin_mg_dl=3.0),
        {"tare": ("relative_contraindication", ["TARE-02"]), "tace": ("eligible", [])},
        {},
    ),
    "net_missing_ki67": (
        case(**NET, lesions=lesions(20)),
        {"prrt": ("insufficient_data", ["PRRT-02"])},
        {"prrt": ["ki67_percent", "net_grade"]},
    ),
    "net_g2_missing_ki67_grade_known": (  # G2 is not > 20%, but Ki-67 still undecided
        case(**NET, net_grade="G2", lesions=lesions(20)),
        {"prrt": ("insufficient_data", ["PRRT-02"])},
        {"prrt": ["ki67_percent"]},
    ),
    "net_g3_ki67_35": (
        case(**NET, net_grade="G3", ki67_percent=35),
        {"prrt": ("relative_contraindication", ["PRRT-02"])},
        {},
    ),
    "net_sstr_negative": (
        case(primary="net", sstr_positive=False, net_grade="G2", ki67_percent=10),
        {"prrt": ("contraindicated", ["PRRT-01"])},
        {},
    ),
    "no_selective_arterial_access": (
        case(selective_arterial_access=False),
        {t: ("contraindicated", ["EMB-01"]) for t in ("tae", "tace", "tare")},
        {},
    ),
    "severe_cachexia": (
        case(cachexia=True),
        {t: ("contraindicated", ["EMB-02"]) for t in ("tae", "tace", "tare")},
        {},
    ),
    "crc_portal_vein_thrombosis": (
        case(portal_vein_thrombosis=True),
        {
            "tace": ("contraindicated", ["TACE-02"]),
            "tare": ("relative_contraindication", ["TARE-03"]),
            "tae": ("eligible", []),
        },
        {},
    ),
    "hcc_portal_vein_thrombosis": (  # TARE source: "no contraindication in HCC"
        case(primary="hcc", portal_vein_thrombosis=True),
        {"tace": ("contraindicated", ["TACE-02"]), "tare": ("eligible", [])},
        {},
    ),
    "crc_extrahepatic_disease_ecog_3": (
        case(extrahepatic_disease=True, ecog=3),
        {
            "resection": ("relative_contraindication", ["COL-01", "COL-02"]),
            "thermal_ablation": ("relative_contraindication", ["COL-01", "COL-02"]),
            "tare": ("relative_contraindication", ["TARE-05"]),
        },
        {},
    ),
    "crc_twelve_small_lesions": (
        case(lesions=lesions(*[15] * 12)),
        {
            "thermal_ablation": ("relative_contraindication", ["COL-03"]),
            "stereotactic_ablation": ("relative_contraindication", ["COL-03"]),
            "resection": ("eligible", ["RES-01"]),
        },
        {},
    ),
    "crc_unresectable": (
        case(resectable=False),
        {"resection": ("contraindicated", ["RES-01"]), "thermal_ablation": ("eligible", [])},
        {},
    ),
    "contraindication_outranks_relative": (
        case(lung_shunt_fraction_percent=25, bilirubin_mg_dl=3.0),
        {"tare": ("contraindicated", ["TARE-01"])},
        {"tare": []},
    ),
    "unknown_contraindication_blocks_relative": (  # bilirubin 3 but shunt not measured
        case(lung_shunt_fraction_percent=None, bilirubin_mg_dl=3.0),
        {"tare": ("insufficient_data", ["TARE-01"])},
        {"tare": ["lung_shunt_fraction_percent"]},
    ),
    "vessel_relation_unknown": (
        case(lesions=[{"size_mm": 20}]),
        {
            "thermal_ablation": ("insufficient_data", ["VES-01"]),
            "stereotactic_ablation": ("insufficient_data", ["VES-01"]),
        },
        {"thermal_ablation": ["lesions[].near_major_vessel"]},
    ),
    "empty_case_is_never_eligible": (
        {},
        {
            "resection": ("insufficient_data", ["RES-01"]),
            "prrt": ("insufficient_data", ["PRRT-01"]),
            "tae": ("insufficient_data", ["EMB-01", "EMB-02"]),
        },
        {
            "resection": ["ecog", "extrahepatic_disease", "primary", "resectable"],
            "tae": ["cachexia", "liver_tumor_burden_percent", "selective_arterial_access"],
        },
    ),
}


def _evaluate(data):
    return {o.therapy: o for o in evaluate_case(case_from_data(data), RULES).options}


@pytest.mark.parametrize("name", sorted(VIGNETTES))
def test_vignette(name):
    data, expected, missing = VIGNETTES[name]
    options = _evaluate(data)
    got = {t: (options[t].verdict, deciding_rule_ids(options[t])) for t in expected}
    assert got == expected
    for therapy, fields in missing.items():
        assert options[therapy].missing_fields == fields


def test_enough_vignettes():
    assert len(VIGNETTES) >= 15


def test_empty_case_has_no_eligible_option():
    assert all(o.verdict == "insufficient_data" for o in _evaluate({}).values())


def test_every_rule_decides_at_least_one_vignette():
    reached = set()
    for data, expected, _ in VIGNETTES.values():
        options = _evaluate(data)
        for therapy in expected:
            reached.update(deciding_rule_ids(options[therapy]))
    assert reached == {r.id for r in RULES}
