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


class Reference:
    """A workload's check inputs and expected output, made at first use and shared by
    the checks of all its mappings (a numpy conv3d reference takes seconds)."""

    def __init__(self, workload: Workload, seed: int = 0) -> None:
        self.workload = workload
        self.seed = seed
        self._made: tuple[list[Any], Expected] | None = None

    def get(self) -> tuple[list[Any], Expected]:
        """The inputs (as TVM tensors) and the expected output."""
        if self._made is None:
            import tvm

            inputs = self.workload.random_inputs(self.seed)
            expected = self.workload.expected(inputs)
            self._made = [tvm.runtime.tensor(x, tvm.cpu()) for x in inputs], expected
        return self._made


class ArtifactCheck:
    """Checks the artifacts of one task against its workload's :class:`Reference`."""

    def __init__(self, workload: Workload, reference: Reference | None = None) -> None:
        self.workload = workload
        self.reference = reference or Reference(workload)
        self.seconds = 0.0  # spent checking, the reference included when made here
        self.checked = 0

    def mismatch(self, artifact_path: str, program=None, target=None) -> str | None:
        """Why the program in ``artifact_path`` computes the wrong output (None: it is right).

        ``program``: the :class:`~gta_core.weight_prepack.SplitProgram` built there; the
        inputs go through its ``arguments`` (weights laid out for ``target``) first."""
        import tvm

        start = time.perf_counter()
        try:
            inputs, expected = self.reference.get()
            if program is not None:
                inputs = program.arguments(inputs, target)
            linked = artifact_path + ".so"
            module = tvm.runtime.load_module(linked if os.path.exists(linked) else artifact_path)
            out = tvm.runtime.tensor(garbage_output(self.workload), tvm.cpu())
            module[module.entry_name](*inputs, out)
            return self.workload.mismatch(out.numpy(), expected)
        finally:
            self.checked += 1
            self.seconds += time.perf_counter() - start
