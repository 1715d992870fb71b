"""Pydantic types: the import templates' rows and the JSON results (margins, audit).

The row models *are* the documented CSV/XLSX templates (docs/registry.md lists
their columns); the result models are the JSON schemas of ``margins.json`` and
``audit.json``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from hepanav import DISCLAIMER
from hepanav.core.validation import canonical_code, code_lookup
from hepanav.registry.vocabulary import (
    ABLATION_ENERGIES,
    APPROACHES,
    BRAF_STATUSES,
    COMPLICATION_SYSTEMS,
    EVENT_TYPES,
    GRADES,
    MAM_BOUNDS,
    MARGIN_CATEGORIES,
    MARGIN_CONFIRMATIONS,
    MARGIN_STATUSES,
    NET_GRADES,
    PRIMARY_TYPES,
    PROCEDURE_TYPES,
    R0_MIN_MARGIN_MM,
    RAS_STATUSES,
    SEGMENTS,
    SEXES,
)

Id = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")

_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T]00:00(?::00(?:\.0+)?)?)?$")
_SERIAL = re.compile(r"^\d+(?:\.\d+)?$")
_DAY_FIRST = re.compile(r"^\d{1,2}[./\-]\d{1,2}[./\-]\d{2,4}$")


def parse_iso_date(value):
    """A date only as ISO 8601 ``YYYY-MM-DD``; never guess what a spreadsheet meant.

    Numbers are refused (an Excel serial day number in a CSV, whose 1900/1904
    date system is unknown; pydantic would read them as Unix seconds), as are
    day-first or month-first dates (``04.05.2021``: 4 May or April 5?). Dates
    are not echoed (one may be a date of birth).
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = repr(value)
    if not isinstance(value, str):
        raise ValueError("expected a date as YYYY-MM-DD")
    text = value.strip()
    match = _ISO_DATE.match(text)
    if match:
        try:
            return dt.date(*(int(g) for g in match.groups()))
        except ValueError:
            raise ValueError("is not a valid calendar date (use YYYY-MM-DD)") from None
    if _SERIAL.match(text):
        raise ValueError(
            "is a number (an Excel serial date?); use YYYY-MM-DD, e.g. 2021-05-04 "
            "(format the column as text or as an ISO date before saving)"
        )
    if _DAY_FIRST.match(text):
        raise ValueError(
            "is a day-first or month-first date, which is ambiguous; use YYYY-MM-DD "
            "(ISO 8601), e.g. 2021-05-04"
        )
    raise ValueError("is not a date; use YYYY-MM-DD (ISO 8601), e.g. 2021-05-04")


IsoDate = Annotated[dt.date, BeforeValidator(parse_iso_date)]


def _choice(value: str | None, allowed: tuple[str, ...], field: str) -> str | None:
    """Match a code case-insensitively (``r0`` -> ``R0``); refuse anything else."""
    if value is None:
        return None
    lookup = code_lookup(allowed)
    if value in lookup.values():  # the common case: already the code
        return value
    key = str(value).strip().lower().replace(" ", "_")
    if key not in lookup:
        raise ValueError(f"{field} must be one of {', '.join(allowed)} (got {value!r})")
    return lookup[key]


_OUTCOME_CODES = {
    "procedure_type": PROCEDURE_TYPES,
    "margin_status": MARGIN_STATUSES,
    "mam_bound": MAM_BOUNDS,
    "sex": SEXES,
    "primary_type": PRIMARY_TYPES,
    "net_grade": NET_GRADES,
    "segment": SEGMENTS,
    "approach": APPROACHES,
    "ablation_energy": ABLATION_ENERGIES,
    "margin_category": MARGIN_CATEGORIES,
    "ras_status": RAS_STATUSES,
    "braf_status": BRAF_STATUSES,
    "margin_confirmation": MARGIN_CONFIRMATIONS,
}


# Code sets of every coded template column (the identifier screen checks values
# outside them for person names) and the pseudonymous key columns.
CODE_SETS: dict[str, tuple[str, ...]] = {
    **_OUTCOME_CODES,
    "event_type": EVENT_TYPES,
    "grading_system": COMPLICATION_SYSTEMS,
    "grade": tuple(sorted({g for grades in GRADES.values() for g in grades})),
}
ID_COLUMNS = ("patient_id", "lesion_id", "procedure_id")


