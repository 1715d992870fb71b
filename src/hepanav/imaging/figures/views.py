"""Ready-made view sets: three orthogonal planes through a point, fusion checkerboards."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from hepanav.imaging.figures.planes import Plane, standard_plane


def three_planes(
    source: sitk.Image, centre, *, size_mm: float = 90.0, pixel_mm: float | None = None
) -> list[Plane]:
    """Axial, coronal and sagittal planes of ``size_mm`` square through ``centre`` (LPS mm).

    ``source`` gives the slice positions and DICOM instances; pixel size defaults to
    the finest source spacing (at least 0.5 mm so the figures stay small).
    """
    px = pixel_mm or max(0.5, float(min(source.GetSpacing())))
    return [
        standard_plane(source, view, centre, size_mm=size_mm, pixel_mm=px)
        for view in ("axial", "coronal", "sagittal")
    ]


def checkerboard(a: np.ndarray, b: np.ndarray, plane: Plane, square_mm: float = 10.0) -> np.ndarray:
    """Interleave two images resampled onto ``plane`` in squares of ``square_mm``.

    Squares with an even (row + col) index show ``a``, the others ``b``; edges that
    continue across square borders show a good fusion.
    """
    rows, cols = plane.shape
    r = (np.arange(rows) * plane.pixel_mm[0] // square_mm).astype(int)
    c = (np.arange(cols) * plane.pixel_mm[1] // square_mm).astype(int)
    even = ((r[:, None] + c[None, :]) % 2) == 0
    return np.where(even, a, b)
