"""Import mappings: foreign column names and codes onto the HepaNav templates.

Two kinds:

* A YAML mapping file (a centre's own spreadsheet)::

      columns:              # foreign column -> template column
        Pat-ID: patient_id
        OP date: procedure_date
      codes:                # template column -> {foreign code: template code}
        margin_status: {"0": R0, "1": R1}
        procedure_type: {RFA: ablation, MWA: ablation}
      drop: [comment]       # foreign columns to ignore

* ``redcap``: a REDCap "raw" CSV export of the HepaNav REDCap project (its data
  dictionary comes from :func:`redcap_dictionary`). ``record_id`` is the
  patient; ``redcap_event_name`` and the repeat columns are REDCap's
  bookkeeping (not identifiers); the non-repeating ``patient`` form is merged
  into every row of the repeating ``lesion_treatment``, ``follow_up`` or
  ``complication`` form; radio codes 1..n map to the HepaNav codes in order,
  yes/no 1/0 to true/false, and the checkbox ``chemo___1`` / ``chemo___2`` to
  ``prior_chemo`` / ``neoadjuvant_chemo``; the data access group becomes
  ``centre``. REDCap data dictionary format: REDCap Data Dictionary
  documentation (Vanderbilt; columns as in its CSV template).

Rows keep their spreadsheet row numbers, so errors still point at the file the
user has.
"""

from __future__ import annotations

import datetime as dt
import typing
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hepanav.core.errors import InputError
from hepanav.core.validation import first_error, read_user_yaml
from hepanav.registry.reading import Table, normalise_column
from hepanav.registry.schema import ROW_MODELS

REDCAP_FORMS = {
    "outcomes": "lesion_treatment",
    "events": "follow_up",
    "complications": "complication",
}
PATIENT_FORM = "patient"
PATIENT_FIELDS = (
    "year_of_birth",
    "sex",
    "primary_type",
    "net_grade",
    "ki67_pct",
    "ras_status",
    "braf_status",
)
# One REDCap checkbox for the two chemotherapy flags.
CHECKBOXES = {"chemo": {"1": "prior_chemo", "2": "neoadjuvant_chemo"}}
REDCAP_BOOKKEEPING = {
    "redcap_event_name",
    "redcap_repeat_instrument",
    "redcap_repeat_instance",
    "redcap_survey_identifier",
}
MAX_MAPPING_BYTES = 1024 * 1024


class MappingFile(BaseModel):
    """A YAML import mapping (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, str] = Field(default_factory=dict)
    codes: dict[str, dict[str, str]] = Field(default_factory=dict)
    drop: list[str] = Field(default_factory=list)


def _codes_of(annotation) -> tuple[str, ...] | None:
    for arg in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(arg) is typing.Literal:
            return tuple(typing.get_args(arg))
    return None


def _kind_of(annotation) -> str:
    args = set(typing.get_args(annotation)) | {annotation}
    if _codes_of(annotation):
        return "radio"
    if bool in args:
        return "yesno"
    if dt.date in args or any(dt.date in typing.get_args(a) for a in args):
        return "date"
    if int in args:
        return "integer"
    if float in args:
        return "number"
    return "text"


def _fields(kind: str) -> dict[str, Any]:
    return dict(ROW_MODELS[kind].model_fields)


def redcap_dictionary() -> pd.DataFrame:
    """The REDCap data dictionary of HepaNav's fields (upload it to create the project)."""
    header = [
        "Variable / Field Name",
        "Form Name",
        "Section Header",
        "Field Type",
        "Field Label",
        "Choices, Calculations, OR Slider Labels",
        "Field Note",
        "Text Validation Type OR Show Slider Number",
        "Text Validation Min",
        "Text Validation Max",
        "Identifier?",
        "Branching Logic (Show field only if...)",
        "Required Field?",
        "Custom Alignment",
        "Question Number (surveys only)",
        "Matrix Group Name",
        "Matrix Ranking?",
        "Field Annotation",
    ]
    rows = [_dd_row("record_id", PATIENT_FORM, "text", "Pseudonymous patient id", required=True)]
    outcome = _fields("outcomes")
    for name in PATIENT_FIELDS:
        rows.append(_dd_field(name, outcome[name], PATIENT_FORM))
    for kind, form in REDCAP_FORMS.items():
        for name, info in _fields(kind).items():
            if name == "patient_id" or (kind == "outcomes" and name in PATIENT_FIELDS):
                continue
            if name in ("prior_chemo", "neoadjuvant_chemo"):
                continue
            rows.append(_dd_field(name, info, form))
        if kind == "outcomes":
            rows.append(
                _dd_row(
                    "chemo",
                    form,
                    "checkbox",
                    "Chemotherapy before this procedure",
                    choices="1, prior (any earlier line) | 2, neoadjuvant (before this procedure)",
                )
            )
    return pd.DataFrame([[r.get(h, "") for h in header] for r in rows], columns=header)


def _dd_row(name, form, kind, label, choices="", validation="", low="", high="", required=False):
    return {
        "Variable / Field Name": name,
        "Form Name": form,
        "Field Type": kind,
        "Field Label": label,
        "Choices, Calculations, OR Slider Labels": choices,
        "Text Validation Type OR Show Slider Number": validation,
        "Text Validation Min": low,
        "Text Validation Max": high,
        "Required Field?": "y" if required else "",
    }


