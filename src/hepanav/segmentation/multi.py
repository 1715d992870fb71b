"""One lesion per click: the seeds of a tumour or zone grouped into lesions, each
segmented on its own, then united (``hepanav segment`` and ``hepanav margin
--tumor-seed/--ablation-seed``; docs/segmentation.md "Several seeds").

Seeds are taken in the order given. A seed inside the region grown from an earlier
lesion's seeds refines that lesion (the lesion is grown again from all its seeds); any
other seed starts a lesion of its own, segmented as if it were the only seed. The mask
is the union of the lesions; each lesion is listed (its seeds, volume, border faces) in
the JSON and report, measured on the final mask (:func:`lesion_records`: the lesions
partition it, so their volumes sum to the total). A seed that ends up outside every
lesion is refused, never silently dropped.
``--include`` points go to the lesion with the nearest seed; ``--exclude`` points apply
to every lesion, and what lies closer to an exclude point than to every seed and
include point is removed from the final mask (:func:`enforce_exclude`) after all the
smoothing, edge fitting and joins, so it can never come back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from hepanav.core.errors import InputError
from hepanav.imaging.geometry import voxel_to_lps
from hepanav.segmentation.morphology import bounding_box, crop_box
from hepanav.segmentation.result import Segmentation, paste
from hepanav.segmentation.seeds import Seed

_NAMES = {"tumor": "tumour", "ablation": "ablation zone", "liver": "liver"}


@dataclass
class LesionPart:
    """One lesion: the clicks that grew it (as given) and its segmentation (CT grid)."""

    seeds: list[Seed]
    seg: Segmentation | None


def _holds(mask: sitk.Image, seed: Seed) -> bool:
    i, j, k = seed.index
    return bool(sitk.GetArrayViewFromImage(mask)[k, j, i])


def _nearest(parts: list[LesionPart], p: Seed) -> int:
    d = [min(float(np.linalg.norm(np.subtract(p.lps, s.lps))) for s in q.seeds) for q in parts]
    return int(np.argmin(d))


def segment_lesions(
    ct: sitk.Image,
    seeds: list[Seed],
    include: list[Seed],
    exclude: list[Seed],
    segment_one: Callable[[list[Seed], list[Seed], list[Seed]], Segmentation],
) -> Segmentation:
    """Group ``seeds`` into lesions, segment each with ``segment_one(seeds, include,
    exclude)`` (the single-lesion segmenter, include points joined), unite them and
    enforce the exclude points (module doc).

    Returns the united :class:`Segmentation` (CT grid) with ``lesions`` filled: one
    dict per lesion (``seeds``: labels as given, ``volume_ml``,
    ``equivalent_diameter_mm``, ``lesion_hu``, ``parenchyma_hu``, ``window_hu``,
    ``appearance``, ``border_faces``), measured on the final mask, and ``lesion_map``
    (which lesion each mask voxel belongs to, :func:`lesion_map`).

    Raises
    ------
    InputError
        A lesion's own refusal (naming its first seed), or a seed outside every lesion.
    """
    parts: list[LesionPart] = []
    if len(seeds) == 1:  # one click: its lesion, include points joined, in one pass
        parts.append(LesionPart(list(seeds), segment_one(list(seeds), include, exclude)))
        include = []
    for s in seeds if len(seeds) > 1 else []:
        owner = next((q for q in parts if q.seg is not None and _holds(q.seg.mask, s)), None)
        if owner is None:
            parts.append(LesionPart([s], segment_one([s], [], exclude)))
        else:
            owner.seeds.append(s)
    own_include: list[list[Seed]] = [[] for _ in parts]
    for p in include:
        own_include[_nearest(parts, p)].append(p)
    for q, inc in zip(parts, own_include, strict=True):
        if len(q.seeds) > 1 or inc:  # refined from all its seeds, its include points joined
            q.seg = segment_one(q.seeds, inc, exclude)
    seg = _unite(ct, parts)
    enforce_exclude(ct, seg, seeds + seg.include, exclude)
    seg.lesion_map = lesion_map(seg.mask, parts)
    seg.lesions = lesion_records(seg.mask, parts, seg.lesion_map)
    if len(parts) > 1:
        seg.notes.insert(0, _union_note(seg, parts))
    what = _NAMES[seg.structure]
    for s in seeds:
        moved = [m for m in seg.seeds if m.label == s.label]
        if not (_holds(seg.mask, s) or any(_holds(seg.mask, m) for m in moved)):
            raise InputError(
                f"the seed lies outside the {what} segmented (its own region did not hold it "
                "after smoothing and the --exclude cut); move it into the lesion or leave it out",
                s.describe(),
            )
    return seg


def lesion_map(mask: sitk.Image, parts: list[LesionPart]) -> sitk.Image:
    """Which lesion each voxel of the FINAL ``mask`` belongs to: a uint8 label image on
    the bounding box of ``mask`` grown by one voxel (so that a contour drawn from it by
    linear interpolation closes as on the full grid; a sub-box of its grid, same
    spacing, direction and physical positions; the whole grid for an empty mask), 0
    outside the mask, ``n`` for
    lesion ``n`` (1-based, the order of ``parts``).

    Each mask voxel belongs to the lesion whose own (pre-union) region holds it; one held
    by several touching lesions, or (never expected) by none, to the lesion with the
    nearest seed (its clicks and moved seeds). So the lesions partition the mask.

    Raises
    ------
    ValueError
        More than 255 lesions (the label type).
    """
    if len(parts) > 255:
        raise ValueError(f"{len(parts)} lesions: at most 255 can be labelled")
    box = bounding_box(mask, pad_voxels=1)
    if box is None:
        box = ([0, 0, 0], list(mask.GetSize()))
    local = crop_box(mask, box)
    k, j, i = np.nonzero(sitk.GetArrayFromImage(local))
    owner = np.full(k.size, -1)
    if len(parts) == 1:
        owner[:] = 0
    else:
        held = np.array(
            [sitk.GetArrayFromImage(crop_box(q.seg.mask, box))[k, j, i] > 0 for q in parts]
        )
        single = held.sum(axis=0) == 1
        owner[single] = np.argmax(held[:, single], axis=0)
        rest = ~single
        if np.any(rest):
            lps = voxel_to_lps(local, np.column_stack([i[rest], j[rest], k[rest]]).astype(float))
            dist = np.array([_seed_distance(lps, q.seeds + q.seg.seeds) for q in parts])
            dist[~held[:, rest] & held[:, rest].any(axis=0)] = np.inf  # only lesions holding it
            owner[rest] = np.argmin(dist, axis=0)
    labels = np.zeros(sitk.GetArrayViewFromImage(local).shape, np.uint8)
    labels[k, j, i] = owner + 1
    out = sitk.GetImageFromArray(labels)
    out.CopyInformation(local)
    return out


def lesion_records(
    mask: sitk.Image, parts: list[LesionPart], labels: sitk.Image | None = None
) -> list[dict]:
    """One record per lesion, measured on the FINAL ``mask`` (after the union, joins
    and the exclude cut), its voxels those of :func:`lesion_map` (``labels``, computed
    when not given): the lesions partition the mask and their voxel-counted
    ``volume_ml`` sum to the total's. ``border_faces``: the image faces
    (:func:`hepanav.imaging.border.border_faces`) the lesion's voxels touch (non-empty:
    its volume and diameter are lower bounds). ``lesion_hu``, ``parenchyma_hu``,
    ``window_hu`` (HU) and ``appearance``: the lesion's own, as segmented from its seeds."""
    from hepanav.imaging.border import border_faces

    if labels is None:
        labels = lesion_map(mask, parts)
    voxel_ml = float(np.prod(mask.GetSpacing())) / 1000.0
    start = np.asarray(mask.TransformPhysicalPointToIndex(labels.GetOrigin()))
    arr = sitk.GetArrayViewFromImage(labels)
    records = []
    for n, q in enumerate(parts, 1):
        k, j, i = np.nonzero(arr == n)
        volume = int(k.size) * voxel_ml
        faces = []
        if k.size:  # its own index box on the full grid
            ijk = np.column_stack([i, j, k]) + start
            faces = border_faces(mask, (ijk.min(axis=0), ijk.max(axis=0)))
        window = q.seg.window_hu
        records.append(
            {
                "seeds": [s.label for s in q.seeds],
                "volume_ml": volume,
                "equivalent_diameter_mm": float(2 * (3 * volume * 1000 / (4 * np.pi)) ** (1 / 3)),
                "lesion_hu": q.seg.lesion_hu,
                "parenchyma_hu": q.seg.parenchyma_hu,
                "window_hu": None if window is None else (float(window[0]), float(window[1])),
                "appearance": q.seg.appearance,
                "border_faces": faces,
            }
        )
    return records


