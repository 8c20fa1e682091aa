"""Tuning in a child process, so the process that times the programs stays clean.

Why: after tuning in-process, threads the tuners leave behind (thread pools, the cost
model's OpenMP workers) kept a fifth of a core busy while idle, and a torch float32
GEMM timed after them in the same process took 20 ms instead of 20 us (seen in a ``ci``
run). A tuner that crashes (MetaSchedule has segfaulted on this TVM) also takes only
the child down: that job is reported failed and the next one gets a fresh child.

Protocol: one JSON :class:`~.contenders.ContenderJob` per line on the child's stdin, one
JSON reply per line on a copy of its original stdout; everything else the child prints goes
to stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .contenders import ContenderJob


def first_line(exc: BaseException) -> str:
    """An exception as one line: its type and the last line of its message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"[:300]


class TuningFailed(RuntimeError):
    """A tuning job raised or its process died; the message is one line."""


class TuningWorker:
    """A child process that runs tuning jobs one at a time; restarted after a crash."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> TuningWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def tune(self, job: ContenderJob) -> str | None:
        """Run ``job`` in the child; the tuner's own pick (GTA's mapping), or TuningFailed."""
        if self.process is None:
            self.process = subprocess.Popen(
                # not `-m`: the package imports this module first, which runpy warns about
                [sys.executable, "-c", "from gta_core.bench.tuning_worker import main; main()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.process.stdin.write(job.model_dump_json() + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            self.process = None
            raise TuningFailed(f"the tuning process died (exit status {code})")
        reply = json.loads(line)
        if "error" in reply:
            raise TuningFailed(reply["error"])
        return reply["chosen"]

    def close(self) -> None:
        if self.process is not None:
            self.process.stdin.close()
            self.process.wait()
            self.process = None


def run_job(job: ContenderJob) -> str | None:
    contender, workload, ctx = job.remake()
    return contender.tune(workload, contender.records_dir(workload, ctx), ctx)


def main() -> None:
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever else writes to stdout (Python or C++) lands on stderr
    for line in sys.stdin:
        try:
            reply = {"chosen": run_job(ContenderJob.model_validate_json(line))}
        except Exception as exc:  # noqa: BLE001 - reported to the parent as this job's failure
            reply = {"error": first_line(exc)}
        try:
            replies.write(json.dumps(reply) + "\n")
            replies.flush()
        except BrokenPipeError:  # the bench was stopped; its records are on disk already
            os._exit(0)  # without flushing the broken pipe once more at exit
