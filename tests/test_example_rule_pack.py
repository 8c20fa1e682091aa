"""The third-party rule pack in examples/: exercised on real design spaces, and a tune with it
loaded gives correct programs."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from gta_core.conformance import conformance_report
from gta_core.plugins import load

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "gta_unroll_pack"


@pytest.fixture(scope="module")
def plugin():
    sys.path.insert(0, str(EXAMPLE))
    try:
        yield importlib.import_module("gta_unroll_pack.plugin")
    finally:
        sys.path.remove(str(EXAMPLE))


def test_its_rule_applies_on_the_installed_targets_design_spaces(plugin, monkeypatch):
    monkeypatch.setenv("GTA_PLUGINS", "gta-avx512")
    _, report = conformance_report(plugin, "gta-unroll-pack", with_installed=True)
    assert report.ok, report.problems
    [rule] = [r for r in report.results if r.check.startswith("rule unroll-reduction-tile")]
    assert rule.status == "passed" and "applied in" in rule.detail


def test_a_tune_with_the_pack_is_correct_and_samples_its_unroll_step(plugin, tmp_path):
    from gta_core.database import RecordStore
    from gta_core.tuning import tune

    registry = load(environ={"GTA_PLUGINS": "gta-avx512"},
                    extra=[("gta-unroll-pack", plugin)])
    report = tune(["gemm:M=64,N=64,K=256,dtype=int8"], "avx512", 4, tmp_path / "db",
                  registry=registry)
    assert report.tasks[0].correct and not report.tasks[0].left_out
    traces = [str(r.trace) for r in RecordStore(tmp_path / "db").records()]
    assert any("pragma_auto_unroll_max_step" in t for t in traces)
