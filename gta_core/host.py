"""What this machine's CPU has, read from the OS rather than assumed."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ROOT = Path("/sys/devices/system/cpu/cpu0/cache")


def cpu_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


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
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()
