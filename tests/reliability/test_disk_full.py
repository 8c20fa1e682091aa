"""The disk fills while records are appended (a file-size limit on the process): one clear
line, exit 2, every record before it intact, no torn line, and the rerun resumes."""

from __future__ import annotations

import json
import resource

import pytest
from kit import GEMM, assert_store_whole, run_gta, tune_args


@pytest.mark.runs("avx512")
def test_a_full_disk_stops_tuning_with_one_line_and_keeps_every_record(tmp_path):
    db = tmp_path / "db"
    assert run_gta(*tune_args(GEMM, db, 3)).returncode == 0
    before = len(assert_store_whole(db))
    sizes = {p.name: p.stat().st_size for p in db.iterdir()}
    line = sizes["records.json"] // before
    # Every file may grow to the largest one's size and a record and a half more: the
    # records file fills up a few trials into the run (Python ignores SIGXFSZ, so the
    # write fails with EFBIG as on a full disk).
    limit = max(sizes.values()) + line * 3 // 2

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = run_gta(*tune_args(GEMM, db, 64), preexec_fn=limited)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot append" in lines[0] and "File too large" in lines[0]
    assert "Traceback" not in result.stderr
    kept = assert_store_whole(db)
    assert before < len(kept) < 64
    resumed = run_gta(*tune_args(GEMM, db, len(kept) + 2, "--json"))
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["tasks"][0]["new_trials"] == 2
    assert len(assert_store_whole(db)) == len(kept) + 2
