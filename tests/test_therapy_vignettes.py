"""Clinical vignettes: each asserts verdicts AND the rule ids that produced them.

The expected verdicts follow from the rules' sources by hand (e.g. COLLISION: each
CRLM <= 3 cm; TARE: an estimated lung dose > 30 Gy excludes, a lung shunt fraction > 20%
is a relative contraindication). A final test checks that
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
    "creatinine_mg_dl": 0.9,
    "future_liver_remnant_percent": 60,
    "liver_tumor_burden_percent": 10,
    "resectable": True,
    "bilioenteric_anastomosis": False,
    "portal_vein_thrombosis": False,
    "lung_shunt_fraction_percent": 5,
    "lung_dose_gy": 2.5,  # 1 GBq with a 5 % shunt: 49.67 Gy kg/GBq x 0.05 GBq / 1 kg
    "selective_arterial_access": True,
    "cachexia": False,
    "refractory_ascites": False,
    "prior_liver_radiation": False,
}
DROP = object()  # marks a field to leave out (unknown)


def case(**changes):
    data = copy.deepcopy(BASE)
    data.update(changes)
    return {k: v for k, v in data.items() if v is not DROP}


def lesions(*sizes, near=False):
    return [
        {"size_mm": s} if near is None else {"size_mm": s, "near_major_vessel": near} for s in sizes
    ]


NET = {"primary": "net", "sstr_positive": True}
IND, NOC, REL, INS, CON = (
    "indicated",
    "no_contraindication_found",
    "relative_contraindication",
    "insufficient_data",
    "contraindicated",
)
CRC_BASE_VERDICTS = {
    "resection": (IND, ["CRC-01"]),
    "thermal_ablation": (IND, ["ABL-02"]),
    "stereotactic_ablation": (NOC, []),
    "tae": (NOC, []),
    "tace": (NOC, []),
    "tare": (NOC, []),
    "hai": (IND, ["HAI-01"]),
    "prrt": (CON, ["PRRT-01"]),
}

# name -> (case data, {therapy: (verdict, [deciding rule ids])},
#          {therapy: (missing fields, pending fields)})
# Expected values are worked out by hand from the rules' sources (docs/therapy.md).
VIGNETTES = {
    "crc_single_resectable_complete": (case(), CRC_BASE_VERDICTS, {}),
    # issue 15: three small CRC lesions, vessel relation unknown -> pending, not insufficient
    "crc_three_small_vessel_unknown": (
        case(lesions=lesions(15, 20, 25, near=None)),
        {
            "thermal_ablation": (NOC, ["VES-01"]),
            "stereotactic_ablation": (NOC, ["VES-01"]),
            "resection": (IND, ["CRC-01"]),
        },
        {"thermal_ablation": ([], ["lesions[].near_major_vessel"])},
    ),
    # issue 15: TAE after a Whipple procedure: every embolisation, not only TACE/TARE
    "crc_whipple_unresectable": (
        case(bilioenteric_anastomosis=True, resectable=False),
        {"tae": (REL, ["EMB-04"]), "tace": (REL, ["EMB-04"]), "tare": (REL, ["EMB-04"])},
        {},
    ),
    # issue 15: a known contraindication shows although another field is missing
    "crc_whipple_creatinine_unknown": (
        case(bilioenteric_anastomosis=True, creatinine_mg_dl=DROP),
        {"tace": (REL, ["EMB-04"]), "tae": (REL, ["EMB-04"])},
        {},
    ),
    "known_contraindication_with_little_data": (
        {"primary": "crc", "selective_arterial_access": False},
        {
            "tae": (CON, ["EMB-01"]),
            "tace": (CON, ["EMB-01"]),
            "tare": (CON, ["EMB-01"]),
            "hai": (CON, ["HAI-03"]),
        },
        {"tae": ([], [])},
    ),
    # issue 15: a resectable two-lesion NET: only resection is indicated
    "net_g1_two_lesions_resectable": (
        case(**NET, net_grade="G1", ki67_percent=2, lesions=lesions(25, 18)),
        {
            "resection": (IND, ["NET-01"]),
            "thermal_ablation": (NOC, []),
            "stereotactic_ablation": (NOC, []),
            "tae": (NOC, []),
            "tace": (NOC, []),
            "tare": (NOC, []),
            "hai": (NOC, []),
            "prrt": (NOC, []),
        },
        {},
    ),
    "net_g2_diffuse_unresectable_sstr": (
        case(
            **NET, net_grade="G2", ki67_percent=8, resectable=False, liver_tumor_burden_percent=40
        ),
        {
            "prrt": (IND, ["NET-03"]),
            "tae": (IND, ["NET-02"]),
            "tace": (IND, ["NET-02"]),
            "tare": (IND, ["NET-02"]),
            "resection": (CON, ["RES-01"]),
        },
        {},
    ),
    "net_g3_ki67_30": (
        case(**NET, net_grade="G3", ki67_percent=30, resectable=False),
        {"prrt": (REL, ["PRRT-02"]), "tae": (NOC, [])},
        {},
    ),
    "net_ki67_25_grade_unknown": (
        case(**NET, ki67_percent=25, resectable=False),
        {"prrt": (REL, ["PRRT-02"])},
        {},
    ),
    "net_sstr_negative": (
        case(primary="net", sstr_positive=False, net_grade="G2", resectable=False),
        {"prrt": (CON, ["PRRT-01"])},
        {},
    ),
    "net_sstr_unknown": (
        case(primary="net", net_grade="G2", ki67_percent=5, resectable=False),
        {"prrt": (INS, ["PRRT-01"])},
        {"prrt": (["sstr_positive"], [])},
    ),
    "net_whipple_unresectable": (
        case(
            **NET, net_grade="G2", ki67_percent=5, resectable=False, bilioenteric_anastomosis=True
        ),
        {
            "tae": (REL, ["EMB-04"]),
            "tace": (REL, ["EMB-04"]),
            "tare": (REL, ["EMB-04"]),
            "prrt": (IND, ["NET-03"]),
        },
        {},
    ),
    "net_extrahepatic_resectable": (
        case(**NET, net_grade="G1", ki67_percent=1, extrahepatic_disease=True),
        {"resection": (NOC, []), "hai": (REL, ["HAI-02"])},
        {},
    ),
    # DEBIRI / radioembolisation indication (Lencioni 2014)
    "crc_unresectable_liver_only": (
        case(resectable=False, liver_tumor_burden_percent=30),
        {
            "tace": (IND, ["DEB-01"]),
            "tare": (IND, ["DEB-01"]),
            "tae": (NOC, []),
            "resection": (CON, ["RES-01"]),
            "hai": (IND, ["HAI-01"]),
        },
        {},
    ),
    "crc_unresectable_burden_70": (
        case(resectable=False, liver_tumor_burden_percent=70),
        {"tace": (REL, ["EMB-03"]), "tare": (REL, ["EMB-03"]), "tae": (NOC, [])},
        {},
    ),
    "crc_unresectable_burden_unknown": (
        case(resectable=False, liver_tumor_burden_percent=DROP),
        {"tace": (NOC, ["DEB-01", "EMB-03"]), "tae": (NOC, [])},
        {"tace": ([], ["liver_tumor_burden_percent"])},
    ),
    # a shunt above 20 % is a risk marker (relative); the lung dose decides (TARE-04)
    "lung_shunt_25_percent": (
        case(lung_shunt_fraction_percent=25, lung_dose_gy=12.4),
        {"tare": (REL, ["TARE-01"]), "tace": (NOC, [])},
        {},
    ),
    "lung_dose_35_gy_with_shunt_18_percent": (
        case(lung_shunt_fraction_percent=18, lung_dose_gy=35),
        {"tare": (CON, ["TARE-04"]), "tace": (NOC, [])},
        {},
    ),
    "lung_dose_exactly_30_gy": (case(lung_dose_gy=30), {"tare": (NOC, [])}, {}),
    # the lung dose is a contraindication rule: unknown -> insufficient data, named
    "lung_dose_unknown_shunt_25_percent": (
        case(lung_shunt_fraction_percent=25, lung_dose_gy=DROP),
        {"tare": (REL, ["TARE-01"])},
        {"tare": (["lung_dose_gy"], [])},
    ),
    "lung_dose_unknown_shunt_5_percent": (
        case(lung_dose_gy=DROP),
        {"tare": (INS, ["TARE-04"])},
        {"tare": (["lung_dose_gy"], [])},
    ),
    "lung_shunt_exactly_20_percent": (
        case(lung_shunt_fraction_percent=20),
        {"tare": (NOC, [])},
        {},
    ),
    "bilirubin_3_mg_dl": (case(bilirubin_mg_dl=3.0), {"tare": (REL, ["TARE-02"])}, {}),
    "crc_ecog_3": (
        case(ecog=3),
        {
            "resection": (REL, ["COL-02"]),
            "thermal_ablation": (REL, ["COL-02"]),
            "stereotactic_ablation": (REL, ["COL-02"]),
            "tare": (REL, ["TARE-03"]),
        },
        {},
    ),
    "crc_ecog_unknown": (
        case(ecog=DROP),
        {"resection": (NOC, ["COL-02"]), "tare": (NOC, ["TARE-03"])},
        {"resection": ([], ["ecog"]), "tare": ([], ["ecog"])},
    ),
    "crc_extrahepatic_disease": (
        case(extrahepatic_disease=True),
        {
            "resection": (REL, ["COL-01"]),
            "thermal_ablation": (REL, ["COL-01"]),
            "hai": (REL, ["HAI-02"]),
            "tace": (NOC, []),
        },
        {},
    ),
    "crc_twelve_small_lesions": (
        case(lesions=lesions(*[10] * 12), resectable=False),
        {"thermal_ablation": (REL, ["COL-03"]), "stereotactic_ablation": (REL, ["COL-03"])},
        {},
    ),
    "crc_lesion_45_mm": (
        case(lesions=lesions(45)),
        {"thermal_ablation": (REL, ["ABL-01"]), "stereotactic_ablation": (NOC, [])},
        {},
    ),
    "crc_lesion_near_vessel": (
        case(lesions=lesions(25, near=True)),
        {"thermal_ablation": (REL, ["VES-01"]), "stereotactic_ablation": (REL, ["VES-01"])},
        {},
    ),
    "crc_portal_vein_thrombosis": (
        case(portal_vein_thrombosis=True),
        {"tae": (CON, ["EMB-05"]), "tace": (CON, ["EMB-05"]), "tare": (NOC, [])},
        {},
    ),
    "creatinine_2_5_mg_dl": (
        case(creatinine_mg_dl=2.5),
        {"tae": (CON, ["EMB-06"]), "tace": (CON, ["EMB-06"]), "tare": (NOC, [])},
        {},
    ),
    "creatinine_unknown": (
        case(creatinine_mg_dl=DROP),
        {"tae": (INS, ["EMB-06"]), "tare": (NOC, [])},
        {"tae": (["creatinine_mg_dl"], [])},
    ),
    "severe_cachexia": (
        case(cachexia=True),
        {"tae": (REL, ["EMB-02"]), "tace": (REL, ["EMB-02"]), "tare": (REL, ["EMB-02"])},
        {},
    ),
    "hcc_portal_vein_thrombosis": (
        case(primary="hcc", portal_vein_thrombosis=True),
        {"tae": (CON, ["EMB-05"]), "prrt": (CON, ["PRRT-01"]), "hai": (NOC, [])},
        {},
    ),
    "crc_no_arterial_access": (
        case(selective_arterial_access=False),
        {"hai": (CON, ["HAI-03"]), "tae": (CON, ["EMB-01"]), "tare": (CON, ["EMB-01"])},
        {},
    ),
    "other_primary_resectable": (
        case(primary="other"),
        {
            "resection": (NOC, []),
            "thermal_ablation": (NOC, []),
            "prrt": (CON, ["PRRT-01"]),
            "hai": (NOC, []),
        },
        {},
    ),
    # issue 15 (new user): "hai: indicated" at bilirubin 3.0 mg/dl. HAI-04 (> 1.5 mg/dl) is a
    # relative contraindication; TARE-02 (> 2 mg/dl) too; resection and ablation have no
    # bilirubin rule (their verdicts stay as in the complete CRC case).
    "crc_bilirubin_3_0": (
        case(bilirubin_mg_dl=3.0),
        {**CRC_BASE_VERDICTS, "hai": (REL, ["HAI-04"]), "tare": (REL, ["TARE-02"])},
        {"hai": ([], [])},
    ),
    # normal bilirubin: HAI stays indicated by HAI-01 (HAI-04 decided and clear)
    "crc_bilirubin_1_0_normal": (
        case(bilirubin_mg_dl=1.0),
        {**CRC_BASE_VERDICTS, "hai": (IND, ["HAI-01"])},
        {"hai": ([], [])},
    ),
    # 1.5 mg/dl is not above the HAI-04 limit (gt): still indicated
    "crc_bilirubin_1_5_at_limit": (
        case(bilirubin_mg_dl=1.5),
        {"hai": (IND, ["HAI-01"]), "tare": (NOC, [])},
        {},
    ),
    # bilirubin unknown: HAI is "no contraindication found, pending: bilirubin_mg_dl",
    # never indicated and never "insufficient data" (HAI-04 can only be relative)
    "crc_bilirubin_unknown": (
        case(bilirubin_mg_dl=DROP),
        {"hai": (NOC, ["HAI-04"]), "tare": (NOC, ["TARE-02"])},
        {"hai": ([], ["bilirubin_mg_dl"])},
    ),
    # refractory ascites (hepatic decompensation): TAE and TACE contraindicated (EMB-07)
    "crc_refractory_ascites": (
        case(refractory_ascites=True, resectable=False),
        {"tae": (CON, ["EMB-07"]), "tace": (CON, ["EMB-07"]), "tare": (IND, ["DEB-01"])},
        {},
    ),
    "empty_case": (
        {},
        {
            "resection": (INS, ["RES-01"]),
            "thermal_ablation": (NOC, ["ABL-01", "ABL-02", "COL-01", "COL-02", "COL-03", "VES-01"]),
            "stereotactic_ablation": (NOC, ["COL-01", "COL-02", "COL-03", "VES-01"]),
            "tae": (INS, ["EMB-01", "EMB-05", "EMB-06", "EMB-07"]),
            "tare": (INS, ["EMB-01", "TARE-04"]),
            "hai": (INS, ["HAI-03"]),
            "prrt": (INS, ["PRRT-01"]),
        },
        {"resection": (["resectable"], ["ecog", "extrahepatic_disease", "net_grade", "primary"])},
    ),
}


def _evaluate(data):
    return {o.therapy: o for o in evaluate_case(case_from_data(data), RULES).options}


@pytest.mark.parametrize("name", sorted(VIGNETTES))
def test_vignette(name):
    data, expected, fields = VIGNETTES[name]
    options = _evaluate(data)
    got = {t: (options[t].verdict, deciding_rule_ids(options[t])) for t in expected}
    assert got == expected
    for therapy, (missing, pending) in fields.items():
        assert options[therapy].missing_fields == missing
        assert options[therapy].pending_fields == pending


def test_enough_vignettes():
    assert len(VIGNETTES) >= 30


def test_missing_data_never_makes_a_therapy_indicated():
    assert all(o.verdict != "indicated" for o in _evaluate({}).values())


def test_every_rule_decides_at_least_one_vignette():
    reached = set()
    for data, expected, _ in VIGNETTES.values():
        options = _evaluate(data)
        for therapy in expected:
            reached.update(deciding_rule_ids(options[therapy]))
    assert reached == {r.id for r in RULES}


def test_bilioenteric_rule_covers_every_embolisation():
    rule = next(r for r in RULES if r.id == "EMB-04")
    assert set(rule.therapies) == {"tae", "tace", "tare"}


def test_verdicts_resting_on_an_unverified_source_say_so():
    # TARE-04 (lung dose > 30 Gy) rests on a verbatim quote: its contraindication names
    # no unverified rule; the CRC resection indication (CRC-01, verified) names nothing.
    dose = _evaluate(case(lung_dose_gy=35))["tare"]
    assert dose.verdict == "contraindicated" and dose.unverified_rules == []
    crc = _evaluate(case())
    assert crc["resection"].unverified_rules == []
    assert crc["hai"].unverified_rules == []
    # a relative contraindication from a verified quote with an unverified threshold is
    # not listed (its quote is the source's sentence); an unverified one is
    tare = _evaluate(case(bilirubin_mg_dl=3.0))["tare"]
    assert tare.unverified_rules == ["TARE-02"]
