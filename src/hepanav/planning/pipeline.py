"""File-level workflows behind ``hepanav plan`` and ``hepanav verify-placement``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from hepanav.core.atomic import write_json
from hepanav.core.errors import InputError
from hepanav.core.limits import check_number
from hepanav.core.paths import recorded_path
from hepanav.core.validation import parse_json, read_user_text, validate_model
from hepanav.imaging.geometry import same_grid
from hepanav.imaging.io import load_ct, load_image, read_image, write_image
from hepanav.imaging.labels import sidecar_label_names
from hepanav.imaging.masks import load_mask
from hepanav.imaging.orient import axial_order, to_input_order
from hepanav.imaging.resample import resample_mask_like
from hepanav.imaging.schema import InputRecord
from hepanav.planning.devices import load_device
from hepanav.planning.needle_table import needle_guides, tumour_size
from hepanav.planning.planner import PlanOutput, align_inputs, plan
from hepanav.planning.report import write_placement_report, write_plan_report
from hepanav.planning.risk import (
    absent_groups,
    load_risk_map,
    partly_given_groups,
    structure_name,
)
from hepanav.planning.schema import MAX_MARGIN_MM, NeedleError, PlacementResult, PlanResult
from hepanav.planning.slicer import write_markups
from hepanav.planning.verification import (
    DEPTH_TOLERANCE_MM,
    LATERAL_TOLERANCE_MM,
    MAX_CONTROL_VOXEL_MM,
    MAX_TOLERANCE_MM,
    detect_needles,
    match_needles,
    needle_verdict,
    positioning_error,
)
from hepanav.planning.zones import inside_zones, zone_center

TUMOR_FILE, BAND_FILE, LIVER_FILE = "tumor.nii.gz", "heat_sink_band.nii.gz", "liver.nii.gz"
MARKUPS_FILE = "trajectories.mrk.json"
NO_NAVIGATION = (
    "No navigation trajectories were written (no trajectories.mrk.json): the plan is not "
    "feasible; its needles stay in plan.json for analysis only and must not be placed."
)
# derived_structures key of a liver the given label map lacks, derived from the CT (WARNING)
LIVER_DERIVED = "liver (absent from the label map)"


def _crop_on_input(ct: sitk.Image, box, array: np.ndarray, code: str) -> sitk.Image:
    """:func:`_crop_image` permuted back to the input CT's orientation ``code``."""
    return to_input_order(_crop_image(ct, box, array), code)


def _crop_image(ct: sitk.Image, box, array: np.ndarray) -> sitk.Image:
    start = [int(box[2].start), int(box[1].start), int(box[0].start)]
    size = [int(b.stop - b.start) for b in (box[2], box[1], box[0])]
    ref = sitk.RegionOfInterest(ct, size, start)
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.CopyInformation(ref)
    return image


