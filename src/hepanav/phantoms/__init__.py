"""Synthetic data with ground truth: CT phantoms, ablation cases, (fluorescence frames).

- :func:`hepanav.phantoms.abdomen.make_abdomen`: procedural abdominal CT + label map.
- :func:`hepanav.phantoms.ablation_case.make_ablation_case`: pre/post CT pair with a
  tumour, an ablation zone, a known deformation and the true margins (procedural or
  implanted into a real CT).

Submodules are imported on first use so that ``import hepanav.phantoms`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "make_abdomen": "hepanav.phantoms.abdomen",
    "make_ablation_case": "hepanav.phantoms.ablation_case",
    "build_case": "hepanav.phantoms.ablation_case",
    "case_parameters": "hepanav.phantoms.ablation_case",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hepanav.phantoms' has no attribute {name!r}")
