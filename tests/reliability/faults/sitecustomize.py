"""Fault injection for the reliability campaign: imported by every Python process that
has this folder on PYTHONPATH, so it reaches the builder and runner workers too.

``GTA_FAULT=KIND`` (``build-segv``, ``build-hang``, ``run-segv``, ``run-hang``) makes the
``GTA_FAULT_AT``-th build or run (counted across all processes, default 1) crash with
SIGSEGV or hang; every other call is untouched. ``GTA_FAULT_DIR`` holds the shared count
and a ``fired`` file once the fault has happened. Nothing is patched without GTA_FAULT.
"""

from __future__ import annotations

import os
import sys

_TARGETS = {"build": ("gta_core.measure.runners", "build_candidate"),
            "run": ("tvm.s_tir.meta_schedule.runner.local_runner", "default_run_evaluator")}


def _count(directory: str) -> int:
    """This call's number among all processes' calls (a file-locked counter)."""
    import fcntl

    with open(os.path.join(directory, "count"), "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        number = len(handle.read()) + 1
        handle.write(".")
        return number


def _faulty(original, stage: str, how: str, directory: str, at: int):
    def wrapper(*args, **kwargs):
        if _count(directory) == at:
            open(os.path.join(directory, "fired"), "w").close()
            if how == "segv":
                import ctypes

                ctypes.string_at(0)  # a real segmentation fault
            import time

            time.sleep(3600)
        return original(*args, **kwargs)

    # Same name, so cloudpickle sends it to the workers by reference (and they patch too).
    wrapper.__module__, wrapper.__qualname__ = original.__module__, original.__qualname__
    wrapper.__name__ = original.__name__
    return wrapper


class _PatchAfterImport:
    """A meta-path finder that patches the faulted function once its module is loaded."""

    def __init__(self, module: str, name: str, make) -> None:
        self.module, self.name, self.make = module, name, make

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.module:
            return None
        sys.meta_path.remove(self)
        try:
            import importlib.util

            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            setattr(module, self.name, self.make(getattr(module, self.name)))

        spec.loader.exec_module = exec_module
        return spec


def _install() -> None:
    kind = os.environ.get("GTA_FAULT")
    if not kind:
        return
    stage, _, how = kind.partition("-")
    if stage not in _TARGETS or how not in ("segv", "hang"):
        raise SystemExit(f"GTA_FAULT={kind}: expected build-segv, build-hang, run-segv, run-hang")
    directory = os.environ["GTA_FAULT_DIR"]
    at = int(os.environ.get("GTA_FAULT_AT", "1"))
    module, name = _TARGETS[stage]
    sys.meta_path.insert(0, _PatchAfterImport(
        module, name, lambda original: _faulty(original, stage, how, directory, at)))


_install()
