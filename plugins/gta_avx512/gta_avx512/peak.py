"""``gta peak`` for the ``avx512`` target: each intrinsic's instruction in a register-resident loop.

For one intrinsic, :func:`measure_peak` builds a TIR kernel in which each of the target's cores
runs a parallel worker that loads the two multiplicands once into zmm registers, then issues the
intrinsic's instruction ``trips`` times on each of :data:`ACCUMULATORS` independent accumulators
(enough independent chains to cover the instruction's latency with its throughput) and finally
stores the accumulators, so LLVM cannot delete the loop. The trip count is a runtime argument:
it is calibrated so that one run takes about ``target_seconds``, or set with ``calls_per_worker``.

The instructions are the ones the tensor intrinsics in :mod:`gta_avx512.tvm_intrinsics` emit,
called the same way: ``llvm.x86.avx512.vpdpbusd.512`` with ``<64 x i8>`` operands (``vnni``,
``vnni-act-lanes`` and ``vnni-dot``, which differ only in which operand is broadcast, if any),
``vdpbf16ps`` through the same LLVM IR wrapper imported with ``pragma_import_llvm`` (``bf16``), and
``llvm.fma.v16f32`` (``fma``, and ``fma16-elementwise``, the same instruction on two vector
operands, which is what the kernel passes anyway).

``mac16-u8s8`` and ``mac16-u8s8-bcast`` are not measured, and :func:`measure_peak` says why
(:data:`NOT_MEASURED`): each is no one instruction but widening loads and a multiply-add, and
with its operands held in registers the widening is loop-invariant and LLVM hoists it out of the
loop.

Before timing, the generated assembly is checked: the innermost loop must hold the instruction on
zmm registers; a memory operand in that loop (a spill, or an operand reloaded every call) is
reported with a warning, since the figure would then understate the instruction's throughput.
"""

from __future__ import annotations

import json
import re
import statistics
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, TypeVar

import numpy as np
import tvm
from tvm.script import tirx as T

from gta_core.sdk import (
    Intrinsic,
    PeakMeasurement,
    PeakSkipped,
    Target,
    calibrated_trips,
    cpu_cores,
    run_seconds,
    with_threads,
)

from .tvm_intrinsics import (
    _BF16_WRAPPER,
    _BF16_WRAPPER_LL,
    _VPDPBUSD,
    BF16_16X2,
    FMA_16,
    FMA_16_ELEMENTWISE,
    MAC_16_U8S8,
    MAC_16_U8S8_BCAST,
    VNNI_16X4,
    VNNI_16X4_ACT_LANES,
    VNNI_DOT_16X4,
    VNNI_LANES_16X3,
    VNNI_WINDOW_16X4,
)

GROUPS = 2
"""Accumulator buffers per worker (the kernel declares two). Each must stay under TVM's
1024-byte stack-allocation limit: a bigger one goes to ``TVMBackendAllocWorkspace`` and LLVM
then keeps it in memory (measured: 16 accumulators in one buffer ran at a third of the speed,
the loop full of loads and stores)."""

PER_GROUP = 8
"""Zmm accumulators per buffer (512 bytes)."""

ACCUMULATORS = GROUPS * PER_GROUP
"""Independent accumulator chains per worker: zmm0-15, the two operands take two more. Measured
on one core here (bf16): 8 chains 339, 12 chains 470, 16-24 chains ~505 GFLOP/s, so 16 cover
the latency."""

LANES = 16
"""32-bit lanes of one zmm accumulator."""

T_ = TypeVar("T_")


def _vpdpbusd(c, a, b):
    return T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id(_VPDPBUSD), c, a, b, dtype="int32x16")


def _vdpbf16ps(c, a, b):
    return T.call_pure_extern("float32x16", _BF16_WRAPPER, c, a, b)


def _vfmadd(c, a, b):
    return T.call_llvm_pure_intrin(
        T.llvm_lookup_intrinsic_id("llvm.fma.v16f32"), a, b, c, dtype="float32x16"
    )


