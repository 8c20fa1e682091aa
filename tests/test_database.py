"""The record store: MetaSchedule-compatible files, crash safety, concurrency, queries."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import types
import warnings
from pathlib import Path

import pytest

tvm = pytest.importorskip("tvm")
from tvm import te  # noqa: E402
from tvm.s_tir import Schedule  # noqa: E402
from tvm.s_tir import meta_schedule as ms  # noqa: E402

from gta_core.database import CorruptLineWarning, RecordStore, trace_key  # noqa: E402
from gta_core.database.formats import FAILED_RUN_SECS, normalize_mod  # noqa: E402

TARGET = {"kind": "llvm", "num-cores": 2}


def gemm(n: int = 64):
    a = te.placeholder((n, n), name="A")
    b = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    return te.create_prim_func([a, b, c])


def split_trace(func, factor: int, postproc: bool = False):
    """The trace of splitting GEMM's j loop by ``factor`` (optionally with a postproc part)."""
    # keep `mod` referenced while scheduling: TVM 0.27 edits a module it solely owns in
    # place, and the body of with_attr's copy (made by normalize_mod) is shared with `func`
    mod = normalize_mod(func)
    sch = Schedule(mod)
    block = sch.get_sblock("C")
    _, j, _ = sch.get_loops(block)
    sch.split(j, factors=[None, factor])
    if postproc:
        sch.enter_postproc()
        sch.parallel(sch.get_loops(block)[0])
    return sch.trace


def append(store: RecordStore, func, factor: int, latency_us: float | None, *, task="gemm",
           **extra):
    args = ms.arg_info.ArgInfo.from_prim_func(func)
    run_secs = None if latency_us is None else [latency_us * 1e-6] * 3
    return store.append(task, "m0", func, split_trace(func, factor), run_secs,
                        tvm.target.Target(TARGET), args, **extra)


def json_database(directory: Path):
    return ms.database.JSONDatabase(path_workload=str(directory / "workloads.json"),
                                    path_tuning_record=str(directory / "records.json"))


def complete_lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def test_round_trip(tmp_path):
    func = gemm()
    store = RecordStore(tmp_path)
    written = [append(store, func, 4, 30.0, correct=True),
               append(store, func, 8, None, error="Build failed:\n  LLVM said no\n"),
               append(store, func, 16, 20.0)]
    fresh = RecordStore(tmp_path).records()
    assert fresh == written
    assert [r.line for r in fresh] == [1, 2, 3]
    assert written[1].error == "Build failed: | LLVM said no"  # one line
    assert written[1].run_secs == [FAILED_RUN_SECS]
    assert written[0].latency_us == pytest.approx(30.0)
    assert len(complete_lines(tmp_path / "workloads.json")) == 1
    side = [json.loads(x) for x in complete_lines(tmp_path / "gta_records.json")]
    assert set(side[0]) == {"key", "task", "mapping", "latency_us", "error", "correct", "time"}


def test_json_database_loads_and_compile_tir_applies_best(tmp_path):
    func = gemm()
    store = RecordStore(tmp_path)
    append(store, func, 4, 30.0, correct=True)
    best = append(store, func, 8, 10.0, correct=True)
    append(store, func, 16, 20.0)  # unchecked
    append(store, func, 32, 5.0, correct=False)  # fastest but wrong: never applied
    append(store, func, 2, None, error="run timed out")
    assert store.best("gemm") == best

    database = json_database(tmp_path)
    assert len(database) == 5
    sch = ms.tir_integration.compile_tir(database, func, tvm.target.Target(TARGET))
    assert sch is not None and trace_key(sch.trace) == best.trace_key

    view = store.metaschedule_view("gemm")
    sch = ms.tir_integration.compile_tir(view, func, tvm.target.Target(TARGET))
    assert sch is not None and trace_key(sch.trace) == best.trace_key
    top = view.get_top_k(view.commit_workload(normalize_mod(func)), 10)
    assert [trace_key(r.trace) for r in top] == [
        r.trace_key for r in sorted(store.records("gemm")[:3], key=lambda r: r.latency_us)]
    assert len(view) == 5 and len(view.get_all_tuning_records()) == 5
    assert len(store.metaschedule_view("another task")) == 0
    assert trace_key(store.schedule(best).trace) == best.trace_key


