"""Per-needle guidance a person can follow at the CT table (definitions in docs/planning.md).

For each needle: the skin entry as slice / table position and its offsets from the
body midline, the in-plane and craniocaudal angles, the depth to the tip and to each
pull-back position, the energy and time per position and in total, and the labelled
structures along the path. Also the tumour's size and volume.

Conventions (LPS mm: +x patient left, +y posterior, +z superior; patient supine):

- in-plane angle: angle of the needle's projection onto the axial plane from the
  vertical (anterior -> posterior) axis, positive when the tip lies to the patient's
  left of the entry; 0 = straight down from the front, +90 = horizontal from the
  patient's right side towards the left, in (-180, 180].
- craniocaudal angle: angle between the needle and the axial plane (the gantry tilt
  that would show the whole needle in one slice), positive when the tip lies cranial
  of the entry.
- midline: centre of the vertebra labels in the entry's slice, else of the body
  outline's left-right extent (CT > -500 HU, largest component); left-right offset + =
  patient left; anterior-posterior offset = entry y minus the most anterior skin point
  on the midline (+ = posterior).
- entry on the skin: checked on the CT (air 3 and 6 mm outside the entry, inside the
  image); an entry that is not (a path leaving a thin scanned slab) is flagged.
- energy per position = device power x time (device table in planning/data/devices,
  with its source); this is the generator output, not the energy deposited in tissue.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from hepanav.imaging.geometry import lps_to_voxel, voxel_to_lps
from hepanav.planning.schema import (
    Device,
    NeedleGuide,
    NeedlePosition,
    PathSegment,
    PlanResult,
    TumourSize,
)

BODY_HU = -500.0  # body outline threshold, as the planner's work grid


def needle_angles(entry, tip) -> tuple[float, float]:
    """(in-plane angle, craniocaudal angle) in degrees of the needle entry -> tip (LPS mm).

    Raises ValueError when entry and tip coincide.
    """
    d = np.asarray(tip, dtype=float) - np.asarray(entry, dtype=float)
    n = float(np.linalg.norm(d))
    if n == 0:
        raise ValueError("entry and tip coincide")
    d = d / n
    in_plane = float(np.degrees(np.arctan2(d[0], d[1]))) if np.hypot(d[0], d[1]) > 1e-12 else 0.0
    cranio = float(np.degrees(np.arcsin(np.clip(d[2], -1.0, 1.0))))
    return in_plane, cranio


def angle_words(in_plane_deg: float, cranio_deg: float) -> str:
    """E.g. '25° from vertical toward the patient's left, 10° cranial'."""
    side = "left" if in_plane_deg > 0 else "right"
    base = "from vertical" if abs(in_plane_deg) <= 90 else "from vertical (entry posterior)"
    first = (
        "vertical"
        if abs(in_plane_deg) < 0.5
        else f"{abs(in_plane_deg):.0f}\u00b0 {base} toward the patient's {side}"
    )
    cc = (
        "in the axial plane"
        if abs(cranio_deg) < 0.5
        else (f"{abs(cranio_deg):.0f}\u00b0 {'cranial' if cranio_deg > 0 else 'caudal'}")
    )
    return f"{first}, {cc}"


#: TotalSegmentator v2 vertebra labels (C1-C7, T1-T12, L1-L5, S1: 26-50).
VERTEBRA_LABELS = tuple(range(26, 51))


