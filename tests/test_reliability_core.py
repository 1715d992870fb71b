"""Guarantees of the shared layers (core/, the CLI shell), each proven by construction.

Output sets (``hepanav.core.atomic.output_folder``), input/output overlap
(``hepanav.core.paths``), bounded readers (``hepanav.core.validation``), memory estimates
(``hepanav.core.limits``), safe links (``hepanav.core.report.safe_url``) and the CLI
shell's one line + log (``hepanav.cli``, ``hepanav.core.shell``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from hepanav.core.atomic import MANIFEST, check_output_folder, output_folder
from hepanav.core.errors import InputError
from hepanav.core.paths import check_inputs_outputs, recorded_path
from hepanav.core.validation import (
    parse_json,
    parse_yaml,
    read_user_data,
    read_user_json,
    read_user_text,
    read_user_yaml,
)


# ----------------------------------------------------------------------------- output sets
def test_output_folder_appears_complete_with_its_manifest(tmp_path):
    out = tmp_path / "out"
    with output_folder(out, "test") as tmp:
        (tmp / "a.json").write_text("{}")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text("bb")
        assert not out.exists()  # nothing visible until everything is written
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["command"] == "test"
    assert {(f["name"], f["bytes"]) for f in manifest["files"]} == {("a.json", 2), ("sub/b.txt", 2)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary left


def test_output_folder_error_leaves_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"), output_folder(out) as tmp:
        (tmp / "a.json").write_text("{}")
        raise OSError(28, "disk full")
    assert list(tmp_path.iterdir()) == []


def test_output_folder_replaces_a_previous_result_as_a_whole(tmp_path):
    out = tmp_path / "out"
    with output_folder(out) as tmp:
        (tmp / "old_only.txt").write_text("1")
        (tmp / "both.txt").write_text("old")
    with output_folder(out) as tmp:
        (tmp / "both.txt").write_text("new")
    assert (out / "both.txt").read_text() == "new"
    assert not (out / "old_only.txt").exists()  # no stale file of the previous set
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_output_folder_failure_keeps_the_previous_result(tmp_path):
    out = tmp_path / "out"
    with output_folder(out) as tmp:
        (tmp / "r.txt").write_text("old")
    with pytest.raises(RuntimeError), output_folder(out) as tmp:
        (tmp / "r.txt").write_text("new")
        raise RuntimeError("crash")
    assert (out / "r.txt").read_text() == "old"


def test_output_folder_refuses_a_folder_of_the_users_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="HepaNav did not write"):
        check_output_folder(tmp_path)
    with pytest.raises(InputError, match="HepaNav did not write"), output_folder(tmp_path):
        pass
    assert (tmp_path / "notes.txt").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        check_output_folder(tmp_path / "file")
    with pytest.raises(InputError, match="Not a directory"):
        check_output_folder(tmp_path / "file" / "out")
    empty = tmp_path / "empty"
    empty.mkdir()
    with output_folder(empty) as tmp:  # an empty folder is taken over
        (tmp / "r.txt").write_text("1")
    assert (empty / "r.txt").exists()


def test_stale_temporary_of_a_killed_run_is_removed(tmp_path):
    stale = tmp_path / ".out.hepanav-tmp-999999999-abc"  # no such process
    stale.mkdir()
    (stale / "half.json").write_text("{")
    with output_folder(tmp_path / "out") as tmp:
        (tmp / "r.txt").write_text("1")
    assert not stale.exists()


# ----------------------------------------------------------------------------- overlap
def test_output_that_is_or_holds_or_sits_in_an_input_is_refused(tmp_path):
    case = tmp_path / "case.yaml"
    case.write_text("a: 1")
    dicom = tmp_path / "series"
    dicom.mkdir()
    with pytest.raises(InputError, match="is also an input"):
        check_inputs_outputs([case], [case])
    with pytest.raises(InputError, match="is also an input"):
        check_inputs_outputs([case], [tmp_path / "." / "case.yaml"])
    with pytest.raises(InputError, match="holds the input"):
        check_inputs_outputs([case], [], folders=[tmp_path])
    with pytest.raises(InputError, match="inside the input folder"):
        check_inputs_outputs([dicom], [], folders=[dicom / "out"])
    link = tmp_path / "link.yaml"
    link.symlink_to(case)
    with pytest.raises(InputError, match="is also an input"):
        check_inputs_outputs([case], [link])
    hard = tmp_path / "hard.yaml"
    os.link(case, hard)
    with pytest.raises(InputError, match="is also an input"):
        check_inputs_outputs([case], [hard])
    check_inputs_outputs([case, None, "camera:0"], [tmp_path / "x.mp4"], [tmp_path / "o"])


def test_recorded_path_is_never_absolute(tmp_path, monkeypatch):
    f = tmp_path / "patients" / "Doe_John" / "ct.nii.gz"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"abc")
    monkeypatch.chdir(tmp_path)
    assert recorded_path(f) == "patients/Doe_John/ct.nii.gz"
    monkeypatch.chdir(tmp_path / "patients" / "Doe_John")
    assert recorded_path(f) == "ct.nii.gz"
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    # sha256("abc") = ba7816bf8f01...
    assert recorded_path(f) == "ct.nii.gz (sha256:ba7816bf8f01)"
    assert "Doe_John" not in recorded_path(f)


# ----------------------------------------------------------------------------- readers
def test_special_files_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "case.yaml"
    os.mkfifo(fifo)  # opening it for reading would block forever
    for reader in (read_user_text, read_user_yaml, read_user_json, read_user_data):
        with pytest.raises(InputError, match="FIFO"):
            reader(fifo, "case file")
    with pytest.raises(InputError, match="is a folder"):
        read_user_text(tmp_path, "case file")
    with pytest.raises(InputError, match="is a device"):
        read_user_text("/dev/zero", "case file")
    with pytest.raises(InputError, match="does not exist"):
        read_user_text(tmp_path / "nope", "case file")


def test_size_limit(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a" * 2048)
    with pytest.raises(InputError, match="limit is 0.0 MiB"):
        read_user_text(big, "case file", max_bytes=1024)
    assert len(read_user_text(big, "case file", max_bytes=2048)) == 2048


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[" * 1000 + "]" * 1000, "nested more than 32"),
        ('{"a":' * 1000 + "1" + "}" * 1000, "nested more than 32"),
        ('{"x": NaN}', "must be finite"),
        ('{"x": -Infinity}', "must be finite"),
        ('{"x": 1e400}', "must be a finite number"),
        ('{"x": ' + "9" * 5000 + "}", "out of range"),
        ('{"x": 99999999999999999999}', "integer out of range"),
    ],
)
def test_hostile_json(text, reason):
    with pytest.raises(InputError, match=reason) as info:
        parse_json(text, "f.json")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a: " + "[" * 600 + "]" * 600, "nested more than 32"),
        ("".join("  " * i + "a:\n" for i in range(500)) + "  " * 500 + "1", "nested more"),
        ("value: .nan", "field 'value': must be a finite number"),
        ("device: {power_w: .inf}", "field 'device.power_w': must be a finite number"),
        (
            "a: &a [x,x,x,x,x,x,x,x,x]\n"
            + "".join(
                f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n"
                for p, c in zip("abcdef", "bcdefg", strict=True)
            )
            + "h: [*g]\n",
            "aliases expanded",
        ),
        ("a: [1, 2\n", "not valid YAML"),
        ("\x92", "not valid YAML"),
    ],
)
def test_hostile_yaml(text, reason):
    with pytest.raises(InputError, match=reason) as info:
        parse_yaml(text, "f.yaml")
    assert "\n" not in str(info.value)


def test_error_messages_do_not_echo_values():
    """A syntax error names the line, not the text around it (it could be a patient's)."""
    with pytest.raises(InputError) as info:
        parse_yaml("patient: John Smith\n  born: [1970", "case.yaml")
    assert "John" not in str(info.value) and "1970" not in str(info.value)


# ----------------------------------------------------------------------------- limits
def test_memory_estimate_refuses_before_allocating(monkeypatch):
    from hepanav.core.limits import check_memory

    monkeypatch.setenv("HEPANAV_MEMORY_LIMIT_MB", "100")
    check_memory(99 * 2**20, "x", "--y")
    with pytest.raises(InputError, match=r"--y: the grid would need about 439\.0 GiB"):
        check_memory(439 * 2**30, "the grid", "--y")


def test_pullback_step_that_would_allocate_hundreds_of_gib_is_refused(tmp_path):
    """``pullback_step_mm: 1e-9`` once tried to allocate 439 GiB; the schema bounds it."""
    from hepanav.planning.devices import load_device

    text = (
        Path(__file__).parents[1] / "src/hepanav/planning/data/devices/microwave.yaml"
    ).read_text()
    path = tmp_path / "d.yaml"
    path.write_text(text.replace("pullback_step_mm: 10", "pullback_step_mm: 1e-9", 1))
    with pytest.raises(InputError, match="pullback_step_mm"):
        load_device(path)


def test_risk_map_label_ids_out_of_range_are_refused(tmp_path):
    from hepanav.planning.risk import load_risk_map

    for bad in ("1000000000000", "-5"):
        path = tmp_path / "risk.yaml"
        path.write_text(
            f"liver_labels: [5]\nstructures: [{{name: v, labels: [{bad}], clearance_mm: 5}}]\n"
        )
        with pytest.raises(InputError, match=r"structures\.0\.labels\.0"):
            load_risk_map(path)


# ----------------------------------------------------------------------------- HTML links
@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://doi.org/10.1/x", "https://doi.org/10.1/x"),
        ("http://example.org", "http://example.org"),
        ("javascript:alert(1)", ""),
        ("JavaScript:alert(1)", ""),
        (" javascript:alert(1)", ""),
        ("java\tscript:alert(1)", ""),
        ("data:text/html,<script>", ""),
        ("file:///etc/passwd", ""),
        ("//evil.example", ""),
        ("https:alert", ""),
        (None, ""),
    ],
)
def test_safe_url(url, shown):
    from hepanav.core.report import safe_url

    assert safe_url(url) == shown


