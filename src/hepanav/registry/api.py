"""HTTP API of registry records: read, create, correct, delete, history (FastAPI router).

The web application mounts :data:`router` behind its login and overrides two
dependencies::

    app.include_router(router, prefix="/api/registry")
    app.dependency_overrides[get_engine] = lambda: my_engine
    app.dependency_overrides[get_user] = current_login_name

Without an override :func:`get_user` refuses every request (401): the router is
never open by accident. Bad input is 422 with the field and reason (never the
value of an identifier); an unknown record is 404.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from hepanav.core.errors import InputError
from hepanav.registry import records


def get_engine() -> Engine:
    """The registry engine ($HEPANAV_DATABASE_URL); the web app overrides this."""
    from hepanav.registry.db import open_registry
    from hepanav.registry.settings import resolve_database_url

    return open_registry(resolve_database_url(None))


def get_user() -> str:
    """The logged-in user; the web app overrides this (401 until it does)."""
    raise HTTPException(status_code=401, detail="not authenticated")


class CreateBody(BaseModel):
    values: dict[str, Any]
    reason: str = Field(min_length=1, max_length=200)


class UpdateBody(BaseModel):
    key: dict[str, Any]
    changes: dict[str, Any]
    reason: str = Field(min_length=1, max_length=200)


class DeleteBody(BaseModel):
    key: dict[str, Any]
    reason: str = Field(min_length=1, max_length=200)


class Change(BaseModel):
    field: str
    old: Any
    new: Any


router = APIRouter(tags=["registry"])


def _fail(exc: InputError) -> HTTPException:
    status = 404 if str(exc).startswith("key: no record") else 422
    return HTTPException(status_code=status, detail=str(exc))


@router.get("/records/{table}")
def read_record(
    table: str, key: str, engine: Engine = Depends(get_engine), user: str = Depends(get_user)
) -> dict[str, Any]:
    """One record; ``key`` is ``P1/L1`` in the table's key order."""
    try:
        names = records.key_columns(table)
        parts = key.split("/")
        if len(parts) != len(names):
            raise InputError(f"the key of {table} is {'/'.join(names)}", "key")
        return records.get_record(engine, table, dict(zip(names, parts, strict=True)))
    except InputError as exc:
        raise _fail(exc) from None


@router.post("/records/{table}", status_code=201)
def create(
    table: str,
    body: CreateBody,
    engine: Engine = Depends(get_engine),
    user: str = Depends(get_user),
) -> dict[str, Any]:
    """Create a record; every field is logged in the history."""
    try:
        return records.create_record(engine, table, body.values, user, body.reason)
    except InputError as exc:
        raise _fail(exc) from None


@router.patch("/records/{table}")
def correct(
    table: str,
    body: UpdateBody,
    engine: Engine = Depends(get_engine),
    user: str = Depends(get_user),
) -> list[Change]:
    """Correct fields; returns what changed (old and new)."""
    try:
        diff = records.update_record(engine, table, body.key, body.changes, user, body.reason)
    except InputError as exc:
        raise _fail(exc) from None
    return [Change(field=f, old=o, new=n) for f, o, n in diff]


@router.delete("/records/{table}")
def remove(
    table: str,
    body: DeleteBody,
    engine: Engine = Depends(get_engine),
    user: str = Depends(get_user),
) -> dict[str, Any]:
    """Delete a record (cascading); returns its last values."""
    try:
        return records.delete_record(engine, table, body.key, user, body.reason)
    except InputError as exc:
        raise _fail(exc) from None


@router.get("/history")
def history(
    record: str | None = None,
    engine: Engine = Depends(get_engine),
    user: str = Depends(get_user),
) -> list[dict[str, Any]]:
    """The edit history, oldest first (``record`` = ``lesions:P1/L1`` for one record)."""
    return records.history(engine, record)
