"""A NumPy view of a SimpleITK image is valid only while the image lives: the source must
never take a view of a temporary (``GetArrayViewFromImage(f(x))``), which reads freed
memory and crashes at random (seen as a segfault of ``hepanav segment ablation``)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "hepanav"


def test_no_array_view_of_a_temporary_image():
    offenders = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "GetArrayViewFromImage"
                and node.args
                and isinstance(node.args[0], ast.Call)
            ):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not offenders, f"array view of a temporary image at {offenders}"
