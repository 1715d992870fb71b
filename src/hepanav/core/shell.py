"""The command-line shell's safety net: library chatter captured, unexpected errors logged.

Used by :mod:`hepanav.cli` around every command:

* :func:`captured_stderr` redirects file descriptor 2 to a temporary file, so the C and
  C++ libraries underneath (ITK, GDCM, libpng, libtiff, OpenCV, FFmpeg, libpq) cannot
  print their own lines. Python's ``sys.stderr`` keeps writing to the terminal (progress
  bars, the disclaimer, HepaNav's own messages); Python ``warnings`` are collected too.
* :func:`write_log` writes what was captured, and for an unexpected exception its
  traceback, to a log file (mode 0600) under :func:`log_dir`; the one ``error:`` line
  gives that file's path.

Privacy: exception messages of unexpected errors may quote values from users' files
(pandas and SQL drivers do), so the log keeps the exception type and the stack (file,
line, function) but withholds the message, unless ``HEPANAV_LOG_MESSAGES=1`` is set on a
machine without patient data (developers).
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path


def log_dir() -> Path:
    """Folder of HepaNav's log files.

    ``$HEPANAV_LOG_DIR`` if set, else ``$XDG_STATE_HOME/hepanav/logs`` (default
    ``~/.local/state/hepanav/logs``, the XDG Base Directory specification's place for
    logs); the system temporary folder when neither can be created.
    """
    env = os.environ.get("HEPANAV_LOG_DIR")
    if env:
        return Path(env)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "hepanav" / "logs"


@dataclass
class Captured:
    """What a command printed below Python: file-descriptor-2 bytes and Python warnings."""

    chatter: str = ""
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [ln.rstrip() for ln in self.chatter.splitlines() if ln.strip()]
        return out + self.warnings


def _stderr_is_fd2() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


@contextmanager
def captured_stderr() -> Iterator[Captured]:
    """Redirect fd 2 (C-level stderr) to a temporary file for the duration of the block.

    ``sys.stderr`` is re-pointed to a duplicate of the original descriptor so Python
    writes still reach the terminal (and ``isatty`` stays true there). Warnings issued
    through :mod:`warnings` are collected instead of printed. On exit everything is
    restored; the captured text is in the yielded :class:`Captured`.
    """
    cap = Captured()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (a daemon): nothing to capture
        yield cap
        return
    sink = tempfile.TemporaryFile(mode="w+b")
    old_stderr = sys.stderr
    swap = _stderr_is_fd2()
    new_stderr = None
    if old_stderr is not None:
        try:
            old_stderr.flush()
        except (OSError, ValueError):
            pass
    if swap:
        new_stderr = open(  # noqa: SIM115 - closed in finally
            saved,
            "w",
            buffering=1,
            encoding=getattr(old_stderr, "encoding", None) or "utf-8",
            errors="backslashreplace",
            closefd=False,
        )
        sys.stderr = new_stderr
    os.dup2(sink.fileno(), 2)
    old_showwarning = warnings.showwarning

    def _collect(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        cap.warnings.append(f"{category.__name__} ({Path(filename).name}:{lineno})")

    warnings.showwarning = _collect
    try:
        yield cap
    finally:
        warnings.showwarning = old_showwarning
        try:
            if new_stderr is not None:
                new_stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 2)
        os.close(saved)
        sys.stderr = old_stderr
        if new_stderr is not None:
            new_stderr.close()
        sink.seek(0)
        cap.chatter = sink.read(1 << 20).decode("utf-8", "backslashreplace")
        sink.close()


def _traceback_lines(exc: BaseException) -> list[str]:
    show = os.environ.get("HEPANAV_LOG_MESSAGES") == "1"
    if show:
        return traceback.format_exception(exc)
    lines: list[str] = []
    seen: set[int] = set()
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__
    for e in reversed(chain):
        lines.append("Traceback (most recent call last):\n")
        for fs in traceback.extract_tb(e.__traceback__):
            lines.append(f'  File "{fs.filename}", line {fs.lineno}, in {fs.name}\n')
        lines.append(
            f"{type(e).__module__}.{type(e).__qualname__}: <message withheld: it may quote "
            "values from input files; set HEPANAV_LOG_MESSAGES=1 to keep it>\n"
        )
    return lines


def write_log(command: str, captured: Captured, exc: BaseException | None = None) -> Path | None:
    """Write the captured library output and ``exc``'s traceback to a new log file.

    Returns the file's path, or None when it could not be written anywhere.
    """
    from hepanav import __version__

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    body = [
        f"hepanav {__version__} {command}\n",
        f"time {stamp}, python {sys.version.split()[0]}\n",
    ]
    if captured.lines():
        body.append("\n--- messages of libraries (stderr) ---\n")
        body += [ln + "\n" for ln in captured.lines()]
    if exc is not None:
        body.append("\n--- traceback ---\n")
        body += _traceback_lines(exc)
    for folder in (log_dir(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, name = tempfile.mkstemp(prefix=f"hepanav-{stamp}-", suffix=".log", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.writelines(body)
            return Path(name)
        except OSError:
            continue
    return None
