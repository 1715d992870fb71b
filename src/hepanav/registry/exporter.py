"""Export registry tables to CSV in the import templates' columns (round-trips)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, select

from hepanav.core.atomic import atomic_path
from hepanav.core.errors import InputError
from hepanav.registry import dataset, models
from hepanav.registry.schema import ROW_MODELS


def export_frame(engine: Engine, kind: str) -> pd.DataFrame:
    """A registry table as a DataFrame with the template's columns, in template order."""
    if kind not in ROW_MODELS:
        raise InputError(f"unknown kind {kind!r}; choose from {list(ROW_MODELS)}", "--kind")
    columns = list(ROW_MODELS[kind].model_fields)
    if kind == "outcomes":
        frame = dataset.treatments(engine)
        frame["procedure_date"] = frame["procedure_date"].dt.date
    else:
        table = (models.FollowUpEvent if kind == "events" else models.Complication).__table__
        with engine.connect() as conn:
            frame = pd.read_sql(select(*(table.c[c] for c in columns)).order_by(table.c.id), conn)
    frame = frame[columns].copy()
    if "icg_used" in frame:
        frame["icg_used"] = frame["icg_used"].map({True: "true", False: "false"})
    for col in ("year_of_birth",):
        if col in frame:
            frame[col] = frame[col].astype("Int64")
    return frame


def _check_file_name(out: Path) -> None:
    if out.is_dir():
        raise InputError("is a folder; give a file name", out)


def export_csv(engine: Engine, kind: str, out: str | Path) -> Path:
    """Write a registry table as a template CSV (atomically); return the path."""
    out = Path(out)
    _check_file_name(out)
    frame = export_frame(engine, kind)
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
    return out


def write_template(kind: str, out: str | Path) -> Path:
    """Write an empty template (header row only) as ``.csv`` or ``.xlsx``."""
    out = Path(out)
    if kind not in ROW_MODELS:
        raise InputError(f"unknown kind {kind!r}; choose from {list(ROW_MODELS)}", "KIND")
    frame = pd.DataFrame(columns=list(ROW_MODELS[kind].model_fields))
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise InputError("expected a .csv or .xlsx file name", out)
    _check_file_name(out)
    with atomic_path(out) as tmp:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_excel(tmp, index=False, engine="openpyxl")
    return out
