"""Dose check: Mosteller BSA, unit conversion, the historical table and sourced regimens."""

from __future__ import annotations

import math

import pytest

from hepanav.core import InputError
from hepanav.therapy.dose import check_dose, load_dose_table, mosteller_bsa, total_dose_mg

# The 14 ranges of the historical teaching text (mg, intra-arterial), by hand.
SEED_RANGES = {
    "fluorouracil": (1000, 1500),
    "cisplatin": (60, 100),
    "mitomycin": (10, 20),
    "doxorubicin": (40, 60),
    "epirubicin": (40, 80),
    "etoposide": (200, 500),
    "vincristine": (1, 2),
    "carboplatin": (300, 500),
    "bleomycin": (10, 40),
    "carmustine": (100, 300),
    "dacarbazine": (200, 800),
    "cyclophosphamide": (500, 800),
    "hydroxycamptothecin": (20, 40),
    "oxaliplatin": (150, 200),
}


def test_table_matches_the_seed_ranges():
    table = load_dose_table()
    assert {name: d.ranges_mg["intra-arterial"] for name, d in table.drugs.items()} == SEED_RANGES


def test_each_drug_quote_is_a_fragment_of_the_seed_quote():
    table = load_dose_table()
    for drug in table.drugs.values():
        assert drug.quote in table.source.quote


def test_mosteller_known_values():
    # 180 cm x 80 kg = 14400 = 4 x 3600 -> exactly 2 m^2
    assert mosteller_bsa(180, 80) == 2.0
    assert mosteller_bsa(175, 70) == pytest.approx(math.sqrt(12250 / 3600))
    assert mosteller_bsa(160, 90) == pytest.approx(2.0)  # 14400 again


@pytest.mark.parametrize(
    "dose,unit,height,weight,mg",
    [
        (80, "mg", None, None, 80),
        (50, "mg/m2", 180, 80, 100),
        (50, "mg/m²", 180, 80, 100),
        (1.5, "mg/kg", None, 60, 90),
    ],
)
def test_conversion_to_mg(dose, unit, height, weight, mg):
    assert total_dose_mg(dose, unit, height, weight)[0] == pytest.approx(mg)


@pytest.mark.parametrize(
    "drug,dose,unit,result",
    [
        ("cisplatin", 50, "mg/m2", "within"),  # 100 mg: upper bound is inclusive
        ("DDP", 30, "mg/m2", "within"),  # 60 mg: lower bound, alias
        ("cisplatin", 60, "mg/m2", "above"),  # 120 mg
        ("5-FU", 1200, "mg", "within"),
        ("mitomycin C", 0.1, "mg/kg", "below"),  # 8 mg with 80 kg
        ("oxaliplatin", 2.6, "mg/kg", "above"),  # 208 mg
        ("Vincristine", 1, "mg", "within"),
    ],
)
def test_classification(drug, dose, unit, result):
    out = check_dose(drug, dose, unit, "intra-arterial", height_cm=180, weight_kg=80)
    assert out.result == result
    assert out.source.quote in load_dose_table().source.quote


def test_bsa_reported_only_for_mg_per_m2():
    assert check_dose("cisplatin", 50, "mg/m2", "IA", 180, 80).bsa_m2 == 2.0
    assert check_dose("cisplatin", 80, "mg", "IA").bsa_m2 is None


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"drug": "aspirin"}, "--drug"),
        ({"unit": "mg/l"}, "--unit"),
        ({"route": "oral"}, "--route"),
        ({"dose": -5}, "--dose"),
        ({"dose": 0}, "--dose"),
        ({"unit": "mg/m2", "height_cm": None}, "--height-cm"),
        ({"unit": "mg/kg", "weight_kg": None}, "--weight-kg"),
        # metres for cm would give a tiny BSA and a silent "below": rejected as a slip
        ({"unit": "mg/m2", "height_cm": 1.8}, "--height-cm"),
        ({"unit": "mg/m2", "height_cm": 29.9}, "--height-cm"),
        ({"unit": "mg/m2", "height_cm": 30}, None),  # lowest plausible: 5 mg -> below
        ({"unit": "mg/m2", "height_cm": 1800}, "--height-cm"),
    ],
)
def test_bad_dose_input_names_the_option(kwargs, field):
    args = {
        "drug": "cisplatin",
        "dose": 50,
        "unit": "mg",
        "route": "intra-arterial",
        "height_cm": 180,
        "weight_kg": 80,
        **kwargs,
    }
    if field is None:
        assert check_dose(**args).result == "below"
        return
    with pytest.raises(InputError) as exc:
        check_dose(**args)
    assert str(exc.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("regimen", "dose", "unit", "per", "height", "weight", "result"),
    [
        ("deb-tace-doxorubicin", 150, "mg", "session", None, None, "within"),
        ("deb-tace-doxorubicin", 151, "mg", "session", None, None, "above"),
        ("debiri-irinotecan", 100, "mg", "session", None, None, "within"),
        ("debiri-irinotecan", 200, "mg", "session", None, None, "above"),
        ("ctace-doxorubicin", 50, "mg/m2", "session", None, None, "within"),
        ("ctace-doxorubicin", 80, "mg/m2", "session", None, None, "above"),
        ("ctace-doxorubicin", 20, "mg/m2", "session", None, None, "below"),
        # 180 cm, 80 kg: BSA 2.0 m2 -> 50-150 mg
        ("ctace-doxorubicin", 40, "mg", "session", 180, 80, "below"),
        ("ctace-doxorubicin", 150, "mg", "session", 180, 80, "within"),
        ("hai-floxuridine", 0.3, "mg/kg", "day", None, None, "within"),
        ("hai-floxuridine", 0.31, "mg/kg", "day", None, None, "above"),
        ("hai-floxuridine", 4.2, "mg/kg", "cycle", None, None, "within"),  # 14 x 0.3
        ("hai-floxuridine", 4.3, "mg/kg", "cycle", None, None, "above"),
        ("hai-floxuridine", 24, "mg", "day", None, 80, "within"),  # 0.3 x 80 = 24 mg
        ("hai-floxuridine", 25, "mg", "day", None, 80, "above"),
        ("hai-oxaliplatin", 100, "mg/m2", "session", None, None, "within"),
        ("hai-oxaliplatin", 130, "mg/m2", "session", None, None, "above"),
    ],
)
def test_regimen_doses_against_hand_computed_limits(
    regimen, dose, unit, per, height, weight, result
):
    from hepanav.therapy.regimens import check_regimen_dose

    assert check_regimen_dose(regimen, dose, unit, per, height, weight).result == result