def run_plan(
    ct_path: Path,
    tumor_path: Path,
    labels_path: Path | None,
    label_map: Path | None,
    margin_mm: float,
    device_name: str,
    out_dir: Path,
    *,
    solver: str = "milp",
    tumor_label: str | None = None,
    mask_threshold: float | None = None,
    series: str | None = None,
    derive_labels=None,
) -> tuple[PlanOutput, list[Path]]:
    """Plan from files and write plan.json, trajectories.mrk.json, report.html and masks.

    Without ``labels_path``, ``derive_labels(ct, tumour)`` (both on the CT grid) supplies
    the label map derived from the CT (an object with ``labels``, ``names``, ``derived``
    and ``notes``, e.g. :func:`hepanav.segmentation.anatomy.derive_planning_labels`,
    composed by the CLI). Every no-go or heat-sink group of the risk map that is absent
    from the label map is listed in ``absent_structures`` and in the message (WARNING).

    Returns the plan output and the written paths. Raises ``InputError`` for bad input.
    """
    try:
        margin_ok = math.isfinite(float(margin_mm)) and 0 <= float(margin_mm) <= MAX_MARGIN_MM
    except (TypeError, ValueError, OverflowError):
        margin_ok = False
    if not margin_ok:
        raise InputError(f"margin must be a finite number in [0, {MAX_MARGIN_MM:g}] mm", "--margin")
    from hepanav.imaging.masks import check_mask_threshold

    check_mask_threshold(mask_threshold)
    device = load_device(device_name)
    risk = load_risk_map(label_map)
    ct, ct_record = load_ct(ct_path, "planning CT", series=series)
    check_ct_units(ct, ct_path)
    # Slice-by-slice steps (body outline, derived anatomy, needle table) need axial
    # slices: plan on the CT permuted to axial array order (exact, no interpolation) and
    # write the masks back in the input's array order. Oblique CTs are refused.
    ct, ct_code = axial_order(ct, Path(ct_path).name)
    tumor, tumor_record = load_mask(
        tumor_path,
        "tumor",
        reference_record=ct_record,
        grid=ct,
        labels=tumor_label,
        threshold=mask_threshold,
        option="--tumor-label",
        # RTSTRUCT contours are rasterised on the CT: beyond it they would be dropped.
        require_inside=True,
    )
    # Checked once, before anything is derived from the CT: a tumour not in the CT, or
    # cut by its field of view, is refused (a plan for a cut tumour is not a plan).
    tumor = tumour_on_ct(tumor, ct, str(tumor_path))
    edge_sides, edge_warning = tumour_at_edge(tumor, ct)
    derived, label_notes, given_ids = None, [], None
    if labels_path is not None and _is_totalsegmentator_folder(Path(labels_path)):
        from hepanav.imaging.totalseg import read_totalsegmentator

        label_map_read = read_totalsegmentator(labels_path, reference=ct)
        labels, names = label_map_read.image, dict(label_map_read.names)
        given_ids = label_map_read.given
        records = [ct_record, tumor_record, folder_record(labels_path, label_map_read)]
        if label_map_read.skipped:
            label_notes.append(
                "TotalSegmentator files not in the id table, not used: "
                + ", ".join(label_map_read.skipped)
            )
    elif labels_path is not None:
        labels, labels_record = load_image(labels_path, "organ labels", is_label=True)
        records = [ct_record, tumor_record, labels_record]
        names = sidecar_label_names(Path(labels_path))
    elif derive_labels is None:
        raise InputError("give an organ label map (or let it be derived from the CT)", "--labels")
    else:
        derived = derive_labels(ct, tumor)
        labels, names, records = derived.labels, dict(derived.names), [ct_record, tumor_record]
    fill = None
    if labels_path is not None and derive_labels is not None:
        labels = _labels_on_ct(labels, ct, str(labels_path))
        fill = fill_from_ct(
            ct, tumor, labels, risk, device, derive_labels, given_ids, source=str(labels_path)
        )
        if fill is not None:
            given_labels, labels = labels, fill.labels
            names = {**fill.names, **names}
    inp = align_inputs(
        ct,
        tumor,
        labels,
        names,
        risk,
        tumor_source=str(tumor_path),
        labels_source=str(labels_path) if labels_path is not None else "labels derived from the CT",
    )
    if risk.trajectory.entry_region_mask:
        from hepanav.imaging.masks import read_mask

        region = Path(risk.trajectory.entry_region_mask)
        if not region.is_absolute() and label_map is not None:
            region = Path(label_map).parent / region
        inp.entry_region = read_mask(region, reference=ct)
    paths = {
        # Relative to the working folder, else name + content hash: never an absolute
        # path, which may name a patient's folder (docs/privacy.md).
        "ct": recorded_path(ct_path),
        "tumor": recorded_path(tumor_path),
        "labels": recorded_path(labels_path) if labels_path is not None else "derived from the CT",
        "label_map": recorded_path(label_map) if label_map else "built-in",
        "tumor_crop": TUMOR_FILE,
        "heat_sink_band": BAND_FILE,
        "liver_crop": LIVER_FILE,
        "markups": MARKUPS_FILE,
        "report": "report.html",
    }
    out = plan(inp, risk, device, margin_mm, solver=solver, paths=paths)
    out.result.guides = needle_guides(
        out.result, ct, inp.labels, structure_names(inp, risk), tumour=inp.tumor
    )
    refuse_entries_off_skin(out.result)
    out.result.tumour_size = tumour_size(inp.tumor)
    out.result.input_records = records
    add_structure_warnings(
        out.result,
        given_labels if fill is not None else inp.labels,
        risk,
        derived,
        given=given_ids,
        fill=fill,
    )
    out.result.derivation_notes += label_notes
    if edge_warning:
        out.result.tumour_at_ct_edge = edge_sides
        out.result.warnings.append(edge_warning)
        out.result.message += f" WARNING: {edge_warning}"
    withhold_navigation(out.result)
    out_dir = Path(out_dir)
    region = out.region
    written = [
        write_json(out_dir / "plan.json", out.result),
        *(
            [write_markups(out.result, out_dir / MARKUPS_FILE)]
            if out.result.inputs.get("markups")
            else []
        ),
        write_image(_crop_on_input(ct, region.box, region.tumor, ct_code), out_dir / TUMOR_FILE),
        write_image(_crop_on_input(ct, region.box, region.band, ct_code), out_dir / BAND_FILE),
        write_image(_crop_on_input(ct, region.box, region.liver, ct_code), out_dir / LIVER_FILE),
        write_plan_report(out, risk, out_dir / "report.html"),
    ]
    return out, written


def tumour_on_ct(tumor: sitk.Image, ct: sitk.Image, source: str) -> sitk.Image:
    """The tumour mask on the planning CT's grid (uint8 0/1), refused unless the CT holds
    all of it.

    Raises
    ------
    InputError
        Naming ``source`` (the --tumor file): the mask does not overlap the CT in physical
        space (the message of :func:`hepanav.imaging.geometry.require_overlap`), or some
        of it lies outside the CT's field of view (:func:`mask_outside_ml`, voxel
        centres; the message says how much, and how far beyond which side:
        :func:`mask_beyond_field_of_view`): the target would be cut, its volume and
        extent too small, and a plan for it would leave the rest untreated. (An
        RTSTRUCT is rasterised on the CT itself: its contours outside the CT are refused
        by the reader, ``load_mask(..., require_inside=True)``.)
    """
    from hepanav.imaging.geometry import (
        describe_beyond,
        mask_beyond_field_of_view,
        mask_outside_ml,
        require_overlap,
    )

    tumor = sitk.Cast(tumor != 0, sitk.sitkUInt8)
    if same_grid(tumor, ct):
        return tumor
    require_overlap(tumor, ct, source)
    outside, total = mask_outside_ml(tumor, ct)
    if outside > 0:
        raise InputError(
            f"--tumor extends beyond the planning CT: {outside:.2f} ml of its {total:.2f} ml "
            f"({100 * outside / total:.0f}%) lie outside the CT's field of view, reaching "
            f"{describe_beyond(mask_beyond_field_of_view(tumor, ct), ct)}, so the target "
            "would be cut; give a CT that covers the whole tumour",
            source,
        )
    on_ct = resample_mask_like(tumor, ct)
    if not np.any(sitk.GetArrayViewFromImage(on_ct)):
        raise InputError("tumour lies outside the CT after resampling", source)
    return on_ct


