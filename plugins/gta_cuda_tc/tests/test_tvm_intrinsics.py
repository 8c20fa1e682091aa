"""Tensorize small hand-scheduled GEMMs with the CUDA tensor-core intrinsics and build them.

No GPU here: each test checks the generated CUDA source and compiles it with
``nvcc -arch=sm_80 -c``; running it against numpy is left to a machine with a CUDA device.
The schedule (`_schedule_gemm`) is the template a generation rule can reuse:

    i -> [i0 blocks, i1 warps, i2 frags, i3 = m]   j -> [j0, j1, j2, j3 = n]   k -> [k0, k1, k2 = k]
    order  i0 j0 | i1 j1 | k0 k1 | i2 j2 | i3 j3 k2
    (i0 j0) -> blockIdx.x, (i1 j1) -> threadIdx.y (one warp each); A/B staged in shared at k0
    (cooperative, vectorized copy over threadIdx.y/x), loaded into fragments at k1; the
    accumulator lives at the warp level and is stored, fragment by fragment, after the k loop
    (wmma: to a shared staging tile copied out by the block; mma: straight to global).
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tvm

# Imported once for the whole file: ~17 s, TVM's CUDA intrinsic module.
from gta_cuda_tc import tvm_intrinsics
from gta_cuda_tc.names import MMA_F16_F16, MMA_F16_F32, MMA_S8_S32, wmma_names
from gta_cuda_tc.realisation import _lanes
from tvm import te
from tvm.s_tir import Schedule
from tvm.s_tir.tensor_intrin.cuda import (
    shared_16x16_to_ldmatrix_32x8_layout,
    shared_16x32_to_ldmatrix_32x16_layout,
    shared_32x16_to_ldmatrix_32x16_layout,
)

# TVM compiles CUDA itself only where a CUDA runtime is loaded (the GPU run); its default,
# nvrtc, needs Python CUDA bindings that the project does not install.
os.environ.setdefault("TVM_CUDA_COMPILE_MODE", "nvcc")

TARGET = tvm.target.Target({
    "kind": "cuda", "arch": "sm_80", "max_threads_per_block": 1024,
    "max_shared_memory_per_block": 49152, "thread_warp_size": 32, "registers_per_block": 65536,
})
# MetaSchedule-sampled wmma schedules fail in LowerIntrin without it (shared TVM notes); these
# hand schedules build either way.
PASS_CONFIG = {"tirx.disable_storage_rewrite": True}
WARP_SIZE = 32
# 2x2 warps of 2x2 fragments, two k-fragments per shared stage: M, N, K divide for every shape.
M = N = 128
K = 64
NVCC = shutil.which("nvcc")
HAS_GPU = tvm.cuda().exist

ITEMSIZE = {"float16": 2, "float32": 4, "int8": 1, "int32": 4}


def _gemm(in_dtype: str, out_dtype: str) -> tvm.tirx.PrimFunc:
    a = te.placeholder((M, K), in_dtype, name="A")
    b = te.placeholder((K, N), in_dtype, name="B")
    r = te.reduce_axis((0, K), name="k")
    c = te.compute(
        (M, N),
        lambda i, j: te.sum(a[i, r].astype(out_dtype) * b[r, j].astype(out_dtype), axis=r),
        name="C",
    )
    return te.create_prim_func([a, b, c])


def _warp_layout(i: tvm.tirx.PrimExpr, j: tvm.tirx.PrimExpr) -> tuple[tvm.tirx.PrimExpr, ...]:
    """[rows, cols] -> [rows/16, cols/16, lane, register]: the layout TVM's mma intrinsics read."""
    return (i // 16, j // 16, *shared_16x16_to_ldmatrix_32x8_layout(i % 16, j % 16))


def _fragment_major(cols: int) -> Callable[..., tuple[tvm.tirx.PrimExpr, ...]]:
    """[rows, C] -> [C/cols, rows, cols]: every fragment of `cols` columns starts 32B-aligned."""
    return lambda i, j: (j // cols, i, j % cols)


def _schedule_gemm(
    in_dtype: str, out_dtype: str, shape: tuple[int, int, int], intrins: dict[str, str],
    *, mma: bool, warps: tuple[int, int] = (2, 2), frags: tuple[int, int] = (2, 2),
    k_frags: int = 2,
) -> Schedule:
    """Tile, stage and tensorize C = A @ B; `mma` picks TVM's warp-scope ldmatrix/mma.sync path
    (fragments in "warp" scope, stored straight to global) instead of wmma (fragments in
    wmma.* scopes, stored through a shared staging buffer)."""
    m, n, k = shape
    sch = Schedule(_gemm(in_dtype, out_dtype))
    block = sch.get_sblock("C")
    i, j, r = sch.get_loops(block)
    i0, i1, i2, i3 = sch.split(i, [None, warps[0], frags[0], m])
    j0, j1, j2, j3 = sch.split(j, [None, warps[1], frags[1], n])
    k0, k1, k2 = sch.split(r, [None, k_frags, k])
    sch.reorder(i0, j0, i1, j1, k0, k1, i2, j2, i3, j3, k2)
    bx = sch.fuse(i0, j0)
    sch.bind(bx, "blockIdx.x")
    ty = sch.fuse(i1, j1)
    sch.bind(ty, "threadIdx.y")
    n_warps = warps[0] * warps[1]

    def cooperative(copy: tvm.s_tir.SBlockRV, vector: int) -> None:
        fused = sch.fuse(*sch.get_loops(copy)[-2:])
        split = sch.split(fused, [None, n_warps, WARP_SIZE, vector] if vector > 1
                          else [None, n_warps, WARP_SIZE])
        sch.bind(split[1], "threadIdx.y")
        sch.bind(split[2], "threadIdx.x")
        if vector > 1:
            sch.vectorize(split[3])

    # Output: accumulator fragments per warp; wmma stores them to shared, then the block copies
    # its tile to global. mma's store intrinsic writes global itself.
    if mma:
        acc = sch.cache_write(block, 0, "warp")
        sch.reverse_compute_at(acc, ty)
    else:
        c_shared = sch.cache_write(block, 0, "shared")
        sch.reverse_compute_at(c_shared, bx)
        cooperative(c_shared, 1)
        acc = sch.cache_write(block, 0, "wmma.accumulator")
        sch.reverse_compute_at(acc, ty)

    # Inputs: global -> shared once per k-stage (16-byte vectors), shared -> fragments per kf.
    vector = 16 // ITEMSIZE[in_dtype]
    a_shared = sch.cache_read(block, 0, "shared")
    b_shared = sch.cache_read(block, 1, "shared")
    for copy in (a_shared, b_shared):
        sch.compute_at(copy, k0)
        cooperative(copy, vector)
    a_frag = sch.cache_read(block, 0, "warp" if mma else "wmma.matrix_a")
    b_frag = sch.cache_read(block, 1, "warp" if mma else "wmma.matrix_b")
    sch.compute_at(a_frag, k1)
    sch.compute_at(b_frag, k1)

    def fragment_loops(copy: tvm.s_tir.SBlockRV, rows: int, cols: int) -> tvm.s_tir.LoopRV:
        outer_r, inner_r = sch.split(sch.get_loops(copy)[-2], [None, rows])
        outer_c, inner_c = sch.split(sch.get_loops(copy)[-1], [None, cols])
        sch.reorder(outer_r, outer_c, inner_r, inner_c)
        return inner_r

    load_a = fragment_loops(a_frag, m, k)
    load_b = fragment_loops(b_frag, k, n)
    store = fragment_loops(acc, m, n)
    init = sch.decompose_reduction(block, k0)

    if mma:
        sch.transform_layout(a_frag, ("write", 0), _warp_layout)
        sch.transform_layout(b_frag, ("write", 0), _warp_layout)
        sch.transform_layout(acc, ("read", 0), _warp_layout)
    else:
        # wmma wants 32-byte-aligned fragment pointers: a fragment narrower than 32 bytes at an
        # odd column offset of a row-major buffer would break that.
        if k * ITEMSIZE[in_dtype] < 32:
            sch.transform_layout(a_shared, ("write", 0), _fragment_major(k))
        if n * ITEMSIZE[in_dtype] < 32:
            sch.transform_layout(b_shared, ("write", 0), _fragment_major(n))
        if n * ITEMSIZE[out_dtype] < 32:
            sch.transform_layout(c_shared, ("read", 0), _fragment_major(n))

    sch.tensorize(sch.get_loops(init)[-2], intrins["init"])
    sch.tensorize(load_a, intrins["load_a"])
    sch.tensorize(load_b, intrins["load_b"])
    sch.tensorize(sch.get_loops(block)[-3], intrins["compute"])
    sch.tensorize(store, intrins["store"])
    return sch


def _build(sch: Schedule, pipeline: str = "default") -> tuple[tvm.runtime.Executable, str]:
    with tvm.transform.PassContext(config=PASS_CONFIG):
        ex = tvm.compile(sch.mod, target=TARGET, tir_pipeline=pipeline)
    return ex, ex.mod.imports[0].inspect_source()


def _nvcc(source: str, tmp_path: Path) -> None:
    if NVCC is None:
        pytest.skip("nvcc not found")
    cu = tmp_path / "kernel.cu"
    cu.write_text(source)
    proc = subprocess.run([NVCC, "-arch=sm_80", "-c", str(cu), "-o", str(tmp_path / "kernel.o")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]


def _check_on_gpu(ex: tvm.runtime.Executable, in_dtype: str, out_dtype: str) -> None:
    rng = np.random.default_rng(0)
    if in_dtype == "int8":
        a = rng.integers(-128, 128, (M, K), dtype=np.int8)
        b = rng.integers(-128, 128, (K, N), dtype=np.int8)
    else:
        a = rng.uniform(-1, 1, (M, K)).astype(in_dtype)
        b = rng.uniform(-1, 1, (K, N)).astype(in_dtype)
    want = (a.astype(np.float64) @ b.astype(np.float64))
    dev = tvm.cuda()
    c = tvm.runtime.tensor(np.zeros((M, N), out_dtype), dev)
    ex.jit()["main"](tvm.runtime.tensor(a, dev), tvm.runtime.tensor(b, dev), c)
    if out_dtype == "int32":
        np.testing.assert_array_equal(c.numpy(), want.astype(np.int32))
    else:
        tol = 5e-2 if out_dtype == "float16" else 1e-3
        np.testing.assert_allclose(c.numpy().astype(np.float64), want, rtol=tol, atol=tol)


def _wmma_id(shape: tuple[int, int, int, str, str]) -> str:
    return "{}x{}x{}-{}-{}".format(*shape)


def test_all_names_registered() -> None:
    get = tvm.s_tir.TensorIntrin.get
    for shape in tvm_intrinsics.WMMA_SHAPES:
        for name in wmma_names(*shape).values():
            assert get(name, allow_missing=True) is not None, name
    for group in (MMA_F16_F32, MMA_F16_F16, MMA_S8_S32):
        for name in group.values():
            assert get(name, allow_missing=True) is not None, name


@pytest.mark.parametrize(("mover", "window", "layout"), [
    (MMA_F16_F32["load_a"], (16, 16), shared_16x16_to_ldmatrix_32x8_layout),
    (MMA_F16_F32["load_b"], (16, 16), shared_16x16_to_ldmatrix_32x8_layout),
    (MMA_F16_F32["store"], (16, 16), shared_16x16_to_ldmatrix_32x8_layout),
    (MMA_S8_S32["load_a"], (16, 32), shared_16x32_to_ldmatrix_32x16_layout),
    (MMA_S8_S32["load_b"], (32, 16), shared_32x16_to_ldmatrix_32x16_layout),
    (MMA_S8_S32["store"], (16, 16), shared_16x16_to_ldmatrix_32x8_layout),
])
@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_warp_layouts_are_read_off_the_movers(mover: str, window: tuple[int, int],
                                              layout: Callable, dtype: str) -> None:
    """The realisation's (lane, register) of every window element is TVM's, in the index
    type of the buffer (int64 in models)."""
    lanes = _lanes(mover)
    analyzer = tvm.sym.Analyzer()
    for i in range(window[0]):
        for j in range(window[1]):
            got = lanes(tvm.tirx.IntImm(dtype, i), tvm.tirx.IntImm(dtype, j))
            assert all(str(g.ty) == dtype for g in got)
            assert tuple(analyzer.simplify(g).value for g in got) == tuple(layout(i, j))


def test_reimport_is_harmless() -> None:
    importlib.reload(tvm_intrinsics)
    name = wmma_names(*tvm_intrinsics.WMMA_SHAPES[0])["compute"]
    assert tvm.s_tir.TensorIntrin.get(name) is not None


@pytest.mark.parametrize("shape", tvm_intrinsics.WMMA_SHAPES, ids=_wmma_id)
def test_wmma_gemm_builds(shape: tuple[int, int, int, str, str], tmp_path: Path) -> None:
    m, n, k, in_dtype, out_dtype = shape
    sch = _schedule_gemm(in_dtype, out_dtype, (m, n, k), wmma_names(*shape), mma=False)
    _, source = _build(sch)
    assert "wmma::mma_sync" in source
    for role in ("matrix_a", "matrix_b", "accumulator"):
        assert f"wmma::{role}, {m}, {n}, {k}" in source, role
    _nvcc(source, tmp_path)


@pytest.mark.parametrize("group", [MMA_F16_F32, MMA_F16_F16], ids=["f16f16f32", "f16f16f16"])
def test_mma_gemm_builds(group: dict[str, str], tmp_path: Path) -> None:
    out_dtype = "float32" if group is MMA_F16_F32 else "float16"
    sch = _schedule_gemm("float16", out_dtype, (16, 16, 16), group, mma=True)
    _, source = _build(sch, tvm_intrinsics.WARP_MMA_PIPELINE)
    assert "mma.sync.aligned.m16n8k16" in source
    assert "ldmatrix.sync.aligned.m8n8.x4" in source
    # Warp memory lowered: 2x2 accumulator fragments are 2*2*8 registers a thread, not 32x that.
    c_type = "float" if out_dtype == "float32" else "half"
    # (warp buffers renamed lower case: TVM's mma codegen would mangle A..F in their names)
    assert f"{c_type} c_warp_ptr[32];" in source
    assert "half a_shared_warp_ptr[16];" in source and "half b_shared_warp_ptr[16];" in source
    _nvcc(source, tmp_path)


def test_mma_needs_the_warp_pipeline() -> None:
    """Pins the TVM 0.27 defect WARP_MMA_PIPELINE works around: drop the workaround when
    this starts failing."""
    sch = _schedule_gemm("float16", "float32", (16, 16, 16), MMA_F16_F32, mma=True)
    with pytest.raises(tvm.error.InternalError, match="Cannot find warp index"):
        _build(sch)


@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU (none here)")
@pytest.mark.parametrize("shape", tvm_intrinsics.WMMA_SHAPES, ids=_wmma_id)
def test_wmma_gemm_matches_numpy(shape: tuple[int, int, int, str, str]) -> None:
    m, n, k, in_dtype, out_dtype = shape
    sch = _schedule_gemm(in_dtype, out_dtype, (m, n, k), wmma_names(*shape), mma=False)
    ex, _ = _build(sch)
    _check_on_gpu(ex, in_dtype, out_dtype)


@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU (none here)")
@pytest.mark.parametrize("group", [MMA_F16_F32, MMA_F16_F16], ids=["f16f16f32", "f16f16f16"])
def test_mma_gemm_matches_numpy(group: dict[str, str]) -> None:
    out_dtype = "float32" if group is MMA_F16_F32 else "float16"
    sch = _schedule_gemm("float16", out_dtype, (16, 16, 16), group, mma=True)
    ex, _ = _build(sch, tvm_intrinsics.WARP_MMA_PIPELINE)
    _check_on_gpu(ex, "float16", out_dtype)
