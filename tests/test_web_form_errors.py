"""Form errors of the web pages: one message in the page's words, naming the file by the
name it was uploaded with and the field by its label; never a server path, a Python
repr or exception name, a CLI option or FastAPI's JSON (in-process, real SQLite)."""

from __future__ import annotations

import io
import os
import re

import numpy as np
import pandas as pd
import pytest

from hepanav.web.app import create_app
from hepanav.web.settings import WebSettings
from registry_helpers import sqlite_registry  # noqa: F401
from test_registry_outcomes import OUTCOMES
from test_web_security import client_for, csrf_of
from web_helpers import make_users

HTML = {"accept": "text/html"}


@pytest.fixture()
def app(sqlite_registry, tmp_path):
    url, _ = sqlite_registry
    settings = WebSettings(
        data_dir=tmp_path / "data",
        db=f"sqlite:///{tmp_path / 'web.sqlite'}",
        registry_db=url,
        cookie_secure=True,
    )
    make_users(settings.db)
    return create_app(settings, start_jobs=False)


def _message(html: str) -> str:
    found = re.search(r'id="error-message">([^<]*)<', html)
    assert found, html[:2000]
    return found.group(1).replace("&#39;", "'")


def _import_errors(html: str) -> list[str]:
    box = re.search(r'id="import-errors">(.*?)</div>', html, re.S).group(1)
    return [" ".join(li.replace("&#39;", "'").split()) for li in re.findall(r"<li>(.*?)</li>", box)]


def _no_internals(text: str, app) -> None:
    data = str(app.state.settings.data_dir)
    assert data not in text and "/uploads/" not in text and "upload-" not in text
    assert "BadZipFile" not in text and "row=" not in text and "column=" not in text
    assert not re.search(r"(?<![\w-])--[a-z]", text), text
    assert '{"detail"' not in text


def _import(client, name: str, content: bytes):
    return client.post(
        "/registry/import",
        data={"csrf_token": csrf_of(client)},
        files={"file": (name, content)},
        headers=HTML,
    )


def test_registry_import_names_the_uploaded_file_and_rows_in_words(app):
    client = client_for(app, "admin")
    r = _import(client, "junk.xlsx", os.urandom(600))
    assert r.status_code == 400
    errors = _import_errors(r.text)
    assert errors == [
        "junk.xlsx: cannot read the workbook (not a valid .xlsx file; an .xls or "
        "password-protected workbook must be saved again as .xlsx)"
    ]
    _no_internals(r.text, app)

    r = _import(client, "C:\\exports\\cols.csv", b"a,b\n1,2\n")
    assert r.status_code == 400
    (error,) = _import_errors(r.text)
    assert error.startswith("cols.csv: unknown columns ['a', 'b']; allowed: ['patient_id',"), error
    _no_internals(r.text, app)

    rows = [dict(OUTCOMES[0], procedure_date="2020-02-30"), dict(OUTCOMES[1], margin_mm="x")]
    text = io.StringIO()
    pd.DataFrame(rows).to_csv(text, index=False)
    r = _import(client, "bad.csv", text.getvalue().encode())
    assert r.status_code == 400
    errors = _import_errors(r.text)
    assert errors[0] == "row 2, procedure_date: is not a valid calendar date (use YYYY-MM-DD)"
    assert errors[1].startswith("row 3, margin_mm: "), errors
    _no_internals(r.text, app)
    # Nothing of the uploads is kept.
    assert not list(app.state.settings.uploads_dir.iterdir())


def test_refused_uploads_are_named_by_their_file_name_and_ids_in_words(app):
    """Tester9: an empty or wrongly typed upload was "upload: ..."; a patient ID with an
    accent gave "String should match pattern '^[A-Za-z0-9]...'" (the validator's regex)."""
    client = client_for(app, "admin")
    r = _import(client, "C:\\exports\\empty.csv", b"")
    assert r.status_code == 400
    assert _message(r.text) == "empty.csv: is empty"
    r = _import(client, "notes.txt", b"a,b\n")
    assert r.status_code == 400
    assert _message(r.text) == "notes.txt: expected a .csv, .xlsx file"
    rows = [dict(OUTCOMES[0], patient_id="J\u00fcrgen 1")]
    text = io.StringIO()
    pd.DataFrame(rows).to_csv(text, index=False)
    r = _import(client, "ids.csv", text.getvalue().encode())
    assert r.status_code == 400
    assert _import_errors(r.text) == [
        "row 2, patient_id: must hold only letters A-Z / a-z, digits, '.', '_' or '-' (no "
        "spaces or accents), starting with a letter or digit"
    ]
    assert "should match pattern" not in r.text and "Input should" not in r.text
    _no_internals(r.text, app)
    assert not list(app.state.settings.uploads_dir.iterdir())