def tumour_at_edge(tumor: sitk.Image, ct: sitk.Image) -> tuple[list[str], str]:
    """Sides of the CT's field of view the tumour touches, and the warning for them.

    ``tumor`` is on ``ct``'s grid (:func:`tumour_on_ct`). A tumour voxel in the CT's
    first or last slice (or in an outermost row or column) means the CT may end inside
    the tumour: its true extent there is unknown, so the plan's coverage of the tumour
    cannot be verified. Sides are LPS patient sides (:func:`axis_sides`).

    Returns
    -------
    (list of str, str)
        The sides touched ('superior', 'inferior', 'left', ...) and the warning naming
        them; ``([], "")`` when the tumour keeps off every edge.
    """
    from hepanav.imaging.geometry import axis_sides, edge_slice_z

    array = sitk.GetArrayViewFromImage(tumor)
    sides = axis_sides(ct)
    edge_z = edge_slice_z(ct)
    touched, parts = [], []
    for a in (2, 1, 0):  # the slice axis first
        axis = 2 - a  # array axis of index axis a
        for end, side in zip((0, -1), sides[a], strict=True):
            if not np.take(array, end, axis=axis).any():
                continue
            touched.append(side)
            if side in edge_z:
                parts.append(f"{side}-most slice (LPS z {edge_z[side]:.1f} mm)")
            else:
                parts.append(f"{side}-most voxels (edge of its field of view)")
    if not touched:
        return [], ""
    return touched, (
        f"the tumour touches the CT's {' and '.join(parts)}: the CT may not hold all of it, "
        "its true extent beyond is unknown, so the plan's coverage of the tumour cannot be "
        "verified; check the tumour on a CT that extends beyond it"
    )


def withhold_navigation(result: PlanResult) -> bool:
    """An infeasible plan exports no navigation trajectories: ``inputs["markups"]`` is
    dropped (so no ``trajectories.mrk.json`` is written) and the message says why. Its
    needles stay in ``plan.json`` for analysis (the report's "what blocks it" views);
    ``verify-placement``, the DICOM export and the web app refuse or hide them.

    Returns True when navigation output was withheld.
    """
    if result.feasible:
        return False
    result.inputs.pop("markups", None)
    result.message += " " + NO_NAVIGATION
    return True


def refuse_entries_off_skin(result: PlanResult) -> list[int]:
    """Mark ``result`` not feasible when a needle's entry is not at the skin.

    ``result.guides`` must be filled (:func:`needle_guides`): a guide's
    ``entry_on_skin`` is False when the CT 3 and 6 mm outside the entry is not air, or
    lies outside the scan (a thin slab or a cropped scan does not show the skin along
    that path: the entry would be inside tissue). Such a plan cannot be placed as drawn,
    so it is reported infeasible with the reason (the needles stay in the result for
    the report's "what blocks it" view).

    Returns
    -------
    list of int
        Needles whose entry is not at the skin (empty: nothing changed).
    """
    off = [g.needle for g in result.guides if not g.entry_on_skin]
    if off:
        result.feasible = False
        result.message = (
            f"Not feasible: the entry of needle {', '.join(map(str, off))} is not at the skin "
            "(no air outside it in the CT: the scan does not show the skin along that path, "
            "e.g. a thin slab). " + result.message
        )
    return off


def folder_record(path: Path, read) -> InputRecord:
    """The input record of a TotalSegmentator folder given as --labels: role "organ
    labels", file "<folder>/", format "TotalSegmentator folder, N files" (the files read,
    ``read``: :class:`hepanav.imaging.totalseg.LabelMap`), the grid as used (the CT's) and
    the files not used in the notes."""
    from hepanav.imaging.schema import display_name, record_geometry

    n = len(read.files)
    record = InputRecord(
        role="organ labels",
        file=display_name(path).rstrip("/") + "/",
        format=f"TotalSegmentator folder, {n} file{'s' if n != 1 else ''}",
    )
    record_geometry(record, read.image)
    if read.skipped:
        record.notes.append("not in the id table, not used: " + ", ".join(read.skipped))
    return record


def _is_totalsegmentator_folder(path: Path) -> bool:
    """A folder of NIfTI masks (TotalSegmentator's output), not a DICOM series folder."""
    return path.is_dir() and any(
        p.name.endswith((".nii.gz", ".nii")) for p in path.iterdir() if p.is_file()
    )


