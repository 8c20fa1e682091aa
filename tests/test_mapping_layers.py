"""The mapping package reads one way: analysis -> enumeration -> rewrites -> realisation -> the
hook implementation, each module importing only those before it (no cycle, no import hidden
in a function to dodge one)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gta_core" / "mapping"
LINE = ("access", "stages", "placement", "enumerate", "rewrite", "realise", "candidates",
        "builtin")


def _siblings(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_line_names_every_module():
    assert {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"} == set(LINE)


@pytest.mark.parametrize("module", LINE)
def test_a_module_imports_only_those_before_it(module):
    later = set(LINE[LINE.index(module):])
    assert not _siblings(module) & later, f"{module} imports {_siblings(module) & later}"
