"""The plugin author's docs cover every hook, and their examples work."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import tvm

from gta_core import hookspecs
from gta_core.conformance import check_plugin
from gta_core.measure import garbage_output
from gta_core.workloads import parse_workload

DOCS = Path(__file__).resolve().parent.parent / "docs"
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("gta_"))


def sections() -> dict[str, str]:
    text = (DOCS / "hooks.md").read_text()
    parts = re.split(r"^## (\S+)\s*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def example_plugin(hook: str) -> types.ModuleType:
    """The section's code blocks that implement a hook, run as one plugin module."""
    module = types.ModuleType(f"docs_example_{hook}")
    sys.modules[module.__name__] = module  # pydantic resolves annotations through it
    blocks = re.findall(r"```python\n(.*?)```", sections()[hook], flags=re.DOTALL)
    runnable = [block for block in blocks if "@hookimpl" in block]
    assert runnable, f"docs/hooks.md section {hook} has no example implementing the hook"
    for block in runnable:
        exec(compile(block, f"docs/hooks.md:{hook}", "exec"), module.__dict__)
    return module


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_section_in_docs_hooks_md(hook):
    assert hook in sections(), f"docs/hooks.md has no '## {hook}' section"


def test_docs_document_no_hook_that_does_not_exist():
    assert set(sections()) <= set(HOOKS)


@pytest.mark.parametrize("hook", [h for h in HOOKS if h.startswith("gta_register_")])
def test_each_register_example_loads_as_a_conforming_plugin(hook):
    registry = check_plugin(example_plugin(hook), name=hook, with_installed=True)
    assert registry.plugins[hook].registered


def test_the_operator_example_builds_and_matches_its_reference():
    registry = check_plugin(example_plugin("gta_register_workloads"), name="docs",
                            with_installed=True)
    workload = parse_workload("outer:M=4,N=8,dtype=int8", registry.operators)
    inputs = workload.random_inputs()
    out = tvm.runtime.tensor(garbage_output(workload))
    tvm.compile(workload.prim_func(), target="llvm")(*map(tvm.runtime.tensor, inputs), out)
    assert workload.mismatch(out.numpy(), workload.expected(inputs)) is None


@pytest.mark.parametrize("hook", [h for h in HOOKS if not h.startswith("gta_register_")])
def test_each_run_time_hook_example_loads(hook):
    check_plugin(example_plugin(hook), name=hook)
