"""A small condition language over case fields, with three-valued (Kleene) logic.

A condition is either a leaf ``{field, op, value}`` or a combinator
``{all: [...]}``, ``{any: [...]}``, ``{not: {...}}``. Fields are the scalar fields
of :class:`~hepanav.therapy.schema.Case` plus three derived from ``lesions``
(``lesion_count``, ``max_lesion_size_mm``, ``any_lesion_near_major_vessel``).

An unknown field makes a leaf *unknown* (``None``), never false: ``all`` is false if
any part is false, unknown if any part is unknown, else true; ``any`` is true if any
part is true, unknown if any part is unknown, else false; ``not`` keeps unknown.
So a rule is only decided when the known data decide it.
"""

from __future__ import annotations

import math
import operator
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

from hepanav.therapy.schema import Case

Kind = Literal["number", "bool", "enum"]


@dataclass(frozen=True)
class FieldSpec:
    """Type of a field a condition may test; ``asks`` is the case field a user fills in."""

    kind: Kind
    choices: tuple[str, ...] = ()
    asks: str = ""


def _spec_from_annotation(name: str, annotation: Any) -> FieldSpec:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = args[0] if len(args) == 1 else annotation
    if base is bool:
        return FieldSpec("bool", asks=name)
    if base in (int, float):
        return FieldSpec("number", asks=name)
    if typing.get_origin(base) is Literal:
        return FieldSpec("enum", tuple(typing.get_args(base)), asks=name)
    raise TypeError(f"Case.{name}: no condition kind for {annotation!r}")


def _case_fields() -> dict[str, FieldSpec]:
    # Built from the Case model so that the rule language can never drift from it.
    specs = {}
    for name, info in Case.model_fields.items():
        if name in ("case_id", "lesions"):
            continue
        specs[name] = _spec_from_annotation(name, info.annotation)
    specs["lesion_count"] = FieldSpec("number", asks="lesions")
    specs["max_lesion_size_mm"] = FieldSpec("number", asks="lesions")
    specs["any_lesion_near_major_vessel"] = FieldSpec("bool", asks="lesions[].near_major_vessel")
    return specs


FIELDS: dict[str, FieldSpec] = _case_fields()

_ORDER_OPS = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge}
_EQUALITY_OPS = {"eq": operator.eq, "ne": operator.ne}
OPS = (*_EQUALITY_OPS, *_ORDER_OPS, "in")


class ConditionError(ValueError):
    """A condition that is not well formed; the message names where (e.g. ``all[1].op``)."""


@dataclass(frozen=True)
class Leaf:
    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class All:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    part: Condition


Condition = Union[Leaf, All, AnyOf, Not]  # noqa: UP007 (used at runtime by isinstance)


# ----------------------------------------------------------------------------- parsing
def parse_condition(raw: Any, where: str = "condition") -> Condition:
    """Parse and type-check a condition given as YAML data.

    Raises
    ------
    ConditionError
        Unknown key, unknown field or operator, or a value of the wrong type;
        the message starts with the path inside the condition.
    """
    if not isinstance(raw, dict):
        raise ConditionError(f"{where}: expected a mapping, got {type(raw).__name__}")
    keys = set(raw)
    for combinator in ("all", "any"):
        if combinator in keys:
            if keys != {combinator}:
                raise ConditionError(f"{where}: unexpected keys {sorted(keys - {combinator})}")
            items = raw[combinator]
            if not isinstance(items, list) or not items:
                raise ConditionError(f"{where}.{combinator}: expected a non-empty list")
            parts = tuple(
                parse_condition(item, f"{where}.{combinator}[{i}]") for i, item in enumerate(items)
            )
            return All(parts) if combinator == "all" else AnyOf(parts)
    if "not" in keys:
        if keys != {"not"}:
            raise ConditionError(f"{where}: unexpected keys {sorted(keys - {'not'})}")
        return Not(parse_condition(raw["not"], f"{where}.not"))
    return _parse_leaf(raw, where)


