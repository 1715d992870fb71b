"""Is the image a CT in Hounsfield units? Checks on a CT's voxel values, after reading.

:func:`require_finite` refuses NaN or infinite voxels (a float CT written by a broken
pipeline); :func:`require_hu_ct` also refuses a binary mask given as the CT, a label map
(e.g. a TotalSegmentator ``labels.nii.gz``) and values that cannot be HU: a normalised
image (every value within [-10, 10], e.g. 0..1 or z-scores), an 8-bit display image
(0..255) and raw stored values (DICOM pixel data without its rescale slope/intercept
applied, e.g. HU + 1024 as uint16). Both raise :class:`hepanav.core.InputError` naming
the file. Every command that reads a CT calls :func:`require_hu_ct` through
:func:`hepanav.imaging.io.load_ct`.
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
#: Normalised, not HU (:func:`require_hu_ct`): every value within [-x, x] for this x. A CT
#: normalised to 0..1 or -1..1, or z-scored (air near -1, bone below 10), lies there; a
#: CT in HU holding any tissue spans far more (liver 40-70 HU, fat -100 HU, noise 5-30 HU
#: SD), so only a noiseless water phantom could: not an input of HepaNav.
NORMALISED_MAX_ABS = 10.0
#: 8-bit display image, not HU (:func:`require_hu_ct`): no value below 0, none above this,
#: AND an 8-bit pixel type or values running from exactly 0 to exactly 255 (a window
#: mapped onto 0..255, air and bone clipped at its ends). 8 bits cannot hold HU (air
#: -1000, bone up to 3000), and a true HU CT cropped into the liver without air (e.g.
#: 20..200 HU, int16 or float) is neither 8-bit nor clipped at exactly 0 and 255: it passes.
DISPLAY_MAX = 255.0
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
    3. a label map (:func:`label_map_reason`): integer values, at most
       :data:`LABEL_MAX_VALUES` (512) distinct, none below :data:`LABEL_AIR_BELOW_HU`
       (-500 HU: no air) and :data:`LABEL_EQUAL_NEIGHBOURS` (90 %) of neighbouring voxels
       equal (piecewise constant, no noise);
    4. values that cannot be HU (:func:`not_hu_reason`): every value within
       [-:data:`NORMALISED_MAX_ABS`, +:data:`NORMALISED_MAX_ABS`] (normalised); or none
       below 0 nor above :data:`DISPLAY_MAX` (255) with an 8-bit pixel type or values
       from exactly 0 to exactly 255 (a display image); or none below
       :data:`RAW_MIN_AT_LEAST` (0) and the :data:`RAW_HIGH_PERCENTILE` (99th)
       percentile at or above :data:`RAW_HIGH_AT_LEAST` (900): raw stored values, no air
       near -1000 HU, soft tissue near +1000. A true HU CT cropped tightly into the liver
       (no air, no fat: minimum > 0) has its values spread over tens to hundreds of HU,
       its 99th percentile near 200 HU and a 16-bit or float pixel type: it passes.

    The message is one line: ``SOURCE: does not look like HU: values LO to HI (pixel
    type), WHY; expected Hounsfield units: air near -1000 HU, ...``.

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
    reason = label_map_reason(arr) or not_hu_reason(arr, image.GetPixelIDTypeAsString())
    if reason:
        raise InputError(reason, source)


#: What every "not HU" refusal ends with.
EXPECTED_HU = (
    "expected Hounsfield units: air near -1000 HU, fat near -100 HU, soft tissue 20-220 HU"
)


def not_hu_reason(arr: np.ndarray, pixel_type: str = "") -> str | None:
    """``"does not look like HU: ..."`` when the voxel array (any shape and dtype, finite)
    cannot hold Hounsfield units by step 4 of :func:`require_hu_ct`, else None.
    ``pixel_type`` (e.g. SimpleITK's ``"8-bit unsigned integer"``) is named in the
    message; an 8-bit numpy dtype counts as an 8-bit pixel type."""
    lo, hi = float(arr.min()), float(arr.max())
    kind = f" ({pixel_type})" if pixel_type else ""
    found = f"does not look like HU: values {lo:g} to {hi:g}{kind}"
    if -NORMALISED_MAX_ABS <= lo and hi <= NORMALISED_MAX_ABS:
        return (
            f"{found}, every value within [{-NORMALISED_MAX_ABS:g}, {NORMALISED_MAX_ABS:g}] "
            f"(a normalised image, e.g. 0..1 or z-scores?); {EXPECTED_HU}"
        )
    if lo < RAW_MIN_AT_LEAST:
        return None  # values below 0: air or fat, as in HU
    eight_bit = np.dtype(arr.dtype).itemsize == 1 and np.issubdtype(arr.dtype, np.integer)
    if hi <= DISPLAY_MAX and (eight_bit or (lo == 0 and hi == DISPLAY_MAX)):
        why = "an 8-bit image" if eight_bit else "running from exactly 0 to exactly 255"
        return (
            f"{found}, {why} with no value below 0 (a display image windowed to "
            f"0..{DISPLAY_MAX:g}?); {EXPECTED_HU}"
        )
    flat = arr.reshape(-1)
    step = max(1, flat.size // SAMPLE_VOXELS)
    high = float(np.percentile(flat[::step], RAW_HIGH_PERCENTILE))
    if high >= RAW_HIGH_AT_LEAST:
        return (
            f"{found}, no air near -1000 HU (no value below 0) and "
            f"{100 - RAW_HIGH_PERCENTILE:g} % of the voxels at {high:.0f} or more, where soft "
            f"tissue would be 20-220 HU (raw stored values without rescale "
            f"slope/intercept?); {EXPECTED_HU}"
        )
    return None


def label_map_reason(arr: np.ndarray) -> str | None:
    """``"looks like a label map: ..."`` when the voxel array (z, y, x; any dtype) is one
    by the rule of :func:`require_hu_ct` (step 3), else None."""
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
