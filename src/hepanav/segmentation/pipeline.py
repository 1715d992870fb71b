"""``hepanav segment`` end to end: read the CT, check seeds, segment, write mask + JSON + report."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hepanav.core.atomic import output_files, write_json
from hepanav.core.errors import InputError
from hepanav.core.limits import check_number
from hepanav.core.paths import check_inputs_outputs, recorded_path
from hepanav.imaging import load_ct, write_image
from hepanav.imaging.border import border_faces, border_warning
from hepanav.segmentation.result import Segmentation
from hepanav.segmentation.schema import (
    IncludeRecord,
    LesionRecord,
    SeedRecord,
    SegmentationResult,
)
from hepanav.segmentation.seeds import Seed, make_seeds

STRUCTURES = ("tumor", "ablation", "liver")
MASK_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha")
SEG_SUFFIX = ".dcm"  # --out MASK.dcm: a DICOM SEG on the source series
# DICOM SEG segment of each structure: (Segment Label, category code, type code) of
# hepanav.imaging.dicomout.codes (SCT, or the private 99HEPANAV ablation-zone code).
SEG_SEGMENTS = {
    "tumor": ("Tumour", "morphologically_abnormal_structure", "neoplasm"),
    "ablation": ("Ablation zone", "morphologically_abnormal_structure", "ablation_zone"),
    "liver": ("Liver", "tissue", "liver"),
}


# Largest --max-radius-mm: 300 mm. The liver default is 250 mm and an adult liver spans at
# most about 25-30 cm, so nothing HepaNav segments lies farther from a seed; the region
# of interest and the rays cast from each seed grow with this radius.
MAX_RADIUS_MM = 300.0


def run_segmentation(
    structure: str,
    ct,
    seeds: list[Seed],
    *,
    appearance: str = "auto",
    max_radius_mm: float | None = None,
    include: list[Seed] | None = None,
    exclude: list[Seed] | None = None,
) -> Segmentation:
    """Dispatch to the segmenter of ``structure`` ("tumor", "ablation", "liver").

    ``max_radius_mm`` (``--max-radius-mm``), when given, must be finite and in
    (0, ``MAX_RADIUS_MM`` = 300] mm, checked before any voxel is touched.

    Raises
    ------
    InputError
        No seed, a bad option, or the segmenter's refusals (seed off the structure, leak).
    """
    if not seeds:
        raise InputError("give at least one seed (--seed X,Y,Z or --seed-voxel I,J,K)", "--seed")
    check_number(max_radius_mm, "--max-radius-mm", 0.0, MAX_RADIUS_MM, lo_open=True, unit="mm")
    kw = {"include": include, "exclude": exclude}
    if max_radius_mm is not None:
        kw["max_radius_mm"] = max_radius_mm
    if structure not in STRUCTURES:
        raise InputError(
            f"unknown structure {structure!r}; use one of {', '.join(STRUCTURES)}", "structure"
        )
    if structure != "tumor" and appearance != "auto":
        raise InputError("only applies to tumours", "--appearance")
    limit = max_radius_mm if max_radius_mm is not None else _default_radius_mm(structure)
    _check_include_distance(seeds, include or [], limit, structure)
    if structure == "liver":
        from hepanav.segmentation.liver import segment_liver

        seg = segment_liver(ct, seeds, **kw)
        _check_included(ct, seg, include or [])
        return seg
    from hepanav.segmentation.include import join_includes
    from hepanav.segmentation.multi import segment_lesions

    if structure == "tumor":
        from hepanav.segmentation.tumor import segment_tumor as segment_one

        kw["appearance"] = appearance
    else:
        from hepanav.segmentation.ablation import segment_ablation as segment_one

    def one_lesion(lesion_seeds: list[Seed], inc: list[Seed], exc: list[Seed]) -> Segmentation:
        seg = segment_one(ct, lesion_seeds, **{**kw, "include": inc, "exclude": exc})
        if inc:
            join_includes(ct, seg, inc)  # each kept, joined (lobe grown from it) or refused
        return seg

    # One lesion per click outside the earlier lesions, united; exclude cut enforced.
    return segment_lesions(ct, seeds, include or [], exclude or [], one_lesion)


_NAMES = {"tumor": "tumour", "ablation": "ablation zone", "liver": "liver"}


def _default_radius_mm(structure: str) -> float:
    from hepanav.segmentation import ablation, liver, tumor

    module = {"tumor": tumor, "ablation": ablation, "liver": liver}[structure]
    return float(module.DEFAULT_MAX_RADIUS_MM)


def _check_include_distance(
    seeds: list[Seed], include: list[Seed], limit_mm: float, structure: str
) -> None:
    """Refuse an include point farther than the leak limit from every seed: the
    segmenter never grows there, so it could not be joined (before: silently dropped)."""
    for p in include:
        d = min(float(np.linalg.norm(np.subtract(p.lps, s.lps))) for s in seeds)
        if d > limit_mm:
            raise InputError(
                f"the point is {d:.1f} mm from the nearest seed, beyond --max-radius-mm "
                f"{limit_mm:g} (the {_NAMES[structure]} may not reach it); click it as a "
                "--seed of its own or raise --max-radius-mm",
                p.label,
            )


def _check_included(ct, seg: Segmentation, include: list[Seed]) -> None:
    """Every include point must lie in the final mask (the region grown from it joined
    to the seed's): else ``InputError`` naming the point and why (the HU around it
    against the HU range grown, or not connected); a note lists those joined."""
    if not include:
        return
    from hepanav.segmentation.seeds import local_hu

    mask = sitk.GetArrayViewFromImage(seg.mask)
    what = _NAMES[seg.structure]
    for p in include:
        i, j, k = p.index
        if mask[k, j, i]:
            continue
        hu, _ = local_hu(ct, p)
        window = seg.window_hu
        if window is not None and not window[0] <= hu <= window[1]:
            why = (
                f"{hu:.0f} HU around it, outside the {window[0]:.0f}-{window[1]:.0f} HU "
                f"the {what} grew over: different tissue"
            )
        else:
            why = f"{hu:.0f} HU around it, but not connected to the {what} grown from the seed"
        raise InputError(
            f"the point could not be joined to the {what} ({why}); move it onto the "
            f"{what}, click it as a --seed of its own, or leave it out",
            p.label,
        )
    seg.notes.append(
        f"{len(include)} include point{'s' if len(include) > 1 else ''} "
        f"({'; '.join(p.label for p in include)}) {'lie' if len(include) > 1 else 'lies'} "
        "in the mask (grown from, as the seeds are)"
    )


def _record(seed: Seed) -> SeedRecord:
    return SeedRecord(given_as=seed.label, lps_mm=seed.lps, voxel=seed.index)


def segment_file(
    structure: str,
    ct_path: str | Path,
    out: str | Path,
    *,
    seeds: list[str] | None = None,
    seed_voxels: list[str] | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    appearance: str = "auto",
    max_radius_mm: float | None = None,
    report: bool = True,
) -> tuple[SegmentationResult, Segmentation]:
    """Segment ``structure`` on the CT file and write ``out`` (mask), ``.json`` and ``.html``.

    The JSON and HTML go beside the mask (``<stem>.json``, ``<stem>.html``). Nothing
    is written when any check fails.

    Raises
    ------
    InputError
        Unreadable CT, malformed or misplaced seed, a structure that does not look
        right at the seed, a leak, an unsupported output suffix, ``max_radius_mm`` not
        finite or outside (0, 300] mm (checked before any file is read).
    """
    check_number(max_radius_mm, "--max-radius-mm", 0.0, MAX_RADIUS_MM, lo_open=True, unit="mm")
    out = Path(out)
    _check_suffix(out)
    # The mask, its JSON and its report may not overwrite the CT (segment --out ct.nii.gz).
    check_inputs_outputs(
        [ct_path],
        [
            out,
            out.parent / f"{_stem(out)}.json",
            out.parent / f"{_stem(out)}.html",
            fraction_path(out),
        ],
    )
    source = _seg_source(ct_path, out) if is_seg_output(out) else None
    ct, record = load_ct(ct_path, "CT")
    ct_notes = list(record.notes)  # what the reader dropped or regularised, and why
    if source is not None:
        source.check_grid(ct, ct_path)
    result, seg = segment_image(
        structure,
        ct,
        ct_path,
        out,
        seeds=seeds,
        seed_voxels=seed_voxels,
        include=include,
        exclude=exclude,
        appearance=appearance,
        max_radius_mm=max_radius_mm,
        report=report,
    )
    # Slices the reader dropped (and why) and, for a SEG, identifiers recovered from an
    # anonymised series: said, not hidden.
    for note in ct_notes + (source.notes if source is not None else []):
        if note not in result.notes:
            result.notes.append(note)
    write_outputs(result, seg, ct, out, source=source)
    return result, seg


def is_seg_output(out: Path) -> bool:
    """True when ``out`` asks for a DICOM SEG (``.dcm``)."""
    return out.name.lower().endswith(SEG_SUFFIX)


def _check_suffix(out: Path) -> None:
    if not out.name.lower().endswith((*MASK_SUFFIXES, SEG_SUFFIX)):
        raise InputError(
            f"mask file must end in {', '.join(MASK_SUFFIXES)} (NIfTI, NRRD, MHA) or "
            f"{SEG_SUFFIX} (DICOM SEG)",
            out,
        )


def _seg_source(ct_path: str | Path, out: Path):
    """The CT's DICOM series a SEG output refers to; refuses a CT that is not one."""
    from hepanav.imaging.dicomout import read_source_series

    if not Path(ct_path).is_dir():
        raise InputError(
            f"a DICOM SEG ({SEG_SUFFIX}) needs the CT as a DICOM series folder (--ct is "
            f"{Path(ct_path).name}); write .nii.gz instead",
            out,
        )
    return read_source_series(ct_path)


