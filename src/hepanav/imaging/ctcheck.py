"""Is the image a CT in Hounsfield units? Checks on a CT's voxel values, after reading.

:func:`require_finite` refuses NaN or infinite voxels (a float CT written by a broken
pipeline); :func:`require_hu_ct` also refuses a binary mask given as the CT and a CT in
raw stored values (DICOM pixel data without its rescale slope/intercept applied, e.g.
HU + 1024 as uint16) and a label map (e.g. a TotalSegmentator ``labels.nii.gz``).
Both raise :class:`hepanav.core.InputError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hepanav.core.errors import InputError

#: Raw stored values, not HU (:func:`require_hu_ct`): nothing below this HU anywhere ...
RAW_MIN_AT_LEAST = 0.0
#: ... AND at least 1 % of the voxels at or above this value. In HU (water 0, air -1000,
#: fat -100, soft tissue 20-220, trabecular bone 200-700, cortical bone 1000+) a CT of
#: the body holds air or fat (< 0) unless it is cropped into an organ, and then nothing
#: near 900; 1 % of a volume at >= 900 HU with no voxel below 0 would be a crop inside
#: cortical bone. Stored as HU + 1024 (the usual intercept -1024), fat reads ~924, soft
#: tissue 1044-1250: every raw abdominal CT has far more than 1 % there.
RAW_HIGH_PERCENTILE = 99.0
RAW_HIGH_AT_LEAST = 900.0
#: Label map, not a CT (:func:`require_hu_ct`), when ALL of: every value an integer, at
#: most this many distinct values, ...
LABEL_MAX_VALUES = 512
#: ... no voxel below this HU (a CT of the body has air around it: -1000 HU) ...
LABEL_AIR_BELOW_HU = -500.0
#: ... and at least this fraction of neighbouring voxel pairs (along x) equal. A label map
#: is piecewise constant (TotalSegmentator's: > 0.99); a CT has quantum noise of 5-30 HU
#: SD, so neighbours are equal in a few % of pairs even when stored as integers and cropped
#: into one organ with no air (a few hundred distinct values there). The three together
#: never refuse a real CT: an integer CT cropped inside the liver passes on the third.
LABEL_EQUAL_NEIGHBOURS = 0.9
#: Voxels sampled for the percentile (evenly strided; the check runs only when the
#: minimum is >= 0, i.e. almost never on a true HU CT).
SAMPLE_VOXELS = 2_000_000


def require_finite(image: sitk.Image, source: str | Path) -> None:
    """Raise ``InputError`` ``SOURCE: N voxels are NaN or infinite`` for a float image
    with non-finite voxels (integer images cannot hold them)."""
    arr = sitk.GetArrayViewFromImage(image)
    if not np.issubdtype(arr.dtype, np.floating):
        return
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise InputError(f"{bad} voxels are NaN or infinite", source)


def require_hu_ct(image: sitk.Image, source: str | Path) -> None:
    """Raise ``InputError`` unless ``image`` can be a CT in HU (first that applies).

    1. NaN or infinite voxels (:func:`require_finite`);
    2. one value only (not a CT), or two with the lower 0: a mask, not a CT
       (``holds only 2 distinct values (0/1): a mask, not a CT``). Two values with air
       or fat below 0 (a noiseless phantom: -1000 HU around 40 HU water) pass;
    3. raw stored values: no voxel below :data:`RAW_MIN_AT_LEAST` (0) AND the
       :data:`RAW_HIGH_PERCENTILE` (99th) percentile at or above
       :data:`RAW_HIGH_AT_LEAST` (900): no air near -1000 HU, soft tissue near +1000.
       A true HU CT cropped tightly into the liver (no air, no fat: minimum > 0) has its
       99th percentile near 200 HU and passes;
    4. a label map (:func:`label_map_reason`): integer values, at most
       :data:`LABEL_MAX_VALUES` (512) distinct, none below :data:`LABEL_AIR_BELOW_HU`
       (-500 HU: no air) and :data:`LABEL_EQUAL_NEIGHBOURS` (90 %) of neighbouring voxels
       equal (piecewise constant, no noise).

    Parameters
    ----------
    image : SimpleITK.Image
        The CT as read (scalar, any pixel type).
    source : str or Path
        The file named in the error.
    """
    require_finite(image, source)
    arr = sitk.GetArrayViewFromImage(image)
    lo, hi = float(arr.min()), float(arr.max())
    if lo == hi:
        raise InputError(f"holds only 1 distinct value ({lo:g}): not a CT", source)
    if lo == 0 and np.count_nonzero((arr != lo) & (arr != hi)) == 0:
        raise InputError(f"holds only 2 distinct values (0/{hi:g}): a mask, not a CT", source)
    reason = label_map_reason(arr)
    if reason:
        raise InputError(reason, source)
    if lo < RAW_MIN_AT_LEAST:
        return
    flat = arr.reshape(-1)
    step = max(1, flat.size // SAMPLE_VOXELS)
    high = float(np.percentile(flat[::step], RAW_HIGH_PERCENTILE))
    if high >= RAW_HIGH_AT_LEAST:
        raise InputError(
            f"does not look like HU: no air near -1000 HU (lowest value {lo:g}) and "
            f"{100 - RAW_HIGH_PERCENTILE:g} % of the voxels at {high:.0f} or more, where soft "
            "tissue would be 20-220 HU (raw stored values without rescale slope/intercept?)",
            source,
        )


def label_map_reason(arr: np.ndarray) -> str | None:
    """``"looks like a label map: ..."`` when the voxel array (z, y, x; any dtype) is one
    by the rule of :func:`require_hu_ct` (step 4), else None."""
    lo = float(arr.min())
    if lo < LABEL_AIR_BELOW_HU:
        return None  # air: a CT (or at least not a label map)
    flat = arr.reshape(-1)
    if np.issubdtype(arr.dtype, np.floating):
        step = max(1, flat.size // SAMPLE_VOXELS)
        if not np.all(np.mod(flat[::step], 1.0) == 0):
            return None
        if not np.all(np.mod(flat, 1.0) == 0):
            return None
    hi = float(arr.max())
    if hi - lo >= 1 << 20:
        return None
    counts = np.bincount((flat - lo).astype(np.int64))
    values = int(np.count_nonzero(counts))
    if values > LABEL_MAX_VALUES:
        return None
    pairs = arr[..., 1:].size
    equal = float(np.count_nonzero(arr[..., 1:] == arr[..., :-1])) / pairs if pairs else 1.0
    if equal < LABEL_EQUAL_NEIGHBOURS:
        return None
    return (
        f"looks like a label map, not a CT: {values} distinct integer values "
        f"({lo:g}..{hi:g}), no air below {LABEL_AIR_BELOW_HU:g} HU and "
        f"{100 * equal:.1f} % of neighbouring voxels equal (no image noise); give the CT"
    )
