"""Landmark files: CSV ``id,x,y,z`` (LPS mm), 3D Slicer ``.fcsv`` or markups ``.mrk.json``.

Slicer files say their coordinate system: ``.mrk.json`` in ``coordinateSystem``
("LPS" or "RAS"; LPS when absent, as the markups JSON schema defines), ``.fcsv``
in its ``# CoordinateSystem =`` header line ("LPS"/"RAS", or 1/0 in files of
Slicer 4.10 and before; RAS when the line is absent, as those versions wrote).
RAS points are converted to LPS by negating x and y.
"""

from __future__ import annotations

import csv
import io
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
        Missing or non-UTF-8 file, bad header, malformed markups, values that are not
        finite numbers, duplicate ids, no points.
    """

    path = Path(path)
    from hepanav.core.validation import read_user_text

    # utf-8-sig: spreadsheet programs often start a CSV with a byte-order mark.
    text = read_user_text(path, "landmark file", encoding="utf-8-sig")
    name = path.name.lower()
    if name.endswith(".json"):
        points = _read_slicer(text, path)
    elif name.endswith(".fcsv"):
        points = _read_fcsv(text, path)
    else:
        points = _read_csv(text, path)
    if not points:
        raise InputError("no landmarks in file", path)
    for key, point in points.items():
        if not np.all(np.isfinite(point)):
            raise InputError(f"landmark {key!r}: coordinates must be finite numbers", path)
    return points


def _read_csv(text: str, path: Path) -> dict[str, np.ndarray]:
    points: dict[str, np.ndarray] = {}
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [f.strip().lower() for f in reader.fieldnames or []]
        if header[:4] != ["id", "x", "y", "z"]:
            raise InputError("expected a CSV header 'id,x,y,z' (LPS mm)", path)
        reader.fieldnames = header  # so that 'ID, X, Y, Z' rows are read too
        for line, row in enumerate(reader, start=2):
            key = str(row["id"]).strip()
            try:
                point = np.array([float(row[c]) for c in ("x", "y", "z")])
            except (TypeError, ValueError):
                raise InputError(f"line {line}: x, y, z must be numbers", path) from None
            if key in points:
                raise InputError(f"line {line}: duplicate landmark id {key!r}", path)
            points[key] = point
    except csv.Error as exc:
        raise InputError(f"not a valid CSV file ({exc})", path) from None
    return points


def _read_slicer(text: str, path: Path) -> dict[str, np.ndarray]:
    from hepanav.core.validation import parse_json

    data = parse_json(text, path)  # bounded depth/size, finite numbers
    markups = data.get("markups") if isinstance(data, dict) else None
    if not isinstance(markups, list) or not all(isinstance(m, dict) for m in markups):
        raise InputError("not a 3D Slicer markups file (no 'markups' list)", path)
    points: dict[str, np.ndarray] = {}
    for markup in markups:
        control_points = markup.get("controlPoints", [])
        if not isinstance(control_points, list) or not all(
            isinstance(cp, dict) for cp in control_points
        ):
            raise InputError("'controlPoints' must be a list of objects", path)
        system = str(markup.get("coordinateSystem", "LPS")).upper()
        if system not in ("LPS", "RAS"):
            raise InputError(f"unknown coordinateSystem {system!r}; expected LPS or RAS", path)
        flip = np.array([-1.0, -1.0, 1.0]) if system == "RAS" else 1.0
        for i, cp in enumerate(control_points):
            key = str(cp.get("label") or cp.get("id") or i + 1)
            try:
                points[key] = np.asarray(cp["position"], dtype=float).reshape(3) * flip
            except (KeyError, TypeError, ValueError):
                raise InputError(f"control point {key!r} has no 3D position", path) from None
    return points


_FCSV_SYSTEMS = {"LPS": "LPS", "1": "LPS", "RAS": "RAS", "0": "RAS"}


def _read_fcsv(text: str, path: Path) -> dict[str, np.ndarray]:
    """3D Slicer fiducial CSV: ``#`` header lines, then id,x,y,z,...,label,... rows."""
    system = "RAS"  # Slicer 4.10 and before wrote RAS without saying so
    columns = ["id", "x", "y", "z", "ow", "ox", "oy", "oz", "vis", "sel", "lock", "label"]
    rows: list[tuple[int, list[str]]] = []
    try:
        for line_no, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
            if not row:
                continue
            first = row[0].strip()
            if first.startswith("#"):
                key, _, value = ",".join(row).lstrip("#").partition("=")
                key, value = key.strip().lower(), value.strip()
                if key == "coordinatesystem":
                    if value.upper() not in _FCSV_SYSTEMS:
                        raise InputError(
                            f"line {line_no}: unknown CoordinateSystem {value!r}", path
                        )
                    system = _FCSV_SYSTEMS[value.upper()]
                elif key == "columns":
                    columns = [c.strip().lower() for c in value.split(",")]
                continue
            rows.append((line_no, row))
    except csv.Error as exc:
        raise InputError(f"not a valid .fcsv file ({exc})", path) from None
    if not {"x", "y", "z"} <= set(columns):
        raise InputError("the # columns line names no x, y, z", path)
    flip = np.array([-1.0, -1.0, 1.0]) if system == "RAS" else 1.0
    points: dict[str, np.ndarray] = {}
    for line_no, row in rows:
        record = dict(zip(columns, row, strict=False))
        key = str(record.get("label") or record.get("id") or len(points) + 1).strip()
        try:
            point = np.array([float(record[c]) for c in ("x", "y", "z")]) * flip
        except (KeyError, TypeError, ValueError):
            raise InputError(f"line {line_no}: x, y, z must be numbers", path) from None
        if key in points:
            raise InputError(f"line {line_no}: duplicate landmark label {key!r}", path)
        points[key] = point
    return points


