"""How busy the other processes keep this machine's cores, and waiting until they are not.

Why it matters here: a parallel program on two shared cores waits at every barrier for its
slowest thread, and a thread that shares a core with another process's busy thread waits
out the scheduler's time slice (4 ms here). One busy process turned a 100 us numpy GEMV
into 8 ms (measured), so a number timed beside other work says little about the program.
The bench therefore waits for a quiet machine before it times a workload (bounded), and
reports how many cores other processes used while it timed.

Read from Linux's /proc: busy time of all CPUs minus the CPU time of this process (and of
the timing children it names). Where /proc is missing the load reads as unknown (None) and
nothing waits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

# Other processes using at most this many cores count as quiet: a shell, the editor, the
# kernel's own threads; a busy thread elsewhere shows as ~1.
QUIET_CORES = 0.2

# Each timing sample starts this long after the previous one ended. A library's idle workers
# spin for a while after its call (onnxruntime's pool, PyTorch's OpenMP as shipped), and a
# sample taken at once finds them on its cores. ResNet-18 at 128x128, 8 interleaved rounds
# on two Zen 5 cores: GTA 7.8 -> 6.6 ms, onnxruntime 3.9 -> 3.5, PyTorch 15.8 -> 11.0 with a
# 0.5 s pause before each sample.
SETTLE_S = 0.5


def settle(seconds: float = SETTLE_S) -> None:
    """Let the previous sample's idle workers stop spinning before the next sample."""
    time.sleep(seconds)


def _busy_and_own(pids: tuple[int, ...] = ()) -> tuple[float, float] | None:
    """(seconds all CPUs were busy, seconds this process and ``pids`` ran) since boot, or
    None where /proc does not say."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        own = 0
        for stat in [Path("/proc/self/stat"), *(Path(f"/proc/{pid}/stat") for pid in pids)]:
            parts = stat.read_text().rpartition(")")[2].split()
            own += int(parts[11]) + int(parts[12])  # utime, stime: fields 14 and 15 of stat(5)
    except (OSError, IndexError):
        return None
    # cpu user nice system idle iowait irq softirq steal ...: idle and iowait are not busy
    ticks = [int(x) for x in fields[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    hz = os.sysconf("SC_CLK_TCK")
    return busy / hz, own / hz


class OtherLoad:
    """Cores used by other processes between :meth:`start` and :meth:`cores`.

    ``pids``: processes that count as this one's own (the bench's timing children).
    """

    def __init__(self, read: Callable[[], tuple[float, float] | None] | None = None,
                 clock: Callable[[], float] = time.monotonic, pids: tuple[int, ...] = ()) -> None:
        self.read = read or (lambda: _busy_and_own(pids))
        self.clock = clock
        self.start()

    def start(self) -> None:
        self.since = self.clock()
        self.first = self.read()

    def cores(self) -> float | None:
        """Mean cores busy outside this process since :meth:`start`; None if unknown."""
        now, elapsed = self.read(), self.clock() - self.since
        if now is None or self.first is None or elapsed <= 0:
            return None
        others = (now[0] - self.first[0]) - (now[1] - self.first[1])
        return max(0.0, others / elapsed)


def wait_for_quiet(max_wait_s: float, window_s: float = 1.0,
                   load: OtherLoad | None = None,
                   sleep: Callable[[float], None] = time.sleep) -> tuple[float, float | None]:
    """Wait until other processes use at most QUIET_CORES over a ``window_s`` window, or
    until ``max_wait_s`` have passed; returns (seconds waited, the last window's load)."""
    load = load or OtherLoad()
    waited = 0.0
    while True:
        load.start()
        sleep(window_s)
        seen = load.cores()
        waited += window_s
        if seen is None or seen <= QUIET_CORES or waited >= max_wait_s:
            return waited, seen
