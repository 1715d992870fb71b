"""Read users' text files; turn parse and validation errors into one-line ``InputError``."""

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


def read_user_text(path: Path, what: str) -> str:
    """UTF-8 text of ``path``; a missing or binary file becomes an ``InputError``.

    Parameters
    ----------
    path : Path
        The file the user named.
    what : str
        What the file should be (``"device file"``, ``"plan file"``), for the message.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} does not exist", path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{what} is not UTF-8 text", path) from None
