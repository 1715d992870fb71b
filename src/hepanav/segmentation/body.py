"""Body outline from a CT: everything denser than air, connected, with its holes filled.

Used to refuse seeds outside the patient and, in planning, as the skin for entry
points when no label map is given.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from hepanav.segmentation.windows import hu_windows

COARSE_MM = 4.0


def body_mask(ct: sitk.Image, coarse_mm: float = COARSE_MM, source: str = "CT") -> sitk.Image:
    """uint8 0/1 body mask on the CT grid (LPS geometry kept).

    Computed on a grid of about ``coarse_mm`` voxels (fast on 512 x 512 x 300):
    threshold above the air limit of ``hu_windows.yaml``, largest 3D component
    (drops the table and air-filled clothing), lungs and bowel gas filled slice by
    slice (axial), then resampled back by nearest neighbour.

    The CT is first padded at its upper end of each axis (replicating the edge
    voxels) to a whole number of shrink bins: ``BinShrink`` drops the remainder, so
    without the pad the last 1-2 slices (rows, columns) of a CT whose size is not a
    multiple of the factor had no coarse voxel and were left empty (a seed on the
    last slice refused as outside the body; planning without a body there).

    A coronal or sagittal CT is permuted to axial array order for the slice filling
    and the mask permuted back onto its grid (exact: :mod:`hepanav.imaging.orient`).

    Parameters
    ----------
    ct : SimpleITK.Image
        CT in HU.
    coarse_mm : float
        Voxel size of the coarse grid, mm.
    source : str
        The CT's file, named in the error.

    Raises
    ------
    InputError
        Oblique CT: an image axis more than
        :data:`hepanav.imaging.orient.OBLIQUE_MAX_DEG` (5) degrees off the nearest
        patient axis (``SOURCE: oblique image (20.0 deg off the patient axes, ...``).
    """
    from hepanav.imaging.orient import axial_order, to_input_order

    axial, code = axial_order(ct, source)
    if axial is not ct:
        return to_input_order(body_mask(axial, coarse_mm), code, ct)
    factors = [max(1, int(round(coarse_mm / s))) for s in ct.GetSpacing()]
    image = sitk.Cast(ct, sitk.sitkFloat32)
    pad = [(-n) % f for n, f in zip(ct.GetSize(), factors, strict=True)]
    if any(pad):
        # Upper end only: the origin (index 0) and the bins' placement are unchanged.
        image = sitk.ZeroFluxNeumannPad(image, [0, 0, 0], pad)
    small = sitk.BinShrink(image, factors)
    dense = small > hu_windows()["air_below_hu"]
    labels = sitk.RelabelComponent(sitk.ConnectedComponent(dense), sortByObjectSize=True)
    body = sitk.GetArrayFromImage(labels == 1).astype(bool)
    from scipy import ndimage

    for k in range(body.shape[0]):
        body[k] = ndimage.binary_fill_holes(body[k])
    out = sitk.GetImageFromArray(body.astype(np.uint8))
    out.CopyInformation(small)
    return sitk.Resample(out, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def inside_body(body: sitk.Image, index_xyz: tuple[int, int, int]) -> bool:
    """True when voxel ``index_xyz`` (i, j, k) is inside the body mask."""
    i, j, k = index_xyz
    return bool(sitk.GetArrayViewFromImage(body)[k, j, i])
