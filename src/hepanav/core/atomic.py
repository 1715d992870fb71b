"""Write results so that a reader never sees a half-written file.

Everything is written to a temporary file in the destination folder and then
renamed over the target (``os.replace`` is atomic on POSIX and Windows).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hepanav.core.errors import InputError

# mkstemp creates files readable by the owner only; results should get the usual
# permissions (0666 less the umask), as open() would give them. Read once at import.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success.

    Parameters
    ----------
    target : str or Path
        Final file name. Its folder is created if missing.
    suffix : str, optional
        Suffix of the temporary file (defaults to the target's full suffix, so
        that writers choosing a format by extension, e.g. ``.nii.gz``, work).

    Raises
    ------
    InputError
        When ``target`` is an existing folder.

    Notes
    -----
    On an exception the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
    if target.is_dir():
        raise InputError("is a folder; give a file name", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(target.suffixes) or ".tmp"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    os.chmod(tmp_name, 0o666 & ~_UMASK)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(target: str | Path, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``target``; return the path."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(target: str | Path, data: Any) -> Path:
    """Atomically write ``data`` (a Pydantic model or JSON-able object) as indented JSON."""
    if hasattr(data, "model_dump_json"):
        text = data.model_dump_json(indent=2)
    else:
        text = json.dumps(data, indent=2, allow_nan=False, default=_json_default)
    return write_text(target, text + "\n")


def _json_default(obj: Any) -> Any:
    # NumPy scalars and arrays show up in results; JSON has no type for them.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")