# ----------------------------------------------------------------------------- CLI shell
def _app():
    from hepanav.cli import _UserErrorGroup

    app = typer.Typer(cls=_UserErrorGroup)

    @app.command()
    def bug(path: str = typer.Option(..., "--case")) -> None:
        {}["Jane Doe 1970-01-01"]  # a value from a "user file" in the exception message

    @app.command()
    def chatty() -> None:
        os.write(2, b"ITK ERROR: ImageIO(0x1234): libpng warning: iCCP\n")
        from hepanav.core import InputError

        raise InputError("cannot read image", "x.png")

    @app.command()
    def quiet_chatter() -> None:
        os.write(2, b"GDCM warning: odd tag\n")
        typer.echo("ok")

    @app.command()
    def full_disk() -> None:
        raise OSError(28, "No space left on device", "/out/report.html")

    @app.command()
    def oom() -> None:
        raise MemoryError()

    return app


def test_unexpected_exception_is_one_line_with_a_log(tmp_path, monkeypatch):
    monkeypatch.setenv("HEPANAV_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.delenv("HEPANAV_LOG_MESSAGES", raising=False)
    case = tmp_path / "case.yaml"
    case.write_text("x")
    result = CliRunner().invoke(_app(), ["bug", "--case", str(case)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unexpected KeyError")
    assert f"--case {case}" in lines[0]  # names the file
    log = Path(lines[0].rsplit("details in ", 1)[1])
    text = log.read_text()
    assert "Traceback" in text and "test_reliability_core.py" in text and "KeyError" in text
    assert "Jane" not in text and "Jane" not in result.stderr  # the value is withheld
    assert oct(log.stat().st_mode & 0o777) == "0o600"


def test_library_chatter_is_folded_into_the_log(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("HEPANAV_LOG_DIR", str(tmp_path / "logs"))
    result = CliRunner().invoke(_app(), ["chatty"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: x.png: cannot read image")
    log = Path(lines[0].rsplit("library messages in ", 1)[1])
    assert "libpng warning" in log.read_text()
    assert "libpng" not in capfd.readouterr().err  # nothing reached the real fd 2
    result = CliRunner().invoke(_app(), ["quiet-chatter"])
    assert result.exit_code == 0 and result.stderr == ""
    assert "GDCM warning" not in capfd.readouterr().err


def test_write_errors_and_memory_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HEPANAV_LOG_DIR", str(tmp_path / "logs"))
    result = CliRunner().invoke(_app(), ["full-disk"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: /out/report.html: No space left on device"
    result = CliRunner().invoke(_app(), ["oom"])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: not enough memory")


def test_failed_output_set_removes_only_the_folders_it_created(tmp_path):
    """An output set that fails removes the (empty) folders it made, not older ones."""
    from hepanav.core.atomic import output_files

    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "keep.txt").write_text("x")
    targets = [tmp_path / "old" / "new" / "deeper" / n for n in ("m.nii.gz", "m.json")]
    with pytest.raises(OSError), output_files(targets) as tmp:
        tmp[0].write_bytes(b"half")
        raise OSError(28, "No space left on device")
    assert not (tmp_path / "old" / "new").exists()
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == ["keep.txt"]
    with output_files(targets) as tmp:  # and a set that succeeds keeps them
        for p in tmp:
            p.write_text("ok")
    assert all(t.read_text() == "ok" for t in targets)
