"""A local runner that never waits forever on a worker, and workers that die of a crash.

MetaSchedule's ``LocalRunner`` times each candidate in a worker process and relies on a
timer thread *inside* the worker to give up after ``timeout_sec``; the parent waits on the
worker without a limit. Seen here (2026-12-07, a float32 transposed convolution's tuning):
a candidate's run left the heap corrupt, the next ``malloc`` faulted, and the fault handler
TVM's FFI installs (it prints a backtrace) called ``malloc`` again and deadlocked, holding
the GIL. The worker's timer thread never ran, and the tuning waited, idle, until killed.

Two guards, each enough for this case: the workers restore the default action of fatal
signals (:func:`default_fatal_signals`), so a crash ends the worker and the runner reports
the candidate failed; and :class:`WatchedLocalRunner` waits at most ``timeout_sec`` plus
``WATCH_SLACK_S`` for each run, then kills the worker (the pool starts a new one) and
reports a timeout, whatever the worker is stuck in.
"""

from __future__ import annotations

import concurrent.futures
import signal

from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.runner import LocalRunner, RunnerFuture, RunnerInput
from tvm.s_tir.meta_schedule.runner.local_runner import LocalRunnerFuture, _worker_func

WATCH_SLACK_S = 30.0  # beyond the worker's own limit: its start, loading the artifact


def default_fatal_signals() -> None:
    """A worker's initializer: a segmentation fault, bus error, abort, illegal instruction
    or arithmetic fault ends the process, instead of running a handler that may deadlock."""
    for fatal in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE):
        signal.signal(fatal, signal.SIG_DFL)


@derived_object
class WatchedLocalRunner(LocalRunner._cls):
    """``LocalRunner`` (its workers, arguments and evaluator) with a limit on each wait."""

    def __init__(self, **kwargs) -> None:
        super().__init__(initializer=default_fatal_signals, **kwargs)

    def run(self, runner_inputs: list[RunnerInput]) -> list[RunnerFuture]:
        results = []
        for runner_input in runner_inputs:
            future = self.pool.submit(
                _worker_func, self.f_alloc_argument, self.f_run_evaluator, self.f_cleanup,
                self.evaluator_config, self.alloc_repeat, str(runner_input.artifact_path),
                str(runner_input.device_type),
                tuple(arg_info.as_json() for arg_info in runner_input.args_info))
            result, error = None, None
            try:
                result = future.result(timeout=self.timeout_sec + WATCH_SLACK_S)
            except TimeoutError:  # the worker's own limit, or no answer within ours
                if not future.done():
                    self._kill_workers(future)
                error = f"LocalRunner: Timeout, killed after {self.timeout_sec} seconds\n"
            except Exception as exc:  # noqa: BLE001 - the candidate's failure, as LocalRunner
                error = f"LocalRunner: An exception occurred\n{exc}"
            results.append(LocalRunnerFuture(res=result, error_message=error))
        return results

    def _kill_workers(self, future: concurrent.futures.Future) -> None:
        """Kill the pool's worker processes: the pool's thread waiting on the stuck one reads
        the end of its pipe and cleans up (``PopenWorker.kill`` from here would close that
        pipe under the reading thread's lock, and wait for it forever)."""
        for worker in list(self.pool._worker_map.values()):  # noqa: SLF001 - no public way
            if worker._proc is not None:  # noqa: SLF001
                worker._proc.kill()  # noqa: SLF001
        try:
            future.result(timeout=WATCH_SLACK_S)
        except Exception:  # noqa: BLE001, S110 - the killed worker's error, already reported
            pass