@dataclass(frozen=True, eq=False)
class Instruction:
    """One instruction the peak loop runs: how to call it, its operands, its mnemonic."""

    kind: str
    mnemonic: str
    """Prefix of the mnemonic the hot loop must contain (``vfmadd`` covers 132/213/231)."""
    step: Callable
    """``step(acc, a, b)``: the TIR call that returns the updated accumulator."""
    acc_dtype: str
    operand_dtype: str
    """Element type of the two 64-byte operand vectors as passed to the call."""
    operand_values: tuple[np.ndarray, np.ndarray]
    """The 64 bytes of each operand: normal values (no denormals, no NaN)."""
    llvm_import: str | None = None
    """LLVM IR the kernel imports with ``pragma_import_llvm`` (the bf16 wrapper)."""


def _bf16_bits(value: float, count: int) -> np.ndarray:
    """``count`` copies of ``value`` as bf16 bit patterns (the upper half of the float32)."""
    bits = int(np.float32(value).view(np.uint32)) >> 16
    return np.full(count, bits, dtype=np.uint16).view(np.int16)


_INSTRUCTIONS = {
    "vnni": Instruction(
        "vnni", "vpdpbusd", _vpdpbusd, "int32", "int8",
        (np.ones(64, dtype=np.int8), np.ones(64, dtype=np.int8)),
    ),
    "bf16": Instruction(
        "bf16", "vdpbf16ps", _vdpbf16ps, "float32", "int16",
        (_bf16_bits(1.0, 32), _bf16_bits(2.0**-20, 32)), _BF16_WRAPPER_LL,
    ),
    "fma": Instruction(
        "fma", "vfmadd", _vfmadd, "float32", "float32",
        (np.ones(16, dtype=np.float32), np.full(16, 2.0**-20, dtype=np.float32)),
    ),
}

_BY_TENSOR_INTRINSIC = {
    VNNI_16X4: _INSTRUCTIONS["vnni"],
    VNNI_16X4_ACT_LANES: _INSTRUCTIONS["vnni"],  # the same vpdpbusd, operands swapped
    VNNI_DOT_16X4: _INSTRUCTIONS["vnni"],  # the same vpdpbusd, neither operand broadcast
    VNNI_WINDOW_16X4: _INSTRUCTIONS["vnni"],  # the same vpdpbusd, after a byte shuffle
    VNNI_LANES_16X3: _INSTRUCTIONS["vnni"],  # the same vpdpbusd, after a byte transpose
    BF16_16X2: _INSTRUCTIONS["bf16"],
    FMA_16: _INSTRUCTIONS["fma"],
    FMA_16_ELEMENTWISE: _INSTRUCTIONS["fma"],  # the same vfmadd; the kernel's A is a vector
}

_WIDENING = (
    "it is several instructions (widening loads, then vpdpwssd), and with its operands held "
    "in registers, as the peak loop holds them, the widening is loop-invariant and LLVM "
    "hoists it out, so the loop would not time the intrinsic"
)
NOT_MEASURED = {MAC_16_U8S8: _WIDENING, MAC_16_U8S8_BCAST: _WIDENING}
"""Intrinsics of this plugin that the register-resident peak loop cannot time, and why."""


def instruction_for(intrinsic: Intrinsic) -> Instruction | None:
    """The instruction an intrinsic of this plugin runs, or None for one it does not know."""
    return _BY_TENSOR_INTRINSIC.get(intrinsic.tvm_intrinsics.get("compute", ""))


# ---------------------------------------------------------------------------------------------
# The kernel. Accumulators live in per-worker buffers indexed only by constants (the accumulator
# loops are unrolled) and the operands are bound to values before the hot loop, so the hot loop
# touches no memory and LLVM promotes the buffers to registers (checked in the asm).
# Accumulator j starts at j: identical chains could otherwise be merged into one.
# ---------------------------------------------------------------------------------------------