def mam_category_problem(mam_mm: float, category: str) -> str | None:
    """``None``, or why ``category`` contradicts the MAM (one rule for every input path).

    The category is a function of the MAM (hepanav margin's definition); a mismatch
    would put the lesion in the wrong group of every category statistic. 0.05 mm
    slack: a MAM rounded to 0.1 mm at a boundary stays consistent. Used by the
    outcomes template (CSV/XLSX, corrections) and by ``registry import-margin``.
    """
    bounds = {
        "incomplete": (-1e9, 0.0),
        "0-5mm": (0.0, 5.0),
        "5-10mm": (5.0, 10.0),
        ">=10mm": (10.0, 1e9),
    }
    lo, hi = bounds[category]
    if lo - 0.05 <= mam_mm < hi + 0.05:
        return None
    return (
        f"{category} contradicts mam_mm {mam_mm:g} "
        "(incomplete < 0 <= 0-5mm < 5 <= 5-10mm < 10 <= >=10mm)"
    )


def _article(procedure_type: str) -> str:
    return ("an " if procedure_type[0].lower() in "aeiou" else "a ") + procedure_type


SHELL_COVERAGE_PCT = ("shell_coverage_5mm_pct", "shell_coverage_6mm_pct")


def fraction_as_percent_problem(
    field: str, value: float | None, mam_mm: float | None
) -> str | None:
    """``None``, or why a typed shell coverage looks like a fraction (0-1) instead of a %.

    ``hepanav margin`` writes coverages as fractions (0.987); the template's columns
    are percentages (98.7). A value in (0, 1] is ambiguous (0.987 % or 98.7 %?). With
    the MAM >= 0 (the tumour inside the zone, which then covers every point within
    the MAM of it) or unknown, so small a coverage is implausible and the value is
    read as a typed-in fraction: refused rather than guessed. With a negative MAM
    (incomplete ablation) small coverages are real and accepted. ``import-margin``
    converts margin.json's fractions itself. Ki-67 (``ki67_pct``) is not screened:
    a Ki-67 below 1 % is a real value (NET G1).
    """
    if field not in SHELL_COVERAGE_PCT or value is None or not 0 < value <= 1:
        return None
    if mam_mm is not None and mam_mm < 0:
        return None
    return (
        f"{field} {value:g} looks like a fraction (margin.json writes 0-1); it is a "
        f"percentage 0-100: write {100 * value:g} for {value:g} (1 % or less is accepted "
        "only with a negative mam_mm, an incomplete ablation)"
    )


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class OutcomeRow(_Row):
    """One lesion treated in one procedure: the flat outcomes template.

    Patient, primary-tumour, lesion and procedure columns repeat on every row
    of the same patient / lesion / procedure and must agree.
    """

    patient_id: str = Id
    lesion_id: str = Id
    procedure_id: str = Id
    procedure_type: Literal[PROCEDURE_TYPES]
    procedure_date: IsoDate
    icg_used: bool | None = None
    margin_mm: float | None = Field(None, ge=0, le=200, description="resection margin, mm")
    margin_status: Literal[MARGIN_STATUSES] | None = None
    year_of_birth: int | None = Field(None, ge=1900, le=2100)
    sex: Literal[SEXES] | None = None
    primary_type: Literal[PRIMARY_TYPES] | None = None
    net_grade: Literal[NET_GRADES] | None = None
    ki67_pct: float | None = Field(None, ge=0, le=100)
    segment: Literal[SEGMENTS] | None = None
    size_mm: float | None = Field(None, gt=0, le=400)
    depth_mm: float | None = Field(None, ge=0, le=300)
    approach: Literal[APPROACHES] | None = None
    ablation_device: str | None = Field(None, max_length=64)
    ablation_energy: Literal[ABLATION_ENERGIES] | None = None
    ablation_power_w: float | None = Field(None, gt=0, le=1000)
    ablation_time_min: float | None = Field(None, gt=0, le=600)
    mam_mm: float | None = Field(None, ge=-100, le=100, description="minimal ablative margin")
    shell_coverage_5mm_pct: float | None = Field(
        None, ge=0, le=100, description="% of the 5 mm shell around the tumour ablated"
    )
    shell_coverage_6mm_pct: float | None = Field(
        None, ge=0, le=100, description="% of the 6 mm shell ablated (Innsbruck: >= 90%)"
    )
    margin_category: Literal[MARGIN_CATEGORIES] | None = None
    # Covariates margin studies adjust for (schema 0003).
    centre: str | None = Field(
        None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\- ]*$"
    )
    ras_status: Literal[RAS_STATUSES] | None = None
    braf_status: Literal[BRAF_STATUSES] | None = None
    cea_ng_ml: float | None = Field(
        None, ge=0, le=100000, description="CEA before the procedure, ng/mL"
    )
    prior_chemo: bool | None = None
    neoadjuvant_chemo: bool | None = None
    asa_class: int | None = Field(None, ge=1, le=6, description="ASA physical status I-VI as 1-6")
    vessel_contact: bool | None = Field(None, description="lesion touches a vessel >= 3 mm")
    n_applicators: int | None = Field(None, ge=1, le=20, description="needles/antennas used")
    margin_confirmation: Literal[MARGIN_CONFIRMATIONS] | None = None
    technical_success: bool | None = Field(
        None, description="Ahmed 2014: zone covers the tumour at the end of the procedure"
    )
    complete_at_first_follow_up: bool | None = Field(
        None, description="Ahmed 2014: no residual tumour at the first contrast follow-up"
    )
    # The MAM's uncertainty (schema 0004), from hepanav margin's margin.json; empty = unknown.
    mam_uncertainty_mm: float | None = Field(
        None, ge=0, le=100, description="u of the MAM, mm (margin.json uncertainty.half_width_mm)"
    )
    mam_decisive: bool | None = Field(
        None,
        description="false: the MAM is NOT decisive (within u of 0 or 5 mm, or masks "
        "segmented automatically from seeds); empty: unknown",
    )
    # Whether the MAM is only a bound (schema 0005), margin.json's min_margin_bound.
    mam_bound: Literal[MAM_BOUNDS] | None = Field(
        None,
        description="the MAM is only a bound of the true MAM: lower (zone cut by the image "
        "border: true MAM may be larger), upper (tumour partly outside the image: may be "
        "smaller), unknown (both); empty: a measurement or unknown provenance",
    )

    @model_validator(mode="before")
    @classmethod
    def _codes(cls, data):
        # Accept codes in any case ("r0", "Resection"); unknown codes are left
        # for the Literal types to refuse, listing the allowed values.
        if isinstance(data, dict):
            data = dict(data)
            for field, allowed in _OUTCOME_CODES.items():
                value = data.get(field)
                if isinstance(value, str):
                    data[field] = canonical_code(value, allowed)
        return data

    @model_validator(mode="after")
    def _consistent(self):
        # R0 is defined as a margin of at least 1 mm; a spreadsheet that says
        # otherwise has a typo in one of the two columns.
        if self.margin_mm is not None and self.margin_status in ("R0", "R1", "R1_parenchymal"):
            if (self.margin_status == "R0") != (self.margin_mm >= R0_MIN_MARGIN_MM):
                raise ValueError(
                    f"margin_status {self.margin_status} contradicts margin_mm "
                    f"{self.margin_mm:g} (R0 means >= {R0_MIN_MARGIN_MM:g} mm)"
                )
        if self.mam_mm is not None and self.margin_category is not None:
            problem = mam_category_problem(self.mam_mm, self.margin_category)
            if problem:
                raise ValueError(f"margin_category {problem}")
        for name in SHELL_COVERAGE_PCT:
            problem = fraction_as_percent_problem(name, getattr(self, name), self.mam_mm)
            if problem:
                raise ValueError(problem)
        if self.mam_mm is None:
            for name in ("mam_uncertainty_mm", "mam_decisive", "mam_bound"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} given without mam_mm (it describes the MAM)")
        elif self.mam_decisive and self.mam_uncertainty_mm is not None:
            # hepanav margin's rule: decisive only when the MAM is more than u away
            # from 0 mm and from 5 mm. 0.1 mm slack for values rounded to 0.1 mm.
            closest = min(abs(self.mam_mm), abs(self.mam_mm - 5.0))
            if closest <= self.mam_uncertainty_mm - 0.1:
                raise ValueError(
                    f"mam_decisive true contradicts mam_mm {self.mam_mm:g} with "
                    f"mam_uncertainty_mm {self.mam_uncertainty_mm:g} (within u of 0 or 5 mm "
                    "is NOT decisive)"
                )
        if self.procedure_date > dt.date.today():
            raise ValueError("procedure_date lies in the future")
        if self.year_of_birth is not None and self.year_of_birth > self.procedure_date.year:
            raise ValueError("year_of_birth is after the procedure_date")
        if self.net_grade is not None and self.primary_type not in (None, "NET"):
            raise ValueError("net_grade is only for primary_type NET")
        if self.ablation_energy is not None and self.procedure_type != "ablation":
            raise ValueError("ablation_energy given for a procedure that is not an ablation")
        if self.procedure_type != "resection":
            # R0/R1 is the pathologist's verdict on a resected specimen; an ablation (or
            # TACE, ...) has no specimen. An ablation's margin is mam_mm / margin_category;
            # it is never pooled with the R0 rate.
            for name in ("margin_status", "margin_mm"):
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"{name} given for {_article(self.procedure_type)} (R0/R1 and "
                        "margin_mm are resection fields; an ablation's margin is mam_mm / "
                        "margin_category)"
                    )
        ablation_only = ("technical_success", "complete_at_first_follow_up", "n_applicators")
        for name in ablation_only:
            if getattr(self, name) is not None and self.procedure_type != "ablation":
                raise ValueError(f"{name} given for a procedure that is not an ablation")
        return self


