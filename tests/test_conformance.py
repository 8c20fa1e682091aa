"""`gta check-plugin` and the conformance kit: what they catch, on real plugins."""

from __future__ import annotations

import json
import types

import pytest

from gta_core.cli import main
from gta_core.conformance import ConformanceError, check_plugin, conformance_report
from gta_core.plugins import default_registry
from gta_core.sdk import Constraint, hookimpl


def _module(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook, function in hooks.items():
        setattr(module, hook, hookimpl(function))
    return module


def _vnni_declared_with(reduce_extent: int):
    vnni = default_registry().intrinsics["vnni"]
    compute = vnni.compute.model_copy(update={"iter_vars": [
        v.model_copy(update={"extent": reduce_extent}) if v.kind == "reduce" else v
        for v in vnni.compute.iter_vars]})
    return vnni.model_copy(update={"name": "vnni-copy", "compute": compute})


@pytest.mark.parametrize("extent, status", [(4, "passed"), (8, "failed")])
def test_a_declared_compute_is_compared_with_its_tvm_description(extent, status):
    intrinsic = _vnni_declared_with(extent)
    plugin = _module("copy", gta_register_intrinsics=lambda register: register(intrinsic))
    _, report = conformance_report(plugin, "copy", with_installed=True, run_programs=False)
    [result] = [r for r in report.results if r.check == "intrinsic vnni-copy: compute"]
    assert result.status == status
    if status == "failed":
        assert "k<8" in result.detail and "gta_avx512_vnni_16x4" in result.detail


class RaisingConstraint(Constraint):
    """Raises on every schedule it checks."""

    name = "raising-constraint"

    def applies(self, target) -> bool:
        return target.kind == "cpu"

    def check(self, context):
        raise KeyError("no such loop")


def test_a_constraint_that_raises_on_real_design_spaces_does_not_conform(monkeypatch):
    monkeypatch.setenv("GTA_PLUGINS", "gta-avx512")  # its design spaces suffice
    plugin = _module("raising", gta_register_constraints=lambda register: register(
        RaisingConstraint()))
    with pytest.raises(ConformanceError, match="raising-constraint: on design spaces: raised "
                                               "KeyError"):
        check_plugin(plugin, name="raising", with_installed=True)


def test_check_plugin_runs_an_installed_plugin_and_answers_json(capsys):
    assert main(["check-plugin", "gta-rules", "--quick", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["plugin"] == "gta-rules" and report["api_version"] == "1.0"
    assert {r["check"] for r in report["results"]} == {"load", "hooks"}
    assert all(r["status"] == "passed" for r in report["results"])


def test_check_plugin_names_the_installed_ones_for_an_unknown_name(capsys):
    assert main(["check-plugin", "gta-nope"]) == 2
    err = capsys.readouterr().err
    assert "gta-nope" in err and "gta-avx512" in err
