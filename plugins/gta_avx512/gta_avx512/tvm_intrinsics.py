"""AVX-512 tensor intrinsics for TVM's TensorIR, registered on import.

Importing this module registers ten desc/impl pairs with ``tvm.s_tir.TensorIntrin``:

- ``gta_avx512_vnni_16x4``: C[16] i32 += sum_k A[k] u8 (broadcast) * B[16, 4] s8 (vpdpbusd).
- ``gta_avx512_vnni_16x4_act_lanes``: the same instruction with the roles swapped, the 16
  lanes coming from the u8 activation and the 4-wide weight word broadcast.
- ``gta_avx512_vnni_dot_16x4``: C[i] i32 += sum_k A[4i + k] u8 * B[4i + k] s8, both operands
  in the lanes (64 contiguous bytes each): a dot product over one contiguous axis split into 16
  partial sums of 4 terms (a GEMV's rows read in place, summed over K by an rfactor).
- ``gta_avx512_bf16_16x2``: C[16] f32 += sum_k A[k] bf16 (broadcast) * B[16, 2] bf16 (vdpbf16ps).
- ``gta_avx512_fma_16``: C[16] f32 += A[0] f32 (broadcast) * B[16] f32 (vfmadd on zmm).
- ``gta_avx512_mac_16_u8s8``: C[16] s32 += A[16] u8 * B[16] s8, lane by lane (zero- and
  sign-extend to 32 bits, multiply, add: LLVM emits vpmovzxbd, vpmovsxbd and one vpdpwssd,
  the extended values fitting its 16-bit halves; vpmulld + vpaddd without VNNI).
- ``gta_avx512_fma_16_elementwise``: C[16] f32 += A[16] f32 * B[16] f32, lane by lane (vfmadd).
- ``gta_avx512_mac_16_u8s8_bcast``: C[16] s32 += A[16] u8 * B[0] s8 (broadcast): the int8
  counterpart of ``fma_16``, lanes from the activation and one weight for all of them.
- ``gta_avx512_vnni_window_16x4``: C[i] s32 += sum_k A[i + k] u8 * B[k] s8, a 1-D convolution of
  4 taps over 19 consecutive bytes: vpermt2b spreads them into the 16 overlapping 4-byte words
  vpdpbusd takes, with the 4 weights broadcast.
- ``gta_avx512_vnni_lanes_16x3``: C[i] s32 += sum_{k<3} A[k, i] u8 * B[i, k] s8, both operands
  in the lanes: 48 contiguous bytes of A (3 rows of 16 lanes: a depthwise convolution's 3 taps
  of 16 channels in NCHW16c) and of B spread into 16 words of 4 (the fourth byte 0) by a byte
  permute each, then one vpdpbusd. A depthwise 3x3 takes three where the elementwise
  ``mac_16_u8s8`` takes nine, each three instructions.

(Plus ``_mirrored`` descs of the same-dtype ones, see below.)

Why not TVM's own ``dot_16x4_vnni``: it passes ``<16 x i32>`` multiplicands to
``llvm.x86.avx512.vpdpbusd.512``, which this LLVM declares with ``<64 x i8>``, so it fails LLVM
verification. Why not import it from ``tvm.s_tir.tensor_intrin.x86``: that triggers the package
``__init__``, which imports ``cuda.py`` (~17 s); the desc is copied here instead.

Every impl declares explicit strides for the multi-row operand: without them, tensorizing over a
window that is not contiguous (e.g. weights as plain [N, K]) builds and silently computes garbage;
with them the build fails with "buffer match constraint ... unmet".
"""

from __future__ import annotations

from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T
from tvm.tirx import PrimFunc

VNNI_16X4 = "gta_avx512_vnni_16x4"
VNNI_16X4_ACT_LANES = "gta_avx512_vnni_16x4_act_lanes"
VNNI_DOT_16X4 = "gta_avx512_vnni_dot_16x4"
BF16_16X2 = "gta_avx512_bf16_16x2"
FMA_16 = "gta_avx512_fma_16"
MAC_16_U8S8 = "gta_avx512_mac_16_u8s8"
FMA_16_ELEMENTWISE = "gta_avx512_fma_16_elementwise"
MAC_16_U8S8_BCAST = "gta_avx512_mac_16_u8s8_bcast"
VNNI_WINDOW_16X4 = "gta_avx512_vnni_window_16x4"
VNNI_LANES_16X3 = "gta_avx512_vnni_lanes_16x3"

