"""The gta-rules pack: its rule and constraint on real TVM schedules."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import s_tir

from gta_core.conformance import check_plugin
from gta_core.generation import ScheduleContext
from gta_core.models import Resources, Target
from gta_core.workloads import BUILTIN_OPERATORS, parse_workload
from gta_rules import plugin
from gta_rules.constraints import ParallelBalance
from gta_rules.rules import ReductionFactor

OPERATORS = {op.name: op for op in BUILTIN_OPERATORS}
CPU = Target(name="cpu2", kind="cpu", tvm={"kind": "llvm", "num-cores": 2},
             resources=Resources(cores=2))
GPU = Target(name="gpu", kind="gpu", tvm={"kind": "cuda"})


def context(spec: str, target: Target = CPU) -> ScheduleContext:
    workload = parse_workload(spec, OPERATORS)
    return ScheduleContext(sch=s_tir.Schedule(workload.prim_func()), block=workload.operator.name,
                           target=target, workload=workload)


def run(ctx: ScheduleContext) -> None:
    """Build the schedule and compare it with the workload's numpy reference."""
    workload = ctx.workload
    executable = tvm.compile(ctx.sch.mod, target=ctx.target.tvm_target())
    inputs = workload.random_inputs()
    out = tvm.runtime.tensor(np.zeros(workload.output_shape, ctx.workload.params.acc_dtype))
    executable(*(tvm.runtime.tensor(x) for x in inputs), out)
    assert workload.mismatch(out.numpy(), workload.reference(inputs)) is None


def test_the_pack_conforms():
    registry = check_plugin(plugin, name="gta-rules")
    assert set(registry.rules) == {"reduction-factor"}
    assert set(registry.constraints) == {"parallel-balance"}


def test_reduction_factor_applies_to_a_long_reduction_with_few_outputs():
    rule = ReductionFactor()
    assert rule.applies(context("gemv:M=4,K=4096"))
    assert not rule.applies(context("gemm:M=64,N=64,K=512"))  # enough outputs to parallelise
    assert not rule.applies(context("gemv:M=4,K=64"))  # reduction too short to split
    assert not rule.applies(context("gemv:M=4,K=4096", GPU))


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_reduction_factor_splits_the_reduction_across_cores_and_stays_correct(dtype):
    ctx = context(f"gemv:M=4,K=4096,dtype={dtype}")
    ReductionFactor().apply(ctx)
    trace = str(ctx.sch.trace)
    assert "sample_perfect_tile" in trace and "rfactor" in trace
    assert ParallelBalance().check(ctx) is None  # the partial sums run in parallel
    run(ctx)


def test_parallel_balance_rejects_idle_cores_and_accepts_balanced_loops():
    constraint = ParallelBalance()
    assert constraint.applies(CPU) and not constraint.applies(GPU)
    assert not constraint.applies(Target(name="one", kind="cpu", tvm={"kind": "llvm"},
                                         resources=Resources(cores=1)))

    serial = context("gemm:M=3,N=8,K=8")
    assert constraint.check(serial) == "no parallel loop for 2 cores"

    def parallel_outer(spec: str) -> ScheduleContext:
        ctx = context(spec)
        ctx.sch.parallel(ctx.sch.get_loops(ctx.sch.get_sblock("gemm"))[0])
        return ctx

    assert constraint.check(parallel_outer("gemm:M=1,N=8,K=8")) == (
        "1 parallel iterations for 2 cores")
    assert "33% idle" in constraint.check(parallel_outer("gemm:M=3,N=8,K=8"))
    assert constraint.check(parallel_outer("gemm:M=9,N=8,K=8")) is None  # 11% idle
    assert constraint.check(parallel_outer("gemm:M=64,N=8,K=8")) is None
