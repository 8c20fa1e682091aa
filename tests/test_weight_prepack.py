"""Constant weights are re-laid once at compile time: which packing stages qualify, and a
Relax module whose packing runs on the constant before it is built."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.s_tir import Schedule
from tvm.script import tirx as T

from gta_core.weight_prepack import (
    call_tirs,
    constant_arguments,
    mark_weight_packing,
    prepack_passes,
)


@T.prim_func(s_tir=True)
def packed_gemm(A: T.Buffer((16, 32), "float32"), W: T.Buffer((32, 16), "float32"),
                C: T.Buffer((16, 16), "float32")):
    Wt = T.sblock_alloc_buffer((16, 32), "float32")
    for n, k in T.grid(16, 32):
        with T.sblock("pack"):
            vn, vk = T.axis.remap("SS", [n, k])
            Wt[vn, vk] = W[vk, vn]
    for m, n, k in T.grid(16, 16, 32):
        with T.sblock("gemm"):
            vm, vn, vk = T.axis.remap("SSR", [m, n, k])
            with T.init():
                C[vm, vn] = T.float32(0)
            C[vm, vn] = C[vm, vn] + A[vm, vk] * Wt[vn, vk]


@T.prim_func(s_tir=True)
def transposed_padded_gemm(A: T.Buffer((16, 32), "float32"), W: T.Buffer((32, 12), "float32"),
                           C: T.Buffer((16, 16), "float32")):
    # A transpose, then a padding copy of its result (12 -> 16 columns): the chain a GEMM's
    # weight takes when the mapping needs both.
    Wt = T.sblock_alloc_buffer((12, 32), "float32")
    Wp = T.sblock_alloc_buffer((16, 32), "float32")
    for n, k in T.grid(12, 32):
        with T.sblock("transpose"):
            vn, vk = T.axis.remap("SS", [n, k])
            Wt[vn, vk] = W[vk, vn]
    for n, k in T.grid(16, 32):
        with T.sblock("pad"):
            vn, vk = T.axis.remap("SS", [n, k])
            Wp[vn, vk] = T.if_then_else(vn < 12, Wt[vn, vk], T.float32(0))
    for m, n, k in T.grid(16, 16, 32):
        with T.sblock("gemm"):
            vm, vn, vk = T.axis.remap("SSR", [m, n, k])
            with T.init():
                C[vm, vn] = T.float32(0)
            C[vm, vn] = C[vm, vn] + A[vm, vk] * Wp[vn, vk]


def test_a_top_level_packing_stage_of_a_constant_is_marked():
    _, marked = mark_weight_packing(packed_gemm, {1})
    assert marked == ["pack"]


def test_a_chain_of_packing_stages_becomes_one_marked_stage():
    func, marked = mark_weight_packing(transposed_padded_gemm, {1})
    assert marked == ["pad"]  # the transpose was inlined into it
    sch = Schedule(func)
    assert [r.source.name for r in sch.get(sch.get_sblock("pad")).reads] == ["W"]


def test_stages_of_inputs_that_vary_or_inside_the_compute_loops_stay():
    assert mark_weight_packing(packed_gemm, {0})[1] == []  # A is not a constant
    sch = Schedule(packed_gemm)
    sch.compute_at(sch.get_sblock("pack"), sch.get_loops(sch.get_sblock("gemm"))[1])
    assert mark_weight_packing(sch.mod["main"], {1})[1] == []


@pytest.fixture(params=[(packed_gemm, (32, 16)), (transposed_padded_gemm, (32, 12))],
                ids=["one-stage", "chain"])
def module(request):
    """main(a) = gemm(a, W) with W a constant, W packed by one stage or by a chain of two."""
    func, shape = request.param
    weight = np.random.default_rng(0).standard_normal(shape).astype("float32")
    builder = relax.BlockBuilder()
    a = relax.Var("a", relax.TensorType((16, 32), "float32"))
    with builder.function("main", [a]):
        with builder.dataflow():
            gv = builder.add_func(func.with_attr("global_symbol", "gemm"), "gemm")
            out = builder.emit_output(relax.call_tir(
                gv, (a, relax.const(weight)), relax.TensorType((16, 16), "float32")))
        builder.emit_func_output(out)
    return builder.get(), weight


def test_marked_packing_runs_on_the_constant_while_compiling(module):
    mod, weight = module
    assert constant_arguments(mod) == {"gemm": {1}}
    marked, _ = mark_weight_packing(mod["gemm"], {1})
    mod.update_func(mod.get_global_var("gemm"), marked)
    folded = tvm.transform.Sequential(prepack_passes())(mod)
    called = [call.args[0].name_hint for call in call_tirs(folded["main"])]
    assert called == ["gemm_prepacked"]  # the packing call was folded away
    executable = tvm.compile(folded, target="llvm")
    vm = relax.VirtualMachine(executable, tvm.cpu())
    a = np.random.default_rng(1).standard_normal((16, 32)).astype("float32")
    got = vm["main"](tvm.runtime.tensor(a)).numpy()
    expected = np.zeros((16, 16), "float32")
    expected[:, :weight.shape[1]] = a @ weight  # the padded columns are zero
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@T.prim_func(s_tir=True)
def two_packed_weights(A: T.Buffer((16, 32), "float32"), W: T.Buffer((32, 16), "float32"),
                       V: T.Buffer((16, 16), "float32"), C: T.Buffer((16, 16), "float32")):
    Wt = T.sblock_alloc_buffer((16, 32), "float32")
    Vt = T.sblock_alloc_buffer((16, 16), "float32")
    for n, k in T.grid(16, 32):
        with T.sblock("pack_w"):
            vn, vk = T.axis.remap("SS", [n, k])
            Wt[vn, vk] = W[vk, vn]
    for m, n in T.grid(16, 16):
        with T.sblock("pack_v"):
            vm, vn = T.axis.remap("SS", [m, n])
            Vt[vm, vn] = V[vn, vm] * T.float32(2)
    for m, n, k in T.grid(16, 16, 32):
        with T.sblock("gemm"):
            vm, vn, vk = T.axis.remap("SSR", [m, n, k])
            with T.init():
                C[vm, vn] = Vt[vm, vn]
            C[vm, vn] = C[vm, vn] + A[vm, vk] * Wt[vn, vk]


@pytest.mark.parametrize("func, constant", [
    (packed_gemm, {1}), (transposed_padded_gemm, {1}), (two_packed_weights, {1, 2}),
    (two_packed_weights, {2})], ids=["one-stage", "chain", "two-weights", "second-only"])
def test_a_split_program_computes_what_the_whole_one_does_with_its_packing_moved_out(
        func, constant):
    """What tuning times for a model's function: the compute alone, on weights the prepack
    function laid out (as the compiled model runs it); same output as the whole function."""
    from gta_core.plugins import default_registry
    from gta_core.weight_prepack import split_weight_packing

    target = default_registry().target("avx512")
    split = split_weight_packing(func, constant)
    assert split.prepack is not None
    compute_blocks = {b.name_hint for b in _blocks(split.compute)}
    assert not compute_blocks & {"pack", "pad", "transpose", "pack_w", "pack_v"} - (
        {"pack_w"} if constant == {2} else set())
    rng = np.random.default_rng(0)
    inputs = [tvm.runtime.tensor(rng.standard_normal([int(d) for d in p.shape]).astype(
        "float32")) for p in func.params[:-1]]
    shape = [int(d) for d in func.params[-1].shape]
    whole, alone = (tvm.runtime.tensor(np.full(shape, np.nan, "float32")) for _ in range(2))
    tvm.compile(tvm.IRModule({"main": func}), target="llvm")(*inputs, whole)
    tvm.compile(split.module(), target="llvm")(*split.arguments(inputs, target), alone)
    np.testing.assert_allclose(alone.numpy(), whole.numpy(), rtol=1e-5)


def test_a_program_with_nothing_to_lay_out_is_kept_whole():
    from gta_core.weight_prepack import split_weight_packing

    split = split_weight_packing(packed_gemm, {0})
    assert split.prepack is None and split.compute.same_as(packed_gemm)


def _blocks(func) -> list:
    sch = Schedule(func)
    return [sch.get(b) for b in sch.get_child_blocks(sch.get_sblock("root"))]
