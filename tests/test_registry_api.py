"""The registry records API (FastAPI router) through fastapi's TestClient."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hepanav.registry import api
from registry_helpers import db_url, postgres_server, registry  # noqa: F401


@pytest.fixture()
def client(registry):
    _, engine = registry
    app = FastAPI()
    app.include_router(api.router, prefix="/api/registry")
    app.dependency_overrides[api.get_engine] = lambda: engine
    app.dependency_overrides[api.get_user] = lambda: "web-user"
    return TestClient(app)


def test_without_login_every_request_is_refused(registry):
    _, engine = registry
    app = FastAPI()
    app.include_router(api.router)
    app.dependency_overrides[api.get_engine] = lambda: engine
    assert TestClient(app).get("/history").status_code == 401


def test_create_correct_delete_and_history(client):
    r = client.post(
        "/api/registry/records/patients", json={"values": {"patient_id": "P7"}, "reason": "new"}
    )
    assert r.status_code == 201 and r.json()["patient_id"] == "P7"
    r = client.post(
        "/api/registry/records/lesions",
        json={"values": {"patient_id": "P7", "lesion_id": "L1", "size_mm": 18}, "reason": "new"},
    )
    assert r.status_code == 201
    r = client.patch(
        "/api/registry/records/lesions",
        json={
            "key": {"patient_id": "P7", "lesion_id": "L1"},
            "changes": {"size_mm": 19.5},
            "reason": "re-measured",
        },
    )
    assert r.status_code == 200 and r.json() == [{"field": "size_mm", "old": 18.0, "new": 19.5}]
    assert (
        client.get("/api/registry/records/lesions", params={"key": "P7/L1"}).json()["size_mm"]
        == 19.5
    )
    r = client.patch(
        "/api/registry/records/lesions",
        json={
            "key": {"patient_id": "P7", "lesion_id": "L1"},
            "changes": {"size_mm": "inf"},
            "reason": "x",
        },
    )
    assert r.status_code == 422 and "finite" in r.json()["detail"]
    r = client.patch(
        "/api/registry/records/lesions",
        json={
            "key": {"patient_id": "P7", "lesion_id": "L1"},
            "changes": {"segment": "John Smith"},
            "reason": "x",
        },
    )
    assert r.status_code == 422 and "John" not in r.json()["detail"]
    r = client.request(
        "DELETE",
        "/api/registry/records/lesions",
        json={"key": {"patient_id": "P7", "lesion_id": "L1"}, "reason": "duplicate"},
    )
    assert r.status_code == 200
    assert client.get("/api/registry/records/lesions", params={"key": "P7/L1"}).status_code == 404
    log = client.get("/api/registry/history", params={"record": "lesions:P7/L1"}).json()
    assert [h["action"] for h in log].count("update") == 1
    assert {h["changed_by"] for h in log} == {"web-user"}
    update = next(h for h in log if h["action"] == "update")
    assert (update["field"], update["old_value"], update["new_value"], update["reason"]) == (
        "size_mm",
        "18.0",
        "19.5",
        "re-measured",
    )
