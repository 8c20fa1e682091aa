"""A quantized model's requantizing arithmetic made cheaper keeps every value: the exact
quotient is numpy's float32 division, and a model computes the same outputs with and
without the rewrite."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import te

from gta_core.frontends import fuse, load_onnx, model_tasks
from gta_core.frontends import requantize as rq
from gta_core.measure import runnable
from gta_core.model_compile import compile_model, model_inputs, run_model
from gta_core.plugins import default_registry


def _quotients(x: np.ndarray, divisor: float) -> np.ndarray:
    """``x / divisor`` through :func:`exact_quotient`, as the avx512 target builds it."""
    source = te.placeholder(x.shape, "float32", name="x")
    out = te.compute(x.shape, lambda i: rq.exact_quotient(source[i], divisor), name="q")
    func = te.create_prim_func([source, out])
    sch = tvm.s_tir.Schedule(func)
    outer, inner = sch.split(sch.get_loops(sch.get_sblock("q"))[0], [None, 16])
    sch.vectorize(inner)  # the vector FMA, as an epilogue's tile runs it
    module = runnable(sch.mod, default_registry().target("avx512"))
    got = tvm.runtime.tensor(np.full(x.shape, np.nan, "float32"))
    module["main"](tvm.runtime.tensor(x), got)
    return got.numpy()


def test_the_exact_quotient_is_the_correctly_rounded_division_for_every_significand():
    rng = np.random.default_rng(0)
    # Every float32 significand, each with a random sign and exponent over the range the
    # rewrite claims (|x| >= 2^-100), against divisors with every kind of significand:
    # a scale from ResNet-50 int8, a third, all ones, a power of two, random ones.
    bits = np.arange(1 << 23, dtype=np.uint32) | np.uint32(127 << 23)
    x = bits.view(np.float32) * np.ldexp(1.0, rng.integers(-100, 100, bits.size))
    x = (x * rng.choice([-1.0, 1.0], bits.size)).astype(np.float32)
    divisors = [0.0211106538772583, 1 / 3, float(np.float32(2) - np.spacing(np.float32(1))),
                0.5, 2.0 ** -20, 2.0 ** 20, *np.exp2(rng.uniform(-20, 20, 6))]
    for divisor in divisors:
        divisor = float(np.float32(divisor))
        want = x / np.float32(divisor)
        got = _quotients(x, divisor)
        wrong = np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))
        assert wrong.size == 0, (divisor, x[wrong[:3]], got[wrong[:3]], want[wrong[:3]])


def test_the_exact_quotient_rounds_tiny_and_keeps_non_finite_dividends():
    x = np.array([0.0, -0.0, 1e-40, -1e-38, 2.0 ** -101, np.inf, -np.inf, np.nan,
                  np.finfo(np.float32).max, 0.5, 2.5], np.float32)
    for divisor in (2.0 ** -20, 0.0211106538772583, 2.0 ** 20):
        got = _quotients(np.resize(x, 16), divisor)[:x.size]
        want = x / np.float32(divisor)
        assert np.array_equal(np.round(got), np.round(want), equal_nan=True), divisor


@pytest.fixture(scope="module")
def qdq(tmp_path_factory, model_makers):
    where = tmp_path_factory.mktemp("requantize")
    return load_onnx(model_makers.quantized(model_makers.two_blocks(where / "f.onnx"),
                                            where / "q.onnx"))


def test_a_residual_blocks_epilogue_drops_its_round_trip_and_divides_exactly(qdq):
    mod, rewrites = rq.cheaper_requantize(qdq.mod)
    assert rewrites >= 4  # per block: the convolution's u8 round trip and the add's quotient
    tasks = [t for t in model_tasks(fuse(qdq.mod, 16)) if "exact_divide" in t.name]
    residual = [t for t in tasks if "conv2d" in t.name]
    assert residual, [t.name for t in tasks]  # the add stays in the convolution's task
    for task in residual:  # the convolution's u8 output is not cast to float again
        assert 'T.Cast("float32", T.Cast("uint8"' not in task.func.script()


def test_a_model_computes_the_same_outputs_with_and_without_the_rewrite(qdq, tmp_path,
                                                                         monkeypatch):
    inputs = model_inputs(qdq)
    (tmp_path / "db").mkdir()
    rewritten = run_model(compile_model(qdq, "avx512", tmp_path / "db")[0], inputs)
    monkeypatch.setattr(rq, "cheaper_requantize", lambda mod: (mod, 0))
    plain = run_model(compile_model(qdq, "avx512", tmp_path / "db")[0], inputs)
    for a, b in zip(rewritten, plain):
        assert np.array_equal(a, b)


def test_a_round_trip_that_is_a_functions_output_stays_well_formed_and_equal():
    from tvm import relax

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((4, 16), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            value = bb.emit(relax.op.divide(x, relax.const(0.05, "float32")))
            value = bb.emit(relax.op.round(value))
            value = bb.emit(relax.op.add(value, relax.const(3.0, "float32")))
            value = bb.emit(relax.op.maximum(value, relax.const(0.0, "float32")))
            clipped = bb.emit(relax.op.minimum(value, relax.const(255.0, "float32")))
            out = bb.emit_output(relax.op.astype(bb.emit(relax.op.astype(clipped, "uint8")),
                                                 "float32"))
        bb.emit_func_output(out)
    mod = relax.transform.Normalize()(bb.get())
    rewritten, rewrites = rq.cheaper_requantize(mod)
    assert rewrites == 2
    relax.analysis.well_formed(rewritten)  # raises on a violation
    data = np.random.default_rng(0).normal(0, 5, (4, 16)).astype("float32")
    results = []
    for module in (mod, rewritten):
        vm = relax.VirtualMachine(tvm.compile(module, target="llvm"), tvm.cpu())
        results.append(vm["main"](tvm.runtime.tensor(data)).numpy())
    assert np.array_equal(*results)


def _requantized(z: float, add: float | None = None, rounded: bool = True):
    """``(clip(round(x / 0.05) + z, 0, 255) as u8 as float - z') * 0.5``, ``z'`` = ``add``."""
    from tvm import relax

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((4, 16), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            value = bb.emit(relax.op.divide(x, relax.const(0.05, "float32")))
            if rounded:
                value = bb.emit(relax.op.round(value))
            value = bb.emit(relax.op.add(value, relax.const(z, "float32")))
            value = bb.emit(relax.op.maximum(value, relax.const(0.0, "float32")))
            value = bb.emit(relax.op.minimum(value, relax.const(255.0, "float32")))
            if rounded:
                value = bb.emit(relax.op.astype(bb.emit(relax.op.astype(value, "uint8")),
                                                "float32"))
            offset = z if add is None else add
            value = bb.emit(relax.op.subtract(value, relax.const(offset, "float32")))
            out = bb.emit_output(relax.op.multiply(value, relax.const(0.5, "float32")))
        bb.emit_func_output(out)
    return relax.transform.Normalize()(bb.get())


def _outputs(module, data: np.ndarray) -> np.ndarray:
    from tvm import relax

    vm = relax.VirtualMachine(tvm.compile(module, target="llvm"), tvm.cpu())
    return vm["main"](tvm.runtime.tensor(data)).numpy()


def test_a_zero_point_added_before_the_clip_and_taken_off_after_is_folded_into_it():
    rng = np.random.default_rng(1)
    data = np.concatenate([rng.normal(0, 5, 40), rng.normal(0, 1e7, 16),  # r + z inexact
                           [np.inf, -np.inf, np.nan, 0.0, -0.0, 6.35, -6.45, 1e30]]
                          ).astype("float32").reshape(4, 16)
    mod = _requantized(128.0)
    rewritten, rewrites = rq.cheaper_requantize(mod)
    assert rewrites == 3  # the round trip, the quotient and the fold
    script = rewritten.script()
    assert "R.subtract" not in script and "R.add" not in script
    assert np.array_equal(_outputs(mod, data), _outputs(rewritten, data), equal_nan=True)


@pytest.mark.parametrize("add, rounded", [(127.0, True), (128.0, False)])
def test_an_offset_clip_is_kept_where_folding_it_could_change_a_value(add, rounded):
    # another constant taken off; or r not a whole number (r + z rounds: 0.3 + 128 - 128)
    rewritten, _ = rq.cheaper_requantize(_requantized(128.0, add, rounded))
    assert "R.subtract" in rewritten.script()
