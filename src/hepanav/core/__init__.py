"""Infrastructure shared by every capability: errors, atomic output, HTML reports."""

from hepanav.core.atomic import atomic_path, write_json, write_text
from hepanav.core.errors import HepaNavError, InputError

__all__ = ["HepaNavError", "InputError", "atomic_path", "write_json", "write_text"]
