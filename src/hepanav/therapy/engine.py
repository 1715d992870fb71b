"""Evaluate the decision tables for a case: one verdict per therapy.

Rule effects: ``contraindication`` (true = the therapy must not be given),
``relative_contraindication`` (true = weigh it), ``requirement`` (an indication that is
also necessary: false = contraindicated, e.g. no SSTR expression for PRRT) and
``indication`` (true = the therapy is indicated; false says nothing against it).

Verdict scale, worst first; the worst that applies wins:

1. ``contraindicated``: a contraindication is true or a requirement is false. It shows
   whatever else is missing (no data can undo it).
2. ``relative_contraindication``: a relative contraindication is true.
3. ``insufficient_data``: a contraindication or requirement is unknown (``missing_fields``).
4. ``no_contraindication_found``: every contraindication and requirement is decided and
   none applies, but no encoded indication is met, or a rule that can only give a relative
   contraindication (or an indication) is still unknown: then the verdict is "no
   contraindication found, pending: FIELD" (``pending_fields``), never insufficient data.
5. ``indicated``: an indication is encoded and met, and every other rule of the therapy
   is decided and clear (a met requirement alone is not an indication: SSTR expression
   allows PRRT, it does not call for it).

So unknown data never make a therapy "indicated", and "no contraindication found" (grey
in the report) is never shown as a recommendation.
"""

from __future__ import annotations

from collections.abc import Iterable

from hepanav.therapy.conditions import case_facts, evaluate
from hepanav.therapy.rules import Rule
from hepanav.therapy.schema import THERAPIES, Case, Reason, TherapyOption, TherapyReport

_OUTCOME = {True: "true", False: "false", None: "unknown"}
_EFFECT_ORDER = {
    "contraindication": 0,
    "requirement": 1,
    "relative_contraindication": 2,
    "indication": 3,
}
_HARD = ("contraindication", "requirement")
_SOFT = ("relative_contraindication", "indication")


def combine(outcomes: Iterable[tuple[str, bool | None]]) -> str:
    """Verdict from ``(effect, outcome)`` pairs of one therapy (rules in module doc)."""
    outcomes = list(outcomes)

    def any_of(effect: str, value: bool | None) -> bool:
        return any(v is value for e, v in outcomes if e == effect)

    if any_of("contraindication", True) or any_of("requirement", False):
        return "contraindicated"
    if any_of("relative_contraindication", True):
        return "relative_contraindication"
    if any(v is None for e, v in outcomes if e in _HARD):
        return "insufficient_data"
    if any(v is None for e, v in outcomes if e in _SOFT):
        return "no_contraindication_found"
    if any(v is True for e, v in outcomes if e == "indication"):
        return "indicated"
    return "no_contraindication_found"


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
        reasons, pairs, missing, pending = [], [], set(), set()
        for rule in mine:
            value, asks = evaluate(rule.condition, facts)
            pairs.append((rule.effect, value))
            (missing if rule.effect in _HARD else pending).update(asks)
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
            missing, pending = set(), set()
        pending -= missing
        option = TherapyOption(
            therapy=therapy,
            verdict=verdict,
            reasons=reasons,
            missing_fields=sorted(missing),
            pending_fields=sorted(pending),
        )
        deciding = set(deciding_rule_ids(option))
        option.unverified_rules = sorted(
            x.rule_id for x in reasons if x.rule_id in deciding and not x.source.verified
        )
        options.append(option)
    evaluated = {o.therapy for o in options}
    return TherapyReport(
        case_id=case.case_id,
        options=options,
        not_evaluated=[t for t in THERAPIES if t not in evaluated],
        rule_files=sorted(set(rule_files or {r.file for r in rules})),
    )


def deciding_rule_ids(option: TherapyOption) -> list[str]:
    """Ids of the rules that produced ``option.verdict`` (see the module doc).

    contraindicated: true contraindications and unmet requirements; relative: the true
    relative contraindications; insufficient_data: the unknown contraindications and
    requirements; no_contraindication_found: the unknown soft rules (pending), else none;
    indicated: the indications and requirements that hold.
    """
    r = option.reasons
    if option.verdict == "contraindicated":
        picked = [
            x
            for x in r
            if (x.effect == "contraindication" and x.outcome == "true")
            or (x.effect == "requirement" and x.outcome == "false")
        ]
    elif option.verdict == "relative_contraindication":
        picked = [x for x in r if x.effect == "relative_contraindication" and x.outcome == "true"]
    elif option.verdict == "insufficient_data":
        picked = [x for x in r if x.effect in _HARD and x.outcome == "unknown"]
    elif option.verdict == "no_contraindication_found":
        picked = [x for x in r if x.effect in _SOFT and x.outcome == "unknown"]
    else:
        picked = [x for x in r if x.effect == "indication" and x.outcome == "true"]
    return sorted(x.rule_id for x in picked)
