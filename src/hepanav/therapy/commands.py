"""CLI commands of hepanav.therapy (registered by hepanav.cli).

``therapy`` is a group with the subcommands ``evaluate`` and ``dose``; a first
argument that is not a subcommand is routed to ``evaluate``, so
``hepanav therapy case.yaml --out d`` is ``hepanav therapy evaluate case.yaml --out d``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperGroup


class DefaultToEvaluateGroup(TyperGroup):
    """A group whose first argument, unless a subcommand or ``--help``, goes to ``evaluate``.

    So ``therapy CASE --out D`` and ``therapy --out D CASE`` both mean
    ``therapy evaluate CASE --out D``, while ``therapy dose ...`` and ``therapy --help``
    keep their meaning.
    """

    default_command = "evaluate"

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def evaluate(
    case: Path = typer.Argument(..., help="Case file (YAML or JSON), see docs/therapy.md."),
    out: Path = typer.Option(..., "--out", help="Output folder for therapy.json and therapy.html."),
    rules: list[Path] = typer.Option(
        None, "--rules", help="Rule file(s) to use instead of the built-in tables (repeatable)."
    ),
) -> None:
    """Evaluate the decision tables for CASE: a verdict per therapy, with rules and sources.

    Refused in one line (exit 2), naming the file and the field: a key given twice, an
    unknown field, a wrong type, a size typed in cm (sizes are mm, 5-300), a percent field
    between 0 and 1 (a likely fraction: write 25 for 25 %, or "0.25 %" for a value truly
    under 1 %).
    """
    from hepanav.core import InputError, write_json
    from hepanav.core.atomic import check_output_folder, output_folder
    from hepanav.core.paths import check_inputs_outputs
    from hepanav.therapy.cases import load_case
    from hepanav.therapy.engine import evaluate_case
    from hepanav.therapy.report import write_report
    from hepanav.therapy.rules import load_rules

    for target in (out / "therapy.json", out / "therapy.html"):
        for given in [case, *(rules or [])]:
            if Path(given).exists() and target.exists() and target.samefile(given):
                raise InputError(
                    f"the output would overwrite the input {Path(given).name}; choose another "
                    "--out folder",
                    target,
                )
    check_inputs_outputs([case, *(rules or [])], [], folders=[out])
    check_output_folder(out)
    table = load_rules(rules or None)
    patient = load_case(case)
    report = evaluate_case(patient, table)
    with output_folder(out, "hepanav therapy") as tmp:  # both files, or neither
        write_json(tmp / "therapy.json", report)
        write_report(tmp / "therapy.html", patient, report)
    for option in report.options:
        missing = (
            f"  (missing: {', '.join(option.missing_fields)})" if option.missing_fields else ""
        )
        if option.pending_fields:
            missing += f"  (pending: {', '.join(option.pending_fields)})"
        if option.unverified_rules:
            missing += f"  (rests on an unverified source: {', '.join(option.unverified_rules)})"
        typer.echo(f"{option.therapy:>22}: {option.verdict}{missing}")
    typer.echo(f"wrote {out / 'therapy.json'} and {out / 'therapy.html'}")


def _number(text: str | None, option: str) -> float | None:
    from hepanav.core import InputError

    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise InputError(f"not a number: {text!r}", option) from None


def dose(
    drug: str = typer.Option(
        None, "--drug", help="Drug name or alias (historical table), e.g. cisplatin, 5-FU."
    ),
    regimen: str = typer.Option(
        None,
        "--regimen",
        help="Sourced protocol: hai-floxuridine, hai-oxaliplatin, deb-tace-doxorubicin, "
        "debiri-irinotecan, ctace-doxorubicin.",
    ),
    # numbers are read as text so that a typo gives HepaNav's one-line error, not a usage box
    value: str = typer.Option(..., "--dose", help="Dose in --unit."),
    unit: str = typer.Option(..., "--unit", help="mg, mg/m2 (needs height and weight) or mg/kg."),
    per: str = typer.Option("session", "--per", help="Regimens: session, day or cycle."),
    route: str = typer.Option("intra-arterial", "--route", help="Historical table: route."),
    historical: bool = typer.Option(
        False, "--historical", help="Compare with the historical table even if a regimen exists."
    ),
    height_cm: str = typer.Option(None, "--height-cm", help="Body height in cm (for mg/m2)."),
    weight_kg: str = typer.Option(None, "--weight-kg", help="Body weight in kg (mg/m2, mg/kg)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Check a dose against a sourced regimen (--regimen), or against the historical
    intra-arterial table (--drug).

    Exit code 0: within the protocol dose (or range).
    Exit code 1: ABOVE the protocol dose, or BELOW a stated range (printed;
    with --json the result is "above" or "below").
    Exit code 2: a user mistake (one error line)."""
    from hepanav.therapy.regimens import dose_check
    from hepanav.therapy.schema import RegimenDoseResult

    height, weight = _number(height_cm, "--height-cm"), _number(weight_kg, "--weight-kg")
    amount = _number(value, "--dose")
    result = dose_check(
        drug=drug,
        regimen=regimen,
        dose=amount,
        unit=unit,
        per=per,
        route=route,
        height_cm=height,
        weight_kg=weight,
        historical=historical,
    )
    if isinstance(result, RegimenDoseResult):
        res = result
        if as_json:
            typer.echo(res.model_dump_json(indent=2))
            _exit_for(res.result)
            return
        mg = f" (= {res.patient_mg:g} mg" if res.patient_mg is not None and res.unit != "mg" else ""
        mg += (
            f", BSA {res.bsa_m2:.2f} m2 Mosteller)"
            if res.bsa_m2 is not None and mg
            else (")" if mg else (f" (BSA {res.bsa_m2:.2f} m2 Mosteller)" if res.bsa_m2 else ""))
        )
        unchecked = (
            "; UNVERIFIED: the protocol dose could not be found in the source's text"
            if not res.source.verified
            else ""
        )
        in_mg = ""
        if res.protocol_mg is not None:
            lo, hi = res.protocol_mg
            in_mg = (
                f" = {lo:g}-{hi:g} mg for this patient"
                if lo
                else f" = up to {hi:g} mg for this patient"
            )
        typer.echo(
            f"{res.regimen}: {res.drug} {res.dose:.15g} {res.unit} per {res.per}{mg}: "
            f"{res.result.upper()} the protocol dose, {res.protocol_dose}{in_mg} "
            f"({res.source.citation.rstrip('.')}{unchecked})"
        )
        _exit_for(res.result)
        return
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        _exit_for(result.result)
        return
    bsa = f", BSA {result.bsa_m2:.2f} m2 (Mosteller)" if result.bsa_m2 is not None else ""
    low, high = result.range_mg
    given = f"{result.drug} {result.dose:.15g} {result.unit} {result.route}"
    typer.echo(
        f"{given} = {result.total_mg:g} mg{bsa}: {result.result.upper()} the HISTORICAL range "
        f"{low:g}-{high:g} mg ({result.source.quote.split(',')[0]}...; not a dosing protocol)"
    )
    _exit_for(result.result)


# Exit code of `therapy dose` when the dose is outside the protocol dose (documented in
# docs/therapy.md): a finding, not a user mistake (which is 2).
DOSE_OUTSIDE_EXIT_CODE = 1


def _exit_for(result: str) -> None:
    if result != "within":
        raise typer.Exit(DOSE_OUTSIDE_EXIT_CODE)


def register(app: typer.Typer) -> None:
    """Add the ``therapy`` group to the root hepanav app."""
    therapy_app = typer.Typer(
        cls=DefaultToEvaluateGroup,
        no_args_is_help=True,
        help="Liver-directed therapy decision support: `hepanav therapy CASE --out DIR` "
        "or `hepanav therapy dose ...`.",
    )
    therapy_app.command("evaluate")(evaluate)
    therapy_app.command("dose")(dose)
    app.add_typer(therapy_app, name="therapy")
