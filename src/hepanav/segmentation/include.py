"""``--include`` points of a tumour or ablation zone: kept, joined, or refused.

The lesion is grown from its seeds within a bound star-shaped about them
(:mod:`hepanav.segmentation.grow`), so a lobe of a lobulated metastasis or of a zone
that the bound cut off is missed, and a click on it used to be refused. Here each
include point outside the grown mask is joined when it lies on the same structure:

1. the HU around it (median within 2 mm, :func:`hepanav.segmentation.seeds.local_hu`)
   lies in the HU range the lesion was grown over (``Segmentation.window_hu``), else
   it is *different tissue*;
2. a second region is grown from it with that same range on the same smoothed CT
   (Gaussian ``grow.smoothing_sigma``; SimpleITK ``ConnectedThreshold``), held within
   ``--max-radius-mm`` of the nearest seed (LPS mm). It must come within one voxel of
   the grown lesion (``JOIN_CONTACT_VOXELS``): connected to it through lesion-like
   voxels, else it is *not connected*;
3. its part beyond ``JOIN_SHELL_MM`` of the lesion around the click (the lobe; what the
   second region re-grows of the lesion itself, and anything attached to the lesion
   elsewhere, is left out) is opened (ball of half the click's depth, 1-4 mm) to cut
   thin attachments (a vessel of lesion-like HU), the lobe's own voxels within
   ``JOIN_RECONSTRUCT_MM`` of the opened part and of the lesion restored;
4. if that lobe still reaches ``--max-radius-mm`` (within a voxel of the bound), it
   is a *leak* (parenchyma or a structure of the same HU running on) and refused;
5. otherwise lesion and lobe are joined (the lobe's surface smoothed as the lesion's,
   ``result.smooth_surface``), holes filled, and the edge fractions recomputed.

A refusal is an ``InputError`` naming the include point, its HU and the reason, before
anything is written. The outcome of every include point (in the mask as grown, or
joined with its volume in mm^3; a click just outside the lesion whose nearest voxel in
the HU range is in it: on the edge, nothing added) is kept in
``Segmentation.include_outcomes`` and as a note.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from hepanav.core.errors import InputError
from hepanav.imaging.geometry import index_to_lps_matrix, lps_to_voxel
from hepanav.segmentation.morphology import (
    bounding_box,
    component_at,
    crop_box,
    dilate_mm,
    fill_holes,
    open_mm,
    signed_distance_mm,
)
from hepanav.segmentation.result import (
    Segmentation,
    paste,
    remove_spikes_and_pits,
    smooth_surface,
)
from hepanav.segmentation.seeds import Seed, local_hu

# The second region must come within this many voxels (largest spacing) of the lesion:
# touching it (26-connected) or across one voxel that the lesion's edge refinement and
# surface smoothing gave to the parenchyma.
JOIN_CONTACT_VOXELS = 1.01
# What the second region re-grows within this distance of the lesion (mm, at least one
# voxel) is the lesion's own edge, not the lobe: left out of the lobe's core.
JOIN_SHELL_MM = 2.0
# The lobe's opening ball: half the click's depth in the lobe's core, within these (mm).
JOIN_OPEN_MM = (1.0, 4.0)
# The lobe's voxels within this of the opened core (and of the lesion) are restored, mm.
JOIN_RECONSTRUCT_MM = 1.5
# A lobe voxel within this many voxels of --max-radius-mm from the nearest seed: a leak.
LEAK_VOXELS = 1.0
# The crop is padded beyond --max-radius-mm by this many smoothing sigmas (the
# Gaussian's reach) and the edge fractions' reach, voxels.
CROP_SIGMAS = 4.0
FRACTION_PAD_VOXELS = 16

_NAMES = {"tumor": "tumour", "ablation": "ablation zone"}


@dataclass(frozen=True)
class IncludeOutcome:
    """What an include point did: ``"inside"`` (in the mask as grown), ``"edge"`` (just
    outside it, its nearest voxel in the lesion's HU range inside: nothing to add) or
    ``"joined"`` (a lobe grown from it and joined: ``joined_mm3`` its volume, mm^3)."""

    label: str
    lps: tuple[float, float, float]
    outcome: str
    joined_mm3: float = 0.0

    def note(self, what: str) -> str:
        """One line for the notes (CLI, JSON, report)."""
        if self.outcome == "joined":
            return (
                f"{self.label}: joined {self.joined_mm3:.0f} mm^3 grown from it (same HU range as "
                f"the {what}, connected to it) to the {what}"
            )
        if self.outcome == "edge":
            return (
                f"{self.label} lies on the {what}'s edge (its nearest voxel in the {what}'s HU "
                "range is in the mask): nothing added"
            )
        return f"{self.label} lies in the mask (grown from, as the seeds are)"


def join_includes(ct: sitk.Image, seg: Segmentation, include: list[Seed]) -> Segmentation:
    """Join the include points outside ``seg``'s mask to it, or refuse them (module doc).

    Parameters
    ----------
    ct : SimpleITK.Image
        The CT ``seg`` was made on (HU, LPS mm).
    seg : Segmentation
        A tumour or ablation zone (``window_hu`` and ``max_radius_mm`` set); updated in
        place (mask, edge fractions, notes, ``include_outcomes``) and returned.
    include : list of Seed
        The ``--include`` points, in the order given.

    Raises
    ------
    InputError
        Naming the first include point that cannot be joined: different tissue, not
        connected through lesion-like voxels, or a leak past ``--max-radius-mm``.
    """
    what = _NAMES[seg.structure]
    outcomes = []
    for p in include:
        if _holds(seg.mask, p):
            outcomes.append(IncludeOutcome(p.label, p.lps, "inside"))
            continue
        added = _join_one(ct, seg, p, what)
        outcome = "edge" if added is None else "joined"
        outcomes.append(IncludeOutcome(p.label, p.lps, outcome, added or 0.0))
    seg.include_outcomes = outcomes
    inside = [o for o in outcomes if o.outcome == "inside"]
    if inside:
        n = len(inside)
        seg.notes.append(
            f"{n} include point{'s' if n > 1 else ''} ({'; '.join(o.label for o in inside)}) "
            f"{'lie' if n > 1 else 'lies'} in the mask (grown from, as the seeds are)"
        )
    seg.notes.extend(o.note(what) for o in outcomes if o.outcome != "inside")
    return seg


def _holds(mask: sitk.Image, p: Seed) -> bool:
    i, j, k = p.index
    return bool(sitk.GetArrayViewFromImage(mask)[k, j, i])


def _join_one(ct: sitk.Image, seg: Segmentation, p: Seed, what: str) -> float | None:
    """Grow from ``p``, check, join into ``seg`` (in place); the joined volume, mm^3
    (None: ``p`` is on the lesion's edge, its nearest voxel in range inside the lesion)."""
    from hepanav.segmentation.grow import smoothing_sigma

    lo_hu, hi_hu = seg.window_hu
    hu, _ = local_hu(ct, p)
    if not lo_hu <= hu <= hi_hu:
        _refuse(
            p,
            what,
            f"{hu:.0f} HU around it, outside the {lo_hu:.0f} to {hi_hu:.0f} HU the {what} "
            "grew over: different tissue",
        )
    limit = float(seg.max_radius_mm)
    sigma = smoothing_sigma(ct)
    box = _box_around(ct, seg.seeds + [p], limit + CROP_SIGMAS * sigma[0])
    roi = sitk.Cast(crop_box(ct, box), sitk.sitkFloat32)
    smoothed = sitk.SmoothingRecursiveGaussian(roi, sigma)
    lesion = sitk.GetArrayFromImage(crop_box(seg.mask, box)) > 0
    step = float(max(ct.GetSpacing()))
    near_seed = _seed_distance_mm(roi, seg.seeds)
    ball = near_seed <= limit
    # The second region: the lesion's HU range on the smoothed CT, from the click (or the
    # nearest voxel in range within 2 mm), within --max-radius-mm of the seeds.
    values = sitk.GetArrayFromImage(smoothed)
    in_range = ball & (values >= lo_hu) & (values <= hi_hu)
    start = _nearest(roi, in_range, p, 2.0)
    if start is None:
        _refuse(
            p,
            what,
            f"{hu:.0f} HU around it, but no voxel within 2 mm of it is in the {lo_hu:.0f} to "
            f"{hi_hu:.0f} HU range the {what} grew over: different tissue",
        )
    if lesion[start[2], start[1], start[0]]:
        return None
    region = _connected(in_range, start, roi)
    contact = _dilate(lesion, roi, JOIN_CONTACT_VOXELS * step)
    if not (region & contact).any():
        _refuse(
            p,
            what,
            f"{hu:.0f} HU around it, but not connected to the {what} grown from the seed "
            f"through voxels in its {lo_hu:.0f} to {hi_hu:.0f} HU range within --max-radius-mm "
            f"{limit:g}: a separate structure",
        )
    lobe = _lobe(region, lesion, roi, start, step)
    lobe = _cut_excluded(lobe, roi, seg.seeds + [p], seg.exclude, start)
    if not (lobe & contact).any():
        _refuse(
            p,
            what,
            f"{hu:.0f} HU around it, but the part of the region grown from it around the "
            f"click does not touch the {what}"
            + (" once cut by the --exclude points" if seg.exclude else ""),
        )
    if (lobe & (near_seed > limit - LEAK_VOXELS * step)).any():
        _refuse(
            p,
            what,
            f"{hu:.0f} HU around it, but the region grown from it over the {what}'s "
            f"{lo_hu:.0f} to {hi_hu:.0f} HU range reaches --max-radius-mm {limit:g} from the "
            "seed: a leak into parenchyma or a structure of the same HU, or a lesion larger "
            "than that",
            "add an --exclude point on what leaked, raise --max-radius-mm, or leave the point out",
        )
    joined = _smooth_join(lesion, lobe, roi)
    added = int(np.count_nonzero(joined & ~lesion))
    _store(ct, seg, joined, roi, box)
    return added * float(np.prod(ct.GetSpacing()))


def _refuse(p: Seed, what: str, why: str, advice: str = "") -> None:
    advice = advice or f"move it onto the {what}, click it as a --seed of its own, or leave it out"
    raise InputError(f"the point could not be joined to the {what} ({why}); {advice}", p.label)


def _box_around(image: sitk.Image, points: list[Seed], radius_mm: float):
    """Index box ``(start, size)`` (x, y, z) of ``image`` holding every voxel centre
    within ``radius_mm`` of any of the points (LPS), clipped to the image."""
    a, _ = index_to_lps_matrix(image)
    reach = radius_mm * np.linalg.norm(np.linalg.inv(a), axis=1)
    centres = lps_to_voxel(image, np.asarray([q.lps for q in points], float))
    lo = np.maximum(np.floor(centres.min(axis=0) - reach).astype(int), 0)
    top = np.asarray(image.GetSize()) - 1
    hi = np.minimum(np.ceil(centres.max(axis=0) + reach).astype(int), top)
    return lo.tolist(), (hi - lo + 1).tolist()


def _seed_distance_mm(image: sitk.Image, seeds: list[Seed]) -> np.ndarray:
    """Distance (mm, float32, z-y-x array) of every voxel centre of ``image`` from its
    nearest seed (separable sums over the index axes: no (n, 3) point list)."""
    a, o = index_to_lps_matrix(image)
    nx, ny, nz = image.GetSize()
    grids = (
        np.arange(nx, dtype=np.float32)[None, None, :],
        np.arange(ny, dtype=np.float32)[None, :, None],
        np.arange(nz, dtype=np.float32)[:, None, None],
    )
    best = None
    for s in seeds:
        d2 = np.zeros((nz, ny, nx), np.float32)
        for c in range(3):
            v = np.float32(o[c] - s.lps[c])
            for coef, grid in zip(a[c], grids, strict=True):
                if coef != 0.0:
                    v = v + np.float32(coef) * grid
            d2 += v * v
        best = d2 if best is None else np.minimum(best, d2)
    return np.sqrt(best)


def _image(arr: np.ndarray, reference: sitk.Image) -> sitk.Image:
    out = sitk.GetImageFromArray(arr.astype(np.uint8))
    out.CopyInformation(reference)
    return out


def _dilate(arr: np.ndarray, reference: sitk.Image, radius_mm: float) -> np.ndarray:
    return sitk.GetArrayFromImage(dilate_mm(_image(arr, reference), radius_mm)) > 0


def _component(arr: np.ndarray, reference: sitk.Image, index) -> np.ndarray:
    image = component_at(_image(arr, reference), [tuple(int(v) for v in index)])
    return sitk.GetArrayFromImage(image) > 0


def _nearest(image: sitk.Image, where: np.ndarray, p: Seed, radius_mm: float):
    """Index (x, y, z) on ``image`` of the voxel of ``where`` nearest to ``p`` within
    ``radius_mm`` (``p``'s own voxel first), or None."""
    centre = np.asarray(image.TransformPhysicalPointToIndex(p.lps))
    if where[centre[2], centre[1], centre[0]]:
        return tuple(int(v) for v in centre)
    spacing = np.asarray(image.GetSpacing())
    r = np.ceil(radius_mm / spacing).astype(int)
    lo = np.maximum(centre - r, 0)
    hi = np.minimum(centre + r + 1, np.asarray(image.GetSize()))
    k, j, i = np.nonzero(where[lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]])
    if k.size == 0:
        return None
    d = (
        ((i + lo[0] - centre[0]) * spacing[0]) ** 2
        + ((j + lo[1] - centre[1]) * spacing[1]) ** 2
        + ((k + lo[2] - centre[2]) * spacing[2]) ** 2
    )
    n = int(np.argmin(d))
    if d[n] > radius_mm**2:
        return None
    return int(i[n] + lo[0]), int(j[n] + lo[1]), int(k[n] + lo[2])


def _connected(where: np.ndarray, start, reference: sitk.Image) -> np.ndarray:
    """The voxels of ``where`` 26-connected to ``start`` (x, y, z)."""
    return _component(where, reference, start)


def _lobe(
    region: np.ndarray, lesion: np.ndarray, roi: sitk.Image, start, step: float
) -> np.ndarray:
    """The part of ``region`` (grown from the click at ``start``) that the lesion lacks
    around the click: the core beyond ``JOIN_SHELL_MM`` of the lesion, opened, its
    voxels near the opened core and the lesion restored (module doc, step 3)."""
    shell = max(JOIN_SHELL_MM, 1.01 * step)
    new = region & ~lesion
    core = new & ~_dilate(lesion, roi, shell)
    i, j, k = start
    if not core[k, j, i]:
        # The click lies on the lesion's edge: the new voxels around it only.
        near = np.zeros_like(new)
        near[k, j, i] = True
        return _component(new & _dilate(near, roi, shell + step), roi, start)
    core = _component(core, roi, start)
    depth = -sitk.GetArrayFromImage(signed_distance_mm(_image(core, roi), within_mm=0.0))
    radius = float(np.clip(0.5 * depth[k, j, i], *JOIN_OPEN_MM))
    opened = sitk.GetArrayFromImage(open_mm(_image(core, roi), radius)) > 0
    opened = _component(opened, roi, start) if opened[k, j, i] else np.zeros_like(opened)
    contact = _dilate(lesion, roi, JOIN_CONTACT_VOXELS * step)
    # (A neck to the lesion thinner than the ball: the core as grown, not opened.)
    for body in (opened, core) if opened.any() else (core,):
        lobe = _component(new & _restored(body, lesion, roi, shell, step), roi, start)
        if (lobe & contact).any():
            return lobe
    return lobe


def _restored(body: np.ndarray, lesion: np.ndarray, roi: sitk.Image, shell: float, step: float):
    """Where the lobe may lie around its (opened) core ``body``: within
    ``JOIN_RECONSTRUCT_MM`` of it, and between it and the lesion (within the shell +
    that of both)."""
    reach = max(JOIN_RECONSTRUCT_MM, step)
    junction = _dilate(body, roi, shell + reach) & _dilate(lesion, roi, shell + reach)
    return _dilate(body, roi, reach) | junction


def _cut_excluded(
    lobe: np.ndarray, roi: sitk.Image, points: list[Seed], exclude: list[Seed], start
) -> np.ndarray:
    """The lobe without its voxels closer to an exclude point than to every seed and the
    include point (as the growing does): its component at ``start`` (x, y, z)."""
    if not exclude:
        return lobe
    cut = lobe & ~(_seed_distance_mm(roi, exclude) < _seed_distance_mm(roi, points))
    i, j, k = start
    return _component(cut, roi, start) if cut[k, j, i] else np.zeros_like(cut)


def _smooth_join(lesion: np.ndarray, lobe: np.ndarray, roi: sitk.Image) -> np.ndarray:
    """Lesion and lobe joined: the union's smoothed surface (``result.smooth_surface``)
    next to the lobe, the lesion as it was elsewhere, holes filled, one-voxel spikes
    and pits removed (``result.remove_spikes_and_pits``)."""
    from hepanav.segmentation.grow import SURFACE_SIGMA_MM

    step = float(max(roi.GetSpacing()))
    union = lesion | lobe
    smoothed = sitk.GetArrayFromImage(smooth_surface(_image(union, roi), SURFACE_SIGMA_MM)) > 0
    joined = lesion | (smoothed & _dilate(lobe, roi, 1.01 * step))
    joined = sitk.GetArrayFromImage(fill_holes(_image(joined, roi))) > 0
    out = sitk.GetArrayFromImage(remove_spikes_and_pits(_image(joined, roi))) > 0
    return out | lesion if not out.any() else out


def _store(ct: sitk.Image, seg: Segmentation, joined: np.ndarray, roi: sitk.Image, box) -> None:
    """Put the joined mask (on the crop ``roi`` = ``box`` of ``ct``) into ``seg``: mask on
    the CT grid, edge fractions recomputed (when ``seg`` had them)."""
    local = _image(joined, roi)
    seg.mask = paste(local, ct)
    if seg.fraction is None:
        return
    from hepanav.segmentation.fraction import edge_fraction

    # The fractions read the CT a few voxels beyond the mask: on the mask's box padded
    # (in CT indices), not on the crop whose edge may be nearer.
    inner = bounding_box(local)
    start = np.asarray(box[0]) + np.asarray(inner[0]) - FRACTION_PAD_VOXELS
    stop = np.asarray(box[0]) + np.asarray(inner[0]) + np.asarray(inner[1]) + FRACTION_PAD_VOXELS
    start = np.maximum(start, 0)
    stop = np.minimum(stop, np.asarray(ct.GetSize()))
    seg.fraction = edge_fraction(ct, crop_box(seg.mask, (start.tolist(), (stop - start).tolist())))
