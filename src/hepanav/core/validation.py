"""Turn validation and parse errors of user files into one-line ``InputError`` messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hepanav.core.errors import InputError


def first_error(exc: ValidationError, default_field: str = "input") -> str:
    """``"field.path: message"`` of the first error of a Pydantic ``ValidationError``.

    One error is enough to act on, and it keeps CLI messages on one line.
    """
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ())) or default_field
    return f"{field}: {err.get('msg', 'invalid value')}"


def parse_yaml(text: str, source: str | Path) -> Any:
    """Parse YAML (JSON is YAML too); a syntax error becomes an ``InputError`` on ``source``."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {' '.join(str(exc).split())}", source) from None
