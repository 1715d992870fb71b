"""``make serve``: prepare demo data for the web application (no patient data).

Writes a synthetic ablation case (``hepanav phantom``) into the watched worklist
folder and creates one demo user per role with random passwords, printed once.
Run as ``python -m hepanav.web.demo --data-dir DIR --db URL``.
"""

from __future__ import annotations

import argparse
import secrets
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from hepanav import DISCLAIMER
from hepanav.web.models import ROLES, User, make_web_engine
from hepanav.web.security import create_user

DEMO_CASE = "demo-ablation-001"


def prepare(data_dir: Path, db: str) -> dict[str, str]:
    """Create the demo case (once) and demo users (once); returns new user -> password."""
    case = data_dir / "cases" / DEMO_CASE
    if not case.exists():
        subprocess.run([sys.executable, "-m", "hepanav", "phantom", "--out", str(case)], check=True)
    registry = data_dir / "registry.sqlite"
    if not registry.exists():
        demo_registry(registry)
    created: dict[str, str] = {}
    with Session(make_web_engine(db)) as session:
        for role in ROLES:
            name = f"demo-{role}"
            if session.scalar(select(User).where(User.username == name)) is None:
                password = secrets.token_urlsafe(12)
                create_user(session, name, password, role)
                created[name] = password
    return created


def demo_registry(database: Path, patients: int = 150) -> None:
    """A registry filled with a generated cohort (no real patients), for the dashboard."""
    from hepanav.registry.cohort import generate_cohort

    url = f"sqlite:///{database.resolve()}"
    templates = database.parent / "registry-templates"
    paths = generate_cohort(patients, seed=2024).write(templates)
    run = [sys.executable, "-m", "hepanav", "registry"]
    subprocess.run([*run, "init", "--db", url], check=True, capture_output=True)
    for kind in ("outcomes", "events", "complications"):
        subprocess.run(
            [*run, "import", str(paths[kind]), "--kind", kind, "--db", url],
            check=True,
            capture_output=True,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hepanav.web.demo", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("hepanav-data"))
    parser.add_argument("--db", default=None)
    args = parser.parse_args(argv)
    db = args.db or f"sqlite:///{(args.data_dir / 'web.sqlite').resolve()}"
    args.data_dir.mkdir(parents=True, exist_ok=True)
    created = prepare(args.data_dir, db)
    print(f"demo case: {args.data_dir / 'cases' / DEMO_CASE}")
    if created:
        print("demo users (passwords shown once; create others with 'hepanav web create-user'):")
        for name, password in created.items():
            print(f"  {name:>20}  {password}")
    else:
        print("demo users exist already (passwords were shown when they were created)")
    print(DISCLAIMER)


if __name__ == "__main__":
    main()
