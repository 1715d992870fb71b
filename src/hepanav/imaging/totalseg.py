"""Read TotalSegmentator output directly: a folder of one mask per structure, or its
multi-label file, onto one label map with the ids of ``imaging/data/anatomy_labels.yaml``.

TotalSegmentator (Wasserthal et al., Radiol Artif Intell 2023;5:e230024) writes, per
task, ``<out>/<structure>.nii.gz`` (0/1 each) or, with ``--ml``, one multi-label file
whose ids are those of the table. The ``liver_vessels`` task writes
``liver_vessels.nii.gz`` (intrahepatic portal and hepatic veins together) and
``liver_tumor.nii.gz``; its vessels are mapped to id 200, in the risk map's heat-sink
group ``portal_and_hepatic_veins``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hepanav.core.errors import InputError
from hepanav.imaging.geometry import require_overlap, same_grid
from hepanav.imaging.io import read_image
from hepanav.imaging.labels import anatomy_label_names
from hepanav.imaging.resample import resample_mask_like

# The liver_vessels task's vessels (portal + hepatic veins, one class) -> heat-sink id.
LIVER_VESSELS_ID = 200
LIVER_ID = 5  # TotalSegmentator v2 "liver"
TASK_FILES = {"liver_vessels": LIVER_VESSELS_ID}


@dataclass
class LabelMap:
    """A label map on a reference grid with the names of its ids and what was skipped."""

    image: sitk.Image
    names: dict[int, str]
    skipped: list[str] = field(default_factory=list)
    # Ids with a file in the folder, empty masks included (a structure outside the field
    # of view); None for a multi-label file, where "not given" cannot be told apart.
    given: set[int] | None = None
    # Names of the folder's files that were read (known structures); empty for a file.
    files: list[str] = field(default_factory=list)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def read_totalsegmentator(path: str | Path, reference: sitk.Image | None = None) -> LabelMap:
    """Read a TotalSegmentator output folder or multi-label file as one label map.

    Parameters
    ----------
    path : str or Path
        A folder of ``<structure>.nii.gz`` masks (any of the tasks, ``liver_vessels``
        included), or one multi-label file (TotalSegmentator v2 ids).
    reference : SimpleITK.Image, optional
        Grid of the result (the CT); masks on other grids are resampled onto it in
        physical space (nearest neighbour). Default: the first mask's grid.

    Returns
    -------
    LabelMap
        uint16 label map; ``names`` id -> structure; ``skipped`` files whose name is not
        in the id table (reported, never guessed).

    Raises
    ------
    InputError
        Missing path, a folder without any known structure, masks that do not
        overlap the reference.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file or folder does not exist", path)
    table = anatomy_label_names()
    if path.is_file():
        image = read_image(path)
        if reference is not None and not same_grid(image, reference):
            require_overlap(image, reference, path)
            image = sitk.Resample(
                image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt16
            )
        image = sitk.Cast(image, sitk.sitkUInt16)
        ids = [int(v) for v in np.unique(sitk.GetArrayViewFromImage(image)) if v]
        return LabelMap(image, {i: table.get(i, f"label_{i}") for i in ids})
    by_name = {name: i for i, name in table.items()}
    files = sorted(p for p in path.iterdir() if p.is_file() and _stem(p) != p.name)
    known = [(p, TASK_FILES.get(_stem(p), by_name.get(_stem(p)))) for p in files]
    skipped = [p.name for p, i in known if i is None]
    known = [(p, i) for p, i in known if i is not None]
    if not known:
        raise InputError(
            "no TotalSegmentator structure file (e.g. liver.nii.gz, aorta.nii.gz, "
            "liver_vessels.nii.gz) in the folder",
            path,
        )
    ref = reference if reference is not None else read_image(known[0][0])
    labels = np.zeros(sitk.GetArrayViewFromImage(ref).shape, np.uint16)
    names: dict[int, str] = {}
    for p, label in known:
        mask = sitk.Cast(read_image(p) != 0, sitk.sitkUInt8)
        if not same_grid(mask, ref):
            require_overlap(mask, ref, p)
            mask = resample_mask_like(mask, ref)
        arr = sitk.GetArrayViewFromImage(mask) > 0
        if arr.any():
            # Later files do not overwrite structures already placed (no id is lost
            # silently where TotalSegmentator masks overlap by a voxel), except the
            # liver_vessels task's vessels: TotalSegmentator's liver mask contains the
            # intrahepatic vessels, so they are placed over the liver (else the heat-sink
            # vessels would vanish inside it whenever liver.nii.gz is read first).
            free = labels == 0
            if label == LIVER_VESSELS_ID:
                free |= labels == LIVER_ID
            labels[arr & free] = label
            names[label] = table.get(label, _stem(p))
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(ref)
    return LabelMap(
        image, names, skipped, given={label for _, label in known}, files=[p.name for p, _ in known]
    )
