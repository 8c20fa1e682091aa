"""A builder whose worker processes outlive a batch.

MetaSchedule's ``LocalBuilder`` starts a fresh pool of worker processes for every
``build`` call (TVM's comment: a memory leak in long-lived workers), so every batch of
candidates first waits for its workers to ``import tvm``: 4.7 s here, since ``tvm_ffi``
imports torch when it is installed, against ~0.5 s to build one candidate. At 8
candidates a batch on 2 cores that was two thirds of the build time (float32 conv2d, 32
trials: builds 26 s of a 51 s search). :class:`PooledBuilder` builds as ``LocalBuilder``
does, with the same worker function, but keeps its pool: each worker is recycled after
``maximum_uses`` builds (the leak, bounded), a worker that timed out or crashed is
restarted by the pool, and the workers exit once the builder has been idle for
``idle_s`` seconds or is closed, so a process that made builders and moved on does not
keep their workers.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.builder import BuilderInput, BuilderResult, PyBuilder
from tvm.s_tir.meta_schedule.builder.local_builder import _serialize_params, _worker_func
from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

from .watched_runner import default_fatal_signals


@derived_object
class PooledBuilder(PyBuilder):
    """``LocalBuilder``'s builds on worker processes kept from one batch to the next."""

    def __init__(self, *, max_workers: int, timeout_sec: float, f_build: Callable,
                 f_export: str | Callable | None = None, maximum_uses: int = 64,
                 idle_s: float = 60.0) -> None:
        super().__init__()
        self.max_workers, self.timeout_sec = max_workers, timeout_sec
        self.f_build, self.f_export = f_build, f_export
        self.maximum_uses, self.idle_s = maximum_uses, idle_s
        self._pool: PopenPoolExecutor | None = None
        self._idle: threading.Timer | None = None
        self._lock = threading.Lock()  # a build and the idle close never overlap

    def build(self, build_inputs: list[BuilderInput]) -> list[BuilderResult]:
        with self._lock:
            if self._idle is not None:
                self._idle.cancel()
            if self._pool is None:
                self._pool = PopenPoolExecutor(max_workers=self.max_workers,
                                               timeout=self.timeout_sec,
                                               maximum_process_uses=self.maximum_uses,
                                               initializer=default_fatal_signals)
            try:
                return [_result(outcome, self.timeout_sec) for outcome in
                        self._pool.map_with_error_catching(lambda x: _worker_func(*x), [
                            (self.f_build, self.f_export, item.mod, item.target,
                             _serialize_params(item.params)) for item in build_inputs])]
            finally:
                self._idle = threading.Timer(self.idle_s, self.close)
                self._idle.daemon = True
                self._idle.start()

    def close(self) -> None:
        """Stop the workers now (a later build starts new ones)."""
        with self._lock:
            if self._idle is not None:
                self._idle.cancel()
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)

    @property
    def running(self) -> bool:
        """Whether it holds worker processes (between builds, until idle or closed)."""
        return self._pool is not None


def _result(outcome: Any, timeout_sec: float) -> BuilderResult:
    """A worker's outcome as ``LocalBuilder`` words it."""
    if outcome.status == StatusKind.COMPLETE:
        return BuilderResult(outcome.value, None)
    if outcome.status == StatusKind.TIMEOUT:
        return BuilderResult(None, f"LocalBuilder: Timeout, killed after {timeout_sec} seconds")
    return BuilderResult(None, f"LocalBuilder: An exception occurred\n{outcome.value}")
