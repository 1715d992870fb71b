"""Axial array order for algorithms that work slice by slice.

Some steps fill holes or look for a midline "per axial slice" and read the slices as
the CT array's third index (k; numpy axis 0). That holds for axial series only; a
coronal or sagittal stack (a NIfTI with a permuted direction, a coronal DICOM series)
has its S-I axis elsewhere. :func:`axial_order` permutes such an image so that index k
runs along S-I, the rows along A-P and the columns along L-R, keeping the sign of each
axis (an exact permutation of voxels, ``SimpleITK.DICOMOrient``: no interpolation; the
physical position of every voxel is unchanged). :func:`to_input_order` puts a result on
that grid back onto the input's grid exactly (the inverse permutation).

An axial image (any flips) is returned as it is, so axial inputs are untouched.
:func:`lps_order` goes one step further for algorithms whose working grids follow the
index axes (registration): every axis permuted AND flipped to L-R, P-A, I-S, so two
files holding the same voxels in different storage orders give the same arrays.
An oblique image (an axis more than :data:`OBLIQUE_MAX_DEG` from the nearest patient
axis) is refused with a one-line error naming the input: a slice of it is not an
anatomical plane.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from hepanav.core.errors import InputError

# Largest angle (deg) between an image axis and the nearest patient axis (L-R, A-P,
# S-I) for which its slices are taken as axial/coronal/sagittal planes. 5 degrees moves
# a point 150 mm off the slice centre by 13 mm across the slice.
OBLIQUE_MAX_DEG = 5.0

_PAIRS = ("LR", "PA", "SI")  # letter pairs of LPS axes x, y, z


def orientation(image: sitk.Image) -> str:
    """Three-letter orientation of ``image`` (DICOM/ITK convention: "LPS" = axial)."""
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())


def obliquity_deg(image: sitk.Image) -> float:
    """Largest angle (deg) between an image axis and the nearest LPS axis."""
    d = np.abs(np.asarray(image.GetDirection(), dtype=float).reshape(3, 3))
    return float(np.degrees(np.arccos(np.clip(d.max(axis=0), -1.0, 1.0))).max())


def axial_target(code: str) -> str:
    """The orientation with the same axis signs as ``code`` in L-R, A-P, S-I order."""
    return "".join(next(c for c in code if c in pair) for pair in _PAIRS)


def axial_order(image: sitk.Image, source: str = "CT") -> tuple[sitk.Image, str]:
    """``image`` with its array axes in L-R, A-P, S-I order, and its own orientation.

    Parameters
    ----------
    image : SimpleITK.Image
        3-D image (any pixel type), e.g. a CT in HU, a mask or a label map.
    source : str
        Name of the input for the error message (file name or role).

    Returns
    -------
    (SimpleITK.Image, str)
        The permuted image (``image`` itself when already axial) and the input's
        orientation code for :func:`to_input_order`.

    Raises
    ------
    InputError
        The image is oblique (more than :data:`OBLIQUE_MAX_DEG` off the patient axes).
    """
    tilt = obliquity_deg(image)
    if tilt > OBLIQUE_MAX_DEG:
        raise InputError(
            f"oblique image ({tilt:.1f} deg off the patient axes, at most "
            f"{OBLIQUE_MAX_DEG:g}): slice-by-slice steps need an axial, coronal or "
            "sagittal stack; resample it onto an axis-aligned grid",
            source,
        )
    code = orientation(image)
    target = axial_target(code)
    if code == target:
        return image, code
    return sitk.DICOMOrient(image, target), code


def to_input_order(image: sitk.Image, code: str, reference: sitk.Image | None = None) -> sitk.Image:
    """Undo :func:`axial_order`: ``image`` permuted back to orientation ``code``.

    With ``reference`` (the input image), the result carries exactly its grid
    information (size must match; origin/spacing/direction copied to remove rounding).
    """
    out = image if orientation(image) == code else sitk.DICOMOrient(image, code)
    if reference is not None:
        if tuple(out.GetSize()) != tuple(reference.GetSize()):
            raise ValueError("to_input_order: size differs from the reference grid")
        out.CopyInformation(reference)
    return out


def lps_order(image: sitk.Image | None) -> sitk.Image | None:
    """``image`` with its axes permuted and flipped to the LPS order (direction closest
    to the identity; :func:`SimpleITK.DICOMOrient`, no interpolation): the same voxels
    at the same physical points (LPS mm), stored in one order whatever the file's.

    Returned as is (not copied) when already so; ``None`` passes through. Oblique
    images are reordered by their nearest patient axes (the direction keeps the tilt).
    """
    if image is None:
        return None
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    order = np.argmax(np.abs(direction), axis=0)  # LPS axis each index axis runs along
    signs = np.sign(direction[order, np.arange(3)])
    if np.array_equal(order, np.arange(3)) and np.all(signs > 0):
        return image
    return sitk.DICOMOrient(image, "LPS")
