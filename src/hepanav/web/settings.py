"""Settings of the web application, read from the environment (prefix ``HEPANAV_WEB_``).

Every value can be set as an environment variable (``HEPANAV_WEB_DB``,
``HEPANAV_WEB_SCHEDULER`` ...) or in a ``.env``-style file named by
``HEPANAV_WEB_ENV_FILE``; ``hepanav serve`` options override both. Secrets (the
session key) are never taken from the command line.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebSettings(BaseSettings):
    """Configuration of ``hepanav serve``.

    Attributes
    ----------
    db : str
        SQLAlchemy URL of the application database (users, sessions, audit log, jobs).
        SQLite file by default; ``postgresql://...`` for a hospital server.
    registry_db : str or None
        URL of the outcomes registry (default: ``HEPANAV_DATABASE_URL`` or the registry's
        own default).
    scheduler : str or None
        Address of an external Dask scheduler (``tcp://host:8786``). ``None`` starts a
        LocalCluster inside the server. Workers of an external cluster must see
        ``data_dir`` at the same path (shared file system).
    workers : int or None
        Worker processes of the LocalCluster (default: one per two cores, at least 1).
    data_dir : Path
        Folder holding ``cases/`` (the watched worklist folder), ``jobs/`` (results) and
        ``uploads/``.
    secret_key : str or None
        Key for signing; generated once into ``data_dir/secret_key`` (mode 0600) when unset.
    cookie_secure : bool
        Send the session cookie only over HTTPS. Keep ``True`` in a hospital; the demo on
        ``http://127.0.0.1`` sets it ``False``.
    session_minutes : int
        Idle lifetime of a login session.
    max_upload_mb : int
        Largest accepted upload (recordings, registry files), MiB.
    live_source : str or None
        Source of the operating-room live page: ``camera:N``, ``rtsp://...`` or a
        recording (file or folder of frames), read by the same reader as
        ``hepanav fluoro live``. ``None``: the live page says that no source is set.
    live_white : str or None
        White-light source when the NIR and white-light come separately.
    login_attempts, login_window_s : int
        At most ``login_attempts`` failed logins per user name and client address within
        ``login_window_s`` seconds; further attempts get HTTP 429.
    """

    model_config = SettingsConfigDict(
        env_prefix="HEPANAV_WEB_", env_file=os.environ.get("HEPANAV_WEB_ENV_FILE"), extra="ignore"
    )

    db: str = "sqlite:///hepanav-web.sqlite"
    registry_db: str | None = None
    scheduler: str | None = None
    workers: int | None = Field(default=None, ge=1, le=256)
    data_dir: Path = Path("hepanav-data")
    secret_key: str | None = None
    cookie_secure: bool = True
    session_minutes: int = Field(default=480, ge=5, le=7 * 24 * 60)
    max_upload_mb: int = Field(default=2048, ge=1, le=64 * 1024)
    live_source: str | None = None
    live_white: str | None = None
    login_attempts: int = Field(default=5, ge=1, le=1000)
    login_window_s: int = Field(default=300, ge=1, le=86400)

    @field_validator("scheduler")
    @classmethod
    def _scheduler_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("tcp://", "tls://", "inproc://")):
            raise ValueError("must be a Dask scheduler address such as tcp://host:8786")
        return value

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Job steps run in their own working folder: every path handed to them must be
        # absolute, so a relative --data-dir (make serve's) is resolved once, here.
        return value.expanduser().resolve()

    def key(self) -> str:
        """The signing key: the configured one, else one generated and kept in data_dir."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
        return path.read_text().strip()

    @property
    def cases_dir(self) -> Path:
        return self.data_dir / "cases"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"
