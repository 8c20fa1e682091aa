"""The ``avx512`` target: this CPU with AVX-512 VNNI, BF16 and FP32 FMA intrinsics."""

from __future__ import annotations

import ctypes
import os

from gta_core.sdk import (
    Intrinsic,
    IntrinsicCompute,
    IterVar,
    Operand,
    Resources,
    Target,
    cpu_cache_bytes,
    cpu_cores,
    cpu_flags,
    cpu_vendor,
    hookimpl,
)

GTA_API_VERSION = "1.2"  # the gta_core.sdk this plugin is written for

TARGET = "avx512"
TVM_MODULE = "gta_avx512.tvm_intrinsics"
AMX_MODULE = "gta_avx512.amx"


def llvm_cpu(vendor: str, flags: set[str]) -> str:
    """LLVM's name for a CPU with this one's AVX-512 and nothing it lacks.

    Programs are built for it and run here: LLVM's ``znver4`` also enables AMD's SSE4A, and
    its shuffles stop an Intel core with SIGILL (seen on an Emerald Rapids host). Where the
    CPU has no AVX-512 (a machine that only builds), ``znver4``: AVX-512 F/BW/DQ/VL/VNNI/BF16.
    """
    if vendor != "GenuineIntel" or "avx512f" not in flags:
        return "znver4"
    # Sapphire/Emerald Rapids: AVX512-FP16 with BF16. AMX is not required (a VM may hide
    # it), and LLVM never emits AMX, TSX or UINTR instructions without their intrinsics.
    if {"avx512_fp16", "avx512_bf16"} <= flags:
        return "sapphirerapids"
    if "avx512_bf16" in flags:
        return "cooperlake"
    if "avx512_vbmi2" in flags:
        return "icelake-server"
    return "cascadelake" if "avx512_vnni" in flags else "skylake-avx512"


MCPU = os.environ.get("GTA_AVX512_MCPU") or llvm_cpu(cpu_vendor(), cpu_flags())


def host_flags(mcpu: str) -> list[str]:
    """What a CPU needs (/proc/cpuinfo's names) to run the programs built for ``mcpu``: the
    AVX-512 subsets LLVM's vectors use, VNNI and, where ``mcpu`` has it, BF16."""
    flags = ["avx512f", "avx512bw", "avx512dq", "avx512vl"]
    if mcpu != "skylake-avx512":
        flags.append("avx512_vnni")
    if mcpu not in ("skylake-avx512", "cascadelake", "icelake-server"):
        flags.append("avx512_bf16")
    return flags

# LLVM tunes its Intel AVX-512 server CPUs to prefer 256-bit vectors, so the loops it
# vectorises itself (an erf polynomial, an elementwise tail) ran at half width there; the
# intrinsics and TVM's own vector loops are 512-bit either way.
MATTR = [] if MCPU.startswith("znver") else ["-prefer-256-bit"]

# Nominal peaks: two 512-bit FMA-class instructions per cycle per core (what `gta peak`
# measured on this Zen 5 machine: vpdpbusd, vdpbf16ps and vfmadd alike) at an assumed
# 3.7 GHz. `gta peak` measures the real figures; these only stand in until then.
_GHZ = 3.7
_PER_CYCLE = {"float32": 2 * 16 * 2, "bfloat16": 2 * 32 * 2, "int8": 2 * 64 * 2}


# syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA): Linux's permission to use
# the tile data, asked here and at the entry of every program using the tiles (gta_avx512.amx).
ASK_FOR_TILE_DATA = (158, 0x1023, 18)


def amx_refused() -> str | None:
    """None when this host's programs may use AMX-INT8 tiles, else why not.

    Asks Linux for the tile data (``arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)``),
    which a VM or an old kernel may refuse though the CPU has the tiles.
    """
    if not {"amx_tile", "amx_int8"} <= cpu_flags():
        return "this CPU has no AMX-INT8"
    if MCPU not in ("sapphirerapids", "emeraldrapids", "graniterapids"):
        return f"programs are built for {MCPU}, which has no AMX"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(*ASK_FOR_TILE_DATA) != 0:
        return f"the kernel refused AMX tile data (errno {ctypes.get_errno()})"
    return None


AMX = amx_refused() is None


def _target() -> Target:
    cores = cpu_cores()
    return Target(
        name=TARGET,
        description=f"x86-64 CPU with AVX-512 VNNI/BF16 (LLVM mcpu={MCPU}), {cores} cores",
        kind="cpu",
        tvm={"kind": "llvm", "mcpu": MCPU, "num-cores": cores,
             **({"mattr": MATTR} if MATTR else {})},
        resources=Resources(
            cores=cores, cache_bytes=cpu_cache_bytes(), vector_registers=32, vector_width_bits=512
        ),
        peak={dtype: cores * per_cycle * _GHZ for dtype, per_cycle in _PER_CYCLE.items()},
        tir_pipeline=f"{AMX_MODULE}:gta_amx" if AMX else None,
        host_flags=host_flags(MCPU),
    )


