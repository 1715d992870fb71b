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


@registry_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV or XLSX file following a template.")],
    kind: Annotated[str, typer.Option("--kind", help=KIND_HELP)] = "outcomes",
    errors_out: Annotated[
        Path | None,
        typer.Option("--errors-out", help="On failure, write every bad row to this CSV."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Import a template file: every row is checked; all rows or none are written."""
    from hepanav.core.paths import check_inputs_outputs
    from hepanav.registry.importer import ImportRejected, import_file, write_errors_csv

    check_inputs_outputs([file], [errors_out])
    try:
        summary = import_file(_open(db), file, kind)
    except ImportRejected as exc:
        if errors_out is not None:
            write_errors_csv(exc.errors, errors_out)
        raise
    typer.echo(f"imported {summary.rows} {kind} rows ({summary.patients} patients) from {file}")


@registry_app.command("import-margin")
def import_margin(
    margin_json: Annotated[Path, typer.Argument(help="margin.json written by `hepanav margin`.")],
    patient_id: Annotated[str, typer.Option("--patient-id", help="Pseudonymous patient id.")],
    procedure_id: Annotated[str, typer.Option("--procedure-id", help="The ablation.")],
    lesion_id: Annotated[str, typer.Option("--lesion-id", help="The ablated lesion.")],
    db: DbOption = None,
) -> None:
    """Store an ablation margin (MAM, 5/6 mm shell coverage, category) on a lesion."""
    from hepanav.registry.margin_import import attach_margin

    m = attach_margin(_open(db), margin_json, patient_id, procedure_id, lesion_id)
    typer.echo(
        f"{patient_id}/{procedure_id}/{lesion_id}: MAM {m.min_margin_mm:.1f} mm ({m.category}), "
        f"6 mm shell {100 * m.shell_coverage_6mm:.0f}% covered"
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
        typer.Option("--procedure-type", help="Only this procedure type (e.g. resection)."),
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
    frame = dataset.treatments(_open(db))
    if procedure_type is not None:
        frame = frame[frame.procedure_type == procedure_type]
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


def register(app: typer.Typer) -> None:
    """Add ``registry`` and ``stats`` to the root hepanav app."""
    app.add_typer(registry_app, name="registry")
    app.add_typer(stats_app, name="stats")