def write_seg(seg: Segmentation, source, out: Path) -> Path:
    """Write the mask as a binary DICOM SEG (one segment) on ``source``, as ``out``."""
    from hepanav.imaging.dicomout import Segment, build_seg, code, write_dataset

    label, category, kind = SEG_SEGMENTS[seg.structure]
    dataset, _ = build_seg(
        source,
        [Segment(label, seg.mask, code(category), code(kind))],
        series_description=f"HepaNav {label.lower()} from a click",
    )
    return write_dataset(dataset, out.parent, out.name[: -len(SEG_SUFFIX)])


def _stem(out: Path) -> str:
    return out.name[: -len(".nii.gz")] if out.name.lower().endswith(".nii.gz") else out.stem


def fraction_path(mask: Path) -> Path:
    """Where a tumour or zone mask's edge fractions are written: ``<stem>.fraction.nii.gz``
    beside it (float32 0..1 on a box of the CT grid; see
    :mod:`hepanav.segmentation.fraction`). ``hepanav margin`` places the surface of a
    mask written by ``hepanav segment`` from them (docs/segmentation.md)."""
    mask = Path(mask)
    return mask.parent / f"{_stem(mask)}.fraction.nii.gz"


def segment_image(
    structure: str,
    ct,
    ct_path: str | Path,
    out: Path,
    *,
    seeds: list[str] | None = None,
    seed_voxels: list[str] | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    appearance: str = "auto",
    max_radius_mm: float | None = None,
    report: bool = True,
    seed_option: str = "--seed",
) -> tuple[SegmentationResult, Segmentation]:
    """Check the seeds (syntax, inside the image) and where they fall, and segment in
    memory (nothing written); ``out`` names the mask to be. ``ct`` is read by
    :func:`hepanav.imaging.load_ct`, which has checked its values
    (:func:`hepanav.imaging.ctcheck.require_hu_ct`: finite, not a mask or label map, HU)."""
    seed_list = make_seeds(ct, seeds, seed_voxels, seed_option)
    inc = make_seeds(ct, include, None, "--include")
    exc = make_seeds(ct, exclude, None, "--exclude")
    if not seed_list:
        raise InputError("give at least one seed (--seed X,Y,Z or --seed-voxel I,J,K)", seed_option)
    from hepanav.segmentation.body import body_mask, inside_body

    body = body_mask(ct, source=str(ct_path))  # refuses an oblique CT, naming it
    for s in seed_list + inc:
        if not inside_body(body, s.index):
            raise InputError(_outside_body_reason(ct, s), s.describe())
    t0 = time.perf_counter()
    seg = run_segmentation(
        structure,
        ct,
        seed_list,
        appearance=appearance,
        max_radius_mm=max_radius_mm,
        include=inc,
        exclude=exc,
    )
    seconds = time.perf_counter() - t0
    stem = _stem(out)
    volume = seg.volume_ml()
    faces = border_faces(seg.mask)
    result = SegmentationResult(
        structure=seg.structure,
        # Never an absolute path (it may name a patient's folder): the CT relative to the
        # working folder or by name and hash, the mask and report by their names beside it.
        ct=recorded_path(ct_path),
        mask=out.name,
        report=f"{stem}.html" if report else None,
        method=seg.method,
        appearance=seg.appearance,
        seeds=[_record(s) for s in seg.seeds],
        include=[_record(s) for s in seg.include],
        exclude=[_record(s) for s in seg.exclude],
        lesions=[LesionRecord(**r) for r in seg.lesions],
        include_outcomes=[
            IncludeRecord(
                given_as=o.label, lps_mm=o.lps, outcome=o.outcome, joined_mm3=o.joined_mm3
            )
            for o in seg.include_outcomes
        ],
        lesion_hu=seg.lesion_hu,
        parenchyma_hu=seg.parenchyma_hu,
        window_hu=seg.window_hu,
        max_radius_mm=seg.max_radius_mm,
        volume_ml=volume,
        equivalent_diameter_mm=float(2 * (3 * volume * 1000 / (4 * np.pi)) ** (1 / 3)),
        seconds=seconds,
        notes=seg.notes,
        border_faces=faces,
        warnings=_border_warnings(_NAMES[seg.structure], faces, seg.lesions),
    )
    return result, seg


