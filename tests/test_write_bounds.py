"""`generation/bounds.py`: a program that would write outside its buffers is never run."""

from __future__ import annotations

import random

import pytest
import tvm
from searches import first_mapping_search
from tvm.s_tir import meta_schedule as ms
from tvm.script import tirx as T

from gta_core.database import RecordStore
from gta_core.database.lines import append_line
from gta_core.final_pick import FILE, final_pick, in_bounds, picked_record, ranked_records
from gta_core.generation.bounds import writes_inside, writes_outside
from gta_core.measure.settings import MeasureSettings
from gta_core.model_compile import compile_specs

FAST = MeasureSettings(number=1, repeat=3, min_repeat_ms=0)

SPEC = "conv2d_transpose:N=1,C=16,H=6,W=6,K=16,R=4,S=4,stride=2,pad=1,dtype=float32"


def _drawn(mapping: int) -> tuple:
    """The task of ``SPEC``'s ``mapping``-th kept mapping and programs drawn from it."""
    search = first_mapping_search(SPEC, index=mapping)
    try:
        context = search._start()
        rng = random.Random(0)
        programs = [sketch.replay(context.mod, sketch.draw(rng), [], seed=seed)
                    for sketch in search._draws.sketches for seed in (1, 2)]
    finally:
        search.close()
    return search.task, [sch for sch in programs if sch is not None]


def _programs(mapping: int) -> list:
    return _drawn(mapping)[1]


def _gather_writers(sch) -> list[str]:
    return [sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))
            if "phase_gather" in {r.source.name for r in sch.get(b).writes}]


def test_a_transposed_convolutions_unguarded_gather_is_found():
    # This mapping's write-back takes the phase gather in, and the predicate that kept its
    # 2 x 6 phase rows inside the 11 output rows is gone by the end: it writes row -1 and 11.
    programs = _programs(3)
    flagged = [writes_outside(sch.mod) for sch in programs]
    assert any(flagged)
    assert all(set(f) <= set(_gather_writers(sch)) for f, sch in zip(flagged, programs))


@pytest.mark.parametrize("mapping", [0, 1])
def test_guarded_and_padded_writes_are_inside(mapping):
    programs = _programs(mapping)
    assert programs and not any(writes_outside(sch.mod) for sch in programs)


def test_writes_inside_reads_the_loops_and_the_predicate():
    @T.prim_func(s_tir=True)
    def shifted(a: T.Buffer((8,), "float32"), b: T.Buffer((8,), "float32")):
        for i in range(8):
            with T.sblock("b"):
                vi = T.axis.remap("S", [i])
                b[vi * 2 - 1] = a[vi]  # rows -1 .. 13 of 8

    @T.prim_func(s_tir=True)
    def guarded(a: T.Buffer((8,), "float32"), b: T.Buffer((8,), "float32")):
        for i in range(8):
            with T.sblock("b"):
                vi = T.axis.remap("S", [i])
                T.where(1 <= i and i < 4)
                b[vi * 2 - 1] = a[vi]

    for func, inside in ((shifted, False), (guarded, True)):
        sch = tvm.s_tir.Schedule(func)
        assert writes_inside(sch, sch.get_sblock("b")) is inside
    assert writes_outside(tvm.IRModule({"main": shifted})) == ["b"]


def _stored(store, task, sch, seconds: float):
    func = task.workload.prim_func()
    return store.append(task.key, task.mapping_id, tvm.IRModule({"main": func}), sch.trace,
                        [seconds], task.target.tvm_target(),
                        ms.arg_info.ArgInfo.from_prim_func(func), correct=True)


def test_a_stored_record_that_writes_outside_is_never_picked_or_compiled(tmp_path):
    # Records tuned before the check: a guarded program, and an unguarded one that was
    # checked correct (its results were right) and measured the fastest.
    store = RecordStore(tmp_path)
    task, programs = _drawn(0)
    good = _stored(store, task, programs[0], 1e-3)
    task, programs = _drawn(3)
    bad = _stored(store, task, next(sch for sch in programs if writes_outside(sch.mod)), 1e-9)
    assert ranked_records(store, store.tasks())[0].line == bad.line
    assert in_bounds(store, good) and not in_bounds(store, bad)

    pick = final_pick(store, task.workload, task.target, store.tasks(), FAST)
    refused = next(c for c in pick.candidates if c.line == bad.line)
    assert refused.error.startswith("writes outside its buffer") and not refused.samples_us
    assert pick.picked.line == good.line
    # A pick on record from before the check, naming it, is neither reused nor compiled.
    stale = pick.model_copy(update={"candidates": [
        c.model_copy(update={"error": None, "correct": True, "samples_us": [1e-3]})
        if c.line == bad.line else c for c in pick.candidates]})
    append_line(tmp_path / FILE, stale.model_dump_json())
    assert picked_record(store).line == bad.line
    assert final_pick(store, task.workload, task.target, store.tasks(), FAST).picked.line \
        == good.line
    append_line(tmp_path / FILE, stale.model_dump_json())
    _, report = compile_specs([SPEC], "avx512", tmp_path)
    assert report.functions[0].mapping == good.mapping
