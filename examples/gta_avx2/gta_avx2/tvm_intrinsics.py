"""AVX2 tensor intrinsics for TVM's TensorIR, registered on import.

- ``gta_avx2_fma_8``: C[8] f32 += A[0] f32 (broadcast) * B[8] f32 (vfmadd231ps on ymm), and its
  mirrored desc (the same product read in the other order).
- ``gta_avx2_madd_8x2``: C[8] s32 += sum_k A[k] u8 (broadcast) * B[8, 2] s8. AVX2 has no exact
  u8 x s8 dot product: ``vpmaddubsw`` adds pairs of products in 16 bits with saturation
  (255 * 127 * 2 overflows), so it is wrong on full-range data. Here both operands are
  widened to 16 bits first (A zero-extended, B sign-extended: ``vpmovsxbw``) and
  ``vpmaddwd`` multiplies and adds pairs into 32 bits, which no u8 x s8 pair can overflow.
- ``gta_avx2_mac_8_u8s8``: C[8] s32 += A[8] u8 * B[8] s8, lane by lane (both widened to 32
  bits, multiplied, added: exact; LLVM multiplies with ``vpmaddwd``). A depthwise layer in
  ``NCHW8c`` takes it with its lanes on the block's 8 channels, where the input and the
  weights are both contiguous: the broadcast dot product above cannot, as every lane is
  another channel of the activations.
- ``gta_avx2_fma_8_elementwise``: C[8] f32 += A[8] * B[8], lane by lane (vfmadd231ps), and its
  mirrored desc: the float32 counterpart, for the same depthwise layers.

What a desc/impl pair must get right (the traps):

- the desc is the computation tensorize matches, read by read: a block computing
  ``C += data * weight`` matches only a desc that reads C, then the data, then the weight;
  a desc with the inputs the other way needs a mirrored twin (registered under its own name
  and declared as ``compute_mirrored`` by the intrinsic);
- the impl declares explicit ``strides`` for every multi-element operand: without them,
  tensorizing over a window that is not contiguous builds and computes garbage; with them
  the build refuses it;
- ``llvm.fma`` rather than ``a * b + c``: without fast-math LLVM may not contract the latter;
- an LLVM intrinsic's operand types must be exactly those LLVM declares (``<16 x i16>`` for
  ``pmadd.wd``), reinterpreting vectors where needed, or LLVM's verifier rejects the module.
"""

from __future__ import annotations

from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T

FMA_8 = "gta_avx2_fma_8"
FMA_8_MIRRORED = "gta_avx2_fma_8_mirrored"
MADD_8X2 = "gta_avx2_madd_8x2"
MAC_8_U8S8 = "gta_avx2_mac_8_u8s8"
FMA_8_ELEMENTWISE = "gta_avx2_fma_8_elementwise"
FMA_8_ELEMENTWISE_MIRRORED = "gta_avx2_fma_8_elementwise_mirrored"

_PMADDWD = "llvm.x86.avx2.pmadd.wd"


