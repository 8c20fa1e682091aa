"""`measure/watched_runner.py`: a stuck runner worker is killed, a crashed one reported."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import tvm
from tvm.s_tir import meta_schedule as ms
from tvm.script import tirx as T

from gta_core.measure import watched_runner
from gta_core.measure.watched_runner import WatchedLocalRunner


@T.prim_func(s_tir=True)
def copy(a: T.Buffer((4,), "float32"), b: T.Buffer((4,), "float32")):
    for i in range(4):
        with T.sblock("b"):
            vi = T.axis.remap("S", [i])
            b[vi] = a[vi]


def hold_the_gil(rt_mod, device, evaluator_config, repeated_args):
    """A run that never returns and never lets the worker's timer thread run: a C call made
    with the GIL held, as a deadlocked fault handler is."""
    import ctypes

    ctypes.PyDLL(None).sleep(600)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    path = tmp_path_factory.mktemp("artifact") / "copy.so"
    tvm.compile(copy, target="llvm").export_library(str(path))
    return str(path)


def _inputs(artifact):
    return [ms.runner.RunnerInput(artifact, "cpu", ms.arg_info.ArgInfo.from_prim_func(copy))]


def test_a_worker_stuck_with_the_gil_held_is_killed_and_the_next_run_works(artifact, monkeypatch):
    monkeypatch.setattr(watched_runner, "WATCH_SLACK_S", 3.0)
    stuck = WatchedLocalRunner(timeout_sec=1, f_run_evaluator=hold_the_gil)
    start = time.perf_counter()
    [result] = [f.result() for f in stuck.run(_inputs(artifact))]
    assert time.perf_counter() - start < 20
    assert result.run_secs is None and "Timeout, killed after 1 seconds" in result.error_msg
    workers = stuck.pool._worker_map.values()  # the stuck process is gone, not left asleep
    assert workers and all(w._proc is None or w._proc.poll() is not None for w in workers)
    fine = WatchedLocalRunner(timeout_sec=10)
    [result] = [f.result() for f in fine.run(_inputs(artifact))]
    assert result.error_msg is None and len(result.run_secs) >= 1


def test_a_fatal_signal_ends_the_worker_at_once():
    code = ("import tvm, os, signal\n"
            "from gta_core.measure.watched_runner import default_fatal_signals\n"
            "default_fatal_signals()\n"
            "os.kill(os.getpid(), signal.SIGSEGV)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert done.returncode == -11  # killed by the signal, no handler in between
