"""Dose check by regimen: a dose against a sourced protocol (``data/regimens.yaml``).

A regimen fixes drug, route, schedule and the protocol dose in its own unit (mg, mg/m2 or
mg/kg) per session, per day or per cycle. A dose given in the protocol's unit is compared
directly (no conversion, so no rounding enters); a dose in mg is compared with the
protocol dose converted for this patient (Mosteller BSA for mg/m2, weight for mg/kg).
Reported numbers keep the precision of the protocol (two significant digits for
converted doses, four for the limits converted to mg): a dose check has no use for
187.35 mg. When that rounding would read otherwise than the verdict (100.04 mg/m2 shown as
"= 180 mg", ABOVE a limit shown as 181.8 mg), both are shown with as many digits as it
takes to agree (181.9 mg, 181.8 mg): see :func:`shown_in_agreement`.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hepanav.core import InputError
from hepanav.therapy.dose import check_dose_value, classify, normalise_unit, total_dose_mg
from hepanav.therapy.schema import DoseResult, RegimenDoseResult, Source

REGIMENS_FILE = Path(__file__).parent / "data" / "regimens.yaml"


class Regimen(BaseModel):
    """One protocol: ``per_session`` or ``per_day`` (then ``days_per_cycle``) limits."""

    model_config = ConfigDict(extra="forbid")

    description: str
    drug: str
    route: str
    schedule: str
    unit: Literal["mg", "mg/m2", "mg/kg"]
    per_session: tuple[float, float] | None = None
    per_day: tuple[float, float] | None = None
    days_per_cycle: int | None = Field(default=None, ge=1, le=60)
    source: Source

    @model_validator(mode="after")
    def _limits(self) -> Regimen:
        pairs = [p for p in (self.per_session, self.per_day) if p is not None]
        if len(pairs) != 1:
            raise ValueError("give exactly one of per_session and per_day")
        low, high = pairs[0]
        if not (math.isfinite(low) and math.isfinite(high) and 0 <= low <= high and high > 0):
            raise ValueError("limits must be finite with 0 <= low <= high")
        if self.per_day is not None and self.days_per_cycle is None:
            raise ValueError("per_day needs days_per_cycle")
        return self


class RegimenTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    regimens: dict[str, Regimen]


@lru_cache(maxsize=4)
def load_regimens(path: Path = REGIMENS_FILE) -> RegimenTable:
    """Read and validate the regimen table (cached)."""
    try:
        return RegimenTable.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
    except OSError as exc:
        raise InputError(f"cannot read regimen table ({exc.strerror})", path) from None
    except (yaml.YAMLError, ValidationError) as exc:
        raise InputError(f"invalid regimen table: {' '.join(str(exc).split())}", path) from None


def regimens_for_drug(drug: str) -> list[str]:
    """Names of the regimens of ``drug`` (case-insensitive)."""
    key = drug.strip().lower()
    return [n for n, r in load_regimens().regimens.items() if r.drug == key]


def significant(value: float, digits: int = 2) -> float:
    """``value`` rounded to ``digits`` significant digits (no spurious precision)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