def _border_warnings(what: str, faces: list[str], lesions: list[dict]) -> list[str]:
    """The border warning: of the mask (one lesion) or, when there are several, of each
    lesion cut by the image border, named (its number and first seed)."""
    if not faces:
        return []
    if len(lesions) < 2:
        return [border_warning(what, faces)]
    return [
        border_warning(
            f"{what} lesion {n} of {len(lesions)} (from {x['seeds'][0]})", x["border_faces"]
        )
        + "; so are the total volume and diameter"
        for n, x in enumerate(lesions, 1)
        if x["border_faces"]
    ]


def write_outputs(
    result: SegmentationResult, seg: Segmentation, ct, out: Path, source=None
) -> list[Path]:
    """Write the mask ``out`` (a DICOM SEG on ``source`` when the name ends in .dcm), its
    JSON, (when ``result.report``) its HTML report and (tumour and zone as NIfTI/NRRD/MHA)
    its edge fractions (:func:`fraction_path`) beside it, as one set; return paths."""
    out = Path(out)
    if is_seg_output(out) and source is None:
        raise InputError("a DICOM SEG needs the CT's DICOM series", out)
    targets = [out, out.parent / f"{_stem(out)}.json"]
    if result.report:
        targets.append(out.parent / result.report)
    fraction = None if is_seg_output(out) else seg.fraction
    if fraction is not None:
        targets.append(fraction_path(out))
    # A previous run's members this set has none of (its report, its edge fractions)
    # go when the new set is in place: never a stale report beside a new mask.
    stale = [
        p
        for p in (out.parent / f"{_stem(out)}.html", fraction_path(out))
        if p not in targets and p != out
    ]
    # One set: a full disk after the mask must not leave a mask without its JSON.
    with output_files(targets, stale) as tmp:
        if is_seg_output(out):
            write_seg(seg, source, tmp[0])
        else:
            write_image(seg.mask, tmp[0])
        write_json(tmp[1], result)
        if result.report:
            from hepanav.segmentation.report import write_report

            write_report(result, seg, ct, tmp[2])
        if fraction is not None:
            write_image(fraction, tmp[-1])
    return targets


