"""A candidate whose build or timing run crashes its worker (SIGSEGV) or hangs past the
timeout fails alone: tuning goes on, the record says why, the best program is checked."""

from __future__ import annotations

import json

import pytest
from kit import GEMM, assert_store_whole, run_gta, tune_args


@pytest.mark.runs("avx512")
@pytest.mark.parametrize("kind, reason", [
    ("build-segv", "crashed"), ("run-segv", "crashed"),
    # the timeout itself is tested in test_measure.py; these take 25 s each
    pytest.param("build-hang", "timeout", marks=pytest.mark.slow),
    pytest.param("run-hang", "timeout", marks=pytest.mark.slow),
])
def test_a_crashing_or_hanging_candidate_fails_alone(kind, reason, tmp_path, fault_env):
    db = tmp_path / "db"
    result = run_gta(*tune_args(GEMM, db, 6, "--build-timeout", "10", "--run-timeout", "10",
                                "--json"), env=fault_env(kind, at=2))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "fault" / "fired").exists(), "the fault was never injected"
    task = json.loads(result.stdout)["tasks"][0]
    assert task["trials"] == 6 and task["correct"] is True
    records = assert_store_whole(db)
    failed = [r.error for r in records if r.error]
    assert len(failed) == 1 and reason in failed[0], failed
    assert len(records) == 6