def _parse_leaf(raw: dict, where: str) -> Leaf:
    expected = {"field", "op", "value"}
    if set(raw) != expected:
        extra, missing = sorted(set(raw) - expected), sorted(expected - set(raw))
        detail = f"unknown keys {extra}" if extra else f"missing keys {missing}"
        raise ConditionError(
            f"{where}: {detail} (a condition is {{field, op, value}} or all/any/not)"
        )
    field, op, value = raw["field"], raw["op"], raw["value"]
    if field not in FIELDS:
        raise ConditionError(f"{where}.field: unknown field {field!r}")
    if op not in OPS:
        raise ConditionError(f"{where}.op: unknown operator {op!r} (known: {', '.join(OPS)})")
    spec = FIELDS[field]
    if op in _ORDER_OPS and spec.kind != "number":
        raise ConditionError(f"{where}.op: {op!r} needs a numeric field, {field!r} is {spec.kind}")
    values = value if op == "in" else [value]
    if op == "in" and (not isinstance(value, list) or not value):
        raise ConditionError(f"{where}.value: 'in' needs a non-empty list")
    for v in values:
        _check_value(field, spec, v, f"{where}.value")
    return Leaf(field, op, tuple(value) if op == "in" else value)


def _check_value(field: str, spec: FieldSpec, value: Any, where: str) -> None:
    if spec.kind == "bool" and not isinstance(value, bool):
        raise ConditionError(f"{where}: {field!r} is boolean, got {value!r}")
    if spec.kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ConditionError(f"{where}: {field!r} is a number, got {value!r}")
    if spec.kind == "number" and not math.isfinite(value):
        # .nan never compares true and .inf never false: such a rule can never fire.
        raise ConditionError(f"{where}: {field!r} needs a finite number, got {value!r}")
    if spec.kind == "enum" and value not in spec.choices:
        raise ConditionError(f"{where}: {field!r} is one of {list(spec.choices)}, got {value!r}")


# -------------------------------------------------------------------------- evaluation
def case_facts(case: Case) -> dict[str, Any]:
    """Values of every condition field for ``case``; ``None`` where unknown."""
    facts: dict[str, Any] = {
        name: getattr(case, name) for name in FIELDS if name in Case.model_fields
    }
    lesions = case.lesions
    if lesions is None:
        facts.update(lesion_count=None, max_lesion_size_mm=None, any_lesion_near_major_vessel=None)
        return facts
    facts["lesion_count"] = len(lesions)
    facts["max_lesion_size_mm"] = max((le.size_mm for le in lesions), default=0.0)
    near = [le.near_major_vessel for le in lesions]
    if any(v is True for v in near):
        facts["any_lesion_near_major_vessel"] = True
    elif all(v is False for v in near):
        facts["any_lesion_near_major_vessel"] = False
    else:
        facts["any_lesion_near_major_vessel"] = None
    return facts


def evaluate(cond: Condition, facts: dict[str, Any]) -> tuple[bool | None, frozenset[str]]:
    """Evaluate ``cond``; return (True / False / None for unknown, fields to ask for).

    The field set is empty unless the result is unknown; then it names the case
    fields (``FieldSpec.asks``) whose values would decide it.
    """
    if isinstance(cond, Leaf):
        value = facts.get(cond.field)
        if value is None:
            return None, frozenset({FIELDS[cond.field].asks})
        if cond.op == "in":
            return value in cond.value, frozenset()
        compare = _EQUALITY_OPS.get(cond.op) or _ORDER_OPS[cond.op]
        return bool(compare(value, cond.value)), frozenset()
    if isinstance(cond, Not):
        value, missing = evaluate(cond.part, facts)
        return (None if value is None else not value), missing
    results = [evaluate(part, facts) for part in cond.parts]
    decisive = False if isinstance(cond, All) else True
    if any(value is decisive for value, _ in results):
        return decisive, frozenset()
    unknown = [missing for value, missing in results if value is None]
    if unknown:
        return None, frozenset().union(*unknown)
    return (not decisive), frozenset()


def referenced_fields(cond: Condition) -> set[str]:
    """Every field a condition tests (for documentation and coverage checks)."""
    if isinstance(cond, Leaf):
        return {cond.field}
    if isinstance(cond, Not):
        return referenced_fields(cond.part)
    return set().union(*(referenced_fields(p) for p in cond.parts))


__all__ = [
    "FIELDS",
    "All",
    "AnyOf",
    "Condition",
    "ConditionError",
    "FieldSpec",
    "Leaf",
    "Not",
    "case_facts",
    "evaluate",
    "parse_condition",
    "referenced_fields",
]
