"""Images from an index -> LPS affine, made orthogonal in physical space when sheared.

NIfTI sforms, NRRD space directions and MetaImage transform matrices can hold a
shear (converters write one for gantry-tilted CT). ITK images assume orthogonal
axes in all downstream code (distance transforms, spacing), so a sheared grid is
resampled onto an orthogonal grid covering the same physical box, as 3D Slicer
does when it hardens a tilted acquisition.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from hepanav.core.errors import InputError

# Columns of a direction matrix count as orthogonal below this |cos(angle)|.
_ORTHO_TOL = 1e-4


def is_orthogonal(matrix: np.ndarray) -> bool:
    """True when the columns of the 3x3 index -> LPS ``matrix`` are mutually orthogonal."""
    unit = matrix / np.linalg.norm(matrix, axis=0)
    gram = unit.T @ unit
    return bool(np.all(np.abs(gram - np.eye(3)) < _ORTHO_TOL))


def shear_degrees(matrix: np.ndarray) -> float:
    """Largest deviation from 90 degrees between two columns of ``matrix``, in degrees."""
    unit = matrix / np.linalg.norm(matrix, axis=0)
    cosines = [abs(float(unit[:, a] @ unit[:, b])) for a, b in ((0, 1), (0, 2), (1, 2))]
    return float(np.degrees(np.arcsin(min(1.0, max(cosines)))))


def image_from_affine(
    array_zyx: np.ndarray,
    matrix: np.ndarray,
    origin: np.ndarray,
    *,
    source: str,
    is_label: bool = False,
    default_value: float = 0.0,
    fractions: bool = False,
) -> tuple[sitk.Image, list[str]]:
    """SimpleITK image of ``array_zyx`` whose voxel (i, j, k) sits at ``matrix @ ijk + origin``.

    Parameters
    ----------
    array_zyx : ndarray, shape (nz, ny, nx)
        Voxel values, x fastest (ITK/NumPy order).
    matrix : ndarray, shape (3, 3)
        Index (x, y, z) -> LPS mm; columns are the axes' step vectors.
    origin : ndarray, shape (3,)
        LPS position of voxel (0, 0, 0) in mm.
    source : str
        Named in errors.
    is_label : bool
        Nearest-neighbour when resampling (masks, label maps); linear otherwise.
    default_value : float
    fractions : bool
        With ``is_label``: a binary mask (one non-zero value) that has to be resampled
        comes back as its float32 partial-volume fraction, marked by
        :func:`hepanav.imaging.masks.fraction_image`.
        Value outside the input when a sheared grid is resampled.

    Returns
    -------
    (SimpleITK.Image, list of str)
        The image on an orthogonal grid and the notes saying what was done.
    """
    matrix = np.asarray(matrix, dtype=float)
    origin = np.asarray(origin, dtype=float)
    if not np.all(np.isfinite(matrix)) or not np.all(np.isfinite(origin)):
        raise InputError("image geometry holds non-finite numbers", source)
    spacing = np.linalg.norm(matrix, axis=0)
    if np.any(spacing <= 1e-6) or abs(np.linalg.det(matrix)) < 1e-9 * np.prod(spacing):
        raise InputError("image geometry is degenerate (zero spacing or parallel axes)", source)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_zyx))
    if is_orthogonal(matrix):
        image.SetSpacing(spacing.tolist())
        image.SetOrigin(origin.tolist())
        # Re-orthonormalise tiny rounding so ITK accepts the direction.
        q, r = np.linalg.qr(matrix / spacing)
        q = q * np.sign(np.diag(r))
        image.SetDirection(q.flatten().tolist())
        return image, []
    return _orthogonalise(image, matrix, origin, is_label, default_value, source, fractions)


def _orthogonalise(image, matrix, origin, is_label, default_value, source, fractions=False):
    angle = shear_degrees(matrix)
    # QR in column order keeps the in-plane axes (x, then y) and makes z the normal;
    # |R[k, k]| is the spacing perpendicular to the previous axes (slice distance).
    q, r = np.linalg.qr(matrix)
    signs = np.sign(np.diag(r))
    q, r = q * signs, (r.T * signs).T
    spacing = np.abs(np.diag(r))
    size_in = np.asarray(image.GetSize(), dtype=float)
    corners = np.array(
        [
            [x, y, z]
            for x in (0, size_in[0] - 1)
            for y in (0, size_in[1] - 1)
            for z in (0, size_in[2] - 1)
        ]
    )
    local = (corners @ matrix.T + origin - origin) @ q  # corner coordinates in the new frame
    lo, hi = local.min(axis=0), local.max(axis=0)
    size = np.floor((hi - lo) / spacing + 1e-6).astype(int) + 1
    if np.prod(size.astype(float)) > 4 * np.prod(size_in) + 1e6:
        raise InputError(
            f"sheared grid ({angle:.1f} degrees) would need {int(np.prod(size.astype(float)))} "
            "voxels on an orthogonal grid; refused",
            source,
        )
    reference = sitk.Image([int(v) for v in size], image.GetPixelID())
    reference.SetSpacing(spacing.tolist())
    reference.SetDirection(q.flatten().tolist())
    reference.SetOrigin((origin + q @ lo).tolist())
    # The input lives in index space (identity geometry); map LPS -> index by the inverse affine.
    inverse = np.linalg.inv(matrix)
    to_index = sitk.AffineTransform(3)
    to_index.SetMatrix(inverse.flatten().tolist())
    to_index.SetTranslation((-inverse @ origin).tolist())
    if is_label:
        out = _labels_by_fraction(image, reference, to_index, fractions)
    else:
        out = sitk.Resample(
            image, reference, to_index, sitk.sitkLinear, default_value, sitk.sitkFloat32
        )
    note = (
        f"sheared grid ({angle:.1f} degrees between axes) resampled onto an orthogonal "
        f"grid in physical space ({'x'.join(map(str, size))} voxels, "
        f"{'/'.join(f'{s:.3g}' for s in spacing)} mm)"
    )
    return out, [note]


def _labels_by_fraction(image, reference, transform, fractions: bool = False) -> sitk.Image:
    """Each label's fraction resampled linearly; a voxel takes the label covering >= half.

    Keeps mask surfaces in place (nearest neighbour moves them by up to half a voxel).
    With ``fractions``, a binary mask (one non-zero value) comes back as its float32
    fraction (see :func:`hepanav.imaging.masks.fraction_image`).
    """
    from hepanav.imaging.masks import fraction_image

    array = sitk.GetArrayViewFromImage(image)
    labels = [v for v in np.unique(array).tolist() if v != 0]
    if fractions and len(labels) == 1:
        indicator = sitk.GetImageFromArray((array != 0).astype(np.float32))
        indicator.CopyInformation(image)
        fraction = sitk.Resample(
            indicator, reference, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32
        )
        return fraction_image(fraction, labels[0])
    out = np.zeros(reference.GetSize()[::-1], dtype=np.float32)
    best = np.zeros_like(out)
    if len(labels) > 64:
        nearest = sitk.Resample(image, reference, transform, sitk.sitkNearestNeighbor, 0.0)
        return nearest
    for value in labels:
        indicator = sitk.GetImageFromArray((array == value).astype(np.float32))
        indicator.CopyInformation(image)
        fraction = sitk.GetArrayFromImage(
            sitk.Resample(indicator, reference, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        )
        take = (fraction >= 0.5) & (fraction > best)
        out[take] = value
        best = np.maximum(best, fraction)
    result = sitk.GetImageFromArray(out.astype(array.dtype) if array.dtype.kind in "iub" else out)
    result.CopyInformation(reference)
    return result


def index_affine(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """(matrix, origin) of an ITK image: ``lps = matrix @ ijk + origin``."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    return direction * np.asarray(image.GetSpacing(), dtype=float), np.asarray(image.GetOrigin())


def orthogonal_image(
    image: sitk.Image,
    *,
    source: str,
    is_label: bool = False,
    default_value: float = 0.0,
    fractions: bool = False,
) -> tuple[sitk.Image, list[str]]:
    """``image`` unchanged when its axes are orthogonal, else resampled onto an orthogonal grid.

    ``fractions``: a resampled binary mask comes back as its partial-volume fraction
    (see :func:`hepanav.imaging.masks.fraction_image`)."""
    matrix, origin = index_affine(image)
    if is_orthogonal(matrix):
        return image, []
    raw = sitk.GetImageFromArray(sitk.GetArrayViewFromImage(image))
    return _orthogonalise(raw, matrix, origin, is_label, default_value, source, fractions)
