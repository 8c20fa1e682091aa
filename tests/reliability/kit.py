"""The reliability campaign's shared parts: `gta` as a real process, faults injected into
its workers (``faults/sitecustomize.py``), and what a record store must look like after."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from gta_core.database import RecordStore

GEMM = "gemm:M=64,N=64,K=64,dtype=int8"
GEMM_B = "gemm:M=32,N=64,K=128,dtype=int8"


def gta(*args: str) -> list[str]:
    """The command line that runs ``gta ARGS`` in a process of its own."""
    return [sys.executable, "-m", "gta_core.cli", *args]


def run_gta(*args: str, env: dict | None = None, timeout: float = 600,
            **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(gta(*args), env=env, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def tune_args(spec: str, db: Path, trials: int, *extra: str) -> list[str]:
    return ["tune", spec, "--target", "avx512", "--trials", str(trials), "--db", str(db),
            "--quiet", *extra]


def assert_store_whole(db: Path, once: bool = True) -> list:
    """Every line of the store complete JSON, each record with its GTA fields, and (with
    ``once``) none measured twice; returns the records."""
    for name in ("workloads.json", "records.json", "gta_records.json"):
        text = (db / name).read_text()
        assert text.endswith("\n"), f"{name} ends in a torn line"
        for line in text.splitlines():
            json.loads(line)  # raises on a torn or glued line
    records = RecordStore(db).records()
    assert all(r.task is not None for r in records), "a record lost its GTA fields"
    if not once:
        return records
    twice = [k for k, n in Counter((r.task, r.trace_key) for r in records).items() if n > 1]
    assert not twice, f"measured twice: {twice}"
    return records


def pid_then_sleep(path: str) -> None:
    """A child's work that never ends: its pid written to ``path``, then sleep."""
    import os
    import time

    Path(path).write_text(str(os.getpid()))
    time.sleep(600)