def peak_kernel(instruction: Instruction, workers: int, per_group: int = PER_GROUP):
    """The PrimFunc ``(A, B, C, trips)``: ``GROUPS * per_group`` chains of ``trips`` calls."""
    step = instruction.step
    acc_dtype = instruction.acc_dtype
    acc_vector = f"{acc_dtype}x{LANES}"
    op_lanes = 512 // tvm.DataType(instruction.operand_dtype).bits
    op_vector = f"{instruction.operand_dtype}x{op_lanes}"
    size = per_group * LANES

    @T.prim_func(s_tir=True)
    def peak(
        A: T.Buffer((op_lanes,), instruction.operand_dtype),
        B: T.Buffer((op_lanes,), instruction.operand_dtype),
        C: T.Buffer((workers, 2 * size), acc_dtype),
        trips: T.int64,
    ):
        for w in T.parallel(workers):
            acc0 = T.alloc_buffer((size,), acc_dtype)
            acc1 = T.alloc_buffer((size,), acc_dtype)
            a = A.vload([0], op_vector)
            b = B.vload([0], op_vector)
            for j in T.unroll(per_group):
                acc0[T.ramp(j * 16, 1, 16)] = T.broadcast(T.cast(j, acc_dtype), 16)
                acc1[T.ramp(j * 16, 1, 16)] = T.broadcast(T.cast(j + per_group, acc_dtype), 16)
            for _t in range(trips):
                for j in T.unroll(per_group):
                    acc0[T.ramp(j * 16, 1, 16)] = step(acc0.vload([j * 16], acc_vector), a, b)
                for j in T.unroll(per_group):
                    acc1[T.ramp(j * 16, 1, 16)] = step(acc1.vload([j * 16], acc_vector), a, b)
            for j in T.unroll(per_group):
                C[w, T.ramp(j * 16, 1, 16)] = acc0.vload([j * 16], acc_vector)
                C[w, T.ramp(j * 16 + size, 1, 16)] = acc1.vload([j * 16], acc_vector)

    if instruction.llvm_import:
        peak = peak.with_body(
            tvm.tirx.AttrStmt(0, "pragma_import_llvm", instruction.llvm_import, peak.body)
        )
    return peak


def kernel_arguments(instruction: Instruction, workers: int, per_group: int, device) -> list:
    """Kernel arguments, the trip count excepted."""
    out = np.zeros((workers, GROUPS * per_group * LANES), dtype=instruction.acc_dtype)
    return [tvm.runtime.tensor(x, device) for x in (*instruction.operand_values, out)]


def _workers(target: Target) -> int:
    return target.resources.cores or cpu_cores()


@lru_cache(maxsize=None)
def _compiled(kind: str, workers: int, per_group: int, tvm_target_json: str):
    func = peak_kernel(_INSTRUCTIONS[kind], workers, per_group)
    return tvm.compile(func, target=tvm.target.Target(json.loads(tvm_target_json)))


def _executable(instruction: Instruction, target: Target, per_group: int = PER_GROUP):
    tvm_target = json.dumps(target.tvm, sort_keys=True)
    return _compiled(instruction.kind, _workers(target), per_group, tvm_target)


def kernel_asm(intrinsic: Intrinsic, target: Target) -> str:
    """The x86 assembly of the peak kernel for ``intrinsic``."""
    instruction = instruction_for(intrinsic)
    if instruction is None:
        raise ValueError(f"no peak kernel for intrinsic {intrinsic.name!r}")
    return _executable(instruction, target).mod.inspect_source("asm")


# ---------------------------------------------------------------------------------------------
# Assembly checks.
# ---------------------------------------------------------------------------------------------

_LABEL = re.compile(r"^(\.?[A-Za-z_$][\w.$]*):")
_JUMP = re.compile(r"^\s*j[a-z]+\s+(\.?[A-Za-z_$][\w.$]*)\s*$")


def hot_loop(asm: str, mnemonic: str) -> list[str]:
    """The instructions of the hottest innermost loop that issues ``mnemonic``; [] if none does.

    A loop is a label and a later jump back to it; an innermost loop holds no other loop. Of the
    innermost loops that issue the mnemonic, the one issuing it most often is the hot one (LLVM
    unrolls the main loop and leaves a smaller remainder loop beside it).
    """
    lines = asm.splitlines()
    labels: dict[str, int] = {}
    spans: list[tuple[int, int]] = []
    for number, line in enumerate(lines):
        label = _LABEL.match(line)
        if label:
            labels[label.group(1)] = number
            continue
        jump = _JUMP.match(line)
        if jump and jump.group(1) in labels:
            spans.append((labels[jump.group(1)], number))
    innermost = [
        (start, end)
        for start, end in spans
        if not any(start <= s and e <= end and (s, e) != (start, end) for s, e in spans)
    ]
    best: list[str] = []
    best_count = 0
    for start, end in innermost:
        body = [
            text.strip()
            for text in lines[start + 1 : end + 1]
            if text.strip() and not text.strip().startswith((".", "#"))
        ]
        count = sum(text.startswith(mnemonic) for text in body)
        if count > best_count:
            best, best_count = body, count
    return best


