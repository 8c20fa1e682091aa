"""A function no intrinsic takes that is a chain of injective blocks (an 8-bit stem's input
quantized, padded and laid out in words of channels) gets one more candidate beside
MetaSchedule's generic sketches: the chain inlined into the block writing the output, its
outer loops on the cores, a short innermost loop unrolled (a long one vectorised)."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import te, topi

from gta_core.scheduler.injective import InjectiveSpace, chain_program
from gta_core.scheduler.space import model_generic_space

HOST = {"kind": "llvm", "num-cores": 2}  # plain x86-64: runs on any CPU


def input_words(height: int = 10, width: int = 12) -> tvm.IRModule:
    """float NCHW (3 channels) -> quantized u8 -> padded by 1 -> NCHW4c, the 4th lane 0
    (also tuned end to end in test_example_avx2.py)."""
    x = te.placeholder((1, 3, height, width), "float32", name="x")
    q = te.compute(x.shape, lambda *i: te.min(te.max(te.round(x(*i) * 20.0) + 128.0, 0.0),
                                              255.0).astype("uint8"), name="q")
    p = topi.nn.pad(q, [0, 0, 1, 1], [0, 0, 1, 1], pad_value=128, name="p")
    words = te.compute((1, 1, height + 2, width + 2, 4), lambda n, c, h, w, lane: te.if_then_else(
        lane < 3, p[n, c * 4 + lane, h, w], tvm.tirx.const(0, "uint8")), name="words")
    return tvm.IRModule({"main": te.create_prim_func([x, words])})


def _elementwise(length: int = 1000) -> tvm.IRModule:
    a = te.placeholder((4, length), "float32", name="a")
    b = te.compute(a.shape, lambda i, j: a[i, j] * 2.0, name="b")
    c = te.compute(a.shape, lambda i, j: b[i, j] + 1.0, name="c")
    return tvm.IRModule({"main": te.create_prim_func([a, c])})


def _run(mod, inputs, out_shape, out_dtype):
    out = tvm.runtime.tensor(np.full(out_shape, 77, out_dtype))  # garbage first
    tvm.compile(mod, target=HOST)["main"](*(tvm.runtime.tensor(x) for x in inputs), out)
    return out.numpy()


def _loops(sch) -> dict[str, int]:
    """kind -> how many loops of that kind are around the block writing the output."""
    [last] = sch.get_child_blocks(sch.get_sblock("root"))
    kinds: dict[str, int] = {}
    for loop in sch.get_loops(last):
        name = tvm.tirx.ForKind(int(sch.get(loop).kind)).name.lower()
        kinds[name] = kinds.get(name, 0) + 1
    return kinds


@pytest.mark.parametrize("serial", [0, 1])
def test_the_input_words_are_one_parallel_pass_that_computes_what_the_chain_does(serial):
    mod = input_words()
    sch = chain_program(mod, serial)
    assert sch is not None
    root = sch.get_sblock("root")
    assert [sch.get(b).name_hint for b in sch.get_child_blocks(root)] == ["words"]
    kinds = _loops(sch)
    assert kinds.get("parallel") == 1 and kinds.get("unrolled") == 1  # the word's 4 lanes
    x = np.random.default_rng(0).uniform(-8, 8, (1, 3, 10, 12)).astype("float32")
    want = _run(mod, [x], (1, 1, 12, 14, 4), "uint8")
    assert np.array_equal(_run(sch.mod, [x], (1, 1, 12, 14, 4), "uint8"), want)
    assert (want[..., 3] == 0).all() and (want[:, :, 0, :, :3] == 128).all()  # lane, pad


@pytest.mark.parametrize("length, vectors", [(1024, 1), (1000, 0)])
def test_a_long_innermost_loop_is_vectorised_in_runs_that_divide_it(length, vectors):
    sch = chain_program(_elementwise(length))
    kinds = _loops(sch)
    assert kinds.get("vectorized", 0) == vectors and kinds.get("parallel") == 1
    if vectors:
        [last] = sch.get_child_blocks(sch.get_sblock("root"))
        assert int(sch.get(sch.get_loops(last)[-1]).extent) == 16  # not 1024 lanes
    a = np.random.default_rng(1).standard_normal((4, length)).astype("float32")
    np.testing.assert_array_equal(_run(sch.mod, [a], (4, length), "float32"), a * 2 + 1)


def test_a_reduction_is_not_a_chain():
    a = te.placeholder((8, 64), "float32", name="a")
    k = te.reduce_axis((0, 64), name="k")
    total = te.compute((8,), lambda i: te.sum(a[i, k], axis=k), name="total")
    mean = te.compute((8,), lambda i: total[i] / 64, name="mean")
    mod = tvm.IRModule({"main": te.create_prim_func([a, mean])})
    assert chain_program(mod) is None
    assert InjectiveSpace().generate_design_space(mod) == []


def test_the_model_space_offers_the_chain_beside_the_generic_sketches():
    mod = input_words()
    spaces = InjectiveSpace().generate_design_space(mod)
    assert len(spaces) == 2  # all outer loops on the cores; the last of them kept serial
    assert len(InjectiveSpace().generate_design_space(_elementwise())) == 1  # one outer loop
    assert isinstance(model_generic_space(), tvm.s_tir.meta_schedule.space_generator
                      .SpaceGeneratorUnion)
