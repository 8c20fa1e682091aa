"""``gta peak`` for a target whose plugin ships no peak kernel: the core's generic kernel,
built from the intrinsic's declaration and its TVM implementation, checked before it is timed.
Runs where the AVX2 example target runs (x86-64 with AVX2 and FMA)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from gta_core.models import PeakMeasurement, PeakSkipped
from gta_core.plugins import load

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "gta_avx2"
WRONG = "gta_test_fma_8_forgets_its_accumulator"


def _load(*more):
    """A registry with the AVX2 example (and ``more`` plugins), not installed."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        plugin = importlib.import_module("gta_avx2.plugin")
        importlib.import_module("gta_avx2.tvm_intrinsics")
        return load(environ={"GTA_PLUGINS": ""}, extra=[("gta-avx2", plugin), *more])
    finally:
        sys.path.remove(str(EXAMPLE))


@pytest.fixture(scope="module")
def registry():
    return _load()


def test_gta_peak_measures_every_intrinsic_of_a_target_without_a_peak_kernel(registry):
    from gta_core.api import peak

    report = peak("avx2", registry=registry)
    assert [row.intrinsic for row in report.peaks] == [
        i.name for i in registry.intrinsics_for("avx2")]
    for row in report.peaks:
        assert row.measurement is not None, (row.intrinsic, row.skipped)
        assert "generic kernel" in row.measurement.method
        assert row.measurement.gops > 1 and row.measurement.cores == \
            registry.target("avx2").resources.cores


def test_the_kernel_keeps_its_accumulators_in_registers(registry):
    """A register tile: the hot loop multiplies into ymm registers, stores nothing."""
    from gta_core.measure.check import build
    from gta_core.measure.generic_peak import _kernel

    intrinsic = next(i for i in registry.intrinsics_for("avx2") if i.name == "avx2-fma")
    program, name = _kernel(intrinsic, 2, 2, 4)
    assert name == intrinsic.tvm_intrinsics["compute"]
    asm = build(program, registry.target("avx2")).mod.inspect_source("asm")
    # each labelled block up to its first jump: the hot loop is the one with the most FMAs
    blocks = [block.split("\tj", 1)[0] for block in asm.split(".LBB")]
    hot = max(blocks, key=lambda block: block.count("vfmadd231ps"))
    assert hot.count("vfmadd231ps") >= 8, hot  # 2 x 4 accumulators per step
    assert "(%rsp)" not in hot and "vmovaps\t%ymm" not in hot, hot  # no spill, no store


def test_a_wrong_implementation_is_refused_before_it_is_timed(registry):
    from gta_core.measure.generic_peak import measure_generic_peak

    fma = next(i for i in registry.intrinsics_for("avx2") if i.name == "avx2-fma")
    _register_wrong_fma()
    wrong = fma.model_copy(update={"name": "avx2-fma-wrong",
                                   "tvm_intrinsics": {"compute": WRONG}})
    with pytest.raises(RuntimeError, match="computed a wrong output"):
        measure_generic_peak(wrong, registry.target("avx2"), repeats=1, target_seconds=0.01)


def test_a_declaration_it_cannot_tile_is_skipped_with_the_reason(registry):
    from gta_core.measure.generic_peak import measure_generic_peak

    fma = next(i for i in registry.intrinsics_for("avx2") if i.name == "avx2-fma")
    operands = list(fma.compute.operands)
    three = fma.model_copy(update={"compute": fma.compute.model_copy(
        update={"operands": [*operands[:2], operands[1].model_copy(update={"name": "D"}),
                             operands[2]]})})
    skipped = measure_generic_peak(three, registry.target("avx2"))
    assert isinstance(skipped, PeakSkipped) and "two inputs" in skipped.reason
    # a name TVM does not know: a reason, not a crash
    unknown = fma.model_copy(update={"tvm_intrinsics": {"compute": "gta_test_no_such"}})
    skipped = measure_generic_peak(unknown, registry.target("avx2"))
    assert isinstance(skipped, PeakSkipped) and "could not be tiled" in skipped.reason


def test_a_plugins_own_measurement_wins_over_the_generic_kernel(registry):
    from gta_core.api import peak
    from gta_core.hookspecs import hookimpl

    class OwnKernel:
        @hookimpl
        def gta_intrinsic_peak(self, intrinsic, target):
            if intrinsic.name != "avx2-fma":
                return None
            return PeakMeasurement(intrinsic=intrinsic.name, target=target.name, gops=123.0,
                                   cores=1, repeats=1, spread=0.0, method="its own kernel")

    rows = {row.intrinsic: row
            for row in peak("avx2", registry=_load(("own-kernel", OwnKernel()))).peaks}
    assert rows["avx2-fma"].measurement.method == "its own kernel"
    assert "generic kernel" in rows["avx2-madd-u8s8"].measurement.method


def _register_wrong_fma() -> None:
    """``C = A * B`` for a desc of ``C += A * B``: tensorize accepts it, the output is wrong."""
    from gta_avx2.tvm_intrinsics import fma_8_desc
    from tvm.s_tir import TensorIntrin
    from tvm.script import tirx as T

    @T.prim_func(s_tir=True)
    def forgets(A: T.Buffer((1,), "float32", offset_factor=1),
                B: T.Buffer((8,), "float32", offset_factor=1, strides=[1]),
                C: T.Buffer((8,), "float32", offset_factor=1, strides=[1])) -> None:
        with T.sblock("root"):
            T.reads(C[0:8], A[0:1], B[0:8])
            T.writes(C[0:8])
            C[T.Ramp(0, 1, 8)] = T.Broadcast(A[0], 8) * B[T.Ramp(0, 1, 8)]

    TensorIntrin.register(WRONG, fma_8_desc, forgets, override=True)


def test_the_tiles_hide_the_declared_latency_within_the_registers(registry):
    from gta_core.measure.generic_peak import tiles

    avx2 = registry.target("avx2")
    # 4-cycle latency x 2 a cycle: at least 8 accumulators; 16 registers hold 2x4, 4x3, 6x2
    assert tiles(avx2) == [(2, 4), (4, 3), (6, 2)]

    def with_resources(**resources):
        return tiles(avx2.model_copy(update={
            "resources": avx2.resources.model_copy(update=resources)}))

    assert with_resources(vector_registers=32) == [(4, 4), (6, 3), (8, 2)]
    # 12 chains: 2x4 would not hide the latency
    assert with_resources(vector_latency_cycles=6) == [(4, 3), (6, 2)]
    assert with_resources(vector_latency_cycles=1, vector_issue_per_cycle=1) == [
        (1, 4), (1, 3), (1, 2)]
