"""Check a built candidate, the very artifact the runner timed, against the numpy reference.

Tuning times each candidate in a runner worker on random inputs; a latency counts only
once this check has run the same artifact here on the workload's inputs, output filled
with garbage first, and found it equal to the reference. It costs one call of a module
the runner has already linked (the worker leaves ``ARTIFACT.so`` beside the archive).
"""

from __future__ import annotations

import os
import time
from typing import Any

from ..workloads import Expected, Workload
from .garbage import garbage_output


class ArtifactCheck:
    """The inputs and expected output of one workload, made once, to check its artifacts."""

    def __init__(self, workload: Workload, seed: int = 0) -> None:
        self.workload = workload
        self.seed = seed
        self._inputs: list[Any] | None = None
        self._expected: Expected | None = None
        self.seconds = 0.0  # spent checking, reference included
        self.checked = 0

    def mismatch(self, artifact_path: str) -> str | None:
        """Why the program in ``artifact_path`` computes the wrong output (None: it is right)."""
        import tvm

        start = time.perf_counter()
        try:
            if self._inputs is None:
                inputs = self.workload.random_inputs(self.seed)
                self._expected = self.workload.expected(inputs)
                self._inputs = [tvm.runtime.tensor(x, tvm.cpu()) for x in inputs]
            linked = artifact_path + ".so"
            module = tvm.runtime.load_module(linked if os.path.exists(linked) else artifact_path)
            out = tvm.runtime.tensor(garbage_output(self.workload), tvm.cpu())
            module[module.entry_name](*self._inputs, out)
            return self.workload.mismatch(out.numpy(), self._expected)
        finally:
            self.checked += 1
            self.seconds += time.perf_counter() - start
