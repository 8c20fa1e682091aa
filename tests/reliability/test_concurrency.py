"""Several processes on one record store: two tunes (same and different workloads), a
compile reading while a tune writes; two benches on one --out are refused."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from kit import GEMM, GEMM_B, assert_store_whole, gta, run_gta, tune_args


@pytest.mark.runs("avx512")
def test_two_tunes_and_a_compile_share_one_db(tmp_path):
    db = tmp_path / "db"
    assert run_gta(*tune_args(GEMM, db, 2)).returncode == 0  # something to compile
    runs = [subprocess.Popen(gta(*tune_args(spec, db, 6)), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
            for spec in (GEMM, GEMM_B, GEMM)]
    compiled = run_gta("compile", GEMM, "--db", str(db), "--out", str(tmp_path / "ops.so"))
    errors = [run.communicate(timeout=600)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], errors
    assert compiled.returncode == 0, compiled.stderr
    assert (tmp_path / "ops.so").stat().st_size > 0
    # No line torn; the two tunes of one workload may each measure the same candidate
    # (neither knows what the other has in flight), so only distinct workloads are counted.
    records = assert_store_whole(db, once=False)
    by_task = {}
    for record in records:
        by_task.setdefault(record.task.split("#")[0], []).append(record)
    assert len(by_task) == 2 and all(len(r) >= 6 for r in by_task.values())
    for spec in (GEMM, GEMM_B):  # both resume: nothing left to measure at their budget
        result = run_gta(*tune_args(spec, db, 6, "--json"))
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["tasks"][0]["new_trials"] == 0


@pytest.mark.runs("avx512")
def test_a_second_bench_on_one_out_is_refused_with_the_holders_pid(tmp_path):
    out = tmp_path / "bench"
    first = subprocess.Popen(gta("bench", "--suite", "ci", "--baselines", "numpy", "--trials",
                                 "1", "--out", str(out), "--quiet-wait", "0"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "bench.lock").exists() or not (out / "bench.lock").read_text():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        second = run_gta("bench", "--suite", "ci", "--out", str(out))
        assert second.returncode == 2
        assert second.stderr.strip() == (
            f"gta: error: --out {out} is in use by another gta bench (pid {first.pid}); "
            "wait for it to end or choose another folder")
    finally:
        first.kill()
        first.wait()