def check_regimen_dose(
    regimen: str,
    dose: float,
    unit: str,
    per: str = "session",
    height_cm: float | None = None,
    weight_kg: float | None = None,
) -> RegimenDoseResult:
    """Compare ``dose`` (in ``unit``, ``per`` session/day/cycle) with the protocol.

    Raises
    ------
    InputError
        Unknown regimen, a ``per`` the protocol does not define, a unit that cannot be
        converted (mg/kg given for an mg/m2 protocol), missing height/weight.
    """
    table = load_regimens()
    key = regimen.strip().lower()
    if key not in table.regimens:
        raise InputError(
            f"unknown regimen {regimen!r} (known: {', '.join(table.regimens)})", "--regimen"
        )
    r = table.regimens[key]
    unit = normalise_unit(unit)
    if per not in ("session", "day", "cycle"):
        raise InputError("choose session, day or cycle", "--per")
    if r.per_session is not None:
        if per != "session":
            raise InputError(f"{key} is dosed per session, not per {per}", "--per")
        low, high = r.per_session
        protocol = (
            f"{_fmt(low)}-{_fmt(high)} {r.unit} per session"
            if low
            else (f"up to {_fmt(high)} {r.unit} per session")
        )
    else:
        if per == "session":
            raise InputError(f"{key} is dosed per day and per cycle; give --per day|cycle", "--per")
        low, high = r.per_day
        days = r.days_per_cycle if per == "cycle" else 1
        low, high = low * days, high * days
        protocol = (
            f"up to {_fmt(r.per_day[1])} {r.unit} per day on {r.days_per_cycle} days "
            f"(= {_fmt(r.per_day[1] * r.days_per_cycle)} {r.unit} per cycle)"
        )
    dose = check_dose_value(dose)
    patient_mg, bsa, limits_mg = None, None, None
    if unit == r.unit:
        value = dose
        if unit != "mg" and (height_cm is not None or weight_kg is not None):
            per_unit_mg, bsa = total_dose_mg(1.0, unit, height_cm, weight_kg)
            patient_mg = dose * per_unit_mg
            limits_mg = (low * per_unit_mg, high * per_unit_mg)
    elif unit == "mg":
        # Protocol per m2 or per kg: convert its limits to mg for this patient. The
        # user's own dose is kept as given (rounding it could move it across a limit).
        per_unit_mg, bsa = total_dose_mg(1.0, r.unit, height_cm, weight_kg)
        low, high = low * per_unit_mg, high * per_unit_mg
        limits_mg = (low, high)
        value = patient_mg = dose
    else:
        raise InputError(
            f"{key} is dosed in {r.unit}; give the dose in "
            + (r.unit if r.unit == "mg" else f"{r.unit} or in mg"),
            "--unit",
        )
    result = (
        classify(value, low, high)
        if low > 0
        else ("above" if value > high * (1 + 1e-9) else "within")
    )
    if limits_mg is not None:
        # The mg figures are shown beside the verdict: round them so that they compare
        # as the verdict does (a dose in mg is kept as given).
        patient_mg, limits_mg = shown_in_agreement(
            patient_mg, limits_mg, result, 2 if unit != "mg" else None
        )
    return RegimenDoseResult(
        regimen=key,
        description=r.description,
        drug=r.drug,
        route=r.route,
        schedule=r.schedule,
        dose=dose,
        unit=unit,
        per=per,
        patient_mg=patient_mg,
        protocol_mg=None
        if limits_mg is None
        else (None if not limits_mg[0] else limits_mg[0], limits_mg[1]),
        bsa_m2=None if bsa is None else round(bsa, 2),
        protocol_dose=protocol,
        result=result,
        source=r.source,
    )


def shown_in_agreement(
    value: float,
    limits: tuple[float, float],
    result: str,
    value_digits: int | None,
    limit_digits: int = 4,
) -> tuple[float, tuple[float, float]]:
    """``value`` and ``limits`` rounded for display such that the rounded numbers give
    ``result`` again (:func:`hepanav.therapy.dose.classify`).

    The value is rounded to ``value_digits`` significant digits (None: kept as given) and
    the limits to ``limit_digits``; when the rounded numbers would read otherwise than
    the verdict ("= 180 mg ... ABOVE ... up to 181.8 mg"), both get the same, smallest
    sufficient number of digits (at least ``limit_digits``).
    """
    low, high = limits

    def rounded(digits_v: int | None, digits_l: int) -> tuple[float, float, float]:
        v = value if digits_v is None else significant(value, digits_v)
        return v, significant(low, digits_l), significant(high, digits_l)

    tries = [(value_digits, limit_digits)]
    tries += [(None if value_digits is None else d, d) for d in range(limit_digits, 16)]
    for digits_v, digits_l in tries:
        v, lo, hi = rounded(digits_v, digits_l)
        if classify(v, lo, hi) == result:
            return v, (lo, hi)
    return value, (low, high)


def _fmt(x: float) -> str:
    return f"{significant(x, 3):g}"


def dose_check(
    *,
    drug: str | None,
    regimen: str | None,
    dose: float,
    unit: str,
    per: str = "session",
    route: str = "intra-arterial",
    height_cm: float | None = None,
    weight_kg: float | None = None,
    historical: bool = False,
) -> RegimenDoseResult | DoseResult:
    """One dose check as ``hepanav therapy dose`` does it (the CLI and the web page share it).

    A ``regimen`` is checked against the sourced protocol (``check_regimen_dose``); a
    ``drug`` against the historical intra-arterial table (``check_dose``), which is refused
    when the drug has sourced regimens unless ``historical`` is set.

    Raises
    ------
    InputError
        Both or neither of drug and regimen, a drug with sourced regimens without
        ``historical``, and everything the two checks refuse.
    """
    from hepanav.therapy.dose import check_dose, load_dose_table

    if regimen:
        if drug:
            raise InputError("give --regimen or --drug, not both", "--drug")
        return check_regimen_dose(regimen, dose, unit, per, height_cm, weight_kg)
    if not drug:
        raise InputError(
            "give --regimen (sourced protocol) or --drug (historical table)", "--regimen"
        )
    options = regimens_for_drug(load_dose_table().find_drug(drug))
    if options and not historical:
        raise InputError(
            f"{drug} has sourced regimens ({', '.join(options)}): give --regimen; --historical "
            "compares with the historical table instead",
            "--drug",
        )
    return check_dose(drug, dose, unit, route, height_cm, weight_kg)
