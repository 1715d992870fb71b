"""Issue 10/15: identifiers typed into values are refused, by column and row, never echoed.

Names, dates of birth, phone numbers, e-mail addresses and MRN-like strings are
planted in every free (non-numeric, non-date) column of every template; each
import is refused, and the planted value appears in no stdout, stderr,
``--errors-out`` file, log file or database row.
"""

from __future__ import annotations

import pytest

from hepanav.core import privacy
from hepanav.registry.importer import column_roles
from hepanav.registry.schema import ROW_MODELS
from registry_helpers import count_rows, sqlite_registry, write_csv  # noqa: F401

PLANTED = {
    "name": "Maria Huber",
    "surname_first": "Huber, Maria",
    "honorific": "Mr Brown",
    "birth_date": "1950-03-02",
    "birth_date_dotted": "02.03.1950",
    "phone": "+49 30 12345678",
    "email": "maria.huber@example.org",
    "mrn": "12345678",
    "mrn_prefixed": "A123456789",
    "ssn": "123-45-6789",
}

BASE = {
    "outcomes": {
        "patient_id": "P1",
        "lesion_id": "L1",
        "procedure_id": "A1",
        "procedure_type": "ablation",
        "procedure_date": "2021-05-04",
        "ablation_device": "NeuWave PR",
        "primary_type": "CRC",
        "sex": "F",
    },
    "events": {
        "patient_id": "P1",
        "lesion_id": "L1",
        "event_type": "local_progression",
        "event_date": "2022-01-04",
    },
    "complications": {
        "patient_id": "P1",
        "procedure_id": "A1",
        "grading_system": "cirse",
        "grade": "2",
        "description": "bleeding, transfusion of 2 units",
    },
}


def _free_columns(kind: str) -> list[str]:
    roles = column_roles(kind)
    typed = set(roles["dates"]) | set(roles["numbers"])
    return [c for c in ROW_MODELS[kind].model_fields if c not in typed and c != "icg_used"]


CASES = [
    (kind, column, label) for kind in BASE for column in _free_columns(kind) for label in PLANTED
]


def test_every_free_column_is_covered():
    assert {"ablation_device", "patient_id", "margin_status", "segment"} <= set(
        _free_columns("outcomes")
    )
    assert "description" in _free_columns("complications")
    assert len(CASES) >= 150


@pytest.mark.parametrize("kind, column, label", CASES)
def test_screen_value_finds_each_planted_identifier(kind, column, label):
    from hepanav.registry.schema import CODE_SETS, ID_COLUMNS

    role = "code" if column in CODE_SETS else "id" if column in ID_COLUMNS else "free_text"
    assert privacy.screen_value(PLANTED[label], role, CODE_SETS.get(column)) is not None


@pytest.mark.parametrize("kind", list(BASE))
def test_planted_identifiers_are_refused_and_never_echoed(cli, sqlite_registry, tmp_path, kind):
    """One file per template: each free column of each row holds a different planted
    value (one row per column x identifier); the import is refused with column and
    row, and no planted value is in any output."""
    url, engine = sqlite_registry
    rows = []
    for column in _free_columns(kind):
        for value in PLANTED.values():
            row = dict(BASE[kind])
            row[column] = value
            rows.append(row)
    path = write_csv(tmp_path / f"{kind}.csv", rows)
    errors_out = tmp_path / "errors.csv"
    log = tmp_path / "hepanav.log"
    code, out, err = cli(
        "registry", "import", path, "--kind", kind, "--db", url, "--errors-out", errors_out
    )
    assert code == 2 and "value not shown" in err
    assert "row 2 " in err and "looks like" in err
    listed = errors_out.read_text(encoding="utf-8")
    assert listed.count("value not shown") == len(rows)  # every planted cell, by row
    outputs = out + err + listed + (log.read_text() if log.exists() else "")
    for value in PLANTED.values():
        assert value not in outputs, value
    assert count_rows(engine, "patients") == 0


def test_redcap_event_name_is_not_taken_for_a_name():
    assert not privacy.identifier_column("redcap_event_name")
    assert not privacy.identifier_column("record_id")
    assert privacy.identifier_column("patient_name")
    assert privacy.identifier_column("date_of_birth")
    assert privacy.screen_value("baseline_arm_1") is None


@pytest.mark.parametrize(
    "value, role",
    [
        ("NeuWave PR", "free_text"),
        ("Emprint 2.45 GHz", "free_text"),
        ("bile leak, segment 7", "free_text"),
        ("P000123", "id"),
        ("HN-0001", "id"),
        ("1001", "id"),
        ("-3.5", "number"),
        ("2021-05-04", "date"),
        ("laparoscopic", "code"),
    ],
)
def test_ordinary_registry_values_pass_the_screen(value, role):
    codes = ("open", "laparoscopic") if role == "code" else None
    assert privacy.screen_value(value, role, codes) is None
