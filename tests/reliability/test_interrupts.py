"""SIGINT and SIGTERM mid-run: every record kept, the exit status says which, the rerun
resumes; kill -9 at random moments loses nothing and measures nothing twice."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from kit import GEMM, assert_store_whole, gta, run_gta, tune_args


def _side_lines(db: Path) -> int:
    path = db / "gta_records.json"
    return path.read_text().count("\n") if path.exists() else 0


def _start_and_wait(db: Path, trials: int, records: int) -> subprocess.Popen:
    """A `gta tune` of GEMM, returned once ``records`` of its trials are on disk."""
    child = subprocess.Popen(gta(*tune_args(GEMM, db, trials)), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while _side_lines(db) < records and child.poll() is None:
        assert time.monotonic() < deadline, "tuning made no progress"
        time.sleep(0.2)
    return child


def _resumes(db: Path, trials: int, before: int) -> None:
    result = run_gta(*tune_args(GEMM, db, trials, "--json"))
    assert result.returncode == 0, result.stderr
    task = json.loads(result.stdout)["tasks"][0]
    assert task["trials"] == trials and task["new_trials"] == trials - before
    assert task["correct"] is True
    assert len(assert_store_whole(db)) == trials


@pytest.mark.runs("avx512")
@pytest.mark.parametrize("sig, status, word", [
    (signal.SIGINT, 130, "interrupted (SIGINT)"),
    (signal.SIGTERM, 143, "terminated (SIGTERM)"),
])
def test_a_signal_keeps_every_record_says_how_the_run_ended_and_the_rerun_resumes(
        sig, status, word, tmp_path):
    db = tmp_path / "db"
    child = _start_and_wait(db, 12, 2)
    child.send_signal(sig)
    _, err = child.communicate(timeout=120)
    assert child.returncode == status, err
    assert word in err and "rerun" in err and "Traceback" not in err
    before = len(assert_store_whole(db))
    assert 2 <= before < 12
    _resumes(db, 12, before)


@pytest.mark.slow
def test_kill_9_at_ten_random_moments_loses_nothing_and_measures_nothing_twice(tmp_path):
    db, trials, rng = tmp_path / "db", 120, random.Random(9)
    kills = 0
    while kills < 10 and _side_lines(db) < trials - 2:
        child = _start_and_wait(db, trials, _side_lines(db) + 1)
        time.sleep(rng.uniform(0.0, 1.5))  # anywhere in building, timing, checking, writing
        child.kill()
        child.wait()
        kills += 1
        records = assert_store_whole(db)  # nothing torn, nothing twice
        assert len(records) >= kills  # each life measured at least one record, all kept
    assert kills == 10
    _resumes(db, trials, len(assert_store_whole(db)))
