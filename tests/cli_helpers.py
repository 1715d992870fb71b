"""Assertions shared by the CLI tests."""

from __future__ import annotations


def one_line_error(code: int, err: str, *fragments: str) -> str:
    """Assert exit code 2 and exactly one non-empty stderr line ``error: ...`` holding
    every fragment; return that line."""
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
