"""GTA: tensorized program generation with intrinsic mapping enumeration."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .host import quiet_idle_threads, unpinned_threads, use_all_cores

use_all_cores()  # before anything imports TVM's runtime
unpinned_threads()
quiet_idle_threads()  # before anything loads numpy's OpenBLAS or torch's OpenMP

try:
    __version__ = version("gta-core")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0.dev0"


# The names a user's first script calls, importable from ``gta_core`` without loading TVM and
# MetaSchedule at ``import gta_core``: name -> its module.
_LAZY = {"tune": "tuning", "load_onnx": "frontends", "from_torch": "frontends",
         "tune_model": "model_tuning", "compile_model": "model_compile"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'gta_core' has no attribute {name!r}")
