"""The HU limits of ``data/hu_windows.yaml`` (with their sources) as a cached mapping."""

from __future__ import annotations

import functools
from importlib import resources

import yaml


@functools.cache
def hu_windows() -> dict[str, float]:
    """Name -> HU limit from ``hepanav/segmentation/data/hu_windows.yaml`` (cached; copy it)."""
    text = (
        resources.files("hepanav.segmentation")
        .joinpath("data/hu_windows.yaml")
        .read_text(encoding="utf-8")
    )
    raw = yaml.safe_load(text)
    return {k: float(v) for k, v in raw.items() if k != "source"}
