"""`gta tune`: real tuning runs, correct against numpy, resumable, robust to failing candidates."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gta_core.cli import main
from gta_core.database import RecordStore
from gta_core.measure.settings import MeasureSettings
from gta_core.tuning import TuneError, tune

FAST = MeasureSettings(number=1, repeat=2, min_repeat_ms=0)
GEMM = "gemm:M=64,N=64,K=64,dtype=int8"
CONV = "conv2d:N=1,C=8,H=8,W=16,K=16,R=3,S=3,pad=1,dtype=int8"


def test_a_tiny_int8_gemm_tunes_correctly_and_a_rerun_measures_nothing(tmp_path):
    first = tune([GEMM], "avx512", 6, tmp_path, measure=FAST).tasks[0]
    assert first.correct is True and first.latency_us > 0 and first.gflops > 0
    assert first.trials == 6 and first.new_trials == 6
    assert first.mapping in {m.id for m in first.mappings}
    assert sum(m.trials for m in first.mappings) == 6
    store = RecordStore(tmp_path)
    assert len(store.records()) == 6

    again = tune([GEMM], "avx512", 6, tmp_path, measure=FAST).tasks[0]
    assert again.new_trials == 0 and again.trials == 6
    assert again.latency_us == first.latency_us
    assert len(RecordStore(tmp_path).records()) == 6

    more = tune([GEMM], "avx512", 8, tmp_path, measure=FAST).tasks[0]
    assert more.new_trials == 2 and more.trials == 8  # only what is missing


def test_a_tiny_conv2d_tunes_correctly_and_reports_pruning(tmp_path):
    task = tune([CONV], "avx512", 4, tmp_path, measure=FAST).tasks[0]
    assert task.correct is True and task.gflops > 0
    assert task.trials == 4
    assert set(task.pruned) <= {"register-tile", "register-tile-latency", "cache-working-set",
                                "parallel-extent", "parallel-balance", "lowering"}


def test_a_candidate_that_fails_to_build_does_not_stop_tuning(tmp_path, monkeypatch):
    """Every other build fails (as a crash or timeout would); tuning goes on and records it."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms

    from gta_core.measure import runners

    real = runners.make_builder
    count = itertools.count()

    @derived_object
    class HalfBroken(ms.builder.PyBuilder):
        def __init__(self, inner):
            self.inner = inner

        def build(self, inputs):
            results = self.inner.build(inputs)
            return [ms.builder.BuilderResult(None, "RuntimeError: injected build failure")
                    if next(count) % 2 == 0 else r for r in results]

    monkeypatch.setattr(runners, "make_builder", lambda *args: HalfBroken(real(*args)))
    task = tune([GEMM], "avx512", 4, tmp_path, measure=FAST).tasks[0]
    errors = [r.error for r in RecordStore(tmp_path).records()]
    assert task.trials == 4 and errors.count("RuntimeError: injected build failure") == 2
    assert task.correct is True  # the candidates that built still give a checked best


