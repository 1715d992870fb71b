"""Masks from multi-label maps."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import yaml

from hepanav.core.errors import InputError

#: Largest label id accepted from users' files: 16-bit label maps, as DICOM SEG segment
#: numbers (US, PS3.3 C.8.20.2) and TotalSegmentator's uint8/uint16 outputs.
MAX_LABEL = 65535


def select_labels(label_map: sitk.Image, labels: int | Iterable[int]) -> sitk.Image:
    """Binary uint8 mask (0/1) of the voxels whose label is in ``labels``; geometry kept."""
    wanted = [labels] if isinstance(labels, int) else list(labels)
    array = sitk.GetArrayViewFromImage(label_map)
    mask = sitk.GetImageFromArray(np.isin(array, wanted).astype(np.uint8))
    mask.CopyInformation(label_map)
    return mask


def labels_present(label_map: sitk.Image) -> list[int]:
    """Sorted non-zero label values in a label map."""
    values = np.unique(sitk.GetArrayViewFromImage(label_map))
    return [int(v) for v in values if v != 0]


@functools.cache
def anatomy_label_names() -> dict[int, str]:
    """Label id -> structure name: TotalSegmentator v2 ids plus 200 ``hepatic_veins``.

    The table is ``hepanav/imaging/data/anatomy_labels.yaml`` (with its source); the
    phantoms write these ids so that one risk map serves phantoms and real scans.
    The result is cached and shared: copy it before changing it.
    """
    text = (
        resources.files("hepanav.imaging")
        .joinpath("data/anatomy_labels.yaml")
        .read_text(encoding="utf-8")
    )
    return {int(k): str(v) for k, v in yaml.safe_load(text)["labels"].items()}


def read_label_names(path: str | Path) -> dict[int, str]:
    """Read a ``{"id": "name"}`` JSON sidecar (as TotalSegmentator writes) into ``{id: name}``."""
    from hepanav.core.validation import read_user_json

    path = Path(path)
    raw = read_user_json(path, "label-name file")  # bounded depth/size, finite numbers
    if not isinstance(raw, dict):
        raise InputError("not a JSON object of id -> name", path)
    names: dict[int, str] = {}
    for k, v in raw.items():
        try:
            key = int(k)
        except ValueError:
            raise InputError(
                "not a JSON object of id -> name (a key is not an integer)", path
            ) from None
        if not 0 <= key <= MAX_LABEL:
            raise InputError(f"label ids must lie in [0, {MAX_LABEL}]", path)
        names[key] = str(v)
    return names
