"""`hepanav registry ...` and `hepanav stats margins`: end to end and every bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cli_helpers import one_line_error
from hepanav import DISCLAIMER
from hepanav.registry.cohort import CohortEffects, generate_cohort, published_net_comparison
from registry_helpers import (  # noqa: F401
    count_rows,
    db_url,
    outcome_rows,
    postgres_server,
    write_csv,
)


def test_published_comparison_through_the_cli(cli, db_url, tmp_path):
    code, out, _ = cli("registry", "init", "--db", db_url)
    assert code == 0 and "schema 0005" in out
    csv = write_csv(tmp_path / "net.csv", published_net_comparison())
    code, out, _ = cli("registry", "import", csv, "--db", db_url)
    assert code == 0 and "imported 145 outcomes rows (25 patients)" in out
    code, out, _ = cli(
        "stats",
        "margins",
        "--group-by",
        "icg_used",
        "--unit",
        "lesion",
        "--out",
        tmp_path / "lesion",
        "--db",
        db_url,
    )
    assert code == 0, out
    result = json.loads((tmp_path / "lesion" / "margins.json").read_text(encoding="utf-8"))
    assert result["disclaimer"] == DISCLAIMER
    assert result["test"]["name"] == "fisher_exact"
    assert round(result["p_value"], 4) == 0.0019
    assert "chi-square not used" in result["test"]["reason"]
    assert result["clustered"]["method"] == "patient_level_exact_fallback"
    assert {c["group"]: c["negative"] for c in result["counts"]} == {"no": 38, "yes": 102}
    assert {r["group"]: round(r["rate"], 3) for r in result["rates"]} == {"no": 0.884, "yes": 1.0}
    code, out, _ = cli(
        "stats",
        "margins",
        "--group-by",
        "icg_used",
        "--unit",
        "patient",
        "--out",
        tmp_path / "patient",
        "--db",
        db_url,
    )
    assert code == 0
    result = json.loads((tmp_path / "patient" / "margins.json").read_text(encoding="utf-8"))
    assert {c["group"]: (c["negative"], c["n"]) for c in result["counts"]} == {
        "no": (10, 13),
        "yes": (12, 12),
    }
    assert result["clustered"] is None


@pytest.mark.slow
def test_cohort_import_report_and_export(cli, tmp_path, monkeypatch):
    db = f"sqlite:///{tmp_path / 'env.sqlite'}"
    monkeypatch.setenv("HEPANAV_DATABASE_URL", db)  # no --db: the environment decides
    assert cli("registry", "init")[0] == 0
    paths = generate_cohort(60, seed=9).write(tmp_path / "cohort")
    for kind in ("outcomes", "events", "complications"):
        code, out, err = cli("registry", "import", paths[kind], "--kind", kind)
        assert code == 0, err
    code, out, _ = cli("registry", "report", "--out", tmp_path / "report")
    assert code == 0
    audit = json.loads((tmp_path / "report" / "audit.json").read_text(encoding="utf-8"))
    expected = generate_cohort(60, seed=9).outcomes
    assert audit["counts"]["lesion_treatments"] == len(expected)
    assert audit["counts"]["patients"] == 60
    assert audit["database"] == "sqlite" and audit["disclaimer"] == DISCLAIMER
    resections = expected[expected.procedure_type == "resection"]
    by_type = {r["stratum"]: r for r in audit["rates_by_procedure_type"]}
    assert by_type["resection"]["lesions"] == len(resections)
    assert by_type["resection"]["lesions_r0"] == int((resections.margin_status == "R0").sum())
    # Local progression and Cox figures against the generated truth.
    cohort = generate_cohort(60, seed=9)
    ablated = set(cohort.outcomes.loc[cohort.outcomes.procedure_type == "ablation", "patient_id"])
    events = cohort.events
    ltp = events[(events.event_type == "local_progression") & events.patient_id.isin(ablated)]
    assert audit["incidence"]["n_local_progression"] == len(ltp)  # ablation only, not pooled
    assert audit["incidence"]["excluded_without_follow_up"] == 0
    model = audit["cox_local_progression"]
    assert model["estimable"] and model["events"] >= 10 and model["n"] > model["events"]
    (cox,) = model["terms"]
    assert cox["covariate"] == "mam_mm"
    assert cox["ci_low"] < np.exp(CohortEffects().ltp_log_hr_per_mm) < cox["ci_high"]
    html = (tmp_path / "report" / "audit.html").read_text(encoding="utf-8")
    assert DISCLAIMER in html and html.count("data:image/png;base64,") == 5
    code, out, _ = cli("registry", "export", "--out", tmp_path / "x.csv")
    assert code == 0
    assert len(pd.read_csv(tmp_path / "x.csv")) == len(expected)


@pytest.fixture()
def sqlite_registry(cli, tmp_path):
    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    assert cli("registry", "init", "--db", db)[0] == 0
    return db


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("stats", "margins", "--group-by", "icg_used", "--unit", "tumour", "--out", "o"),
            "--unit: must be lesion or patient",
        ),
        (
            ("stats", "margins", "--group-by", "colour", "--out", "o"),
            "--group-by: cannot group by 'colour'",
        ),
        (
            ("stats", "margins", "--group-by", "icg_used", "--out", "o"),
            "no lesion treatment with a margin_status",
        ),
        (
            ("stats", "margins", "--group-by", "icg_used", "--procedure-type", "x", "--out", "o"),
            "--procedure-type: unknown procedure type 'x'; choose from resection, ablation",
        ),
        (("registry", "import", "missing.csv"), "missing.csv: file not found"),
        (("registry", "import", "missing.csv", "--kind", "drugs"), "--kind: unknown kind"),
        (("registry", "export", "--out", "x.csv", "--kind", "drugs"), "--kind: unknown kind"),
        (("registry", "export", "--out", "."), ".: is a folder; give a file name"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(cli, sqlite_registry, args, message):
    line = one_line_error(*cli(*args, "--db", sqlite_registry)[::2])
    assert message in line


def test_bad_rows_and_identifiers_give_one_line(cli, sqlite_registry, tmp_path):
    rows = outcome_rows(3, 1)
    rows[0]["margin_status"] = "R7"
    rows[2]["icg_used"] = "perhaps"
    code, _, err = cli(
        "registry", "import", write_csv(tmp_path / "b.csv", rows), "--db", sqlite_registry
    )
    line = one_line_error(code, err)
    assert "nothing imported: 2 bad row(s)" in line
    assert "row 2 margin_status" in line and "row 4 icg_used" in line
    frame = pd.DataFrame(outcome_rows(1, 1)).assign(surname="Smith")
    code, _, err = cli(
        "registry", "import", write_csv(tmp_path / "i.csv", frame), "--db", sqlite_registry
    )
    assert "look like direct identifiers" in one_line_error(code, err)


def test_database_problems_give_one_line(cli, tmp_path):
    empty = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    code, _, err = cli("registry", "report", "--out", tmp_path / "r", "--db", empty)
    assert "run `hepanav registry init` first" in one_line_error(code, err)
    code, _, err = cli("registry", "init", "--db", "oracle://x@y/z")
    assert "unsupported database" in one_line_error(code, err)
    (tmp_path / "a_file").write_text("")
    code, _, err = cli("registry", "init", "--db", f"sqlite:///{tmp_path}/a_file/r.sqlite")
    assert one_line_error(code, err).startswith("error: --db: cannot create the folder")
    (tmp_path / "notes.sqlite").write_text("not a database\n")
    for command in (("registry", "init"), ("registry", "report", "--out", tmp_path / "r")):
        code, _, err = cli(*command, "--db", f"sqlite:///{tmp_path / 'notes.sqlite'}")
        assert one_line_error(code, err) == (
            "error: --db: cannot open the database (file is not a database)"
        )
    code, _, err = cli("registry", "init", "--db", "postgresql://nobody@127.0.0.1:1/none")
    assert one_line_error(code, err).startswith("error: --db: cannot open the database")
    code, _, err = cli(
        "registry",
        "report",
        "--out",
        tmp_path / "r",
        "--db",
        "postgresql://nobody@127.0.0.1:1/none",
    )
    assert one_line_error(code, err).startswith("error: --db: cannot open the database")


def _margin_json(path, mam=-1.5, cov5=0.82, cov6=0.74, category="incomplete", decisive=None):
    # The fields of `hepanav margin`'s margin.json the registry reads, plus others it ignores.
    data = {
        "min_margin_mm": mam,
        "shell_coverage_5mm": cov5,
        "shell_coverage_6mm": cov6,
        "category": category,
        "mean_margin_mm": 4.0,
        "disclaimer": DISCLAIMER,
    }
    if decisive is not None:
        data["uncertainty"] = {
            "half_width_mm": 0.75,
            "decisive": decisive,
            "rule": "a margin within its uncertainty (±0.8 mm) of 0 mm or of 5 mm is not decisive",
        }
    path.write_text(json.dumps(data))
    return path


def test_import_margin_json_onto_an_ablated_lesion(cli, sqlite_registry, tmp_path):
    rows = [
        {
            "patient_id": "P1",
            "lesion_id": "L1",
            "procedure_id": "A1",
            "procedure_type": "ablation",
            "procedure_date": "2024-02-03",
        },
        {
            "patient_id": "P1",
            "lesion_id": "L2",
            "procedure_id": "S1",
            "procedure_type": "resection",
            "procedure_date": "2024-03-03",
            "margin_mm": 3.0,
            "margin_status": "R0",
        },
    ]
    db = sqlite_registry
    assert cli("registry", "import", write_csv(tmp_path / "o.csv", rows), "--db", db)[0] == 0
    margin = _margin_json(tmp_path / "margin.json")
    ids = ("--patient-id", "P1", "--procedure-id", "A1", "--lesion-id", "L1")
    code, out, _ = cli("registry", "import-margin", margin, *ids, "--db", db)
    assert code == 0 and "MAM -1.5 mm (incomplete)" in out
    assert cli("registry", "export", "--out", tmp_path / "x.csv", "--db", db)[0] == 0
    row = pd.read_csv(tmp_path / "x.csv").set_index("lesion_id").loc["L1"]
    assert row["mam_mm"] == -1.5 and row["margin_category"] == "incomplete"
    assert row["shell_coverage_5mm_pct"] == pytest.approx(82.0)
    assert row["shell_coverage_6mm_pct"] == pytest.approx(74.0)

    resection = ("--patient-id", "P1", "--procedure-id", "S1", "--lesion-id", "L2")
    code, _, err = cli("registry", "import-margin", margin, *resection, "--db", db)
    assert "is a resection, not an ablation" in one_line_error(code, err)
    unknown = ("--patient-id", "P9", "--procedure-id", "A1", "--lesion-id", "L1")
    code, _, err = cli("registry", "import-margin", margin, *unknown, "--db", db)
    assert "no such lesion treatment" in one_line_error(code, err)
    bad = _margin_json(tmp_path / "bad.json", cov6=1.7)
    code, _, err = cli("registry", "import-margin", bad, *ids, "--db", db)
    assert "shell_coverage_6mm" in one_line_error(code, err)
    (tmp_path / "junk.json").write_text("{not json")
    code, _, err = cli("registry", "import-margin", tmp_path / "junk.json", *ids, "--db", db)
    assert "not valid JSON" in one_line_error(code, err)


def test_import_margin_never_overwrites_silently(cli, sqlite_registry, tmp_path):
    """The tester's repro: MAM 8.7 mm (5-10mm) stored, then a 4.84 mm margin.json."""
    row = {
        "patient_id": "HN-0002",
        "lesion_id": "L1",
        "procedure_id": "A1",
        "procedure_type": "ablation",
        "procedure_date": "2024-01-03",
        "mam_mm": 8.7,
        "margin_category": "5-10mm",
    }
    db = sqlite_registry
    assert cli("registry", "import", write_csv(tmp_path / "o.csv", [row]), "--db", db)[0] == 0
    ids = ("--patient-id", "HN-0002", "--procedure-id", "A1", "--lesion-id", "L1")
    # No uncertainty block: 4.84 mm lies within u = 0.75 mm of 5 mm, so "decisive: true"
    # would contradict the template's rule, which import-margin applies too (2026-12-01).
    margin = _margin_json(tmp_path / "m.json", 4.84, 0.99, 0.98, "0-5mm")

    def stored_mam():
        cli("registry", "export", "--out", tmp_path / "x.csv", "--db", db)
        got = pd.read_csv(tmp_path / "x.csv").iloc[0]
        return got["mam_mm"], got["margin_category"]

    code, _, err = cli("registry", "import-margin", margin, *ids, "--db", db)
    line = one_line_error(code, err)
    assert "lesion L1 already has MAM 8.7 mm (5-10mm)" in line and "--upsert" in line
    assert stored_mam() == (8.7, "5-10mm")
    assert cli("registry", "history", "--db", db)[1].strip() == ""

    code, out, _ = cli("registry", "import-margin", margin, *ids, "--upsert", "--db", db)
    assert code == 0 and "MAM 4.8 mm (0-5mm)" in out
    assert stored_mam() == (4.84, "0-5mm")
    log = cli("registry", "history", "--db", db)[1]
    assert "lesion_treatments:HN-0002/A1/L1 mam_mm: 8.7 -> 4.84" in log
    assert "margin_category: 5-10mm -> 0-5mm" in log
    # The same file again changes nothing and needs no --upsert.
    code, out, _ = cli("registry", "import-margin", margin, *ids, "--db", db)
    assert code == 0 and "nothing changed" in out


