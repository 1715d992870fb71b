"""The root CLI: user mistakes become one line on stderr with exit code 2."""

from __future__ import annotations

import typer
from pydantic import BaseModel, PositiveFloat
from typer.testing import CliRunner

from hepanav import DISCLAIMER, __version__
from hepanav.cli import _UserErrorGroup
from hepanav.core import InputError


def _app() -> typer.Typer:
    app = typer.Typer(cls=_UserErrorGroup)

    @app.command()
    def bad_file() -> None:
        raise InputError("mask is empty (no non-zero voxel)", "tumor.nii.gz")

    @app.command()
    def bad_field() -> None:
        class Case(BaseModel):
            size_mm: PositiveFloat

        Case(size_mm=-3)

    return app


def test_input_error_is_one_line_exit_2():
    result = CliRunner().invoke(_app(), ["bad-file"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: tumor.nii.gz: mask is empty (no non-zero voxel)"
    assert "Traceback" not in result.output


def test_validation_error_names_the_field():
    result = CliRunner().invoke(_app(), ["bad-field"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: size_mm:")


def test_version_and_help(cli):
    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == __version__
    code, out, _ = cli("--help")
    assert code == 0
    assert "NOT a medical device" in " ".join(out.split()) or DISCLAIMER[:20] in out