@pytest.mark.runs("avx512")
def test_cli_tune_json_contract(tmp_path, capsys):
    code = main(["tune", GEMM, "--target", "avx512", "--trials", "2", "--db", str(tmp_path),
                 "--json", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    [task] = json.loads(out)["tasks"]
    assert {"workload", "target", "latency_us", "gflops", "mapping", "trials", "new_trials",
            "correct", "pruned"} <= set(task)
    assert task["workload"] == GEMM and task["trials"] == 2


@pytest.mark.runs("avx512")
def test_two_weighted_workloads_tune_as_one_application_with_a_report(tmp_path, capsys):
    report = tmp_path / "report.md"
    code = main(["tune", GEMM, CONV, "--weights", "1,3", "--target", "avx512", "--trials", "12",
                 "--db", str(tmp_path / "db"), "--report", str(report), "--json", "--quiet"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["ended_by"] == "trials" and out["scheduler"] == "dual"
    gemm, conv = out["tasks"]
    assert (gemm["weight"], conv["weight"]) == (1, 3)
    assert gemm["trials"] + conv["trials"] == 12 and gemm["trials"] and conv["trials"]
    for task in (gemm, conv):
        assert task["correct"] is True
        # every new trial was checked on the artifact it timed; the cost is reported
        assert task["checked"] == task["new_trials"] == task["trials"] and task["wrong"] == 0
        assert task["check_seconds"] > 0
        assert sum(m["trials"] for m in task["mappings"]) == task["trials"]
        assert {"id", "prior", "trials", "best_latency_us", "dropped"} <= set(task["mappings"][0])
        assert all(m["why"] for m in task["mappings"] if m["dropped"])
        assert min(m["prior"] for m in task["mappings"]) == 1.0
    text = report.read_text()
    assert "## " + GEMM in text and "| mapping | prior (x best) | trials |" in text
    assert "output was checked against numpy on the artifact it timed" in text
    for png in ("report-1.png", "report-2.png"):
        assert (tmp_path / png).read_bytes().startswith(b"\x89PNG")


def test_a_time_budget_ends_the_run_and_says_so(tmp_path):
    report = tune([GEMM], "avx512", 500, tmp_path, time_budget=0.5, measure=FAST)
    assert report.ended_by == "time"
    assert 1 <= report.tasks[0].trials < 500
    unstarted = [m for m in report.tasks[0].mappings if not m.trials]
    assert all(m.dropped and m.why.startswith("not started") for m in unstarted)


def test_the_even_split_is_there_for_comparison(tmp_path):
    report = tune([GEMM], "avx512", 4, tmp_path, scheduler="even", measure=FAST)
    trials = [m.trials for m in report.tasks[0].mappings]
    assert report.scheduler == "even" and len(trials) > 1
    assert sum(trials) == 4 and max(trials) - min(trials) <= 1


@pytest.mark.parametrize(("argv", "message"), [
    (["--trials", "0"], "--trials: must be a positive integer"),
    (["--trials", "x"], "--trials: must be a positive integer"),
    (["--trials", "2", "--target", "tpu"], "unknown target 'tpu'"),
    (["--trials", "2", "--target", "cuda-tc"], "pass --rpc"),
    (["--trials", "2", "--db", "/proc/gta-cannot-write"], "cannot write there"),
    (["--trials", "2", "--rpc", "tracker=nohost"], "bad RPC spec"),
    (["--trials", "2", "--weights", "1,2"], "--weights has 2 values for 1 workloads"),
    (["--trials", "2", "--weights", "-1"], "--weights must be positive"),
    (["--trials", "2", "--weights", "a"], "--weights must be numbers"),
    (["--trials", "2", "--time-budget", "0"], "--time-budget: must be a positive number"),
    (["--trials", "2", "--scheduler", "best"], "--scheduler: invalid choice"),
    (["--trials", "2", "--report", "/nonexistent/r.md"], "does not exist"),
    (["--trials", "2", "--arch", "sm_90"], "target avx512 has no arch 'sm_90'"),
    (["--trials", "2", "--target", "cuda-tc", "--arch", "sm_99"], "no arch 'sm_99'"),
])
def test_cli_tune_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, message):
    base = {"--target": "avx512", "--db": str(tmp_path)}
    args = dict(zip(argv[::2], argv[1::2]))
    merged = {**base, **args}
    code = main(["tune", GEMM, *[x for kv in merged.items() for x in kv]])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err


def test_a_bad_budget_through_the_api_is_a_tune_error(tmp_path):
    with pytest.raises(TuneError, match="positive integer"):
        tune([GEMM], "avx512", 0, tmp_path)


@pytest.mark.slow
def test_kill_9_mid_run_loses_no_record_and_the_rerun_measures_only_the_rest(tmp_path):
    gta = [sys.executable, "-m", "gta_core.cli", "tune", GEMM, "--target", "avx512",
           "--trials", "16", "--db", str(tmp_path), "--quiet"]
    child = subprocess.Popen(gta, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    records = tmp_path / "gta_records.json"
    while time.monotonic() < deadline:
        if records.exists() and records.read_text().count("\n") >= 4:
            break
        time.sleep(0.5)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before = len(RecordStore(tmp_path).records())
    assert 4 <= before < 16
    task = tune([GEMM], "avx512", 16, tmp_path, measure=FAST).tasks[0]
    assert task.trials == 16 and task.new_trials == 16 - before
    assert Path(tmp_path / "records.json").read_text().count("\n") == 16


def test_the_report_puts_metaschedule_beside_gta_when_its_run_is_in_the_db(tmp_path):
    import tvm
    from tvm.s_tir import meta_schedule as ms

    from gta_core.api import load_workload
    from gta_core.measure import make_builder, make_runner
    from gta_core.plugins import default_registry
    from gta_core.tuning_report import curves, write_report

    spec = "gemm:M=32,N=32,K=32,dtype=float32"
    workload, target = load_workload(spec), default_registry().target("avx512")
    report = tune([spec], "avx512", 2, tmp_path, measure=FAST)
    ms.tune_tir(workload.prim_func(), target.tvm_target(), str(tmp_path), 2,
                num_trials_per_iter=2, builder=make_builder(FAST),
                runner=make_runner(FAST, target))
    series = curves(RecordStore(tmp_path), report.tasks[0], workload.flops,
                    tvm.IRModule({"main": workload.prim_func()}), f"{workload.spec}@avx512#")
    assert set(series) == {"GTA", "MetaSchedule"}
    assert len(series["GTA"]) == 2 and len(series["MetaSchedule"]) == 2
    assert series["GTA"][1] >= series["GTA"][0] > 0  # best so far never falls
    out = write_report(report, tmp_path, tmp_path / "r.md")
    assert "best mapping" in out.read_text() and (tmp_path / "r-1.png").exists()


def test_records_for_another_gpu_arch_are_keyed_apart():
    from gta_core.plugins import default_registry
    from gta_core.scheduler.space import task_prefix

    registry = default_registry()
    gpu = registry.target("cuda-tc")
    assert task_prefix(GEMM, gpu) != task_prefix(GEMM, gpu.for_arch("sm_90"))
    assert task_prefix(GEMM, registry.target("avx512")) == f"{GEMM}@avx512#"


def test_metaschedule_trials_are_read_in_the_order_measured(tmp_path):
    import tvm

    from gta_core.api import load_workload
    from gta_core.database.formats import FAILED_RUN_SECS, normalize_mod, structural_hash
    from gta_core.tuning_report import metaschedule_latencies

    mod = tvm.IRModule({"main": load_workload("gemm:M=8,N=8,K=8").prim_func()})
    (tmp_path / "database_workload.json").write_text(
        json.dumps(["123", "other"]) + "\n"
        + json.dumps([structural_hash(normalize_mod(mod)), "ours"]) + "\n")
    lines = [[1, [[], [3e-6, 5e-6], None, None]], [0, [[], [1e-6], None, None]],
             [1, [[], [FAILED_RUN_SECS], None, None]], [1, [[], [2e-6], None, None]]]
    (tmp_path / "database_tuning_record.json").write_text(
        "".join(json.dumps(line) + "\n" for line in lines))
    assert metaschedule_latencies(tmp_path, mod) == pytest.approx([4.0, None, 2.0])


def test_a_cpu_task_does_not_import_tvms_stock_tensor_intrinsics():
    """TuneContext imports them all (~18 s of TVMScript parsing here); a CPU task needs none."""
    code = """
import sys, time
from gta_core.scheduler.search import _stock_intrinsics_skipped
start = time.perf_counter()
with _stock_intrinsics_skipped(True):
    import tvm.s_tir.tensor_intrin as stand_in
assert not hasattr(stand_in, "cuda") and time.perf_counter() - start < 2
assert "tvm.s_tir.tensor_intrin" not in sys.modules  # a real import later still works
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