def paired_landmarks(
    pre: dict[str, np.ndarray], post: dict[str, np.ndarray], source: str | Path
) -> tuple[np.ndarray, np.ndarray]:
    """Arrays (N, 3) of the pre and post points whose ids appear in both files, id order."""
    common = sorted(set(pre) & set(post), key=lambda k: (len(k), k))
    if not common:
        raise InputError("no landmark id appears in both the pre and the post file", source)
    return np.array([pre[k] for k in common]), np.array([post[k] for k in common])


#: Mean landmark TRE (mm) above which the result carries a warning. The registration
#: of the evaluation pairs stays within 1.5 mm mean TRE (docs/margin.md) and a margin
#: is judged against 5-10 mm: a 10 mm mean error means the registration failed or the
#: landmarks do not describe the same points (another coordinate system, other ids).
TRE_WARNING_MM = 10.0
_FLIP = np.array([-1.0, -1.0, 1.0])  # RAS <-> LPS: x and y negated


def landmark_warning(transform, pre_points: np.ndarray, post_points: np.ndarray) -> str | None:
    """A warning when the landmark TRE exceeds :data:`TRE_WARNING_MM`, naming the cause.

    The TRE is computed again with x and y negated (RAS read as LPS) in both files, in
    the pre file only and in the post file only; when one of these brings the mean
    within the limit, the warning names that file as written in RAS. Otherwise the
    registration (or the pairing of the ids) is named. ``transform`` maps post to pre.
    """
    from hepanav.margin.registration import target_registration_error

    pre, post = np.asarray(pre_points, float), np.asarray(post_points, float)
    tre = target_registration_error(transform, pre, post)
    if tre["mean"] <= TRE_WARNING_MM:
        return None
    head = (
        f"landmark TRE mean {tre['mean']:.1f} mm, max {tre['max']:.1f} mm over "
        f"{int(tre['n'])} landmarks exceeds {TRE_WARNING_MM:g} mm"
    )
    trials = {
        "both landmark files": (pre * _FLIP, post * _FLIP),
        "the pre landmark file": (pre * _FLIP, post),
        "the post landmark file": (pre, post * _FLIP),
    }
    fits = {k: target_registration_error(transform, *v)["mean"] for k, v in trials.items()}
    which = min(fits, key=fits.get)
    if fits[which] <= TRE_WARNING_MM:
        return (
            f"{head}; with x and y negated in {which} it would be {fits[which]:.1f} mm: "
            f"{which} {'are' if which.startswith('both') else 'is'} likely in RAS, not LPS "
            "(write LPS, or a 3D Slicer .fcsv/.mrk.json "
            "that states its coordinate system); the TRE does not validate this registration"
        )
    return (
        f"{head}: the registration may have failed or the landmark ids do not pair the same "
        "points; check the registration overlay before using this margin"
    )
