"""What this machine's CPU has, read from the OS rather than assumed."""

from __future__ import annotations

import os
import platform
from contextlib import contextmanager
from pathlib import Path

CACHE_ROOT = Path("/sys/devices/system/cpu/cpu0/cache")


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# Read once, before TVM starts its thread pool: a one-thread pool pins the calling thread to a
# single CPU, after which the affinity mask no longer says how many cores the process had.
_CORES = _affinity()


def cpu_cores() -> int:
    """Cores this process was given when it started."""
    return _CORES


def use_all_cores() -> None:
    """Make TVM's parallel loops use every core unless the user chose otherwise.

    Without TVM_NUM_THREADS, TVM sizes its pool to half the hardware threads on
    x86 (one here) and runs parallel loops serially. Must run before TVM's
    runtime starts its pool; the user's own setting wins.
    """
    os.environ.setdefault("TVM_NUM_THREADS", str(_CORES))


def unpinned_threads() -> None:
    """Leave TVM's pool threads free to move between cores unless the user chose otherwise.

    TVM pins each pool thread to a core (``TVM_BIND_THREADS``), and a parallel loop is split
    evenly between them: when another process takes one core, every parallel loop waits at
    its barrier for that core's thread to get a time slice. Two Zen 4 cores, a busy loop
    pinned to one: MobileNet-V2 int8 took 236 ms a call pinned, 2.9 ms unpinned
    (onnxruntime's int8: 6.3 ms), ResNet-50 float32 290 ms against 165-183; on idle cores
    the same either way (1.44 and 40 ms). Must run before TVM's runtime starts its pool.
    """
    os.environ.setdefault("TVM_BIND_THREADS", "0")


# Environment variables naming what quiet_idle_threads set, and asking a process to keep
# its libraries' own thread settings (see library_defaults).
_QUIETED = "GTA_QUIETED_THREADS"
_LIBRARY_DEFAULTS = "GTA_LIBRARY_DEFAULTS"
_QUIET = (("OPENBLAS_THREAD_TIMEOUT", "4"),  # 2^4 cycles, OpenBLAS's minimum
          ("OMP_WAIT_POLICY", "PASSIVE"))


def quiet_idle_threads() -> None:
    """Let other libraries' idle worker threads sleep instead of spinning, unless the user
    chose otherwise. Must run before numpy (OpenBLAS) and torch (OpenMP) load.

    A process that times TVM programs beside numpy and PyTorch holds three thread pools.
    OpenBLAS's workers spin for about 2^28 cycles after each call, and OpenMP's spin too:
    on two cores they take the core a TVM worker needs, and every parallel TVM call then
    waits out a 4 ms scheduler slice at its barrier. Measured in one process: a conv2d of
    1.2 ms took 2.2 ms beside numpy's contender and 4.0 ms beside numpy's and PyTorch's;
    with the workers sleeping after 2^4 cycles it took 1.2 ms again, and numpy's own call
    was no slower.

    In a process started under :func:`library_defaults` it undoes what the parent set
    instead, so that library runs as it ships.
    """
    if os.environ.get(_LIBRARY_DEFAULTS):
        for name in filter(None, os.environ.pop(_QUIETED, "").split(",")):
            os.environ.pop(name, None)
        return
    quieted = [name for name, _ in _QUIET if name not in os.environ]
    for name, value in _QUIET:
        if name in quieted:
            os.environ[name] = value
    if quieted:
        os.environ[_QUIETED] = ",".join(quieted)


@contextmanager
def library_defaults():
    """Processes started inside run numpy, PyTorch and onnxruntime with their own thread
    settings, the user's aside: a library timed alone in its process, as the benches time
    each baseline, is at its strongest with its pools spinning as they ship. PyTorch's
    ResNet-18 in eager mode on two Zen 5 cores: 28-30 ms with its OpenMP workers passive,
    17-19 ms as shipped."""
    os.environ[_LIBRARY_DEFAULTS] = "1"
    try:
        yield
    finally:
        os.environ.pop(_LIBRARY_DEFAULTS, None)


def cpu_cache_bytes(root: Path = CACHE_ROOT) -> dict[str, int]:
    """Data/unified cache size per level of one core, e.g. {'L1': 49152, ...}.

    Empty where the OS does not say (then cache constraints do not apply).
    """
    sizes: dict[str, int] = {}
    for index in sorted(root.glob("index*")):
        try:
            if (index / "type").read_text().strip() == "Instruction":
                continue
            level = int((index / "level").read_text())
            size = (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        units = {"K": 1024, "M": 1024**2, "G": 1024**3}
        value = int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)
        sizes[f"L{level}"] = value
    return sizes


def cpu_flags() -> set[str]:
    """The CPU feature flags /proc/cpuinfo lists (empty where it does not exist)."""
    return set(_cpuinfo("flags").split())


class HostCannotRun(RuntimeError):
    """A target's programs use CPU features this host lacks: they build here but cannot run."""


def cannot_run(target) -> str | None:
    """Why a ``cpu`` target's programs cannot run on this CPU (None: they can; a GPU
    target's are not this module's question).

    A target cross-compiling for another architecture (its TVM ``mtriple``) cannot; nor can
    one whose programs use a feature (``Target.host_flags``) this CPU lacks: the first such
    instruction would stop the process (SIGILL, which no ``except`` catches). Where
    /proc/cpuinfo lists no flags, the features are taken as present.
    """
    if target.kind != "cpu":
        return None
    arch = str(target.tvm.get("mtriple", "")).split("-")[0]
    machine = platform.machine().lower().replace("amd64", "x86_64").replace("arm64", "aarch64")
    if arch and arch != machine:
        return (f"the {target.name} target cross-compiles for {arch}; this machine is "
                f"{machine}: its programs build here but cannot run")
    flags = cpu_flags()
    missing = sorted(set(target.host_flags) - flags) if flags else []
    if not missing:
        return None
    return (f"this CPU lacks {', '.join(missing)}, which the {target.name} target's programs "
            "use: they build here (gta mappings, gta codegen) but cannot run; tune, compile "
            "and bench on a host that has them, or tune with --rpc to measure there")


def runs_here(target) -> bool:
    """Whether programs built for ``target`` run on this machine: a CPU target that neither
    cross-compiles nor uses a feature this CPU lacks (:func:`cannot_run`)."""
    return target.kind == "cpu" and cannot_run(target) is None


def require_runs_here(target) -> None:
    """Raise :class:`HostCannotRun` where ``target``'s programs cannot run on this CPU."""
    why = cannot_run(target)
    if why is not None:
        raise HostCannotRun(why)


def cpu_vendor() -> str:
    """/proc/cpuinfo's vendor, e.g. ``GenuineIntel`` or ``AuthenticAMD`` ("" where unknown)."""
    return _cpuinfo("vendor_id")


def _cpuinfo(field: str) -> str:
    """The first CPU's ``field`` in /proc/cpuinfo ("" where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == field:
            return value.strip()
    return ""


def memory_bytes() -> int:
    """This machine's memory (``MemTotal``); 0 where it cannot be read."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def environment_error(environ: dict[str, str] | None = None) -> str | None:
    """Why the thread settings in the environment cannot be used, or None: TVM reads
    ``TVM_NUM_THREADS`` with ``atoi``, so nonsense would silently run every program on one
    thread (or none)."""
    environ = os.environ if environ is None else environ
    value = environ.get("TVM_NUM_THREADS", "").strip()
    if value and not (value.isdigit() and int(value) > 0):
        return (f"TVM_NUM_THREADS={value!r} is not a positive integer; unset it to use all "
                f"{_CORES} cores")
    return None
