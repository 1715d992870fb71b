"""DICOM objects of a margin result: SEG, TID 1500 SR, Secondary Captures (and REG)."""

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


def export_margin(
    result_dir: Path,
    out: Path,
    source_folder: Path,
    pre_folder: Path | None = None,
    notes: list[str] | None = None,
) -> list[Path]:
    """Write SEG + SR + SC (one per report figure) of a margin result into ``out``, and
    with ``pre_folder`` (pre/post mode) the Spatial and Deformable Spatial Registration.

    Returns the written files in the order SEG, SR, SCs, REGs.
    """
    from hepanav.dicom.export import write_report_captures
    from hepanav.margin.schema import MarginResult

    result = MarginResult.model_validate_json((result_dir / "margin.json").read_text())
    source = read_source_series(source_folder)
    if notes is not None:
        notes += source.notes
    ct = ct_image(source)
    masks = load_segment_masks(result_dir, ct, source_folder)
    segments = [
        Segment(label, masks[stem], code(cat), code(kind))
        for stem, (label, cat, kind) in SEGMENTS.items()
    ]
    seg, empty = build_seg(source, segments, "HepaNav ablation margin SEG")
    numbers = {d.SegmentLabel: int(d.SegmentNumber) for d in seg.SegmentSequence}
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
    )
    written = [write_dataset(seg, out, "margin_seg"), write_dataset(sr, out, "margin_sr")]
    written += write_report_captures(
        result_dir / "report.html", source, out, "HepaNav ablation margin figures", "margin"
    )
    transform_file = result_dir / "segments" / REGISTRATION_FILE
    if transform_file.is_file() and pre_folder is not None:
        pre = read_source_series(pre_folder)
        if notes is not None:
            notes += [f"pre CT: {n}" for n in pre.notes]
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
