"""CLI commands of hepanav.registry: ``hepanav registry ...`` and ``hepanav stats ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (sqlite:///file.sqlite or postgresql://user@host/db); "
        "default $HEPANAV_DATABASE_URL, else sqlite:///hepanav-registry.sqlite.",
        show_default=False,
    ),
]
KIND_HELP = "Template: outcomes (one row per treated lesion), events or complications."

registry_app = typer.Typer(
    help="Outcomes registry: create, import CSV/XLSX templates, export, audit report.",
    no_args_is_help=True,
)
stats_app = typer.Typer(help="Study statistics from the registry.", no_args_is_help=True)


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _open(db: str | None):
    from hepanav.registry.db import open_registry
    from hepanav.registry.settings import resolve_database_url

    return open_registry(resolve_database_url(db))


@registry_app.command("init")
def init(db: DbOption = None) -> None:
    """Create the registry (or upgrade its schema to this version)."""
    from hepanav.registry.db import head_revision, make_engine, upgrade
    from hepanav.registry.settings import resolve_database_url

    url = resolve_database_url(db)
    upgrade(make_engine(url))
    typer.echo(f"registry ready at {_shown(url)} (schema {head_revision()})")


UserOption = Annotated[
    str | None,
    typer.Option("--user", help="Who makes the change (default: the login name)."),
]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (kept in the history).")]


def _user(user: str | None) -> str:
    import getpass

    if user:
        return user
    try:
        return getpass.getuser()[:64] or "unknown"
    except (KeyError, OSError):
        return "unknown"


def _pairs(items: list[str] | None, option: str) -> dict[str, str]:
    from hepanav.core.errors import InputError

    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError("expected FIELD=VALUE", option)
        out[name.strip()] = value.strip()
    return out


@registry_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV or XLSX file following a template.")],
    kind: Annotated[str, typer.Option("--kind", help=KIND_HELP)] = "outcomes",
    errors_out: Annotated[
        Path | None,
        typer.Option("--errors-out", help="On failure, write every bad row to this CSV."),
    ] = None,
    mapping: Annotated[
        str | None,
        typer.Option(
            "--mapping",
            help="Column/code mapping: a YAML file, or 'redcap' for a REDCap export.",
        ),
    ] = None,
    upsert: Annotated[
        bool,
        typer.Option("--upsert", help="Re-import a corrected outcomes file: update by key."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="With --upsert: list changes, write nothing.")
    ] = False,
    user: UserOption = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (history of --upsert changes).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Import a template file: every row is checked; all rows or none are written."""
    from hepanav.core.paths import check_inputs_outputs
    from hepanav.registry.importer import ImportRejected, import_file, write_errors_csv

    check_inputs_outputs([file], [errors_out])
    try:
        summary = import_file(
            _open(db),
            file,
            kind,
            mapping=mapping,
            upsert=upsert,
            dry_run=dry_run,
            user=_user(user),
            reason=reason,
        )
    except ImportRejected as exc:
        if errors_out is not None:
            write_errors_csv(exc.errors, errors_out)
        raise
    for note in summary.notes:
        typer.echo(f"note: {note}")
    if upsert:
        for c in summary.changes:
            what = f"{c.field}: {c.old} -> {c.new}" if c.action == "update" else "new record"
            typer.echo(f"row {c.row} {c.table} {c.key}: {what}")
        created = sum(c.action == "create" for c in summary.changes)
        updated = sum(c.action == "update" for c in summary.changes)
        verb = "would change" if dry_run else "changed"
        typer.echo(f"{verb}: {created} record(s) created, {updated} field(s) updated")
        return
    typer.echo(f"imported {summary.rows} {kind} rows ({summary.patients} patients) from {file}")


@registry_app.command("create")
def create(
    table: Annotated[str, typer.Argument(help="patients, lesions, procedures, ...")],
    set_: Annotated[list[str], typer.Option("--set", help="FIELD=VALUE (repeat).")],
    reason: ReasonOption,
    user: UserOption = None,
    db: DbOption = None,
) -> None:
    """Create a record (the import's rules apply); every field is logged in the history."""
    from hepanav.registry.records import create_record, record_key

    values = create_record(_open(db), table, _pairs(set_, "--set"), _user(user), reason)
    typer.echo(f"created {record_key(table, values)}")