class EventRow(_Row):
    """A follow-up event; ``local_progression`` must name its lesion."""

    patient_id: str = Id
    lesion_id: str | None = Field(None, min_length=1, max_length=64)
    event_type: str
    event_date: IsoDate

    @field_validator("event_type")
    @classmethod
    def _event(cls, v):
        return _choice(v, EVENT_TYPES, "event_type")

    @model_validator(mode="after")
    def _lesion_for_ltp(self):
        if self.event_type == "local_progression" and self.lesion_id is None:
            raise ValueError("lesion_id is required for local_progression")
        return self


class ComplicationRow(_Row):
    """A graded complication of a procedure."""

    patient_id: str = Id
    procedure_id: str = Id
    grading_system: str
    grade: str
    description: str | None = Field(None, max_length=200)

    @field_validator("grading_system")
    @classmethod
    def _system(cls, v):
        return _choice(v, COMPLICATION_SYSTEMS, "grading_system")

    @model_validator(mode="after")
    def _grade(self):
        allowed = GRADES[self.grading_system]
        grade = _choice(self.grade, allowed, f"grade ({self.grading_system})")
        object.__setattr__(self, "grade", grade)
        return self


ROW_MODELS: dict[str, type[_Row]] = {
    "outcomes": OutcomeRow,
    "events": EventRow,
    "complications": ComplicationRow,
}
REQUIRED_COLUMNS = {
    kind: tuple(name for name, f in model.model_fields.items() if f.is_required())
    for kind, model in ROW_MODELS.items()
}
# The minimal flat resection template; shown first in templates.
OUTCOME_CORE_COLUMNS = (
    "patient_id",
    "lesion_id",
    "procedure_id",
    "procedure_type",
    "procedure_date",
    "icg_used",
    "margin_mm",
    "margin_status",
)