@T.prim_func(s_tir=True)
def fma_8_desc(
    A: T.Buffer((1,), "float32", offset_factor=1),
    B: T.Buffer((8,), "float32", offset_factor=1),
    C: T.Buffer((8,), "float32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:8], A[0:1], B[0:8])
        T.writes(C[0:8])
        for i in T.serial(0, 8):
            with T.sblock("update"):
                vi = T.axis.remap("S", [i])
                C[vi] = C[vi] + A[0] * B[vi]


@T.prim_func(s_tir=True)
def fma_8_mirrored_desc(
    A: T.Buffer((1,), "float32", offset_factor=1),
    B: T.Buffer((8,), "float32", offset_factor=1),
    C: T.Buffer((8,), "float32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:8], B[0:8], A[0:1])
        T.writes(C[0:8])
        for i in T.serial(0, 8):
            with T.sblock("update"):
                vi = T.axis.remap("S", [i])
                C[vi] = C[vi] + B[vi] * A[0]


@T.prim_func(s_tir=True)
def fma_8_impl(
    A: T.Buffer((1,), "float32", offset_factor=1),
    B: T.Buffer((8,), "float32", offset_factor=1, strides=[1]),
    C: T.Buffer((8,), "float32", offset_factor=1, strides=[1]),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:8], A[0:1], B[0:8])
        T.writes(C[0:8])
        C[T.ramp(T.int32(0), 1, 8)] = T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id("llvm.fma.v8f32"),
            T.broadcast(A[0], 8),
            B.vload([0], dtype="float32x8"),
            C.vload([0], dtype="float32x8"),
            dtype="float32x8",
        )


@T.prim_func(s_tir=True)
def madd_8x2_desc(
    A: T.Buffer((2,), "uint8", offset_factor=1),
    B: T.Buffer((8, 2), "int8", offset_factor=1),
    C: T.Buffer((8,), "int32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:8], A[0:2], B[0:8, 0:2])
        T.writes(C[0:8])
        for i in T.serial(0, 8):
            for k in T.serial(0, 2):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")


@T.prim_func(s_tir=True)
def madd_8x2_impl(
    A: T.Buffer((2,), "uint8", offset_factor=1, strides=[1]),
    B: T.Buffer((8, 2), "int8", offset_factor=1, strides=[2, 1]),
    C: T.Buffer((8,), "int32", offset_factor=1, strides=[1]),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:8], A[0:2], B[0:8, 0:2])
        T.writes(C[0:8])
        # The two u8 taps zero-extended to a pair of i16, that pair (one i32) in all 8 lanes.
        a_pair = T.reinterpret(T.cast(A.vload([0], "uint8x2"), "int16x2"), dtype="int32")
        C[T.ramp(T.int32(0), 1, 8)] = C.vload([0], dtype="int32x8") + T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id(_PMADDWD),
            T.reinterpret(T.broadcast(a_pair, 8), dtype="int16x16"),
            T.cast(B.vload([0, 0], dtype="int8x16"), "int16x16"),
            dtype="int32x8",
        )


@T.prim_func(s_tir=True)
def mac_8_u8s8_desc(
    A: T.Buffer((8,), "uint8", offset_factor=1),
    B: T.Buffer((8,), "int8", offset_factor=1),
    C: T.Buffer((8,), "int32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:8], A[0:8], B[0:8])
        T.writes(C[0:8])
        for i in T.serial(0, 8):
            with T.sblock("update"):
                vi = T.axis.remap("S", [i])
                C[vi] = C[vi] + T.cast(A[vi], "int32") * T.cast(B[vi], "int32")


@T.prim_func(s_tir=True)
def mac_8_u8s8_impl(
    A: T.Buffer((8,), "uint8", offset_factor=1, strides=[1]),
    B: T.Buffer((8,), "int8", offset_factor=1, strides=[1]),
    C: T.Buffer((8,), "int32", offset_factor=1, strides=[1]),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:8], A[0:8], B[0:8])
        T.writes(C[0:8])
        # Plain vector casts and arithmetic: LLVM emits vpmovzxbd / vpmovsxbd and, as both
        # widened values fit in 16 bits, multiplies with vpmaddwd (vpmulld else); exact.
        C[T.ramp(T.int32(0), 1, 8)] = C.vload([0], dtype="int32x8") + T.Cast(
            "int32x8", A.vload([0], dtype="uint8x8")) * T.Cast(
            "int32x8", B.vload([0], dtype="int8x8"))


@T.prim_func(s_tir=True)
def fma_8_elementwise_desc(
    A: T.Buffer((8,), "float32", offset_factor=1),
    B: T.Buffer((8,), "float32", offset_factor=1),
    C: T.Buffer((8,), "float32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:8], A[0:8], B[0:8])
        T.writes(C[0:8])
        for i in T.serial(0, 8):
            with T.sblock("update"):
                vi = T.axis.remap("S", [i])
                C[vi] = C[vi] + A[vi] * B[vi]


@T.prim_func(s_tir=True)
def fma_8_elementwise_mirrored_desc(
    A: T.Buffer((8,), "float32", offset_factor=1),
    B: T.Buffer((8,), "float32", offset_factor=1),
    C: T.Buffer((8,), "float32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:8], B[0:8], A[0:8])
        T.writes(C[0:8])
        for i in T.serial(0, 8):
            with T.sblock("update"):
                vi = T.axis.remap("S", [i])
                C[vi] = C[vi] + B[vi] * A[vi]


@T.prim_func(s_tir=True)
def fma_8_elementwise_impl(
    A: T.Buffer((8,), "float32", offset_factor=1, strides=[1]),
    B: T.Buffer((8,), "float32", offset_factor=1, strides=[1]),
    C: T.Buffer((8,), "float32", offset_factor=1, strides=[1]),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:8], A[0:8], B[0:8])
        T.writes(C[0:8])
        C[T.ramp(T.int32(0), 1, 8)] = T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id("llvm.fma.v8f32"),
            A.vload([0], dtype="float32x8"),
            B.vload([0], dtype="float32x8"),
            C.vload([0], dtype="float32x8"),
            dtype="float32x8",
        )


PAIRS = {
    FMA_8: (fma_8_desc, fma_8_impl),
    FMA_8_MIRRORED: (fma_8_mirrored_desc, fma_8_impl),
    MADD_8X2: (madd_8x2_desc, madd_8x2_impl),
    MAC_8_U8S8: (mac_8_u8s8_desc, mac_8_u8s8_impl),
    FMA_8_ELEMENTWISE: (fma_8_elementwise_desc, fma_8_elementwise_impl),
    FMA_8_ELEMENTWISE_MIRRORED: (fma_8_elementwise_mirrored_desc, fma_8_elementwise_impl),
}

for _name, (_desc, _impl) in PAIRS.items():
    # override: a second import (a reload, another plugin manager) re-registers, not fails.
    TensorIntrin.register(_name, _desc, _impl, override=True)