def _dot_product(name, description, lanes, depth, broadcast, lane_operand, out, tvm_name,
                 lanes_first=False, mirrored=None):
    """``out[i] += sum_k broadcast[k] * lane_operand[i, k]``: a 16-lane dot product.

    Inputs are declared in the order the TVM intrinsic reads them (``lanes_first``:
    the lane operand first), since tensorize matches a block's reads by position.
    """
    a, a_dtype = broadcast
    b, b_dtype = lane_operand
    inputs = [Operand(name=a, role="input", dtype=a_dtype, indices=["k"]),
              Operand(name=b, role="input", dtype=b_dtype, indices=["i", "k"])]
    return Intrinsic(
        name=name,
        target=TARGET,
        description=description,
        compute=IntrinsicCompute(
            iter_vars=[IterVar(name="i", extent=lanes, kind="spatial"),
                       IterVar(name="k", extent=depth, kind="reduce")],
            operands=[*(reversed(inputs) if lanes_first else inputs),
                      Operand(name="C", role="output", dtype=out, indices=["i"])],
        ),
        tvm_intrinsics={"compute": tvm_name,
                        **({"compute_mirrored": mirrored} if mirrored else {})},
        tvm_module=TVM_MODULE,
    )


def _lanes(name, description, a, b, out, tvm_name, mirrored=None):
    """``C[i] += A[a_index] * B[b_index]``: 16 lanes and no reduction axis (the caller keeps
    its reduction loops outside). ``a`` and ``b`` are (dtype, index): ``"i"`` for an operand
    in the lanes, ``"0"`` for one broadcast to all of them.

    With both in the lanes (elementwise), every operand depends on the one lane variable, so
    the lanes can only come from an operator loop that all three tensors share (a depthwise
    convolution's channels); with one broadcast, from a loop the broadcast operand lacks.
    """
    return Intrinsic(
        name=name,
        target=TARGET,
        description=description,
        compute=IntrinsicCompute(
            iter_vars=[IterVar(name="i", extent=16, kind="spatial")],
            operands=[Operand(name="A", role="input", dtype=a[0], indices=[a[1]]),
                      Operand(name="B", role="input", dtype=b[0], indices=[b[1]]),
                      Operand(name="C", role="output", dtype=out, indices=["i"])],
        ),
        tvm_intrinsics={"compute": tvm_name,
                        **({"compute_mirrored": mirrored} if mirrored else {})},
        tvm_module=TVM_MODULE,
    )


def _u8s8_words(name, description, depth, a_indices, b_indices, tvm_name):
    """``C[i] += sum_k A[a_indices] * B[b_indices]``: vpdpbusd's 16 s32 lanes, each summing
    ``depth`` u8 x s8 products, with the operands laid into its 4-byte words by the TVM
    intrinsic ``tvm_name`` (a permute, a shuffle, or none)."""
    return Intrinsic(
        name=name,
        target=TARGET,
        description=description,
        compute=IntrinsicCompute(
            iter_vars=[IterVar(name="i", extent=16, kind="spatial"),
                       IterVar(name="k", extent=depth, kind="reduce")],
            operands=[
                Operand(name="A", role="input", dtype="uint8", indices=a_indices),
                Operand(name="B", role="input", dtype="int8", indices=b_indices),
                Operand(name="C", role="output", dtype="int32", indices=["i"]),
            ],
        ),
        tvm_intrinsics={"compute": tvm_name},
        tvm_module=TVM_MODULE,
    )


INTRINSICS = (
    _dot_product("vnni", "vpdpbusd: 16 lanes x 4 u8*s8 products into s32, weights in lanes",
                 16, 4, ("A", "uint8"), ("B", "int8"), "int32", "gta_avx512_vnni_16x4"),
    _dot_product("vnni-act-lanes", "vpdpbusd with roles swapped: 16 u8 activations in lanes, "
                 "s8 weight broadcast", 16, 4, ("A", "int8"), ("B", "uint8"), "int32",
                 "gta_avx512_vnni_16x4_act_lanes", lanes_first=True),
    _dot_product("bf16", "vdpbf16ps: 16 lanes x 2 bf16*bf16 products into f32",
                 16, 2, ("A", "bfloat16"), ("B", "bfloat16"), "float32", "gta_avx512_bf16_16x2",
                 mirrored="gta_avx512_bf16_16x2_mirrored"),
    _lanes("fma", "vfmadd231ps: 16 f32 lanes += broadcast scalar * vector",
           ("float32", "0"), ("float32", "i"), "float32", "gta_avx512_fma_16",
           mirrored="gta_avx512_fma_16_mirrored"),
    _lanes("mac16-u8s8", "16 s32 lanes += u8 * s8, elementwise (no broadcast): "
           "vpmovzxbd + vpmovsxbd, then vpdpwssd (vpmulld + vpaddd without VNNI)",
           ("uint8", "i"), ("int8", "i"), "int32", "gta_avx512_mac_16_u8s8"),
    _lanes("mac16-u8s8-bcast", "16 s32 lanes += u8 lanes * one s8 (broadcast): vpmovzxbd, "
           "then vpdpwssd (vpmulld + vpaddd without VNNI)",
           ("uint8", "i"), ("int8", "0"), "int32", "gta_avx512_mac_16_u8s8_bcast"),
    _u8s8_words("vnni-lanes", "vpdpbusd with both operands in the lanes: C[i] += sum_k "
                "A[k, i] * B[i, k], 3 rows of 16 u8 lanes (a depthwise convolution's 3 taps "
                "in NCHW16c) and s8 weights [i, k], each spread into 4-byte words by a permute",
                3, ["k", "i"], ["i", "k"], "gta_avx512_vnni_lanes_16x3"),
    _u8s8_words("vnni-dot", "vpdpbusd with both operands in the lanes: C[i] += sum_k "
                "A[4i + k] * B[4i + k], 64 contiguous u8 and s8 each (a reduction over one "
                "contiguous axis, split into 16 partial sums of 4 by an rfactor: a GEMV's rows)",
                4, ["4*i + k"], ["4*i + k"], "gta_avx512_vnni_dot_16x4"),
    _u8s8_words("vnni-window", "vpdpbusd over a sliding window: C[i] += sum_k A[i + k] * B[k], "
                "16 lanes of 4 consecutive u8 taps (one vpermt2b) times 4 broadcast s8 weights",
                4, ["i + k"], ["k"], "gta_avx512_vnni_window_16x4"),
    _lanes("fma16-elementwise", "vfmadd231ps: 16 f32 lanes += vector * vector, "
           "elementwise (no broadcast)", ("float32", "i"), ("float32", "i"), "float32",
           "gta_avx512_fma_16_elementwise", mirrored="gta_avx512_fma_16_elementwise_mirrored"),
)