@registry_app.command("update")
def update_(
    table: Annotated[str, typer.Argument(help="patients, lesions, procedures, ...")],
    key: Annotated[list[str], typer.Option("--key", help="KEYFIELD=VALUE (repeat).")],
    set_: Annotated[list[str], typer.Option("--set", help="FIELD=VALUE (repeat; empty clears).")],
    reason: ReasonOption,
    user: UserOption = None,
    db: DbOption = None,
) -> None:
    """Correct fields of a record; old and new values go to the history.

    The corrected record is checked with the same rules as an import (R0 >= 1 mm, MAM
    vs category, resection-only fields, nothing dated after death); refused changes
    write nothing.
    """
    from hepanav.registry.records import record_key, update_record

    k = _pairs(key, "--key")
    diff = update_record(_open(db), table, k, _pairs(set_, "--set"), _user(user), reason)
    for field, old, new in diff:
        typer.echo(f"{record_key(table, k)} {field}: {old} -> {new}")
    if not diff:
        typer.echo("nothing changed (the values were already stored)")


@registry_app.command("delete")
def delete_(
    table: Annotated[str, typer.Argument(help="patients, lesions, procedures, ...")],
    key: Annotated[list[str], typer.Option("--key", help="KEYFIELD=VALUE (repeat).")],
    reason: ReasonOption,
    user: UserOption = None,
    db: DbOption = None,
) -> None:
    """Delete a record (and what depends on it); its values stay in the history."""
    from hepanav.registry.records import delete_record, record_key

    k = _pairs(key, "--key")
    delete_record(_open(db), table, k, _user(user), reason)
    typer.echo(f"deleted {record_key(table, k)}")


@registry_app.command("history")
def history_(
    record: Annotated[
        str | None, typer.Option("--record", help="Only this record, e.g. lesions:P1/L1.")
    ] = None,
    db: DbOption = None,
) -> None:
    """List the edit history: when, who, action, record, field, old -> new, reason."""
    from hepanav.registry.records import history

    for h in history(_open(db), record):
        when = h["changed_at"]
        when = when.isoformat(timespec="seconds") if hasattr(when, "isoformat") else when
        typer.echo(
            f"{when} {h['changed_by']} {h['action']} {h['record_key']} "
            f"{h['field'] or ''}: {h['old_value']} -> {h['new_value']} ({h['reason']})"
        )


