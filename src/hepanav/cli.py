"""The ``hepanav`` command line: a thin shell over the capability packages.

Each capability keeps its commands in ``hepanav/<capability>/commands.py`` with a
``register(app)`` function; this module only assembles them and turns user
mistakes into one line on stderr with exit code 2. Heavy libraries are imported
inside the commands, so ``hepanav --help`` stays fast.
"""

from __future__ import annotations

import importlib
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


class _UserErrorGroup(TyperGroup):
    """Root group: a usage, input, validation or file-system error becomes one line, exit 2."""

    def invoke(self, ctx):
        from pydantic import ValidationError

        try:
            return super().invoke(ctx)
        except HepaNavError as exc:
            typer.echo(f"error: {_one_line(exc)}", err=True)
            raise typer.Exit(2) from None
        except UsageError as exc:
            # A mistyped option or value: one line instead of the boxed usage panel.
            command = exc.ctx.command_path if exc.ctx else "hepanav"
            message = _one_line(exc.format_message())
            typer.echo(f"error: {message} (see '{command} --help')", err=True)
            raise typer.Exit(2) from None
        except ValidationError as exc:
            typer.echo(f"error: {first_error(exc)}", err=True)
            raise typer.Exit(2) from None
        except OSError as exc:
            # An output folder that cannot be created, a full disk, no permission: the
            # user's environment, not a bug; name the path and the reason.
            where = f"{exc.filename}: " if exc.filename else ""
            typer.echo(f"error: {where}{exc.strerror or _one_line(exc)}", err=True)
            raise typer.Exit(2) from None


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


def main() -> None:
    """Entry point of the ``hepanav`` console script."""
    sys.exit(app())


if __name__ == "__main__":
    main()