class RowError(BaseModel):
    """One problem in an import file: spreadsheet row (header = row 1), column, reason."""

    row: int
    column: str
    reason: str


class UpsertChange(BaseModel):
    """One change a re-import (``--upsert``) makes or would make (``--dry-run``)."""

    action: Literal["create", "update"]
    table: str
    key: str = Field(description="patient_id[/lesion_id|/procedure_id[/lesion_id]]")
    row: int = Field(description="first spreadsheet row with this key")
    field: str | None = None
    old: str | None = None
    new: str | None = None


class ImportSummary(BaseModel):
    """What an import wrote (all rows, in one transaction)."""

    kind: str
    source: str
    rows: int
    patients: int
    sha256: str
    notes: list[str] = Field(
        [], description="how the file was read: encoding, delimiter, decimal commas, skipped rows"
    )
    dry_run: bool = False
    changes: list[UpsertChange] = Field([], description="--upsert: created/updated records")


# --------------------------------------------------------------------------- results


class GroupCount(BaseModel):
    """Negative-margin (R0) count of one group."""

    group: str
    n: int = Field(description="lesions (unit lesion) or patients (unit patient)")
    negative: int = Field(description="R0; a patient is negative when all their lesions are")
    positive: int = Field(description="R1 (unspecified, parenchymal or vascular) or R2")


