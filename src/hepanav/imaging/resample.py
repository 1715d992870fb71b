"""Resampling in physical space: always through SimpleITK with a reference grid."""

from __future__ import annotations

import SimpleITK as sitk


def resample_like(
    image: sitk.Image,
    reference: sitk.Image,
    transform: sitk.Transform | None = None,
    *,
    interpolator: int = sitk.sitkLinear,
    default_value: float = 0.0,
    pixel_type: int | None = None,
) -> sitk.Image:
    """Resample ``image`` onto the grid of ``reference`` in physical space.

    Parameters
    ----------
    image : SimpleITK.Image
        Image to resample.
    reference : SimpleITK.Image
        Image whose size, spacing, origin and direction define the output grid.
    transform : SimpleITK.Transform, optional
        Maps points of the reference (output) space to ``image`` space (ITK
        convention). Identity when omitted.
    interpolator : int
        A ``sitk.sitkXxx`` interpolator; use ``sitk.sitkNearestNeighbor`` for labels.
    default_value : float
        Value outside ``image`` (e.g. -1000 HU for CT, 0 for masks).
    pixel_type : int, optional
        Output pixel type; that of ``image`` when omitted.
    """
    return sitk.Resample(
        image,
        reference,
        transform or sitk.Transform(),
        interpolator,
        default_value,
        image.GetPixelID() if pixel_type is None else pixel_type,
    )


def resample_mask_like(
    mask: sitk.Image, reference: sitk.Image, transform: sitk.Transform | None = None
) -> sitk.Image:
    """Resample a binary mask onto ``reference`` (uint8, 0/1).

    The mask is interpolated linearly as a fraction and thresholded at 0.5, which
    keeps its volume when going to a finer or rotated grid (nearest neighbour
    does not). For multi-label maps use :func:`resample_labels_like`.
    """
    fraction = resample_like(
        sitk.Cast(mask > 0, sitk.sitkFloat32), reference, transform, pixel_type=sitk.sitkFloat32
    )
    return sitk.Cast(fraction >= 0.5, sitk.sitkUInt8)


def resample_labels_like(
    labels: sitk.Image, reference: sitk.Image, transform: sitk.Transform | None = None
) -> sitk.Image:
    """Resample a label map onto ``reference`` with nearest-neighbour interpolation."""
    return resample_like(labels, reference, transform, interpolator=sitk.sitkNearestNeighbor)


def resample_isotropic(
    image: sitk.Image,
    spacing_mm: float,
    *,
    interpolator: int = sitk.sitkLinear,
    default_value: float = 0.0,
) -> sitk.Image:
    """Resample ``image`` to isotropic ``spacing_mm`` over the same physical extent."""
    old_size = image.GetSize()
    old_spacing = image.GetSpacing()
    size = [max(1, round(n * s / spacing_mm)) for n, s in zip(old_size, old_spacing, strict=True)]
    reference = sitk.Image(size, image.GetPixelID())
    reference.SetSpacing([spacing_mm] * 3)
    # Keep the outer edge of the volume where it was: shift the first voxel centre.
    reference.SetDirection(image.GetDirection())
    edge = image.TransformContinuousIndexToPhysicalPoint([-0.5, -0.5, -0.5])
    reference.SetOrigin(edge)
    reference.SetOrigin(reference.TransformContinuousIndexToPhysicalPoint([0.5, 0.5, 0.5]))
    return resample_like(image, reference, interpolator=interpolator, default_value=default_value)
