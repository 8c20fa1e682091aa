"""bench/quiet.py: other processes' load on the cores, and waiting for a quiet machine."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from gta_core.bench.quiet import QUIET_CORES, OtherLoad, wait_for_quiet


class _FakeProc:
    """/proc as a script: each read advances the clock by one second and adds the given
    busy seconds of all CPUs and of this process."""

    def __init__(self, per_second: list[tuple[float, float]]):
        self.per_second = iter(per_second)
        self.now = 0.0
        self.busy = self.own = 0.0

    def clock(self) -> float:
        return self.now

    def read(self) -> tuple[float, float]:
        return self.busy, self.own

    def sleep(self, seconds: float) -> None:
        busy, own = next(self.per_second)
        self.now += seconds
        self.busy += busy * seconds
        self.own += own * seconds


def test_other_load_excludes_this_process():
    proc = _FakeProc([(1.5, 1.0)])
    load = OtherLoad(read=proc.read, clock=proc.clock)
    proc.sleep(2.0)
    assert load.cores() == pytest.approx(0.5)


def test_waiting_ends_at_the_first_quiet_window():
    proc = _FakeProc([(1.0, 0.0), (1.2, 0.1), (0.05, 0.0), (2.0, 0.0)])
    load = OtherLoad(read=proc.read, clock=proc.clock)
    waited, seen = wait_for_quiet(60, load=load, sleep=proc.sleep)
    assert waited == 3.0 and seen == pytest.approx(0.05)


def test_waiting_is_bounded_on_a_busy_machine():
    proc = _FakeProc([(1.0, 0.0)] * 10)
    load = OtherLoad(read=proc.read, clock=proc.clock)
    waited, seen = wait_for_quiet(4, load=load, sleep=proc.sleep)
    assert waited == 4.0 and seen == pytest.approx(1.0)


def test_unknown_load_does_not_wait():
    load = OtherLoad(read=lambda: None)
    assert wait_for_quiet(60, window_s=0.01, load=load) == (0.01, None)


def test_a_busy_process_beside_this_one_reads_as_about_one_core():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it start
        load = OtherLoad()
        time.sleep(1.5)
        seen = load.cores()
    finally:
        busy.kill()
        busy.wait()
    assert seen is not None and seen > QUIET_CORES + 0.3


def test_importing_gta_core_lets_idle_library_threads_sleep():
    """Set before numpy loads OpenBLAS (it reads the variable once); a user's choice wins."""
    code = ("import os, gta_core, numpy; "
            "print(os.environ['OPENBLAS_THREAD_TIMEOUT'], os.environ['OMP_WAIT_POLICY'])")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.split() == ["4", "PASSIVE"]
    env["OPENBLAS_THREAD_TIMEOUT"] = "10"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.split() == ["10", "PASSIVE"]


def _child_settings(library: bool) -> tuple:
    from contextlib import nullcontext

    from gta_core.host import library_defaults

    code = ("import os, gta_core; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'), "
            "os.environ.get('OMP_WAIT_POLICY'))")
    with library_defaults() if library else nullcontext():  # the child inherits os.environ
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout
    return tuple(None if v == "None" else v for v in out.split())


def test_a_library_contenders_process_runs_with_the_librarys_own_thread_settings():
    """GTA quiets the pools where TVM programs are timed, never in a baseline's own process;
    a setting the user made stays in both."""
    from gta_core.host import _QUIETED

    quieted = os.environ.get(_QUIETED, "").split(",")
    names = ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY")
    assert _child_settings(library=False) == tuple(os.environ[n] for n in names)
    library = _child_settings(library=True)
    for name, value in zip(names, library):
        assert value == (None if name in quieted else os.environ[name])
    assert "GTA_LIBRARY_DEFAULTS" not in os.environ


_AFFINITIES = """
import os, gta_core, numpy as np, tvm
from tvm.script import tirx as T

@T.prim_func
def add_one(a: T.Buffer((4096,), "float32"), b: T.Buffer((4096,), "float32")):
    for i in T.parallel(4096):
        b[i] = a[i] + T.float32(1)

lib = tvm.compile(add_one, target="llvm")
a = tvm.runtime.tensor(np.zeros(4096, "float32"))
b = tvm.runtime.tensor(np.zeros(4096, "float32"))
for _ in range(100):
    lib(a, b)
masks = {open(f"/proc/self/task/{t}/status").read().split("Cpus_allowed_list:")[1].split()[0]
         for t in os.listdir("/proc/self/task")}
print(os.environ["TVM_BIND_THREADS"], len(masks), sorted(masks))
"""


def test_importing_gta_core_leaves_tvms_pool_threads_unpinned(tmp_path):
    """Pinned, a pool thread whose core another process holds stalls every parallel loop
    (MobileNet-V2 int8: 236 ms a call against 2.9 unpinned); a user's choice wins."""
    from gta_core.host import cpu_cores

    if cpu_cores() < 2:
        pytest.skip("one core: TVM's pool has no thread to pin")
    script = tmp_path / "affinities.py"  # TVMScript reads its function's source file
    script.write_text(_AFFINITIES)
    env = dict(os.environ, TVM_NUM_THREADS=str(cpu_cores()))
    env.pop("TVM_BIND_THREADS", None)
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[:2] == ["0", "1"], out  # every thread may run on every core the process has
    env["TVM_BIND_THREADS"] = "1"  # the user's setting: TVM pins each thread to one core
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[0] == "1" and int(out[1]) > 1, out
