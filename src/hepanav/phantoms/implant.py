"""A real CT as the base of an ablation case: the scan, its liver mask and its label map.

The liver may be a binary mask or a multi-label map (TotalSegmentator ids, liver
= 5). Masks and label maps on another grid (the DICOM example stores its labels
with a flipped row axis) are resampled onto the CT in physical space.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hepanav.core.errors import InputError
from hepanav.core.paths import recorded_path
from hepanav.imaging import (
    binarize,
    labels_present,
    load_ct,
    read_image,
    require_overlap,
    resample_labels_like,
    resample_mask_like,
    same_grid,
)
from hepanav.phantoms.grid import Grid
from hepanav.phantoms.schema import LABEL_NAMES, LIVER_LABEL


@dataclass
class BaseScan:
    """Pre-procedure anatomy an ablation case is built on (arrays in (z, y, x) order).

    Attributes
    ----------
    grid : Grid
        Geometry of the CT (LPS mm; any direction).
    hu : ndarray, float32
        CT in HU (noise-free for the procedural phantom, the real scan otherwise).
    liver : ndarray, uint8
        Liver mask 0/1 on ``grid``.
    labels : ndarray or None
        Organ label map on ``grid`` (TotalSegmentator ids) when known.
    label_names : dict
        Names of the labels in ``labels``.
    liver_hu : float
        Typical liver parenchyma attenuation, HU (lesion contrasts are relative to it).
    bifurcations : ndarray, shape (N, 3)
        Known vessel bifurcations (LPS mm), preferred as landmarks.
    procedural : bool
        True for the synthetic phantom (noise is then added to the whole scan).
    source : str or None
        The real CT's path.
    """

    grid: Grid
    hu: np.ndarray
    liver: np.ndarray
    labels: np.ndarray | None
    label_names: dict[int, str]
    liver_hu: float
    bifurcations: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    procedural: bool = False
    source: str | None = None


def _liver_from(image: sitk.Image, path: Path, liver_label: int | None) -> sitk.Image:
    """Pick the liver out of a binary mask or a multi-label map."""
    present = labels_present(image)
    if not present:
        raise InputError("liver mask is empty (no non-zero voxel)", path)
    if liver_label is None:
        if len(present) == 1:
            liver_label = present[0]
        elif LIVER_LABEL in present:
            liver_label = LIVER_LABEL
        else:
            raise InputError(
                f"label map has labels {present[:8]} but not the liver label {LIVER_LABEL} "
                "(TotalSegmentator); pass the liver label explicitly",
                path,
            )
    if liver_label not in present:
        raise InputError(f"liver label {liver_label} is not in the label map", path)
    return binarize(image, liver_label)


def load_base_scan(
    ct_path: str | Path, liver_path: str | Path, liver_label: int | None = None
) -> BaseScan:
    """Read a real CT and its liver (mask or label map) for implanting lesions.

    Parameters
    ----------
    ct_path : str or Path
        CT file (NIfTI, NRRD, MHA) or DICOM series folder, HU.
    liver_path : str or Path
        Binary liver mask, or a label map (liver = ``liver_label``, default 5 when the
        map holds several labels). Resampled onto the CT in physical space when its
        grid differs.
    liver_label : int, optional
        Label value of the liver in a multi-label map.

    Raises
    ------
    InputError
        Missing/unreadable files, a CT not in HU (:func:`hepanav.imaging.load_ct`), an
        empty liver, a liver that does not overlap the CT.
    """
    ct_path, liver_path = Path(ct_path), Path(liver_path)
    ct = load_ct(ct_path, "base CT")[0]
    raw = read_image(liver_path)
    liver = _liver_from(raw, liver_path, liver_label)
    multi = len(labels_present(raw)) > 1
    labels = None
    if not same_grid(raw, ct):
        require_overlap(raw, ct, liver_path)
        liver = resample_mask_like(liver, ct)
        if multi:
            labels = resample_labels_like(sitk.Cast(raw, sitk.sitkUInt16), ct)
    elif multi:
        labels = sitk.Cast(raw, sitk.sitkUInt16)
    liver_arr = sitk.GetArrayFromImage(liver).astype(np.uint8)
    if not liver_arr.any():
        raise InputError(
            "liver mask does not overlap the CT (empty after resampling onto it)", liver_path
        )
    hu = sitk.GetArrayFromImage(sitk.Cast(ct, sitk.sitkFloat32))
    label_arr = None if labels is None else sitk.GetArrayFromImage(labels)
    names = (
        {}
        if label_arr is None
        else {int(v): LABEL_NAMES.get(int(v), f"label_{int(v)}") for v in np.unique(label_arr) if v}
    )
    # Median over the liver, away from its edge, is robust to vessels and partial volume.
    core = sitk.GetArrayFromImage(sitk.BinaryErode(liver, [2, 2, 2])).astype(bool)
    sample = hu[core] if core.sum() > 100 else hu[liver_arr > 0]
    return BaseScan(
        grid=Grid.of(ct),
        hu=hu,
        liver=liver_arr,
        labels=label_arr,
        label_names=names,
        liver_hu=float(np.median(sample)),
        # Never an absolute path (it may name a patient's folder): hepanav.core.paths.
        source=recorded_path(ct_path),
    )
