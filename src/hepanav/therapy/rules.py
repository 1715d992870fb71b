"""Decision tables: YAML rule files, validated on load.

A rule file is ``{description: str (optional), rules: [rule, ...]}``; a rule is::

    id: TARE-01                       # unique over all files
    therapy: tare                     # or a list: [tae, tace, tare]
    effect: contraindication          # indication | relative_contraindication | contraindication
    text: Lung shunt fraction above 20% excludes TARE.
    condition: {field: lung_shunt_fraction_percent, op: gt, value: 20}
    source: {citation: ..., title: ..., year: ..., doi: ... or pmid: ..., quote: "...",
             quote_status: verbatim, unverified_part: ..., url: ..., note: ...}

``quote_status: verbatim`` means the quote is the source's own sentence; an
``unverified`` source keeps no sentence: its quote reads ``"unverified: <what was
searched>"`` (see :class:`~hepanav.therapy.schema.Source`).

Anything else (an unknown key, a condition on a field that does not exist, a value
of the wrong type, a duplicate id) raises :class:`~hepanav.core.InputError` naming
the file and the rule id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hepanav.core import InputError
from hepanav.core.validation import first_error, read_user_yaml
from hepanav.therapy.conditions import Condition, ConditionError, parse_condition
from hepanav.therapy.schema import Effect, Source, Therapy

RULES_DIR = Path(__file__).parent / "data" / "rules"


class _RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(min_length=1, pattern=r"^[A-Z]+-[0-9]+$")
    therapy: Therapy | list[Therapy]
    effect: Effect
    text: str = Field(min_length=1)
    condition: dict[str, Any]
    source: Source

    @field_validator("therapy")
    @classmethod
    def _not_empty(cls, value):
        if isinstance(value, list) and not value:
            raise ValueError("names no therapy")
        return value


@dataclass(frozen=True)
class Rule:
    """One criterion: for ``therapies``, ``effect`` holds when ``condition`` is true."""

    id: str
    therapies: tuple[str, ...]
    effect: str
    text: str
    condition: Condition
    source: Source
    file: str


def parse_rule(raw: Any, file: Path, index: int) -> Rule:
    """Validate one rule mapping from ``file``; raise InputError naming the rule id."""
    rule_id = raw.get("id") if isinstance(raw, dict) else None
    label = f"rule {rule_id!r}" if isinstance(rule_id, str) else f"rule #{index + 1}"
    if not isinstance(raw, dict):
        raise InputError(f"{label}: expected a mapping", file)
    try:
        spec = _RuleSpec.model_validate(raw)
    except ValidationError as exc:
        raise InputError(f"{label}: {first_error(exc, 'rule')}", file) from None
    try:
        condition = parse_condition(spec.condition)
    except ConditionError as exc:
        raise InputError(f"{label}: {exc}", file) from None
    therapies = tuple(spec.therapy) if isinstance(spec.therapy, list) else (spec.therapy,)
    return Rule(spec.id, therapies, spec.effect, spec.text, condition, spec.source, file.name)


def load_rule_file(path: Path) -> list[Rule]:
    """Read and validate one YAML rule file."""
    # Regular file, size/depth bounded, finite numbers (hepanav.core.validation).
    data = read_user_yaml(path, "rule file")
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise InputError("a rule file is a mapping with a 'rules' list", path)
    unknown = sorted(set(data) - {"rules", "description"})
    if unknown:
        raise InputError(f"unknown top-level keys {unknown} (allowed: description, rules)", path)
    return [parse_rule(raw, path, i) for i, raw in enumerate(data["rules"])]


def load_rules(paths: list[Path] | None = None) -> list[Rule]:
    """Load rule files (default: every ``data/rules/*.yaml``); ids must be unique."""
    files = sorted(RULES_DIR.glob("*.yaml")) if paths is None else list(paths)
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for path in files:
        for rule in load_rule_file(Path(path)):
            if rule.id in seen:
                raise InputError(f"rule {rule.id!r}: duplicate id (also in {seen[rule.id]})", path)
            seen[rule.id] = rule.file
            rules.append(rule)
    return rules
