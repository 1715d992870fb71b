"""Errors for user mistakes.

Every mistake a user can make (a missing file, a bad field, an empty mask) is
raised as :class:`InputError`. The CLI prints its message on one line and exits
with code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class HepaNavError(Exception):
    """Base class of all errors HepaNav raises on purpose."""


class InputError(HepaNavError, ValueError):
    """Bad input: names the file or field and says what was wrong.

    Parameters
    ----------
    message : str
        What was wrong, in one sentence.
    source : str or Path, optional
        The file, folder or field the problem is in; prefixed to the message.
    """

    def __init__(self, message: str, source: str | Path | None = None) -> None:
        self.source = None if source is None else str(source)
        self.reason = message
        super().__init__(f"{self.source}: {message}" if self.source else message)
