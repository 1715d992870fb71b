"""Database connections and schema migrations.

SQLite is opened in WAL mode with foreign keys on; write transactions
(:func:`write_transaction`) start with ``BEGIN IMMEDIATE``, so two importing
processes queue for the write lock instead of failing half-way with "database is
locked", while readers keep reading the last committed state. PostgreSQL is reached
through psycopg 3. Migrations are Alembic scripts inside this package, run
through Alembic's API with a configuration built in code, so they work from an
installed wheel without an ``alembic.ini``.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, IntegrityError, OperationalError

from hepanav.core.errors import InputError

MIGRATIONS = Path(__file__).with_name("migrations")
WRITE_OPTION = "hepanav_registry_write"
# How long a SQLite writer waits for another process's write lock (ms);
# $HEPANAV_SQLITE_BUSY_TIMEOUT_MS overrides it (tests use a short one).
SQLITE_BUSY_TIMEOUT_MS = 60_000
# A transaction PostgreSQL aborts as a deadlock victim (SQLSTATE 40P01) or a
# serialisation failure (40001) is re-run up to this many times in all.
MAX_ATTEMPTS = 5
_RETRY_SQLSTATES = {"40P01", "40001"}
T = TypeVar("T")

# psycopg logs "pipeline aborted" (and similar) at WARNING when a statement of an
# executemany batch fails; the error itself reaches the user as one line.
logging.getLogger("psycopg").setLevel(logging.ERROR)


def busy_timeout_ms() -> int:
    """The SQLite busy timeout (ms): $HEPANAV_SQLITE_BUSY_TIMEOUT_MS or 60 s."""
    value = os.environ.get("HEPANAV_SQLITE_BUSY_TIMEOUT_MS", "")
    try:
        ms = int(value) if value else SQLITE_BUSY_TIMEOUT_MS
    except ValueError:
        raise InputError("must be an integer (ms)", "HEPANAV_SQLITE_BUSY_TIMEOUT_MS") from None
    if not 0 <= ms <= 3_600_000:
        raise InputError("must be 0-3600000 ms", "HEPANAV_SQLITE_BUSY_TIMEOUT_MS")
    return ms


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None)


def run_with_retry(work: Callable[[], T], attempts: int = MAX_ATTEMPTS) -> T:
    """Run a whole transaction; re-run it when PostgreSQL aborted it as a deadlock victim.

    Imports take their row locks in key order, so deadlocks should not happen;
    this is the second line of defence (bounded, with a short random back-off).
    """
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except OperationalError as exc:
            if _sqlstate(exc) not in _RETRY_SQLSTATES or attempt == attempts:
                raise
            time.sleep(random.uniform(0.05, 0.2) * attempt)
    raise AssertionError("unreachable")


def describe_database(engine: Engine) -> str:
    """``sqlite registry.sqlite`` / ``postgresql test@127.0.0.1``: no password, no path."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return f"sqlite database {Path(url.database or ':memory:').name}"
    return f"postgresql database {url.database}@{url.host}"


def _cause(exc: DatabaseError) -> str:
    """One line saying why the database refused, without any row values."""
    state = _sqlstate(exc) or ""
    text = " ".join(str(getattr(exc, "orig", exc)).split()).lower()
    if state == "40P01" or "deadlock" in text:
        return f"deadlock with another writer, still after {MAX_ATTEMPTS} attempts"
    if "database is locked" in text or "database table is locked" in text or state == "55P03":
        return (
            "locked by another process for longer than the busy timeout "
            f"({busy_timeout_ms() / 1000:g} s); try again when it has finished"
        )
    if state == "53100" or "disk is full" in text or "no space left" in text or "disk full" in text:
        return "the disk (or tablespace) is full; free space and import again"
    if state.startswith("08") or "connection" in text or "server closed" in text:
        return "the connection to the database server was lost"
    if "readonly" in text or "read-only" in text or state == "25006":
        return "the database is read-only"
    if state == "57014":
        return "the statement was cancelled (timeout)"
    if isinstance(exc, IntegrityError):
        return "a constraint was violated"
    # First line only: DETAIL lines of PostgreSQL errors may quote row values.
    first = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200]
    return f"{type(getattr(exc, 'orig', exc)).__name__}: {first}"


