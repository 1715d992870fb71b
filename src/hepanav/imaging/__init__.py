"""Images and masks in physical space (SimpleITK; LPS, millimetres).

Read CT and masks from NIfTI, NRRD, MHA and DICOM series folders, check
geometry, resample in physical space, select labels. Every reader raises
:class:`hepanav.core.InputError` naming the file for a user mistake.
"""

from hepanav.imaging.dicom import read_dicom_series
from hepanav.imaging.geometry import (
    lps_to_voxel,
    physical_extent,
    require_overlap,
    same_grid,
    voxel_to_lps,
)
from hepanav.imaging.io import load_ct, load_image, read_image, require_3d, write_image
from hepanav.imaging.labels import (
    anatomy_label_names,
    labels_present,
    parse_labels,
    read_label_names,
    select_labels,
)
from hepanav.imaging.masks import (
    binarize,
    bounding_box_index,
    crop,
    dice,
    load_mask,
    load_mask_occupancy,
    mask_from_values,
    read_mask,
    require_nonempty,
    volume_ml,
)
from hepanav.imaging.resample import (
    resample_isotropic,
    resample_labels_like,
    resample_like,
    resample_mask_like,
)
from hepanav.imaging.schema import Geometry, InputRecord, display_name

__all__ = [
    "anatomy_label_names",
    "Geometry",
    "InputRecord",
    "display_name",
    "load_ct",
    "load_image",
    "load_mask",
    "load_mask_occupancy",
    "mask_from_values",
    "parse_labels",
    "binarize",
    "bounding_box_index",
    "crop",
    "dice",
    "labels_present",
    "lps_to_voxel",
    "physical_extent",
    "read_dicom_series",
    "read_image",
    "read_label_names",
    "read_mask",
    "require_3d",
    "require_nonempty",
    "require_overlap",
    "resample_isotropic",
    "resample_labels_like",
    "resample_like",
    "resample_mask_like",
    "same_grid",
    "select_labels",
    "voxel_to_lps",
    "volume_ml",
    "write_image",
]
