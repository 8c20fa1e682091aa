"""The cuda-tc generation rules and constraints, on real TVM schedules of a fp16 GEMM.

Each is taken from a registry that loads only the core and this plugin (a fresh plugin
manager); schedules whose tile sizes overflow a limit are built deliberately by replaying a
design space with chosen decisions.
"""

from __future__ import annotations

import functools

import pytest
import tvm
from gta_cuda_tc import plugin
from gta_cuda_tc.archs import ARCHS
from gta_cuda_tc.constraints import kernel_usage
from tvm.s_tir import Schedule, Trace

from gta_core.conformance import check_plugin
from gta_core.generation import ScheduleContext
from gta_core.mapping import mapping_candidates
from gta_core.mapping.realise import reshape
from gta_core.plugins import Registry, load
from gta_core.scheduler.space import MappingSpace, Task

SPEC = "gemm:M=1024,N=1024,K=1024,dtype=float16"
RULES = ["warp-tiling", "stage-through-shared", "software-pipeline", "unroll-kernel"]
CONSTRAINTS = ["shared-memory-per-block", "threads-per-block", "accumulator-fragments",
               "registers-per-thread"]


@functools.cache
def registry() -> Registry:
    """The core's built-ins and this plugin, nothing installed."""
    return load(environ={"GTA_PLUGINS": ""}, extra=[("gta-cuda-tc", plugin)])


@functools.cache
def task(intrinsic: str = "wmma-m16n16k16-f16f32") -> Task:
    from gta_core.api import load_workload

    reg = registry()
    workload = load_workload(SPEC, reg)
    candidate = next(c for c in mapping_candidates(workload, "cuda-tc", reg)
                     if c.intrinsic == intrinsic)
    return Task(workload, candidate, reg.intrinsics[candidate.intrinsic], reg.target("cuda-tc"))


def reshaped(target=None) -> ScheduleContext:
    t = task()
    shaped = reshape(t.workload, t.mapping, t.intrinsic)
    return ScheduleContext(sch=shaped.sch, block=shaped.block, target=target or t.target,
                           workload=t.workload, intrinsic=t.intrinsic, mapping=t.mapping,
                           spatial=shaped.spatial, reduce=shaped.reduce, inner=shaped.inner)


def space(intrinsic: str = "wmma-m16n16k16-f16f32") -> MappingSpace:
    reg = registry()
    return MappingSpace(task(intrinsic), list(reg.rules.values()),
                        list(reg.constraints.values()))