class GroupRate(BaseModel):
    """R0 rate of one group with its Wilson 95% confidence interval (fractions 0-1)."""

    group: str
    rate: float
    ci_low: float
    ci_high: float


class TestResult(BaseModel):
    """A test of equal R0 rates across groups and why it was chosen."""

    name: str = Field(description="fisher_exact, chi_square or none")
    reason: str
    statistic: float | None = Field(None, description="odds ratio (Fisher 2x2) or chi-square")
    p_value: float | None = None
    min_expected: float | None = Field(None, description="smallest expected cell count")
    table: list[list[int]] = Field(description="rows = groups, columns = [negative, positive]")


class GeeTerm(BaseModel):
    """One GEE coefficient: odds ratio of R0 against the reference group."""

    term: str
    log_odds_ratio: float
    odds_ratio: float
    ci_low: float = Field(description="95% CI of the odds ratio, bias-reduced covariance")
    ci_high: float
    p_value: float


class ClusteredResult(BaseModel):
    """Lesions clustered within patients: GEE, or the exact patient-level fallback."""

    method: Literal["gee", "patient_level_exact_fallback", "not_estimable"]
    reason: str
    estimable: bool = Field(
        False, description="true only when the GEE gave the odds ratios in ``terms``"
    )
    n_lesions: int
    n_patients: int
    n_events: int = Field(0, description="the rarer outcome (R0 or R1/R2 lesions): EPV basis")
    reference_group: str | None = None
    terms: list[GeeTerm] = []
    working_correlation: float | None = Field(None, description="exchangeable correlation")
    p_value: float | None = None
    fallback_test: TestResult | None = None


class MarginsResult(BaseModel):
    """``margins.json``: R0 rates by group and the comparison."""

    disclaimer: str = DISCLAIMER
    group_by: str
    unit: Literal["lesion", "patient"]
    counts: list[GroupCount]
    rates: list[GroupRate]
    test: TestResult
    p_value: float | None
    clustered: ClusteredResult | None = Field(
        None, description="unit lesion only: GEE or the separation fallback"
    )


class CurvePoint(BaseModel):
    """A step of a survival or cumulative-incidence curve (time in months)."""

    months: float
    value: float


class IncidenceSummary(BaseModel):
    """Local tumour progression per lesion, death competing (Aalen-Johansen)."""

    n_lesions: int
    n_local_progression: int
    n_death_first: int
    n_censored: int
    excluded_without_follow_up: int
    cif_ltp: list[CurvePoint]
    cif_death: list[CurvePoint]
    one_minus_km_ltp: list[CurvePoint] = Field(
        description="1 - Kaplan-Meier with death censored: overestimates, shown for contrast"
    )
    at_months: dict[str, float | None] = Field(
        description="CIF of LTP at 12 and 24 months; null past the follow-up"
    )
    not_estimable: dict[str, str] = Field(
        {}, description="reason per null time point: not estimable (follow-up ends at X months)"
    )
    follow_up_ends_months: float | None = Field(None, description="longest follow-up (months)")


class SurvivalSummary(BaseModel):
    """Overall survival per patient from the first procedure (Kaplan-Meier)."""

    n_patients: int
    n_deaths: int
    km: list[CurvePoint] = Field(description="survival probability (0-1) by month")
    at_months: dict[str, float | None] = Field(
        description="survival at 12, 36 and 60 months; null past the follow-up"
    )
    not_estimable: dict[str, str] = Field(
        {}, description="reason per null time point: not estimable (follow-up ends at X months)"
    )
    follow_up_ends_months: float | None = Field(None, description="longest follow-up (months)")
    median_months: float | None = Field(description="median survival; null if not reached")


class CoxTerm(BaseModel):
    """A Cox coefficient: cause-specific hazard ratio of LTP, cluster-robust 95% CI."""

    covariate: str
    hazard_ratio: float
    ci_low: float
    ci_high: float
    p_value: float


