"""Input and result types of ``hepanav.therapy`` (they are also the JSON schemas).

``Case`` is what a user writes (YAML or JSON); every field may be left out, which
means *unknown*. ``TherapyReport`` is ``therapy.json``; ``DoseResult`` is the answer
of the dose check. Units are in the field names (``_mm``, ``_percent``, ``_mg_dl``).
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from hepanav import DISCLAIMER

Primary = Literal["crc", "net", "hcc", "other"]
NetGrade = Literal["G1", "G2", "G3"]
Therapy = Literal[
    "resection",
    "thermal_ablation",
    "stereotactic_ablation",
    "tae",
    "tace",
    "tare",
    "hai",
    "prrt",
    "systemic",
]
Effect = Literal["indication", "relative_contraindication", "contraindication"]
Verdict = Literal["eligible", "relative_contraindication", "contraindicated", "insufficient_data"]
Outcome = Literal["true", "false", "unknown"]

#: Every therapy the tumour board chooses among (issue 6), in report order.
THERAPIES: tuple[str, ...] = get_args(Therapy)

# strict: "yes" is not a boolean and "12" is not a number; a typo must not pass.
# YAML's .inf / .nan are not measurements either (an infinite lesion passes "> 0").
_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Lesion(BaseModel):
    """One liver metastasis."""

    model_config = _STRICT

    size_mm: float = Field(gt=0, description="Largest diameter in mm (> 0).")
    segment: int | None = Field(
        default=None, ge=1, le=8, description="Couinaud segment 1-8, if known."
    )
    near_major_vessel: bool | None = Field(
        default=None,
        description="Abuts a hepatic or portal vein branch > 3 mm in diameter "
        "(heat-sink threshold of Lu 2002); unknown if left out.",
    )


class Case(BaseModel):
    """A patient as the tumour board sees it. A missing field means *unknown*."""

    model_config = _STRICT

    case_id: str | None = Field(default=None, description="Free label (no identifiers).")
    primary: Primary | None = Field(default=None, description="Primary tumour.")
    net_grade: NetGrade | None = Field(default=None, description="WHO grade of a NET.")
    ki67_percent: float | None = Field(default=None, ge=0, le=100, description="Ki-67 index, %.")
    sstr_positive: bool | None = Field(
        default=None,
        description="Somatostatin-receptor imaging uptake >= normal liver in the lesions.",
    )
    # At least one: an empty list would make "largest lesion 0 mm, none near a vessel"
    # and the local therapies eligible for a patient without liver lesions.
    lesions: list[Lesion] | None = Field(
        default=None, min_length=1, description="All liver lesions; unknown if left out."
    )
    extrahepatic_disease: bool | None = None
    ecog: int | None = Field(default=None, ge=0, le=5, description="ECOG performance status.")
    bilirubin_mg_dl: float | None = Field(default=None, ge=0, description="Total bilirubin, mg/dl.")
    albumin_g_dl: float | None = Field(default=None, ge=0, description="Serum albumin, g/dl.")
    future_liver_remnant_percent: float | None = Field(
        default=None, ge=0, le=100, description="Future liver remnant, % of total liver volume."
    )
    liver_tumor_burden_percent: float | None = Field(
        default=None, ge=0, le=100, description="Tumour volume, % of liver volume."
    )
    resectable: bool | None = Field(
        default=None, description="Complete (R0) resection judged feasible by the board."
    )
    bilioenteric_anastomosis: bool | None = None
    portal_vein_thrombosis: bool | None = Field(
        default=None, description="Thrombosis of the main portal vein or a main branch."
    )
    lung_shunt_fraction_percent: float | None = Field(
        default=None, ge=0, le=100, description="Tc-99m MAA lung shunt fraction, %."
    )
    selective_arterial_access: bool | None = Field(
        default=None, description="Selective catheterisation of the feeding arteries possible."
    )
    cachexia: bool | None = Field(default=None, description="Severe cachexia.")
    prior_liver_radiation: bool | None = None


class Source(BaseModel):
    """Where a rule or a dose range comes from: citation and the quoted sentence."""

    model_config = ConfigDict(extra="forbid")

    citation: str = Field(min_length=1)
    quote: str = Field(min_length=1, description="The sentence the number or criterion is from.")
    url: str | None = None
    note: str | None = Field(default=None, description="How the quote was checked or adapted.")


class Reason(BaseModel):
    """One rule as it applied to the case."""

    rule_id: str
    effect: Effect
    outcome: Outcome = Field(
        description="Value of the rule's condition for this case: 'true' (the criterion holds), "
        "'false' or 'unknown' (a field it needs is missing)."
    )
    text: str
    source: Source


class TherapyOption(BaseModel):
    """The verdict for one therapy and every rule behind it."""

    therapy: Therapy
    verdict: Verdict
    reasons: list[Reason]
    missing_fields: list[str] = Field(
        description="Case fields whose values would decide the rules that are still unknown."
    )


class TherapyReport(BaseModel):
    """``therapy.json``: the options for one case."""

    case_id: str | None
    options: list[TherapyOption]
    not_evaluated: list[Therapy] = Field(
        description="Therapies for which no rule with a traceable source is encoded."
    )
    rule_files: list[str]
    disclaimer: str = DISCLAIMER


class DoseResult(BaseModel):
    """Answer of ``hepanav therapy dose``."""

    drug: str
    route: str
    dose: float
    unit: Literal["mg", "mg/m2", "mg/kg"]
    height_cm: float | None
    weight_kg: float | None
    bsa_m2: float | None = Field(description="Body surface area (Mosteller), m^2, if used.")
    total_mg: float = Field(description="The dose converted to mg for this patient.")
    range_mg: tuple[float, float]
    result: Literal["within", "below", "above"]
    source: Source
    disclaimer: str = DISCLAIMER
