"""Registry benchmark: import 100,000 lesion rows and build the audit report.

Backends: SQLite (file) and PostgreSQL (``$HEPANAV_TEST_POSTGRES_URL`` or
``postgresql://postgres@127.0.0.1:5432/test``, skipped when unreachable; a
throw-away schema is created and dropped).

Baselines measured in the same run:

* ``naive ORM``: the obvious importer - each CSV row validated, then
  ``session.merge`` of patient, lesion and procedure and ``session.add`` of
  the treatment, flushed row by row, one commit at the end. It is measured on
  the first ``NAIVE_ROWS`` rows (it is linear in rows) and compared by rows/s.
* ``pandas.to_sql``: the flat CSV dumped unvalidated into one table: what bulk
  writing costs without validation or normalisation (reference, not a goal).
* the audit report is compared with loading its input tables alone.
"""

from __future__ import annotations

import csv
import os
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

N_LESIONS = 100_000
NAIVE_ROWS = 5_000
POSTGRES_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


def _cohort(folder: Path) -> dict[str, Path]:
    from hepanav.registry.cohort import generate_cohort

    cohort = generate_cohort(int(N_LESIONS / 2.1), seed=7)
    assert len(cohort.outcomes) >= N_LESIONS, "raise the number of patients"
    cohort.outcomes = cohort.outcomes.iloc[:N_LESIONS]
    kept = set(zip(cohort.outcomes.patient_id, cohort.outcomes.lesion_id, strict=True))
    patients = set(cohort.outcomes.patient_id)
    ev = cohort.events
    lesion_ok = [
        (lid == "" and p in patients) or (p, lid) in kept
        for p, lid in zip(ev.patient_id, ev.lesion_id, strict=True)
    ]
    cohort.events = ev[lesion_ok]
    cohort.complications = cohort.complications[cohort.complications.patient_id.isin(patients)]
    return cohort.write(folder)


def _naive_orm_import(url: str, path: Path, limit: int) -> float:
    """Seconds for the row-by-row ORM importer on the first ``limit`` rows."""
    from sqlalchemy.orm import Session

    from hepanav.registry import db, models
    from hepanav.registry.schema import OutcomeRow

    engine = db.make_engine(url)
    db.upgrade(engine)
    start = time.perf_counter()
    with Session(engine) as session, path.open(newline="") as fh:
        for i, raw in enumerate(csv.DictReader(fh)):
            if i == limit:
                break
            r = OutcomeRow.model_validate({k: (v or None) for k, v in raw.items()})
            session.merge(
                models.Patient(patient_id=r.patient_id, year_of_birth=r.year_of_birth, sex=r.sex)
            )
            session.flush()
            session.merge(
                models.Lesion(
                    patient_id=r.patient_id,
                    lesion_id=r.lesion_id,
                    segment=r.segment,
                    size_mm=r.size_mm,
                    depth_mm=r.depth_mm,
                )
            )
            session.flush()
            session.merge(
                models.Procedure(
                    patient_id=r.patient_id,
                    procedure_id=r.procedure_id,
                    procedure_type=r.procedure_type,
                    procedure_date=r.procedure_date,
                    approach=r.approach,
                    icg_used=r.icg_used,
                )
            )
            session.flush()
            session.add(
                models.LesionTreatment(
                    patient_id=r.patient_id,
                    procedure_id=r.procedure_id,
                    lesion_id=r.lesion_id,
                    margin_mm=r.margin_mm,
                    margin_status=r.margin_status,
                    mam_mm=r.mam_mm,
                )
            )
            session.flush()
        session.commit()
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed


def _to_sql(url: str, path: Path) -> float:
    import pandas as pd

    from hepanav.registry import db

    engine = db.make_engine(url)
    start = time.perf_counter()
    pd.read_csv(path).to_sql("flat_dump", engine, if_exists="replace", index=False, chunksize=5_000)
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed


def _run_backend(name: str, urls, paths: dict[str, Path], out: Path) -> dict:
    from hepanav.registry import dataset, db
    from hepanav.registry.importer import import_file
    from hepanav.registry.report import write_audit_report

    url = urls()
    engine = db.make_engine(url)
    db.upgrade(engine)
    t0 = time.perf_counter()
    import_file(engine, paths["outcomes"], "outcomes")
    t_outcomes = time.perf_counter() - t0
    import_file(engine, paths["events"], "events")
    import_file(engine, paths["complications"], "complications")
    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    dataset.treatments(engine)
    dataset.events(engine)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_audit_report(engine, out / name)
    t_report = time.perf_counter() - t0
    parts = _report_parts(engine)
    engine.dispose()
    t_naive = _naive_orm_import(urls(), paths["outcomes"], NAIVE_ROWS)
    t_to_sql = _to_sql(urls(), paths["outcomes"])
    ours_rate = N_LESIONS / t_outcomes
    naive_rate = NAIVE_ROWS / t_naive
    result = {
        "outcome_rows": N_LESIONS,
        "import_outcomes_s": round(t_outcomes, 2),
        "import_outcomes_rows_per_s": round(ours_rate),
        "import_all_templates_s": round(t_import, 2),
        "naive_orm_rows_per_s": round(naive_rate),
        "speedup_vs_naive_orm": round(ours_rate / naive_rate, 1),
        "pandas_to_sql_unvalidated_s": round(t_to_sql, 2),
        "ratio_ours_to_pandas_to_sql": round(t_outcomes / t_to_sql, 2),
        "audit_report_s": round(t_report, 2),
        "load_tables_only_s": round(t_load, 2),
        "ratio_report_to_load": round(t_report / t_load, 1),
        **parts,
    }
    for k, v in result.items():
        print(f"  {name:>10} {k:<32} {v}")
    return result


def _report_parts(engine) -> dict:
    """Seconds of the audit's statistical parts (the rest is tables, figures, HTML)."""
    from hepanav.registry import dataset, stats

    treated, follow_up = dataset.treatments(engine), dataset.events(engine)
    resections = treated[(treated.procedure_type == "resection") & treated.icg_used.notna()]
    t0 = time.perf_counter()
    stats.margin_comparison(resections, "icg_used", "lesion")
    t_gee = time.perf_counter() - t0
    tte = dataset.time_to_event(treated, follow_up)
    t0 = time.perf_counter()
    stats.incidence_summary(tte)
    t_aj = time.perf_counter() - t0
    ablated = tte[(tte.procedure_type == "ablation") & tte.mam_mm.notna()]
    t0 = time.perf_counter()
    stats.cox_cluster_robust(ablated, ["mam_mm"])
    t_cox = time.perf_counter() - t0
    return {
        "report_part_gee_icg_s": round(t_gee, 2),
        "report_part_aalen_johansen_s": round(t_aj, 2),
        "report_part_cox_cluster_robust_s": round(t_cox, 2),
        "gee_lesions": len(resections),
        "cox_lesions": len(ablated),
    }


def _sqlite_urls(folder: Path):
    counter = iter(range(100))
    return lambda: f"sqlite:///{folder / f'bench{next(counter)}.sqlite'}"


def _postgres_urls(server: str, schemas: list[str]):
    def make() -> str:
        from sqlalchemy import create_engine, text

        from hepanav.registry.db import normalise_url

        schema = f"hepanav_bench_{uuid.uuid4().hex[:12]}"
        admin = create_engine(normalise_url(server), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        schemas.append(schema)
        sep = "&" if "?" in server else "?"
        return f"{server}{sep}options={quote(f'-csearch_path={schema}')}"

    return make


def _drop_schemas(server: str, schemas: list[str]) -> None:
    from sqlalchemy import create_engine, text

    from hepanav.registry.db import normalise_url

    admin = create_engine(normalise_url(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for schema in schemas:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


def _postgres_reachable(server: str) -> bool:
    from sqlalchemy import create_engine, text

    from hepanav.registry.db import normalise_url

    try:
        engine = create_engine(normalise_url(server), connect_args={"connect_timeout": 5})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception as exc:
        print(f"  postgresql skipped: {exc}")
        return False


def main() -> dict:
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="hepanav-bench-registry-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        paths = _cohort(folder / "cohort")
        print(f"  generated {N_LESIONS} lesion rows in {time.perf_counter() - t0:.1f} s")
        results["sqlite"] = _run_backend("sqlite", _sqlite_urls(folder), paths, folder)
        server = os.environ.get("HEPANAV_TEST_POSTGRES_URL") or POSTGRES_DEFAULT
        if _postgres_reachable(server):
            schemas: list[str] = []
            try:
                results["postgresql"] = _run_backend(
                    "postgresql", _postgres_urls(server, schemas), paths, folder
                )
            finally:
                _drop_schemas(server, schemas)
    return results


if __name__ == "__main__":
    main()
