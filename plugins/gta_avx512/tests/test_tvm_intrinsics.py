"""Build-and-run checks of the AVX-512 tensor intrinsics on small hand-scheduled GEMMs.

Each test writes the compute in TE, tensorizes it with a registered intrinsic, builds for this CPU,
and compares against numpy on full-range random data (int16 saturation bugs hide on small values).
"""

from __future__ import annotations

import importlib

import ml_dtypes
import numpy as np
import pytest
import tvm
from gta_avx512 import tvm_intrinsics
from gta_avx512.plugin import MCPU
from gta_avx512.tvm_intrinsics import INTRINSIC_NAMES
from tvm import te

from gta_core.host import cpu_flags

_NEEDED_FLAGS = {"avx512f", "avx512bw", "avx512_vnni", "avx512_bf16"}
_MISSING = sorted(_NEEDED_FLAGS - cpu_flags())

pytestmark = [
    pytest.mark.skipif(
        bool(_MISSING), reason=f"CPU lacks {', '.join(_MISSING)} (needed to run the intrinsics)"
    ),
    pytest.mark.skipif(not tvm.runtime.enabled("llvm"), reason="TVM built without LLVM"),
]

TARGET = tvm.target.Target({"kind": "llvm", "mcpu": MCPU, "num-cores": 2})  # this CPU's
RNG = np.random.default_rng(0)


def _u8(shape: tuple[int, ...]) -> np.ndarray:
    return RNG.integers(0, 256, size=shape, dtype=np.uint8)


def _s8(shape: tuple[int, ...]) -> np.ndarray:
    return RNG.integers(-128, 128, size=shape, dtype=np.int8)


def _schedule(tensors: list[te.Tensor], block: str, lanes: int, red: int | None,
              intrin: str) -> tvm.s_tir.Schedule:
    """Tile (spatial_outer..., lane, red) so the intrinsic's loops are innermost, tensorize.

    The block's loops are (outer spatial, lane axis, reduction axis); `red` None means the
    intrinsic has no reduction axis (the whole reduction loop stays outside).
    """
    sch = tvm.s_tir.Schedule(te.create_prim_func(tensors))
    blk = sch.get_sblock(block)
    outer, lane, k = sch.get_loops(blk)
    lane_o, lane_i = sch.split(lane, [None, lanes])
    if red is None:
        sch.reorder(outer, lane_o, k, lane_i)
        sch.decompose_reduction(blk, k)
    else:
        k_o, k_i = sch.split(k, [None, red])
        sch.reorder(outer, lane_o, k_o, lane_i, k_i)
        sch.decompose_reduction(blk, k_o)
    sch.tensorize(lane_i, intrin)
    return sch


def _run(sch: tvm.s_tir.Schedule, inputs: list[np.ndarray], out_shape: tuple[int, ...],
         out_dtype: str) -> tuple[np.ndarray, str]:
    ex = tvm.compile(sch.mod, target=TARGET)
    dev = tvm.cpu()
    args = [tvm.runtime.tensor(x, dev) for x in inputs]
    out = tvm.runtime.tensor(np.zeros(out_shape, dtype=out_dtype), dev)
    ex(*args, out)
    return out.numpy(), ex.mod.inspect_source("asm")


def test_names_registered_and_reimport_is_harmless() -> None:
    assert set(INTRINSIC_NAMES) == {"vnni", "vnni_act_lanes", "bf16", "fma", "mac16_u8s8",
                                    "fma16_elementwise", "mac16_u8s8_bcast", "vnni_window",
                                    "vnni_lanes", "vnni_dot"}
    importlib.reload(tvm_intrinsics)
    tvm_intrinsics.register_all()
    for name in INTRINSIC_NAMES.values():
        assert tvm.s_tir.TensorIntrin.get(name, allow_missing=True) is not None


def test_vnni_lanes_three_taps_of_sixteen_channels_exact() -> None:
    # out[w, l] = sum_k data[w + k, l] * weight[l, k]: a depthwise row, 16 channels in lanes.
    width = 8
    data = te.placeholder((width + 2, 16), "uint8", name="data")
    weight = te.placeholder((16, 3), "int8", name="weight")
    r = te.reduce_axis((0, 3), "k")
    out = te.compute(
        (width, 16),
        lambda w, lane: te.sum(
            data[w + r, lane].astype("int32") * weight[lane, r].astype("int32"), axis=r),
        name="out",
    )
    sch = _schedule([data, weight, out], "out", 16, 3, INTRINSIC_NAMES["vnni_lanes"])
    d, wt = _u8((width + 2, 16)), _s8((16, 3))
    got, asm = _run(sch, [d, wt], (width, 16), "int32")
    want = sum(d[k:k + width].astype(np.int32) * wt[:, k].astype(np.int32) for k in range(3))
    np.testing.assert_array_equal(got, want)
    assert "vpdpbusd" in asm
    assert "vpinsrb" not in asm  # the bytes permuted as vectors, not one by one


