"""CLI commands of hepanav.dicom: ``hepanav dicom export|pseudonymise`` and ``hepanav pacs``."""

from __future__ import annotations

from pathlib import Path

import typer

_SETTINGS_HELP = (
    "Server, AE titles and credentials come from the settings file ($HEPANAV_PACS_CONFIG, "
    "default ~/.config/hepanav/pacs.toml) and HEPANAV_PACS_* environment variables, never "
    "from the command line (see docs/dicom.md)."
)


def register(app: typer.Typer) -> None:
    """Add ``hepanav dicom`` and ``hepanav pacs`` to the root app."""
    dicom = typer.Typer(
        help="DICOM objects: export results as SEG/SR/SC/REG, pseudonymise.", no_args_is_help=True
    )
    dicom.command("export")(export)
    dicom.command("pseudonymise")(pseudonymise)
    app.add_typer(dicom, name="dicom")
    pacs = typer.Typer(
        help=f"Query, retrieve and store against a PACS. {_SETTINGS_HELP}", no_args_is_help=True
    )
    pacs.command("find")(find)
    pacs.command("get")(get)
    pacs.command("send")(send)
    app.add_typer(pacs, name="pacs")


def export(
    result_dir: Path = typer.Argument(..., help="Folder of a finished margin or plan result."),
    out: Path = typer.Option(None, "--out", help="Output folder (default RESULT_DIR/dicom)."),
    source: Path = typer.Option(
        None,
        "--source",
        help="Folder with the CT series the result was computed on "
        "(default: the one recorded in the result folder; another series is refused).",
    ),
    pre: Path = typer.Option(
        None,
        "--pre",
        help="Pre-procedure CT series folder of a pre/post margin result: adds the Spatial "
        "and Deformable Spatial Registration objects (default: the one recorded).",
    ),
) -> None:
    """Write a result folder's DICOM objects: SEG, TID 1500 SR, Secondary Capture (+ REG).

    The source series is read as every command reads it: an exact duplicate slice, a
    localizer or a slice of another geometry is left out (a "note:" line says which and
    why). --source (and --pre) must be the series the result records (its CT series in
    margin.json / plan.json, or fetched from the PACS): another series is a one-line
    error naming both Series Instance UIDs, exit 2, nothing written. A result that
    records none (NIfTI inputs) is checked for overlap only, and a "note:" line says so.
    A source series the result does not overlap: one-line error, exit 2. OUT is
    one output set: complete or absent, even on a full disk or a kill; a previous
    HepaNav output there is replaced, a folder of other files refused.
    """
    from hepanav.core.atomic import final_path, output_folder
    from hepanav.core.errors import InputError
    from hepanav.core.paths import check_inputs_outputs
    from hepanav.dicom.export import export_result

    out = out or result_dir / "dicom"
    # OUT is replaced as a whole: it may not be or hold a source series or the result
    # (it may lie inside the result: the default RESULT_DIR/dicom).
    check_inputs_outputs([source, pre], [], folders=[out])
    if out.resolve() == result_dir.resolve() or out.resolve() in result_dir.resolve().parents:
        raise InputError(
            f"output folder holds the result {result_dir}; choose another output folder", out
        )
    notes: list[str] = []
    with output_folder(out, "hepanav dicom export") as tmp:
        written = export_result(result_dir, tmp, source, pre, notes)
    for path in written:
        typer.echo(f"wrote {final_path(path, tmp, out)}")
    for note in dict.fromkeys(notes):  # slices dropped and why, identifiers recovered
        typer.echo(f"note: {note}")