def test_queries(tmp_path):
    func = gemm()
    store = RecordStore(tmp_path)
    assert store.best("gemm") is None and store.measured_count("gemm") == 0
    append(store, func, 4, 30.0, correct=True)
    failed = append(store, func, 8, None, error="build error")
    append(store, func, 16, 1.0, correct=False)
    unchecked = append(store, func, 32, 20.0)
    append(store, func, 2, 0.5, task="other")

    other_process = RecordStore(tmp_path)  # sees what this one appends later
    assert other_process.measured_count("gemm") == 4
    assert store.best("gemm") == unchecked
    assert store.seen_traces("gemm") == {trace_key(split_trace(func, f)) for f in (4, 8, 16, 32)}
    assert failed.trace_key in store.seen_traces("gemm")
    # a candidate is recognised before and after its postprocessing
    assert trace_key(split_trace(func, 4, postproc=True)) == trace_key(split_trace(func, 4))
    assert store.tasks() == ["gemm", "other"]

    fastest = append(store, func, 64, 2.0, correct=True)
    assert other_process.best("gemm") == fastest
    assert other_process.measured_count("gemm") == 5
    assert RecordStore(tmp_path).commit_workload(func) == 0  # idempotent
    assert store.commit_workload(gemm(32)) == 1
    # what MetaSchedule could not load is refused before anything is written
    size = (tmp_path / "records.json").stat().st_size
    with pytest.raises(ValueError, match="no readable workload 7"):
        store.append("gemm", "m0", 7, split_trace(func, 4), [1e-6])
    with pytest.raises(ValueError, match="finite"):
        store.append("gemm", "m0", 0, split_trace(func, 4), [float("nan")])
    assert (tmp_path / "records.json").stat().st_size == size


def test_corrupt_line_in_the_middle_is_skipped_with_a_warning(tmp_path):
    func = gemm()
    store = RecordStore(tmp_path)
    for factor in (4, 8, 16):
        append(store, func, factor, float(factor))
    path = tmp_path / "records.json"
    lines = complete_lines(path)
    path.write_bytes(b"\n".join([lines[0], b'[0, [["oops"', lines[1], b"[7]", lines[2]]) + b"\n")
    with pytest.warns(CorruptLineWarning) as caught:
        records = RecordStore(tmp_path).records("gemm")
    messages = [str(w.message) for w in caught]
    assert any(f"{path}:2: skipped: not JSON" in m for m in messages)
    assert any(f"{path}:4: skipped" in m for m in messages)
    assert [r.line for r in records] == [1, 3, 5]
    assert [r.latency_us for r in records] == [4.0, 8.0, 16.0]


def test_partial_last_line_is_skipped_then_removed(tmp_path):
    func = gemm()
    store = RecordStore(tmp_path)
    for factor in (4, 8):
        append(store, func, factor, float(factor))
    path = tmp_path / "records.json"
    with open(path, "ab") as handle:  # what a writer killed mid-line leaves
        handle.write(complete_lines(path)[0][:40])
    with pytest.warns(CorruptLineWarning, match=r"records\.json:3: skipped: incomplete"):
        assert len(RecordStore(tmp_path).records("gemm")) == 2
    with pytest.warns(CorruptLineWarning, match=r"records\.json:3: removed an incomplete"):
        append(store, func, 16, 16.0)
    assert len(complete_lines(path)) == 3 and path.read_bytes().endswith(b"\n")
    assert len(json_database(tmp_path)) == 3  # MetaSchedule's loader accepts the file again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [r.line for r in RecordStore(tmp_path).records("gemm")] == [1, 2, 3]


CHILD = """
import os
import sys
import time
from tvm import te
from gta_core.database import RecordStore

directory, task, count, sizes = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
sizes = [int(n) for n in sizes.split(",")]

def gemm(n):
    a = te.placeholder((n, n), name="A")
    b = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    return te.create_prim_func([a, b, c])

funcs = {n: gemm(n) for n in sizes}
store = RecordStore(directory)
if len(sys.argv) > 5:  # a start line, so that both writers really overlap
    print("ready", flush=True)
    while not os.path.exists(sys.argv[5]):
        time.sleep(0.01)
for i in range(count):
    n = sizes[i % len(sizes)]
    trace = [[["GetSBlock", [], ["C", "main"], ["b0"]],
              ["GetLoops", ["b0"], [], ["l1", "l2", "l3"]],
              ["Split", ["l2", "None", 1 + i % 8], [1, 0], ["l4", "l5"]]], []]
    shape = ["TENSOR", "float32", [n, n]]
    store.append(task, "m0", funcs[n], trace, [1e-6 * (i + 1)], {"kind": "llvm", "num-cores": 2},
                 [shape, shape, shape])
    print(i + 1, flush=True)
"""