def test_import_margin_refuses_a_not_decisive_mam_unless_accepted(cli, sqlite_registry, tmp_path):
    row = {
        "patient_id": "P1",
        "lesion_id": "L1",
        "procedure_id": "A1",
        "procedure_type": "ablation",
        "procedure_date": "2024-01-03",
    }
    db = sqlite_registry
    assert cli("registry", "import", write_csv(tmp_path / "o.csv", [row]), "--db", db)[0] == 0
    ids = ("--patient-id", "P1", "--procedure-id", "A1", "--lesion-id", "L1")
    margin = _margin_json(tmp_path / "m.json", 4.84, 0.99, 0.98, "0-5mm", decisive=False)
    code, _, err = cli("registry", "import-margin", margin, *ids, "--db", db)
    assert "MAM 4.84 mm is NOT decisive" in one_line_error(code, err)
    assert cli("registry", "history", "--db", db)[1].strip() == ""
    accept = ("--accept-not-decisive", "--db", db)
    code, out, _ = cli("registry", "import-margin", margin, *ids, *accept)
    assert code == 0 and "(0-5mm, NOT decisive)" in out
    log = cli("registry", "history", "--db", db)[1]
    assert "mam_mm: None -> 4.84" in log and "NOT decisive" in log


def test_every_bad_row_is_written_with_errors_out(cli, sqlite_registry, tmp_path):
    rows = outcome_rows(80, 1)
    for row in rows:
        row["margin_mm"] = "-3"  # 80 bad rows: more than the one-line message spells out
    csv = write_csv(tmp_path / "bad.csv", rows)
    report = tmp_path / "errors.csv"
    code, _, err = cli("registry", "import", csv, "--errors-out", report, "--db", sqlite_registry)
    line = one_line_error(code, err)
    assert "nothing imported: 80 bad row(s)" in line and "... and 30 more" in line
    errors = pd.read_csv(report)
    assert list(errors["row"]) == list(range(2, 82))
    assert set(errors["column"]) == {"margin_mm"}
