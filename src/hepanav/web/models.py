"""Tables of the web application: users, login sessions, the audit log and jobs.

They live in their own database (``WebSettings.db``), apart from the outcomes
registry, so that the registry stays a study dataset and the application state
(who may log in, what ran) can be kept or wiped on its own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROLES = ("radiologist", "surgeon", "coordinator", "admin")
JOB_STATES = ("queued", "running", "done", "failed")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class User(Base):
    __tablename__ = "web_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class LoginSession(Base):
    """A server-side session: the cookie carries a random token, the table its hash."""

    __tablename__ = "web_session"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("web_user.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AuditEvent(Base):
    """Who viewed, ran, changed or exported what. Targets are case/job ids, never names."""

    __tablename__ = "web_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(256), default="")
    outcome: Mapped[str] = mapped_column(String(16), default="ok")


class Job(Base):
    """A background job (margin, plan, fluorescence ...) and its state.

    The state is kept here, not only in the scheduler, so a restart of the server
    loses no finished result and re-queues what was queued or running.
    """

    __tablename__ = "web_job"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    case_id: Mapped[str] = mapped_column(String(128), default="")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    signed_off_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


def make_web_engine(url: str) -> Engine:
    """Engine for the application database; creates the tables on first use.

    SQLite databases are switched to write-ahead logging (WAL) so that page views read
    while the audit writer and the job monitor write; connections are pooled.
    """
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # Up to 50 pooled connections: every request of the thread pool (40 threads by
    # default in Starlette/anyio) plus the job monitor and the audit writer can hold one;
    # SQLAlchemy's default (5 + 10 overflow) made the 16th concurrent login wait 30 s and
    # fail.
    kwargs: dict[str, Any] = {"pool_size": 10, "max_overflow": 40, "pool_timeout": 60}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        from sqlalchemy import event

        @event.listens_for(engine, "connect")
        def _wal(connection, _record) -> None:
            # Write-ahead log: readers (page views) never wait for the writer (the audit
            # log, job state); synchronous=NORMAL is durable in WAL mode except for the
            # last transactions on a power cut (SQLite documentation, "WAL mode").
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    Base.metadata.create_all(engine)
    return engine
