"""Stray specks of the tumour mask: tiny disconnected components left out, with a note.

Every connected component of the tumour mask is measured as a lesion (a second lesion
in the mask gets its own residual region, "whole lesion k outside the zone"). A single
voxel painted by slip 20 mm from the lesion would then make the MAM -20 mm and the
ablation "incomplete". So a component of the tumour mask (26-connected, on the mask's
own grid) is a SPECK and left out of every figure when it is

* smaller than :data:`SPECK_MM3` (20 mm^3 = 0.02 ml, a ball 3.4 mm across: below what
  CT resolves as a lesion and below what is ablated as one), and
* smaller than :data:`SPECK_SHARE` (10 %) of the largest component (a tiny tumour is
  never reduced to nothing, and a tumour made only of small parts is kept whole).

Each speck left out is named in ``warnings`` (volume, voxels, centre in LPS mm, distance
from the main lesion): never silently. A separate component at or above the limit is a
lesion and is measured; when it is under :data:`SMALL_LESION_ML` (0.1 ml) a warning says
so (a small second lesion, or a larger slip to remove from the mask).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from hepanav.imaging import voxel_to_lps
from hepanav.imaging.border import foreground_box

#: Components under this volume (mm^3) ...
SPECK_MM3 = 20.0
#: ... and under this share of the largest component are left out.
SPECK_SHARE = 0.10
#: A separate component kept but under this volume (ml) gets a warning.
SMALL_LESION_ML = 0.1


def drop_specks(
    tumor: sitk.Image, occupancy: sitk.Image | None = None
) -> tuple[sitk.Image, sitk.Image | None, list[str]]:
    """The tumour mask without its specks, its occupancy likewise, and the warnings.

    Parameters
    ----------
    tumor : SimpleITK.Image
        Tumour mask (non-zero inside).
    occupancy : SimpleITK.Image, optional
        Partial-volume fractions on ``tumor``'s grid or a box of it
        (:func:`hepanav.margin.surface.mask_field`): set to 0 around a dropped speck.

    Returns
    -------
    tumor, occupancy, warnings
        The inputs themselves when nothing is dropped (warnings may still name small
        lesions kept).
    """
    box = foreground_box(tumor)
    if box is None:
        return tumor, occupancy, []
    lo, hi = box
    array = sitk.GetArrayViewFromImage(tumor)
    crop = array[lo[2] : hi[2] + 1, lo[1] : hi[1] + 1, lo[0] : hi[0] + 1] != 0
    labels, count = ndimage.label(crop, structure=np.ones((3, 3, 3), dtype=bool))
    if count < 2:
        return tumor, occupancy, []
    voxel_mm3 = float(np.prod(tumor.GetSpacing()))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    volumes_mm3 = sizes * voxel_mm3
    largest = int(np.argmax(sizes))
    speck = (volumes_mm3 < SPECK_MM3) & (sizes < SPECK_SHARE * sizes[largest])
    centres = np.array(ndimage.center_of_mass(crop, labels, np.arange(1, count + 1)))
    centres_lps = voxel_to_lps(tumor, centres[:, ::-1] + lo)
    main = labels == largest + 1
    main &= ~ndimage.binary_erosion(main)  # its outer voxels suffice for the distance
    # distance from each component's centre to the main lesion's voxels, mm
    main_lps = voxel_to_lps(tumor, (np.argwhere(main)[:, ::-1] + lo).astype(float))
    warnings = []
    for k in np.flatnonzero(speck):
        gap = float(np.min(np.linalg.norm(main_lps - centres_lps[k], axis=1)))
        warnings.append(
            f"a stray speck of the tumour mask was LEFT OUT of every figure: {int(sizes[k])} "
            f"voxel{'s' if sizes[k] > 1 else ''} ({volumes_mm3[k]:.1f} mm^3), not connected "
            f"to the lesion, at LPS ({', '.join(f'{v:.1f}' for v in centres_lps[k])}) mm, "
            f"{gap:.0f} mm from it (components under {SPECK_MM3:g} mm^3 and under "
            f"{100 * SPECK_SHARE:g} % of the largest are taken for painting slips; if it "
            "is a lesion, segment it larger or measure it on its own)"
        )
    for k in np.flatnonzero(~speck):
        if k != largest and volumes_mm3[k] / 1000.0 < SMALL_LESION_ML:
            warnings.append(
                f"the tumour mask holds a small separate component ({volumes_mm3[k] / 1000:.3f}"
                f" ml, {int(sizes[k])} voxels) at LPS "
                f"({', '.join(f'{v:.1f}' for v in centres_lps[k])}) mm: measured as a lesion "
                "of its own (its margin counts in the MAM); if it is a painting slip, remove "
                "it from the mask"
            )
    if not speck.any():
        return tumor, occupancy, warnings
    dropped = np.isin(labels, np.flatnonzero(speck) + 1)
    cleaned = sitk.GetArrayFromImage(tumor)
    view = cleaned[lo[2] : hi[2] + 1, lo[1] : hi[1] + 1, lo[0] : hi[0] + 1]
    view[dropped] = 0
    out = sitk.GetImageFromArray(cleaned)
    out.CopyInformation(tumor)
    if occupancy is not None:
        occupancy = _cleared(occupancy, tumor, dropped, lo)
    return out, occupancy, warnings


def _cleared(
    occupancy: sitk.Image, tumor: sitk.Image, dropped: np.ndarray, lo: np.ndarray
) -> sitk.Image:
    """``occupancy`` with 0 on the dropped voxels and their 26-neighbours."""
    from hepanav.margin.surface import occupancy_offset

    offset = occupancy_offset(occupancy, tumor)  # (x, y, z) of its first voxel
    values = sitk.GetArrayFromImage(occupancy)
    where = np.argwhere(ndimage.binary_dilation(dropped, np.ones((3, 3, 3), bool)))
    where = where + lo[::-1] - offset[::-1]  # (z, y, x) on the occupancy
    inside = np.all((where >= 0) & (where < values.shape), axis=1)
    values[tuple(where[inside].T)] = 0
    out = sitk.GetImageFromArray(values)
    out.CopyInformation(occupancy)
    return out
