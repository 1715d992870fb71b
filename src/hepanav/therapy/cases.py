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
        case = Case.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err.get("msg", "invalid value")
        if err.get("type") == "value_error":
            msg = msg.removeprefix("Value error, ")  # our own validators' messages
        elif err.get("type") == "extra_forbidden":
            msg = f"unknown field (known: {', '.join(Case.model_fields)})"
        elif err.get("loc", ())[-1:] == ("size_mm",) and err.get("type", "").endswith("_equal"):
            # The likeliest cause of a size out of range is a unit slip: say so.
            msg = f"{err['input']!r}: {msg} mm; sizes are in millimetres (3.1 cm is 31 mm)"
        raise InputError(f"field {_field_path(err.get('loc', ()))!r}: {msg}", source) from None
    screen_case_id(case.case_id, source)
    return case


def screen_case_id(case_id: str | None, source: str | Path = "case") -> None:
    """Refuse a ``case_id`` that looks like a name, a date of birth, a phone number, an
    e-mail address or a record number (MRN); the message never repeats the value.

    Uses the project's value screen (:func:`hepanav.core.privacy.screen_value`, shared
    with the registry) with the role of a pseudonymous id.
    """
    if case_id is None:
        return
    from hepanav.core.privacy import screen_value

    kind = screen_value(case_id, role="id")
    if kind:
        raise InputError(
            f"field 'case_id' looks like {kind} (value not shown); use a pseudonymous label "
            "such as NET-07",
            source,
        )


def load_case(path: str | Path) -> Case:
    """Read ``path`` (``.json``, or YAML for any other suffix) and validate it."""
    from hepanav.core.validation import read_user_data

    path = Path(path)
    # Regular file, size/depth bounded, finite numbers (hepanav.core.validation).
    data = read_user_data(path, "case file")
    return case_from_data(data, path)