def test_upload_name_is_the_last_part_of_the_senders_name():
    from hepanav.web.messages import upload_name

    assert upload_name("C:\\Users\\x\\junk.xlsx") == "junk.xlsx"
    assert upload_name("a/b/junk.xlsx") == "junk.xlsx"
    assert upload_name("") == upload_name(None) == "the uploaded file"


def _video(path) -> None:
    """A 3-frame 8-bit grey FFV1 video (64x48 px)."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 10.0, (64, 48), False)
    rng = np.random.default_rng(1)
    for _ in range(3):
        writer.write(rng.integers(0, 255, (48, 64), dtype=np.uint8))
    writer.release()


@pytest.mark.parametrize("depth", ["13", "abc", "7", "16.0"])
def test_fluoro_bit_depth_outside_the_choices_is_refused_before_a_job(app, depth):
    client = client_for(app, "surgeon")
    r = client.post(
        "/fluoro",
        data={"csrf_token": csrf_of(client), "bit_depth": depth},
        files={"nir": ("nir.avi", b"not read")},
        headers=HTML,
    )
    assert r.status_code == 400
    message = _message(r.text)
    assert message.startswith("Bit depth: choose automatic, 8, 12 or 16 bit"), message
    _no_internals(message, app)
    assert not list(app.state.settings.uploads_dir.iterdir())


def test_fluoro_form_offers_only_the_depths_the_analysis_takes(app):
    from hepanav.web.workflows import fluoro_steps, parse_bit_depth

    page = client_for(app, "surgeon").get("/fluoro", headers=HTML).text
    select = re.search(r'<select name="bit_depth">(.*?)</select>', page, re.S).group(1)
    assert re.findall(r'value="([^"]+)"', select) == ["auto", "8", "12", "16"]
    assert 'value="auto" selected' in select
    assert [parse_bit_depth(v) for v in ("auto", "8", "12", "16")] == [None, 8, 12, 16]
    # auto: the pixel type decides (no --bit-depth, as the CLI's default).
    (_, auto), (_, twelve) = fluoro_steps("x.avi", None)[0], fluoro_steps("x.avi", 12)[0]
    assert "--bit-depth" not in auto
    assert twelve[twelve.index("--bit-depth") + 1] == "12"


def test_fluoro_8_bit_recording_with_16_bit_is_refused_before_a_job(app, tmp_path):
    video = tmp_path / "nir.avi"
    _video(video)
    client = client_for(app, "surgeon")
    with open(video, "rb") as handle:
        r = client.post(
            "/fluoro",
            data={"csrf_token": csrf_of(client), "bit_depth": "16"},
            files={"nir": ("theatre-3.avi", handle)},
            headers=HTML,
        )
    assert r.status_code == 400
    message = _message(r.text)
    assert message.startswith("theatre-3.avi: NIR data are 8-bit"), message
    assert message.endswith("but the bit depth 16 was given"), message
    _no_internals(message, app)
    assert not list(app.state.settings.uploads_dir.iterdir())


@pytest.mark.parametrize(
    ("role", "path", "data", "shown"),
    [
        ("surgeon", "/fluoro", {"bit_depth": "8"}, "NIR recording: is required"),
        ("surgeon", "/therapy", {"case_text": ""}, "Case (YAML): is required"),
        ("admin", "/registry/import", {}, "Template file (CSV/XLSX): is required"),
        (
            "radiologist",
            "/cases/case-001/plan",
            {"ct": "a", "tumor": "b", "device": "c", "margin_mm": "abc"},
            "Safety margin (mm): must be a number",
        ),
    ],
)
def test_request_errors_of_a_form_are_one_message_naming_the_field(app, role, path, data, shown):
    client = client_for(app, role)
    r = client.post(path, data={"csrf_token": csrf_of(client), **data}, headers=HTML)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("text/html")
    assert _message(r.text) == shown
    _no_internals(r.text, app)


def test_api_request_errors_stay_json(app):
    r = client_for(app, "radiologist").get("/api/jobs/abc")
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["path", "job_id"]
