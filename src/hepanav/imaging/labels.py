"""Masks from multi-label maps."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hepanav.core.errors import InputError


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


def read_label_names(path: str | Path) -> dict[int, str]:
    """Read a ``{"id": "name"}`` JSON sidecar (as TotalSegmentator writes) into ``{id: name}``."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {int(k): str(v) for k, v in raw.items()}
    except FileNotFoundError:
        raise InputError("label-name file does not exist", path) from None
    except (ValueError, AttributeError) as exc:
        raise InputError(f"not a JSON object of id -> name: {exc}", path) from None
