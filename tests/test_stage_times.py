"""`bench/stage_times.py`: a program's stages found, emptied one at a time, and timed."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm.script import tirx as T

from gta_core.bench.stage_times import stage_blocks, stage_breakdown, without_stage
from gta_core.plugins import default_registry

N = 1024  # the packing stage copies N x N floats; the main block reads a 16 x 16 corner


@T.prim_func(s_tir=True)
def packed_matmul(a: T.Buffer((N, N), "float32"), b: T.Buffer((16, 16), "float32"),
                  c: T.Buffer((16, 16), "float32")):
    a_global = T.sblock_alloc_buffer((N, N))
    for i, j in T.grid(N, N):
        with T.sblock("a_global"):
            vi, vj = T.axis.remap("SS", [i, j])
            a_global[vi, vj] = a[vi, vj] * T.float32(2)
    for i, j, k in T.grid(16, 16, 16):
        with T.sblock("matmul"):
            vi, vj, vk = T.axis.remap("SSR", [i, j, k])
            with T.init():
                c[vi, vj] = T.float32(0)
            c[vi, vj] = c[vi, vj] + a_global[vi, vk] * b[vk, vj]


def test_the_stages_are_the_blocks_beside_the_reduction():
    assert [b.name_hint for b in stage_blocks(packed_matmul)] == ["a_global"]


def test_an_emptied_stage_hands_its_buffers_to_the_caller():
    variant, lifted = without_stage(packed_matmul, "a_global")
    assert [b.name for b in lifted] == ["a_global"]
    assert len(variant.params) == len(packed_matmul.params) + 1
    assert "a[" not in variant.script()  # the copy is gone; the matmul reads the argument
    assert "a_global[" in variant.script()


@pytest.mark.runs("avx512")
def test_a_stage_that_moves_megabytes_takes_most_of_a_tiny_reduction():
    target = default_registry().target("avx512")
    device = tvm.cpu()
    rng = np.random.default_rng(0)
    args = [tvm.runtime.tensor(rng.standard_normal(shape).astype("float32"), device)
            for shape in ((N, N), (16, 16), (16, 16))]
    breakdown = stage_breakdown(packed_matmul, target, args, repeats=5)
    [stage] = breakdown.stages
    assert stage.block == "a_global" and stage.role == "packing" and stage.note is None
    # 4 MB copied against 4096 multiply-adds: the copy is nearly all of it
    assert stage.us > 0.5 * breakdown.program_us > 0
    assert breakdown.compute_us == pytest.approx(breakdown.program_us - stage.us)
