"""CLI commands of hepanav.planning: ``hepanav plan`` and ``hepanav verify-placement``."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``plan`` and ``verify-placement`` to the root hepanav app."""

    @app.command("plan")
    def plan_command(
        ct: Path = typer.Option(
            None,
            "--ct",
            help="Planning CT in HU (NIfTI/NRRD/MHA or DICOM folder; or --from-pacs).",
        ),
        tumor: Path = typer.Option(
            ...,
            "--tumor",
            help="Tumour mask, label map, SEG or RTSTRUCT (any grid; the CT must hold all "
            "of it: a mask or RTSTRUCT partly outside the CT is refused, saying how much and "
            "how far beyond which side; a tumour touching the CT's first or last slice is "
            "planned with a WARNING: its extent beyond is unknown).",
        ),
        labels: Path | None = typer.Option(
            None,
            "--labels",
            help="Organ label map, TotalSegmentator v2 ids (resampled if needed), or a "
            "TotalSegmentator output folder (one NIfTI per structure). Without it, "
            "bone, lung/gas, body, liver and large enhancing vessels (portal/hepatic "
            "veins; aorta; vena cava only where it enhances, else a note says it is not "
            "derived) are derived from the CT.",
        ),
        liver_seed: str | None = typer.Option(
            None,
            "--liver-seed",
            help="Without --labels: a click X,Y,Z (LPS mm) in liver parenchyma for the "
            "derived liver (default: found next to the tumour).",
        ),
        label_map: Path | None = typer.Option(
            None, "--label-map", help="Risk map YAML: no-go labels, clearances, trajectory rules."
        ),
        margin: float = typer.Option(5.0, "--margin", help="Safety margin around the tumour, mm."),
        device: str = typer.Option(
            "neuwave-pr-65w-10min", "--device", help="Built-in device name or a device YAML file."
        ),
        out: Path = typer.Option(..., "--out", help="Output folder."),
        tumor_label: str | None = typer.Option(
            None,
            "--tumor-label",
            help="Label(s) or segment/ROI name(s) of the tumour when --tumor is a label map, "
            "DICOM SEG, RTSTRUCT or .seg.nrrd holding several.",
        ),
        mask_threshold: float | None = typer.Option(
            None,
            "--mask-threshold",
            help="Threshold of a non-binary float tumour mask (0.5); in (0, 1) for fractions.",
        ),
        series: str | None = typer.Option(
            None, "--series", help="Series UID or description substring in a --ct DICOM folder."
        ),
        from_pacs: str | None = typer.Option(
            None,
            "--from-pacs",
            help="Fetch this study (Study Instance UID or Accession "
            "Number; KEY/SERIES_UID picks one of several CT series) from the PACS: its CT is "
            "the planning CT and --tumor names an RTSTRUCT ROI or SEG segment of the study.",
            rich_help_panel="DICOM and PACS",
        ),
        dicom_out: Path | None = typer.Option(
            None,
            "--dicom-out",
            help="Also write SEG and SR objects here.",
            rich_help_panel="DICOM and PACS",
        ),
        send: bool = typer.Option(
            False,
            "--send",
            help="Store the SEG and SR objects in the PACS.",
            rich_help_panel="DICOM and PACS",
        ),
    ) -> None:
        """Plan stereotactic multi-needle ablation: plan.json, .mrk.json, report.html."""
        from hepanav.core.atomic import check_output_folder, final_path, output_folder
        from hepanav.core.errors import InputError
        from hepanav.core.paths import check_inputs_outputs
        from hepanav.dicom.hooks import DicomIO
        from hepanav.planning.pipeline import run_plan

        if (ct is None) == (from_pacs is None):
            raise InputError("give either --ct or --from-pacs", "--ct")
        if liver_seed is not None and labels is not None:
            raise InputError(
                "give --labels or --liver-seed (for derived labels), not both", "--liver-seed"
            )
        device_file = device if device.endswith((".yaml", ".yml")) else None
        check_inputs_outputs([ct, tumor, labels, label_map, device_file], [], folders=[out])
        check_output_folder(out)
        dicom = DicomIO.open(from_pacs, dicom_out, send, source=ct)
        if from_pacs:
            ct = dicom.ct_folder
            tumor, tumor_label = dicom.mask_from_study(str(tumor), "tumor", "--tumor")
        # plan.json, the markups, the crops and the report appear together or not at all.
        with output_folder(out, "hepanav plan") as tmp:
            result, written = run_plan(
                ct,
                tumor,
                labels,
                label_map,
                margin,
                device,
                tmp,
                tumor_label=tumor_label,
                mask_threshold=mask_threshold,
                series=series,
                # Also with --labels: groups the label map lacks are derived from the CT.
                derive_labels=_deriver(liver_seed),
            )
        written = [final_path(p, tmp, out) for p in written]
        typer.echo(result.result.message)
        for note in result.result.derivation_notes:
            typer.echo(f"WARNING: {note}")
        for path in written:
            typer.echo(f"wrote {path}")
        for line in dicom.finish(out):
            typer.echo(line)

    @app.command("verify-placement")
    def verify_command(
        plan: Path = typer.Option(..., "--plan", help="plan.json written by `hepanav plan`."),
        control_ct: Path = typer.Option(
            ..., "--control-ct", help="Control CT with the needles, registered to the planning CT."
        ),
        out: Path = typer.Option(..., "--out", help="Output folder."),
        lateral_tolerance: float = typer.Option(
            5.0,
            "--lateral-tolerance",
            help="Tip distance from the planned axis judged OK, mm (0-20].",
        ),
        depth_tolerance: float = typer.Option(
            5.0,
            "--depth-tolerance",
            help="Tip distance from the planned depth judged OK, mm (0-20].",
        ),
        series: str | None = typer.Option(
            None, "--series", help="Series UID or description substring in a --control-ct folder."
        ),
    ) -> None:
        """Find the needles in a control CT; verdict per needle (OK/advance/withdraw/redirect)."""
        from hepanav.core.atomic import check_output_folder, final_path, output_folder
        from hepanav.core.paths import check_inputs_outputs
        from hepanav.planning.pipeline import run_verification

        # --out may not be the plan's folder (it holds plan.json and the crops read here).
        check_inputs_outputs([plan, control_ct], [], folders=[out])
        check_output_folder(out)
        with output_folder(out, "hepanav verify-placement") as tmp:
            result, written = run_verification(
                plan,
                control_ct,
                tmp,
                lateral_tolerance_mm=lateral_tolerance,
                depth_tolerance_mm=depth_tolerance,
                series=series,
            )
        written = [final_path(p, tmp, out) for p in written]
        typer.echo(result.message)
        for path in written:
            typer.echo(f"wrote {path}")


def _deriver(liver_seed: str | None):
    """``derive_labels(ct, tumour)`` for ``run_plan``: the structures derived from the CT
    (hepanav.segmentation.anatomy; the CLI composes the two capabilities)."""

    def derive(ct, tumor, liver=None):
        from hepanav.segmentation.anatomy import derive_planning_labels
        from hepanav.segmentation.seeds import make_seeds

        seeds = make_seeds(ct, [liver_seed], None, "--liver-seed") if liver_seed else []
        return derive_planning_labels(ct, tumor, seeds[0] if seeds else None, liver=liver)

    from hepanav.segmentation.anatomy import NAMES

    derive.provides = frozenset(NAMES)  # the ids it can write (run_plan skips it otherwise)
    return derive
