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
    def unwritable() -> None:
        raise PermissionError(13, "Permission denied", "/report/out.json")

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


def test_os_error_names_the_path():
    result = CliRunner().invoke(_app(), ["unwritable"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: /report/out.json: Permission denied"


def test_unwritable_output_folder_through_a_real_command(cli, tmp_path):
    from importlib import resources

    case = resources.files("hepanav.therapy") / "data" / "examples"
    case = sorted(p for p in case.iterdir() if p.name.endswith(".yaml"))[0]
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    code, _, err = cli("therapy", case, "--out", blocker / "out")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Not a directory" in lines[0]


def test_usage_errors_are_one_line(cli):
    code, _, err = cli("fluoro", "analyze", "--nir", "x.png", "--out", "o", "--bit-depth", "abc")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("error: ") and "--bit-depth" in lines[0]
    assert "see 'hepanav fluoro analyze --help'" in lines[0]
    code, _, err = cli("no-such-command")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no-such-command" in err
    code, _, err = cli("margin", "--out", "o")  # a required option missing
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--tumor" in err


def test_help_paragraphs_are_reflowed_not_cut_at_docstring_line_breaks(cli):
    """A docstring wrapped at 90 columns must not show ragged lines in the terminal:
    each paragraph is one flowing text (rich re-wraps it at the terminal width)."""
    from hepanav.cli import _reflow

    assert _reflow("First line.\n\nOne para\nwrapped here.\n\n- item a\n- item b") == (
        "First line.\n\nOne para wrapped here.\n\n- item a\n- item b"
    )
    code, out, _ = cli("margin", "--help")
    assert code == 0
    # No help line ends a sentence fragment that the next line continues mid-paragraph:
    # the old output had "or a" / "pre/post" alone on lines ("pre/post" + 70 blanks).
    lines = [line.strip() for line in out.splitlines()]
    assert "pre/post" not in lines and "the" not in lines, out
