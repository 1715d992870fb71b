"""Reliability: concurrent importing processes lose nothing; a killed import changes nothing.

Both run real processes (``subprocess``) against SQLite and PostgreSQL. The
driver script wraps the importer's bulk-insert step to make the processes meet
inside their transactions (concurrency) or to stop there until it is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from hepanav.registry.importer import import_file
from registry_helpers import (  # noqa: F401
    count_rows,
    db_url,
    outcome_rows,
    postgres_server,
    registry,
    write_csv,
)

DRIVER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from hepanav.registry import db, importer

    url, path, mode, me, other = sys.argv[1:6]
    original = importer._execute_chunk

    def wrapped(conn, statement, chunk):
        original(conn, statement, chunk)
        if mode == "hang":
            print("INSIDE", flush=True)  # rows written, transaction still open
            time.sleep(120)
        elif mode == "slow":
            time.sleep(0.05)  # hold the transaction so the other process must wait

    importer._execute_chunk = wrapped
    importer.CHUNK_ROWS = 500
    engine = db.open_registry(url)
    if mode == "slow":
        # Barrier: both processes are ready before either opens its transaction.
        Path(me).touch()
        deadline = time.time() + 60
        while not Path(other).exists() and time.time() < deadline:
            time.sleep(0.01)
    summary = importer.import_file(engine, path)
    print("DONE", summary.rows, flush=True)
    """
)

TIMEOUT_S = 120


def _driver(tmp_path: Path, url: str, csv: Path, mode: str, me: str = "-", other: str = "-"):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    return subprocess.Popen(
        [sys.executable, str(script), url, str(csv), mode, me, other],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _fingerprint(engine) -> list:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT patient_id, procedure_id, lesion_id, margin_mm "
                    "FROM lesion_treatments ORDER BY 1, 2, 3"
                )
            )
        ]


@pytest.mark.slow
def test_two_processes_importing_at_once_lose_nothing(registry, tmp_path):
    url, engine = registry
    # Overlapping patients (P00100-P00199 are in both files), distinct procedures.
    a = write_csv(tmp_path / "a.csv", outcome_rows(200, 5, procedure="SA"))
    rows_b = outcome_rows(300, 4, procedure="SB")
    b = write_csv(tmp_path / "b.csv", rows_b[100 * 4 :])
    ready_a, ready_b = str(tmp_path / "ready_a"), str(tmp_path / "ready_b")
    procs = [
        _driver(tmp_path, url, a, "slow", ready_a, ready_b),
        _driver(tmp_path, url, b, "slow", ready_b, ready_a),
    ]
    outputs = [p.communicate(timeout=TIMEOUT_S) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    assert outputs[0][0].split() == ["DONE", "1000"]
    assert outputs[1][0].split() == ["DONE", "800"]
    assert count_rows(engine, "lesion_treatments") == 1000 + 800
    assert count_rows(engine, "patients") == 300
    assert count_rows(engine, "procedures") == 200 + 200
    assert count_rows(engine, "import_batches") == 2


@pytest.mark.slow
def test_a_killed_import_leaves_the_database_as_it_was(registry, tmp_path):
    url, engine = registry
    import_file(engine, write_csv(tmp_path / "first.csv", outcome_rows(20, 2, prefix="A")))
    before = _fingerprint(engine)
    big = write_csv(tmp_path / "big.csv", outcome_rows(1000, 3, prefix="B"))
    proc = _driver(tmp_path, url, big, "hang")
    line = proc.stdout.readline()  # blocks until the first chunk is written
    assert line.strip() == "INSIDE", proc.stderr.read()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=TIMEOUT_S)
    assert proc.returncode == -signal.SIGKILL
    proc.stdout.close()
    proc.stderr.close()

    assert _fingerprint(engine) == before
    assert count_rows(engine, "patients") == 20
    assert count_rows(engine, "import_batches") == 1
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    # The database is usable: the same file now imports completely (a killed
    # PostgreSQL client's transaction is rolled back by the server).
    deadline = time.time() + 30
    while True:
        try:
            assert import_file(engine, big).rows == 3000
            break
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    assert count_rows(engine, "lesion_treatments") == 40 + 3000


def test_readers_see_the_last_commit_while_an_import_is_open(registry, tmp_path):
    from hepanav.registry import dataset, db

    url, engine = registry
    import_file(engine, write_csv(tmp_path / "a.csv", outcome_rows(3, 1, prefix="A")))
    other = db.open_registry(url)  # a second engine, as another process would have
    with db.write_transaction(engine) as conn:
        conn.execute(text("INSERT INTO patients (patient_id, year_of_birth) VALUES ('Z1', 1950)"))
        # Not blocked by the open write transaction, and not seeing its rows.
        assert len(dataset.treatments(other)) == 3
        assert count_rows(other, "patients") == 3
    assert count_rows(other, "patients") == 4
    other.dispose()
