"""DICOM objects of a margin result: SEG, TID 1500 SR, Secondary Captures (and REG).

Every warning of the result (:func:`margin_warnings`) is text in the SR and in the Image
Comments of the report figures' Secondary Captures, as for a plan
(:mod:`hepanav.dicom.plan_objects`)."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import SimpleITK as sitk

from hepanav.core.errors import InputError
from hepanav.imaging import read_image, same_grid
from hepanav.imaging.dicomout import (
    Segment,
    build_measurement_report,
    build_seg,
    code,
    measurement,
    read_source_series,
    segment_reference,
    tracking,
    write_dataset,
)
from hepanav.imaging.dicomout.registration import (
    build_deformable_registration,
    build_spatial_registration,
    rigid_pre_to_post,
)
from hepanav.imaging.resample import resample_mask_like
from hepanav.margin.segments import REGISTRATION_FILE

# SEG segments: file stem in OUT/segments -> (label, category code, type code).
SEGMENTS = {
    "tumor_post": (
        "Tumour (in post-procedure space)",
        "morphologically_abnormal_structure",
        "neoplasm",
    ),
    "ablation_zone": ("Ablation zone", "morphologically_abnormal_structure", "ablation_zone"),
    "residual_tumor": (
        "Residual tumour outside the zone",
        "morphologically_abnormal_structure",
        "residual_tumor",
    ),
    "margin_0_5mm_surface": (
        "Tumour surface with margin 0-5 mm",
        "spatial_and_relational_concept",
        "margin_0_5mm_surface",
    ),
}
CATEGORY_CODES = {
    "incomplete": "category_incomplete",
    "0-5mm": "category_0_5",
    "5-10mm": "category_5_10",
    ">=10mm": "category_10",
}
# Series Description of the result SEG (not an input of a later --from-pacs run).
SEG_DESCRIPTION = "HepaNav ablation margin SEG"
NO_SURFACE_MM = -1000.0  # hepanav.margin.pipeline.NO_SURFACE_MM (value of empty map voxels)


def load_segment_masks(
    result_dir: Path, ct: sitk.Image, source_folder: Path | None = None
) -> dict[str, sitk.Image]:
    """The result's masks on the CT grid (resampled in physical space when on another).

    Raises
    ------
    InputError
        A mask file missing; masks that hold voxels but none of which overlaps the CT
        (a ``--source`` series other than the one the result was computed on).
    """
    masks = {}
    outside = []
    for stem in SEGMENTS:
        path = result_dir / "segments" / f"{stem}.nii.gz"
        if not path.is_file():
            raise InputError(
                "missing; this margin result predates the DICOM export, run hepanav margin again",
                path,
            )
        mask = sitk.Cast(read_image(path) > 0, sitk.sitkUInt8)
        if not same_grid(mask, ct):
            held = bool(np.any(sitk.GetArrayViewFromImage(mask)))
            mask = resample_mask_like(mask, ct)
            if held and not np.any(sitk.GetArrayViewFromImage(mask)):
                outside.append(stem)
        masks[stem] = mask
    if outside and not any(np.any(sitk.GetArrayViewFromImage(m)) for m in masks.values()):
        raise InputError(
            "the result does not overlap this series (its tumour and zone masks lie "
            "outside the series' volume): give the series the result was computed on",
            source_folder or result_dir,
        )
    return masks


def mam_point(result_dir: Path, mam: float) -> np.ndarray | None:
    """LPS point (mm) of the margin-map voxel holding the MAM, or None if not found.

    The map holds, per voxel of the fine local grid, the smallest margin of the
    surface vertices in it; the voxel equal to the MAM is where it was measured
    (within half a fine-grid voxel).
    """
    path = result_dir / "margin_map.nii.gz"
    if not path.is_file():
        return None
    image = read_image(path)
    values = sitk.GetArrayViewFromImage(image)
    hits = np.argwhere(np.abs(values - mam) < 1e-4)
    if len(hits) == 0:
        return None
    z, y, x = (int(v) for v in hits[0])
    return np.asarray(image.TransformIndexToPhysicalPoint((x, y, z)))


def ct_image(source) -> sitk.Image:
    """The source series as an image (read once, with its slices: the same reader)."""
    if source.image is not None:
        return source.image
    from hepanav.imaging import read_dicom_series

    return read_dicom_series(source.folder)


def margin_warnings(result) -> list[str]:
    """Every warning of a margin result (:class:`hepanav.margin.schema.MarginResult`),
    one text each: what a reader of the SR alone must not miss.

    In the order of the terminal and the report:

    1. the verdict line (:func:`hepanav.margin.verdict.verdict`, as on the terminal and the
       web page) when the MAM is not decisive, is only a bound because of the image border
       (``min_margin_bound``: "at least"/"at most", the range the true MAM may take), or
       has no interval (masks segmented automatically from seeds);
    2. why there is no interval (``uncertainty.interval_withheld_reason``) when the
       verdict line does not already say it;
    3. ``plausibility`` (the report's red WARNINGs beside the category: the zone the
       tumour itself, zone smaller than the tumour, pre/post swapped, tumour cut by the
       image border);
    4. ``warnings`` (the MAM bound explained, zone or tumour at the image border, specks,
       liver mask, landmark TRE, mixed grids, same image, residual volume a lower bound);
    5. the subcapsular surface left out of every figure (``subcapsular_excluded_fraction``);
    6. a registration note with its mode: the rigid + B-spline result not kept (metric
       guard) and the local stage near the zone not kept, with the reason
       (``registration.method``).

    Empty for a decisive measured MAM without any of these.
    """
    from hepanav.core.report import format_percent
    from hepanav.margin.schema import REGISTRATION_MODE_WORDS
    from hepanav.margin.verdict import verdict

    out = []
    u = result.uncertainty
    said = verdict(result)
    bound = getattr(result, "min_margin_bound", None)
    if not said["decisive"] or bound is not None or u.min_margin_interval_mm is None:
        out.append(said["line"])
    reason = u.interval_withheld_reason
    if reason and reason not in said["line"]:
        out.append(f"no interval for the MAM: {reason}")
    out += result.plausibility
    out += result.warnings
    if result.subcapsular_excluded_fraction > 0:
        mm = result.subcapsular_exclusion_mm
        out.append(
            f"{format_percent(result.subcapsular_excluded_fraction, 1)}% of the tumour "
            f"surface lies {f'within {mm:g} mm of' if mm else 'near'} the liver capsule and "
            "was left out of every figure (subcapsular exclusion)"
        )
    notes = registration_notes(result.registration.method)
    if notes:
        mode = REGISTRATION_MODE_WORDS[result.registration.mode]
        out.append(f"registration ({mode}): " + "; ".join(notes))
    return out


def registration_notes(method: str) -> list[str]:
    """The notes of a ``registration.method`` text that something was not kept: the local
    stage near the zone (refused, failed, too few voxels: "the local stage near the zone
    was not kept (<why>)") and the metric guard ("the rigid + B-spline result ...: the
    identity was kept instead"), found by the marks
    :data:`hepanav.margin.registration.LOCAL_NOTE` / ``GUARD_NOTE`` the registration writes.
    Empty for a method without them (a kept local stage is named without the mark)."""
    from hepanav.margin.registration import GUARD_NOTE, LOCAL_NOTE

    notes = []
    start = method.find(LOCAL_NOTE)
    if start >= 0:
        depth, end = 0, len(method)
        for i in range(start, len(method)):  # the matching ")": the reason has brackets
            depth += {"(": 1, ")": -1}.get(method[i], 0)
            if depth == 0:
                end = i
                break
        why = method[start + len(LOCAL_NOTE) : end]
        notes.append(f"the local stage near the zone was not kept ({why})")
    guard = method.find(GUARD_NOTE)
    if guard >= 0:
        notes.append(method[guard:].removeprefix("; "))  # the note ends the method
    return notes


def export_margin(
    result_dir: Path,
    out: Path,
    source_folder: Path,
    pre_folder: Path | None = None,
    notes: list[str] | None = None,
) -> list[Path]:
    """Write SEG + SR + SC (one per report figure) of a margin result into ``out``, and
    with ``pre_folder`` (pre/post mode) the Spatial and Deformable Spatial Registration.

    The SR and each SC carry every warning of the result (:func:`margin_warnings`):
    TEXT items *Margin warning* (99HEPANAV MW001) in the SR's Qualitative Evaluations
    container, and ``WARNING: ...`` in the SCs' Image Comments.

    Returns the written files in the order SEG, SR, SCs, REGs.

    Raises
    ------
    InputError
        ``source_folder`` (or ``pre_folder``) is not the series the result records
        (:func:`hepanav.dicom.export.check_recorded_series`); the result's masks lie
        outside the source series (:func:`load_segment_masks`).
    """
    from hepanav.dicom.export import check_recorded_series, write_report_captures
    from hepanav.margin.schema import MarginResult

    result = MarginResult.model_validate_json((result_dir / "margin.json").read_text())
    source = read_source_series(source_folder)
    if notes is not None:
        notes += source.notes
    # The series the result was measured on, not only one its masks overlap (the pre CT
    # of the pair overlaps them too): checked before anything is built.
    check_recorded_series(result_dir, result.inputs, "margin.json", source, "source", notes)
    transform_file = result_dir / "segments" / REGISTRATION_FILE
    pre = None
    if transform_file.is_file() and pre_folder is not None:
        pre = read_source_series(pre_folder)
        if notes is not None:
            notes += [f"pre CT: {n}" for n in pre.notes]
        check_recorded_series(result_dir, result.inputs, "margin.json", pre, "pre", notes)
    elif transform_file.is_file() and notes is not None:
        # A pre/post result exported without its pre series: say what is left out.
        notes.append(
            "no registration (REG) objects written: the pre CT series of this pre/post "
            "result is not known; give --pre PRE_SERIES to add them"
        )
    ct = ct_image(source)
    masks = load_segment_masks(result_dir, ct, source_folder)
    segments = [
        Segment(label, masks[stem], code(cat), code(kind))
        for stem, (label, cat, kind) in SEGMENTS.items()
    ]
    seg, empty = build_seg(source, segments, SEG_DESCRIPTION)
    numbers = {d.SegmentLabel: int(d.SegmentNumber) for d in seg.SegmentSequence}
    warnings = margin_warnings(result)
    sr = build_measurement_report(
        source.datasets + [seg],
        margin_groups(
            result,
            seg,
            numbers,
            # The measured point (sub-voxel, from margin.json) when the result has it;
            # older results: the margin-map voxel holding the MAM.
            np.asarray(result.mam_point_lps_mm, float)
            if getattr(result, "mam_point_lps_mm", None) is not None
            else mam_point(result_dir, result.min_margin_mm),
            source.frame_of_reference_uid,
        ),
        "HepaNav ablation margin report",
        texts=[(code("margin_warning"), w) for w in warnings],
    )
    written = [write_dataset(seg, out, "margin_seg"), write_dataset(sr, out, "margin_sr")]
    written += write_report_captures(
        result_dir / "report.html",
        source,
        out,
        "HepaNav ablation margin figures",
        "margin",
        warnings=warnings,
    )
    if pre is not None:
        transform = sitk.ReadTransform(str(transform_file))
        written.append(
            write_dataset(
                build_spatial_registration(pre, source, rigid_pre_to_post(transform)),
                out,
                "margin_registration_rigid",
            )
        )
        written.append(
            write_dataset(
                build_deformable_registration(pre, source, transform),
                out,
                "margin_registration_deformable",
            )
        )
    return written


def margin_groups(result, seg, numbers: dict[str, int], point, frame_uid: str) -> list:
    """TID 1411 groups (tumour, zone volumes on their segments) and a TID 1501 margin group."""
    groups = []
    tumour_label, zone_label = SEGMENTS["tumor_post"][0], SEGMENTS["ablation_zone"][0]
    if tumour_label in numbers:
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking("tumour"),
                referenced_segment=segment_reference(seg, numbers[tumour_label]),
                finding_type=code("neoplasm"),
                measurements=[
                    measurement(code("volume"), result.tumor_volume_ml, "ml"),
                    measurement(code("area"), result.tumor_surface_area_mm2, "mm2"),
                ],
            )
        )
    if zone_label in numbers:
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking("ablation zone"),
                referenced_segment=segment_reference(seg, numbers[zone_label]),
                finding_type=code("ablation_zone"),
                measurements=[measurement(code("volume"), result.ablation_volume_ml, "ml")],
            )
        )
    p = result.percentiles_mm
    items = [
        measurement(
            code("minimal_ablative_margin"),
            result.min_margin_mm,
            "mm",
            None if point is None else point.tolist(),
            frame_uid,
        ),
        measurement(code("mean_margin"), result.mean_margin_mm, "mm"),
        measurement(code("margin_p5"), p.p5, "mm"),
        measurement(code("margin_p25"), p.p25, "mm"),
        measurement(code("margin_p50"), p.p50, "mm"),
        measurement(code("margin_p75"), p.p75, "mm"),
        measurement(code("margin_p95"), p.p95, "mm"),
        measurement(code("surface_fraction_below_0mm"), result.surface_fraction_below_0mm, "ratio"),
        measurement(code("surface_fraction_below_5mm"), result.surface_fraction_below_5mm, "ratio"),
        measurement(code("shell_coverage_5mm"), result.shell_coverage_5mm, "ratio"),
        measurement(code("shell_coverage_6mm"), result.shell_coverage_6mm, "ratio"),
    ]
    reg = result.registration
    if reg.liver_dice is not None:
        items.append(measurement(code("registration_liver_dice"), reg.liver_dice, "ratio"))
    if reg.tre_mm:
        items.append(measurement(code("registration_tre_mean"), reg.tre_mm["mean"], "mm"))
        items.append(measurement(code("registration_tre_max"), reg.tre_mm["max"], "mm"))
    groups.append(
        hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking("ablation margin"),
            finding_type=code("ablation_margin_group"),
            measurements=items,
            qualitative_evaluations=[
                hd.sr.QualitativeEvaluation(
                    code("margin_category"), code(CATEGORY_CODES[result.category])
                )
            ],
        )
    )
    return groups
