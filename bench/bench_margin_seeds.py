"""``hepanav margin`` from two CTs and two seeds, 1 core against every core (issue 12).

Section 4 of ``bench_margin`` on its own (the ``make demo`` phantom case, end to end in
a subprocess). Run: ``.venv/bin/python -m bench margin_seeds``.
"""

from __future__ import annotations


def main() -> dict:
    from bench.bench_margin import bench_seeds_cli

    return bench_seeds_cli()


if __name__ == "__main__":
    main()
