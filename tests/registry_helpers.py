"""Fixtures and helpers shared by the registry tests (imported by tests/test_registry_*.py).

``db_url`` gives every test a fresh, empty database on both backends:
a SQLite file in ``tmp_path``, and on PostgreSQL a new schema (dropped after
the test) selected through the connection's ``search_path``, so parallel
pytest workers never see each other's tables.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest

POSTGRES_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_url() -> str:
    """``$HEPANAV_TEST_POSTGRES_URL`` or the project's CI server."""
    return os.environ.get("HEPANAV_TEST_POSTGRES_URL") or POSTGRES_DEFAULT


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """URL of a reachable PostgreSQL server; fails under CI=true, else skips, when absent."""
    from sqlalchemy import create_engine, text

    from hepanav.registry.db import normalise_url

    url = postgres_url()
    try:
        engine = create_engine(normalise_url(url), connect_args={"connect_timeout": 5})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure to reach the server
        detail = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        reason = f"no PostgreSQL server reachable at {url} ({detail})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true requires the PostgreSQL registry tests to run: {reason}")
        pytest.skip(f"{reason}; start one or set HEPANAV_TEST_POSTGRES_URL")
    return url


def _with_search_path(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path: Path):
    """An empty database URL on each backend (not yet initialised)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.sqlite'}"
        return
    from sqlalchemy import create_engine, text

    from hepanav.registry.db import normalise_url

    server = request.getfixturevalue("postgres_server")
    schema = f"hepanav_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(normalise_url(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _with_search_path(server, schema)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture()
def registry(db_url):
    """An initialised, empty registry: ``(url, engine)``."""
    from hepanav.registry import db

    db.upgrade(db.make_engine(db_url))
    engine = db.open_registry(db_url)
    yield db_url, engine
    engine.dispose()


def write_csv(path: Path, rows: list[dict] | pd.DataFrame) -> Path:
    """Write rows (dicts or a DataFrame) as a CSV template file."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    frame.to_csv(path, index=False)
    return path


def outcome_rows(
    n_patients: int, lesions_per_patient: int, prefix: str = "P", procedure: str = "S1"
) -> list[dict]:
    """Valid outcome rows: every lesion R0 with a 2 mm margin, ICG on even patients."""
    return [
        {
            "patient_id": f"{prefix}{p:05d}",
            "lesion_id": f"L{k}",
            "procedure_id": procedure,
            "procedure_type": "resection",
            "procedure_date": "2021-05-04",
            "icg_used": "true" if p % 2 == 0 else "false",
            "margin_mm": 2.0,
            "margin_status": "R0",
        }
        for p in range(n_patients)
        for k in range(1, lesions_per_patient + 1)
    ]


def count_rows(engine, table: str) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


@pytest.fixture()
def sqlite_registry(tmp_path):
    """An initialised SQLite registry only (for tests about reading files, not backends)."""
    from hepanav.registry import db

    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    db.upgrade(db.make_engine(url))
    engine = db.open_registry(url)
    yield url, engine
    engine.dispose()


def stored(engine, table: str, column: str) -> list:
    """All values of a column, ordered by patient_id (every registry table has one)."""
    from sqlalchemy import text

    query = f"SELECT {column} FROM {table} ORDER BY patient_id"
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text(query))]


HEADER = "patient_id,lesion_id,procedure_id,procedure_type,procedure_date,margin_mm,margin_status"
