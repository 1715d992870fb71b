"""Risk structures: the YAML label map of no-go structures and their clearances."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from hepanav.core.errors import InputError
from hepanav.core.validation import first_error, parse_yaml, read_user_text
from hepanav.imaging.labels import anatomy_label_names, describe_label_ids
from hepanav.planning.schema import RiskMap


def load_risk_map(path: str | Path | None = None) -> RiskMap:
    """Read a risk map YAML (the built-in default when ``path`` is None).

    Raises
    ------
    InputError
        Missing file, invalid YAML, or a field that fails validation (named).
    """
    if path is None:
        text = (resources.files("hepanav.planning") / "data" / "risk_map.yaml").read_text("utf-8")
        source = "risk_map.yaml"
    else:
        path = Path(path)
        text, source = read_user_text(path, "label-map file"), str(path)
    try:
        return RiskMap.model_validate(parse_yaml(text, source))
    except ValidationError as exc:
        raise InputError(first_error(exc, "file"), source) from None


def label_lookup(risk: RiskMap, max_label: int) -> np.ndarray:
    """Table ``rule_of[label]``: index of the no-go rule of each label value, -1 if none.

    Parameters
    ----------
    risk : RiskMap
    max_label : int
        Largest label value in the label map; the table has ``max_label + 1`` entries.

    Returns
    -------
    ndarray of int16, shape (max_label + 1,)
    """
    table = np.full(max(max_label, 255) + 1, -1, dtype=np.int16)
    for index, rule in enumerate(risk.structures):
        for label in rule.labels:
            if label < table.size:
                table[label] = index
    return table


def structure_name(label: int, label_names: dict[int, str], risk: RiskMap) -> str:
    """Readable name of a label: the label map's own name, else ``rule:label``."""
    if label in label_names:
        return label_names[label]
    if label in TOTALSEGMENTATOR_NAMES:
        return TOTALSEGMENTATOR_NAMES[label]
    for rule in risk.structures:
        if label in rule.labels:
            return f"{rule.name}:{label}"
    return f"label {label}"


def absent_groups(labels, risk: RiskMap) -> list:
    """The risk map's groups none of whose labels occur in ``labels`` (label map image or
    array), as :class:`hepanav.planning.schema.AbsentStructure` (no-go and heat sink)."""
    import SimpleITK as sitk

    from hepanav.planning.schema import AbsentStructure

    arr = sitk.GetArrayViewFromImage(labels) if isinstance(labels, sitk.Image) else labels
    present = set(np.nonzero(np.bincount(np.asarray(arr).ravel()))[0].tolist())
    out = []
    for rule in risk.structures:
        if present & set(rule.labels):
            continue
        kind = "heat-sink vessel group" if rule.heat_sink else "no-go group"
        what = (
            "its cooling of the ablation zone is not modelled and needles are not kept "
            f"{rule.clearance_mm:g} mm from it"
            if rule.heat_sink
            else f"needles are not kept {rule.clearance_mm:g} mm from it"
        )
        out.append(
            AbsentStructure(
                name=rule.name,
                labels=list(rule.labels),
                heat_sink=rule.heat_sink,
                clearance_mm=rule.clearance_mm,
                labels_named=describe_label_ids(rule.labels, TOTALSEGMENTATOR_NAMES),
                message=f"{kind} '{rule.name}' is ABSENT from the label map: {what}",
            )
        )
    return out


def partly_given_groups(given: set[int], present: set[int], risk: RiskMap) -> list:
    """Groups of which a TotalSegmentator folder gives some structures but has no file at
    all for others (e.g. stomach given, colon and small bowel missing), as
    :class:`hepanav.planning.schema.AbsentStructure` with ``partial=True`` and the missing
    ids. Groups wholly absent are :func:`absent_groups`' job and are not repeated here.

    ``given``: ids with a file in the folder (empty masks included: a structure segmented
    but outside the field of view is not missing); ``present``: ids with voxels.
    """
    from hepanav.planning.schema import AbsentStructure

    out = []
    for rule in risk.structures:
        missing = [label for label in rule.labels if label not in given]
        if not missing or not present & set(rule.labels):
            continue
        names = describe_label_ids(missing, TOTALSEGMENTATOR_NAMES)
        kind = "heat-sink vessel group" if rule.heat_sink else "no-go group"
        out.append(
            AbsentStructure(
                name=rule.name,
                labels=missing,
                heat_sink=rule.heat_sink,
                clearance_mm=rule.clearance_mm,
                partial=True,
                labels_named=names,
                message=(
                    f"{kind} '{rule.name}' is only PARTLY given: no file for {names} in the "
                    "TotalSegmentator folder; the plan neither avoids nor models them"
                ),
            )
        )
    return out


# TotalSegmentator v2 ids (+ 200 hepatic_veins), used when a label map comes without a
# names sidecar.
TOTALSEGMENTATOR_NAMES = anatomy_label_names()