def replayed(fragments: int, warps: int, k_fragments: int,
             intrinsic: str = "wmma-m16n16k16-f16f32") -> Schedule:
    """The design space with every tile size chosen: per spatial axis ``fragments`` per warp
    and ``warps`` warps, ``k_fragments`` per k-step (the GEMM has 64 fragments per axis)."""
    mod = tvm.IRModule({"main": task(intrinsic).workload.prim_func()})
    trace = space(intrinsic).generate_design_space(mod)[0].trace
    tiles = [inst for inst in trace.insts if inst.kind.name == "SamplePerfectTile"]
    # Per spatial axis: [outer, fragments] then [blocks, warps]; then the reduction's split.
    chosen = [[64 // fragments, fragments], [64 // fragments // warps, warps]] * 2 \
        + [[64 // k_fragments, k_fragments]]
    decisions = {**trace.decisions, **dict(zip(tiles, chosen))}
    sch = Schedule(mod)
    Trace(trace.insts, decisions).apply_to_schedule(sch, remove_postproc=True)
    return sch


def checked(sch: Schedule, intrinsic: str = "wmma-m16n16k16-f16f32") -> ScheduleContext:
    t = task(intrinsic)
    return ScheduleContext(sch=sch, block=t.workload.main_block, target=t.target,
                           workload=t.workload, intrinsic=t.intrinsic, mapping=t.mapping)


def test_the_plugin_conforms_and_registers_its_rules_and_constraints():
    reg = check_plugin(plugin, name="gta-cuda-tc", run_programs=False)
    registered = reg.plugins["gta-cuda-tc"].registered
    assert registered["rules"] == RULES
    assert registered["constraints"] == CONSTRAINTS


def test_warp_tiling_binds_blocks_and_warps_and_records_the_levels():
    context = reshaped()
    rule = registry().rules["warp-tiling"]
    assert rule.applies(context)
    rule.apply(context)
    assert {"S0", "S1", "S2", "R0", "R1"} <= set(context.levels)
    script = context.sch.mod.script()
    assert 'T.thread_binding(' in script and '"blockIdx.x"' in script
    assert '"threadIdx.y"' in script
    assert len(context.notes["warps"]) == 2  # one sampled warp factor per spatial axis
    kinds = [inst.kind.name for inst in context.sch.trace.insts]
    assert kinds.count("SamplePerfectTile") == 5  # 2 per spatial axis, 1 for the reduction


def test_stage_through_shared_stages_every_operand_and_names_its_intrinsics():
    context = reshaped()
    for name in RULES[:2]:
        registry().rules[name].apply(context)
    script = context.sch.mod.script()
    for scope in ("shared", "wmma.matrix_a", "wmma.matrix_b", "wmma.accumulator"):
        assert f'scope="{scope}"' in script, scope
    assert script.count('"gta.tensorize"') == 3  # the two fragment loads and the store
    assert "T.vectorized" in script  # 16-byte global -> shared copies


def test_software_pipeline_overlaps_the_copies_with_the_tensor_core_work():
    context = reshaped()
    for name in RULES[:3]:
        registry().rules[name].apply(context)
    step = context.sch.get(context.levels["R0"][-1])
    # A's and B's global -> shared copies are stage 0 (asynchronous), the k-fragment loop 1
    assert [int(v) for v in step.annotations["software_pipeline_stage"]] == [0, 0, 1]
    assert [int(v) for v in step.annotations["software_pipeline_async_stages"]] == [0]


def test_unroll_kernel_samples_the_unroll_depth():
    context = reshaped()
    for name in RULES:
        registry().rules[name].apply(context)
    assert "meta_schedule.unroll_explicit" in context.sch.mod.script()
    assert "SampleCategorical" in [inst.kind.name for inst in context.sch.trace.insts]


def test_gpu_rules_leave_cpu_targets_and_cpu_rules_leave_gpu_targets():
    from gta_core.models import Resources, Target

    cpu = Target(name="cpu2", kind="cpu", tvm={"kind": "llvm", "num-cores": 2},
                 resources=Resources(cores=2))
    rules = registry().rules.values()
    # On a reshaped GEMM only the tiling applies; the other GPU rules need its tiles.
    assert {r.name for r in rules if r.applies(reshaped())} == {"warp-tiling"}
    assert not [r.name for r in rules if r.name in RULES and r.applies(reshaped(cpu))]


def test_a_sampled_design_space_is_a_replayable_tensorized_kernel():
    sch = replayed(fragments=2, warps=2, k_fragments=2)
    assert space().check.apply(sch)
    again = Schedule(tvm.IRModule({"main": task().workload.prim_func()}))
    Trace.apply_json_to_schedule(sch.trace.as_json(), again)
    tvm.ir.assert_structural_equal(again.mod, sch.mod)


def test_a_fitting_schedule_passes_every_constraint():
    context = checked(replayed(fragments=2, warps=2, k_fragments=2))
    for name in CONSTRAINTS:
        assert registry().constraints[name].check(context) is None, name
    usage = kernel_usage(context.sch)
    assert usage.threads == 4 * 32
    # A: 2 warps x 2 fragments x 16 rows by 2 k-fragments x 16, and B alike, in fp16, each
    # twice (the software pipeline's two stages); C's 64 x 64 fp32 output tile.
    assert usage.shared_bytes == 2 * 2 * (64 * 32 * 2) + 64 * 64 * 4
    assert usage.fragment_elements["wmma.accumulator"] == 4 * 256  # per warp
    assert usage.accumulator_elements == 4 * 256


def test_mma_sync_fragments_in_warp_registers_are_counted():
    """mma.sync's fragments are all in "warp" memory: the accumulators are those the kernel
    initialises, the registers all of them."""
    mma = "mma-m16n8k16-f16f32"
    fits = kernel_usage(replayed(fragments=2, warps=2, k_fragments=2, intrinsic=mma))
    assert fits.accumulator_elements == 4 * 256  # 2 x 2 fragments of 16 x 16 per warp
    # and per warp the A and B fragments of one k-fragment each: 2 + 2 of 16 x 16 fp16
    assert fits.fragment_bytes == {"warp": 4 * 256 * 4 + 4 * 256 * 2}
    context = checked(replayed(fragments=8, warps=1, k_fragments=1, intrinsic=mma), mma)
    assert registry().constraints["accumulator-fragments"].check(context) == \
        "a warp holds 64 accumulator fragments; at most 16 stay in registers"
    assert "registers" in registry().constraints["registers-per-thread"].check(context)


def test_shared_memory_per_block_rejects_an_overflowing_schedule():
    context = checked(replayed(fragments=4, warps=4, k_fragments=4))
    reason = registry().constraints["shared-memory-per-block"].check(context)
    assert reason is not None
    assert "bytes of shared memory" in reason and "sm_80 allows 49152" in reason
    assert kernel_usage(context.sch).shared_bytes > ARCHS["sm_80"].resources.shared_memory_per_block
    assert not space().check.apply(context.sch)


def test_threads_per_block_rejects_more_than_1024_threads():
    context = checked(replayed(fragments=1, warps=8, k_fragments=1))
    reason = registry().constraints["threads-per-block"].check(context)
    assert reason == ("a thread block has 2048 threads (64 warps); sm_80 allows 1024 "
                      "(32 warps)")


def test_accumulator_fragments_and_registers_reject_a_huge_warp_tile():
    context = checked(replayed(fragments=8, warps=1, k_fragments=1))
    fragments = registry().constraints["accumulator-fragments"].check(context)
    assert fragments == "a warp holds 64 accumulator fragments; at most 16 stay in registers"
    registers = registry().constraints["registers-per-thread"].check(context)
    assert registers is not None and "registers" in registers and "allows 255" in registers


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_each_arch_is_target_data_selectable_by_name(arch: str):
    target = registry().target("cuda-tc").for_arch(arch)
    assert target.tvm["arch"] == arch and target.arch == arch
    assert target.resources == ARCHS[arch].resources
    assert target.peak["float16"] > 0 and target.resources.sm_count > 0