INTRINSIC_NAMES: dict[str, str] = {
    "vnni": VNNI_16X4,
    "vnni_act_lanes": VNNI_16X4_ACT_LANES,
    "vnni_dot": VNNI_DOT_16X4,
    "bf16": BF16_16X2,
    "fma": FMA_16,
    "mac16_u8s8": MAC_16_U8S8,
    "fma16_elementwise": FMA_16_ELEMENTWISE,
    "mac16_u8s8_bcast": MAC_16_U8S8_BCAST,
    "vnni_window": VNNI_WINDOW_16X4,
    "vnni_lanes": VNNI_LANES_16X3,
}

_VPDPBUSD = "llvm.x86.avx512.vpdpbusd.512"

# ---------------------------------------------------------------------------------------------
# VNNI, lanes from the weights: A = u8 activation word (broadcast), B = s8 weights [16, 4].
# ---------------------------------------------------------------------------------------------


@T.prim_func(s_tir=True)
def vnni_16x4_desc(
    A: T.Buffer((4,), "uint8", offset_factor=1),
    B: T.Buffer((16, 4), "int8", offset_factor=1),
    C: T.Buffer((16,), "int32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:4], B[0:16, 0:4])
        T.writes(C[0:16])
        for i in T.serial(0, 16):
            for k in T.serial(0, 4):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")


@T.prim_func(s_tir=True)
def vnni_16x4_impl(
    A: T.Buffer((4,), "uint8", offset_factor=1, strides=[1]),
    B: T.Buffer((16, 4), "int8", offset_factor=1, strides=[4, 1]),
    C: T.Buffer((16,), "int32", offset_factor=1, strides=[1]),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:4], B[0:16, 0:4])
        T.writes(C[0:16])
        # The 4 u8 bytes as one i32, broadcast to 16 lanes, then seen as the <64 x i8> operand
        # this LLVM's vpdpbusd.512 declares (first multiplicand is the unsigned one).
        a_word = T.reinterpret(A.vload([0], "uint8x4"), dtype="int32")
        C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id(_VPDPBUSD),
            C.vload([0], dtype="int32x16"),
            T.reinterpret(T.broadcast(a_word, 16), dtype="int8x64"),
            B.vload([0, 0], dtype="int8x64"),
            dtype="int32x16",
        )


# ---------------------------------------------------------------------------------------------
# VNNI, lanes from the activation: A = s8 weight word (broadcast), B = u8 activation [16, 4].
# The block to tensorize is `C += data(u8) * weight(s8)`: it reads C, then the u8 data, then the
# s8 weights, and tensorize compares reads by position, so the desc reads (and multiplies) B
# before A.
# ---------------------------------------------------------------------------------------------


@T.prim_func(s_tir=True)
def vnni_16x4_act_lanes_desc(
    A: T.Buffer((4,), "int8", offset_factor=1),
    B: T.Buffer((16, 4), "uint8", offset_factor=1),
    C: T.Buffer((16,), "int32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], B[0:16, 0:4], A[0:4])
        T.writes(C[0:16])
        for i in T.serial(0, 16):
            for k in T.serial(0, 4):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.cast(B[vi, vk], "int32") * T.cast(A[vk], "int32")


@T.prim_func(s_tir=True)
def vnni_16x4_act_lanes_impl(
    A: T.Buffer((4,), "int8", offset_factor=1, strides=[1]),
    B: T.Buffer((16, 4), "uint8", offset_factor=1, strides=[4, 1]),
    C: T.Buffer((16,), "int32", offset_factor=1, strides=[1]),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], B[0:16, 0:4], A[0:4])
        T.writes(C[0:16])
        a_word = T.reinterpret(A.vload([0], "int8x4"), dtype="int32")
        # B (u8) goes in vpdpbusd's unsigned slot, the broadcast s8 weights in the signed one.
        C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id(_VPDPBUSD),
            C.vload([0], dtype="int32x16"),
            T.reinterpret(B.vload([0, 0], dtype="uint8x64"), dtype="int8x64"),
            T.reinterpret(T.broadcast(a_word, 16), dtype="int8x64"),
            dtype="int32x16",
        )