@registry_app.command("import-margin")
def import_margin(
    margin_json: Annotated[Path, typer.Argument(help="margin.json written by `hepanav margin`.")],
    patient_id: Annotated[str, typer.Option("--patient-id", help="Pseudonymous patient id.")],
    procedure_id: Annotated[str, typer.Option("--procedure-id", help="The ablation.")],
    lesion_id: Annotated[str, typer.Option("--lesion-id", help="The ablated lesion.")],
    upsert: Annotated[
        bool,
        typer.Option("--upsert", help="Replace a margin already stored (kept in the history)."),
    ] = False,
    accept_not_decisive: Annotated[
        bool,
        typer.Option(
            "--accept-not-decisive",
            help="Store a MAM the margin file marks NOT decisive (the history says so).",
        ),
    ] = False,
    user: UserOption = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (kept in the history).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Store an ablation margin (MAM, 5/6 mm shell coverage, category) on a lesion.

    Also stored: u and decisive (uncertainty block) and mam_bound (min_margin_bound:
    a MAM the image border makes only a lower/upper bound). Every change is kept in
    the history. A lesion that already has a different margin is refused unless
    --upsert; a MAM marked NOT decisive in margin.json (within its uncertainty of 0
    or 5 mm, or a bound that leaves either possible) is refused unless
    --accept-not-decisive.
    """
    from hepanav.core.report import format_margin
    from hepanav.registry.margin_import import attach_margin

    m, changes = attach_margin(
        _open(db),
        margin_json,
        patient_id,
        procedure_id,
        lesion_id,
        upsert=upsert,
        accept_not_decisive=accept_not_decisive,
        user=_user(user),
        reason=reason,
    )
    flag = ", NOT decisive" if m.uncertainty is not None and not m.uncertainty.decisive else ""
    sign = {"lower": "at least ", "upper": "at most "}.get(m.min_margin_bound, "")
    if m.min_margin_bound is not None:
        flag = f", {m.min_margin_bound.upper()} BOUND{flag}"
    typer.echo(
        f"{patient_id}/{procedure_id}/{lesion_id}: MAM {sign}{format_margin(m.min_margin_mm)} mm "
        f"({m.category}"
        f"{flag}), 6 mm shell {100 * m.shell_coverage_6mm:.0f}% covered"
        + ("" if changes else "; already stored, nothing changed")
    )


@registry_app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="CSV file to write.")],
    kind: Annotated[str, typer.Option("--kind", help=KIND_HELP)] = "outcomes",
    db: DbOption = None,
) -> None:
    """Export a registry table as a template CSV (re-importable)."""
    from hepanav.registry.exporter import export_csv

    typer.echo(f"wrote {export_csv(_open(db), kind, out)}")


@registry_app.command("redcap-dictionary")
def redcap_dictionary(
    out: Annotated[Path, typer.Option("--out", help="CSV file to write.")],
) -> None:
    """Write the REDCap data dictionary of HepaNav's fields (import with --mapping redcap)."""
    from hepanav.registry.mapping import write_redcap_dictionary

    typer.echo(f"wrote {write_redcap_dictionary(out)}")


@registry_app.command("template")
def template(
    kind: Annotated[str, typer.Argument(help=KIND_HELP)],
    out: Annotated[Path, typer.Option("--out", help="File to write (.csv or .xlsx).")],
) -> None:
    """Write an empty import template (header row)."""
    from hepanav.registry.exporter import write_template

    typer.echo(f"wrote {write_template(kind, out)}")


@registry_app.command("report")
def report(
    out: Annotated[Path, typer.Option("--out", help="Folder for audit.html and audit.json.")],
    db: DbOption = None,
) -> None:
    """Write the audit report (HTML with figures) and audit.json."""
    from hepanav.core.atomic import check_output_folder, final_path, output_folder
    from hepanav.registry.report import write_audit_report

    check_output_folder(out)
    engine = _open(db)
    with output_folder(out, "hepanav registry report") as tmp:  # audit.html + audit.json
        html, js = write_audit_report(engine, tmp)
    html, js = final_path(html, tmp, out), final_path(js, tmp, out)
    typer.echo(f"wrote {html}")
    typer.echo(f"wrote {js}")


@stats_app.command("margins")
def margins(
    group_by: Annotated[str, typer.Option("--group-by", help="Column to compare, e.g. icg_used.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for margins.json.")],
    unit: Annotated[str, typer.Option("--unit", help="lesion or patient.")] = "lesion",
    procedure_type: Annotated[
        str | None,
        typer.Option(
            "--procedure-type",
            help="Only this procedure type (e.g. resection). R0 rates are never pooled across "
            "procedure types: without it, statuses of two types are refused (or use "
            "--group-by procedure_type).",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """R0 rates per group, the right test, and per lesion the clustered analysis."""
    from hepanav.core.atomic import write_json
    from hepanav.core.errors import InputError
    from hepanav.registry import dataset, stats

    if unit not in ("lesion", "patient"):
        raise InputError(f"must be lesion or patient, not {unit!r}", "--unit")
    if group_by not in dataset.GROUP_COLUMNS:
        raise InputError(
            f"cannot group by {group_by!r}; choose from {', '.join(dataset.GROUP_COLUMNS)}",
            "--group-by",
        )
    if procedure_type is not None:
        from hepanav.registry.vocabulary import PROCEDURE_TYPES

        codes = {code.lower(): code for code in PROCEDURE_TYPES}
        if procedure_type.lower() not in codes:
            raise InputError(
                f"unknown procedure type {procedure_type!r}; choose from "
                f"{', '.join(PROCEDURE_TYPES)}",
                "--procedure-type",
            )
        procedure_type = codes[procedure_type.lower()]
    from hepanav.core.atomic import check_output_folder, final_path, output_folder

    check_output_folder(out)
    engine = _open(db)
    frame = dataset.treatments(engine)
    if procedure_type is not None:
        frame = frame[frame.procedure_type == procedure_type]
        if frame.empty:
            raise InputError(
                f"no lesion treated by {procedure_type} in the registry", "--procedure-type"
            )
    if procedure_type is not None and frame["negative"].isna().all():
        # Ablations carry no R0/R1: compare local tumour progression by group instead.
        from hepanav.registry.outcomes import ltp_comparison

        ltp = ltp_comparison(frame, dataset.events(engine), group_by, procedure_type)
        with output_folder(out, "hepanav stats margins") as tmp:
            path = final_path(write_json(tmp / "margins.json", ltp), tmp, out)
        typer.echo(
            f"{procedure_type}: no margin status (R0/R1); local tumour progression by {group_by}"
        )
        for g in ltp.groups:
            typer.echo(
                f"{group_by}={g.group}: {g.events}/{g.n_lesions} lesions with LTP, "
                f"CIF 12 months {stats.at_text(g.at_months, g.not_estimable, '12')}"
            )
        gray = ltp.gray_test
        p = f"p = {gray.p_value:.4g}" if gray.estimable else gray.reason
        typer.echo(f"Gray's test (n = {gray.n}, {gray.events} events): {p}")
        if ltp.mam_decisiveness is not None:
            typer.echo(_decisiveness_text(ltp.mam_decisiveness))
        typer.echo(f"wrote {path}")
        return
    result = stats.margin_comparison(frame, group_by, unit)
    with output_folder(out, "hepanav stats margins") as tmp:
        path = final_path(write_json(tmp / "margins.json", result), tmp, out)
    for count, rate in zip(result.counts, result.rates, strict=True):
        typer.echo(f"{group_by}={count.group}: {count.negative}/{count.n} R0 ({rate.rate:.1%})")
    p = "n/a" if result.p_value is None else f"{result.p_value:.4g}"
    typer.echo(f"{result.test.name}: p = {p}")
    if result.clustered is not None:
        cp = "n/a" if result.clustered.p_value is None else f"{result.clustered.p_value:.4g}"
        typer.echo(f"clustered ({result.clustered.method}): p = {cp}")
    typer.echo(f"wrote {path}")


@stats_app.command("ablation")
def ablation(
    out: Annotated[Path, typer.Option("--out", help="Folder for ablation.json.")],
    db: DbOption = None,
) -> None:
    """Ablation endpoints (Ahmed 2014) and resection outcomes, side by side, never pooled."""
    from hepanav.core.atomic import check_output_folder, final_path, output_folder, write_json
    from hepanav.registry import dataset, stats
    from hepanav.registry.outcomes import outcomes_by_procedure

    check_output_folder(out)
    engine = _open(db)
    result = outcomes_by_procedure(dataset.treatments(engine), dataset.events(engine))
    with output_folder(out, "hepanav stats ablation") as tmp:
        path = final_path(write_json(tmp / "ablation.json", result), tmp, out)

    def show(name, p):
        rate = "n/a" if p.rate is None else f"{p.rate:.1%}"
        typer.echo(f"  {name}: {p.numerator}/{p.denominator} ({rate}), {p.missing} not recorded")

    a = result.ablation
    if a is None:
        typer.echo("ablation: no ablated lesion in the registry")
    else:
        typer.echo(f"ablation: {a.n_lesions} lesions in {a.n_patients} patients")
        show("technical success", a.technical_success)
        show("primary technique efficacy", a.primary_technique_efficacy)
        show("secondary technique efficacy", a.secondary_technique_efficacy)
        for g in a.ltp_by_margin_category:
            typer.echo(
                f"  LTP, MAM {g.group}: {g.events}/{g.n_lesions} lesions; CIF 12 months "
                f"{stats.at_text(g.at_months, g.not_estimable, '12')}, 24 months "
                f"{stats.at_text(g.at_months, g.not_estimable, '24')}"
            )
        gray = a.gray_test
        typer.echo(
            f"  Gray's test (n = {gray.n}, {gray.events} events): "
            + (f"p = {gray.p_value:.4g}" if gray.estimable else gray.reason)
        )
        cox = a.cox_ltp_on_mam
        text = (
            f"HR per mm {cox.terms[0].hazard_ratio:.3f} "
            f"({cox.terms[0].ci_low:.3f}-{cox.terms[0].ci_high:.3f})"
            if cox.estimable
            else cox.reason
        )
        typer.echo(f"  Cox LTP on MAM (n = {cox.n}, {cox.events} events): {text}")
        for d in a.mam_decisiveness:
            typer.echo("  " + _decisiveness_text(d))
        sa = a.sensitivity_excluding_not_decisive
        if sa is not None:
            gray, cox = sa.gray_test, sa.cox_ltp_on_mam
            text = _hazard_ratio_text(cox)
            typer.echo(
                f"  sensitivity, {sa.excluded_not_decisive} NOT decisive MAMs excluded: "
                f"Gray's test (n = {gray.n}) "
                + (f"p = {gray.p_value:.4g}" if gray.estimable else gray.reason)
                + f"; Cox (n = {cox.n}, {cox.events} events) {text}"
            )
        cox = a.cox_ltp_on_mam_excluding_bounds
        if cox is not None:
            text = _hazard_ratio_text(cox)
            typer.echo(
                f"  sensitivity, MAMs that are only bounds excluded: "
                f"Cox (n = {cox.n}, {cox.events} events) {text}"
            )
    r = result.resection
    if r is None:
        typer.echo("resection: no resected lesion in the registry")
    else:
        typer.echo(f"resection: {r.n_lesions} lesions in {r.n_patients} patients")
        show("R0 per lesion", r.r0_per_lesion)
        show("R0 per patient", r.r0_per_patient)
    typer.echo(f"wrote {path}")


def _hazard_ratio_text(cox) -> str:
    """'HR per mm 0.812 (0.700-0.941)' of a one-term Cox fit, or why it is not estimable."""
    if not cox.estimable:
        return cox.reason
    term = cox.terms[0]
    return f"HR per mm {term.hazard_ratio:.3f} ({term.ci_low:.3f}-{term.ci_high:.3f})"


def _decisiveness_text(d) -> str:
    from hepanav.registry.outcomes import bounds_text

    bounds = bounds_text(d)
    return (
        f"{d.analysis}: {d.n_mam} MAMs, {d.not_decisive} NOT decisive, "
        f"{d.unknown} of unknown certainty" + (f"; {bounds}" if bounds else "")
    )


def register(app: typer.Typer) -> None:
    """Add ``registry`` and ``stats`` to the root hepanav app."""
    app.add_typer(registry_app, name="registry")
    app.add_typer(stats_app, name="stats")
