"""Landmark files: CSV ``id,x,y,z`` (LPS mm) or 3D Slicer markups ``.mrk.json``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from hepanav.core.errors import InputError


def read_landmarks(path: str | Path) -> dict[str, np.ndarray]:
    """Read landmarks as ``{id: LPS point (3,) in mm}``.

    Parameters
    ----------
    path : str or Path
        A CSV file with header ``id,x,y,z`` (LPS mm), or a 3D Slicer markups file
        (``.mrk.json``); Slicer points in RAS are converted to LPS (x and y negated).

    Raises
    ------
    InputError
        Missing file, bad header or values, duplicate ids, no points.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("landmark file does not exist", path)
    if path.name.lower().endswith(".json"):
        points = _read_slicer(path)
    else:
        points = _read_csv(path)
    if not points:
        raise InputError("no landmarks in file", path)
    return points


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    points: dict[str, np.ndarray] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or [f.strip().lower() for f in reader.fieldnames][:4] != [
            "id",
            "x",
            "y",
            "z",
        ]:
            raise InputError("expected a CSV header 'id,x,y,z' (LPS mm)", path)
        for line, row in enumerate(reader, start=2):
            key = str(row["id"]).strip()
            try:
                point = np.array([float(row[c]) for c in ("x", "y", "z")])
            except (TypeError, ValueError):
                raise InputError(f"line {line}: x, y, z must be numbers", path) from None
            if key in points:
                raise InputError(f"line {line}: duplicate landmark id {key!r}", path)
            points[key] = point
    return points


def _read_slicer(path: Path) -> dict[str, np.ndarray]:
    try:
        markups = json.loads(path.read_text(encoding="utf-8"))["markups"]
    except (ValueError, KeyError, TypeError):
        raise InputError("not a 3D Slicer markups file (no 'markups' list)", path) from None
    points: dict[str, np.ndarray] = {}
    for markup in markups:
        # Slicer writes LPS by default since 4.11; older files say RAS.
        flip = np.array([-1.0, -1.0, 1.0]) if markup.get("coordinateSystem") == "RAS" else 1.0
        for i, cp in enumerate(markup.get("controlPoints", [])):
            key = str(cp.get("label") or cp.get("id") or i + 1)
            try:
                points[key] = np.asarray(cp["position"], dtype=float).reshape(3) * flip
            except (KeyError, TypeError, ValueError):
                raise InputError(f"control point {key!r} has no 3D position", path) from None
    return points


def paired_landmarks(
    pre: dict[str, np.ndarray], post: dict[str, np.ndarray], source: str | Path
) -> tuple[np.ndarray, np.ndarray]:
    """Arrays (N, 3) of the pre and post points whose ids appear in both files, id order."""
    common = sorted(set(pre) & set(post), key=lambda k: (len(k), k))
    if not common:
        raise InputError("no landmark id appears in both the pre and the post file", source)
    return np.array([pre[k] for k in common]), np.array([post[k] for k in common])
