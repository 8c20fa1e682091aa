"""AArch64 NEON tensor intrinsics for TVM's TensorIR, registered on import.

- ``gta_arm_fma_4``: C[4] f32 += A[0] f32 (broadcast) * B[4] f32 (fmla), and its mirrored desc.
- ``gta_arm_usdot_4x4``: C[4] s32 += sum_k A[k] u8 (broadcast) * B[4, 4] s8 (usdot, FEAT_I8MM):
  the u8 x s8 dot product GTA's int8 workloads compute, four products per lane. The four
  activation bytes are one 32-bit word broadcast to the four lanes.

(``sdot``/``udot`` compute s8 x s8 and u8 x u8: GTA's int8 workloads are u8 x s8, so they would
map nothing until workloads can ask for signed or unsigned activations.)
"""

from __future__ import annotations

from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T

FMA_4 = "gta_arm_fma_4"
FMA_4_MIRRORED = "gta_arm_fma_4_mirrored"
USDOT_4X4 = "gta_arm_usdot_4x4"


@T.prim_func(s_tir=True)
def fma_4_desc(
    A: T.Buffer((1,), "float32", offset_factor=1),
    B: T.Buffer((4,), "float32", offset_factor=1),
    C: T.Buffer((4,), "float32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:4], A[0:1], B[0:4])
        T.writes(C[0:4])
        for i in T.serial(0, 4):
            with T.sblock("update"):
                vi = T.axis.remap("S", [i])
                C[vi] = C[vi] + A[0] * B[vi]


@T.prim_func(s_tir=True)
def fma_4_mirrored_desc(
    A: T.Buffer((1,), "float32", offset_factor=1),
    B: T.Buffer((4,), "float32", offset_factor=1),
    C: T.Buffer((4,), "float32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:4], B[0:4], A[0:1])
        T.writes(C[0:4])
        for i in T.serial(0, 4):
            with T.sblock("update"):
                vi = T.axis.remap("S", [i])
                C[vi] = C[vi] + B[vi] * A[0]


@T.prim_func(s_tir=True)
def fma_4_impl(
    A: T.Buffer((1,), "float32", offset_factor=1),
    B: T.Buffer((4,), "float32", offset_factor=1, strides=[1]),
    C: T.Buffer((4,), "float32", offset_factor=1, strides=[1]),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:4], A[0:1], B[0:4])
        T.writes(C[0:4])
        C[T.ramp(T.int32(0), 1, 4)] = T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id("llvm.fma.v4f32"),
            T.broadcast(A[0], 4),
            B.vload([0], dtype="float32x4"),
            C.vload([0], dtype="float32x4"),
            dtype="float32x4",
        )


@T.prim_func(s_tir=True)
def usdot_4x4_desc(
    A: T.Buffer((4,), "uint8", offset_factor=1),
    B: T.Buffer((4, 4), "int8", offset_factor=1),
    C: T.Buffer((4,), "int32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:4], A[0:4], B[0:4, 0:4])
        T.writes(C[0:4])
        for i in T.serial(0, 4):
            for k in T.serial(0, 4):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")


@T.prim_func(s_tir=True)
def usdot_4x4_impl(
    A: T.Buffer((4,), "uint8", offset_factor=1, strides=[1]),
    B: T.Buffer((4, 4), "int8", offset_factor=1, strides=[4, 1]),
    C: T.Buffer((4,), "int32", offset_factor=1, strides=[1]),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:4], A[0:4], B[0:4, 0:4])
        T.writes(C[0:4])
        a_word = T.reinterpret(A.vload([0], "uint8x4"), dtype="int32")
        C[T.ramp(T.int32(0), 1, 4)] = T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id("llvm.aarch64.neon.usdot.v4i32.v16i8"),
            C.vload([0], dtype="int32x4"),
            T.reinterpret(T.broadcast(a_word, 4), dtype="uint8x16"),
            B.vload([0, 0], dtype="int8x16"),
            dtype="int32x4",
        )


PAIRS = {
    FMA_4: (fma_4_desc, fma_4_impl),
    FMA_4_MIRRORED: (fma_4_mirrored_desc, fma_4_impl),
    USDOT_4X4: (usdot_4x4_desc, usdot_4x4_impl),
}

for _name, (_desc, _impl) in PAIRS.items():
    TensorIntrin.register(_name, _desc, _impl, override=True)
