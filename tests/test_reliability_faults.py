"""Fault tests over every writing command: a full disk, SIGKILL while writing.

Each command runs as its own process (``python -m hepanav``), as users run it.

* Full disk: OUT lies on a tmpfs of 4 KiB mounted in a private mount namespace
  (``unshare -m``, needs root or user namespaces); where that is impossible the
  process gets ``RLIMIT_FSIZE`` = 1 KiB instead. Expected: exit 2, one ``error:`` line,
  and nothing left in OUT's folder (no partial set, no temporary).
* SIGKILL: the process is killed at a random moment after it started, and at a random
  moment after its temporary output folder appeared (i.e. while writing). Expected:
  OUT absent, or complete (its manifest lists exactly the files present, with sizes).
"""

from __future__ import annotations

import json
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orthanc_helpers import orthanc, pacs_env  # noqa: F401  (fixtures, for pacs get)
from reliability_helpers import (
    assert_complete_or_absent,
    build_inputs,
    env,
    file_name,
    run_hepanav,
    writing_commands,
)

FULL_DISK_BYTES = 4 * 1024  # one tmpfs page: the first file fits, the set does not
FILE_LIMIT_BYTES = 1024  # fallback: RLIMIT_FSIZE is per file
_RUNNER = r"""
import json, os, subprocess, sys
mount, size, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mount], check=True)
run = subprocess.run([sys.executable, "-m", "hepanav", *argv], capture_output=True, text=True)
print(json.dumps({"rc": run.returncode, "stderr": run.stderr, "left": sorted(os.listdir(mount))}))
"""


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    (folder / "logs").mkdir()
    inputs = build_inputs(folder / "in")
    plan_dir = folder / "reference-plan"
    run = run_hepanav(writing_commands(inputs, None)[3].argv(plan_dir), folder)
    assert run.returncode == 0, run.stderr
    return folder, inputs, plan_dir


def _commands(work):
    folder, inputs, plan_dir = work
    return writing_commands(inputs, plan_dir)


def _command(work, name, request):
    """The command ``name``; for ``pacs-get`` a real Orthanc (tests/orthanc_helpers.py,
    skipped without it, failed under CI=true) holding the study, its settings in the
    environment the command processes inherit."""
    w = next(c for c in _commands(work) if c.name == name)
    if name == "pacs-get":
        server = request.getfixturevalue("orthanc")
        request.getfixturevalue("pacs_env")(server.env("dicomweb"))
        server.clear()
        sent = run_hepanav(["pacs", "send", work[1]["dicom_ct"]], work[0])
        assert sent.returncode == 0, sent.stderr
    return w


def _can_mount_tmpfs(folder: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = folder / "probe"
    probe.mkdir(exist_ok=True)
    ok = subprocess.run(
        ["unshare", "-m", "mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(probe)],
        capture_output=True,
    )
    return ok.returncode == 0


def _full_disk(w, folder: Path) -> tuple[int, str, list[str]]:
    mount = folder / f"disk-{w.name}"
    mount.mkdir()
    out = mount / file_name(w)
    argv = [str(a) for a in w.argv(out)]
    if _can_mount_tmpfs(folder):
        run = subprocess.run(
            [
                "unshare",
                "-m",
                sys.executable,
                "-c",
                _RUNNER,
                str(mount),
                str(FULL_DISK_BYTES),
                *argv,
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=folder,
            env=env(folder / "logs"),
        )
        assert run.returncode == 0, run.stderr
        got = json.loads(run.stdout.strip().splitlines()[-1])
        return got["rc"], got["stderr"], got["left"]

    def limit():  # pragma: no cover - runs in the child
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT_BYTES, FILE_LIMIT_BYTES))

    run = run_hepanav(argv, folder, preexec_fn=limit)
    return run.returncode, run.stderr, sorted(p.name for p in mount.iterdir())


@pytest.mark.parametrize(
    "name",
    [
        "margin",
        "therapy",
        "phantom",
        "plan",
        "verify-placement",
        "fluoro-analyze",
        "fluoro-margin-check",
        "fluoro-render",
        "registry-report",
        "stats-margins",
        "stats-ablation",
        "segment",
        "registry-export",
        "registry-template",
        "dicom-export",
        "dicom-pseudonymise",
        "pacs-get",
    ],
)
def test_full_disk_is_exit_2_one_line_and_nothing_written(work, name, request):
    folder = work[0]
    w = _command(work, name, request)
    code, err, left = _full_disk(w, folder)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert any(s in lines[0] for s in ("No space left", "File too large", "disk full")), lines[0]
    assert left == [], left  # no partial set and no temporary folder


@pytest.mark.parametrize(
    "name",
    [
        "margin",
        "therapy",
        "phantom",
        "plan",
        "verify-placement",
        "fluoro-analyze",
        "fluoro-margin-check",
        "fluoro-render",
        "registry-report",
        "stats-margins",
        "stats-ablation",
        "segment",
        "registry-export",
        "registry-template",
        "dicom-export",
        "dicom-pseudonymise",
        "pacs-get",
    ],
)
def test_sigkill_leaves_the_output_complete_or_absent(work, name, request):
    folder = work[0]
    w = _command(work, name, request)
    rng = random.Random(name)  # reproducible "random" moments per command
    states = []
    for attempt in range(3):
        base = folder / f"kill-{w.name}-{attempt}"
        base.mkdir()
        out = base / file_name(w)
        if attempt == 2:  # a previous result exists: a kill must leave old or new, never a mix
            first = run_hepanav(w.argv(out), folder)
            assert first.returncode == 0, first.stderr
        proc = subprocess.Popen(
            [sys.executable, "-m", "hepanav", *map(str, w.argv(out))],
            cwd=folder,
            env=env(folder / "logs"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            if attempt == 0:
                time.sleep(rng.uniform(0.2, 2.5))  # anywhere from start-up on
            else:  # while writing: once the temporary sibling appears
                deadline = time.monotonic() + 300
                while proc.poll() is None and time.monotonic() < deadline:
                    if any(
                        ".hepanav-tmp-" in q.name or q.name.startswith(".") for q in base.iterdir()
                    ):
                        break
                    time.sleep(0.01)
                time.sleep(rng.uniform(0.0, 0.3))
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=60)
        states.append(assert_complete_or_absent(out, w))
        if attempt == 2:
            assert states[-1] == "complete"  # the old set stays until the new one replaces it
    # and a run after the kills succeeds, cleaning what the killed runs left behind
    if w.fresh:  # OUT must not exist (dicom pseudonymise refuses to replace an export)
        shutil.rmtree(out, ignore_errors=True)
    again = run_hepanav(w.argv(out), folder)
    assert again.returncode == 0, again.stderr
    assert assert_complete_or_absent(out, w) == "complete"
    assert [q.name for q in out.parent.iterdir() if ".hepanav-" in q.name] == []
