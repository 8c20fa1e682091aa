"""The ``avx2`` target: 256-bit AVX2 + FMA, f32 FMA and an exact widening int8 dot product.

A worked example of a target plugin (docs/plugin-guide.md walks through it): a target, its
intrinsics declared as data, and the TVM tensor intrinsics that implement them
(:mod:`gta_avx2.tvm_intrinsics`). The core's enumerator, CPU rules and constraints do the
rest: they read the target's declared resources, not x86 constants.
"""

from __future__ import annotations

from gta_core.sdk import (
    Intrinsic,
    IntrinsicCompute,
    IterVar,
    Operand,
    Resources,
    Target,
    cpu_cache_bytes,
    cpu_cores,
    hookimpl,
)

GTA_API_VERSION = "1.1"

TARGET = "avx2"
TVM_MODULE = "gta_avx2.tvm_intrinsics"  # imported only when an intrinsic is first used
MCPU = "haswell"  # AVX2 + FMA and nothing newer: runs on any x86-64 CPU that has them

# Nominal peaks per core and cycle, at an assumed 3 GHz, used until `gta peak` measures the
# real ones (the core's generic kernel does, as this plugin has no peak hook):
# two 8-lane FMAs (32 flop); two vpmaddwd of 8 lanes x 2 products (64 int8 ops).
_GHZ = 3.0
_PER_CYCLE = {"float32": 2 * 8 * 2, "int8": 2 * 16 * 2}


def _target() -> Target:
    cores = cpu_cores()
    return Target(
        name=TARGET,
        description=f"x86-64 CPU with AVX2 and FMA (LLVM mcpu={MCPU}), {cores} cores",
        kind="cpu",
        tvm={"kind": "llvm", "mcpu": MCPU, "num-cores": cores},
        host_flags=["avx2", "fma"],  # what its programs use: a CPU without them cannot run them
        resources=Resources(cores=cores, cache_bytes=cpu_cache_bytes(), vector_registers=16,
                            vector_width_bits=256, vector_latency_cycles=4,
                            vector_issue_per_cycle=2),
        peak={dtype: cores * per_cycle * _GHZ for dtype, per_cycle in _PER_CYCLE.items()},
    )


def _lane_by_lane(name: str, description: str, dtypes: tuple[str, str, str], compute: str,
                  mirrored: str | None = None) -> Intrinsic:
    """``C[i] += A[i] * B[i]`` over 8 lanes (``dtypes``: A, B, C)."""
    return Intrinsic(
        name=name,
        target=TARGET,
        description=description,
        compute=IntrinsicCompute(
            iter_vars=[IterVar(name="i", extent=8, kind="spatial")],
            operands=[Operand(name=n, role=r, dtype=d, indices=["i"])
                      for n, r, d in zip("ABC", ("input", "input", "output"), dtypes)],
        ),
        tvm_intrinsics={"compute": compute, **({"compute_mirrored": mirrored} if mirrored else {})},
        tvm_module=TVM_MODULE,
    )


INTRINSICS = (
    Intrinsic(
        name="avx2-fma",
        target=TARGET,
        description="vfmadd231ps ymm: 8 f32 lanes += broadcast scalar * vector",
        compute=IntrinsicCompute(
            iter_vars=[IterVar(name="i", extent=8, kind="spatial")],
            operands=[Operand(name="A", role="input", dtype="float32", indices=["0"]),
                      Operand(name="B", role="input", dtype="float32", indices=["i"]),
                      Operand(name="C", role="output", dtype="float32", indices=["i"])],
        ),
        tvm_intrinsics={"compute": "gta_avx2_fma_8", "compute_mirrored": "gta_avx2_fma_8_mirrored"},
        tvm_module=TVM_MODULE,
    ),
    Intrinsic(
        name="avx2-madd-u8s8",
        target=TARGET,
        description="vpmovsxbw + vpmaddwd ymm: 8 s32 lanes += 2 u8 (broadcast) x s8 products, "
                    "exact (widened to 16 bits first; vpmaddubsw would saturate)",
        compute=IntrinsicCompute(
            iter_vars=[IterVar(name="i", extent=8, kind="spatial"),
                       IterVar(name="k", extent=2, kind="reduce")],
            operands=[Operand(name="A", role="input", dtype="uint8", indices=["k"]),
                      Operand(name="B", role="input", dtype="int8", indices=["i", "k"]),
                      Operand(name="C", role="output", dtype="int32", indices=["i"])],
        ),
        tvm_intrinsics={"compute": "gta_avx2_madd_8x2"},
        tvm_module=TVM_MODULE,
    ),
    # Lane by lane, no reduction: a depthwise layer's 8 channels of NCHW8c, each lane its own
    # channel of both the activations and the weights.
    _lane_by_lane("avx2-mac8-u8s8", "vpmovzxbd + vpmovsxbd + vpmaddwd + vpaddd ymm: 8 s32 "
                  "lanes += u8 * s8", ("uint8", "int8", "int32"), "gta_avx2_mac_8_u8s8"),
    _lane_by_lane("avx2-fma8-elementwise", "vfmadd231ps ymm: 8 f32 lanes += vector * vector",
                  ("float32", "float32", "float32"), "gta_avx2_fma_8_elementwise",
                  mirrored="gta_avx2_fma_8_elementwise_mirrored"),
)


@hookimpl
def gta_register_targets(register):
    register(_target())


@hookimpl
def gta_register_intrinsics(register):
    for intrinsic in INTRINSICS:
        register(intrinsic)
