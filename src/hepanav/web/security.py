"""Users, passwords, sessions, CSRF tokens, login rate limit and the audit log.

- Passwords: Argon2id (argon2-cffi's ``PasswordHasher`` with its defaults, RFC 9106).
- Sessions: a random 256-bit token in an HttpOnly, SameSite=Strict cookie (Secure unless
  configured off for a loopback demo); the database keeps only its SHA-256.
- CSRF: a per-session token that every state-changing request must echo, as the form
  field ``csrf_token`` or the ``X-CSRF-Token`` header (synchroniser-token pattern,
  OWASP CSRF Prevention Cheat Sheet).
- Login: at most N failures per (user name, client address) in a sliding window.
- Audit log: written off the request path in batches (``AuditWriter``), flushed at a
  clean shutdown.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import queue
import secrets
import threading
import time
from collections import defaultdict, deque
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hepanav.core.errors import InputError
from hepanav.web.models import ROLES, AuditEvent, LoginSession, User, utcnow

COOKIE = "hepanav_session"
# A session's last_seen is renewed when older than this (idle expiry exact to it).
RENEW_AFTER = timedelta(minutes=1)
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """Argon2id hash of ``password`` (with its salt and parameters)."""
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    """True when ``password`` matches the stored Argon2 hash."""
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def create_user(db: Session, username: str, password: str, role: str) -> User:
    """Add a user; refuses unknown roles, short passwords and taken names.

    Raises
    ------
    InputError
        Naming the field that was wrong.
    """
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}; choose from {', '.join(ROLES)}", "--role")
    if (
        not username
        or len(username) > 64
        or not username.replace(".", "").replace("-", "").replace("_", "").isalnum()
    ):
        raise InputError("use 1-64 letters, digits, '.', '-' or '_'", "--username")
    if len(password) < 12:
        raise InputError("must have at least 12 characters", "password")
    if db.scalar(select(User).where(User.username == username)) is not None:
        raise InputError(f"user {username!r} exists already", "--username")
    user = User(username=username, password_hash=hash_password(password), role=role)
    db.add(user)
    db.commit()
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(db: Session, user: User) -> tuple[str, LoginSession]:
    """Start a session for ``user``; returns the cookie token and the row."""
    token = secrets.token_urlsafe(32)
    row = LoginSession(token_hash=_digest(token), user_id=user.id, csrf_token=secrets.token_hex(32))
    db.add(row)
    db.commit()
    return token, row


def session_user(
    db: Session, token: str | None, idle_minutes: int
) -> tuple[User, LoginSession] | None:
    """The user of a valid, unexpired session token, else ``None`` (the row is renewed)."""
    if not token:
        return None
    row = db.get(LoginSession, _digest(token))
    if row is None:
        return None
    if utcnow() - row.last_seen > timedelta(minutes=idle_minutes):
        db.delete(row)
        db.commit()
        return None
    user = db.get(User, row.user_id)
    if user is None or not user.active:
        return None
    # Renew at most once a minute: a page view is then a read, not a write (the idle
    # expiry is exact to a minute).
    if utcnow() - row.last_seen > RENEW_AFTER:
        row.last_seen = utcnow()
        db.commit()
    return user, row


def close_session(db: Session, token: str | None) -> None:
    """Log out: forget the session."""
    if token:
        db.execute(delete(LoginSession).where(LoginSession.token_hash == _digest(token)))
        db.commit()


def csrf_ok(session_row: LoginSession, sent: str | None) -> bool:
    """Constant-time comparison of the sent CSRF token with the session's."""
    return bool(sent) and hmac.compare_digest(session_row.csrf_token, sent)


def audit(db: Session, username: str, action: str, target: str = "", outcome: str = "ok") -> None:
    """Record an action. ``target`` is an id (case folder, job number), never patient data."""
    db.add(AuditEvent(username=username, action=action, target=target[:256], outcome=outcome))
    db.commit()


class AuditWriter:
    """The audit log written off the request path: events are queued with their time and
    written by one thread in batches (one transaction per batch).

    ``flush()`` returns when every event queued before it is in the database; ``close()``
    (called at a clean shutdown) flushes and stops the thread, so no event is lost on a
    clean shutdown. A crash loses at most the events of the last ``interval_s``.
    """

    def __init__(self, engine, interval_s: float = 0.2, batch: int = 500) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self.batch = batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def record(self, username: str, action: str, target: str = "", outcome: str = "ok") -> None:
        """Queue one event (the time is taken now, not when it is written)."""
        event = {
            "at": utcnow(),
            "username": username[:64],
            "action": action[:32],
            "target": target[:256],
            "outcome": outcome[:16],
        }
        if self._closed:  # after shutdown (tests, scripts): write it at once
            self._write([event])
            return
        self._queue.put(event)
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="hepanav-audit", daemon=True
                    )
                    self._thread.start()

    def _drain(self) -> list[dict]:
        events = []
        while len(events) < self.batch:
            try:
                events.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return events

    def _write(self, events: list) -> None:
        from sqlalchemy import insert
        from sqlalchemy.orm import Session

        with Session(self.engine) as db:
            db.execute(insert(AuditEvent), events)
            db.commit()

    def flush(self) -> None:
        """Write everything queued so far (in the caller's thread)."""
        with self._lock:
            while events := self._drain():
                self._write(events)

    def _run(self) -> None:
        while not self._closed:
            time.sleep(self.interval_s)
            try:
                self.flush()
            except Exception:  # keep the thread alive; the events stay for the next try
                logging.getLogger("hepanav.web").exception("audit log write failed")

    def close(self) -> None:
        """Flush and stop (a clean shutdown)."""
        self._closed = True
        self.flush()


class LoginLimiter:
    """Sliding-window count of failed logins per (user name, client address)."""

    def __init__(self, attempts: int, window_s: float) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        now = time.monotonic()
        times = self._failures[key]
        while times and now - times[0] > self.window_s:
            times.popleft()
        return times

    def blocked(self, username: str, client: str) -> bool:
        with self._lock:
            return len(self._recent((username.lower(), client))) >= self.attempts

    def failed(self, username: str, client: str) -> None:
        with self._lock:
            self._recent((username.lower(), client)).append(time.monotonic())

    def succeeded(self, username: str, client: str) -> None:
        with self._lock:
            self._failures.pop((username.lower(), client), None)
