"""Record files survive binary garbage: every file GTA reads skips an undecodable line with
a warning naming file:line, and the rest loads."""

from __future__ import annotations

import warnings

import pytest

from gta_core.database import CorruptLineWarning, RecordStore, metaschedule_files
from gta_core.final_pick import FILE, ranked_records, recorded
from gta_core.measure.settings import MeasureSettings
from gta_core.tuning import tune

FAST = MeasureSettings(number=1, repeat=2, min_repeat_ms=0)
GEMM = "gemm:M=32,N=32,K=32,dtype=int8"
GARBAGE = b"\x00\xff\xfe\x80 not text\n"


def _append(path, data: bytes = GARBAGE) -> None:
    with path.open("ab") as handle:
        handle.write(data)


def test_gta_tune_resumes_over_binary_garbage_in_each_of_its_files(tmp_path):
    first = tune([GEMM], "avx512", 3, tmp_path, measure=FAST).tasks[0]
    for name in ("records.json", "gta_records.json", "workloads.json", FILE):
        _append(tmp_path / name)
    with pytest.warns(CorruptLineWarning) as caught:
        again = tune([GEMM], "avx512", 5, tmp_path, measure=FAST).tasks[0]
    messages = " ".join(str(w.message) for w in caught)
    for name in ("records.json", "gta_records.json", FILE):
        assert f"{tmp_path / name}:" in messages, name
    assert again.new_trials == 2 and again.trials == 5  # the 3 records before still count
    assert again.correct is True and first.correct is True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptLineWarning)
        store = RecordStore(tmp_path)
        assert len([r for r in store.records() if r.task]) == 5
        # the first run's pick, past the garbage, and a second one unless the new trials
        # left the fastest records as they were (then the pick is reused, not appended)
        picks = recorded(tmp_path)
        looked_at = [r.trace_key for r in
                     ranked_records(store, picks[0].tasks)[:len(picks[0].candidates)]]
        same = sorted(c.trace_key for c in picks[0].candidates) == sorted(looked_at)
        assert len(picks) == (1 if same else 2)


def _add_one(n: int):
    from tvm import te

    a = te.placeholder((n,), name="A")
    return te.create_prim_func([a, te.compute((n,), lambda i: a[i] + 1, name="B")])


def _metaschedule_database(directory):
    """A MetaSchedule JSONDatabase in ``directory`` with two workloads, one record each."""
    import tvm
    from tvm.s_tir import Schedule
    from tvm.s_tir import meta_schedule as ms

    database = ms.database.JSONDatabase(str(directory / metaschedule_files.WORKLOADS),
                                        str(directory / metaschedule_files.RECORDS))
    for n in (8, 16):
        func = _add_one(n)
        mod = tvm.IRModule({"main": func})
        workload = database.commit_workload(mod)
        database.commit_tuning_record(ms.database.TuningRecord(
            Schedule(mod).trace, workload, [1e-6 * n], tvm.target.Target("llvm"),
            ms.arg_info.ArgInfo.from_prim_func(func)))


def test_metaschedule_files_with_binary_garbage_are_repaired_and_load(tmp_path):
    from tvm.s_tir import meta_schedule as ms

    _metaschedule_database(tmp_path)
    workloads = tmp_path / metaschedule_files.WORKLOADS
    records = tmp_path / metaschedule_files.RECORDS
    _append(workloads)
    lines = records.read_bytes().splitlines(keepends=True)
    records.write_bytes(lines[0] + GARBAGE + lines[1])
    with pytest.warns(CorruptLineWarning) as caught:
        metaschedule_files.repair(tmp_path)
    messages = " ".join(str(w.message) for w in caught)
    assert f"{workloads}:3: skipped" in messages and f"{records}:2: skipped" in messages
    loaded = ms.database.JSONDatabase(str(workloads), str(records)).get_all_tuning_records()
    assert sorted(float(r.run_secs[0]) for r in loaded) == [8e-6, 16e-6]
    assert len(metaschedule_files.records(tmp_path)) == 2
