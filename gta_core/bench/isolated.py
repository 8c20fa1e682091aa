"""Each contender's program in a process of its own, so no contender's threads stall another's.

One process that times TVM programs beside numpy and PyTorch holds three thread pools (TVM's,
OpenBLAS's, OpenMP's). A pool's idle workers spin for a while after each call, and on two
cores a spinning worker takes the core a parallel program's thread needs at its barrier:
measured in one process, a float32 conv2d that ran in 1.2 ms alone took 2.2 ms timed after
PyTorch's contender, and 1.6 ms after MetaSchedule's program, however the pools were told to
sleep. In a process of its own, each program meets only its own pool.

:func:`prepare_isolated` spawns a child that prepares the contender's program (exactly as
``Contender.prepare`` does in-process) and then serves ``output`` and ``sample`` requests over a
pipe, so the bench still interleaves its rounds across contenders. Only the contenders named
in ``CONTENDERS`` can be isolated: the child makes its contender by name.
"""

from __future__ import annotations

import multiprocessing
from contextlib import nullcontext
from typing import Any

import numpy as np

from ..host import library_defaults
from .contenders import BenchContext, ContenderJob, Prepared
from .libraries import LIBRARY_CONTENDERS
from .programs import Program
from .tuning_worker import first_line


class ChildFailed(RuntimeError):
    """The child raised or died; the message is its one-line reason."""


def close_child(connection: Any, process: Any) -> None:
    """Ask a serving child to stop, wait for it a while, then kill it if it is still there."""
    try:
        connection.send("close")
    except OSError:
        pass
    process.join(timeout=30)
    if process.is_alive():
        process.kill()


class IsolatedProgram(Program):
    """A program living in a child process: each call is one request over the pipe."""

    def __init__(self, process: Any, connection: Any) -> None:
        self.process = process
        self.connection = connection

    def _ask(self, request: str) -> Any:
        try:
            self.connection.send(request)
            kind, value = self.connection.recv()
        except (EOFError, OSError) as exc:
            raise ChildFailed(f"the timing process died (exit status "
                              f"{self.process.exitcode})") from exc
        if kind == "error":
            raise ChildFailed(value)
        return value

    def output(self) -> np.ndarray:
        return self._ask("output")

    def sample_us(self) -> float:
        return self._ask("sample")

    def mismatch(self, workload: Any, expected: Any) -> str | None:
        """The child's program checked there, on the same inputs (its own check, if it has
        one: a requantised output is compared with its own reference)."""
        return self._ask("check")

    def close(self) -> None:
        close_child(self.connection, self.process)


def prepare_isolated(name: str, workload: str, ctx: BenchContext) -> Prepared:
    """``CONTENDERS[name]().prepare`` run in a new process; its program stays there.

    ChildFailed says why the child could not prepare it.
    """
    job = ContenderJob.of(name, workload, ctx)
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited pools
    parent, child = spawn.Pipe()
    process = spawn.Process(target=serve, args=(child, job.model_dump_json()), daemon=True)
    with library_defaults() if name in LIBRARY_CONTENDERS else nullcontext():
        process.start()
    child.close()
    program = IsolatedProgram(process, parent)
    try:
        kind, value = parent.recv()
    except EOFError as exc:
        program.close()
        raise ChildFailed(f"the timing process died (exit status {process.exitcode})") from exc
    if kind == "error":
        program.close()
        raise ChildFailed(value)
    has_program, note, trials, seconds = value
    if not has_program:
        program.close()
    return Prepared(program=program if has_program else None, note=note, trials=trials,
                    tuning_seconds=seconds)


def serve(connection: Any, job_json: str) -> None:
    """The child: prepare the program, then answer requests until ``close``."""
    import gta_core  # noqa: F401 - thread settings before numpy, torch and TVM load

    try:
        contender, workload, ctx = ContenderJob.model_validate_json(job_json).remake()
        inputs = workload.random_inputs(seed=0)
        prepared = contender.prepare(workload, inputs, ctx)
        connection.send(("ready", (prepared.program is not None, prepared.note,
                                   prepared.trials, prepared.tuning_seconds)))
    except Exception as exc:  # noqa: BLE001 - reported to the parent as the contender's failure
        connection.send(("error", first_line(exc)))
        return
    program = prepared.program
    while True:
        try:
            request = connection.recv()
        except EOFError:
            return
        if request == "close" or program is None:
            return
        try:
            if request == "check":
                value = program.mismatch(workload, workload.expected(inputs))
            else:
                value = program.output() if request == "output" else program.sample_us()
            connection.send(("ok", value))
        except Exception as exc:  # noqa: BLE001
            connection.send(("error", first_line(exc)))
