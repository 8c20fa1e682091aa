"""GTA: tensorized program generation with intrinsic mapping enumeration."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .host import quiet_idle_threads, use_all_cores

use_all_cores()  # before anything imports TVM's runtime
quiet_idle_threads()  # before anything loads numpy's OpenBLAS or torch's OpenMP

try:
    __version__ = version("gta-core")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0.dev0"


def __getattr__(name: str):
    # `gta_core.tune(...)` without importing TVM and MetaSchedule at `import gta_core`.
    if name == "tune":
        from .tuning import tune

        return tune
    raise AttributeError(f"module 'gta_core' has no attribute {name!r}")