@dataclass
class CtFill:
    """A given label map completed from the CT (:func:`fill_from_ct`).

    ``labels``: the given labels plus the derived voxels of the groups it lacks (CT grid,
    uint16); ``names``: names of the derived ids; ``groups``: risk-map group -> (how it
    was derived, ml added, ml added within needle reach); ``not_found``: ids the
    derivation never finds (id -> why); ``notes``: the derivation's notes."""

    labels: sitk.Image
    names: dict[int, str]
    groups: dict[str, tuple[str, float, float]] = field(default_factory=dict)
    not_found: dict[int, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


#: Derived voxels within this distance of a given label of the same group are its
#: partial-volume rim, not a missing structure.
FILL_EXPLAINED_MM = 3.0
#: Components of unexplained derived voxels smaller than this are noise (= MIN_BONE_ML).
FILL_MIN_ML = 0.2


def _labels_on_ct(labels: sitk.Image, ct: sitk.Image, source: str) -> sitk.Image:
    from hepanav.imaging.geometry import require_overlap
    from hepanav.imaging.resample import resample_labels_like
    from hepanav.planning.planner import _integer_labels

    labels = _integer_labels(labels, source)
    if not same_grid(labels, ct):
        require_overlap(labels, ct, source)
        labels = resample_labels_like(labels, ct)
    return labels


def reach_mask(points_lps: np.ndarray, tumour: np.ndarray, ct: sitk.Image, risk, device):
    """Which of ``points_lps`` (N, 3) a needle of this plan can pass: within the needle
    length + one zone length of the tumour's bounding box, and within
    ``length * sin(max angle from axial)`` + one zone length of it craniocaudally (a
    needle at most that steep spans at most that much z). Bool (N,)."""
    from hepanav.imaging.geometry import voxel_to_lps

    idx = np.argwhere(tumour)
    corners = voxel_to_lps(ct, np.array([idx.min(0), idx.max(0)])[:, ::-1])
    lo, hi = corners.min(0), corners.max(0)
    gap = np.maximum(0.0, np.maximum(lo - points_lps, points_lps - hi))
    zone = float(device.zone_axes_mm[0])
    length = float(device.needle_length_mm)
    steep = math.sin(math.radians(risk.trajectory.max_angle_from_axial_deg))
    return (np.linalg.norm(gap, axis=1) <= length + zone) & (gap[:, 2] <= length * steep + zone)


def fill_from_ct(
    ct: sitk.Image,
    tumor: sitk.Image,
    labels: sitk.Image,
    risk,
    device,
    derive_labels,
    given: set[int] | None,
    source: str = "--labels",
) -> CtFill | None:
    """Complete a given label map (CT grid) with the groups it lacks, derived from the CT.

    For every risk-map group wholly absent from ``labels`` (or, ``given`` = the ids of a
    TotalSegmentator folder, with members that have no file) and for a missing liver,
    ``derive_labels(ct, tumour, liver=...)`` (the given liver, if any) is run once; its
    voxels of that group's ids are added where the given map is 0 (heat-sink vessels: or
    liver) and farther than
    ``FILL_EXPLAINED_MM`` from the group's given labels, holes they enclose in an axial
    slice included (components >= ``FILL_MIN_ML``).
    Returns None when nothing derivable is missing (no derivation run; ``derive_labels``
    may name the ids it can write in a ``provides`` attribute). A derivation that fails
    (``InputError``) leaves the label map as given, with a note. The derivation's notes
    are kept only when they concern an id taken from the CT (its ``note_ids``: note ->
    ids; a note not listed there is kept): no "vena cava NOT derived" when the label map
    holds the vena cava and the derivation ran for another group.
    """
    arr = sitk.GetArrayViewFromImage(labels)
    if not arr.any():
        raise InputError("label map is empty (no non-zero voxel)", source)
    present = set(np.nonzero(np.bincount(arr.ravel()))[0].tolist())
    if given is not None:  # a folder: any member without a file
        wanted = {r.name: r for r in risk.structures if any(x not in given for x in r.labels)}
    else:  # a label file: a missing id cannot be told from one outside the scan
        wanted = {r.name: r for r in risk.structures if not set(r.labels) & present}
    liver_missing = not set(risk.liver_labels) & present
    # Only groups the derivation can hold (``derive_labels.provides``: the ids it writes;
    # unknown: any) are worth the derivation's time (~10 s).
    provides = getattr(derive_labels, "provides", None)
    if provides is not None:
        wanted = {k: r for k, r in wanted.items() if set(r.labels) & set(provides)}
        liver_missing &= bool(set(risk.liver_labels) & set(provides))
    if not wanted and not liver_missing:
        return None
    # The ids taken from the CT: the wanted groups' members the label map lacks.
    taken = {x for r in wanted.values() for x in r.labels if given is None or x not in given}
    if liver_missing:
        taken |= set(risk.liver_labels)
    tum = sitk.Cast(
        (tumor if same_grid(tumor, ct) else resample_mask_like(tumor, ct)) != 0, sitk.sitkUInt8
    )
    liver = None
    if not liver_missing:
        liver = sitk.GetImageFromArray(np.isin(arr, risk.liver_labels).astype(np.uint8))
        liver.CopyInformation(ct)
    try:
        derived = derive_labels(ct, tum, liver=liver)
    except InputError as exc:
        return CtFill(
            labels,
            {},
            notes=[f"groups absent from the label map could not be derived from the CT: {exc}"],
        )
    d = sitk.GetArrayViewFromImage(derived.labels)
    tumour = sitk.GetArrayViewFromImage(tum) > 0
    spacing_zyx = np.asarray(ct.GetSpacing())[::-1]
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    out = np.array(arr, copy=True)
    # Notes about structures the label map gives are not the user's concern (a note "vena
    # cava NOT derived" when the label map holds it): keep those about the ids taken.
    about = getattr(derived, "note_ids", {}) or {}
    notes = [n for n in derived.notes if n not in about or set(about[n]) & taken]
    fill = CtFill(labels, {}, not_found=dict(getattr(derived, "not_found", {})), notes=notes)
    groups = [(r.name, list(r.labels), r.heat_sink) for r in wanted.values()]
    if liver_missing:
        groups.append(("liver", list(risk.liver_labels), False))
    from hepanav.segmentation.morphology import dilate_mm

    for name, ids, heat_sink in groups:
        ids_d = [x for x in ids if x in derived.names and x not in fill.not_found]
        # Free voxels; for heat-sink vessels also the given liver (a TotalSegmentator
        # liver mask holds its vessels).
        free = (out == 0) | (np.isin(out, risk.liver_labels) if heat_sink else False)
        mask = np.isin(d, ids_d) & free
        if not mask.any():
            continue
        own = np.isin(arr, ids)
        for k in np.nonzero(own.any(axis=(1, 2)))[0]:
            # What the group's given labels enclose in a slice (a vertebra's canal, a
            # rib's marrow) is theirs: the CT derivation fills such holes.
            own[k] = ndimage.binary_fill_holes(own[k])
        if own.any():
            img = sitk.GetImageFromArray(own.astype(np.uint8))
            img.CopyInformation(ct)
            explained = dilate_mm(img, FILL_EXPLAINED_MM)
            mask &= ~(sitk.GetArrayViewFromImage(explained) > 0)
        comp, n = ndimage.label(mask)
        if n:
            sizes = ndimage.sum_labels(mask, comp, np.arange(1, n + 1)) * voxel_ml
            keep = np.zeros(n + 1, bool)
            keep[1:] = sizes >= FILL_MIN_ML
            mask = keep[comp]
        added = np.argwhere(mask)
        from hepanav.imaging.geometry import voxel_to_lps

        near = (
            reach_mask(voxel_to_lps(ct, added[:, ::-1]), tumour, ct, risk, device)
            if len(added)
            else np.zeros(0, bool)
        )
        out[mask] = d[mask]
        how = (
            "; ".join(
                f"{k}: {v}"
                for k, v in derived.derived.items()
                if any(derived.names.get(x, "").startswith(k.split(" (")[0]) for x in ids_d)
            )
            or "derived from the CT"
        )
        fill.groups[name] = (how, len(added) * voxel_ml, int(near.sum()) * voxel_ml)
        for x in ids_d:
            fill.names[x] = derived.names[x]
    image = sitk.GetImageFromArray(out)
    image.CopyInformation(ct)
    fill.labels = image
    return fill


def _split_not_found(entry, not_found: dict[int, str], risk):
    """(entry without the never-derived ids or None, entry of those ids or None)."""
    from hepanav.imaging.labels import describe_label_ids
    from hepanav.planning.risk import TOTALSEGMENTATOR_NAMES

    miss = [x for x in entry.labels if x in not_found]
    if not miss:
        return entry, None
    rest = [x for x in entry.labels if x not in not_found]
    named = describe_label_ids(miss, TOTALSEGMENTATOR_NAMES)
    gap = entry.model_copy(
        update={
            "labels": miss,
            "labels_named": named,
            "partial": True,
            "message": (
                f"no-go group '{entry.name}': {named} ABSENT from the label map and NOT "
                f"derived from the CT ({'; '.join(not_found[x] for x in miss)}); needles "
                f"are not kept {entry.clearance_mm:g} mm from them: check them on the CT"
            ),
        }
    )
    if not rest:
        return None, gap
    return (
        entry.model_copy(
            update={
                "labels": rest,
                "labels_named": describe_label_ids(rest, TOTALSEGMENTATOR_NAMES),
            }
        ),
        gap,
    )


def add_structure_warnings(
    result: PlanResult,
    labels: sitk.Image,
    risk,
    derived=None,
    given: set[int] | None = None,
    fill: CtFill | None = None,
) -> None:
    """Record what was derived from the CT and every risk-map group absent from the label
    map (in ``absent_structures`` and, as a WARNING, in the message): never silent.

    ``given``: for a TotalSegmentator folder, the ids it has a file for; a group with some
    members given and others without any file is listed too (``partial``, the missing
    ids), e.g. a folder with the stomach but no colon or small bowel. ``labels`` is the
    label map as given (or derived). ``fill`` (:func:`fill_from_ct`): groups absent from
    a given label map that were derived from the CT instead; each listed group says so
    (``derived_from_ct``), and one whose derivation adds nothing within needle reach is
    'not needed here' (``in_reach`` False). Structures a derivation never finds
    (``not_found``, e.g. costal cartilages) are always listed as a gap.
    """
    from hepanav.imaging.labels import describe_label_ids
    from hepanav.planning.risk import TOTALSEGMENTATOR_NAMES
    from hepanav.planning.schema import AbsentStructure

    if derived is not None:
        result.derived_structures = dict(derived.derived)
        result.derivation_notes = list(derived.notes)
    absent = absent_groups(labels, risk)
    present = set(np.unique(sitk.GetArrayViewFromImage(labels)).tolist())
    if given is not None:
        absent += partly_given_groups(given, present, risk)
    not_found = dict(getattr(derived, "not_found", {}) or {})
    if derived is not None:
        # A derived group that never holds some of its structures (the costal cartilages
        # of "bone"): those are a gap, said like any absent structure.
        for rule in risk.structures:
            miss = [x for x in rule.labels if x in not_found]
            if miss and present & set(rule.labels):
                named = describe_label_ids(miss, TOTALSEGMENTATOR_NAMES)
                absent.append(
                    AbsentStructure(
                        name=rule.name,
                        labels=miss,
                        labels_named=named,
                        heat_sink=rule.heat_sink,
                        partial=True,
                        clearance_mm=rule.clearance_mm,
                        message=(
                            f"no-go group '{rule.name}' is only PARTLY derived: "
                            f"{'; '.join(not_found[x] for x in miss)}; needles are not kept "
                            f"{rule.clearance_mm:g} mm from them: check them on the CT"
                        ),
                    )
                )
    if fill is not None:
        result.derivation_notes += fill.notes
        if "liver" in fill.groups:  # not a risk group: said here
            how, total, _ = fill.groups["liver"]
            result.derived_structures[LIVER_DERIVED] = f"{how}; {total:.1f} ml added"
            result.message += (
                " WARNING: the label map has no liver: the liver was DERIVED from the CT "
                f"({how}). Check it on the CT."
            )
        out = []
        for entry in absent:
            if entry.name not in fill.groups:
                out.append(entry)
                continue
            entry, gap = _split_not_found(entry, fill.not_found, risk)
            if entry is not None:
                how, total, near = fill.groups[entry.name]
                if total > 0:
                    result.derived_structures[f"{entry.name} (absent from the label map)"] = (
                        f"{how}; {total:.1f} ml added, {near:.1f} ml within needle reach"
                    )
                if near > 0:
                    entry.derived_from_ct = (
                        f"DERIVED from the CT instead ({how}): {near:.1f} ml within needle "
                        "reach of the tumour added to the risk map"
                    )
                    entry.message += "; " + entry.derived_from_ct
                else:
                    entry.in_reach = False
                    entry.message = (
                        f"'{entry.name}' ({entry.labels_named}) missing from the label map, "
                        "but not needed here: the CT shows none of it within needle reach "
                        f"of the tumour that the label map lacks ({how})"
                    )
                out.append(entry)
            if gap is not None:
                out.append(gap)
        absent = out
    result.absent_structures = absent
    gaps = [a for a in absent if a.in_reach and not a.derived_from_ct]
    replaced = [a for a in absent if a.in_reach and a.derived_from_ct]
    unneeded = [a for a in absent if not a.in_reach]

    def listing(entries):
        return ", ".join(
            f"{a.name} ({'heat sink' if a.heat_sink else 'no-go'}"
            f"{', partly: ' + a.labels_named + ' missing' if a.partial else ''})"
            for a in entries
        )

    if gaps:
        result.message += (
            f" WARNING: absent from the label map{' derived from the CT' if derived else ''}: "
            f"{listing(gaps)}; the plan neither avoids nor models them. Check them on the CT."
        )
    if replaced:
        result.message += (
            f" WARNING: absent from the label map, DERIVED from the CT instead: "
            f"{listing(replaced)}. Check them on the CT."
        )
    if unneeded:
        result.message += (
            f" Not needed here (none of it on the CT within needle reach): {listing(unneeded)}."
        )


def structure_names(inp, risk) -> dict[int, str]:
    """Names of the labels present: the label sidecar's, else the risk map's rule names."""
    present = np.unique(sitk.GetArrayViewFromImage(inp.labels))
    return {
        int(v): structure_name(int(v), inp.label_names, risk)
        if int(v) not in risk.liver_labels
        else inp.label_names.get(int(v), "liver")
        for v in present
        if v
    }


def _load_plan(path: Path) -> PlanResult:
    text = read_user_text(Path(path), "plan file")
    data = parse_json(text, path)  # bounded depth/size; NaN/Infinity refused
    plan = validate_model(PlanResult, data, path, prefix="not a HepaNav plan: ")
    for key in ("tumor_crop", "heat_sink_band"):
        name = plan.inputs.get(key)
        # The crops are files beside plan.json, named by plain names: no folder parts.
        if name is not None and (Path(name).name != name or name in ("", ".", "..")):
            raise InputError(f"inputs.{key} must be a file name beside plan.json", path)
    return plan


def _zones_from_needles(plan: PlanResult, tips: dict[int, np.ndarray], dirs: dict[int, np.ndarray]):
    """Zone centres/axes of the plan's probes moved with their needle's actual tip/axis."""
    centers, axes = [], []
    deepest = {n.needle: np.asarray(n.tip_lps_mm) for n in plan.needles}
    planned_dir = {n.needle: np.asarray(n.direction) for n in plan.needles}
    for p in plan.probes:
        if p.needle not in tips:
            continue
        pullback = float((deepest[p.needle] - np.asarray(p.tip_lps_mm)) @ planned_dir[p.needle])
        d = dirs[p.needle]
        tip = tips[p.needle] - pullback * d
        centers.append(zone_center(tip, d, plan.device))
        axes.append(d)
    return np.asarray(centers).reshape(-1, 3), np.asarray(axes).reshape(-1, 3)


def _coverage(plan: PlanResult, plan_dir: Path, centers, dirs) -> tuple[float, float]:
    tumor = read_image(plan_dir / plan.inputs.get("tumor_crop", TUMOR_FILE))
    band_path = plan_dir / plan.inputs.get("heat_sink_band", BAND_FILE)
    t = sitk.GetArrayViewFromImage(tumor) > 0
    band = (
        (sitk.GetArrayFromImage(read_image(band_path)) > 0)  # copy: the image is a temporary
        if band_path.is_file()
        else (np.zeros_like(t))
    )
    if band.shape != t.shape:
        raise InputError(
            "the heat-sink band and the tumour crop beside plan.json differ in size", band_path
        )
    spacing_zyx = np.asarray(tumor.GetSpacing())[::-1]
    target = ndimage.distance_transform_edt(~t, sampling=spacing_zyx) <= plan.margin_mm
    from hepanav.imaging.geometry import voxel_to_lps

    def frac(mask):
        idx = np.argwhere(mask)
        if not len(idx) or not len(centers):
            return 0.0
        inside = inside_zones(
            voxel_to_lps(tumor, idx[:, ::-1]), centers, dirs, plan.device.zone_axes_mm
        )
        return float((inside & ~band[mask]).mean())

    return frac(t), frac(target)


def check_control_ct(
    plan: PlanResult,
    plan_path: Path,
    ct: sitk.Image,
    record: InputRecord,
    source: str | Path,
) -> list[str]:
    """Check that a control CT can belong to ``plan``'s case; refuse or return warnings.

    Refused (:class:`InputError` naming ``source``): the planned target (the tumour
    crop beside plan.json, else the planned tips) is not inside the control CT's field
    of view (then it is another case's scan, or one not registered to the planning CT:
    every verdict would be meaningless). Warned: the planning and control CT are DICOM
    series of different frames of reference (a control CT taken later has its own frame
    of reference unless it was registered and resampled onto the planning CT; the
    verdicts assume the latter); the control CT is the planning CT series itself. The
    plan keeps no patient identifier (pseudonymised files), so the patient cannot be
    compared; the field-of-view test is what catches another case's scan.

    Returns
    -------
    list of str
        Warnings for the result (empty when everything matches).
    """
    from hepanav.imaging.geometry import voxel_to_lps

    points = np.array([n.tip_lps_mm for n in plan.needles], float).reshape(-1, 3)
    what = "planned needle tips"
    crop = plan_path.parent / plan.inputs.get("tumor_crop", TUMOR_FILE)
    if crop.is_file():
        tumour = read_image(crop)
        idx = np.argwhere(sitk.GetArrayFromImage(tumour) > 0)
        if len(idx):
            centre = voxel_to_lps(tumour, idx.mean(axis=0, keepdims=True)[:, ::-1])
            points = np.vstack([centre.reshape(1, 3), points])
            what = "planned tumour"
    size = np.asarray(ct.GetSize(), float)
    outside = []
    for p in points:
        ijk = np.asarray(ct.TransformPhysicalPointToContinuousIndex([float(v) for v in p]))
        if np.any(ijk < -0.5) or np.any(ijk > size - 0.5):
            outside.append(p)
    if outside:
        p = outside[0]
        raise InputError(
            f"the {what} (LPS {p[0]:.0f}, {p[1]:.0f}, {p[2]:.0f} mm) lies outside this CT's "
            f"field of view ({len(outside)} of {len(points)} planned points): it is not this "
            "plan's control CT registered to the planning CT",
            source,
        )
    warnings = []
    planning = next((r for r in plan.input_records if r.role == "planning CT"), None)
    if planning is not None:
        a, b = planning.frame_of_reference_uid, record.frame_of_reference_uid
        if a and b and a != b:
            warnings.append(
                "the control CT's frame of reference differs from the planning CT's: the "
                "verdicts assume it was registered and resampled onto the planning CT"
            )
        if planning.series_instance_uid and planning.series_instance_uid == (
            record.series_instance_uid
        ):
            warnings.append("the control CT is the planning CT series itself")
    return warnings


#: Voxels finer than this (mm) over a field smaller than ``MIN_CT_FIELD_MM`` are not an
#: abdominal CT: abdominal CT voxels are >= about 0.5 mm (a 250-500 mm field on 512
#: pixels; slices >= 0.5 mm) and its field holds the abdomen (> 200 mm across). Both
#: together are a header written in cm (2.5 mm voxels read as 0.25 mm, a 400 mm torso
#: as 40 mm). Each alone is allowed (small test phantoms, fine reconstructions).
MIN_CT_VOXEL_MM = 0.3
MIN_CT_FIELD_MM = 100.0


def check_ct_units(ct: sitk.Image, source) -> None:
    """Refuse a planning CT whose header spacing is implausible for an abdominal CT.

    Voxels below ``MIN_CT_VOXEL_MM`` (smallest spacing) over a field of view whose largest
    extent (size x spacing) is below ``MIN_CT_FIELD_MM``: most likely spacing in cm, which
    would shrink every distance, clearance and zone fit tenfold. Raises ``InputError``
    naming ``source``, the spacing and the field found.
    """
    spacing = np.asarray(ct.GetSpacing(), dtype=float)
    field_mm = spacing * np.asarray(ct.GetSize(), dtype=float)
    if spacing.min() < MIN_CT_VOXEL_MM and field_mm.max() < MIN_CT_FIELD_MM:
        raise InputError(
            f"implausible for an abdominal CT: voxels {' x '.join(f'{v:g}' for v in spacing)}"
            f" mm over a {' x '.join(f'{v:.3g}' for v in field_mm)} mm field of view (voxels "
            f"< {MIN_CT_VOXEL_MM:g} mm and field < {MIN_CT_FIELD_MM:g} mm); is the header "
            "spacing in cm instead of mm?",
            source,
        )


def check_control_voxels(ct: sitk.Image, source) -> None:
    """Refuse a control CT whose voxels are coarser than the needle detector's limit.

    Beyond ``MAX_CONTROL_VOXEL_MM`` (largest spacing, mm) partial-volumed needles break
    up: needles placed exactly on plan come out MISSING or EXTRA, so no verdict can be
    given. Raises ``InputError`` naming ``source`` and the spacing found.
    """
    coarsest = float(max(ct.GetSpacing()))
    if coarsest > MAX_CONTROL_VOXEL_MM + 1e-6:
        spacing = " x ".join(f"{s:g}" for s in ct.GetSpacing())
        raise InputError(
            f"placement undetermined: control CT voxels {spacing} mm are coarser than the "
            f"needle detector's limit {MAX_CONTROL_VOXEL_MM:g} mm (largest spacing); needles "
            "would be reported MISSING or EXTRA regardless of their position: reconstruct "
            f"the control CT with voxels and slices of at most {MAX_CONTROL_VOXEL_MM:g} mm",
            source,
        )


def run_verification(
    plan_path: Path,
    control_ct_path: Path,
    out_dir: Path,
    *,
    threshold_hu: float = 2000.0,
    lateral_tolerance_mm: float = LATERAL_TOLERANCE_MM,
    depth_tolerance_mm: float = DEPTH_TOLERANCE_MM,
    series: str | None = None,
) -> tuple[PlacementResult, list[Path]]:
    """Detect needles in a control CT (registered to the planning CT), compare with the plan.

    Each planned needle gets a verdict (OK / advance / withdraw / redirect / MISSING,
    :func:`hepanav.planning.verification.needle_verdict`) with the tolerances given;
    unplanned metal lines are EXTRA. The tolerances must be finite and in
    (0, ``MAX_TOLERANCE_MM`` = 20] mm (the largest plan margin), checked before any file
    is read (``InputError`` naming the option otherwise).
    """
    for value, option in (
        (lateral_tolerance_mm, "--lateral-tolerance"),
        (depth_tolerance_mm, "--depth-tolerance"),
    ):
        check_number(value, option, 0.0, MAX_TOLERANCE_MM, lo_open=True, unit="mm")
    plan_path = Path(plan_path)
    plan_res = _load_plan(plan_path)
    if not plan_res.feasible:
        raise InputError(
            "the plan is not feasible: its needles are not a placement plan (no "
            "trajectories were exported); plan again and verify against a feasible plan",
            plan_path,
        )
    ct, ct_record = load_ct(control_ct_path, "control CT", series=series)
    case_warnings = check_control_ct(plan_res, plan_path, ct, ct_record, control_ct_path)
    check_control_voxels(ct, control_ct_path)
    found = detect_needles(ct, threshold_hu)
    planned_tips = np.array([n.tip_lps_mm for n in plan_res.needles]).reshape(-1, 3)
    planned_dirs = np.array([n.direction for n in plan_res.needles]).reshape(-1, 3)
    pairs = match_needles(planned_tips, planned_dirs, found)
    matched = dict(pairs)
    errors: list[NeedleError] = []
    tips, dirs = {}, {}
    for i, needle in enumerate(plan_res.needles):
        if i in matched:
            det = found[matched[i]]
            tips[needle.needle], dirs[needle.needle] = det.tip, det.direction
            err = positioning_error(planned_tips[i], planned_dirs[i], det.tip, det.direction)
            code, text = needle_verdict(
                planned_tips[i],
                planned_dirs[i],
                det.tip,
                lateral_tolerance_mm=lateral_tolerance_mm,
                depth_tolerance_mm=depth_tolerance_mm,
            )
            errors.append(
                NeedleError(
                    planned_needle=needle.needle,
                    detected=matched[i] + 1,
                    tip_planned_lps_mm=tuple(planned_tips[i]),
                    tip_actual_lps_mm=tuple(det.tip),
                    direction_actual=tuple(det.direction),
                    **err,
                    verdict=text,
                    verdict_code=code,
                )
            )
        else:
            errors.append(
                NeedleError(
                    planned_needle=needle.needle,
                    detected=None,
                    tip_planned_lps_mm=tuple(planned_tips[i]),
                    tip_actual_lps_mm=None,
                    direction_actual=None,
                    lateral_mm=None,
                    longitudinal_mm=None,
                    euclidean_mm=None,
                    angle_deg=None,
                    verdict="MISSING",
                    verdict_code="missing",
                )
            )
    used = set(matched.values())
    for j, det in enumerate(found):
        if j not in used:
            errors.append(
                NeedleError(
                    planned_needle=None,
                    detected=j + 1,
                    tip_planned_lps_mm=None,
                    tip_actual_lps_mm=tuple(det.tip),
                    direction_actual=tuple(det.direction),
                    lateral_mm=None,
                    longitudinal_mm=None,
                    euclidean_mm=None,
                    angle_deg=None,
                    verdict="EXTRA (not planned)",
                    verdict_code="extra",
                )
            )
    centers, zdirs = _zones_from_needles(plan_res, tips, dirs)
    cov_t, cov_g = _coverage(plan_res, plan_path.parent, centers, zdirs)
    missing_ids = [e.planned_needle for e in errors if e.verdict_code == "missing"]
    extra = sum(1 for e in errors if e.verdict_code == "extra")
    to_fix = [e for e in errors if e.verdict_code in ("advance", "withdraw", "redirect")]
    message = (
        f"{len(pairs)} of {len(plan_res.needles)} planned needles found"
        + (f"; MISSING: needle {', '.join(map(str, missing_ids))}" if missing_ids else "")
        + (f"; EXTRA: {extra} unplanned metal line(s)" if extra else "")
        + "; "
        + (
            "; ".join(f"needle {e.planned_needle}: {e.verdict}" for e in to_fix)
            if to_fix
            else ("every found needle OK" if pairs else "no needle to judge")
        )
        + f" (tolerance {lateral_tolerance_mm:g} mm lateral, {depth_tolerance_mm:g} mm depth)"
        + f"; predicted coverage of tumour + {plan_res.margin_mm:g} mm from the actual "
        f"needles {100 * cov_g:.1f}% (planned {100 * plan_res.coverage_target:.1f}%)."
        + "".join(f" WARNING: {w}" for w in case_warnings)
    )
    result = PlacementResult(
        plan=recorded_path(plan_path),
        control_ct=recorded_path(control_ct_path),
        metal_threshold_hu=threshold_hu,
        needles_planned=len(plan_res.needles),
        needles_detected=len(found),
        errors=errors,
        coverage_tumor_planned=plan_res.coverage_tumor,
        coverage_target_planned=plan_res.coverage_target,
        coverage_tumor_actual=cov_t,
        coverage_target_actual=cov_g,
        message=message,
        lateral_tolerance_mm=lateral_tolerance_mm,
        depth_tolerance_mm=depth_tolerance_mm,
        missing=missing_ids,
        extra=extra,
        warnings=case_warnings,
    )
    out_dir = Path(out_dir)
    tumour_path = plan_path.parent / plan_res.inputs.get("tumor_crop", TUMOR_FILE)
    tumour = read_image(tumour_path) if tumour_path.is_file() else None
    detected = {
        e.planned_needle: found[e.detected - 1]
        for e in errors
        if e.planned_needle is not None and e.detected is not None
    }
    written = [
        write_json(out_dir / "placement.json", result),
        write_placement_report(
            result,
            out_dir / "report.html",
            plan=plan_res,
            control_ct=ct,
            detected=detected,
            tumour=tumour,
        ),
    ]
    return result, written
