"""A prepacked weight is laid out tile by tile where the parallel loop tiles it, and the
program computes the same."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm.script import tirx as T

from gta_core.weight_prepack import split_weight_packing


@T.prim_func(s_tir=True)
def gemv_by_column_tiles(A: T.Buffer((1, 64), "float32"), W: T.Buffer((64, 64), "float32"),
                         C: T.Buffer((1, 64), "float32")):
    # A GEMV as GTA generates it: the weight packed to (K, N/16, 16), each of the 2 parallel
    # tiles reading 2 column blocks of it through an intrinsic's match_buffer.
    Wp = T.sblock_alloc_buffer((64, 4, 16))
    for k, nb, lane in T.grid(64, 4, 16):
        with T.sblock("pack"):
            vk, vnb, vl = T.axis.remap("SSS", [k, nb, lane])
            Wp[vk, vnb, vl] = W[vk, vnb * 16 + vl]
    for nb, lane in T.grid(4, 16):
        with T.sblock("init"):
            vnb, vl = T.axis.remap("SS", [nb, lane])
            C[0, vnb * 16 + vl] = T.float32(0)
    for p in T.parallel(2):
        for k, n1 in T.grid(64, 2):
            with T.sblock("gemv_o"):
                vnb = T.axis.spatial(4, p * 2 + n1)
                vk = T.axis.reduce(64, k)
                T.reads(C[0, vnb * 16:vnb * 16 + 16], A[0, vk], Wp[vk, vnb, 0:16])
                T.writes(C[0, vnb * 16:vnb * 16 + 16])
                B = T.match_buffer(Wp[vk, vnb, 0:16], (16,), strides=(1,), offset_factor=1)
                Out = T.match_buffer(C[0, vnb * 16:vnb * 16 + 16], (16,), strides=(1,),
                                     offset_factor=1)
                for lane in range(16):
                    Out[lane] = Out[lane] + A[0, vk] * B[lane]


@T.prim_func(s_tir=True)
def gemm_by_row_tiles(A: T.Buffer((4, 64), "float32"), W: T.Buffer((64, 64), "float32"),
                      C: T.Buffer((4, 64), "float32")):
    # The parallel loop runs over rows: every tile reads all of the weight.
    Wp = T.sblock_alloc_buffer((64, 4, 16))
    for k, nb, lane in T.grid(64, 4, 16):
        with T.sblock("pack"):
            vk, vnb, vl = T.axis.remap("SSS", [k, nb, lane])
            Wp[vk, vnb, vl] = W[vk, vnb * 16 + vl]
    for m in T.parallel(4):
        for nb, k, lane in T.grid(4, 64, 16):
            with T.sblock("gemm"):
                vm, vnb, vk, vl = T.axis.remap("SSRS", [m, nb, k, lane])
                with T.init():
                    C[vm, vnb * 16 + vl] = T.float32(0)
                C[vm, vnb * 16 + vl] = C[vm, vnb * 16 + vl] + A[vm, vk] * Wp[vk, vnb, vl]


def _run(func, split, rng) -> tuple[np.ndarray, np.ndarray]:
    from gta_core.plugins import default_registry

    target = default_registry().target("avx512")
    a = rng.standard_normal([int(d) for d in func.params[0].ty.shape]).astype("float32")
    w = rng.standard_normal((64, 64)).astype("float32")
    out = tvm.runtime.tensor(np.full((a.shape[0], 64), np.nan, "float32"))
    inputs = [tvm.runtime.tensor(a), tvm.runtime.tensor(w)]
    tvm.compile(split.module(), target="llvm")(*split.arguments(inputs, target), out)
    return out.numpy(), a @ w


def _packed_shape(split) -> tuple[int, ...]:
    return tuple(int(d) for d in split.prepack.params[-1].ty.shape)


def test_column_tiles_of_a_packed_weight_are_laid_out_one_after_another():
    split = split_weight_packing(gemv_by_column_tiles, {1})
    # (K, N/16, 16) -> (tiles, K, column blocks per tile, 16)
    assert _packed_shape(split) == (2, 64, 2, 16)
    got, expected = _run(gemv_by_column_tiles, split, np.random.default_rng(0))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_a_weight_every_tile_reads_whole_keeps_its_layout():
    split = split_weight_packing(gemm_by_row_tiles, {1})
    assert _packed_shape(split) == (64, 4, 16)
    got, expected = _run(gemm_by_row_tiles, split, np.random.default_rng(1))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("func", [gemv_by_column_tiles, gemm_by_row_tiles],
                         ids=["column-tiles", "row-tiles"])
def test_a_weight_that_is_not_constant_is_neither_packed_ahead_nor_laid_out(func):
    split = split_weight_packing(func, {0})
    assert split.prepack is None and split.compute.same_as(func)
