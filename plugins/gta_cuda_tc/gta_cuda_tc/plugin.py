"""The ``cuda-tc`` target: NVIDIA Tensor Cores through wmma and mma.sync."""

from __future__ import annotations

from gta_core.hookspecs import hookimpl
from gta_core.models import Intrinsic, IntrinsicCompute, IterVar, Operand, Resources, Target

from .names import MMA_F16_F16, MMA_F16_F32, SHORT, wmma_names

TARGET = "cuda-tc"
TVM_MODULE = "gta_cuda_tc.tvm_intrinsics"

# sm_80 (A100): per-SM and per-block limits from the CUDA programming guide;
# nominal dense Tensor Core peaks of an A100 SXM.
SM80 = Resources(
    sm_count=108,
    warp_size=32,
    max_threads_per_block=1024,
    shared_memory_per_block=49152,
    shared_memory_per_sm=167936,
    registers_per_block=65536,
    registers_per_sm=65536,
    registers_per_thread=255,
)


def _target() -> Target:
    return Target(
        name=TARGET,
        description="NVIDIA GPU Tensor Cores (wmma, mma.sync), sm_80",
        kind="gpu",
        tvm={
            "kind": "cuda",
            "arch": "sm_80",
            "max_threads_per_block": SM80.max_threads_per_block,
            "max_shared_memory_per_block": SM80.shared_memory_per_block,
            "thread_warp_size": SM80.warp_size,
            "registers_per_block": SM80.registers_per_block,
        },
        resources=SM80,
        peak={"float16": 312_000.0, "int8": 624_000.0, "float32": 19_500.0},
    )


def _matmul(name: str, description: str, m: int, n: int, k: int, in_dtype: str, out_dtype: str,
            tvm_intrinsics: dict[str, str]) -> Intrinsic:
    """``C[i, j] += A[i, k] * B[k, j]`` on fragments in the wmma scopes."""
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
                        scope="wmma.matrix_a", load=tvm_intrinsics["load_a"]),
                Operand(name="B", role="input", dtype=in_dtype, indices=["k", "j"],
                        scope="wmma.matrix_b", load=tvm_intrinsics["load_b"]),
                Operand(name="C", role="output", dtype=out_dtype, indices=["i", "j"],
                        scope="wmma.accumulator", store=tvm_intrinsics["store"]),
            ],
        ),
        tvm_intrinsics=tvm_intrinsics,
        tvm_module=TVM_MODULE,
    )


def _wmma(m: int, n: int, k: int, in_dtype: str, out_dtype: str) -> Intrinsic:
    i, o = SHORT[in_dtype], SHORT[out_dtype]
    return _matmul(f"wmma-m{m}n{n}k{k}-{i}{o}",
                   f"wmma::mma_sync m{m}n{n}k{k}, {in_dtype} inputs, {out_dtype} accumulate",
                   m, n, k, in_dtype, out_dtype, wmma_names(m, n, k, in_dtype, out_dtype))


INTRINSICS = (
    *(_wmma(m, n, k, "float16", out) for (m, n, k) in ((16, 16, 16), (32, 8, 16), (8, 32, 16))
      for out in ("float32", "float16")),
    _wmma(16, 16, 16, "int8", "int32"),
    _matmul("mma-m16n8k16-f16f32", "mma.sync.aligned.m16n8k16 fp16 -> fp32 (a 16x16x16 tile is "
            "two instructions), operands through ldmatrix", 16, 16, 16, "float16", "float32",
            MMA_F16_F32),
    _matmul("mma-m16n8k16-f16f16", "mma.sync.aligned.m16n8k16 fp16 -> fp16 (a 16x16x16 tile is "
            "two instructions), operands through ldmatrix", 16, 16, 16, "float16", "float16",
            MMA_F16_F16),
)


@hookimpl
def gta_register_targets(register):
    register(_target())


@hookimpl
def gta_register_intrinsics(register):
    for intrinsic in INTRINSICS:
        register(intrinsic)
