"""``gta peak`` for the avx512 target: the peak kernels' code, results and plausibility.

Runs every kernel with a short trip count (a few ms per run) so the module stays well under
30 s; ``gta peak`` itself calibrates runs of ~0.2 s.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import pytest
import tvm

from gta_core.host import cpu_flags
from gta_core.models import (
    Intrinsic,
    IntrinsicCompute,
    IterVar,
    Operand,
    PeakMeasurement,
    PeakSkipped,
)

_NEEDED_FLAGS = {"avx512f", "avx512bw", "avx512_vnni", "avx512_bf16"}
_MISSING = sorted(_NEEDED_FLAGS - cpu_flags())

pytestmark = [
    pytest.mark.skipif(
        bool(_MISSING),
        reason=f"/proc/cpuinfo lacks {', '.join(_MISSING)}: the peak kernels cannot run here",
    ),
    pytest.mark.skipif(not tvm.runtime.enabled("llvm"), reason="TVM built without LLVM"),
]

from gta_avx512 import peak  # noqa: E402
from gta_avx512.plugin import INTRINSICS, _target, gta_intrinsic_peak  # noqa: E402

CALLS_PER_WORKER = 8 * 10**7
"""~10 ms per run at ~8e9 calls/s per core: short, yet far above timer and thread-pool noise."""

BY_NAME = {intrinsic.name: intrinsic for intrinsic in INTRINSICS}
MEASURED = [i for i in INTRINSICS if peak.instruction_for(i) is not None]


@pytest.fixture(scope="module")
def target():
    target = _target()
    # Once a test has run parallel TVM code on this thread, TVM's one-thread pool has pinned it
    # to CPU 0 and cpu_cores() (its affinity) says 1: measure on the machine's CPUs instead.
    cores = os.cpu_count() or 1
    if (target.resources.cores or 1) < cores:
        target = target.model_copy(
            update={"resources": target.resources.model_copy(update={"cores": cores})}
        )
    return target


@pytest.fixture(scope="module")
def peaks(target) -> dict[str, PeakMeasurement]:
    return {
        intrinsic.name: peak.measure_peak(intrinsic, target, calls_per_worker=CALLS_PER_WORKER)
        for intrinsic in MEASURED
    }


def test_every_intrinsic_but_the_mac16s_has_a_peak_kernel_and_they_say_why(target):
    unmeasured = ["mac16-u8s8", "mac16-u8s8-bcast"]
    assert [i.name for i in INTRINSICS if i not in MEASURED] == unmeasured
    for name in unmeasured:
        skipped = gta_intrinsic_peak(BY_NAME[name], target)
        assert isinstance(skipped, PeakSkipped) and skipped.intrinsic == name
        assert "hoists" in skipped.reason
    assert peak.instruction_for(BY_NAME["fma16-elementwise"]).mnemonic == "vfmadd"


@pytest.mark.parametrize("name", [i.name for i in MEASURED])
def test_hot_loop_is_the_instruction_on_registers(name, target):
    intrinsic = BY_NAME[name]
    instruction = peak.instruction_for(intrinsic)
    asm = peak.kernel_asm(intrinsic, target)
    assert instruction.mnemonic in asm
    loop, problems = peak.check_hot_loop(asm, instruction.mnemonic)
    calls = [line for line in loop if line.startswith(instruction.mnemonic)]
    # Every accumulator chain appears at least once; every call is register-to-register zmm.
    assert len(calls) >= peak.ACCUMULATORS
    assert all(line.count("%zmm") == 3 for line in calls), calls
    assert {line.split()[-1] for line in calls} >= {f"%zmm{i}" for i in range(12)}
    assert problems == [], f"memory operands in the hot loop: {problems}"


@pytest.mark.parametrize("kind", ["vnni", "bf16", "fma"])
def test_kernel_runs_every_chain_trips_times(kind, target):
    """Exact values: accumulator j ends at j + trips * (the per-call increment of its lanes)."""
    instruction = peak._INSTRUCTIONS[kind]
    workers = target.resources.cores
    module = peak._executable(instruction, target).jit()
    args = peak.kernel_arguments(instruction, workers, peak.PER_GROUP, tvm.cpu())
    trips = 1000
    # In a thread with a pool of `workers` threads, as measure_peak runs it.
    _, threads = peak.with_threads(workers, lambda: module[module.entry_name](*args, trips))
    assert threads == workers
    increment = {"vnni": 4 * 1 * 1, "bf16": 2 * 2.0**-20, "fma": 2.0**-20}[kind]
    chains = np.arange(peak.ACCUMULATORS, dtype=np.float64)
    expected = np.repeat(chains + trips * increment, peak.LANES)
    got = args[2].numpy()
    assert got.shape == (workers, peak.ACCUMULATORS * peak.LANES)
    for worker in range(workers):
        np.testing.assert_array_equal(got[worker].astype(np.float64), expected)


def test_every_intrinsic_has_a_positive_peak(peaks, target):
    for name, measurement in peaks.items():
        assert measurement.intrinsic == name
        assert measurement.target == target.name
        assert measurement.gops > 0
        assert measurement.cores == target.resources.cores
        assert measurement.repeats == 5
        assert measurement.spread >= 0
        assert peak.instruction_for(BY_NAME[name]).mnemonic in measurement.method


def test_peaks_rank_as_the_hardware_does(peaks):
    """int8 dot products do 4x the MACs of an fp32 FMA per instruction, bf16 2x."""
    vnni, act_lanes = peaks["vnni"].gops, peaks["vnni-act-lanes"].gops
    bf16, fma = peaks["bf16"].gops, peaks["fma"].gops
    print(f"\nvnni {vnni:.0f} GOPS, vnni-act-lanes {act_lanes:.0f}, bf16 {bf16:.0f} GFLOP/s, "
          f"fma {fma:.0f} GFLOP/s")
    assert vnni > fma
    assert act_lanes > fma


def _numpy_sgemm_gflops(n: int = 1024, runs: int = 5) -> float:
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    a @ b  # warm-up: OpenBLAS threads, page faults
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def test_fp32_peak_is_above_openblas_sgemm(peaks, target):
    """A GEMM cannot beat its FMA ceiling: numpy's (OpenBLAS) float32 1024^3 matmul.

    On a shared machine a burst of load can halve either figure, so both are measured up to
    three times, alternately, and the best of each is compared.
    """
    fma_best = peaks["fma"].gops
    numpy_best = 0.0
    for _ in range(3):
        numpy_best = max(numpy_best, _numpy_sgemm_gflops())
        if fma_best >= numpy_best:
            break
        again = peak.measure_peak(BY_NAME["fma"], target, calls_per_worker=CALLS_PER_WORKER)
        fma_best = max(fma_best, again.gops)
    print(f"\nfma peak {fma_best:.0f} GFLOP/s, numpy float32 1024^3 matmul {numpy_best:.0f} "
          "GFLOP/s")
    assert fma_best >= numpy_best


def test_unknown_intrinsics_are_not_measured(target):
    foreign = Intrinsic(
        name="other",
        target=target.name,
        compute=IntrinsicCompute(
            iter_vars=[IterVar(name="i", extent=16, kind="spatial")],
            operands=[
                Operand(name="A", role="input", dtype="float32", indices=["i"]),
                Operand(name="C", role="output", dtype="float32", indices=["i"]),
            ],
        ),
        tvm_intrinsics={"compute": "someone_elses_intrinsic"},
    )
    assert peak.measure_peak(foreign, target) is None
    assert gta_intrinsic_peak(foreign, target) is None
    elsewhere = foreign.model_copy(update={"target": "not-avx512"})
    assert gta_intrinsic_peak(elsewhere, target) is None
