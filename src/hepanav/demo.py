"""``make demo``: run every capability on data HepaNav generates itself.

Each capability has ``hepanav/<capability>/demo.py`` with
``run(out: Path) -> list[Path]`` returning the reports it wrote. The first and
main job is the ablation-margin pipeline (phantom -> registration -> margin ->
report).
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from rich.console import Console

from hepanav import DISCLAIMER

DEMOS = ("margin", "fluorescence", "planning", "registry", "therapy")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hepanav.demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    parser.add_argument("--only", choices=DEMOS, nargs="*", help="run only these demos")
    args = parser.parse_args(argv)
    console = Console()
    written: list[tuple[str, Path]] = []
    for name in args.only or DEMOS:
        console.rule(f"[bold]{name}")
        module = importlib.import_module(f"hepanav.{name}.demo")
        for path in module.run(args.out / name):
            written.append((name, path))
    console.rule("[bold]reports")
    for name, path in written:
        console.print(f"{name:>13}: {path.resolve()}", soft_wrap=True, highlight=False)
    console.rule("[bold]web application")
    console.print(
        "The same work in the browser: run [bold]make serve[/bold] (a synthetic case, a demo "
        "registry and one demo user per role, passwords printed once), then open "
        "http://127.0.0.1:8000 (docs/web.md).",
        soft_wrap=True,
        highlight=False,
    )
    console.print(f"[dim]{DISCLAIMER}[/dim]")


if __name__ == "__main__":
    main()
