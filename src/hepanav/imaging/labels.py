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


LabelSpec = tuple[int | str, ...]


def parse_labels(
    text: str | int | LabelSpec | list | None, option: str = "--label"
) -> LabelSpec | None:
    """Parse ``"1,2"``, ``"liver"`` or ``"tumor, 3"`` into ``(1, 2)``, ``("liver",)``...

    Integers select label values (or segment/ROI numbers); other words select names
    (case-insensitive). ``None`` or an empty string means "not given".

    Raises
    ------
    InputError
        An empty item (``"1,,2"``) or a negative number, naming ``option``.
    """
    if text is None:
        return None
    if isinstance(text, int):
        text = str(text)
    items = text.split(",") if isinstance(text, str) else [str(t) for t in text]
    if isinstance(text, str) and not text.strip():
        return None
    out: list[int | str] = []
    for item in items:
        item = item.strip()
        if not item:
            raise InputError("empty item in the label list; use e.g. 1,2 or liver", option)
        if item.lstrip("+-").isdigit():
            value = int(item)
            if value <= 0 or value > 2**31 - 1:
                raise InputError(f"label {value} must be a positive integer", option)
            out.append(value)
        else:
            out.append(item)
    return tuple(out)


def choose_segments(
    available: list[tuple[int, str]],
    wanted: LabelSpec | None,
    kind: str,
    source: str | Path,
) -> list[tuple[int, str]]:
    """Pick ``(number, name)`` items of ``available`` by number or name.

    With nothing ``wanted`` a single item is taken; several are refused, listing
    them, because merging a tumour and a zone silently gives a wrong margin.

    Raises
    ------
    InputError
        Nothing available, several without a choice, a wanted item not present.
    """
    listing = ", ".join(f"{n} '{name}'" if name else str(n) for n, name in available)
    if not available:
        raise InputError(f"holds no {kind}", source)
    if not wanted:
        if len(available) == 1:
            return list(available)
        raise InputError(
            f"holds {len(available)} {kind}s ({listing}); choose one with the label option "
            "(a number or a name)",
            source,
        )
    chosen: list[tuple[int, str]] = []
    for item in wanted:
        if isinstance(item, int):
            hits = [a for a in available if a[0] == item]
        else:
            hits = [a for a in available if a[1].strip().lower() == item.strip().lower()]
        if not hits:
            raise InputError(f"has no {kind} {item!r}; {kind}s present: {listing}", source)
        if len(hits) > 1:
            raise InputError(
                f"{kind} name {item!r} is not unique; use its number ({listing})", source
            )
        if hits[0] not in chosen:
            chosen.append(hits[0])
    return chosen


def sidecar_label_names(path: str | Path) -> dict[int, str]:
    """Names from a ``<stem>.json`` or ``labels.json`` sidecar beside a label map, if any."""
    path = Path(path)
    stem = path.name.split(".")[0]
    for candidate in (path.parent / f"{stem}.json", path.parent / "labels.json"):
        if candidate.is_file():
            try:
                return read_label_names(candidate)
            except InputError:
                return {}
    return {}


#: Spine levels top to bottom, for naming runs of vertebrae (:func:`describe_label_ids`).
_SPINE_LEVELS = (
    [f"C{i}" for i in range(1, 8)]
    + [f"T{i}" for i in range(1, 13)]
    + [f"L{i}" for i in range(1, 6)]
) + ["S1"]


def _runs(values: list[int]) -> list[tuple[int, int]]:
    """Sorted ints as (first, last) runs of consecutive values."""
    runs: list[tuple[int, int]] = []
    for v in sorted(set(values)):
        if runs and v == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], v)
        else:
            runs.append((v, v))
    return runs


def describe_label_ids(ids: Iterable[int], names: dict[int, str] | None = None) -> str:
    """Label ids in words, grouped: ``"ribs left 1-12, vertebrae T10-L3, sternum"``.

    Names are ``names`` (default: :func:`anatomy_label_names`, TotalSegmentator v2).
    ``rib_<side>_<n>`` become one ``ribs <side> a-b, c`` item per side,
    ``vertebrae_<level>`` one ``vertebrae X-Y`` item (runs in cranio-caudal order), the
    others their name with ``_`` as a space; an id without a name is ``label N``.
    """
    names = anatomy_label_names() if names is None else names
    ribs: dict[str, list[int]] = {}
    levels: list[int] = []
    other: list[str] = []
    for i in sorted(set(int(v) for v in ids)):
        name = names.get(i)
        parts = (name or "").split("_")
        if len(parts) == 3 and parts[0] == "rib" and parts[2].isdigit():
            ribs.setdefault(parts[1], []).append(int(parts[2]))
        elif len(parts) == 2 and parts[0] == "vertebrae" and parts[1] in _SPINE_LEVELS:
            levels.append(_SPINE_LEVELS.index(parts[1]))
        else:
            other.append(name.replace("_", " ") if name else f"label {i}")
    items = []
    for side, numbers in ribs.items():
        runs = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in _runs(numbers))
        items.append(f"ribs {side} {runs}")
    if levels:
        runs = ", ".join(
            _SPINE_LEVELS[a] if a == b else f"{_SPINE_LEVELS[a]}-{_SPINE_LEVELS[b]}"
            for a, b in _runs(levels)
        )
        items.append(f"vertebrae {runs}")
    return ", ".join(items + other)