def check_hot_loop(asm: str, mnemonic: str) -> tuple[list[str], list[str]]:
    """The hot loop and the problems found in it (an empty list when it is clean).

    Raises RuntimeError when no loop issues ``mnemonic`` on zmm registers: the kernel would not
    measure the instruction at all.
    """
    loop = hot_loop(asm, mnemonic)
    calls = [text for text in loop if text.startswith(mnemonic)]
    if not calls or not all("%zmm" in text for text in calls):
        raise RuntimeError(f"the peak kernel's hot loop has no {mnemonic} on zmm registers")
    problems = [text for text in loop if "(" in text]  # any memory operand: spill or reload
    return loop, problems


# ---------------------------------------------------------------------------------------------
# Measurement.
# ---------------------------------------------------------------------------------------------




def measure_peak(
    intrinsic: Intrinsic,
    target: Target,
    repeats: int = 5,
    *,
    calls_per_worker: int | None = None,
    target_seconds: float = 0.2,
) -> PeakMeasurement | PeakSkipped | None:
    """Measure ``intrinsic``'s throughput on all of ``target``'s cores.

    :param repeats: timed runs; the figure is their median, ``spread`` is (max - min) / median.
    :param calls_per_worker: instruction calls per worker per run (rounded down to a multiple
        of :data:`ACCUMULATORS`); by default calibrated so that one run takes
        ``target_seconds``.
    :return: the measurement; :class:`PeakSkipped` with the reason for one of this plugin's
        intrinsics that the peak loop cannot time (:data:`NOT_MEASURED`); or None for an
        intrinsic this plugin has no kernel for (one another plugin added to the ``avx512``
        target), as the ``gta_intrinsic_peak`` hook expects.
    """
    instruction = instruction_for(intrinsic)
    if instruction is None:
        reason = NOT_MEASURED.get(intrinsic.tvm_intrinsics.get("compute", ""))
        return PeakSkipped(intrinsic=intrinsic.name, target=target.name,
                           reason=reason) if reason else None
    workers = _workers(target)
    executable = _executable(instruction, target)
    loop, problems = check_hot_loop(executable.mod.inspect_source("asm"), instruction.mnemonic)
    if problems:
        warnings.warn(
            f"peak kernel for {intrinsic.name}: memory operands in the hot loop "
            f"({problems[:3]}); the figure may understate the instruction's throughput",
            RuntimeWarning,
            stacklevel=2,
        )
    module = executable.jit()
    args = kernel_arguments(instruction, workers, PER_GROUP, tvm.cpu())

    def run() -> tuple[int, list[float]]:
        if calls_per_worker is not None:
            trips = max(1, calls_per_worker // ACCUMULATORS)
        else:
            trips = calibrated_trips(lambda n: min(run_seconds(module, args, n, 1)),
                                     target_seconds, start=1 << 14, limit=1 << 40)
        return trips, run_seconds(module, args, trips, repeats)

    (trips, times), threads = with_threads(workers, run)
    if threads < workers:
        warnings.warn(
            f"TVM's thread pool has {threads} thread(s) for {workers} workers: the peak of "
            f"{intrinsic.name} is that of {threads} core(s)",
            RuntimeWarning,
            stacklevel=2,
        )
    median = statistics.median(times)
    calls = trips * ACCUMULATORS
    ops_per_call = 2 * intrinsic.compute.macs
    gops = ops_per_call * calls * workers / median / 1e9
    return PeakMeasurement(
        intrinsic=intrinsic.name,
        target=target.name,
        gops=gops,
        cores=workers,
        repeats=repeats,
        spread=(max(times) - min(times)) / median,
        method=(
            f"{workers} parallel TVM workers on {threads} pool threads each issued {calls:,} "
            f"{instruction.mnemonic} (zmm) calls on {ACCUMULATORS} register-resident "
            f"accumulators with operands held in registers, counted as {ops_per_call} ops per "
            f"call; median of {repeats} runs of ~{median:.3f} s."
        ),
    )