# ---------------------------------------------------------------------------------------------
# VNNI with both operands in the lanes: 64 contiguous u8 and 64 contiguous s8, multiplied byte by
# byte and summed in groups of 4 into 16 partial sums. A reduction over one contiguous axis (a
# GEMV's K) split as (16 lanes, 4 terms) runs as one vpdpbusd per 64 terms, both read in place.
# ---------------------------------------------------------------------------------------------


@T.prim_func(s_tir=True)
def vnni_dot_16x4_desc(
    A: T.Buffer((64,), "uint8", offset_factor=1),
    B: T.Buffer((64,), "int8", offset_factor=1),
    C: T.Buffer((16,), "int32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:64], B[0:64])
        T.writes(C[0:16])
        for i in T.serial(0, 16):
            for k in T.serial(0, 4):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.cast(A[vi * 4 + vk], "int32") * T.cast(B[vi * 4 + vk],
                                                                             "int32")


@T.prim_func(s_tir=True)
def vnni_dot_16x4_impl(
    A: T.Buffer((64,), "uint8", offset_factor=1, strides=[1]),
    B: T.Buffer((64,), "int8", offset_factor=1, strides=[1]),
    C: T.Buffer((16,), "int32", offset_factor=1, strides=[1]),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:64], B[0:64])
        T.writes(C[0:16])
        C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id(_VPDPBUSD),
            C.vload([0], dtype="int32x16"),
            T.reinterpret(A.vload([0], dtype="uint8x64"), dtype="int8x64"),
            B.vload([0], dtype="int8x64"),
            dtype="int32x16",
        )


# ---------------------------------------------------------------------------------------------
# VNNI over a sliding window: lane i takes the bytes A[i : i + 4] (a 1-D convolution's taps). The
# 19 bytes come in two 16-byte loads (A[0:16] and A[3:19], never past the window) and one
# shuffle (vpermt2b) lays out the 16 overlapping words.
# ---------------------------------------------------------------------------------------------


def _sliding_words(low, high):
    """The 64 bytes [A[i + k] for i < 16 for k < 4] from ``low`` = A[0:16], ``high`` = A[3:19].

    (Shuffle wants as many input lanes as output ones: the pair is passed twice.)
    """
    from tvm import tirx

    picks = [i + k if i + k < 16 else 16 + i + k - 3 for i in range(16) for k in range(4)]
    return tirx.Shuffle([low, high, low, high], [tirx.IntImm("int32", p) for p in picks])


@T.prim_func(s_tir=True)
def vnni_window_16x4_desc(
    A: T.Buffer((19,), "uint8", offset_factor=1),
    B: T.Buffer((4,), "int8", offset_factor=1),
    C: T.Buffer((16,), "int32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:19], B[0:4])
        T.writes(C[0:16])
        for i in T.serial(0, 16):
            for k in T.serial(0, 4):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.cast(A[vi + vk], "int32") * T.cast(B[vk], "int32")


@T.prim_func(s_tir=True)
def vnni_window_16x4_impl(
    A: T.Buffer((19,), "uint8", offset_factor=1, strides=[1]),
    B: T.Buffer((4,), "int8", offset_factor=1, strides=[1]),
    C: T.Buffer((16,), "int32", offset_factor=1, strides=[1]),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:19], B[0:4])
        T.writes(C[0:16])
        b_word = T.reinterpret(B.vload([0], "int8x4"), dtype="int32")
        C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id(_VPDPBUSD),
            C.vload([0], dtype="int32x16"),
            T.reinterpret(_sliding_words(A.vload([0], "uint8x16"), A.vload([3], "uint8x16")),
                          dtype="int8x64"),
            T.reinterpret(T.broadcast(b_word, 16), dtype="int8x64"),
            dtype="int32x16",
        )