class CoxModel(BaseModel):
    """A Cox model with its n and events, or "not estimable" with the reason (no numbers).

    Not estimable when: fewer than 10 events per covariate (Peduzzi, J Clin
    Epidemiol 1995;48:1503-1510), a single patient in a group of a binary
    covariate, monotone likelihood (complete separation: every event has the
    largest or smallest covariate value of its risk set; Bryson & Johnson,
    Biometrika 1981;68:573), no convergence, or a non-finite estimate.
    """

    model: str = Field(description="what was fitted, e.g. cause-specific Cox of LTP on MAM")
    estimable: bool
    reason: str
    n: int = Field(description="units (lesions) in the model")
    n_patients: int = Field(description="clusters for the robust (sandwich) variance")
    events: int
    covariates: list[str]
    terms: list[CoxTerm] = Field([], description="empty unless estimable")


class Proportion(BaseModel):
    """k of n with its Wilson 95% interval; ``missing`` = units without the datum."""

    numerator: int
    denominator: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    missing: int = 0


class GroupIncidence(BaseModel):
    """Local tumour progression (cumulative incidence, death competing) of one group."""

    group: str
    n_lesions: int
    n_patients: int
    events: int = Field(description="lesions with local tumour progression")
    deaths_first: int
    at_months: dict[str, float | None] = Field(
        description="CIF of LTP at 12 and 24 months; null past the follow-up"
    )
    not_estimable: dict[str, str] = Field(
        {}, description="reason per null time point: not estimable (follow-up ends at X months)"
    )
    follow_up_ends_months: float | None = Field(None, description="longest follow-up (months)")
    curve: list[CurvePoint]
    numbers_at_risk: dict[str, int] = Field(
        description="lesions at risk at 0, 6, 12, 24, 36 months"
    )


class GrayTestResult(BaseModel):
    """Gray's K-sample test (Ann Stat 1988;16:1141) or 'not estimable' with the reason."""

    estimable: bool
    reason: str
    n: int
    events: int
    statistic: float | None = None
    df: int | None = None
    p_value: float | None = None


class MamDecisiveness(BaseModel):
    """How many MAMs an analysis used were decisive, NOT decisive or of unknown certainty.

    NOT decisive (``mam_decisive`` false, from ``margin.json``): the MAM lies within
    its uncertainty u of 0 mm or of 5 mm, or came from masks segmented automatically
    from seeds; such a MAM may be in the wrong margin category.
    """

    analysis: str
    n_lesions: int = Field(description="lesions in the analysis")
    n_mam: int = Field(description="of which with a MAM")
    decisive: int
    not_decisive: int
    unknown: int = Field(
        description="MAM without a stored uncertainty (typed in, a CSV without it, or an "
        "older margin.json)"
    )
    lower_bound: int = Field(
        0,
        description="of the MAMs, LOWER bounds (mam_bound 'lower': zone cut by the image "
        "border; the true MAM may be larger)",
    )
    upper_bound: int = Field(
        0,
        description="UPPER bounds (mam_bound 'upper': tumour partly outside the image; the "
        "true MAM may be smaller)",
    )
    unknown_bound: int = Field(
        0, description="bounds of unknown direction (mam_bound 'unknown': both)"
    )


class MamSensitivity(BaseModel):
    """The MAM-based ablation statistics again, leaving out the NOT decisive MAMs.

    MAMs of unknown certainty stay in (see ``mam_decisiveness`` for how many).
    """

    excluded_not_decisive: int = Field(description="lesions left out: MAM NOT decisive")
    ltp_by_margin_category: list[GroupIncidence]
    gray_test: GrayTestResult
    cox_ltp_on_mam: CoxModel


