"""The ``cuda-tc`` target: NVIDIA Tensor Cores through wmma and mma.sync."""

from __future__ import annotations

from gta_core.sdk import (
    Intrinsic,
    IntrinsicCompute,
    IterVar,
    Operand,
    RealisationError,
    Target,
    enumerate_mappings,
    hookimpl,
    intrinsic_computation,
    needs_signed,
    signed_form,
    workload_computation,
)

from .archs import ARCHS, DEFAULT_ARCH
from .constraints import GPU_CONSTRAINTS
from .names import MMA_F16_F16, MMA_F16_F32, MMA_S8_S32, SHORT, WARP_MMA_PIPELINE, wmma_names
from .rules import GPU_RULES

GTA_API_VERSION = "1.0"  # the gta_core.sdk this plugin is written for

TARGET = "cuda-tc"
TVM_MODULE = "gta_cuda_tc.tvm_intrinsics"


def _target() -> Target:
    """sm_80 unless ``--arch`` picks another of ``ARCHS``."""
    default = ARCHS[DEFAULT_ARCH]
    resources = default.resources
    return Target(
        name=TARGET,
        description="NVIDIA GPU Tensor Cores (wmma, mma.sync); " + default.description,
        kind="gpu",
        tvm={
            "kind": "cuda",
            **default.tvm,
            "max_threads_per_block": resources.max_threads_per_block,
            "max_shared_memory_per_block": resources.shared_memory_per_block,
            "thread_warp_size": resources.warp_size,
            "registers_per_block": resources.registers_per_block,
        },
        resources=resources,
        peak=default.peak,
        arch=DEFAULT_ARCH,
        archs=ARCHS,
        realisation="gta_cuda_tc.realisation",
        # mma.sync's warp-scope fragments need it; wmma programs build the same way through it.
        tir_pipeline=f"{TVM_MODULE}:{WARP_MMA_PIPELINE}",
    )


WMMA_SCOPES = ("wmma.matrix_a", "wmma.matrix_b", "wmma.accumulator")
MMA_SCOPES = ("warp",) * 3  # mma.sync: fragments in a warp's registers, [lane, register]


def _matmul(name: str, description: str, m: int, n: int, k: int, in_dtype: str, out_dtype: str,
            tvm_intrinsics: dict[str, str], scopes: tuple[str, str, str]) -> Intrinsic:
    """``C[i, j] += A[i, k] * B[k, j]`` on fragments in ``scopes`` (A's, B's, C's)."""
    return Intrinsic(
        name=name,
        target=TARGET,
        description=description,
        compute=IntrinsicCompute(
            iter_vars=[IterVar(name="i", extent=m, kind="spatial"),
                       IterVar(name="j", extent=n, kind="spatial"),
                       IterVar(name="k", extent=k, kind="reduce")],
            operands=[
                Operand(name="A", role="input", dtype=in_dtype, indices=["i", "k"],
                        scope=scopes[0], load=tvm_intrinsics["load_a"]),
                Operand(name="B", role="input", dtype=in_dtype, indices=["k", "j"],
                        scope=scopes[1], load=tvm_intrinsics["load_b"]),
                Operand(name="C", role="output", dtype=out_dtype, indices=["i", "j"],
                        scope=scopes[2], store=tvm_intrinsics["store"]),
            ],
        ),
        tvm_intrinsics=tvm_intrinsics,
        tvm_module=TVM_MODULE,
    )


def _wmma(m: int, n: int, k: int, in_dtype: str, out_dtype: str) -> Intrinsic:
    i, o = SHORT[in_dtype], SHORT[out_dtype]
    return _matmul(f"wmma-m{m}n{n}k{k}-{i}{o}",
                   f"wmma::mma_sync m{m}n{n}k{k}, {in_dtype} inputs, {out_dtype} accumulate",
                   m, n, k, in_dtype, out_dtype, wmma_names(m, n, k, in_dtype, out_dtype),
                   WMMA_SCOPES)


INTRINSICS = (
    *(_wmma(m, n, k, "float16", out) for (m, n, k) in ((16, 16, 16), (32, 8, 16), (8, 32, 16))
      for out in ("float32", "float16")),
    _wmma(16, 16, 16, "int8", "int32"),
    _matmul("mma-m16n8k16-f16f32", "mma.sync.aligned.m16n8k16 fp16 -> fp32 (a 16x16x16 tile is "
            "two instructions), operands through ldmatrix", 16, 16, 16, "float16", "float32",
            MMA_F16_F32, MMA_SCOPES),
    _matmul("mma-m16n8k16-f16f16", "mma.sync.aligned.m16n8k16 fp16 -> fp16 (a 16x16x16 tile is "
            "two instructions), operands through ldmatrix", 16, 16, 16, "float16", "float16",
            MMA_F16_F16, MMA_SCOPES),
    _matmul("mma-m16n8k32-s8s32", "mma.sync.aligned.m16n8k32 s8 -> s32 (a 16x16x32 tile is two "
            "instructions), operands through ldmatrix", 16, 16, 32, "int8", "int32",
            MMA_S8_S32, MMA_SCOPES),
)


@hookimpl
def gta_register_targets(register):
    register(_target())


@hookimpl
def gta_register_intrinsics(register):
    for intrinsic in INTRINSICS:
        register(intrinsic)


@hookimpl
def gta_register_rules(register):
    for rule in GPU_RULES:
        register(rule)


@hookimpl
def gta_register_constraints(register):
    for constraint in GPU_CONSTRAINTS:
        register(constraint)


@hookimpl
def gta_mapping_candidates(workload, intrinsic, target):
    """u8 x s8 workloads on the s8 x s8 wmma intrinsic: the mappings of their signed form.

    wmma has no mixed-sign fragment pair; the signed form (gta_core.mapping.rewrite) computes
    the same result with s8 operands plus a per-column correction.
    """
    if intrinsic.target != TARGET or not needs_signed(workload, intrinsic):
        return None
    try:
        op = workload_computation(signed_form(workload, intrinsic))
    except RealisationError:  # e.g. a main stage that is not the output: no signed form
        return None
    return enumerate_mappings(op, intrinsic_computation(intrinsic), intrinsic.name)
