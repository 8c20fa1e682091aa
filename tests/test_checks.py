"""Every number is checked: outputs start as garbage, tolerances come from the arithmetic,
tuning records are checked on the artifact that was timed, the final pick walks past wrong
records."""

from __future__ import annotations

import statistics
import types

import numpy as np
import pytest
import tvm
from tvm.script import tirx as T

from gta_core.database import RecordStore
from gta_core.final_pick import final_pick
from gta_core.mapping import mapping_candidates
from gta_core.measure import MeasureSettings, build, garbage, make_builder, make_runner
from gta_core.measure.artifact_check import ArtifactCheck
from gta_core.measure.check import measure_program
from gta_core.plugins import default_registry
from gta_core.scheduler.search import TaskSearch, measure_round
from gta_core.scheduler.space import Task
from gta_core.workloads import parse_workload

FAST = MeasureSettings(number=1, repeat=2, min_repeat_ms=0)
GEMM = "gemm:M=16,N=16,K=32"


def _gemm(init: bool):
    """A scalar float32 GEMM 16x16x32 as a PrimFunc, with or without its init step."""
    if init:
        @T.prim_func(s_tir=True)
        def func(A: T.Buffer((16, 32), "float32"), B: T.Buffer((32, 16), "float32"),
                 C: T.Buffer((16, 16), "float32")):
            for m, n, k in T.grid(16, 16, 32):
                with T.sblock("gemm"):
                    vm, vn, vk = T.axis.remap("SSR", [m, n, k])
                    with T.init():
                        C[vm, vn] = T.float32(0)
                    C[vm, vn] = C[vm, vn] + A[vm, vk] * B[vk, vn]
    else:
        @T.prim_func(s_tir=True)
        def func(A: T.Buffer((16, 32), "float32"), B: T.Buffer((32, 16), "float32"),
                 C: T.Buffer((16, 16), "float32")):
            for m, n, k in T.grid(16, 16, 32):
                with T.sblock("gemm"):
                    vm, vn, vk = T.axis.remap("SSR", [m, n, k])
                    C[vm, vn] = C[vm, vn] + A[vm, vk] * B[vk, vn]
    return func


@pytest.fixture(scope="module")
def registry():
    return default_registry()


@pytest.fixture(scope="module")
def avx512(registry):
    return registry.target("avx512")


@pytest.fixture(scope="module")
def gemm(registry):
    return parse_workload(GEMM, registry.operators)


def test_garbage_is_nan_for_floats_and_a_pattern_for_integers():
    assert np.isnan(garbage((3, 2), "float32")).all()
    assert np.isnan(garbage((4,), "bfloat16").astype(np.float32)).all()
    ints = garbage((64,), "int32")
    assert ints.dtype == np.int32 and len(set(ints.tolist())) > 32  # not a constant
    assert (garbage((64,), "int32") == ints).all()  # reproducible


@pytest.mark.parametrize("init", [True, False])
def test_a_gemm_without_its_init_step_is_reported_wrong(gemm, avx512, init):
    result = measure_program(_gemm(init), gemm, avx512)
    assert result.correct is init
    if not init:
        assert "none of the 256 outputs" in result.mismatch and result.latency_us is None


@pytest.mark.parametrize("init", [True, False])
def test_tuning_checks_the_artifact_it_timed(gemm, avx512, init):
    builder, runner = make_builder(FAST), make_runner(FAST, avx512)
    mod = tvm.IRModule({"main": _gemm(init)})
    built = builder.build([tvm.s_tir.meta_schedule.builder.BuilderInput(mod,
                                                                         avx512.tvm_target())])
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo
    from tvm.s_tir.meta_schedule.runner import RunnerInput

    args = ArgInfo.from_prim_func(mod["main"])
    runner.run([RunnerInput(built[0].artifact_path, "cpu", args)])[0].result()
    check = ArtifactCheck(gemm)
    assert (check.mismatch(built[0].artifact_path) is None) is init
    assert check.checked == 1 and check.seconds > 0


def test_a_wrong_candidate_is_recorded_wrong_and_never_the_best(tmp_path, registry, avx512):
    """measure_round on a right and a wrong program of one task: the wrong one is recorded
    with status 'wrong' and the mismatch, is not the task's best, and the search sees it
    as failed."""
    from tvm.s_tir import Schedule
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo

    workload = parse_workload(GEMM, registry.operators)
    kept = next(c for c in mapping_candidates(workload, "avx512", registry)
                if c.status == "kept")
    task = Task(workload, kept, registry.intrinsics[kept.intrinsic], avx512)
    store = RecordStore(tmp_path)
    search = TaskSearch(task, store=store, builder=make_builder(FAST),
                        runner=make_runner(FAST, avx512), cost_model=None, rules=[],
                        constraints=[])
    assert search.check is not None
    candidates = []
    for init in (False, True):
        func = _gemm(init)
        candidates.append(types.SimpleNamespace(sch=Schedule(func),
                                                args_info=ArgInfo.from_prim_func(func)))
    search._workload = store.commit_workload(candidates[0].sch.mod)
    [(results, records)] = measure_round([(search, candidates)])
    wrong, right = records
    assert wrong.status == "wrong" and wrong.correct is False and not wrong.ok
    assert wrong.error.startswith("wrong: none of the 256 outputs")
    assert wrong.latency_us > 0  # what the runner measured is kept, never used
    assert right.status == "ok" and right.correct is True
    assert results[0].error_msg.startswith("wrong:") and results[1].error_msg is None
    assert store.best(task.key).line == right.line