# ---------------------------------------------------------------------------------------------
# VNNI with both operands in the lanes, 3 taps: A[k, i] (3 rows of 16 lanes, as NCHW16c holds
# 3 consecutive pixels) and B[i, k] spread into the [i, 4] words vpdpbusd takes, each word's
# fourth byte 0. 48-byte loads: a 64-byte one would read past a row's last window.
# ---------------------------------------------------------------------------------------------


def _words_of_three(thirds, dtype: str, row_major: bool):
    """The 64 bytes [v[i, k] for i < 16 for k < 4] (0 for k = 3) of 48 bytes holding v as
    [k, i] (``row_major``: A) or [i, k] (B), loaded as three 16-byte ``thirds``: one vpermb
    over them and zeros. (Loaded as one 48-byte vector, or as unequal parts, the permute went
    byte by byte; 64 bytes would read past the window.)"""
    from tvm import tirx

    zeros = tirx.Broadcast(tirx.IntImm(dtype, 0), 16)
    picks = [(k * 16 + i if row_major else i * 3 + k) if k < 3 else 48
             for i in range(16) for k in range(4)]
    return tirx.Shuffle([*thirds, zeros], [tirx.IntImm("int32", p) for p in picks])


@T.prim_func(s_tir=True)
def vnni_lanes_16x3_desc(
    A: T.Buffer((3, 16), "uint8", offset_factor=1),
    B: T.Buffer((16, 3), "int8", offset_factor=1),
    C: T.Buffer((16,), "int32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:3, 0:16], B[0:16, 0:3])
        T.writes(C[0:16])
        for i in T.serial(0, 16):
            for k in T.serial(0, 3):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.cast(A[vk, vi], "int32") * T.cast(B[vi, vk], "int32")


@T.prim_func(s_tir=True)
def vnni_lanes_16x3_impl(
    A: T.Buffer((3, 16), "uint8", offset_factor=1, strides=[16, 1]),
    B: T.Buffer((16, 3), "int8", offset_factor=1, strides=[3, 1]),
    C: T.Buffer((16,), "int32", offset_factor=1, strides=[1]),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:3, 0:16], B[0:16, 0:3])
        T.writes(C[0:16])
        C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id(_VPDPBUSD),
            C.vload([0], dtype="int32x16"),
            T.reinterpret(_words_of_three([A.vload([k, 0], "uint8x16") for k in range(3)],
                                          "uint8", True), dtype="int8x64"),
            _words_of_three([B.vload(at, "int8x16") for at in ([0, 0], [5, 1], [10, 2])],
                            "int8", False),
            dtype="int32x16",
        )


# ---------------------------------------------------------------------------------------------
# BF16: vdpbf16ps.512 takes <32 x bfloat> operands, which no TVM dtype lowers to (bfloat16
# vectors are legalised to float), so a tiny LLVM IR wrapper takes <32 x i16> and bitcasts.
# alwaysinline: the call is inlined at every tensorized site (checked: no call left in the asm);
# linkonce_odr: no out-of-line copy survives, and duplicate imports would merge, not clash.
# ---------------------------------------------------------------------------------------------

_BF16_WRAPPER = "gta_avx512_vdpbf16ps_512"

_BF16_WRAPPER_LL = f"""
declare <16 x float> @llvm.x86.avx512bf16.dpbf16ps.512(<16 x float>, <32 x bfloat>, <32 x bfloat>)

define linkonce_odr <16 x float> @{_BF16_WRAPPER}(<16 x float> %c, <32 x i16> %a, <32 x i16> %b)
    alwaysinline {{
  %ab = bitcast <32 x i16> %a to <32 x bfloat>
  %bb = bitcast <32 x i16> %b to <32 x bfloat>
  %r = call <16 x float> @llvm.x86.avx512bf16.dpbf16ps.512(<16 x float> %c, <32 x bfloat> %ab,
                                                           <32 x bfloat> %bb)
  ret <16 x float> %r
}}
"""


