"""The ``arm-i8mm`` target: AArch64 with NEON and FEAT_I8MM, cross-compiled by TVM's LLVM.

Programs are built for ``aarch64-linux-gnu`` wherever GTA runs; they run only on such a CPU,
so on another machine ``gta check-plugin`` builds them (and a test reads their assembly)
but nothing measures them. Tuning needs a measuring host of this architecture (an RPC
tracker: ``gta tune --rpc``).
"""

from __future__ import annotations

import os

from gta_core.sdk import Intrinsic, IntrinsicCompute, IterVar, Operand, Resources, Target, hookimpl

GTA_API_VERSION = "1.1"

TARGET = "arm-i8mm"
TVM_MODULE = "gta_arm.tvm_intrinsics"
# The machine it generates for is not this one: its core count is declared, not probed.
CORES = int(os.environ.get("GTA_ARM_CORES", "4"))


def _target() -> Target:
    return Target(
        name=TARGET,
        description=f"AArch64 CPU with NEON, dot products and i8mm (Armv8.6-A), {CORES} cores; "
                    "cross-compiled",
        kind="cpu",
        tvm={"kind": "llvm", "mtriple": "aarch64-linux-gnu",
             "mattr": ["+v8.6a", "+neon", "+dotprod", "+i8mm"], "num-cores": CORES},
        host_flags=["asimd", "asimddp", "i8mm"],  # as an AArch64 /proc/cpuinfo names them
        resources=Resources(cores=CORES, cache_bytes={"L1": 64 * 1024, "L2": 1024 * 1024},
                            vector_registers=32, vector_width_bits=128,
                            vector_latency_cycles=4, vector_issue_per_cycle=2),
    )


def _intrinsic(name: str, description: str, iter_vars: list[IterVar], a: Operand, b: Operand,
               c: Operand, tvm_intrinsics: dict[str, str]) -> Intrinsic:
    return Intrinsic(name=name, target=TARGET, description=description,
                     compute=IntrinsicCompute(iter_vars=iter_vars, operands=[a, b, c]),
                     tvm_intrinsics=tvm_intrinsics, tvm_module=TVM_MODULE)


INTRINSICS = (
    _intrinsic("neon-fma", "fmla v.4s: 4 f32 lanes += broadcast scalar * vector",
               [IterVar(name="i", extent=4, kind="spatial")],
               Operand(name="A", role="input", dtype="float32", indices=["0"]),
               Operand(name="B", role="input", dtype="float32", indices=["i"]),
               Operand(name="C", role="output", dtype="float32", indices=["i"]),
               {"compute": "gta_arm_fma_4", "compute_mirrored": "gta_arm_fma_4_mirrored"}),
    _intrinsic("neon-usdot", "usdot v.4s: 4 s32 lanes += 4 u8 (broadcast) x s8 products",
               [IterVar(name="i", extent=4, kind="spatial"),
                IterVar(name="k", extent=4, kind="reduce")],
               Operand(name="A", role="input", dtype="uint8", indices=["k"]),
               Operand(name="B", role="input", dtype="int8", indices=["i", "k"]),
               Operand(name="C", role="output", dtype="int32", indices=["i"]),
               {"compute": "gta_arm_usdot_4x4"}),
    *(_intrinsic(f"neon-{name}", f"{name} v.4s: 4 s32 lanes += 4 {a} (broadcast) x {b} products",
                 [IterVar(name="i", extent=4, kind="spatial"),
                  IterVar(name="k", extent=4, kind="reduce")],
                 Operand(name="A", role="input", dtype=a, indices=["k"]),
                 Operand(name="B", role="input", dtype=b, indices=["i", "k"]),
                 Operand(name="C", role="output", dtype="int32", indices=["i"]),
                 {"compute": f"gta_arm_{name}_4x4",
                  "compute_mirrored": f"gta_arm_{name}_4x4_mirrored"})
      for name, a, b in (("sdot", "int8", "int8"), ("udot", "uint8", "uint8"))),
)


@hookimpl
def gta_register_targets(register):
    register(_target())


@hookimpl
def gta_register_intrinsics(register):
    for intrinsic in INTRINSICS:
        register(intrinsic)
