"""A contender's program bound to a workload's inputs: run once to check, then time samples.

Every sample is the median of ``REPEATS`` repeats, each of enough runs to last about
``MIN_REPEAT_S``: the method of the tuning measurements (MeasureSettings), because on
shared cores many short repeats give steadier medians than a few long ones. The run count
comes from the fastest of a few single runs: on a busy shared core one call can wait a
whole scheduler time slice (16 ms seen for a 3 us torch matmul), and letting that call
set the count left every repeat a single, often stalled, run.
"""

from __future__ import annotations

import math
import statistics
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from ..measure import runnable
from ..measure.garbage import garbage_output
from ..models import Target
from ..weight_prepack import as_model_runs
from ..workloads import Expected, Workload

REPEATS = 10
MIN_REPEAT_S = 1e-3


class Program(ABC):
    """One contender's program for one workload, bound to that workload's inputs."""

    @abstractmethod
    def output(self) -> np.ndarray:
        """Run once; the output as a numpy array (what is checked against the reference)."""

    @abstractmethod
    def sample_us(self) -> float:
        """One timing sample in microseconds."""

    def mismatch(self, workload: Workload, expected: Expected) -> str | None:
        """Why this program's output is wrong for ``workload``; None when it is right.

        Its :meth:`output` against the operator's reference, unless the program computes a
        different output on purpose (a requantised one) and checks it against its own.
        """
        return workload.mismatch(self.output(), expected)


class TVMProgram(Program):
    """A TensorIR program (PrimFunc or IRModule), built once for the target and run here.
    Where ``workload`` holds its weights constant, their packing stages run once, here,
    and what is timed is the compute (:func:`gta_core.weight_prepack.as_model_runs`)."""

    def __init__(self, program: Any, workload: Workload, target: Target,
                 inputs: list[np.ndarray]) -> None:
        import tvm

        mod = program if isinstance(program, tvm.IRModule) else tvm.IRModule({"main": program})
        split = as_model_runs(workload, mod)
        self.module = runnable(split.module(), target)
        device = tvm.cpu()
        self.args = split.arguments([tvm.runtime.tensor(x, device) for x in inputs], target)
        self.args.append(tvm.runtime.tensor(garbage_output(workload), device))
        self.device = device
        self.timer = None

    def output(self) -> np.ndarray:
        self.module(*self.args)
        return self.args[-1].numpy()

    def sample_us(self) -> float:
        if self.timer is None:  # the run count is calibrated once, then fixed
            once = self.module.time_evaluator(self.module.entry_name, self.device, number=1,
                                              repeat=5)
            fastest = min(once(*self.args).results)
            self.timer = self.module.time_evaluator(
                self.module.entry_name, self.device, repeat=REPEATS,
                number=runs_per_repeat(fastest))
        return statistics.median(self.timer(*self.args).results) * 1e6


class CallableProgram(Program):
    """A Python callable on pre-bound inputs: a library call, timed by :func:`time_callable`.

    Either the call returns its result (read with ``to_numpy``), or it writes into ``out``,
    an output allocated once and filled with garbage (gta_core.measure.garbage) before the
    check run, so a call that leaves any of it unwritten fails the check. ``out`` is what
    the call writes through (a torch tensor or ORT value may share its memory).
    """

    def __init__(self, run: Callable[[], Any],
                 to_numpy: Callable[[Any], np.ndarray] = np.asarray,
                 out: np.ndarray | None = None) -> None:
        self.run = run
        self.to_numpy = to_numpy
        self.out = out

    def output(self) -> np.ndarray:
        result = self.run()
        return self.out.copy() if self.out is not None else self.to_numpy(result)

    def sample_us(self) -> float:
        return time_callable(self.run)


def time_callable(run: Callable[[], Any]) -> float:
    """Median microseconds of ``run()`` over REPEATS repeats of at least MIN_REPEAT_S each."""
    run()  # warm-up: first calls allocate and pick kernels
    fastest = min(_seconds(run, 1) for _ in range(5))
    number = runs_per_repeat(fastest)
    samples = [_seconds(run, number) / number for _ in range(REPEATS)]
    return statistics.median(samples) * 1e6


def runs_per_repeat(fastest_s: float) -> int:
    """Runs per repeat so that one lasts MIN_REPEAT_S, from the fastest single run."""
    return max(1, min(1 << 20, math.ceil(MIN_REPEAT_S / max(fastest_s, 1e-9))))


def _seconds(run: Callable[[], Any], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        run()
    return time.perf_counter() - start