def start_child(tmp_path: Path, task: str, count: int, sizes: str,
                *go: str) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return subprocess.Popen([sys.executable, str(script), str(tmp_path / "db"), task, str(count),
                             sizes, *go], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_kill_9_loses_at_most_the_line_being_written(tmp_path):
    child = start_child(tmp_path, "killed", 100_000, "16")
    for line in child.stdout:
        if int(line) >= 50:
            break
    else:
        pytest.fail(f"the writer died first: {child.stderr.read()}")
    child.send_signal(signal.SIGKILL)
    rest = child.stdout.read().split()
    child.wait()
    assert child.returncode == -signal.SIGKILL
    reported = int(rest[-1]) if rest else 50

    directory = tmp_path / "db"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = RecordStore(directory)
        records = store.records()
    assert all("incomplete last line" in str(w.message) for w in caught)
    assert len(records) == len(complete_lines(directory / "records.json"))  # every whole line
    assert reported <= len(store.records("killed")) <= reported + 1
    # the next append removes any partial tail: MetaSchedule loads everything
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptLineWarning)
        append(store, gemm(16), 4, 1.0, task="after")
    assert len(json_database(directory)) == len(records) + 1


def test_two_processes_append_concurrently(tmp_path):
    # both register the shared sizes, in opposite orders, plus one size of their own
    go = tmp_path / "go"
    children = [start_child(tmp_path, "a", 200, "16,24,32,40", str(go)),
                start_child(tmp_path, "b", 200, "32,24,16,48", str(go))]
    for child in children:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
    go.touch()
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    directory = tmp_path / "db"
    tasks = [json.loads(x)["task"] for x in complete_lines(directory / "gta_records.json")]
    assert sum(a != b for a, b in zip(tasks, tasks[1:])) >= 2  # the writers did interleave
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store = RecordStore(directory)
        assert store.measured_count("a") == store.measured_count("b") == 200
    workloads = [json.loads(x) for x in complete_lines(directory / "workloads.json")]
    assert len(workloads) == 5 and len({w[0] for w in workloads}) == 5
    sizes = {i: int(store.workload_module(i)["main"].params[0].shape[0])
             for i in range(len(workloads))}
    assert sorted(sizes.values()) == [16, 24, 32, 40, 48]
    for record in store.records():
        assert sizes[record.workload] == record.args_info[0][2][0]
    assert len(json_database(directory)) == 400


def test_evolutionary_search_seeds_from_the_store(tmp_path, monkeypatch):
    # TuneContext imports every registered tensor intrinsic (~15 s here); none is used
    if "tvm.s_tir.tensor_intrin" not in sys.modules:
        monkeypatch.setitem(sys.modules, "tvm.s_tir.tensor_intrin",
                            types.ModuleType("tvm.s_tir.tensor_intrin"))
    func = gemm()
    target = tvm.target.Target(TARGET)

    def tile(sch):
        _, j, _ = sch.get_loops(sch.get_sblock("C"))
        sch.split(j, factors=sch.sample_perfect_tile(j, n=2))

    def search(store: RecordStore):
        view = store.metaschedule_view("gemm", "m0")
        asked = []
        get_top_k = view._inst.get_top_k

        def spy(workload, k):
            found = get_top_k(workload, k)
            asked.append((k, len(found)))
            return found

        view._inst.get_top_k = spy
        space = ms.space_generator.ScheduleFn(
            tile, sch_rules=[], postprocs=[], mutator_probs={ms.mutator.MutateTileSize(): 1.0})
        context = ms.TuneContext(
            mod=func, target=target, space_generator=space, task_name="gemm", rand_state=1,
            num_threads=1, search_strategy=ms.search_strategy.EvolutionarySearch(
                population_size=8, init_measured_ratio=0.5, init_min_unmeasured=4,
                genetic_num_iters=1))
        strategy = context.search_strategy
        strategy.pre_tuning(4, 4, context.space_generator.generate_design_space(context.mod),
                            view, ms.cost_model.RandomModel())
        candidates = strategy.generate_measure_candidates()
        results = [ms.runner.RunnerResult(run_secs=[1e-5 * (i + 1)], error_msg=None)
                   for i in range(len(candidates))]
        workload = view.commit_workload(context.mod)  # what AddToDatabase does
        for candidate, result in zip(candidates, results):
            view.commit_tuning_record(ms.database.TuningRecord(
                candidate.sch.trace, workload, result.run_secs, target, candidate.args_info))
        strategy.notify_runner_results(candidates, results)
        strategy.post_tuning()
        return asked, len(candidates)

    asked, first = search(RecordStore(tmp_path))
    assert asked == [(4, 0)] and first > 0
    store = RecordStore(tmp_path)  # a resumed run
    assert store.measured_count("gemm") == first and store.best("gemm").mapping == "m0"
    asked, _ = search(store)
    assert asked == [(4, min(first, 4))]  # seeded with what the first run measured