def lesions_written(mask: Path) -> list[dict]:
    """The ``lesions`` of the JSON ``hepanav segment`` wrote beside ``mask`` (seeds as
    given, volume in ml); empty when there is none or it cannot be read."""
    import json

    path = Path(mask).parent / f"{_stem(Path(mask))}.json"
    try:
        return list(json.loads(path.read_text(encoding="utf-8")).get("lesions") or [])
    except (OSError, ValueError, AttributeError):
        return []


def masks_for_margin(
    out: Path,
    pre: Path | None,
    post: Path | None,
    tumor: Path | None,
    ablation: Path | None,
    tumor_seeds: list[str],
    ablation_seeds: list[str],
) -> tuple[Path | None, Path | None]:
    """Segment the tumour (pre CT) and/or zone (post CT) from seeds for ``hepanav margin``.

    Both are segmented in memory before anything is written, into
    ``out/segmentation/{tumor,ablation}.nii.gz`` (+ JSON and report each). Returns
    the (possibly new) tumour and zone mask paths.

    Raises
    ------
    InputError
        A mask and a seed for the same structure, a seed without its CT, any
        segmentation error (naming the seed).
    """
    jobs = []
    for name, mask, seeds_, ct_path, ct_opt in (
        ("tumor", tumor, tumor_seeds, pre, "--pre"),
        ("ablation", ablation, ablation_seeds, post, "--post"),
    ):
        option = f"--{name}-seed"
        if seeds_ and mask is not None:
            raise InputError(f"give --{name} or {option}, not both", option)
        if seeds_ and ct_path is None:
            raise InputError(f"segmenting from a seed needs the CT ({ct_opt})", option)
        if seeds_:
            jobs.append((name, ct_path, seeds_, option))
    done = []
    folder = Path(out) / "segmentation"
    for name, ct_path, seeds_, option in jobs:
        ct, record = load_ct(ct_path, "CT")
        mask = folder / f"{name}.nii.gz"
        result, seg = segment_image(name, ct, ct_path, mask, seeds=seeds_, seed_option=option)
        result.notes.extend(n for n in record.notes if n not in result.notes)
        done.append((result, seg, ct, mask))
    for result, seg, ct, mask in done:
        write_outputs(result, seg, ct, mask)
        if result.structure == "tumor":
            tumor = mask
        else:
            ablation = mask
    return tumor, ablation


def _outside_body_reason(ct, seed) -> str:
    """Why a seed outside the body outline cannot be used, with the HU around it: air
    (a lung open to the image's top edge counts as outside the outline) or the table."""
    from hepanav.segmentation.seeds import hu_windows, local_hu

    hu, _ = local_hu(ct, seed)
    if hu < hu_windows()["air_below_hu"]:
        return f"seed is in air or lung ({hu:.0f} HU around it), outside the body outline of the CT"
    return f"seed is outside the body outline of the CT ({hu:.0f} HU around it)"
