"""CLI: ``hepanav segment tumor|ablation|liver``."""

from __future__ import annotations

from pathlib import Path

import typer

_EDIT = "editing"


def register(app: typer.Typer) -> None:
    """Add ``hepanav segment`` to the root app."""
    app.command("segment")(segment)


def segment(
    structure: str = typer.Argument(..., help="tumor, ablation or liver."),
    ct: Path = typer.Option(..., "--ct", help="CT (NIfTI/NRRD/MHA or DICOM folder), HU."),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Mask to write (.nii.gz, .nrrd, .mha), or .dcm for a DICOM SEG on the --ct "
        "series (a DICOM folder).",
    ),
    seed: list[str] = typer.Option(
        [],
        "--seed",
        help="Click inside the structure: X,Y,Z in LPS mm. Repeatable: tumour/zone: a "
        "click inside the region grown from an earlier one refines that lesion, any other "
        "click segments a lesion of its own (the mask is their union, each lesion listed "
        "in MASK.json); a seed left outside the mask is refused.",
    ),
    seed_voxel: list[str] = typer.Option(
        [], "--seed-voxel", help="Click as a voxel index I,J,K (0-based, x,y,z order)."
    ),
    appearance: str = typer.Option(
        "auto", "--appearance", help="Tumour only: hypo, hyper or auto (from the seed)."
    ),
    include: list[str] = typer.Option(
        [],
        "--include",
        help="Extra point X,Y,Z (LPS mm) that belongs to it (repeatable). Tumour/zone: a "
        "part the growing missed (a lobe) is grown from it over the lesion's HU range and "
        "joined when connected to the lesion within --max-radius-mm; refused (exit 2) on "
        "different tissue, not connected, or a leak.",
        rich_help_panel=_EDIT,
    ),
    exclude: list[str] = typer.Option(
        [],
        "--exclude",
        help="Point X,Y,Z (LPS mm) that does not belong: what is closer to it than to every "
        "seed is cut off the final mask (never put back by smoothing or joins).",
        rich_help_panel=_EDIT,
    ),
    max_radius_mm: float | None = typer.Option(
        None,
        "--max-radius-mm",
        help="Leak limit: largest distance from a seed, mm, at most 300 (tumour 40, zone 45, "
        "liver 250).",
        rich_help_panel=_EDIT,
    ),
    no_report: bool = typer.Option(False, "--no-report", help="Skip the HTML report."),
) -> None:
    """Segment a tumour (pre CT), an ablation zone (post CT) or the liver from clicks.

    Writes the mask (0/1, the CT's grid; a DICOM SEG referencing the CT series when
    --out ends in .dcm and --ct is a DICOM folder), MASK.json and MASK.html (slices with the
    contour, volume, seed) beside it. A seed outside the image or body, in air or
    bone, on tissue that does not look like the structure, or a leak past
    --max-radius-mm: one-line error, exit 2, nothing written. An --include point
    outside the grown tumour/zone is joined (what was added, mm^3, in the notes and
    MASK.json) or refused the same way. A mask touching the image border (a lesion or
    liver cut by the scan's edge) is written with a WARNING naming the faces: its volume
    and diameter are lower bounds (MASK.json border_faces/warnings, in red in MASK.html).
    A label map or a 0/1 mask given as --ct, a CT whose values are not HU (normalised
    0..1, an 8-bit display image, raw stored values) and a CT whose axes are more than
    5 degrees off the patient axes are refused. A rerun replaces the whole set
    (a --no-report rerun removes the previous MASK.html).
    """
    from hepanav import DISCLAIMER
    from hepanav.core.errors import InputError
    from hepanav.segmentation.pipeline import STRUCTURES, segment_file

    if structure not in STRUCTURES:
        raise InputError(
            f"unknown structure {structure!r}; use tumor, ablation or liver", "STRUCTURE"
        )
    if appearance not in ("auto", "hypo", "hyper"):
        raise InputError(f"use hypo, hyper or auto, got {appearance!r}", "--appearance")
    result, _ = segment_file(
        structure,
        ct,
        out,
        seeds=seed,
        seed_voxels=seed_voxel,
        include=include,
        exclude=exclude,
        appearance=appearance,
        max_radius_mm=max_radius_mm,
        report=not no_report,
    )
    kind = f" ({result.appearance}dense)" if result.appearance and structure == "tumor" else ""
    at_least = ">= " if result.border_faces else ""  # cut by the image border: lower bounds
    typer.echo(
        f"{structure}{kind}: {at_least}{result.volume_ml:.2f} ml, {at_least}"
        f"{result.equivalent_diameter_mm:.1f} mm sphere-equivalent diameter; "
        f"{result.seconds:.1f} s"
    )
    if len(result.lesions) > 1:
        for n, lesion in enumerate(result.lesions, 1):
            cut = ">= " if lesion.border_faces else ""
            typer.echo(
                f"lesion {n}: {cut}{lesion.volume_ml:.2f} ml, {cut}"
                f"{lesion.equivalent_diameter_mm:.1f} mm "
                f"sphere-equivalent diameter, from {', '.join(lesion.seeds)}"
            )
    for warning in result.warnings:
        typer.echo(f"WARNING: {warning}", err=True)
    typer.echo(f"mask: {out}")
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    if result.report:
        typer.echo(f"report: {out.parent / result.report}")
    typer.echo(DISCLAIMER, err=True)
