"""Dose check against the HISTORICAL intra-arterial table (``data/doses.yaml``).

For sourced protocols (HAI floxuridine/oxaliplatin, DEB-TACE, DEBIRI, cTACE) see
:mod:`hepanav.therapy.regimens`; this table is kept, labelled historical, for drugs
without one.

The ranges (``data/doses.yaml``) are absolute doses in mg per session. A dose given
per body surface area (mg/m2) or per body weight (mg/kg) is first converted to mg
for this patient. Body surface area uses the Mosteller formula,
``BSA [m^2] = sqrt(height [cm] * weight [kg] / 3600)`` (Mosteller RD. Simplified
calculation of body-surface area. N Engl J Med 1987;317(17):1098).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hepanav.core import InputError
from hepanav.therapy.schema import DoseResult, HistoricalSource

DOSES_FILE = Path(__file__).parent / "data" / "doses.yaml"
UNITS = ("mg", "mg/m2", "mg/kg")
_UNIT_ALIASES = {
    "mg": "mg",
    "mg/m2": "mg/m2",
    "mg/m²": "mg/m2",
    "mg/m^2": "mg/m2",
    "mg/kg": "mg/kg",
}
# Plausibility limits catch unit slips: metres for cm (1.7 < 30) and millimetres
# for cm (1700 > 300). Pounds for kg is not caught.
_MIN_HEIGHT_CM = 30.0
_MAX_HEIGHT_CM = 300.0
_MAX_WEIGHT_KG = 700.0
_MIN_WEIGHT_KG = 0.2  # below the smallest surviving preterm neonates (about 0.25 kg)
# A dose above 100 g (in mg, or 10^5 mg per m2/kg) is no intra-arterial regimen of the
# tables (the largest, hepatic arterial floxuridine and 5-FU, are grams per cycle): a unit
# slip. It also keeps every product below float overflow (1e308 mg/kg once gave "inf mg").
MAX_DOSE = 1.0e5
# Below a nanogram no regimen exists either; with the weight limit the dose in mg stays > 0
# (5e-324 mg/kg for 1e-9 kg once gave 0 mg).
MIN_DOSE = 1.0e-6


class _Drug(BaseModel):
    model_config = ConfigDict(extra="forbid")

    aliases: list[str] = Field(default_factory=list)
    ranges_mg: dict[str, tuple[float, float]]
    quote: str = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> _Drug:
        for route, (low, high) in self.ranges_mg.items():
            if not 0 < low <= high:
                raise ValueError(f"range for {route} must satisfy 0 < min <= max")
        return self


class DoseTable(BaseModel):
    """``doses.yaml``: drugs with per-route ranges in mg, route aliases, one source."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    source: HistoricalSource
    routes: dict[str, list[str]]
    drugs: dict[str, _Drug]

    @model_validator(mode="after")
    def _known_routes(self) -> DoseTable:
        for name, drug in self.drugs.items():
            unknown = set(drug.ranges_mg) - set(self.routes)
            if unknown:
                raise ValueError(f"drug {name}: unknown routes {sorted(unknown)}")
        return self

    def find_drug(self, name: str) -> str:
        """Canonical drug name for ``name`` or an alias (case-insensitive)."""
        key = name.strip().lower()
        for canonical, drug in self.drugs.items():
            if key == canonical or key in (a.lower() for a in drug.aliases):
                return canonical
        raise InputError(f"unknown drug {name!r} (known: {', '.join(self.drugs)})", "--drug")

    def find_route(self, name: str) -> str:
        """Canonical route for ``name`` or an alias (case-insensitive)."""
        key = name.strip().lower()
        for canonical, aliases in self.routes.items():
            if key == canonical or key in (a.lower() for a in aliases):
                return canonical
        raise InputError(f"unknown route {name!r} (known: {', '.join(self.routes)})", "--route")