class AblationOutcomes(BaseModel):
    """Ablation endpoints after Ahmed 2014 (Radiology 2014;273:241-260), per lesion.

    Technical success: the zone covers the tumour at the end of the procedure.
    Primary technique efficacy: complete ablation at the first contrast-enhanced
    follow-up after the first ablation. Secondary: complete after a repeat
    ablation of the same lesion (counting the primary successes). LTP: tumour at
    the edge of the zone after a complete ablation, with death competing.
    """

    n_lesions: int
    n_patients: int
    technical_success: Proportion
    primary_technique_efficacy: Proportion
    secondary_technique_efficacy: Proportion
    ltp_by_margin_category: list[GroupIncidence]
    gray_test: GrayTestResult
    cox_ltp_on_mam: CoxModel
    mam_decisiveness: list[MamDecisiveness] = Field(
        [], description="per MAM-based analysis above: MAMs decisive, NOT decisive, unknown"
    )
    sensitivity_excluding_not_decisive: MamSensitivity | None = Field(
        None, description="the same analyses without the NOT decisive MAMs; null when none"
    )
    cox_ltp_on_mam_excluding_bounds: CoxModel | None = Field(
        None,
        description="sensitivity: the Cox model of LTP on MAM without the MAMs that are only "
        "bounds (mam_bound set); null when none is",
    )


class ResectionOutcomes(BaseModel):
    """Resection: R0 per lesion and per patient, recurrence at the resection margin."""

    n_lesions: int
    n_patients: int
    r0_per_lesion: Proportion
    r0_per_patient: Proportion = Field(description="a patient is R0 when all lesions are")
    margin_recurrence: GroupIncidence | None = Field(
        None, description="local recurrence at the margin (a lesion's LTP event after resection)"
    )


class OutcomesByProcedure(BaseModel):
    """``ablation.json``: outcomes per procedure type, never pooled."""

    disclaimer: str = DISCLAIMER
    ablation: AblationOutcomes | None
    resection: ResectionOutcomes | None


class LtpComparison(BaseModel):
    """``margins.json`` for ablations: LTP by a grouping column and Gray's test."""

    disclaimer: str = DISCLAIMER
    procedure_type: str
    group_by: str
    groups: list[GroupIncidence]
    gray_test: GrayTestResult
    mam_decisiveness: MamDecisiveness | None = Field(
        None, description="grouped by margin_category: MAMs decisive, NOT decisive, unknown"
    )


class RateRow(BaseModel):
    """R0 rate of a stratum per lesion and per patient."""

    stratum: str
    lesions: int
    lesions_r0: int
    lesion_rate: float | None
    patients: int
    patients_r0: int
    patient_rate: float | None


class ComplicationCount(BaseModel):
    grading_system: str
    grade: str
    count: int


class PatientListing(BaseModel):
    """One patient in the audit listing (pseudonymous id only)."""

    patient_id: str
    sex: str | None
    year_of_birth: int | None
    procedures: int
    procedure_types: str
    lesions: int
    lesions_r0: int
    lesions_with_ltp: int
    follow_up_months: float | None
    died: bool


class LesionListing(BaseModel):
    """One lesion's first treatment and outcome (pseudonymous ids only)."""

    patient_id: str
    lesion_id: str
    procedure_type: str
    margin_mm: float | None
    margin_status: str | None
    mam_mm: float | None
    margin_category: str | None
    mam_uncertainty_mm: float | None = None
    mam_decisive: bool | None = Field(None, description="false: NOT decisive; null: unknown")
    mam_bound: Literal[MAM_BOUNDS] | None = Field(
        None, description="the MAM is only a lower/upper/unknown bound; null: a measurement"
    )
    ltp: bool
    months: float | None


class Completeness(BaseModel):
    """How often a template field is filled, among the rows where it applies."""

    field: str
    applies_to: str
    filled: int
    rows: int
    percent: float | None


class FollowUp(BaseModel):
    """Follow-up time per patient by reverse Kaplan-Meier (Schemper & Smith 1996)."""

    n_patients: int
    median_months: float | None
    q1_months: float | None
    q3_months: float | None


class ComplicationRate(BaseModel):
    """Complications per procedure type with their denominators.

    Major: Clavien-Dindo >= IIIa (Dindo 2004) or CIRSE >= 3 (Filippiadis 2017).
    90-day mortality: deaths within 90 days of the procedure among procedures
    with 90 days of follow-up or a death before.
    """

    procedure_type: str
    procedures: int
    with_any: int
    any_rate: float | None
    with_major: int
    major_rate: float | None
    deaths_90d: int
    evaluable_90d: int
    mortality_90d: float | None


class FlowStep(BaseModel):
    """A step of the STROBE-style flow: patients and lesions, and who was left out why."""

    step: str
    patients: int
    lesions: int
    excluded: str | None = None


class AtRisk(BaseModel):
    """Numbers at risk under a curve."""

    curve: str
    months: list[int]
    at_risk: list[int]