def test_regimen_output_has_no_spurious_precision():
    from hepanav.therapy.regimens import check_regimen_dose, significant

    res = check_regimen_dose("hai-oxaliplatin", 100, "mg/m2", "session", 173, 71)
    assert res.bsa_m2 == 1.85 and res.patient_mg == 180  # 184.7 mg -> 2 significant digits
    assert significant(0.012345) == 0.012 and significant(187.35) == 190


def test_regimen_unit_mismatch_and_unknown_regimen():
    from hepanav.therapy.regimens import check_regimen_dose

    with pytest.raises(InputError, match="--unit"):
        check_regimen_dose("hai-oxaliplatin", 2, "mg/kg")
    with pytest.raises(InputError, match="--regimen"):
        check_regimen_dose("tace-magic", 2, "mg")


def test_a_dose_given_in_mg_is_kept_as_given_beside_the_limit_in_mg():
    """Tester's case: 182 mg for 100 mg/m2 at 170 cm / 70 kg. BSA (Mosteller) =
    sqrt(170 * 70 / 3600) = 1.8181 m2, so the limit is 181.8 mg and 182 mg is ABOVE it;
    the answer must not show the given dose rounded to 180 mg (which reads as within)."""
    from hepanav.therapy.regimens import check_regimen_dose

    res = check_regimen_dose("hai-oxaliplatin", 182, "mg", "session", 170, 70)
    assert res.result == "above"
    assert res.dose == 182 and res.patient_mg == 182
    assert res.protocol_mg == (None, 181.8)
    res = check_regimen_dose("hai-oxaliplatin", 181.7, "mg", "session", 170, 70)
    assert res.result == "within" and res.dose == 181.7


def test_converted_dose_is_shown_with_the_digits_the_verdict_needs(cli):
    """Tester's case: 100.04 mg/m2 at 170 cm / 70 kg. BSA = sqrt(170 * 70 / 3600) =
    1.81812 m2: 181.89 mg against a limit of 181.81 mg, ABOVE. Shown at 2 significant
    digits (180 mg) beside the 4-digit limit (181.8 mg) it read as within."""
    from hepanav.therapy.regimens import check_regimen_dose

    res = check_regimen_dose("hai-oxaliplatin", 100.04, "mg/m2", "session", 170, 70)
    assert res.result == "above"
    assert res.patient_mg == 181.9 and res.protocol_mg == (None, 181.8)
    code, out, _ = cli(
        "therapy",
        "dose",
        "--regimen",
        "hai-oxaliplatin",
        "--dose",
        "100.04",
        "--unit",
        "mg/m2",
        "--height-cm",
        "170",
        "--weight-kg",
        "70",
    )
    assert code == 1
    assert "100.04 mg/m2 per session (= 181.9 mg" in out and "up to 181.8 mg" in out
    # A dose given in mg is kept; the limit gets the digits: 181.81 mg is within 181.818.
    res = check_regimen_dose("hai-oxaliplatin", 181.81, "mg", "session", 170, 70)
    assert res.result == "within" and res.patient_mg == 181.81
    assert res.protocol_mg[1] >= 181.81
    # Where 2 digits agree with the verdict they stay (184.7 mg within a 184.7 mg limit).
    res = check_regimen_dose("hai-oxaliplatin", 100, "mg/m2", "session", 173, 71)
    assert res.patient_mg == 180 and res.protocol_mg == (None, 184.7)


def test_historical_total_is_not_rounded_onto_the_range_edge():
    from hepanav.therapy.dose import check_dose

    res = check_dose("cisplatin", 100.4, "mg", "intra-arterial")  # range 60-100 mg
    assert res.result == "above" and res.total_mg == 100.4  # was shown as 100 mg
    res = check_dose("cisplatin", 59.96, "mg", "intra-arterial")
    assert res.result == "below" and res.total_mg == 59.96