def midline_at(
    ct: sitk.Image, slice_index: int, labels: sitk.Image | None = None
) -> tuple[float, float, str] | None:
    """(midline x, anterior skin y on the midline, source) in LPS mm for one axial slice.

    The midline is the centre of the vertebra labels in the slice when ``labels`` (on
    the CT grid) has any there (source "spine": the spinous processes are what a person
    feels and what the laser is set to), else the centre of the body's left-right extent
    (source "body outline"; the body is the largest region above -500 HU in the slice,
    so an arm beside the trunk does not shift it). None when the slice holds no body.
    ``slice_index`` is the array's third index: the CT must be in axial array order
    (:func:`hepanav.imaging.orient.axial_order`; :func:`needle_guides` does this);
    ``ValueError`` otherwise.
    """
    from hepanav.imaging.orient import axial_order

    if axial_order(ct)[0] is not ct:
        raise ValueError("midline_at: the CT is not in axial array order (use axial_order)")
    arr = sitk.GetArrayViewFromImage(ct)[int(slice_index)] > BODY_HU
    labelled, n = ndimage.label(arr)
    if not n:
        return None
    sizes = ndimage.sum_labels(arr, labelled, range(1, n + 1))
    body = labelled == (int(np.argmax(sizes)) + 1)
    rows, cols = np.nonzero(body)
    pts = voxel_to_lps(ct, np.column_stack([cols, rows, np.full(len(rows), slice_index)]))
    mid_x, source = float((pts[:, 0].min() + pts[:, 0].max()) / 2.0), "body outline"
    if labels is not None:
        lab = sitk.GetArrayViewFromImage(labels)[int(slice_index)]
        vr, vc = np.nonzero(np.isin(lab, VERTEBRA_LABELS))
        if len(vr):
            spine = voxel_to_lps(labels, np.column_stack([vc, vr, np.full(len(vr), slice_index)]))
            mid_x, source = float(spine[:, 0].mean()), "spine"
    near = np.abs(pts[:, 0] - mid_x) <= max(ct.GetSpacing()[0], 1.0)
    anterior_y = float(pts[near, 1].min()) if near.any() else float(pts[:, 1].min())
    return mid_x, anterior_y, source


def entry_on_skin(ct: sitk.Image, entry, direction) -> bool:
    """True when the CT 3 and 6 mm outside ``entry`` (against ``direction``) is air in the image."""
    arr = sitk.GetArrayViewFromImage(ct)
    d = np.asarray(direction, dtype=float) / np.linalg.norm(direction)
    for back in (3.0, 6.0):
        idx = np.rint(lps_to_voxel(ct, (np.asarray(entry) - back * d)[None])[0]).astype(int)
        if np.any(idx < 0) or np.any(idx >= np.asarray(ct.GetSize())):
            return False
        if arr[idx[2], idx[1], idx[0]] > BODY_HU:
            return False
    return True


def path_segments(
    labels: sitk.Image,
    names: dict[int, str],
    entry,
    tip,
    step_mm: float = 0.5,
    tumour: sitk.Image | None = None,
) -> list[PathSegment]:
    """Labelled structures along entry -> tip as depth ranges (mm from the entry).

    Labels are sampled with nearest neighbour every ``step_mm`` in physical space;
    label 0 is called "outside labelled organs" (fat, muscle); samples inside
    ``tumour`` (same grid as ``labels``) are called "tumour". Runs shorter than one
    step are kept (a thin vessel wall matters).
    """
    e, t = np.asarray(entry, dtype=float), np.asarray(tip, dtype=float)
    length = float(np.linalg.norm(t - e))
    depths = np.arange(0.0, length + 1e-9, step_mm)
    pts = e + depths[:, None] * (t - e) / max(length, 1e-9)
    arr = sitk.GetArrayViewFromImage(labels)
    idx = np.rint(lps_to_voxel(labels, pts)).astype(int)
    inside = np.all((idx >= 0) & (idx < np.asarray(labels.GetSize())), axis=1)
    values = np.zeros(len(pts), dtype=int)
    values[inside] = arr[idx[inside, 2], idx[inside, 1], idx[inside, 0]]
    if tumour is not None:
        tum = sitk.GetArrayViewFromImage(tumour)
        in_tumour = np.zeros(len(pts), dtype=bool)
        in_tumour[inside] = tum[idx[inside, 2], idx[inside, 1], idx[inside, 0]] > 0
        values[in_tumour] = -1
    segments: list[PathSegment] = []
    start = 0
    for k in range(1, len(values) + 1):
        if k == len(values) or values[k] != values[start]:
            v = int(values[start])
            name = (
                "tumour"
                if v == -1
                else names.get(v, f"label {v}")
                if v
                else "outside labelled organs"
            )
            segments.append(
                PathSegment(
                    structure=name, from_mm=float(depths[start]), to_mm=float(depths[k - 1])
                )
            )
            start = k
    return segments


