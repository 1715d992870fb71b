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


def require_sane_geometry(image: sitk.Image, source: str | Path) -> None:
    """Raise ``InputError`` for a header HepaNav cannot trust.

    Spacing finite and within :data:`SPACING_RANGE_MM`, origin finite and within
    :data:`MAX_ORIGIN_MM`, direction cosines finite and orthonormal (to 1e-3), at most
    :data:`MAX_VOXELS` voxels.
    """
    import math

    import numpy as np

    lo, hi = SPACING_RANGE_MM
    spacing = image.GetSpacing()
    if not all(math.isfinite(s) and lo <= s <= hi for s in spacing):
        raise InputError(
            f"voxel spacing must lie in [{lo:g}, {hi:g}] mm (header says "
            f"{', '.join(f'{s:.4g}' for s in spacing)})",
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


def require_clinical_spacing(image: sitk.Image, source: str | Path) -> None:
    """Raise ``InputError`` unless every voxel size of a 3D image lies in
    :data:`CLINICAL_SPACING_MM` (a header in cm or m is the usual cause)."""
    if image.GetDimension() != 3:
        return
    lo, hi = CLINICAL_SPACING_MM
    spacing = image.GetSpacing()
    if all(lo <= s <= hi for s in spacing):
        return
    raise InputError(
        f"voxel size {' x '.join(f'{s:.4g}' for s in spacing)} mm lies outside "
        f"{lo:g}-{hi:g} mm, the range of clinical CT/MR along every axis; check that "
        "the units are mm (a header in cm gives voxels 10 times too small)",
        source,
    )