def test_vnni_dot_sums_sixty_four_contiguous_products_into_sixteen_lanes_exactly() -> None:
    # part[m, lane] = sum_{o, t} x[64 o + 4 lane + t] * a[m, 64 o + 4 lane + t]: a GEMV's
    # partial sums, both operands read as they lie (rows of A, the vector x).
    rows, depth = 4, 128
    x = te.placeholder((depth,), "uint8", name="x")
    a = te.placeholder((rows, depth), "int8", name="A")
    o = te.reduce_axis((0, depth // 64), "o")
    t = te.reduce_axis((0, 4), "t")
    part = te.compute(
        (rows, 16),
        lambda m, lane: te.sum(
            x[o * 64 + lane * 4 + t].astype("int32") * a[m, o * 64 + lane * 4 + t].astype(
                "int32"), axis=[o, t]),
        name="part",
    )
    sch = tvm.s_tir.Schedule(te.create_prim_func([x, a, part]))
    block = sch.get_sblock("part")
    m, lane, o_loop, t_loop = sch.get_loops(block)
    sch.reorder(m, o_loop, lane, t_loop)
    sch.decompose_reduction(block, o_loop)
    sch.tensorize(lane, INTRINSIC_NAMES["vnni_dot"])
    x_np, a_np = _u8((depth,)), _s8((rows, depth))
    got, asm = _run(sch, [x_np, a_np], (rows, 16), "int32")
    products = (a_np.astype(np.int32) * x_np.astype(np.int32)).reshape(rows, depth // 64, 16, 4)
    np.testing.assert_array_equal(got, products.sum(axis=(1, 3)))
    assert "vpdpbusd" in asm and "vpbroadcastd" not in asm  # neither operand broadcast


def test_vnni_gemm_exact() -> None:
    m, n, k = 8, 32, 16
    a = te.placeholder((m, k), "uint8", name="A")
    # Weights pre-packed so each (16 lanes, 4 k) window is contiguous: [N/16, K/4, 16, 4].
    b = te.placeholder((n // 16, k // 4, 16, 4), "int8", name="B")
    r = te.reduce_axis((0, k), "k")
    c = te.compute(
        (m, n),
        lambda i, j: te.sum(
            a[i, r].astype("int32") * b[j // 16, r // 4, j % 16, r % 4].astype("int32"), axis=r
        ),
        name="C",
    )
    sch = _schedule([a, b, c], "C", 16, 4, INTRINSIC_NAMES["vnni"])
    a_np, b_np = _u8((m, k)), _s8((n, k))
    b_packed = np.ascontiguousarray(b_np.reshape(n // 16, 16, k // 4, 4).transpose(0, 2, 1, 3))
    out, asm = _run(sch, [a_np, b_packed], (m, n), "int32")
    np.testing.assert_array_equal(out, a_np.astype(np.int32) @ b_np.astype(np.int32).T)
    assert "vpdpbusd" in asm


def test_vnni_act_lanes_conv1d_exact() -> None:
    # out[ko, w] = sum_c data[c, w] * weight[ko, c]: the 16 lanes come from the u8 activation's
    # spatial axis (data packed NCW4c-like as [C/4, W, 4]), the s8 weight word is broadcast.
    k_out, width, chans = 8, 32, 16
    data = te.placeholder((chans // 4, width, 4), "uint8", name="data")
    weight = te.placeholder((k_out, chans), "int8", name="weight")
    r = te.reduce_axis((0, chans), "c")
    out = te.compute(
        (k_out, width),
        lambda ko, w: te.sum(
            data[r // 4, w, r % 4].astype("int32") * weight[ko, r].astype("int32"), axis=r
        ),
        name="out",
    )
    sch = _schedule([data, weight, out], "out", 16, 4, INTRINSIC_NAMES["vnni_act_lanes"])
    d_np, w_np = _u8((chans, width)), _s8((k_out, chans))
    d_packed = np.ascontiguousarray(d_np.reshape(chans // 4, 4, width).transpose(0, 2, 1))
    res, asm = _run(sch, [d_packed, w_np], (k_out, width), "int32")
    np.testing.assert_array_equal(res, w_np.astype(np.int32) @ d_np.astype(np.int32))
    assert "vpdpbusd" in asm


def test_act_lanes_needs_data_before_weight_in_the_compute() -> None:
    # Tensorize compares the block's reads with the desc's by position, so the same conv written
    # `weight * data` does not match the act-lanes desc; it must be refused, not mis-mapped.
    k_out, width, chans = 8, 32, 16
    data = te.placeholder((chans // 4, width, 4), "uint8", name="data")
    weight = te.placeholder((k_out, chans), "int8", name="weight")
    r = te.reduce_axis((0, chans), "c")
    out = te.compute(
        (k_out, width),
        lambda ko, w: te.sum(
            weight[ko, r].astype("int32") * data[r // 4, w, r % 4].astype("int32"), axis=r
        ),
        name="out",
    )
    with pytest.raises(Exception, match="read buffers regions do not match"):
        _schedule([data, weight, out], "out", 16, 4, INTRINSIC_NAMES["vnni_act_lanes"])


def test_vnni_on_unpacked_weights_fails_loudly() -> None:
    # Plain [N, K] weights: the (16, 4) window has row stride K, not 4. Without the impl's
    # strides=[4, 1] this would build and return wrong numbers.
    m, n, k = 8, 32, 16
    a = te.placeholder((m, k), "uint8", name="A")
    b = te.placeholder((n, k), "int8", name="B")
    r = te.reduce_axis((0, k), "k")
    c = te.compute(
        (m, n),
        lambda i, j: te.sum(a[i, r].astype("int32") * b[j, r].astype("int32"), axis=r),
        name="C",
    )
    with pytest.raises(Exception, match="strides"):
        sch = _schedule([a, b, c], "C", 16, 4, INTRINSIC_NAMES["vnni"])
        tvm.compile(sch.mod, target=TARGET)


def test_bf16_gemm_accurate() -> None:
    m, n, k = 8, 32, 32
    bf16 = ml_dtypes.bfloat16
    a = te.placeholder((m, k), "bfloat16", name="A")
    b = te.placeholder((n // 16, k // 2, 16, 2), "bfloat16", name="B")
    r = te.reduce_axis((0, k), "k")
    c = te.compute(
        (m, n),
        lambda i, j: te.sum(
            a[i, r].astype("float32") * b[j // 16, r // 2, j % 16, r % 2].astype("float32"),
            axis=r,
        ),
        name="C",
    )
    sch = _schedule([a, b, c], "C", 16, 2, INTRINSIC_NAMES["bf16"])
    a_np = RNG.standard_normal((m, k)).astype(bf16)
    b_np = RNG.standard_normal((n, k)).astype(bf16)
    b_packed = np.ascontiguousarray(b_np.reshape(n // 16, 16, k // 2, 2).transpose(0, 2, 1, 3))
    out, asm = _run(sch, [a_np, b_packed], (m, n), "float32")
    ref = a_np.astype(np.float64) @ b_np.astype(np.float64).T
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    assert "vdpbf16ps" in asm
    # The IR wrapper must be inlined, not called per 16x2 step.
    assert "call" not in " ".join(
        line for line in asm.splitlines() if "gta_avx512_vdpbf16ps" in line
    )


def test_fma_gemm_accurate() -> None:
    m, n, k = 8, 32, 16
    a = te.placeholder((m, k), "float32", name="A")
    b = te.placeholder((k, n), "float32", name="B")
    r = te.reduce_axis((0, k), "k")
    c = te.compute((m, n), lambda i, j: te.sum(a[i, r] * b[r, j], axis=r), name="C")
    sch = _schedule([a, b, c], "C", 16, None, INTRINSIC_NAMES["fma"])
    a_np = RNG.standard_normal((m, k)).astype(np.float32)
    b_np = RNG.standard_normal((k, n)).astype(np.float32)
    out, asm = _run(sch, [a_np, b_np], (m, n), "float32")
    np.testing.assert_allclose(out, a_np.astype(np.float64) @ b_np, rtol=1e-5, atol=1e-5)
    fma_lines = [line for line in asm.splitlines() if "vfmadd" in line]
    assert fma_lines and any("zmm" in line for line in fma_lines)


def _elementwise(dtype_a: str, dtype_b: str, out_dtype: str, intrin: str, swap: bool = False):
    """out[m, c] = sum_r a[m, r, c] * b[r, c]: 16 lanes over c, the reduction outside."""
    m, red, chans = 4, 3, 32
    a = te.placeholder((m, red, chans), dtype_a, name="a")
    b = te.placeholder((red, chans), dtype_b, name="b")
    r = te.reduce_axis((0, red), "r")

    def product(i, c):
        x, y = a[i, r, c].astype(out_dtype), b[r, c].astype(out_dtype)
        return y * x if swap else x * y

    out = te.compute((m, chans), lambda i, c: te.sum(product(i, c), axis=r), name="out")
    sch = tvm.s_tir.Schedule(te.create_prim_func([a, b, out]))
    blk = sch.get_sblock("out")
    i, c, k = sch.get_loops(blk)
    c_o, c_i = sch.split(c, [None, 16])
    sch.reorder(i, c_o, k, c_i)
    sch.decompose_reduction(blk, k)
    sch.tensorize(c_i, intrin)
    return sch, (m, red, chans)


def test_mac16_u8s8_elementwise_exact() -> None:
    sch, (m, red, chans) = _elementwise("uint8", "int8", "int32", INTRINSIC_NAMES["mac16_u8s8"])
    a_np, b_np = _u8((m, red, chans)), _s8((red, chans))
    out, asm = _run(sch, [a_np, b_np], (m, chans), "int32")
    expected = (a_np.astype(np.int32) * b_np.astype(np.int32)[None]).sum(axis=1)
    np.testing.assert_array_equal(out, expected)
    assert "vpmovzxbd" in asm and "vpmovsxbd" in asm


@pytest.mark.parametrize("swap", [False, True])
def test_fma16_elementwise_and_its_mirror(swap: bool) -> None:
    name = "gta_avx512_fma_16_elementwise" + ("_mirrored" if swap else "")
    sch, (m, red, chans) = _elementwise("float32", "float32", "float32", name, swap)
    a_np = RNG.standard_normal((m, red, chans)).astype(np.float32)
    b_np = RNG.standard_normal((red, chans)).astype(np.float32)
    out, asm = _run(sch, [a_np, b_np], (m, chans), "float32")
    np.testing.assert_allclose(out, (a_np * b_np[None]).sum(axis=1), rtol=1e-5, atol=1e-5)
    assert "vfmadd" in asm


@pytest.mark.parametrize(("name", "taps", "taps_inside", "mnemonics"), [
    ("mac16_u8s8_bcast", 3, False, ("vpmovzxbd",)),  # one tap a call, the taps a loop outside
    # four taps a call, from 19 bytes: a byte permute (vpermt2b with VBMI; without it in the
    # LLVM cpu, e.g. cooperlake on an Emerald Rapids VM, vpshufb)
    ("vnni_window", 4, True, ("vpdpbusd", ("vpermt2b", "vpshufb"))),
])
def test_a_sliding_window_is_read_in_place(name, taps, taps_inside, mnemonics) -> None:
    """out[c, w] = sum_s x[c, w + s] * k[c, s]: lanes over w, each window at offset w0 (+ s)."""
    chans, width = 3, 32
    x = te.placeholder((chans, width + taps - 1), "uint8", name="x")
    k = te.placeholder((chans, taps), "int8", name="k")
    s = te.reduce_axis((0, taps), "s")
    out = te.compute((chans, width), lambda c, w: te.sum(
        x[c, w + s].astype("int32") * k[c, s].astype("int32"), axis=s), name="out")
    sch = tvm.s_tir.Schedule(te.create_prim_func([x, k, out]))
    blk = sch.get_sblock("out")
    c, w, red = sch.get_loops(blk)
    w_o, w_i = sch.split(w, [None, 16])
    sch.reorder(c, w_o, *((w_i, red) if taps_inside else (red, w_i)))
    sch.decompose_reduction(blk, w_i if taps_inside else red)
    sch.tensorize(w_i, INTRINSIC_NAMES[name])
    x_np, k_np = _u8((chans, width + taps - 1)), _s8((chans, taps))
    got, asm = _run(sch, [x_np, k_np], (chans, width), "int32")
    windows = np.lib.stride_tricks.sliding_window_view(x_np.astype(np.int32), taps, axis=1)
    np.testing.assert_array_equal(got, (windows * k_np.astype(np.int32)[:, None]).sum(axis=2))
    for wanted in mnemonics:
        assert any(m in asm for m in ((wanted,) if isinstance(wanted, str) else wanted)), wanted
