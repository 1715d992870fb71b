"""CLI commands of hepanav.phantoms (registered by hepanav.cli)."""

from __future__ import annotations

from pathlib import Path

import typer


def phantom(
    out: Path = typer.Option(..., "--out", help="Folder to write the case into."),
    seed: int = typer.Option(
        0, "--seed", help="Seed of anatomy, lesions, motion and noise (0 to 2^32-1)."
    ),
    base_ct: Path | None = typer.Option(
        None, "--base-ct", help="Real CT (file or DICOM folder) to implant the lesions into."
    ),
    base_liver: Path | None = typer.Option(
        None, "--base-liver", help="Liver mask or label map of --base-ct (liver = label 5)."
    ),
    liver_label: int | None = typer.Option(
        None, "--liver-label", help="Liver label of a multi-label --base-liver (1-65535; 5)."
    ),
    spacing: float = typer.Option(1.5, "--spacing", help="Isotropic voxel size, mm (procedural)."),
    size: tuple[int, int, int] | None = typer.Option(
        None, "--size", help="Grid voxels x y z (procedural; default: the upper abdomen)."
    ),
    tumor_radius: float = typer.Option(15.0, "--tumor-radius", help="Tumour mean radius, mm."),
    margin: float = typer.Option(7.0, "--margin", help="Zone semi-axes minus tumour's, mm."),
    offset: tuple[float, float, float] = typer.Option(
        (0.0, 0.0, 0.0), "--offset", help="Zone centre offset from the tumour (LPS mm)."
    ),
    max_displacement: float = typer.Option(
        10.0, "--max-displacement", help="Largest respiratory displacement, mm (<= 25)."
    ),
    noise: float = typer.Option(12.0, "--noise", help="Image noise SD, HU."),
) -> None:
    """Write a synthetic ablation case (pre/post CT, masks, landmarks) with its ground truth."""
    from hepanav.core.atomic import check_output_folder, output_folder
    from hepanav.core.paths import check_inputs_outputs
    from hepanav.core.progress import progress
    from hepanav.core.report import format_margin
    from hepanav.phantoms.ablation_case import build_case, case_parameters, write_case

    check_inputs_outputs([base_ct, base_liver], [], folders=[out])
    check_output_folder(out)

    params = case_parameters(
        spacing_mm=(spacing, spacing, spacing),
        size=size,
        noise_hu=noise,
        tumor={"radius_mm": tumor_radius},
        zone={"margin_mm": margin, "offset_lps": offset},
        deformation={"max_displacement_mm": max_displacement},
    )
    with progress() as bar:
        task = bar.add_task("Generating ablation case", total=2)
        case = build_case(seed, params, base_ct, base_liver, liver_label=liver_label)
        bar.update(task, advance=1, description="Writing case")
        with output_folder(out, "hepanav phantom") as tmp:  # the whole case, or nothing
            desc = write_case(case, tmp, report=True)
        bar.update(task, advance=1, description="Done")
    t = desc.true_margins
    typer.echo(
        f"case written to {out} ({desc.kind}): true MAM {format_margin(t.min_margin_mm, 2)} mm "
        f"({t.category}), tumour {t.tumor_volume_ml:.1f} ml, zone {t.ablation_volume_ml:.1f} ml"
    )
    typer.echo(f"report: {out / desc.report}")


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the root hepanav app."""
    app.command("phantom")(phantom)
