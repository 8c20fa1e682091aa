"""The final pick: the fastest records timed again side by side, so one lucky measurement
does not decide what `gta tune` reports and `gta bench` times."""

from __future__ import annotations

import pytest

from gta_core.database import RecordStore
from gta_core.final_pick import (
    FILE,
    ROUNDS,
    TOP,
    FinalPick,
    Retimed,
    final_pick,
    picked_record,
    ranked_records,
    recorded,
)
from gta_core.measure.settings import MeasureSettings
from gta_core.plugins import default_registry
from gta_core.tuning import tune
from gta_core.workloads import parse_workload

FAST = MeasureSettings(number=1, repeat=3, min_repeat_ms=0)
GEMM = "gemm:M=64,N=64,K=64,dtype=int8"


def _lucky_naive_record(store: RecordStore):
    """A record of the untransformed (scalar) program that claims to have run in 1 ns."""
    from tvm.s_tir import Schedule

    real = min((r for r in store.records() if r.ok), key=lambda r: r.latency_us)
    naive = Schedule(store.workload_module(real.workload))
    return store.append(real.task, real.mapping, real.workload, naive.trace, [1e-9],
                        real.target, real.args_info)


def test_tune_reports_the_median_of_its_fastest_records_timed_again_and_reuses_it(tmp_path):
    first = tune([GEMM], "avx512", 6, tmp_path, measure=FAST).tasks[0]
    assert 1 <= len(first.retimed) <= TOP
    tuned = sorted(r.latency_us for r in RecordStore(tmp_path).records() if r.ok)
    assert [c.tuned_us for c in first.retimed] == tuned[:len(first.retimed)]
    assert all(c.correct and len(c.samples_us) == ROUNDS for c in first.retimed)
    fastest = min(first.retimed, key=lambda c: c.median_us)
    assert (first.latency_us, first.mapping) == (fastest.median_us, fastest.mapping)
    assert first.correct is True

    again = tune([GEMM], "avx512", 6, tmp_path, measure=FAST).tasks[0]
    assert again.retimed == first.retimed  # nothing new measured: the pick on record stands
    assert len((tmp_path / FILE).read_text().splitlines()) == 1


@pytest.mark.timing
def test_a_lucky_measurement_does_not_make_the_pick(tmp_path):
    tune([GEMM], "avx512", 4, tmp_path, measure=FAST)
    store = RecordStore(tmp_path)
    lucky = _lucky_naive_record(store)
    assert ranked_records(store, store.tasks())[0].line == lucky.line
    workload = parse_workload(GEMM, default_registry().operators)
    target = default_registry().target("avx512")

    pick = final_pick(store, workload, target, store.tasks(), FAST)
    naive = next(c for c in pick.candidates if c.line == lucky.line)
    assert naive.tuned_us < 0.01 and naive.correct
    assert pick.picked.line != lucky.line
    assert naive.median_us > 3 * pick.picked.median_us  # scalar against VNNI
    # The new top set was timed anew and appended; gta bench builds what it picked.
    assert len(recorded(tmp_path)) == 2 and len(recorded(tmp_path, store.tasks())) == 1
    assert picked_record(store).line == pick.picked.line


def test_ranked_records_skip_failures_and_repeated_traces(tmp_path):
    tune([GEMM], "avx512", 3, tmp_path, measure=FAST)
    store = RecordStore(tmp_path)
    best = min((r for r in store.records() if r.ok), key=lambda r: r.latency_us)
    store.append(best.task, best.mapping, best.workload, best.trace, [1e-9], best.target,
                 best.args_info)  # the same program again, luckier
    store.append(best.task, best.mapping, best.workload, best.trace, None, best.target,
                 best.args_info, error="RuntimeError: failed")
    top = ranked_records(store, store.tasks())
    assert len({r.trace_key for r in top}) == len(top)
    assert top[0].latency_us < 0.01 and all(r.error is None for r in top)
    assert ranked_records(store, ["another task"]) == []


def test_the_pick_is_the_fastest_correct_median():
    def candidate(line, samples, correct=True):
        return Retimed(line=line, trace_key=str(line), mapping="m", tuned_us=1.0,
                       samples_us=samples, correct=correct)

    pick = FinalPick(tasks=["t"], time=0.0, candidates=[
        candidate(1, [9.0, 1.0, 9.0]), candidate(2, [2.0, 3.0, 2.5]),
        candidate(3, [0.5, 0.5, 0.5], correct=False), candidate(4, [])])
    assert pick.picked.line == 2  # median 2.5 beats median 9 (whose one sample was 1.0)
    assert FinalPick(tasks=["t"], time=0.0, candidates=[candidate(3, [1.0], False)]).picked is None