def pseudonymise(
    src: Path = typer.Argument(..., metavar="IN", help="DICOM file or folder (recursive)."),
    dst: Path = typer.Argument(..., metavar="OUT", help="Output folder (must not exist)."),
    key_file: Path = typer.Option(
        ..., "--key-file", help="Secret key file (created when missing); keep it apart from OUT."
    ),
    mapping: Path = typer.Option(
        ...,
        "--mapping",
        help="Where to write the original -> pseudonym mapping (CSV); keep "
        "it apart from OUT, it re-identifies.",
    ),
) -> None:
    """PS3.15 Basic Application Level Confidentiality Profile + Retain Longitudinal
    Temporal Information (dicognito); UIDs consistent across the study."""
    from hepanav.dicom.pseudonymise import pseudonymise_tree

    summary = pseudonymise_tree(src, dst, key_file, mapping)
    typer.echo(
        f"pseudonymised {summary.files} file(s) into {dst}; mapping in {mapping} "
        "(store it apart from the data)"
    )


def find(
    study: str | None = typer.Option(None, "--study", help="Study Instance UID."),
    accession: str | None = typer.Option(None, "--accession", help="Accession Number."),
) -> None:
    """List studies (UID, date, modalities) or, with --study, the study's series."""
    from hepanav.dicom.pacs import open_pacs

    pacs = open_pacs()
    if study:
        for s in pacs.find_series(study):
            n = "?" if s.instances is None else s.instances
            typer.echo(f"{s.series_uid}\t{s.modality}\t{n} instance(s)\t{s.description}")
        return
    for s in pacs.find_studies(accession=accession):
        typer.echo(f"{s.study_uid}\t{s.study_date}\t{s.modalities}\t{s.description}")


def get(
    key: str = typer.Argument(..., metavar="KEY", help="Study Instance UID or Accession Number."),
    out: Path = typer.Option(..., "--out", help="Output folder: one sub-folder per series."),
    series: list[str] = typer.Option(
        None, "--series", help="Series Instance UID to get (repeatable; default: all)."
    ),
) -> None:
    """Retrieve a study (or some of its series) into OUT/<Modality>_<SeriesUID>/.

    OUT is one output set (as every HepaNav output folder): complete or absent, even on a
    full disk or a kill; a previous HepaNav output there is replaced, other files refused.
    """
    from hepanav.core.atomic import final_path, output_folder
    from hepanav.dicom.fetch import fetch_study

    with output_folder(out, "hepanav pacs get") as tmp:
        fetched = fetch_study(key, tmp, series or None)
    for item in fetched:
        folder = final_path(item.folder, tmp, out)
        typer.echo(f"{folder}\t{item.info.modality}\t{len(item.files)} file(s)")


def send(
    paths: list[Path] = typer.Argument(..., help="DICOM files or folders (recursive)."),
) -> None:
    """Store DICOM files in the PACS; counts only what the PACS confirms as stored.

    Files that are not DICOM at all (no DICOM file meta header: a README.txt, a
    .DS_Store) are skipped, and one "note:" line says how many and which. Every other
    file is checked before the first is sent: a DICOM file that is broken (cannot be
    read to its end, pixel data cut short) or has an empty SOP Class/Instance, Study or
    Series Instance UID (an anonymised export) is a one-line error naming it, and
    nothing is sent; so is a folder without any DICOM file. On a failure one line names
    the objects stored and those not confirmed as stored (exit 2).
    """
    from hepanav.core.errors import InputError
    from hepanav.dicom.fetch import dicom_files
    from hepanav.dicom.pacs import open_pacs, read_files

    files = dicom_files(paths)
    pacs = open_pacs()  # a bad or missing PACS setting fails before any file is read
    skipped: list[Path] = []
    datasets = read_files(files, not_dicom=skipped)
    if not datasets:
        raise InputError(
            f"no DICOM file among the {len(files)} file(s) given (none has a DICOM file "
            "meta header); nothing was sent",
            ", ".join(str(p) for p in paths),
        )
    if skipped:
        names = ", ".join(str(p) for p in skipped[:10])
        more = f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        typer.echo(
            f"note: skipped {len(skipped)} file(s) that are not DICOM (no DICOM file meta "
            f"header): {names}{more}"
        )
    stored = pacs.store_datasets(datasets)
    typer.echo(f"stored {len(stored)} object(s)")