def _amx(depth: int, a: str, b: str) -> Intrinsic:
    """``C[i, j] += A[i, k] * B[k, j]`` over 32 x 32 outputs (2 x 2 AMX tiles) and ``depth``
    of k, ``B`` read in AMX's layout (``k // 4, j, k % 4``); every operand is loaded and
    stored by the call itself. ``a``/``b``: the dtypes (u8 x s8 ``tdpbusd``, s8 x u8
    ``tdpbsud``); the inputs are listed in the order a block multiplying the u8 data by the
    s8 weights reads them."""
    from_a = Operand(name="A", role="input", dtype=a, indices=["i", "k"], held="memory")
    from_b = Operand(name="B", role="input", dtype=b, indices=["k", "j"],
                     layout=["k // 4", "j", "k % 4"], held="memory")
    instruction = "tdpbusd" if a == "uint8" else "tdpbsud"
    return Intrinsic(
        name=f"amx-{_signs(a, b)}-k{depth}",
        target=TARGET,
        description=f"AMX {instruction}: 32 x 32 s32 (2 x 2 tiles) += {a} A[32, {depth}] x "
                    f"{b} B[{depth}, 32], B packed as [k // 4, j, k % 4], accumulators "
                    "loaded and stored per call",
        compute=IntrinsicCompute(
            iter_vars=[IterVar(name="i", extent=32, kind="spatial"),
                       IterVar(name="j", extent=32, kind="spatial"),
                       IterVar(name="k", extent=depth, kind="reduce")],
            operands=[*((from_a, from_b) if a == "uint8" else (from_b, from_a)),
                      Operand(name="C", role="output", dtype="int32", indices=["i", "j"],
                              held="memory")],
        ),
        tvm_intrinsics={"compute": amx_tvm_name(a, b, depth)},
        tvm_module=AMX_MODULE,
    )


def _signs(a: str, b: str) -> str:
    return "".join(("u" if d.startswith("u") else "s") + d.lstrip("uint") for d in (a, b))


def amx_tvm_name(a: str, b: str, depth: int) -> str:
    """The TVM tensor intrinsic (registered by ``gta_avx512.amx``) of one AMX intrinsic."""
    return f"gta_avx512_amx_{_signs(a, b)}_32x32x{depth}"


# 128 deep (a 3 x 3 convolution's c x s over 64 channels, 192, pads by a quarter) and 512
# (3.0 TOPS on a 1024^3 GEMM, weights packed, on a 2-core Xeon: 1.6x its VNNI peak; 64 deep:
# 1.4 TOPS; benchmarks/amx_probe.py).
AMX_DEPTHS = (128, 512)
AMX_SIGNS = (("uint8", "int8"), ("int8", "uint8"))  # tdpbusd, tdpbsud
# Registered only where the host runs them (``amx_refused``).
AMX_INTRINSICS = tuple(_amx(depth, a, b) for a, b in AMX_SIGNS for depth in AMX_DEPTHS) \
    if AMX else ()


@hookimpl
def gta_register_targets(register):
    register(_target())


@hookimpl
def gta_register_intrinsics(register):
    for intrinsic in (*INTRINSICS, *AMX_INTRINSICS):
        register(intrinsic)


@hookimpl
def gta_intrinsic_peak(intrinsic, target):
    if intrinsic.target != TARGET:
        return None
    if intrinsic.tvm_module == AMX_MODULE:
        from .amx_peak import measure_amx_peak
        return measure_amx_peak(intrinsic, target)
    from .peak import measure_peak
    return measure_peak(intrinsic, target)