@lru_cache(maxsize=4)
def load_dose_table(path: Path = DOSES_FILE) -> DoseTable:
    """Read and validate the dose table (cached)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        return DoseTable.model_validate(data)
    except OSError as exc:
        raise InputError(f"cannot read dose table ({exc.strerror})", path) from None
    except (yaml.YAMLError, ValidationError) as exc:
        raise InputError(f"invalid dose table: {' '.join(str(exc).split())}", path) from None


def mosteller_bsa(height_cm: float, weight_kg: float) -> float:
    """Body surface area in m^2 by Mosteller (NEJM 1987;317:1098).

    Parameters
    ----------
    height_cm : float
        Body height in cm (> 0).
    weight_kg : float
        Body weight in kg (> 0).

    Returns
    -------
    float
        ``sqrt(height_cm * weight_kg / 3600)`` in m^2.
    """
    return math.sqrt(height_cm * weight_kg / 3600.0)


def normalise_unit(unit: str) -> str:
    """``mg``, ``mg/m2`` or ``mg/kg`` for a unit string; InputError naming ``--unit``."""
    key = unit.strip().lower().replace(" ", "")
    if key not in _UNIT_ALIASES:
        raise InputError(f"unknown unit {unit!r} (known: {', '.join(UNITS)})", "--unit")
    return _UNIT_ALIASES[key]


def _positive(
    value: float | None, name: str, upper: float | None = None, lower: float | None = None
) -> float:
    if value is None:
        raise InputError("required for this unit", name)
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"must be a positive number, got {value}", name)
    if upper is not None and value > upper:
        raise InputError(f"{value} is implausible (> {upper:g}); check the unit", name)
    if lower is not None and value < lower:
        raise InputError(f"{value} is implausible (< {lower:g}); check the unit", name)
    return value


def check_dose_value(dose: float | None) -> float:
    """A dose as the user typed it (in its unit): finite, > 0 and at most :data:`MAX_DOSE`."""
    return _positive(dose, "--dose", MAX_DOSE, MIN_DOSE)


def total_dose_mg(
    dose: float, unit: str, height_cm: float | None = None, weight_kg: float | None = None
) -> tuple[float, float | None]:
    """Convert a dose to mg for this patient; return (mg, BSA in m^2 or None).

    ``mg/m2`` needs height (cm) and weight (kg) for the Mosteller BSA; ``mg/kg``
    needs weight (kg).
    """
    dose = check_dose_value(dose)
    unit = normalise_unit(unit)
    if unit == "mg":
        return dose, None
    weight = _positive(weight_kg, "--weight-kg", _MAX_WEIGHT_KG, _MIN_WEIGHT_KG)
    if unit == "mg/kg":
        return dose * weight, None
    height = _positive(height_cm, "--height-cm", _MAX_HEIGHT_CM, _MIN_HEIGHT_CM)
    bsa = mosteller_bsa(height, weight)
    return dose * bsa, bsa


def classify(total_mg: float, low: float, high: float) -> str:
    """``below``, ``within`` (bounds inclusive, 1e-9 relative tolerance) or ``above``."""
    if total_mg < low and not math.isclose(total_mg, low, rel_tol=1e-9):
        return "below"
    if total_mg > high and not math.isclose(total_mg, high, rel_tol=1e-9):
        return "above"
    return "within"


def check_dose(
    drug: str,
    dose: float,
    unit: str,
    route: str,
    height_cm: float | None = None,
    weight_kg: float | None = None,
    table: DoseTable | None = None,
) -> DoseResult:
    """Compare a dose of ``drug`` by ``route`` with the historical range: within / below / above."""
    table = table or load_dose_table()
    name = table.find_drug(drug)
    route_name = table.find_route(route)
    entry = table.drugs[name]
    if route_name not in entry.ranges_mg:
        raise InputError(
            f"no range for {name} by route {route_name!r} (known: {', '.join(entry.ranges_mg)})",
            "--route",
        )
    total, bsa = total_dose_mg(dose, unit, height_cm, weight_kg)
    low, high = entry.ranges_mg[route_name]
    source = table.source.model_copy(update={"quote": entry.quote})
    return DoseResult(
        drug=name,
        route=route_name,
        dose=dose,
        unit=normalise_unit(unit),
        height_cm=height_cm,
        weight_kg=weight_kg,
        bsa_m2=None if bsa is None else round(bsa, 2),
        total_mg=_shown_total(total, low, high),
        range_mg=(low, high),
        result=classify(total, low, high),
        source=source,
    )


def _shown_total(total: float, low: float, high: float) -> float:
    """``total`` to 3 significant digits, or more when the rounded value would compare
    with the range otherwise than ``total`` does (150.4 mg is not shown as 150 mg above
    a range ending at 150 mg)."""
    result = classify(total, low, high)
    for digits in range(3, 16):
        shown = _significant(total, digits)
        if classify(shown, low, high) == result:
            return shown
    return total


def _significant(value: float, digits: int = 3) -> float:
    # No spurious precision: a converted dose is good to about 1 % (BSA formula).
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))
