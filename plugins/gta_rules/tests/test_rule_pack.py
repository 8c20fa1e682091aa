"""The gta-rules pack: its rule and constraint on real TVM schedules."""

from __future__ import annotations

from gta_rules import plugin
from gta_rules.constraints import ParallelBalance
from gta_rules.rules import PackingAtTile
from tvm import s_tir

from gta_core.api import load_workload
from gta_core.conformance import check_plugin
from gta_core.generation import ScheduleContext
from gta_core.generation.engine import apply_rules
from gta_core.mapping import mapping_candidates
from gta_core.mapping.realise import finish_cpu, reshape
from gta_core.measure import measure_program
from gta_core.models import Resources, Target
from gta_core.plugins import default_registry

CPU = Target(name="cpu2", kind="cpu", tvm={"kind": "llvm", "num-cores": 2},
             resources=Resources(cores=2))
GPU = Target(name="gpu", kind="gpu", tvm={"kind": "cuda"})


def realised_context(spec: str, target: Target) -> ScheduleContext:
    registry = default_registry()
    workload = load_workload(spec)
    candidate = next(c for c in mapping_candidates(workload, "avx512", registry)
                     if c.status == "kept")
    intrinsic = registry.intrinsics[candidate.intrinsic]
    shaped = reshape(workload, candidate, intrinsic)
    return ScheduleContext(sch=shaped.sch, block=shaped.block, target=target, workload=workload,
                           intrinsic=intrinsic, mapping=candidate, spatial=shaped.spatial,
                           reduce=shaped.reduce, inner=shaped.inner,
                           notes={"compute": shaped.compute})


def test_the_pack_conforms():
    registry = check_plugin(plugin, name="gta-rules")
    assert registry.plugins["gta-rules"].registered == {
        "rules": ["packing-at-tile"], "constraints": ["parallel-balance"]}


def test_packing_at_tile_adds_per_tile_packing_sketches_that_stay_correct():
    spec = "conv2d:N=1,C=8,H=8,W=16,K=16,R=3,S=3,pad=1,dtype=int8"
    context = realised_context(spec, default_registry().target("avx512"))
    rules = list(default_registry().rules.values())
    assert "packing-at-tile" in {r.name for r in rules}
    sketches = apply_rules(context, rules)
    assert {s.notes.get("packing") for s in sketches} == {None, "S0", "R0"}
    for sketch in sketches:
        finish_cpu(sketch.sch, sketch.block, sketch.levels["R0"], sketch.inner,
                   sketch.notes["compute"])
        result = measure_program(sketch.sch.mod, sketch.workload, sketch.target, number=1,
                                 repeat=1)
        assert result.correct, result.mismatch
    assert not PackingAtTile().applies(realised_context(spec, GPU))


def test_parallel_balance_rejects_idle_cores_and_accepts_balanced_loops():
    constraint = ParallelBalance()
    assert constraint.applies(CPU) and not constraint.applies(GPU)
    assert not constraint.applies(Target(name="one", kind="cpu", tvm={"kind": "llvm"},
                                         resources=Resources(cores=1)))

    def parallel_outer(spec: str) -> ScheduleContext:
        workload = load_workload(spec)
        sch = s_tir.Schedule(workload.prim_func())
        sch.parallel(sch.get_loops(sch.get_sblock("gemm"))[0])
        return ScheduleContext(sch=sch, block="gemm", target=CPU, workload=workload)

    serial = load_workload("gemm:M=3,N=8,K=8")
    assert constraint.check(ScheduleContext(sch=s_tir.Schedule(serial.prim_func()),
                                            block="gemm", target=CPU)) is None
    assert "33% idle" in constraint.check(parallel_outer("gemm:M=3,N=8,K=8"))
    assert constraint.check(parallel_outer("gemm:M=9,N=8,K=8")) is None  # 11% idle
    assert constraint.check(parallel_outer("gemm:M=64,N=8,K=8")) is None
