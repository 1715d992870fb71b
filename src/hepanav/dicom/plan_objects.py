"""DICOM objects of a plan result: SEG (target, planned zones) and a TID 1500 SR with each
needle's entry and tip as a SCOORD3D polyline, its length and angle, and every warning of
the plan as text (also in the Image Comments of the report figures' Secondary Captures)."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import SimpleITK as sitk

from hepanav.core.errors import InputError
from hepanav.imaging import read_image, voxel_to_lps
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
from hepanav.imaging.resample import resample_mask_like

TARGET_LABEL = "Planning target (tumour)"
# Series Description of the result SEG (not an input of a later --from-pacs run).
SEG_DESCRIPTION = "HepaNav ablation plan SEG"


def zone_mask(ct: sitk.Image, probe, device) -> sitk.Image:
    """The planned ellipsoidal zone of one probe on the CT grid (before heat-sink trim)."""
    from hepanav.planning.zones import inside_zones, zone_center

    tip, d = np.asarray(probe.tip_lps_mm), np.asarray(probe.zone_direction)
    center = zone_center(tip, d, device)
    reach = max(probe.zone_axes_mm) / 2.0 + 2.0 * max(ct.GetSpacing())
    size = np.asarray(ct.GetSize())
    corners = np.array([center - reach, center + reach])
    idx = np.array([ct.TransformPhysicalPointToContinuousIndex(c.tolist()) for c in corners])
    lo = np.clip(np.floor(idx.min(0)).astype(int), 0, size - 1)
    hi = np.clip(np.ceil(idx.max(0)).astype(int), 0, size - 1)
    out = np.zeros(sitk.GetArrayViewFromImage(ct).shape, dtype=np.uint8)
    zz, yy, xx = np.mgrid[lo[2] : hi[2] + 1, lo[1] : hi[1] + 1, lo[0] : hi[0] + 1]
    index = np.column_stack([xx.ravel(), yy.ravel(), zz.ravel()])
    inside = inside_zones(voxel_to_lps(ct, index), center[None], d[None], probe.zone_axes_mm)
    out[zz.ravel()[inside], yy.ravel()[inside], xx.ravel()[inside]] = 1
    image = sitk.GetImageFromArray(out)
    image.CopyInformation(ct)
    return image


def plan_warnings(plan) -> list[str]:
    """Every warning of a plan (:class:`hepanav.planning.schema.PlanResult`), one text each.

    In the order of the report: ``warnings`` (e.g. the tumour touching the CT's edge), each
    risk-map group absent from the label map within needle reach (``absent_structures``,
    derived from the CT instead or not; groups 'not needed here' are no warning), the
    label-map ``derivation_notes`` (printed as WARNING by ``hepanav plan``) and a liver
    derived from the CT because the label map had none. Empty for a plan without doubts.
    """
    from hepanav.planning.pipeline import LIVER_DERIVED

    out = list(plan.warnings)
    for a in plan.absent_structures:
        if a.in_reach:
            out.append(f"{a.message} ({a.labels_named})" if a.labels_named else a.message)
    out += plan.derivation_notes
    if LIVER_DERIVED in plan.derived_structures:
        out.append(
            "the label map has no liver: the liver was DERIVED from the CT "
            f"({plan.derived_structures[LIVER_DERIVED]}). Check it on the CT."
        )
    return out


def export_plan(
    result_dir: Path, out: Path, source_folder: Path, notes: list[str] | None = None
) -> list[Path]:
    """Write SEG + SR (+ SC of the report figures) of a plan result into ``out``.

    The SR and each SC carry every warning of the plan (:func:`plan_warnings`): TEXT items
    *Plan warning* (99HEPANAV PL003) in the SR's Qualitative Evaluations container, and
    ``WARNING: ...`` in the SCs' Image Comments.

    Raises
    ------
    InputError
        An infeasible plan; ``source_folder`` not the planning CT series the plan records
        (:func:`hepanav.dicom.export.check_recorded_series`) or not overlapping its target.
    """
    from hepanav.dicom.export import check_recorded_series, write_report_captures
    from hepanav.imaging import read_dicom_series
    from hepanav.planning.schema import PlanResult

    plan = PlanResult.model_validate_json((result_dir / "plan.json").read_text())
    if not plan.feasible:
        # A SEG of "planned ablation zones" for a plan that does not cover the target would
        # read in the PACS as a placeable plan (the web sign-off refuses it for the same reason).
        raise InputError(
            "the plan is not feasible: no planned ablation zones are written to DICOM "
            "(see plan.html for what is not covered and why)",
            result_dir / "plan.json",
        )
    source = read_source_series(source_folder)
    if notes is not None:
        notes += source.notes
    check_recorded_series(result_dir, plan.input_records, "plan.json", source, "source", notes)
    ct = source.image if source.image is not None else read_dicom_series(source.folder)
    tumor_file = result_dir / plan.inputs.get("tumor_crop", "tumor.nii.gz")
    if not tumor_file.is_file():
        raise InputError("missing (written by hepanav plan)", tumor_file)
    tumor = sitk.Cast(read_image(tumor_file) > 0, sitk.sitkUInt8)
    target = resample_mask_like(tumor, ct)
    if np.any(sitk.GetArrayViewFromImage(tumor)) and not np.any(sitk.GetArrayViewFromImage(target)):
        raise InputError(
            "the plan does not overlap this series (its target lies outside the series' "
            "volume): give the planning CT series the plan was made on",
            source_folder,
        )
    segments = [
        Segment(TARGET_LABEL, target, code("morphologically_abnormal_structure"), code("neoplasm"))
    ]
    for p in plan.probes:
        segments.append(
            Segment(
                f"Planned ablation zone needle {p.needle} position {p.position}",
                zone_mask(ct, p, plan.device),
                code("morphologically_abnormal_structure"),
                code("planned_ablation_zone"),
            )
        )
    seg, _ = build_seg(source, segments, SEG_DESCRIPTION)
    numbers = {d.SegmentLabel: int(d.SegmentNumber) for d in seg.SegmentSequence}
    frame = source.frame_of_reference_uid
    groups = []
    if TARGET_LABEL in numbers:
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking("planning target"),
                referenced_segment=segment_reference(seg, numbers[TARGET_LABEL]),
                finding_type=code("neoplasm"),
                measurements=[
                    measurement(code("planned_coverage"), plan.coverage_tumor, "ratio"),
                    measurement(code("planned_target_coverage"), plan.coverage_target, "ratio"),
                ],
            )
        )
    for n in plan.needles:
        path = np.array([n.entry_lps_mm, n.tip_lps_mm], dtype=float)
        items = [
            _polyline_measurement(code("length"), n.length_mm, "mm", path, frame),
            measurement(code("needle_angle_from_axial"), n.angle_from_axial_deg, "deg"),
        ]
        if n.min_clearance_mm is not None:
            items.append(measurement(code("needle_clearance"), n.min_clearance_mm, "mm"))
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking(f"needle {n.needle}"),
                finding_type=code("needle_trajectory"),
                measurements=items,
            )
        )
    warnings = plan_warnings(plan)
    sr = build_measurement_report(
        source.datasets + [seg],
        groups,
        "HepaNav ablation plan report",
        texts=[(code("plan_warning"), w) for w in warnings],
    )
    written = [write_dataset(seg, out, "plan_seg"), write_dataset(sr, out, "plan_sr")]
    written += write_report_captures(
        result_dir / "report.html",
        source,
        out,
        "HepaNav ablation plan figures",
        "plan",
        warnings=warnings,
    )
    return written


def _polyline_measurement(name, value, unit, points, frame) -> hd.sr.Measurement:
    """A measurement INFERRED FROM a SCOORD3D POLYLINE (e.g. entry -> tip of a needle)."""
    from hepanav.imaging.dicomout.codes import UNITS
    from hepanav.imaging.dicomout.sr import algorithm

    return hd.sr.Measurement(
        name=name,
        value=float(value),
        unit=UNITS[unit],
        algorithm_id=algorithm(),
        referenced_coordinates=[
            hd.sr.CoordinatesForMeasurement3D(
                graphic_type=hd.sr.GraphicTypeValues3D.POLYLINE,
                graphic_data=np.asarray(points, float),
                frame_of_reference_uid=frame,
            )
        ],
    )
