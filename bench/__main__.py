"""Run benchmarks: ``python -m bench`` runs all, ``python -m bench margin`` one.

Each ``bench/bench_<name>.py`` has ``main()`` which prints its figures (each with
the baseline of the same run and their ratio) and returns them as a dict. The
figures, with the machine they ran on, are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
from pathlib import Path

NAMES = sorted(p.stem.removeprefix("bench_") for p in Path(__file__).parent.glob("bench_*.py"))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main(argv: list[str]) -> None:
    names = argv or NAMES
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; choose from {NAMES}")
    print(f"machine: {machine()}")
    results = {}
    for name in names:
        print(f"== {name}")
        results[name] = importlib.import_module(f"bench.bench_{name}").main()
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
