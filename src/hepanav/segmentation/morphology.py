"""Binary morphology with balls in millimetres (anisotropic voxels respected).

Dilation by a ball of radius ``r`` mm keeps the voxels whose centre lies within
``r`` of a mask voxel centre; erosion is the dilation of the background. Both are
thresholds of a Maurer distance map with the image spacing (ITK, multi-threaded on
every core; small balls by shifting, below, with the same result), so a 2 mm opening
means 2 mm along every axis whatever the voxel size (and a ball smaller than a voxel
changes nothing).

Every operation works on the mask's bounding box padded by what it can reach (the
radius, or one voxel) and pastes the result back: the result is the same as on the
whole image (each voxel's nearest mask or background voxel lies in that box), and
the cost scales with the mask, not the image it lies in.

Small balls (at most ``MAX_BALL_OFFSETS`` voxel offsets, e.g. 1-2 mm on 0.8 mm voxels)
are applied directly, as the OR (dilation) or AND (erosion) of the mask shifted by
each offset of the ball (:func:`ball_offsets`): the same voxels as the threshold of
the distance map (a voxel is within ``r`` of the mask iff some offset of length
``<= r`` reaches a mask voxel), 5-20x faster than a distance map on a lesion's box.
Only where an offset's length equals the radius to within ``TIE_MM`` does the
distance map's own float rounding decide, and the distance map is used (unless the
tie is exact in float arithmetic, e.g. 2 mm on 1 mm slices: then it is inside).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import SimpleITK as sitk

# Largest ball applied by shifting (its number of voxel offsets); beyond it one
# distance map is cheaper (measured: a 49-offset ball 4 ms against 40 ms for the map
# on a 72 x 72 x 56 box, 417 offsets 25 ms against 37 ms).
MAX_BALL_OFFSETS = 200
# Offsets whose length is within this of the radius: ties that ITK's float32 distance
# map decides by its rounding (which depends on the voxel's position); left to it.
TIE_MM = 1e-4


def bounding_box(mask: sitk.Image, pad_mm: float = 0.0, pad_voxels: int = 0):
    """Index box ``(start, size)`` (x, y, z) of the non-zero voxels of ``mask`` grown by
    ``pad_mm`` (rounded up to whole voxels per axis) + ``pad_voxels``, clipped to the
    image; ``None`` for an empty mask."""
    arr = sitk.GetArrayViewFromImage(mask)
    lo, hi = [], []
    for axis in (2, 1, 0):  # x, y, z of a (z, y, x) array
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(np.any(arr, axis=other))
        if hit.size == 0:
            return None
        lo.append(int(hit[0]))
        hi.append(int(hit[-1]))
    size = mask.GetSize()
    pad = [int(np.ceil(pad_mm / s - 1e-9)) + pad_voxels for s in mask.GetSpacing()]
    start = [max(a - p, 0) for a, p in zip(lo, pad, strict=True)]
    stop = [min(b + p, n - 1) for b, p, n in zip(hi, pad, size, strict=True)]
    return start, [b - a + 1 for a, b in zip(start, stop, strict=True)]


def crop_box(image: sitk.Image, box) -> sitk.Image:
    """The index ``box`` ``(start, size)`` (x, y, z) of ``image`` (itself if it is all of it)."""
    start, size = box
    if list(size) == list(image.GetSize()):
        return image
    return sitk.RegionOfInterest(image, size, start)


def uncrop_box(local: sitk.Image, reference: sitk.Image, box, fill: float = 0) -> sitk.Image:
    """``local`` (the ``box`` of ``reference``) on the grid of ``reference``, ``fill``
    elsewhere (same pixel type as ``local``)."""
    start, size = box
    if list(size) == list(reference.GetSize()):
        return local
    sub = sitk.GetArrayViewFromImage(local)
    full = np.full(sitk.GetArrayViewFromImage(reference).shape, fill, dtype=sub.dtype)
    full[
        start[2] : start[2] + size[2], start[1] : start[1] + size[1], start[0] : start[0] + size[0]
    ] = sub
    out = sitk.GetImageFromArray(full)
    out.CopyInformation(reference)
    return out


def _binary(mask: sitk.Image) -> sitk.Image:
    """``mask > 0`` as uint8 0/1; a uint8 mask that already is 0/1 is returned as it is
    (no copy: SimpleITK filters never modify their input)."""
    if mask.GetPixelID() == sitk.sitkUInt8 and mask.GetNumberOfComponentsPerPixel() == 1:
        if int(np.max(sitk.GetArrayViewFromImage(mask), initial=0)) <= 1:
            return mask
    return sitk.Cast(mask > 0, sitk.sitkUInt8)


def _empty(reference: sitk.Image) -> sitk.Image:
    out = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
    out.CopyInformation(reference)
    return out


def _maurer(binary: sitk.Image) -> sitk.Image:
    return sitk.SignedMaurerDistanceMap(
        binary, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )


def signed_distance_mm(mask: sitk.Image, within_mm: float | None = None) -> sitk.Image:
    """Signed distance (mm) between voxel centres: outside, to the nearest mask voxel;
    inside, minus the distance to the nearest mask voxel that touches the background
    (ITK's Maurer convention: the mask's own boundary voxels are 0).

    With ``within_mm``, outside distances are exact up to ``within_mm`` and +inf
    beyond (computed on the mask's box padded by that much: cheaper); inside
    distances are always exact. An empty mask gives ITK's map of an empty image.
    """
    if within_mm is None:
        return _maurer(_binary(mask))
    box = bounding_box(mask, within_mm, 1)
    if box is None:
        return _maurer(_binary(mask))
    return uncrop_box(_maurer(_binary(crop_box(mask, box))), mask, box, np.inf)


def _float32_exact(value: float) -> bool:
    """``value`` is a dyadic number that float32 holds exactly with room to spare
    (at most 8 fractional bits, below 2**12): sums of squares of small multiples of it
    are exact in ITK's float32 distance map."""
    scaled = value * 256.0
    return scaled == int(scaled) and abs(value) < 4096.0


def ball_offsets(spacing, radius_mm: float) -> np.ndarray | None:
    """Voxel offsets (n, 3) in (z, y, x) array order whose length (mm, with ``spacing``
    given x, y, z) is at most ``radius_mm``: the ball :func:`dilate_mm` and
    :func:`erode_mm` apply.

    ``None`` when an offset's length is within ``TIE_MM`` of the radius and the
    float32 distance map would not compute it exactly (then its rounding decides,
    and that depends on the voxel's position in the map), or when the ball has more
    than ``MAX_BALL_OFFSETS`` offsets: the caller uses the distance map.
    """
    sp = np.asarray(spacing, float)[::-1]  # z, y, x
    reach = np.floor((radius_mm + TIE_MM) / sp).astype(int)
    if np.prod(2 * reach + 1) > 8 * MAX_BALL_OFFSETS:
        return None
    grid = np.stack(
        np.meshgrid(*(np.arange(-n, n + 1) for n in reach), indexing="ij"), axis=-1
    ).reshape(-1, 3)
    length = np.sqrt(np.sum((grid * sp) ** 2, axis=1))
    inside = length <= radius_mm
    for o in grid[np.abs(length - radius_mm) <= TIE_MM]:
        axes = np.flatnonzero(o)
        exact = (
            all(_float32_exact(float(sp[a])) for a in axes)
            and _float32_exact(float(radius_mm))
            and sum((Fraction(float(sp[a])) * int(o[a])) ** 2 for a in axes)
            == Fraction(float(radius_mm)) ** 2
        )
        if not exact:
            return None
        inside[np.all(grid == o, axis=1)] = True  # exactly on the sphere: inside (<=)
    offsets = grid[inside]
    return offsets if len(offsets) <= MAX_BALL_OFFSETS else None


def _shifted(arr: np.ndarray, offsets: np.ndarray, erode: bool) -> np.ndarray:
    """OR (dilation) or AND (erosion) of the bool array shifted by each offset; outside
    the array counts as background for the dilation and as mask for the erosion."""
    out = np.zeros_like(arr) if not erode else arr.copy()
    n = arr.shape
    for o in offsets:
        dst = tuple(slice(max(d, 0), m + min(d, 0)) for d, m in zip(o, n, strict=True))
        src = tuple(slice(max(-d, 0), m - max(d, 0)) for d, m in zip(o, n, strict=True))
        if erode:
            out[dst] &= arr[src]
        else:
            out[dst] |= arr[src]
    return out


def _from_array(arr: np.ndarray, reference: sitk.Image) -> sitk.Image:
    out = sitk.GetImageFromArray(arr.astype(np.uint8))
    out.CopyInformation(reference)
    return out


def dilate_mm(mask: sitk.Image, radius_mm: float) -> sitk.Image:
    """Voxels within ``radius_mm`` of the mask (uint8 0/1)."""
    if radius_mm <= 0 or not _any(mask):
        return _binary(mask)
    # Voxels farther than one voxel past the radius cannot be within it.
    box = bounding_box(mask, radius_mm, 1)
    local = crop_box(mask, box)
    offsets = ball_offsets(mask.GetSpacing(), radius_mm)
    if offsets is not None:
        arr = sitk.GetArrayViewFromImage(local) > 0
        out = _from_array(_shifted(arr, offsets, erode=False), local)
    else:
        out = sitk.Cast(_maurer(_binary(local)) <= radius_mm, sitk.sitkUInt8)
    return uncrop_box(out, mask, box)


def erode_mm(mask: sitk.Image, radius_mm: float) -> sitk.Image:
    """Mask voxels farther than ``radius_mm`` from every background voxel (uint8 0/1).

    The image edge does not count as background (a mask touching the edge is not
    eroded from it)."""
    return erosions_mm(mask, [radius_mm])[0]


def erosions_mm(mask: sitk.Image, radii_mm: list[float]) -> list[sitk.Image]:
    """``[erode_mm(mask, r) for r in radii_mm]`` from one distance map (same result)."""
    if not _any(mask):
        return [_binary(mask) for _ in radii_mm]
    # The nearest background voxel of a mask voxel lies in the mask's box padded by
    # one voxel (the padding layer is background wherever it is inside the image).
    box = bounding_box(mask, 0.0, 1)
    local = crop_box(mask, box)
    background = sitk.Cast(local == 0, sitk.sitkUInt8)
    if not _any(background):
        return [_binary(mask) for _ in radii_mm]
    dist = None
    out = []
    arr = None
    for r in radii_mm:
        if r <= 0:
            out.append(_binary(mask))
            continue
        # A small ball: the voxels whose every offset in it lands on the mask (or
        # outside the box: the image edge is not background), as the map's threshold.
        offsets = ball_offsets(mask.GetSpacing(), r)
        if offsets is not None:
            if arr is None:
                arr = sitk.GetArrayViewFromImage(background) == 0
            out.append(
                uncrop_box(_from_array(_shifted(arr, offsets, erode=True), local), mask, box)
            )
            continue
        if dist is None:
            dist = _maurer(background)
        out.append(uncrop_box(sitk.Cast(dist > r, sitk.sitkUInt8), mask, box))
    return out


def open_mm(mask: sitk.Image, radius_mm: float) -> sitk.Image:
    """Opening: removes parts thinner than ``2 * radius_mm`` (necks, tracts, small leaks)."""
    return dilate_mm(erode_mm(mask, radius_mm), radius_mm)


def close_mm(mask: sitk.Image, radius_mm: float) -> sitk.Image:
    """Closing: fills gaps and channels narrower than ``2 * radius_mm``.

    The mask is padded by the radius first, so the image edge does not erode it.
    """
    if radius_mm <= 0:
        return _binary(mask)
    # The closing lies within the radius of the mask: computed on that box (padded by
    # a voxel, background beyond it as in the whole image) and pasted back.
    box = bounding_box(mask, radius_mm, 1)
    if box is None:
        return _binary(mask)
    pad = [int(np.ceil(radius_mm / s)) + 1 for s in mask.GetSpacing()]
    padded = sitk.ConstantPad(_binary(crop_box(mask, box)), pad, pad, 0)
    closed = erode_mm(dilate_mm(padded, radius_mm), radius_mm)
    return uncrop_box(sitk.Crop(closed, pad, pad), mask, box)


def component_at(mask: sitk.Image, seeds_xyz: list[tuple[int, int, int]]) -> sitk.Image:
    """The connected components (26-connected) of ``mask`` that hold any of the seed voxels."""
    box = bounding_box(mask)
    if box is None:
        return _empty(mask)
    start, size = box
    labels = sitk.ConnectedComponent(_binary(crop_box(mask, box)), True)
    arr = sitk.GetArrayViewFromImage(labels)
    keep = set()
    for i, j, k in seeds_xyz:
        local = (i - start[0], j - start[1], k - start[2])
        if all(0 <= v < n for v, n in zip(local, size, strict=True)):
            keep.add(int(arr[local[2], local[1], local[0]]))
    keep -= {0}
    if not keep:
        return _empty(mask)
    out = sitk.GetImageFromArray(np.isin(arr, list(keep)).astype(np.uint8))
    out.CopyInformation(labels)
    return uncrop_box(out, mask, box)


def fill_holes(mask: sitk.Image) -> sitk.Image:
    """Fill cavities not connected to the image border (3D, face-connected background)."""
    # Background outside the mask's box (padded by one voxel) reaches the image border.
    box = bounding_box(mask, 0.0, 1)
    if box is None:
        return _binary(mask)
    local = _binary(crop_box(mask, box))
    # Background components (face-connected) that touch the box's faces reach the
    # border; the others are holes. The same voxels as SimpleITK's BinaryFillhole
    # (fullyConnected off), several times faster on masks with many small holes.
    labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(local == 0, False))
    faces = np.concatenate(
        [f.ravel() for a in range(3) for f in (np.take(labels, 0, a), np.take(labels, -1, a))]
    )
    border = np.unique(faces)
    filled = ~np.isin(labels, border[border > 0])
    out = sitk.GetImageFromArray(filled.astype(np.uint8))
    out.CopyInformation(local)
    return uncrop_box(out, mask, box)


def _any(mask: sitk.Image) -> bool:
    return bool(np.any(sitk.GetArrayViewFromImage(mask)))