def _dd_field(name: str, info, form: str) -> dict:
    label = info.description or name.replace("_", " ")
    kind = _kind_of(info.annotation)
    if kind == "radio":
        codes = _codes_of(info.annotation)
        choices = " | ".join(f"{i}, {c}" for i, c in enumerate(codes, start=1))
        return _dd_row(name, form, "radio", label, choices=choices, required=info.is_required())
    if kind == "yesno":
        return _dd_row(name, form, "yesno", label, required=info.is_required())
    low = high = ""
    for meta in info.metadata:
        for bound in ("ge", "gt"):
            if getattr(meta, bound, None) is not None:
                low = getattr(meta, bound)
        for bound in ("le", "lt"):
            if getattr(meta, bound, None) is not None:
                high = getattr(meta, bound)
    validation = {"date": "date_ymd", "integer": "integer", "number": "number"}.get(kind, "")
    return _dd_row(name, form, "text", label, "", validation, low, high, info.is_required())


def write_redcap_dictionary(out: str | Path) -> Path:
    """Write the REDCap data dictionary CSV (atomically)."""
    from hepanav.core.atomic import atomic_path

    out = Path(out)
    with atomic_path(out) as tmp:
        redcap_dictionary().to_csv(tmp, index=False)
    return out


# ---------------------------------------------------------------------- applying


def load_mapping(path: str | Path) -> MappingFile:
    """Read and validate a YAML mapping file."""
    # The shared bounded reader: a regular UTF-8 file of at most 1 MiB, bounded nesting.
    path = Path(path)
    data = read_user_yaml(path, "mapping file", max_bytes=MAX_MAPPING_BYTES)
    try:
        mapping = MappingFile.model_validate(data or {})
    except ValidationError as exc:
        raise InputError(first_error(exc, "mapping"), path) from None
    return mapping


def apply_yaml_mapping(table: Table, mapping: MappingFile, kind: str, source: Path) -> Table:
    """Rename columns and translate codes as the mapping file says."""
    rename = {normalise_column(k): normalise_column(v) for k, v in mapping.columns.items()}
    drop = {normalise_column(c) for c in mapping.drop}
    fields = _fields(kind)
    unknown = sorted(v for v in rename.values() if v not in fields)
    if unknown:
        raise InputError(f"mapping targets unknown template columns {unknown}", source)
    codes = {normalise_column(k): v for k, v in mapping.codes.items()}
    records = []
    for record in table.records:
        out = {}
        for column, value in record.items():
            if column in drop:
                continue
            target = rename.get(column, column)
            if target in codes and isinstance(value, str) and value in codes[target]:
                value = codes[target][value]
            out[target] = value
        records.append(out)
    columns = [rename.get(c, c) for c in table.columns if c not in drop]
    return Table(columns, records, list(table.row_numbers), table.notes + ["mapped (YAML)"])


def apply_redcap(table: Table, kind: str, source: Path) -> Table:
    """Turn a REDCap raw export into template rows (see the module docstring)."""
    if "record_id" not in table.columns:
        raise InputError("not a REDCap export: no record_id column", source)
    form = REDCAP_FORMS[kind]
    fields = _fields(kind)
    outcome = _fields("outcomes")
    patients: dict[str, dict] = {}
    repeated = []
    for number, record in zip(table.row_numbers, table.records, strict=True):
        instrument = record.get("redcap_repeat_instrument")
        if not instrument:
            base = patients.setdefault(record["record_id"], {})
            for k, v in record.items():
                if v is not None:
                    base.setdefault(k, v)
        elif instrument == form:
            repeated.append((number, record))
    records, numbers = [], []
    for number, record in repeated:
        merged = dict(patients.get(record["record_id"], {}))
        merged.update({k: v for k, v in record.items() if v is not None})
        out: dict[str, Any] = {"patient_id": merged.pop("record_id")}
        group = merged.pop("redcap_data_access_group", None)
        if kind == "outcomes" and group and not merged.get("centre"):
            out["centre"] = group
        for column, value in merged.items():
            if column in REDCAP_BOOKKEEPING or column.endswith("_complete"):
                continue
            # Headers are normalised ("chemo___1" -> "chemo_1").
            box, sep, choice = column.rpartition("_")
            if sep and box in CHECKBOXES and choice.isdigit():
                if kind == "outcomes" and choice in CHECKBOXES[box]:
                    out[CHECKBOXES[box][choice]] = {"1": "true", "0": "false"}.get(value, value)
                continue
            if column not in fields:
                if kind != "outcomes" and column in outcome:
                    continue  # patient-form fields on an events/complications row
                out[column] = value  # refused as an unknown column, by name
                continue
            out[column] = _redcap_value(fields[column], value)
        records.append(out)
        numbers.append(number)
    columns = sorted(
        {c for r in records for c in r}, key=lambda c: list(fields).index(c) if c in fields else 999
    )
    records = [{c: r.get(c) for c in columns} for r in records]
    note = f"REDCap export: {len(records)} {form} row(s), {len(patients)} record(s)"
    return Table(columns, records, numbers, table.notes + [note])


def _redcap_value(info, value):
    if value is None:
        return None
    kind = _kind_of(info.annotation)
    if kind == "radio":
        codes = _codes_of(info.annotation)
        if value.isdigit() and 1 <= int(value) <= len(codes):
            return codes[int(value) - 1]
        return value  # a label export: the template validation checks it
    if kind == "yesno":
        return {"1": "true", "0": "false"}.get(value, value)
    return value


def apply_mapping(table: Table, mapping: str | Path, kind: str, source: Path) -> Table:
    """Apply ``redcap`` (built in) or a YAML mapping file to a table just read."""
    if str(mapping).lower() == "redcap":
        return apply_redcap(table, kind, source)
    return apply_yaml_mapping(table, load_mapping(mapping), kind, source)
