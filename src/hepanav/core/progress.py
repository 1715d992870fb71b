"""Rich progress bars for long work, written to stderr so stdout stays machine-readable."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

_stderr = Console(stderr=True)


def progress(disable: bool = False) -> Progress:
    """A ``rich.progress.Progress`` for the CLI: description, bar, elapsed time.

    Use as ``with progress() as p: task = p.add_task("Registering", total=3)``.
    Shown only when stderr is a terminal, so logs, pipes and CI keep the one-line
    ``error:`` contract and no bar fragments.
    """
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=_stderr,
        disable=disable or not _stderr.is_terminal,
        transient=False,
    )