@contextmanager
def database_errors(engine: Engine) -> Iterator[None]:
    """Turn a database failure into one :class:`InputError` naming database and cause.

    Integrity errors pass through (the caller names the row and key); no SQL
    statement or parameter (row data) ever reaches the message.
    """
    try:
        yield
    except IntegrityError:
        raise
    except DatabaseError as exc:
        raise InputError(f"{describe_database(engine)}: {_cause(exc)}", "--db") from None


def normalise_url(url: str) -> str:
    """Map ``postgresql://`` and ``postgres://`` to the psycopg 3 driver; keep others.

    Raises
    ------
    InputError
        If ``url`` is not a SQLite or PostgreSQL URL.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InputError(f"not a database URL ({exc})", "--db") from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise InputError(f"unsupported database {backend!r}; use sqlite or postgresql", "--db")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN (the pysqlite driver would
    # otherwise start DEFERRED transactions on its own).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms()}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA synchronous = NORMAL")  # safe with WAL: a crash loses no commit
    cursor.close()


def _sqlite_begin(conn) -> None:
    # Writers take the write lock up front (IMMEDIATE) so that two importers
    # queue instead of dead-locking on a read-then-write upgrade; readers stay
    # DEFERRED and read the last committed state while an import runs (WAL).
    write = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in one write transaction: committed on success, rolled back on error."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn


def make_engine(url: str) -> Engine:
    """Create an engine for a registry URL (SQLite file or PostgreSQL).

    Parameters
    ----------
    url : str
        SQLAlchemy URL, e.g. ``sqlite:///registry.sqlite`` or
        ``postgresql://postgres@127.0.0.1:5432/test``.
    """
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            try:
                Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputError(f"cannot create the folder of {path} ({exc})", "--db") from None
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _alembic_config(connection):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the registry schema to ``revision`` (Alembic)."""
    _migrate(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Return the registry schema to an earlier ``revision`` (Alembic downgrade)."""
    _migrate(engine, "downgrade", revision)


def _migrate(engine: Engine, direction: str, revision: str) -> None:
    from alembic import command

    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect() as connection:
            if sqlite:
                # SQLite migrations rebuild tables (copy, DROP, rename); with foreign
                # keys on, dropping ``patients`` would cascade-delete every lesion.
                # The pragma only works outside a transaction, hence the raw driver.
                connection.connection.driver_connection.execute("PRAGMA foreign_keys = OFF")
            try:
                connection.execution_options(**{WRITE_OPTION: True})
                with connection.begin():
                    getattr(command, direction)(_alembic_config(connection), revision)
                    if sqlite:
                        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").first()
                        if broken is not None:
                            raise InputError(
                                f"migration left a dangling reference in table {broken[0]}; "
                                "nothing changed",
                                "--db",
                            )
            finally:
                if sqlite:
                    connection.connection.driver_connection.execute("PRAGMA foreign_keys = ON")
    except DatabaseError as exc:  # unreachable server, or a file that is not a database
        raise InputError(f"cannot open the database ({exc.orig})", "--db") from None


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at, or ``None`` if it has no registry."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest migration shipped with this version of HepaNav."""
    from alembic.script import ScriptDirectory

    config = _alembic_config(None)
    return ScriptDirectory.from_config(config).get_current_head()


def open_registry(url: str) -> Engine:
    """Engine for an existing registry at the current schema.

    Raises
    ------
    InputError
        If the database cannot be reached, holds no registry (run
        ``hepanav registry init``) or has an older schema.
    """
    if normalise_url(url).startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:" and not Path(path).expanduser().is_file():
            # Do not leave an empty database file behind for a mistyped path.
            raise InputError(f"no registry at {path}; run `hepanav registry init` first", "--db")
    engine = make_engine(url)
    try:
        if not inspect(engine).has_table("patients"):
            raise InputError("no registry here; run `hepanav registry init` first", "--db")
        revision = current_revision(engine)
    except DatabaseError as exc:  # unreachable server, or a file that is not a database
        raise InputError(f"cannot open the database ({exc.orig})", "--db") from None
    if revision != head_revision():
        raise InputError(
            f"registry schema is at {revision}, this HepaNav needs {head_revision()}; "
            "run `hepanav registry init` to upgrade",
            "--db",
        )
    return engine
