"""The plugin manager: discovery, GTA_PLUGINS, and isolation of broken plugins."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gta_core.hookspecs import hookimpl
from gta_core.models import Intrinsic, IntrinsicCompute, IterVar, Operand, Target
from gta_core.plugins import load

NO_INSTALLED = {"GTA_PLUGINS": ""}


def make_target(name: str = "toy") -> Target:
    return Target(name=name, kind="cpu", tvm={"kind": "llvm"})


def make_intrinsic(name: str = "toy-dot", target: str = "toy", b_index: str = "k") -> Intrinsic:
    return Intrinsic(
        name=name,
        target=target,
        compute=IntrinsicCompute(
            iter_vars=[IterVar(name="i", extent=4, kind="spatial"),
                       IterVar(name="k", extent=2, kind="reduce")],
            operands=[
                Operand(name="A", role="input", dtype="float32", indices=["i", "k"]),
                Operand(name="B", role="input", dtype="float32", indices=[b_index]),
                Operand(name="C", role="output", dtype="float32", indices=["i"]),
            ],
        ),
    )


class ToyPlugin:
    @hookimpl
    def gta_register_targets(self, register):
        register(make_target())

    @hookimpl
    def gta_register_intrinsics(self, register):
        register(make_intrinsic())


class RaisesInIntrinsics:
    @hookimpl
    def gta_register_targets(self, register):
        register(make_target("half-done"))

    @hookimpl
    def gta_register_intrinsics(self, register):
        raise RuntimeError("driver library missing")


class MalformedIntrinsic:
    @hookimpl
    def gta_register_intrinsics(self, register):
        # model_construct skips validation; the core must validate anyway.
        bad = make_intrinsic().compute.model_copy(update={"iter_vars": []})
        register(make_intrinsic().model_copy(update={"name": "bad-dot", "compute": bad}))


class DictTarget:
    @hookimpl
    def gta_register_targets(self, register):
        register({"name": "from-dict", "kind": "gpu", "tvm": {"kind": "cuda"}})


def test_builtins_load_without_installed_plugins():
    registry = load(environ=NO_INSTALLED)
    assert {"gemm", "conv2d", "depthwise_conv2d"} <= set(registry.operators)
    assert "xgb" in registry.cost_models
    assert registry.targets == {}
    assert registry.failures == []
    assert all(info.builtin for info in registry.plugins.values())


def test_installed_plugins_are_found_through_entry_points():
    registry = load(environ={})
    assert {"gta-avx512", "gta-cuda-tc", "gta-rules"} <= set(registry.plugins)
    assert registry.plugins["gta-avx512"].version == "0.1.0"
    assert {"avx512", "cuda-tc"} <= set(registry.targets)
    assert {"vnni", "bf16", "fma"} <= {i.name for i in registry.intrinsics_for("avx512")}
    assert "packing-at-tile" in registry.rules
    assert "parallel-balance" in registry.constraints


def test_gta_plugins_limits_which_installed_plugins_load():
    registry = load(environ={"GTA_PLUGINS": "gta-avx512"})
    assert set(registry.targets) == {"avx512"}
    assert "gta-rules" not in registry.plugins
    assert "gemm" in registry.operators  # built-ins always load


def test_gta_plugins_naming_an_uninstalled_plugin_is_reported():
    registry = load(environ={"GTA_PLUGINS": "gta-avx512,gta-nonexistent"})
    assert "avx512" in registry.targets
    [failure] = registry.failures
    assert failure.plugin == "gta-nonexistent" and "not installed" in failure.cause


def test_a_plugin_registered_in_a_fixture_adds_its_objects():
    registry = load(environ=NO_INSTALLED, extra=[("toy", ToyPlugin())])
    assert registry.target("toy").tvm == {"kind": "llvm"}
    assert [i.name for i in registry.intrinsics_for("toy")] == ["toy-dot"]
    assert registry.plugins["toy"].registered == {"targets": ["toy"], "intrinsics": ["toy-dot"]}


def test_a_dict_that_validates_is_accepted_as_a_model():
    registry = load(environ=NO_INSTALLED, extra=[("dicts", DictTarget())])
    assert registry.target("from-dict").kind == "gpu"


def test_a_plugin_that_raises_is_skipped_whole_and_others_keep_working():
    registry = load(environ=NO_INSTALLED,
                    extra=[("broken", RaisesInIntrinsics()), ("toy", ToyPlugin())])
    [failure] = registry.failures
    assert failure.plugin == "broken"
    assert failure.stage == "gta_register_intrinsics"
    assert "RuntimeError: driver library missing" in failure.cause
    assert "half-done" not in registry.targets  # what it registered before failing is dropped
    assert "broken" not in registry.plugins
    assert "toy" in registry.targets


def test_a_malformed_object_is_reported_with_the_plugin_and_cause():
    registry = load(environ=NO_INSTALLED, extra=[("sloppy", MalformedIntrinsic())])
    [failure] = registry.failures
    assert failure.plugin == "sloppy"
    assert "malformed Intrinsic" in failure.cause and "iter_vars" in failure.cause
    assert "bad-dot" not in registry.intrinsics


def test_a_non_model_object_is_rejected():
    class WrongType:
        @hookimpl
        def gta_register_rules(self, register):
            register("not a rule")

    registry = load(environ=NO_INSTALLED, extra=[("wrong", WrongType())])
    [failure] = registry.failures
    assert "expected a GenerationRule instance" in failure.cause


def test_a_duplicate_name_fails_the_later_plugin():
    registry = load(environ=NO_INSTALLED, extra=[("first", ToyPlugin()), ("second", ToyPlugin())])
    assert "first" in registry.plugins and "second" not in registry.plugins
    [failure] = registry.failures
    assert failure.plugin == "second" and "already registered by first" in failure.cause


def test_a_misspelt_hook_is_reported_not_ignored():
    class Typo:
        @hookimpl
        def gta_register_target(self, register):
            register(make_target())

    registry = load(environ=NO_INSTALLED, extra=[("typo", Typo())])
    [failure] = registry.failures
    assert failure.plugin == "typo" and "is not a GTA hook" in failure.cause


def test_a_hook_raising_at_run_time_is_isolated(capsys):
    class Proposes:
        @hookimpl
        def gta_mapping_veto(self, candidate):
            return f"vetoed {candidate}"

    class Crashes:
        @hookimpl
        def gta_mapping_veto(self, candidate):
            raise ZeroDivisionError("division by zero")

    registry = load(environ=NO_INSTALLED, extra=[("proposes", Proposes()), ("crashes", Crashes())])
    arguments = {"candidate": "c1", "workload": None, "intrinsic": None, "target": None}
    results = registry.call_each("gta_mapping_veto", **arguments)
    assert results == [("proposes", "vetoed c1")]
    registry.call_each("gta_mapping_veto", **arguments)  # the same failure is reported once
    # (The core's own veto, given no workload here, fails too; only the plugin's is looked at.)
    [failure] = [f for f in registry.failures if f.plugin == "crashes"]
    assert failure.plugin == "crashes" and failure.stage == "gta_mapping_veto"
    assert capsys.readouterr().err.count("plugin crashes failed") == 1


def test_a_pip_installed_plugin_is_found_and_a_broken_one_reported(tmp_path: Path):
    """Real distributions installed with pip: one adds a target, one fails to import."""
    for dist, module, body in (
        ("gta-acme", "gta_acme", textwrap.dedent('''
            from gta_core.hookspecs import hookimpl
            @hookimpl
            def gta_register_targets(register):
                register({"name": "acme", "kind": "cpu", "tvm": {"kind": "llvm"}})
            ''')),
        ("gta-broken", "gta_broken", "import a_module_that_does_not_exist\n"),
    ):
        source = tmp_path / dist
        (source / module).mkdir(parents=True)
        (source / module / "__init__.py").write_text(body)
        (source / "pyproject.toml").write_text(textwrap.dedent(f'''
            [build-system]
            requires = ["setuptools>=64"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "{dist}"
            version = "1.2.3"
            [project.entry-points.gta]
            {module} = "{module}"
            '''))
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--target", str(tmp_path / "site"), str(source)],
                       check=True, capture_output=True)
    gta = [sys.executable, "-m", "gta_core.cli", "plugins", "--json"]
    with_site = subprocess.run(gta, capture_output=True, text=True, check=True,
                               env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin"})
    report = json.loads(with_site.stdout)
    acme = next(p for p in report["plugins"] if p["name"] == "gta-acme")
    assert acme["version"] == "1.2.3" and acme["targets"][0]["name"] == "acme"
    [broken] = [f for f in report["failures"] if f["plugin"] == "gta-broken"]
    assert broken["stage"] == "import" and "a_module_that_does_not_exist" in broken["cause"]
    assert "gta-avx512" in {p["name"] for p in report["plugins"]}  # the others still load

    without = subprocess.run(gta, capture_output=True, text=True, check=True)
    assert "gta-acme" not in without.stdout  # not installed there: not loaded


@pytest.mark.parametrize("module", ["gta_avx512.plugin", "gta_cuda_tc.plugin", "gta_rules.plugin"])
def test_shipped_plugins_pass_the_conformance_kit(module):
    import importlib

    from gta_core.conformance import check_plugin

    plugin = importlib.import_module(module)
    registry = check_plugin(plugin, name=module)
    assert registry.plugins[module].registered
