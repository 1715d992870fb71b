"""Evaluate the decision tables for a case: one verdict per therapy.

How rule outcomes combine into a verdict (first match wins):

1. ``contraindicated`` if a ``contraindication`` rule is true, or an ``indication``
   rule is false (an indication is a *requirement*: all of a therapy's indications
   must hold);
2. ``insufficient_data`` if a ``contraindication`` or ``indication`` rule is unknown;
3. ``relative_contraindication`` if a ``relative_contraindication`` rule is true;
4. ``insufficient_data`` if a ``relative_contraindication`` rule is unknown;
5. ``eligible`` otherwise: every indication holds and no contraindication of any
   kind holds, all decided on known data.

So unknown data can never make a therapy eligible. ``missing_fields`` lists the
case fields of every rule that is still unknown, except for ``contraindicated``
(no further data can change that verdict, so nothing is asked for).
"""

from __future__ import annotations

from collections.abc import Iterable

from hepanav.therapy.conditions import case_facts, evaluate
from hepanav.therapy.rules import Rule
from hepanav.therapy.schema import THERAPIES, Case, Reason, TherapyOption, TherapyReport

_OUTCOME = {True: "true", False: "false", None: "unknown"}
_EFFECT_ORDER = {"contraindication": 0, "indication": 1, "relative_contraindication": 2}


def combine(outcomes: Iterable[tuple[str, bool | None]]) -> str:
    """Verdict from ``(effect, outcome)`` pairs of one therapy (rules in module doc)."""
    outcomes = list(outcomes)
    hard = [v for e, v in outcomes if e in ("contraindication", "indication")]
    if any(v is True for e, v in outcomes if e == "contraindication") or any(
        v is False for e, v in outcomes if e == "indication"
    ):
        return "contraindicated"
    if any(v is None for v in hard):
        return "insufficient_data"
    relative = [v for e, v in outcomes if e == "relative_contraindication"]
    if any(v is True for v in relative):
        return "relative_contraindication"
    if any(v is None for v in relative):
        return "insufficient_data"
    return "eligible"


def evaluate_case(
    case: Case, rules: list[Rule], rule_files: list[str] | None = None
) -> TherapyReport:
    """Evaluate every rule for ``case`` and return a :class:`TherapyReport`.

    Parameters
    ----------
    case : Case
        The patient; ``None`` fields are unknown.
    rules : list of Rule
        Validated rules (:func:`hepanav.therapy.rules.load_rules`).
    rule_files : list of str, optional
        File names to record; default: the files the rules came from.
    """
    facts = case_facts(case)
    options: list[TherapyOption] = []
    for therapy in THERAPIES:
        mine = sorted(
            (r for r in rules if therapy in r.therapies),
            key=lambda r: (_EFFECT_ORDER[r.effect], r.id),
        )
        if not mine:
            continue
        reasons, pairs, missing = [], [], set()
        for rule in mine:
            value, asks = evaluate(rule.condition, facts)
            pairs.append((rule.effect, value))
            missing |= asks
            reasons.append(
                Reason(
                    rule_id=rule.id,
                    effect=rule.effect,
                    outcome=_OUTCOME[value],
                    text=rule.text,
                    source=rule.source,
                )
            )
        verdict = combine(pairs)
        if verdict == "contraindicated":
            missing = set()
        options.append(
            TherapyOption(
                therapy=therapy, verdict=verdict, reasons=reasons, missing_fields=sorted(missing)
            )
        )
    evaluated = {o.therapy for o in options}
    return TherapyReport(
        case_id=case.case_id,
        options=options,
        not_evaluated=[t for t in THERAPIES if t not in evaluated],
        rule_files=sorted(set(rule_files or {r.file for r in rules})),
    )


def deciding_rule_ids(option: TherapyOption) -> list[str]:
    """Ids of the rules that produced ``option.verdict`` (see the module doc).

    contraindicated: true contraindications and unmet indications; insufficient_data:
    the unknown rules that block a decision (hard rules first); relative_contraindication:
    the true relative contraindications; eligible: the indications that hold.
    """
    reasons = option.reasons
    hard = ("contraindication", "indication")
    if option.verdict == "contraindicated":
        picked = [
            r
            for r in reasons
            if (r.effect == "contraindication" and r.outcome == "true")
            or (r.effect == "indication" and r.outcome == "false")
        ]
    elif option.verdict == "insufficient_data":
        picked = [r for r in reasons if r.effect in hard and r.outcome == "unknown"] or [
            r for r in reasons if r.outcome == "unknown"
        ]
    elif option.verdict == "relative_contraindication":
        picked = [
            r for r in reasons if r.effect == "relative_contraindication" and r.outcome == "true"
        ]
    else:
        picked = [r for r in reasons if r.effect == "indication" and r.outcome == "true"]
    return sorted(r.rule_id for r in picked)
