"""Read a case file (YAML or JSON) into a validated :class:`Case`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hepanav.core import InputError
from hepanav.therapy.schema import Case


def _field_path(loc: tuple[Any, ...]) -> str:
    # ("lesions", 0, "size_mm") -> "lesions[0].size_mm"
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "case"


def case_from_data(data: Any, source: str | Path = "case") -> Case:
    """Validate parsed case data; a bad field raises InputError naming it.

    Raises
    ------
    InputError
        ``"<source>: field 'lesions[0].size_mm': Input should be greater than 0"``.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError("a case is a mapping of field: value", source)
    try:
        return Case.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err.get("msg", "invalid value")
        if err.get("type") == "extra_forbidden":
            msg = f"unknown field (known: {', '.join(Case.model_fields)})"
        raise InputError(f"field {_field_path(err.get('loc', ()))!r}: {msg}", source) from None


def load_case(path: str | Path) -> Case:
    """Read ``path`` (``.json``, or YAML for any other suffix) and validate it."""
    from hepanav.core.validation import read_user_data

    path = Path(path)
    # Regular file, size/depth bounded, finite numbers (hepanav.core.validation).
    data = read_user_data(path, "case file")
    return case_from_data(data, path)
