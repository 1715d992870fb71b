"""Demo: fill a SQLite registry with a generated cohort and write the audit report."""

from __future__ import annotations

from pathlib import Path

N_PATIENTS = 400
SEED = 2024


def run(out: Path) -> list[Path]:
    """Generate a cohort, import it into ``out/registry.sqlite``, write the audit report.

    Returns
    -------
    list of Path
        The audit report (HTML); ``audit.json``, ``margins.json`` and the
        generated CSV templates are written beside it.
    """
    from hepanav.core.atomic import write_json
    from hepanav.registry import dataset, db, stats
    from hepanav.registry.cohort import generate_cohort
    from hepanav.registry.importer import import_file
    from hepanav.registry.report import write_audit_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    database = out / "registry.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    engine = db.make_engine(f"sqlite:///{database}")
    db.upgrade(engine)
    paths = generate_cohort(N_PATIENTS, seed=SEED).write(out / "templates")
    for kind in ("outcomes", "events", "complications"):
        import_file(engine, paths[kind], kind)
    frame = dataset.treatments(engine)
    margins = stats.margin_comparison(
        frame[frame.procedure_type == "resection"], "icg_used", "lesion"
    )
    write_json(out / "margins.json", margins)
    html, _ = write_audit_report(engine, out)
    engine.dispose()
    return [html]