class AuditReport(BaseModel):
    """``audit.json``: the registry's audit figures."""

    disclaimer: str = DISCLAIMER
    database: str = Field(description="backend name (sqlite/postgresql), never the URL")
    counts: dict[str, int]
    rates_by_procedure_type: list[RateRow]
    rates_by_year: list[RateRow]
    margin_mm_quantiles: dict[str, float] = Field(description="resection margin percentiles")
    mam_mm_quantiles: dict[str, float] = Field(description="ablation MAM percentiles")
    icg_comparison: MarginsResult | None = None
    incidence: IncidenceSummary | None = None
    overall_survival: SurvivalSummary | None = None
    cox_local_progression: CoxModel | None = None
    mam_decisiveness: list[MamDecisiveness] = Field(
        [], description="MAM percentiles and Cox on MAM: MAMs decisive, NOT decisive, unknown"
    )
    cox_local_progression_excluding_not_decisive: CoxModel | None = Field(
        None, description="sensitivity: the Cox model without NOT decisive MAMs; null when none"
    )
    cox_local_progression_excluding_mam_bounds: CoxModel | None = Field(
        None,
        description="sensitivity: the Cox model without the MAMs that are only bounds "
        "(mam_bound set); null when none is",
    )
    complications: list[ComplicationCount]
    complication_rates: list[ComplicationRate] = []
    flow: list[FlowStep] = []
    completeness: list[Completeness] = []
    follow_up: FollowUp | None = None
    at_risk: list[AtRisk] = []
    outcomes: OutcomesByProcedure | None = None
    patients: list[PatientListing] = []
    lesions: list[LesionListing] = []


class DashboardReport(BaseModel):
    """The audit figures of a selection of the registry (the web dashboard).

    The same computations as ``audit.json`` (:mod:`hepanav.registry.audit` and
    :mod:`hepanav.registry.outcomes`), on the lesion treatments of a period, procedure
    type and centre; never pooled across procedure types.
    """

    disclaimer: str = DISCLAIMER
    selection: dict[str, str | None] = Field(
        description="date_from, date_to (YYYY-MM-DD, inclusive), procedure_type, centre"
    )
    flow: list[FlowStep]
    complication_rates: list[ComplicationRate]
    follow_up: FollowUp | None
    outcomes: OutcomesByProcedure
    mam_mm_quantiles: dict[str, float] = Field(description="ablation MAM percentiles")
    mam_decisiveness: MamDecisiveness | None = Field(
        None, description="the MAMs of the percentiles: decisive, NOT decisive, unknown"
    )
    procedure_types: list[str] = Field(description="all procedure types in the registry")
    centres: list[str] = Field(description="all centres in the registry")


class MarginUncertaintyJson(BaseModel):
    """``uncertainty`` of a ``margin.json``: is the MAM decisive (clear of 0 and 5 mm)?"""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    half_width_mm: float | None = Field(
        None, ge=0, le=100, description="u (mm); absent in files older than the field"
    )
    decisive: bool
    # The longest rule hepanav margin writes (a bound, masks from seeds and a zone that is
    # the tumour itself) is about 560 characters: 1000 leaves room, and still refuses junk.
    rule: str = Field("", max_length=1000)


class MarginJson(BaseModel):
    """The fields the registry takes from ``hepanav margin``'s ``margin.json``.

    Fractions (0-1) in that file become percentages in the registry. Only finite
    numbers in range are accepted (NaN, infinity and 1e300 are refused): MAM
    within +-100 mm, the range of the outcomes template.
    """

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    min_margin_mm: float = Field(
        ge=-100, le=100, description="minimal ablative margin (MAM), signed, mm"
    )
    shell_coverage_5mm: float = Field(ge=0, le=1)
    shell_coverage_6mm: float = Field(ge=0, le=1)
    category: Literal[MARGIN_CATEGORIES]
    uncertainty: MarginUncertaintyJson | None = Field(
        None, description="the MAM interval and whether it is decisive (older files: absent)"
    )
    min_margin_bound: Literal[MAM_BOUNDS] | None = Field(
        None,
        description="null: the MAM is a measurement (or the file is older than the field); "
        "lower / upper / unknown: it is only that bound of the true MAM (image border)",
    )
