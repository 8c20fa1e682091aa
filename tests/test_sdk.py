"""The plugin SDK: one promised face, versioned, and the only one shipped plugins use."""

from __future__ import annotations

import ast
import subprocess
import sys
import types
from pathlib import Path

import pytest

from gta_core import sdk
from gta_core.plugins import load
from gta_core.sdk import hookimpl

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_SOURCES = sorted(
    path for folder in ("plugins", "examples") if (ROOT / folder).is_dir()
    for path in (ROOT / folder).rglob("*.py")
    if "tests" not in path.relative_to(ROOT).parts and "build" not in path.parts
)


def _core_imports(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.append(node.module)
        elif isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
    return [m for m in modules if m == "gta_core" or m.startswith("gta_core.")]


def test_the_shipped_plugins_are_scanned():
    names = {p.parent.name for p in PLUGIN_SOURCES}
    assert {"gta_avx512", "gta_cuda_tc", "gta_rules"} <= names


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugin_code_imports_the_core_only_through_the_sdk(path):
    outside = [m for m in _core_imports(path) if m != "gta_core.sdk"]
    assert not outside, f"{path.relative_to(ROOT)} imports {outside}; use gta_core.sdk"


def test_every_promised_name_resolves():
    for name in sdk.__all__:
        assert getattr(sdk, name) is not None, name


def test_a_name_outside_the_sdk_is_refused_with_where_to_look():
    with pytest.raises(AttributeError, match="__all__"):
        sdk.finish_cpu  # noqa: B018 - a core internal, not promised


def test_importing_hookimpl_from_the_sdk_does_not_import_tvm():
    code = ("import sys; from gta_core.sdk import hookimpl, Target, Intrinsic; "
            "print('tvm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("declared, loads", [
    (sdk.API_VERSION, True), ("1.0", True), ("1.999", False), ("2.0", False),
    ("0.9", False), ("one", False),
])
def test_an_api_version_loads_when_the_core_provides_it(declared, loads):
    assert (sdk.compatible(declared) is None) == loads


def _plugin(version: str | None) -> types.ModuleType:
    module = types.ModuleType("versioned")
    if version is not None:
        module.GTA_API_VERSION = version

    @hookimpl
    def gta_register_targets(register):
        register({"name": "versioned-cpu", "description": "x", "kind": "cpu",
                  "tvm": {"kind": "llvm"}})

    module.gta_register_targets = gta_register_targets
    return module


def test_a_plugin_for_another_api_is_skipped_and_named():
    registry = load(environ={"GTA_PLUGINS": ""}, extra=[("versioned", _plugin("2.0"))])
    [failure] = [f for f in registry.failures if f.plugin == "versioned"]
    assert failure.stage == "api-version"
    assert "2.0" in failure.cause and sdk.API_VERSION in failure.cause
    assert "versioned-cpu" not in registry.targets


@pytest.mark.parametrize("version", [None, sdk.API_VERSION])
def test_a_plugin_for_this_api_or_none_declared_loads(version):
    registry = load(environ={"GTA_PLUGINS": ""}, extra=[("versioned", _plugin(version))])
    assert "versioned-cpu" in registry.targets


def test_gta_plugins_shows_the_sdk_each_plugin_was_written_for():
    from gta_core.api import plugins_report

    report = plugins_report(load(environ={"GTA_PLUGINS": "gta-avx512"},
                                 extra=[("versioned", _plugin(None))]))
    versions = {p.name: p.api_version for p in report.plugins}
    assert versions["gta-avx512"] == sdk.API_VERSION and versions["versioned"] is None
