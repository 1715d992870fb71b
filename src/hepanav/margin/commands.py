"""CLI commands of hepanav.margin (registered by hepanav.cli)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import typer

_PAIR = "pre/post pair"
_ONE = "masks in one space"
_DICOM = "DICOM and PACS"
_MASKS = "mask files (label maps, DICOM SEG/RTSTRUCT, Slicer .seg.nrrd)"


def register(app: typer.Typer) -> None:
    """Add ``hepanav margin`` to the root app."""
    app.command("margin")(margin)


def margin(
    tumor: Path | None = typer.Option(
        None,
        "--tumor",
        help="Tumour mask (pre space in the pair mode); with --from-pacs an ROI or segment name.",
    ),
    ablation: Path | None = typer.Option(
        None, "--ablation", help="Ablation-zone mask (post space in the pair mode)."
    ),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    tumor_seed: list[str] = typer.Option(
        [],
        "--tumor-seed",
        help="Instead of --tumor: click X,Y,Z (LPS mm) in the tumour on --pre; segmented "
        "automatically. Repeatable: a click inside the region grown from an earlier one "
        "refines that lesion, any other click segments a lesion of its own; the tumour is "
        "their union, measured as a whole against the (united) zone.",
        rich_help_panel=_PAIR,
    ),
    ablation_seed: list[str] = typer.Option(
        [],
        "--ablation-seed",
        help="Instead of --ablation: click X,Y,Z (LPS mm) in the zone on --post. "
        "Repeatable: a zone per click outside the earlier zones, united.",
        rich_help_panel=_PAIR,
    ),
    liver: Path | None = typer.Option(
        None,
        "--liver",
        help="Liver mask in the masks' space, holding the tumour (subcapsular exclusion).",
        rich_help_panel=_ONE,
    ),
    ct: Path | None = typer.Option(
        None,
        "--ct",
        help="CT in the masks' space, drawn behind the outlines in the report (file or DICOM "
        "folder).",
        rich_help_panel=_ONE,
    ),
    pre: Path | None = typer.Option(
        None, "--pre", help="Pre-procedure CT (file or DICOM folder).", rich_help_panel=_PAIR
    ),
    post: Path | None = typer.Option(
        None, "--post", help="Post-ablation CT (file or DICOM folder).", rich_help_panel=_PAIR
    ),
    liver_pre: Path | None = typer.Option(
        None,
        "--liver-pre",
        help="Liver mask of the pre CT (optional, with --liver-post; without both, a "
        "region around the ablation zone drives the registration); with --from-pacs-post an "
        "ROI or segment name.",
        rich_help_panel=_PAIR,
    ),
    liver_post: Path | None = typer.Option(
        None,
        "--liver-post",
        help="Liver mask of the post CT (optional, with --liver-pre).",
        rich_help_panel=_PAIR,
    ),
    landmarks_pre: Path | None = typer.Option(
        None,
        "--landmarks-pre",
        help="Landmarks in the pre CT: CSV id,x,y,z (LPS mm), Slicer .fcsv or .mrk.json.",
        rich_help_panel=_PAIR,
    ),
    landmarks_post: Path | None = typer.Option(
        None, "--landmarks-post", help="Same landmark ids in the post CT.", rich_help_panel=_PAIR
    ),
    subcapsular: bool = typer.Option(
        False, "--subcapsular", help="Leave out tumour surface near the liver capsule."
    ),
    tumor_label: str | None = typer.Option(
        None,
        "--tumor-label",
        help="Label(s) or segment/ROI name(s) of the tumour in a label map, SEG, RTSTRUCT or "
        ".seg.nrrd (e.g. 1 or 'GTV'); needed when the file holds several.",
        rich_help_panel=_MASKS,
    ),
    ablation_label: str | None = typer.Option(
        None,
        "--ablation-label",
        help="Label(s) or name(s) of the ablation zone, e.g. 1,2 when the tumour was painted "
        "over the zone.",
        rich_help_panel=_MASKS,
    ),
    liver_label: str | None = typer.Option(
        None, "--liver-label", help="Label(s) or name(s) of the liver.", rich_help_panel=_MASKS
    ),
    mask_threshold: float | None = typer.Option(
        None,
        "--mask-threshold",
        help="Threshold for non-binary float masks (fractions, probabilities); default 0.5; "
        "in (0, 1) for fractions, at most 65535.",
        rich_help_panel=_MASKS,
    ),
    pre_series: str | None = typer.Option(
        None,
        "--pre-series",
        help="Series UID or description substring when the --pre folder holds several series.",
        rich_help_panel=_PAIR,
    ),
    post_series: str | None = typer.Option(
        None,
        "--post-series",
        help="Series UID or description substring when the --post folder holds several series.",
        rich_help_panel=_PAIR,
    ),
    subcapsular_mm: float | None = typer.Option(
        None,
        "--subcapsular-mm",
        help="With --subcapsular: distance from the capsule left out, mm (default 5, QAM).",
    ),
    from_pacs: str | None = typer.Option(
        None,
        "--from-pacs",
        help="Fetch this study (Study Instance UID or Accession Number; KEY/SERIES_UID picks "
        "one of several CT series) from the PACS; --tumor/--ablation then name an RTSTRUCT "
        "ROI or SEG segment of the study, read on its CT. With --from-pacs-post it is the "
        "pre-procedure study (CT + tumour object).",
        rich_help_panel=_DICOM,
    ),
    from_pacs_post: str | None = typer.Option(
        None,
        "--from-pacs-post",
        help="Pre/post pair from the PACS: the post-ablation study (KEY or "
        "KEY/CT_SERIES_UID) whose CT is registered to the --from-pacs CT; --tumor names the "
        "tumour in the pre study, --ablation the zone in this one, optional "
        "--liver-pre/--liver-post the livers. --send stores the results in this study.",
        rich_help_panel=_DICOM,
    ),
    dicom_out: Path | None = typer.Option(
        None,
        "--dicom-out",
        help="Also write SEG, SR and SC objects here.",
        rich_help_panel=_DICOM,
    ),
    send: bool = typer.Option(
        False,
        "--send",
        help="Store the SEG, SR and SC objects in the PACS.",
        rich_help_panel=_DICOM,
    ),
) -> None:
    """Ablation margin: signed tumour-to-zone surface distances, in mm, from masks.

    Either masks already in one space (--tumor --ablation [--liver] [--ct]), or a pre/post
    CT pair registered rigid + deformable (--pre --post --tumor --ablation
    [--liver-pre --liver-post] [--landmarks-pre --landmarks-post]); without liver
    masks a region around the ablation zone drives the registration. In the pair
    mode --tumor-seed / --ablation-seed (a click, LPS mm) replace the masks: they
    are segmented into OUT/segmentation/. From a PACS: --from-pacs STUDY for
    masks in one space, or --from-pacs PRE_STUDY --from-pacs-post POST_STUDY for the
    pair, with --tumor/--ablation naming ROIs or segments. Writes OUT/margin.json,
    OUT/report.html and OUT/margin_map.nii.gz. A --pre, --post or --ct whose values are
    not HU (a mask, a label map, normalised 0..1, an 8-bit display image, raw stored
    values) is refused.
    """

    from hepanav import DISCLAIMER
    from hepanav.core.atomic import check_output_folder, final_path, output_folder
    from hepanav.core.errors import InputError
    from hepanav.core.paths import check_inputs_outputs
    from hepanav.core.progress import progress
    from hepanav.dicom.hooks import DicomIO
    from hepanav.imaging.schema import note_lines
    from hepanav.margin.pipeline import STEPS, MarginInputs, run_margin
    from hepanav.margin.subcapsular import DEFAULT_SUBCAPSULAR_MM

    if subcapsular_mm is not None and not subcapsular:
        # Silently measuring without the exclusion the user asked a distance for would
        # report margins the user did not mean.
        raise InputError("only applies with --subcapsular", "--subcapsular-mm")
    if subcapsular and subcapsular_mm is None:
        subcapsular_mm = DEFAULT_SUBCAPSULAR_MM

    if tumor is None and not tumor_seed:
        raise InputError("give --tumor MASK or --tumor-seed X,Y,Z (with --pre)", "--tumor")
    if ablation is None and not ablation_seed:
        raise InputError(
            "give --ablation MASK or --ablation-seed X,Y,Z (with --post)", "--ablation"
        )
    # Masks from seeds (hepanav.segmentation): segmented before the margin pipeline,
    # written to OUT/segmentation/ with their own reports.
    seg_parent = None
    from_seeds: dict[str, Path] = {}
    # Options every MarginInputs below shares (checked before seeds and after).
    shared = dict(
        subcapsular_mm=subcapsular_mm,
        ct=ct,
        tumor_label=tumor_label,
        ablation_label=ablation_label,
        liver_label=liver_label,
        mask_threshold=mask_threshold,
        pre_series=pre_series,
        post_series=post_series,
    )
    if tumor_seed or ablation_seed:
        from hepanav.segmentation.pipeline import masks_for_margin

        if from_pacs:
            raise InputError("seeds need --pre/--post files, not --from-pacs", "--tumor-seed")
        # Options and the output folder are checked before any segmentation runs or
        # writes a file (docs/reliability.md, "Refused before any work starts").
        options = dict(
            liver=liver,
            pre=pre,
            post=post,
            liver_pre=liver_pre,
            liver_post=liver_post,
            landmarks_pre=landmarks_pre,
            landmarks_post=landmarks_post,
        )
        MarginInputs(
            tumor=tumor or Path("--tumor-seed"),
            ablation=ablation or Path("--ablation-seed"),
            **shared,
            **options,
        ).check()
        check_inputs_outputs([tumor, ablation, ct, *options.values()], [], folders=[out])
        check_output_folder(out)
        # The DICOM options (--dicom-out/--send need --post as a DICOM series) too.
        DicomIO.open(
            None, dicom_out, send, source=post, pre_source=pre, from_pacs_post=from_pacs_post
        )
        # Segmented in a temporary folder (not inside OUT: the output folder is written as
        # one set and replaced whole; not beside it: nothing is created before the set is
        # written); copied into the set as OUT/segmentation/ below.
        seg_parent = Path(tempfile.mkdtemp(prefix="hepanav-margin-seg-"))
        # Removed when the command ends, whatever happens (the masks are in the set then).
        atexit.register(shutil.rmtree, seg_parent, ignore_errors=True)
        try:
            tumor, ablation = masks_for_margin(
                seg_parent, pre, post, tumor, ablation, tumor_seed, ablation_seed
            )
        except BaseException:
            shutil.rmtree(seg_parent, ignore_errors=True)  # a refused seed leaves nothing
            raise
        # Where the masks end up (the temporary folder is gone when the command ends).
        from_seeds = {
            role: out / "segmentation" / path.name
            for role, path, seeds in (("tumor", tumor, tumor_seed),
                                      ("ablation", ablation, ablation_seed))
            if seeds
        }  # fmt: skip
    pacs_pair = from_pacs_post is not None
    if from_pacs and not pacs_pair:
        DicomIO.refuse_pair_mode(pre, post, liver_pre, liver_post)
    if pacs_pair:
        DicomIO.refuse_with_pair_from_pacs(
            **{
                "--pre": pre,
                "--post": post,
                "--pre-series": pre_series,
                "--post-series": post_series,
                "--tumor-label": tumor_label,
                "--ablation-label": ablation_label,
                "--liver-label": liver_label,
            }
        )
    # The CTs of a PACS pair are known only after the fetch; a stand-in path lets every
    # option check run before any network work.
    fetched_later = Path("<from PACS>") if pacs_pair else None
    inputs = MarginInputs(
        tumor=tumor,
        ablation=ablation,
        liver=liver,
        pre=fetched_later or pre,
        post=fetched_later or post,
        liver_pre=liver_pre,
        liver_post=liver_post,
        landmarks_pre=landmarks_pre,
        landmarks_post=landmarks_post,
        **shared,
        from_seeds=from_seeds or None,
    )
    inputs.check()
    check_inputs_outputs(
        [
            tumor,
            ablation,
            liver,
            ct,
            pre,
            post,
            liver_pre,
            liver_post,
            landmarks_pre,
            landmarks_post,
        ],  # fmt: skip
        [],
        folders=[out],
    )
    check_output_folder(out)
    dicom = DicomIO.open(
        from_pacs, dicom_out, send, source=post, pre_source=pre, from_pacs_post=from_pacs_post
    )
    if pacs_pair:
        found = {
            "tumor": dicom.mask_from_study(str(tumor), "tumor", "--tumor", side="pre"),
            "ablation": dicom.mask_from_study(str(ablation), "ablation", "--ablation"),
        }
        if liver_pre is not None:
            found["liver_pre"] = dicom.mask_from_study(
                str(liver_pre), "liver", "--liver-pre", side="pre"
            )
            found["liver_post"] = dicom.mask_from_study(str(liver_post), "liver", "--liver-post")
        inputs = replace(
            inputs,
            pre=dicom.pre_source,
            post=dicom.ct_folder,
            tumor=found["tumor"][0],
            tumor_label=found["tumor"][1],
            ablation=found["ablation"][0],
            ablation_label=found["ablation"][1],
            liver_pre=found.get("liver_pre", (None,))[0],
            liver_post=found.get("liver_post", (None,))[0],
        )
    elif from_pacs:
        tumor, tumor_label = dicom.mask_from_study(str(tumor), "tumor", "--tumor")
        ablation, ablation_label = dicom.mask_from_study(str(ablation), "ablation", "--ablation")
        inputs = replace(
            inputs,
            tumor=tumor,
            tumor_label=tumor_label,
            ablation=ablation,
            ablation_label=ablation_label,
        )
    labels = {
        "read": "Reading images",
        "register": "Registering pre -> post",
        "measure": "Measuring margins",
        "write": "Writing results",
    }
    # The bar is for people at a terminal; logs and pipes get the result lines only.
    with progress() as bar:
        task = bar.add_task(labels["read"], total=len(STEPS))
        seen: list[str] = []

        def step(name: str) -> None:
            if seen:
                bar.advance(task)
            seen.append(name)
            bar.update(task, description=labels[name])

        # One output set: margin.json, margin_map.nii.gz and report.html appear together.
        with output_folder(out, "hepanav margin") as tmp:
            run = run_margin(inputs, tmp, step=step)
            if seg_parent is not None:
                shutil.copytree(seg_parent / "segmentation", tmp / "segmentation")
        run.paths = {k: final_path(v, tmp, out) for k, v in run.paths.items()}
        bar.update(task, completed=len(STEPS), description="Done")
    typer.echo(result_line(run.result))
    u = run.result.uncertainty
    if u.interval_withheld_reason:
        typer.echo(f"no interval: {u.interval_withheld_reason}")
    if not u.decisive:
        typer.echo(f"not decisive: {u.rule}")
    for warning in run.result.plausibility:
        typer.echo(f"WARNING: {warning}")
    for warning in run.result.warnings:
        typer.echo(f"warning: {warning}")
    for line in note_lines(run.result.inputs):
        typer.echo(line)
    typer.echo(f"report: {run.paths['report']}")
    for line in dicom.finish(out):
        typer.echo(line)
    typer.echo(DISCLAIMER, err=True)


def result_line(r) -> str:
    """The terminal summary of a ``MarginResult``: MAM (± u only where u bounds it), category,
    6 mm shell, residual tumour (when any) and short regions. Numbers as in the report
    (no "-0.0"; a negative MAM never "0.0"). The MAM part is
    :func:`hepanav.margin.verdict.mam_text`, as on the web; a zone that is the tumour
    itself (``zone_is_tumor``) says IMPLAUSIBLE beside the category."""
    from hepanav.core.report import format_amount, format_percent
    from hepanav.margin.verdict import mam_text, not_decisive_why

    u = r.uncertainty
    mam = mam_text(r)
    flag = "" if u.decisive else ", NOT decisive"
    if getattr(r, "zone_is_tumor", False):
        flag = f", NOT decisive: {not_decisive_why(r)}"
    residual = ""
    volume = getattr(r, "residual_volume_ml", None)
    if volume is None:  # a margin.json written before residual_volume_ml
        volume = sum(region.volume_ml for region in r.residual_regions)
    if r.residual_regions or volume > 0:
        bound = "at least " if getattr(r, "residual_volume_is_lower_bound", False) else ""
        whole = [
            f"lesion {g.lesion}"
            for g in r.residual_regions
            if str(g.direction).startswith("whole lesion") and g.lesion is not None
        ]
        untreated = f" ({', '.join(whole)} wholly outside: untreated)" if whole else ""
        residual = (
            f"residual tumour: {len(r.residual_regions)} region(s){untreated}, "
            f"{bound}{format_amount(float(volume), 2)} ml outside the zone; "
        )
    return (
        f"{mam} ({r.category}{flag}); 6 mm shell covered "
        f"{format_percent(r.shell_coverage_6mm, 0)}%; {residual}"
        f"{len(r.short_regions)} short region(s)"
    )
