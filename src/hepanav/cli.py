"""The ``hepanav`` command line: a thin shell over the capability packages.

Each capability keeps its commands in ``hepanav/<capability>/commands.py`` with a
``register(app)`` function; this module only assembles them and turns user
mistakes into one line on stderr with exit code 2. Heavy libraries are imported
inside the commands, so ``hepanav --help`` stays fast.
"""

from __future__ import annotations

import importlib
import inspect
import sys

import typer
from typer.core import TyperGroup

try:  # typer >= 0.2x vendors click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - older typer on click
    from click.exceptions import UsageError

from hepanav import DISCLAIMER, __version__
from hepanav.core.errors import HepaNavError
from hepanav.core.validation import first_error

# Order is the order of `hepanav --help`.
CAPABILITIES = (
    "phantoms",
    "segmentation",
    "margin",
    "fluorescence",
    "planning",
    "registry",
    "therapy",
    "dicom",
    "web",
)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _named_inputs(args: list[str]) -> str:
    """The options of the command line that name existing files or folders (for the line)."""
    from pathlib import Path

    named: list[str] = []
    option = ""
    for arg in args:
        if arg.startswith("-"):
            option = arg.split("=", 1)[0]
            continue
        try:
            exists = Path(arg).exists()
        except (OSError, ValueError):
            exists = False
        if exists:
            named.append(f"{option} {arg}" if option else arg)
        option = ""
    return ", ".join(named[:6])


class _UserErrorGroup(TyperGroup):
    """Root group: every error of a command becomes one line on stderr, exit 2.

    * user mistakes (``HepaNavError``, usage, validation, file-system errors incl. a
      full disk) print ``error: <file or option>: <what>``;
    * anything else that escapes a command prints ``error: unexpected <Type> in
      'hepanav <command>' (inputs: ...); details in <log>`` and the traceback goes to
      that log file (``hepanav.core.shell.log_dir``);
    * third-party libraries' own stderr output (ITK, GDCM, libpng, OpenCV, FFmpeg,
      libpq) is captured at the file-descriptor level and written to the log, whose
      path is appended to the error line.
    """

    def invoke(self, ctx):
        from hepanav.core.shell import captured_stderr, write_log

        raw = [*getattr(ctx, "_protected_args", getattr(ctx, "protected_args", [])), *ctx.args]
        command = "hepanav " + " ".join(a for a in raw[:2] if not a.startswith("-"))
        if not raw or raw[0] in ctx.help_option_names:
            return super().invoke(ctx)
        error: BaseException | None = None
        with captured_stderr() as captured:
            try:
                result = super().invoke(ctx)
            except (typer.Exit, typer.Abort, KeyboardInterrupt):
                raise
            except Exception as exc:  # noqa: BLE001 - the one place that turns all into a line
                error = exc
        if error is None:
            if captured.lines():  # kept for whoever wants to read it; no line on success
                write_log(command, captured)
            return result
        line, keep_traceback = self._line(error, command, raw)
        log = None
        if keep_traceback or captured.lines():
            log = write_log(command, captured, error if keep_traceback else None)
        if log is not None:
            line += f"; details in {log}" if keep_traceback else f"; library messages in {log}"
        typer.echo(line, err=True)
        raise typer.Exit(2) from None

    @staticmethod
    def _line(exc: BaseException, command: str, raw: list[str]) -> tuple[str, bool]:
        """The one ``error:`` line for ``exc`` and whether its traceback belongs in a log."""
        from pydantic import ValidationError

        if isinstance(exc, HepaNavError):
            return f"error: {_one_line(exc)}", False
        if isinstance(exc, UsageError):
            # A mistyped option or value: one line instead of the boxed usage panel.
            where = exc.ctx.command_path if exc.ctx else "hepanav"
            message = _one_line(exc.format_message())
            return f"error: {message} (see '{where} --help')", False
        if isinstance(exc, ValidationError):
            return f"error: {first_error(exc)}", False
        if isinstance(exc, OSError) and (exc.strerror or exc.filename):
            # An output folder that cannot be created, a full disk, no permission: the
            # user's environment, not a bug; name the path and the reason.
            where = f"{exc.filename}: " if exc.filename else ""
            return f"error: {where}{exc.strerror or type(exc).__name__}", False
        if isinstance(exc, MemoryError):
            inputs = _named_inputs(raw)
            return (
                f"error: not enough memory for '{command}'"
                + (f" (inputs: {inputs})" if inputs else ""),
                True,
            )
        inputs = _named_inputs(raw)
        return (
            f"error: unexpected {type(exc).__name__} in '{command}' while handling "
            + (f"its inputs ({inputs})" if inputs else "its options")
            + " (a HepaNav defect; please report it with the log)",
            True,
        )


app = typer.Typer(
    cls=_UserErrorGroup,
    name="hepanav",
    help=f"HepaNav {__version__}: image-guided, margin-controlled treatment of liver "
    f"metastases. {DISCLAIMER}",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """HepaNav command line."""


for _name in CAPABILITIES:
    _module = importlib.import_module(f"hepanav.{_name}.commands")
    _module.register(app)


def _reflow(doc: str) -> str:
    """Join the hard line breaks inside each paragraph of a docstring.

    Typer's rich help keeps single line breaks after the first paragraph, so a docstring
    wrapped at 90 columns shows ragged lines in an 80-column terminal. Paragraphs stay
    apart; list items ("- ", "* ") and indented or ``\\b`` blocks keep their lines.
    """
    paragraphs = []
    for paragraph in doc.split("\n\n"):
        lines = paragraph.split("\n")
        if paragraph.startswith("\b") or any(line.startswith(("- ", "* ", " ")) for line in lines):
            paragraphs.append(paragraph)
        else:
            paragraphs.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(paragraphs)


def _reflow_help(typer_app: typer.Typer) -> None:
    """Give every command of ``typer_app`` (and its groups) its docstring reflowed."""
    for command in typer_app.registered_commands:
        if command.help is None and command.callback is not None:
            doc = inspect.getdoc(command.callback)
            if doc:
                command.help = _reflow(doc)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _reflow_help(group.typer_instance)


_reflow_help(app)


def main() -> None:
    """Entry point of the ``hepanav`` console script."""
    sys.exit(app())


if __name__ == "__main__":
    main()
