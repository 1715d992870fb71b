"""Where the registry lives: ``--db`` or ``HEPANAV_DATABASE_URL``, else a SQLite file."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///hepanav-registry.sqlite"


class RegistrySettings(BaseSettings):
    """Registry settings read from the environment (prefix ``HEPANAV_``).

    Attributes
    ----------
    database_url : str
        SQLAlchemy URL. ``sqlite:///path.sqlite`` (default: ``hepanav-registry.sqlite``
        in the working directory) or ``postgresql://user@host:port/db``.
    """

    model_config = SettingsConfigDict(env_prefix="HEPANAV_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL


def resolve_database_url(db: str | None) -> str:
    """The URL given on the command line, else ``HEPANAV_DATABASE_URL``, else the default."""
    return db if db else RegistrySettings().database_url