def needle_guides(
    plan: PlanResult,
    ct: sitk.Image,
    labels: sitk.Image | None,
    names: dict[int, str],
    tumour: sitk.Image | None = None,
) -> list[NeedleGuide]:
    """The guidance rows of every needle of ``plan`` on the planning CT.

    ``labels`` and ``tumour`` (optional) lie on the CT grid; ``names`` maps label ids
    to structure names for the list of structures each path passes. A coronal or
    sagittal CT is read in axial array order (exact permutation,
    :func:`hepanav.imaging.orient.axial_order`): the entry slice is the axial slice of
    that order (1 = the first along the series' S-I direction). Raises ``InputError``
    for an oblique CT (more than 5 degrees off the patient axes).
    """
    from hepanav.imaging.orient import axial_order

    ct, _ = axial_order(ct, "planning CT")
    if labels is not None:
        labels, _ = axial_order(labels, "organ labels")
    if tumour is not None:
        tumour, _ = axial_order(tumour, "tumour")
    device: Device = plan.device
    energy_kj = (
        device.power_w * device.time_min * 60.0 / 1000.0
        if device.power_w is not None and device.time_min is not None
        else None
    )
    guides = []
    for needle in plan.needles:
        entry, tip = np.asarray(needle.entry_lps_mm), np.asarray(needle.tip_lps_mm)
        k = ct.TransformPhysicalPointToContinuousIndex(entry.tolist())[2]
        k = int(np.clip(round(k), 0, ct.GetSize()[2] - 1))
        mid = midline_at(ct, k, labels)
        in_plane, cranio = needle_angles(entry, tip)
        probes = sorted(
            (p for p in plan.probes if p.needle == needle.needle), key=lambda p: p.position
        )
        depth_tip = float(np.linalg.norm(tip - entry))
        positions = []
        for p in probes:
            depth = float(np.linalg.norm(np.asarray(p.tip_lps_mm) - entry))
            positions.append(
                NeedlePosition(
                    position=p.position,
                    depth_mm=depth,
                    pullback_mm=depth_tip - depth,
                    power_w=device.power_w,
                    time_min=device.time_min,
                    energy_kj=energy_kj,
                )
            )
        guides.append(
            NeedleGuide(
                needle=needle.needle,
                entry_slice=k + 1,
                entry_table_mm=float(entry[2]),
                entry_lr_from_midline_mm=float(entry[0] - mid[0]) if mid else float("nan"),
                entry_ap_from_anterior_skin_mm=float(entry[1] - mid[1]) if mid else float("nan"),
                in_plane_angle_deg=in_plane,
                craniocaudal_angle_deg=cranio,
                depth_to_tip_mm=depth_tip,
                positions=positions,
                energy_total_kj=None if energy_kj is None else energy_kj * len(positions),
                time_total_min=None
                if device.time_min is None
                else device.time_min * len(positions),
                passes=path_segments(labels, names, entry, tip, tumour=tumour)
                if labels is not None
                else [],
                midline_from=mid[2] if mid else "none",
                entry_on_skin=entry_on_skin(ct, entry, tip - entry),
            )
        )
    return guides


def tumour_size(tumour: sitk.Image) -> TumourSize:
    """Volume (ml), largest diameter and LR/AP/CC extents (mm) of a tumour mask."""
    arr = sitk.GetArrayViewFromImage(tumour) > 0
    idx = np.argwhere(arr)[:, ::-1].astype(float)
    a = np.asarray(tumour.GetDirection(), dtype=float).reshape(3, 3) * np.asarray(
        tumour.GetSpacing()
    )
    pts = idx @ a.T + np.asarray(tumour.GetOrigin())
    try:
        hull = pts[ConvexHull(pts).vertices] if len(pts) >= 4 else pts
    except QhullError:  # flat or tiny masks
        hull = pts
    diff = hull[:, None, :] - hull[None, :, :]
    diameter = float(np.sqrt((diff**2).sum(-1)).max()) if len(hull) > 1 else 0.0
    # extents edge to edge (voxel centres plus one spacing along each patient axis)
    span = pts.max(axis=0) - pts.min(axis=0) + np.abs(a).sum(axis=1)
    voxel_ml = float(np.prod(tumour.GetSpacing())) / 1000.0
    return TumourSize(
        volume_ml=float(arr.sum()) * voxel_ml,
        max_diameter_mm=diameter,
        extent_lr_mm=float(span[0]),
        extent_ap_mm=float(span[1]),
        extent_cc_mm=float(span[2]),
    )