def _seed_distance(lps: np.ndarray, seeds: list[Seed]) -> np.ndarray:
    """Distance (mm) of each of the (n, 3) LPS points to the nearest of ``seeds``."""
    return np.min([np.linalg.norm(lps - np.asarray(s.lps), axis=1) for s in seeds], axis=0)


def _union_note(seg: Segmentation, parts: list[LesionPart]) -> str:
    return (
        f"{len(parts)} separate {_NAMES[seg.structure]}s segmented, one per click outside the "
        "earlier ones (each grown on its own; the mask is their union, each voxel counted "
        "once, for the lesion whose region holds it or, where they touch, the nearest seed): "
        + "; ".join(
            f"lesion {n} from {', '.join(r['seeds'])} ({r['volume_ml']:.2f} ml)"
            for n, r in enumerate(seg.lesions, 1)
        )
    )


def _unite(ct: sitk.Image, parts: list[LesionPart]) -> Segmentation:
    """The lesions' union: the first lesion's record (HU, window: the top-level
    ``lesion_hu``/``parenchyma_hu``/``window_hu`` of the JSON are lesion 1's; each
    lesion's own are in its ``lesions`` record) with every lesion's
    seeds, notes (prefixed by the lesion when there are several) and include outcomes;
    ``lesions`` is filled later, on the final mask (:func:`lesion_records`)."""
    first = parts[0].seg
    if len(parts) == 1:
        return first
    mask = first.mask
    for q in parts[1:]:
        mask = sitk.Or(mask, q.seg.mask)
    notes, outcomes, seeds = [], [], []
    for n, q in enumerate(parts, 1):
        notes += [f"lesion {n} ({'; '.join(s.label for s in q.seeds)}): {t}" for t in q.seg.notes]
        outcomes += q.seg.include_outcomes
        seeds += q.seg.seeds
    fraction = None
    if first.fraction is not None:
        from hepanav.segmentation.fraction import edge_fraction

        fraction = edge_fraction(ct, mask)
    return Segmentation(
        mask=mask,
        structure=first.structure,
        method=first.method,
        seeds=seeds,
        include=[p for q in parts for p in q.seg.include],
        exclude=first.exclude,
        appearance=first.appearance,
        lesion_hu=first.lesion_hu,
        parenchyma_hu=first.parenchyma_hu,
        window_hu=first.window_hu,
        max_radius_mm=first.max_radius_mm,
        notes=notes,
        fraction=fraction,
        include_outcomes=outcomes,
        excluded_mm3=sum(q.seg.excluded_mm3 for q in parts),
    )


