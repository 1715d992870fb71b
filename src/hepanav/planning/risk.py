"""Risk structures: the YAML label map of no-go structures and their clearances."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import yaml
from pydantic import ValidationError

from hepanav.core.errors import InputError
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
        if not path.is_file():
            raise InputError("label-map file does not exist", path)
        text, source = path.read_text(encoding="utf-8"), str(path)
    try:
        return RiskMap.model_validate(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {' '.join(str(exc).split())}", source) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "file"
        raise InputError(f"{field}: {first['msg']}", source) from None


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


def _totalsegmentator_names() -> dict[int, str]:
    # TotalSegmentator v2 class ids (Wasserthal et al. 2023) for the structures of the
    # default risk map, used when the label map comes without a names sidecar.
    names = {
        1: "spleen",
        2: "kidney_right",
        3: "kidney_left",
        4: "gallbladder",
        5: "liver",
        6: "stomach",
        7: "pancreas",
        10: "lung_upper_lobe_left",
        11: "lung_lower_lobe_left",
        12: "lung_upper_lobe_right",
        13: "lung_middle_lobe_right",
        14: "lung_lower_lobe_right",
        15: "esophagus",
        18: "small_bowel",
        19: "duodenum",
        20: "colon",
        25: "sacrum",
        26: "vertebrae_S1",
        51: "heart",
        52: "aorta",
        63: "inferior_vena_cava",
        64: "portal_vein_and_splenic_vein",
        69: "humerus_left",
        70: "humerus_right",
        71: "scapula_left",
        72: "scapula_right",
        73: "clavicula_left",
        74: "clavicula_right",
        75: "femur_left",
        76: "femur_right",
        77: "hip_left",
        78: "hip_right",
        79: "spinal_cord",
        116: "sternum",
        117: "costal_cartilages",
        200: "hepatic_veins",
    }
    names.update({27 + i: f"vertebrae_L{5 - i}" for i in range(5)})
    names.update({32 + i: f"vertebrae_T{12 - i}" for i in range(12)})
    names.update({44 + i: f"vertebrae_C{7 - i}" for i in range(7)})
    names.update({92 + i: f"rib_left_{1 + i}" for i in range(12)})
    names.update({104 + i: f"rib_right_{1 + i}" for i in range(12)})
    return names


TOTALSEGMENTATOR_NAMES = _totalsegmentator_names()
