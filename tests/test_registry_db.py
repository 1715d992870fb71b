"""Schema and connections: Alembic migrations, both backends, SQLite settings."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from hepanav.core.errors import InputError
from hepanav.registry import db
from hepanav.registry.models import Base
from registry_helpers import db_url, postgres_server  # noqa: F401

TABLES = {
    "patients",
    "primary_tumours",
    "lesions",
    "procedures",
    "lesion_treatments",
    "follow_up_events",
    "complications",
    "import_batches",
    "record_changes",
    "alembic_version",
}


def test_init_creates_schema_and_is_idempotent(db_url):
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    db.upgrade(engine)  # a second init is a no-op, not an error
    assert set(inspect(engine).get_table_names()) == TABLES
    assert db.current_revision(engine) == db.head_revision() == "0005"
    engine.dispose()


def test_migrations_match_the_models(db_url):
    """Autogenerate against the migrated database finds nothing to change."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = db.make_engine(db_url)
    db.upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


def test_sqlite_uses_wal_and_foreign_keys(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'r.sqlite'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    db.upgrade(engine)
    # Foreign keys are enforced: a lesion of an unknown patient is refused.
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("INSERT INTO lesions (patient_id, lesion_id) VALUES ('nobody', 'L1')"))
    engine.dispose()


def test_open_registry_refuses_an_uninitialised_database(db_url):
    with pytest.raises(InputError, match="registry init"):
        db.open_registry(db_url)


@pytest.mark.parametrize(
    "url, message",
    [("mysql://u@h/db", "unsupported database"), ("not a url", "not a database URL")],
)
def test_bad_urls_are_input_errors(url, message):
    with pytest.raises(InputError, match=message):
        db.make_engine(url)


def test_postgres_urls_use_psycopg3():
    assert db.normalise_url("postgresql://u@h:5432/d").startswith("postgresql+psycopg://")
    assert db.normalise_url("postgres://u@h/d").startswith("postgresql+psycopg://")


def test_database_url_from_environment(monkeypatch):
    from hepanav.registry.settings import DEFAULT_DATABASE_URL, resolve_database_url

    monkeypatch.delenv("HEPANAV_DATABASE_URL", raising=False)
    assert resolve_database_url(None) == DEFAULT_DATABASE_URL
    monkeypatch.setenv("HEPANAV_DATABASE_URL", "sqlite:///x.sqlite")
    assert resolve_database_url(None) == "sqlite:///x.sqlite"
    assert resolve_database_url("sqlite:///y.sqlite") == "sqlite:///y.sqlite"