def enforce_exclude(ct: sitk.Image, seg: Segmentation, keep: list[Seed], exclude: list[Seed]):
    """Remove from ``seg`` (in place: mask, edge fractions) every voxel closer to an
    exclude point than to every point of ``keep`` (the seeds and include points): the
    growing cuts there, but the surface smoothing, small-lesion fit, hole filling and
    include joins that follow may put a few voxels back. A note says how much the
    exclude points cut (grown and final, mm^3)."""
    if not exclude:
        return
    box = bounding_box(seg.mask)
    if box is None:
        return
    local = crop_box(seg.mask, box)
    arr = sitk.GetArrayFromImage(local) > 0
    k, j, i = np.nonzero(arr)
    lps = voxel_to_lps(local, np.column_stack([i, j, k]).astype(float))
    d_in = np.min([np.linalg.norm(lps - np.asarray(s.lps), axis=1) for s in keep], axis=0)
    d_out = np.min([np.linalg.norm(lps - np.asarray(s.lps), axis=1) for s in exclude], axis=0)
    cut = d_out < d_in
    for x in exclude:  # the exclude point's own voxel, whatever the voxel's shape
        cut |= (
            (i == x.index[0] - box[0][0])
            & (j == x.index[1] - box[0][1])
            & (k == x.index[2] - box[0][2])
        )
    voxel_mm3 = float(np.prod(ct.GetSpacing()))
    if np.any(cut):
        arr[k[cut], j[cut], i[cut]] = False
        out = sitk.GetImageFromArray(arr.astype(np.uint8))
        out.CopyInformation(local)
        seg.mask = paste(out, ct)
        if seg.fraction is not None:
            from hepanav.segmentation.fraction import edge_fraction

            seg.fraction = edge_fraction(ct, seg.mask)
    grown_cut = float(getattr(seg, "excluded_mm3", 0.0) or 0.0)
    seg.notes.append(
        f"--exclude: the part of the {_NAMES[seg.structure]} closer to "
        f"{'; '.join(x.label for x in exclude)} than to every seed is cut off "
        f"({grown_cut:.0f} mm^3 cut while growing; {int(np.count_nonzero(cut)) * voxel_mm3:.0f} "
        "mm^3 that later steps (small-lesion fit, surface smoothing, hole filling, include "
        "joins) put back removed again); the exclude point is not in the mask"
    )