@T.prim_func(s_tir=True)
def bf16_16x2_desc(
    A: T.Buffer((2,), "bfloat16", offset_factor=1),
    B: T.Buffer((16, 2), "bfloat16", offset_factor=1),
    C: T.Buffer((16,), "float32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:2], B[0:16, 0:2])
        T.writes(C[0:16])
        for i in T.serial(0, 16):
            for k in T.serial(0, 2):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.cast(A[vk], "float32") * T.cast(B[vi, vk], "float32")


# TVM's BF16ComputeLegalize turns bf16 buffers a function allocates (the packed copies a
# realised mapping makes) into float32 ones, so the impl cannot count on bf16 bits in memory.
# It loads both operands as float32 vectors, exact copies of bf16 values either way, and this
# wrapper narrows them back (vcvtne2ps2bf16, exact) before vdpbf16ps.
_BF16_F32_WRAPPER = "gta_avx512_vdpbf16ps_512_from_f32"
_BF16_F32_WRAPPER_LL = f"""
declare <16 x float> @llvm.x86.avx512bf16.dpbf16ps.512(<16 x float>, <32 x bfloat>, <32 x bfloat>)
define linkonce_odr <16 x float> @{_BF16_F32_WRAPPER}(<16 x float> %c, <2 x float> %a,
                                                      <32 x float> %b) alwaysinline {{
  %a2 = fptrunc <2 x float> %a to <2 x bfloat>
  %ab = shufflevector <2 x bfloat> %a2, <2 x bfloat> poison, <32 x i32> <{", ".join(
      f"i32 {i % 2}" for i in range(32))}>
  %bb = fptrunc <32 x float> %b to <32 x bfloat>
  %r = call <16 x float> @llvm.x86.avx512bf16.dpbf16ps.512(<16 x float> %c, <32 x bfloat> %ab,
                                                           <32 x bfloat> %bb)
  ret <16 x float> %r
}}
"""


@T.prim_func(s_tir=True)
def bf16_16x2_impl(
    A: T.Buffer((2,), "bfloat16", offset_factor=1, strides=[1]),
    B: T.Buffer((16, 2), "bfloat16", offset_factor=1, strides=[2, 1]),
    C: T.Buffer((16,), "float32", offset_factor=1, strides=[1]),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:2], B[0:16, 0:2])
        T.writes(C[0:16])
        T.attr(0, "pragma_import_llvm", _BF16_F32_WRAPPER_LL)
        C[T.ramp(T.int32(0), 1, 16)] = T.call_pure_extern(
            "float32x16",
            _BF16_F32_WRAPPER,
            C.vload([0], dtype="float32x16"),
            T.Cast("float32x2", A.vload([0], "bfloat16x2")),
            T.Cast("float32x32", B.vload([0, 0], dtype="bfloat16x32")),
        )


# ---------------------------------------------------------------------------------------------
# FP32 FMA: one zmm FMA per call. No reduction axis in the desc: a unit reduction loop would be
# folded away in the workload and never match; the caller keeps its k loop outside.
# ---------------------------------------------------------------------------------------------


@T.prim_func(s_tir=True)
def fma_16_desc(
    A: T.Buffer((1,), "float32", offset_factor=1),
    B: T.Buffer((16,), "float32", offset_factor=1),
    C: T.Buffer((16,), "float32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:1], B[0:16])
        T.writes(C[0:16])
        for i in T.serial(0, 16):
            with T.sblock("update"):
                vi = T.axis.remap("S", [i])
                C[vi] = C[vi] + A[0] * B[vi]


@T.prim_func(s_tir=True)
def fma_16_impl(
    A: T.Buffer((1,), "float32", offset_factor=1),
    B: T.Buffer((16,), "float32", offset_factor=1, strides=[1]),
    C: T.Buffer((16,), "float32", offset_factor=1, strides=[1]),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:1], B[0:16])
        T.writes(C[0:16])
        # llvm.fma rather than mul+add: without fast-math LLVM must not contract the latter.
        C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id("llvm.fma.v16f32"),
            T.broadcast(A[0], 16),
            B.vload([0], dtype="float32x16"),
            C.vload([0], dtype="float32x16"),
            dtype="float32x16",
        )


# ---------------------------------------------------------------------------------------------
# Elementwise: 16 independent lanes, C[i] += A[i] * B[i], no broadcast and no reduction axis (as
# for FMA, the caller keeps its reduction loops outside). Both inputs are windows of 16
# contiguous elements, hence strides=[1] on every impl buffer.
# ---------------------------------------------------------------------------------------------


@T.prim_func(s_tir=True)
def mac_16_u8s8_desc(
    A: T.Buffer((16,), "uint8", offset_factor=1),
    B: T.Buffer((16,), "int8", offset_factor=1),
    C: T.Buffer((16,), "int32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:16], B[0:16])
        T.writes(C[0:16])
        for i in T.serial(0, 16):
            with T.sblock("update"):
                vi = T.axis.remap("S", [i])
                C[vi] = C[vi] + T.cast(A[vi], "int32") * T.cast(B[vi], "int32")


@T.prim_func(s_tir=True)
def mac_16_u8s8_impl(
    A: T.Buffer((16,), "uint8", offset_factor=1, strides=[1]),
    B: T.Buffer((16,), "int8", offset_factor=1, strides=[1]),
    C: T.Buffer((16,), "int32", offset_factor=1, strides=[1]),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:16], B[0:16])
        T.writes(C[0:16])
        # Plain vector casts, multiply and add: LLVM selects vpmovzxbd / vpmovsxbd (folding the
        # 16-byte loads) and fuses the multiply-add into vpdpwssd, since both extended values
        # fit in the low 16 bits of their lanes (checked in the asm); exact either way.
        C[T.ramp(T.int32(0), 1, 16)] = C.vload([0], dtype="int32x16") + T.Cast(
            "int32x16", A.vload([0], dtype="uint8x16")) * T.Cast(
            "int32x16", B.vload([0], dtype="int8x16"))


# The same widening multiply-add with the weight broadcast: lanes from a convolution's output
# columns (a depthwise convolution reads its padded input in place, 16 columns at a time, and
# one weight tap for all of them).


@T.prim_func(s_tir=True)
def mac_16_u8s8_bcast_desc(
    A: T.Buffer((16,), "uint8", offset_factor=1),
    B: T.Buffer((1,), "int8", offset_factor=1),
    C: T.Buffer((16,), "int32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:16], B[0:1])
        T.writes(C[0:16])
        for i in T.serial(0, 16):
            with T.sblock("update"):
                vi = T.axis.remap("S", [i])
                C[vi] = C[vi] + T.cast(A[vi], "int32") * T.cast(B[0], "int32")


@T.prim_func(s_tir=True)
def mac_16_u8s8_bcast_impl(
    A: T.Buffer((16,), "uint8", offset_factor=1, strides=[1]),
    B: T.Buffer((1,), "int8", offset_factor=1),
    C: T.Buffer((16,), "int32", offset_factor=1, strides=[1]),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:16], B[0:1])
        T.writes(C[0:16])
        C[T.ramp(T.int32(0), 1, 16)] = C.vload([0], dtype="int32x16") + T.Cast(
            "int32x16", A.vload([0], dtype="uint8x16")) * T.broadcast(T.Cast("int32", B[0]), 16)


@T.prim_func(s_tir=True)
def fma_16_elementwise_desc(
    A: T.Buffer((16,), "float32", offset_factor=1),
    B: T.Buffer((16,), "float32", offset_factor=1),
    C: T.Buffer((16,), "float32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:16], B[0:16])
        T.writes(C[0:16])
        for i in T.serial(0, 16):
            with T.sblock("update"):
                vi = T.axis.remap("S", [i])
                C[vi] = C[vi] + A[vi] * B[vi]


@T.prim_func(s_tir=True)
def fma_16_elementwise_impl(
    A: T.Buffer((16,), "float32", offset_factor=1, strides=[1]),
    B: T.Buffer((16,), "float32", offset_factor=1, strides=[1]),
    C: T.Buffer((16,), "float32", offset_factor=1, strides=[1]),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:16], B[0:16])
        T.writes(C[0:16])
        C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id("llvm.fma.v16f32"),
            A.vload([0], dtype="float32x16"),
            B.vload([0], dtype="float32x16"),
            C.vload([0], dtype="float32x16"),
            dtype="float32x16",
        )


# ---------------------------------------------------------------------------------------------
# Mirrored descs: the same computation with the inputs multiplied (and read) in the other order.
# Tensorize matches a block's reads by position, so a block computing `C += data * weight` with
# the weight as the broadcast operand A needs these; the impls are the plain ones.
# ---------------------------------------------------------------------------------------------


@T.prim_func(s_tir=True)
def bf16_16x2_mirrored_desc(
    A: T.Buffer((2,), "bfloat16", offset_factor=1),
    B: T.Buffer((16, 2), "bfloat16", offset_factor=1),
    C: T.Buffer((16,), "float32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], B[0:16, 0:2], A[0:2])
        T.writes(C[0:16])
        for i in T.serial(0, 16):
            for k in T.serial(0, 2):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.cast(B[vi, vk], "float32") * T.cast(A[vk], "float32")


@T.prim_func(s_tir=True)
def fma_16_mirrored_desc(
    A: T.Buffer((1,), "float32", offset_factor=1),
    B: T.Buffer((16,), "float32", offset_factor=1),
    C: T.Buffer((16,), "float32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], B[0:16], A[0:1])
        T.writes(C[0:16])
        for i in T.serial(0, 16):
            with T.sblock("update"):
                vi = T.axis.remap("S", [i])
                C[vi] = C[vi] + B[vi] * A[0]


@T.prim_func(s_tir=True)
def fma_16_elementwise_mirrored_desc(
    A: T.Buffer((16,), "float32", offset_factor=1),
    B: T.Buffer((16,), "float32", offset_factor=1),
    C: T.Buffer((16,), "float32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], B[0:16], A[0:16])
        T.writes(C[0:16])
        for i in T.serial(0, 16):
            with T.sblock("update"):
                vi = T.axis.remap("S", [i])
                C[vi] = C[vi] + B[vi] * A[vi]


BF16_16X2_MIRRORED = "gta_avx512_bf16_16x2_mirrored"
FMA_16_MIRRORED = "gta_avx512_fma_16_mirrored"
FMA_16_ELEMENTWISE_MIRRORED = "gta_avx512_fma_16_elementwise_mirrored"

_PAIRS: dict[str, tuple[PrimFunc, PrimFunc]] = {
    BF16_16X2_MIRRORED: (bf16_16x2_mirrored_desc, bf16_16x2_impl),
    FMA_16_MIRRORED: (fma_16_mirrored_desc, fma_16_impl),
    VNNI_16X4: (vnni_16x4_desc, vnni_16x4_impl),
    VNNI_16X4_ACT_LANES: (vnni_16x4_act_lanes_desc, vnni_16x4_act_lanes_impl),
    VNNI_DOT_16X4: (vnni_dot_16x4_desc, vnni_dot_16x4_impl),
    BF16_16X2: (bf16_16x2_desc, bf16_16x2_impl),
    FMA_16: (fma_16_desc, fma_16_impl),
    MAC_16_U8S8: (mac_16_u8s8_desc, mac_16_u8s8_impl),
    MAC_16_U8S8_BCAST: (mac_16_u8s8_bcast_desc, mac_16_u8s8_bcast_impl),
    VNNI_WINDOW_16X4: (vnni_window_16x4_desc, vnni_window_16x4_impl),
    VNNI_LANES_16X3: (vnni_lanes_16x3_desc, vnni_lanes_16x3_impl),
    FMA_16_ELEMENTWISE: (fma_16_elementwise_desc, fma_16_elementwise_impl),
    FMA_16_ELEMENTWISE_MIRRORED: (fma_16_elementwise_mirrored_desc, fma_16_elementwise_impl),
}


def register_all() -> None:
    """Register every intrinsic; idempotent (a name already present is replaced, not refused)."""
    for name, (desc, impl) in _PAIRS.items():
        TensorIntrin.register(name, desc, impl, override=True)


register_all()
