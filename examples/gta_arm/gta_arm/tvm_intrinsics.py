"""AArch64 NEON tensor intrinsics for TVM's TensorIR, registered on import.

- ``gta_arm_fma_4``: C[4] f32 += A[0] f32 (broadcast) * B[4] f32 (fmla), and its mirrored desc.
- ``gta_arm_usdot_4x4``: C[4] s32 += sum_k A[k] u8 (broadcast) * B[4, 4] s8 (usdot, FEAT_I8MM):
  the u8 x s8 dot product of GTA's ``int8`` workloads, four products per lane. The four
  activation bytes are one 32-bit word broadcast to the four lanes.
- ``gta_arm_sdot_4x4`` and ``gta_arm_udot_4x4``: the same with s8 x s8 (sdot) and u8 x u8
  (udot), for ``int8_s8s8`` and ``int8_u8u8`` workloads (FEAT_DotProd, Armv8.2-A).
"""

from __future__ import annotations

from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T

FMA_4 = "gta_arm_fma_4"
FMA_4_MIRRORED = "gta_arm_fma_4_mirrored"
USDOT_4X4 = "gta_arm_usdot_4x4"
SDOT_4X4 = "gta_arm_sdot_4x4"
UDOT_4X4 = "gta_arm_udot_4x4"


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


def _dot_4x4(a_dtype: str, b_dtype: str, instruction: str):
    """C[4] s32 += sum_k A[k] (broadcast) * B[4, k]: a NEON dot product with the four
    ``a_dtype`` bytes as one 32-bit word in every lane (``usdot``: A must be the u8 one).
    Returns the desc, the impl, and the desc with the product read the other way round,
    which a block computing ``C += data * weight`` with the weight broadcast matches when
    both operands have one dtype (sdot, udot)."""

    @T.prim_func(s_tir=True)
    def desc(
        A: T.Buffer((4,), a_dtype, offset_factor=1),
        B: T.Buffer((4, 4), b_dtype, offset_factor=1),
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
    def mirrored(
        A: T.Buffer((4,), a_dtype, offset_factor=1),
        B: T.Buffer((4, 4), b_dtype, offset_factor=1),
        C: T.Buffer((4,), "int32", offset_factor=1),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:4], B[0:4, 0:4], A[0:4])
            T.writes(C[0:4])
            for i in T.serial(0, 4):
                for k in T.serial(0, 4):
                    with T.sblock("update"):
                        vi, vk = T.axis.remap("SR", [i, k])
                        C[vi] = C[vi] + T.cast(B[vi, vk], "int32") * T.cast(A[vk], "int32")

    @T.prim_func(s_tir=True)
    def impl(
        A: T.Buffer((4,), a_dtype, offset_factor=1, strides=[1]),
        B: T.Buffer((4, 4), b_dtype, offset_factor=1, strides=[4, 1]),
        C: T.Buffer((4,), "int32", offset_factor=1, strides=[1]),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:4], A[0:4], B[0:4, 0:4])
            T.writes(C[0:4])
            a_word = T.reinterpret(A.vload([0], a_dtype + "x4"), dtype="int32")
            C[T.ramp(T.int32(0), 1, 4)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id(f"llvm.aarch64.neon.{instruction}.v4i32.v16i8"),
                C.vload([0], dtype="int32x4"),
                T.reinterpret(T.broadcast(a_word, 4), dtype=a_dtype + "x16"),
                B.vload([0, 0], dtype=b_dtype + "x16"),
                dtype="int32x4",
            )

    return desc, impl, mirrored


PAIRS = {
    FMA_4: (fma_4_desc, fma_4_impl),
    FMA_4_MIRRORED: (fma_4_mirrored_desc, fma_4_impl),
}
for _name, _a, _b, _instruction in ((USDOT_4X4, "uint8", "int8", "usdot"),
                                    (SDOT_4X4, "int8", "int8", "sdot"),
                                    (UDOT_4X4, "uint8", "uint8", "udot")):
    _desc, _impl, _mirrored = _dot_4x4(_a, _b, _instruction)
    PAIRS[_name] = (_desc, _impl)
    if _a == _b:
        PAIRS[_name + "_mirrored"] = (_mirrored, _impl)

for _name, (_desc, _impl) in PAIRS.items():
    TensorIntrin.register(_name, _desc, _impl, override=True)
