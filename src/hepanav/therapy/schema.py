"""Input and result types of ``hepanav.therapy`` (they are also the JSON schemas).

``Case`` is what a user writes (YAML or JSON); every field may be left out, which
means *unknown*. ``TherapyReport`` is ``therapy.json``; ``DoseResult`` is the answer
of the dose check. Units are in the field names (``_mm``, ``_percent``, ``_mg_dl``).
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hepanav import DISCLAIMER
from hepanav.core.validation import canonical_code

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
Effect = Literal["indication", "requirement", "relative_contraindication", "contraindication"]
#: Verdicts from worst to best; the worst that applies wins (docs/therapy.md "Verdicts").
VERDICTS: tuple[str, ...] = (
    "contraindicated",
    "relative_contraindication",
    "insufficient_data",
    "no_contraindication_found",
    "indicated",
)
Verdict = Literal[
    "contraindicated",
    "relative_contraindication",
    "insufficient_data",
    "no_contraindication_found",
    "indicated",
]
Outcome = Literal["true", "false", "unknown"]

#: Every therapy the tumour board chooses among (issue 6), in report order.
THERAPIES: tuple[str, ...] = get_args(Therapy)

# strict: "yes" is not a boolean and "12" is not a number; a typo must not pass.
# YAML's .inf / .nan are not measurements either (an infinite lesion passes "> 0").
_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


#: Plausible largest diameter (mm) of a liver lesion a tumour board decides on. Not a
#: clinical threshold: a HepaNav plausibility bound so that a size typed in centimetres
#: (3.1 for 31 mm, which would read as a sub-centimetre lesion and change the local-therapy
#: rules at 30 mm) or in micrometres is refused instead of used. Below 5 mm a lesion is
#: below what CT characterises (slice thickness 2.5-5 mm); 300 mm exceeds any liver.
LESION_SIZE_MM = (5.0, 300.0)


#: Case fields in percent (0-100); ``"0.25 %"`` (a string with the sign) is accepted in each.
PERCENT_FIELDS = (
    "ki67_percent",
    "future_liver_remnant_percent",
    "liver_tumor_burden_percent",
    "lung_shunt_fraction_percent",
)
#: Percent fields where a bare number between 0 and 1 is refused as ambiguous: it is far
#: likelier a fraction (0.25 for a 25 % lung shunt) than a real sub-1 % value, and read as
#: percent it falls below every threshold of the rules and drops their verdicts. A real
#: value under 1 % is written as a string with the sign, "0.25 %", which is unambiguous.
#: Not Ki-67: a Ki-67 index below 1 % is a common real value (G1 NET), and the registry
#: (``ki67_pct``, :func:`hepanav.registry.schema.fraction_as_percent_problem`) accepts it.
FRACTION_SCREENED_FIELDS = tuple(f for f in PERCENT_FIELDS if f != "ki67_percent")
_PERCENT_TEXT = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*")


_PERCENT_NOTE = (
    " (a number between 0 and 1 is refused as a likely fraction; a value under 1 % is "
    'written "0.25 %").'
)


def percent_value(value: object, screen_fractions: bool = True) -> object:
    """A percent field as given: a number as is, a string ``"0.25 %"`` as its number.

    With ``screen_fractions`` (every percent field but Ki-67, see
    ``FRACTION_SCREENED_FIELDS``) a bare number between 0 and 1 raises ``ValueError``
    (ambiguous, see above)."""
    if isinstance(value, str):
        match = _PERCENT_TEXT.fullmatch(value)
        if match is None:
            raise ValueError(
                "a percent value is a number (25 for 25 %), or a string with the % sign "
                '("0.25 %") for a value under 1 %'
            )
        return float(match.group(1))
    if (
        screen_fractions
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and 0 < value < 1
    ):
        raise ValueError(
            "a number between 0 and 1 is ambiguous in a percent field: give percent (25 for "
            "25 %, not the fraction 0.25); a value truly under 1 % is written with the sign, "
            '"0.25 %"'
        )
    return value


class Lesion(BaseModel):
    """One liver metastasis."""

    model_config = _STRICT

    size_mm: float = Field(
        ge=LESION_SIZE_MM[0],
        le=LESION_SIZE_MM[1],
        description=(
            f"Largest diameter in mm, {LESION_SIZE_MM[0]:g}-{LESION_SIZE_MM[1]:g} (a size "
            "typed in cm, 3.1 for 31 mm, is refused, not read as a 3 mm lesion)."
        ),
    )
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

    case_id: str | None = Field(
        default=None,
        max_length=64,
        description="Free pseudonymous label; names, dates of birth, record numbers, phone "
        "numbers and e-mail addresses are refused.",
    )
    primary: Primary | None = Field(
        default=None, description="Primary tumour (the code in any case: CRC is crc)."
    )
    net_grade: NetGrade | None = Field(
        default=None, description="WHO grade of a NET (the code in any case: g1 is G1)."
    )
    ki67_percent: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Ki-67 index, % (a value under 1 %, common in G1 NETs, is taken as "
        'percent: 0.5 is 0.5 %; "0.5 %" is accepted too).',
    )
    sstr_positive: bool | None = Field(
        default=None,
        description="Somatostatin-receptor imaging uptake >= normal liver in the lesions.",
    )
    # At least one: an empty list would make "largest lesion 0 mm, none near a vessel"
    # and the local therapies indicated for a patient without liver lesions.
    lesions: list[Lesion] | None = Field(
        default=None, min_length=1, description="All liver lesions; unknown if left out."
    )
    extrahepatic_disease: bool | None = None
    ecog: int | None = Field(default=None, ge=0, le=5, description="ECOG performance status.")
    bilirubin_mg_dl: float | None = Field(default=None, ge=0, description="Total bilirubin, mg/dl.")
    albumin_g_dl: float | None = Field(default=None, ge=0, description="Serum albumin, g/dl.")
    future_liver_remnant_percent: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Future liver remnant, % of total liver volume" + _PERCENT_NOTE,
    )
    liver_tumor_burden_percent: float | None = Field(
        default=None, ge=0, le=100, description="Tumour volume, % of liver volume" + _PERCENT_NOTE
    )
    resectable: bool | None = Field(
        default=None, description="Complete (R0) resection judged feasible by the board."
    )
    bilioenteric_anastomosis: bool | None = None
    portal_vein_thrombosis: bool | None = Field(
        default=None, description="Thrombosis of the main portal vein or a main branch."
    )
    lung_shunt_fraction_percent: float | None = Field(
        default=None, ge=0, le=100, description="Tc-99m MAA lung shunt fraction, %" + _PERCENT_NOTE
    )
    lung_dose_gy: float | None = Field(
        default=None,
        ge=0,
        le=1000,
        description=(
            "Estimated lung absorbed dose of the planned radioembolisation session, Gy "
            "(from the MAA lung shunt fraction and the planned activity)."
        ),
    )
    selective_arterial_access: bool | None = Field(
        default=None, description="Selective catheterisation of the feeding arteries possible."
    )
    cachexia: bool | None = Field(
        default=None, description="Severe cachexia or comorbidity compromising organ function."
    )
    refractory_ascites: bool | None = Field(
        default=None, description="Ascites refractory to treatment (hepatic decompensation)."
    )
    creatinine_mg_dl: float | None = Field(
        default=None, ge=0, le=30, description="Serum creatinine, mg/dl."
    )
    prior_liver_radiation: bool | None = None

    @field_validator(*PERCENT_FIELDS, mode="before")
    @classmethod
    def _percent(cls, value: object, info: ValidationInfo) -> object:
        return percent_value(value, info.field_name in FRACTION_SCREENED_FIELDS)

    @field_validator("primary", "net_grade", mode="before")
    @classmethod
    def _code(cls, value: object, info: ValidationInfo) -> object:
        # Codes in any case, as the registry's templates take them (``CRC`` is ``crc``,
        # ``g1`` is ``G1``); both code lists differ in more than case.
        allowed = get_args(Primary if info.field_name == "primary" else NetGrade)
        return canonical_code(value, allowed) if isinstance(value, str) else value


# Words that mark a citation of this project's own documents (never a source).
_OWN_DOCUMENTS = ("hepanav", "domain brief", "domain.md", "seed document")


class Source(BaseModel):
    """A primary source a user can look up: title, year, DOI or PMID, and the sentence.

    ``quote_status`` says whether the sentence was found: ``verbatim`` (the quote is a
    short exact excerpt of the source's text, found with the search tool; ``note`` says
    where) or ``unverified`` (no text of the source could be found: then ``quote`` holds
    no sentence but starts with ``"unverified:"`` and says what was searched). A verbatim
    quote that does not show every part of the rule names the rest in
    ``unverified_part`` (e.g. a numeric cut-off).
    """

    model_config = ConfigDict(extra="forbid")

    citation: str = Field(min_length=1, description="Authors, journal, volume, pages.")
    title: str = Field(min_length=1)
    year: int = Field(ge=1950, le=2100)
    doi: str | None = Field(default=None, pattern=r"^10\.\d{4,9}/\S+$")
    pmid: int | None = Field(default=None, ge=1)
    quote: str = Field(
        min_length=1,
        description="The sentence the rule or number rests on, or, for an unverified "
        "source, 'unverified: <what was searched>'.",
    )
    quote_status: Literal["verbatim", "unverified"] = "verbatim"
    unverified_part: str | None = Field(
        default=None,
        description="What of the rule a verbatim quote does not show (e.g. a threshold).",
    )
    url: str | None = None
    note: str | None = Field(default=None, description="How and where the quote was found.")

    @model_validator(mode="after")
    def _traceable(self) -> Source:
        if self.doi is None and self.pmid is None:
            raise ValueError("a source needs a DOI or a PMID")
        text = " ".join(
            str(v).lower() for v in (self.citation, self.title, self.quote, self.note) if v
        )
        for word in _OWN_DOCUMENTS:
            if word in text:
                raise ValueError(
                    f"a source may not be this project's own documents (found {word!r})"
                )
        if self.url is not None and not re.match(r"https?://", self.url, re.IGNORECASE):
            raise ValueError("url must start with http:// or https://")
        labelled = self.quote.strip().lower().startswith("unverified:")
        if self.quote_status == "unverified" and not labelled:
            raise ValueError(
                "an unverified source keeps no quote: write quote: 'unverified: <what was "
                "searched>'"
            )
        if self.quote_status == "verbatim" and labelled:
            raise ValueError("a quote labelled 'unverified:' needs quote_status: unverified")
        if self.quote_status == "unverified" and self.unverified_part:
            raise ValueError("unverified_part is for verbatim quotes that show part of a rule")
        return self

    @property
    def verified(self) -> bool:
        """True when the quote is the source's own sentence (it may still show only part)."""
        return self.quote_status == "verbatim"

    @property
    def link(self) -> str | None:
        """An http(s) address for the source (DOI resolver first), or None."""
        if self.doi:
            return f"https://doi.org/{self.doi}"
        if self.pmid:
            return f"https://pubmed.ncbi.nlm.nih.gov/{self.pmid}/"
        if self.url and re.match(r"https?://", self.url, re.IGNORECASE):
            return self.url
        return None


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
        description="Case fields whose values would decide the contraindications and "
        "requirements that are still unknown (they make the verdict insufficient_data)."
    )
    pending_fields: list[str] = Field(
        default_factory=list,
        description="Case fields of rules that can only give a relative contraindication or "
        "an indication and are still unknown: 'no contraindication found, pending: FIELD'.",
    )
    unverified_rules: list[str] = Field(
        default_factory=list,
        description="Rules that produced the verdict and whose source sentence could not be "
        "found (quote_status 'unverified'): check them before relying on the verdict.",
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


class RegimenDoseResult(BaseModel):
    """Answer of ``hepanav therapy dose --regimen``: a dose against a sourced protocol.

    Numbers are rounded to what the protocol states (no spurious precision).
    """

    regimen: str
    description: str
    drug: str
    route: str
    schedule: str
    dose: float
    unit: str
    per: Literal["session", "day", "cycle"]
    patient_mg: float | None = Field(
        description="The dose in mg for this patient: as given when given in mg, else "
        "converted (2 significant digits: an estimate from height and weight; more, as "
        "many as protocol_mg, when 2 would read otherwise than result)."
    )
    protocol_mg: tuple[float | None, float] | None = Field(
        None,
        description="The protocol's range converted to mg for this patient (lower limit "
        "or null, upper limit; 4 significant digits, more when 4 would read otherwise "
        "than result), when height/weight allow it.",
    )
    bsa_m2: float | None = None
    protocol_dose: str = Field(description="The protocol's dose, in its own words and units.")
    result: Literal["within", "below", "above"]
    source: Source
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
    total_mg: float = Field(
        description="The dose converted to mg for this patient (3 significant digits, more "
        "when 3 would read otherwise than result)."
    )
    range_mg: tuple[float, float]
    result: Literal["within", "below", "above"]
    source: HistoricalSource
    table: str = Field(
        "historical intra-arterial ranges",
        description="These ranges come from a historical table, not a dosing protocol.",
    )
    disclaimer: str = DISCLAIMER


class HistoricalSource(BaseModel):
    """Source of the historical intra-arterial range table (no DOI: an unpublished text)."""

    model_config = ConfigDict(extra="forbid")

    citation: str
    quote: str
    url: str | None = None
    note: str | None = None


DoseResult.model_rebuild()
