"""A network bench runs its tunings in child processes: a signal that ends the bench ends
them too, instead of leaving them tuning into the database with no one waiting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

_PARENT = """
import sys
from gta_core import interrupts
from gta_core.bench.networks import _in_child
from kit import pid_then_sleep
with interrupts.handled():
    try:
        _in_child(pid_then_sleep, sys.argv[1])
    except KeyboardInterrupt:
        sys.exit(130)
"""


def _gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_bench_stops_the_child_it_waits_on(tmp_path: Path, sig):
    pid_file = tmp_path / "child.pid"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent),
                                                        *sys.path])}
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, str(pid_file)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and parent.poll() is None, "no child started"
            time.sleep(0.1)
        child = int(pid_file.read_text())
        parent.send_signal(sig)  # to the parent alone, as `kill PID` sends it
        assert parent.wait(timeout=120) == 130
        assert _gone(child, 30), "the child outlived the bench"
    finally:
        if parent.poll() is None:
            parent.kill()