@pytest.mark.runs("avx512")
def test_the_final_pick_walks_past_wrong_records(tmp_path, registry, avx512):
    """The fastest records are wrong (a program without its init step, recorded with luckier
    times than the right one): the pick checks them, says so, and picks the right one."""
    from tvm.s_tir import Schedule

    workload = parse_workload(GEMM, registry.operators)
    store = RecordStore(tmp_path)
    target = avx512.tvm_target()
    right = store.append("t", "m", _gemm(True), Schedule(_gemm(True)).trace, [1e-3], target)
    wrong_index = store.commit_workload(_gemm(False))
    # distinct traces of the wrong program, each claiming to be faster than the right one
    sch = Schedule(_gemm(False))
    wrongs = []
    for factor in (2, 4, 8, 16, 32):
        sch = Schedule(_gemm(False))
        sch.split(sch.get_loops(sch.get_sblock("gemm"))[2], [None, factor])
        wrongs.append(store.append("t", "m", wrong_index, sch.trace, [1e-6 * factor], target))
    pick = final_pick(store, workload, avx512, ["t"], FAST, top=2, rounds=1)
    assert [c.correct for c in pick.candidates] == [False] * 5 + [True]
    assert pick.picked.line == right.line


# ---- tolerances from the arithmetic ----------------------------------------------------------

def _gemm_outputs(dtype: str, k: int = 4096, drop: int | None = None):
    """A GEMM's expected output, and what an f32-accumulating program computes (optionally
    dropping reduction step ``drop``), from inputs rounded to ``dtype``."""
    workload = parse_workload(f"gemm:M=16,N=16,K={k},dtype={dtype}", default_registry().operators)
    a, b = workload.random_inputs(seed=3)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    if drop is not None:
        a32[:, drop] = 0
    return workload, workload.expected([a, b]), a32 @ b32


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_a_correct_gemm_at_large_k_passes_and_one_dropped_step_fails(dtype):
    workload, expected, got = _gemm_outputs(dtype)
    assert workload.mismatch(got, expected) is None
    _, _, dropped = _gemm_outputs(dtype, drop=1234)
    assert "outputs differ" in workload.mismatch(dropped, expected)


def test_outputs_that_cancel_to_near_zero_are_accepted():
    """The bound scales with sum(|a*b|), not with the output: a sum that cancels to ~0 in
    float64 is right in float32 with a small absolute error a relative bound rejects."""
    workload = parse_workload("gemm:M=1,N=1,K=4096", default_registry().operators)
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (1, 4096)).astype(np.float32)
    b = np.ones((4096, 1), np.float32)
    a[0, 2048:] = -a[0, :2048]  # the sum is exactly zero in exact arithmetic
    expected = workload.expected([a, b])
    rounded = np.cumsum(a[0].astype(np.float32), dtype=np.float32)[-1:].reshape(1, 1)
    assert workload.mismatch(rounded, expected) is None


def test_integer_outputs_must_match_exactly():
    workload = parse_workload("gemm:M=4,N=4,K=8,dtype=int8", default_registry().operators)
    expected = workload.expected(workload.random_inputs())
    assert expected.bound is None
    assert workload.mismatch(expected.value.copy(), expected) is None
    assert "exact" in workload.mismatch(expected.value + np.int32(1), expected)


def test_build_is_the_one_build_path(gemm, avx512):
    """The program checked and timed by the final pick and gta bench is built as tuning's
    builder workers build it: the same function, giving the same machine code."""
    from gta_core.measure.runners import build_candidate

    mod = tvm.IRModule({"main": _gemm(True)})
    tuned = build_candidate(mod, avx512.tvm_target())
    checked = build(mod, avx512)
    assert tuned.inspect_source("asm") == checked.mod.inspect_source("asm")


class CountingRunner:
    """The runner a search was given, with every batch it is asked to run kept."""

    def __init__(self, runner) -> None:
        self.runner, self.batches, self.seconds = runner, [], []

    def run(self, inputs):
        self.batches.append(len(inputs))
        futures = self.runner.run(inputs)
        self.seconds.append([statistics.median(float(s) for s in f.result().run_secs)
                             for f in futures])
        return futures


@pytest.mark.parametrize("best_elsewhere_s", [1e-9, None])
def test_a_timing_far_above_its_workloads_best_is_taken_again(tmp_path, registry, avx512,
                                                              best_elsewhere_s):
    """Another mapping of the workload has a record 4x faster or more: the timing is taken
    once more and the faster kept (a stalled core's sample is not what the search learns);
    with nothing faster on record it is taken once."""
    from tvm.s_tir import Schedule
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo

    workload = parse_workload(GEMM, registry.operators)
    kept = next(c for c in mapping_candidates(workload, "avx512", registry)
                if c.status == "kept")
    task = Task(workload, kept, registry.intrinsics[kept.intrinsic], avx512)
    store = RecordStore(tmp_path)
    if best_elsewhere_s is not None:
        other = task.key.rsplit("#", 1)[0] + "#another-mapping"
        store.append(other, "another-mapping", _gemm(True), Schedule(_gemm(True)).trace,
                     [best_elsewhere_s], avx512.tvm_target())
    search = TaskSearch(task, store=store, builder=make_builder(FAST),
                        runner=make_runner(FAST, avx512), cost_model=None, rules=[],
                        constraints=[])
    search.runner = counting = CountingRunner(search.runner)
    func = _gemm(True)
    candidate = types.SimpleNamespace(sch=Schedule(func), args_info=ArgInfo.from_prim_func(func))
    search._workload = store.commit_workload(func)
    [(results, [record])] = measure_round([(search, [candidate])])
    assert record.ok
    if best_elsewhere_s is None:
        assert counting.batches == [1]
    else:
        assert counting.batches == [1, 1]
        first, again = (batch[0] for batch in counting.seconds)
        assert record.latency_us == pytest.approx(min(first, again) * 1e6)  # the faster kept
