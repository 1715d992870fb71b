"""Image headers HepaNav can trust: spacing, origin, direction and size within bounds."""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from hepanav.core.errors import InputError

#: Voxel spacing accepted from image headers, mm: 0.001 mm (beyond micro-CT) to 100 mm
#: (ten times the thickest clinical CT slice). Outside is a broken header, and a spacing
#: such as 1e30 would make every physical-space computation meaningless or huge.
SPACING_RANGE_MM = (1e-3, 100.0)
#: Voxel size accepted from a 3D CT/MR image or mask, mm, along every axis. Clinical
#: CT has 0.3-1 mm pixels and 0.5-10 mm slices; MR 0.5-2 mm pixels and up to ~10 mm
#: slices; micro-CT of a specimen is not a HepaNav input. A size below 0.2 mm or above
#: 20 mm is almost always a header written in cm (or m) rather than mm, which scales
#: every distance and volume silently (a 4.8 mm margin reads 0.5 mm): refused.
CLINICAL_SPACING_MM = (0.2, 20.0)
#: Largest |origin| accepted, mm (10 m: any scanner's coordinate system).
MAX_ORIGIN_MM = 1e4
#: Largest image accepted, voxels (2^31: a 2048^3 volume is 8.6e9, more than any CT).
MAX_VOXELS = 2**31


def _declared(units: str | None) -> str:
    """``"; the NIfTI header gives its lengths in metres ..."`` or nothing."""
    return f"; {units}" if units else ""


def require_sane_geometry(image: sitk.Image, source: str | Path, units: str | None = None) -> None:
    """Raise ``InputError`` for a header HepaNav cannot trust.

    Spacing (mm) finite and within :data:`SPACING_RANGE_MM`, origin (LPS mm) finite and
    within :data:`MAX_ORIGIN_MM`, direction cosines finite and orthonormal (to 1e-3), at
    most :data:`MAX_VOXELS` voxels. ``units``: what the file's header declares about its
    length unit, in words (a NIfTI's ``xyzt_units``,
    :data:`hepanav.imaging.io.NIFTI_LENGTH_UNITS`), added to the spacing error.
    """
    import math

    import numpy as np

    lo, hi = SPACING_RANGE_MM
    spacing = image.GetSpacing()
    if not all(math.isfinite(s) and lo <= s <= hi for s in spacing):
        raise InputError(
            f"voxel spacing must lie in [{lo:g}, {hi:g}] mm (header says "
            f"{', '.join(f'{s:.4g}' for s in spacing)} mm{_declared(units)})",
            source,
        )
    if not all(math.isfinite(o) and abs(o) <= MAX_ORIGIN_MM for o in image.GetOrigin()):
        raise InputError(f"image origin must be finite and within {MAX_ORIGIN_MM:g} mm", source)
    d = np.asarray(image.GetDirection(), dtype=float)
    n = image.GetDimension()
    if not np.all(np.isfinite(d)) or not np.allclose(
        d.reshape(n, n) @ d.reshape(n, n).T, np.eye(n), atol=1e-3
    ):
        raise InputError("image direction cosines are not orthonormal", source)
    if math.prod(image.GetSize()) > MAX_VOXELS:
        raise InputError(f"image has more than {MAX_VOXELS:,} voxels", source)


def require_clinical_spacing(
    image: sitk.Image, source: str | Path, units: str | None = None
) -> None:
    """Raise ``InputError`` unless every voxel size (mm) of a 3D image lies in
    :data:`CLINICAL_SPACING_MM` (lengths written in another unit than the header
    declares, or than mm when it declares none, are the usual cause).

    ``units``: what the file's header declares about its length unit, in words (a
    NIfTI's ``xyzt_units``, :data:`hepanav.imaging.io.NIFTI_LENGTH_UNITS`), added to the
    message; without it the message says that lengths in cm or m read as mm are 10 or
    1000 times too small.
    """
    if image.GetDimension() != 3:
        return
    lo, hi = CLINICAL_SPACING_MM
    spacing = image.GetSpacing()
    if all(lo <= s <= hi for s in spacing):
        return
    why = (
        _declared(units)
        if units
        else " (lengths in cm or m read as mm give voxels 10 or 1000 times too small)"
    )
    raise InputError(
        f"voxel size {' x '.join(f'{s:.4g}' for s in spacing)} mm lies outside "
        f"{lo:g}-{hi:g} mm, the range of clinical CT/MR along every axis; check that "
        f"the units are mm{why}",
        source,
    )
