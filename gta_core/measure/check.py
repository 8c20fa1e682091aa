"""Build a program, check it against the numpy reference, and only then time it."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel

from ..models import Target
from ..workloads import Workload
from .garbage import garbage_output

if TYPE_CHECKING:
    import tvm


class Measurement(BaseModel):
    """One program's result: wrong programs carry the mismatch and no timing."""

    workload: str
    target: str
    correct: bool
    mismatch: str | None = None
    latency_us: float | None = None  # median over repeats
    spread: float | None = None  # (max - min) / median over repeats
    gflops: float | None = None  # GOPS for integer work


def build_config(target_kind: str) -> dict[str, object]:
    """The PassContext config a program for a target of this TVM kind builds with."""
    if target_kind == "cuda":
        # Without it most tensorized CUDA programs fail in LowerIntrin (shared TVM notes);
        # async copies: the copies of software-pipelined stages become cp.async (sm_80+).
        return {"tirx.disable_storage_rewrite": True, "tirx.use_async_copy": True}
    return {}


def build(program, target: Target | tvm.target.Target, *,
          pipeline: str | None = None) -> tvm.runtime.Executable:
    """Compile ``program`` for ``target``: the one way GTA builds a program.

    Tuning's builder workers (``runners.build_candidate``), the final pick, the checks and
    ``gta bench`` all build through here, with the same passes and config, so the program
    checked is the program timed. The TIR pipeline is the GTA target's
    (``Target.tir_pipeline``), or ``pipeline`` where ``target`` is a TVM target (the builder
    workers get only that).
    """
    import tvm

    from .fast_math import register_fast_math

    register_fast_math()
    tvm_target = target.tvm_target() if isinstance(target, Target) else target
    if isinstance(target, Target):
        pipeline = target.tir_pipeline
    with tvm.transform.PassContext(config=build_config(tvm_target.kind.name)):
        return tvm.compile(program, target=tvm_target, tir_pipeline=registered(pipeline))


def runnable(program, target: Target | tvm.target.Target) -> tvm.runtime.Module:
    """``program`` built for ``target`` (:func:`build`) and loaded to run here; raises
    :class:`~gta_core.host.HostCannotRun` first where this CPU lacks what a GTA target's
    programs use."""
    from ..host import require_runs_here

    if isinstance(target, Target):
        require_runs_here(target)
    return build(program, target).jit()


def registered(pipeline: str | None) -> str:
    """The TVM name of a ``module:name`` TIR pipeline, its module imported (which registers
    it); TVM's default for None."""
    if pipeline is None:
        return "default"
    module, name = pipeline.split(":")
    importlib.import_module(module)
    return name


def measure_program(program, workload: Workload, target: Target, *, number: int = 3,
                    repeat: int = 5, seed: int = 0) -> Measurement:
    """Build ``program`` (a PrimFunc or IRModule) for ``target``; check, then time it.

    Only a CPU target can run here; the output must match the workload's
    numpy reference before any time is reported.
    """
    import tvm

    module = runnable(program, target)
    device = tvm.cpu()
    inputs = workload.random_inputs(seed)
    args = [tvm.runtime.tensor(x, device) for x in inputs]
    out = tvm.runtime.tensor(garbage_output(workload), device)
    module(*args, out)
    mismatch = workload.mismatch(out.numpy(), workload.expected(inputs))
    result = Measurement(workload=workload.spec, target=target.name, correct=mismatch is None,
                         mismatch=mismatch)
    if mismatch is not None:
        return result
    timer = module.time_evaluator(module.entry_name, device, number=number, repeat=repeat)
    times = np.array(timer(*args, out).results) * 1e6
    median = float(np.median(times))
    result.latency_us = median
    result.spread = float((times.max() - times.min()) / median)
    result.gflops = workload.flops / median / 1e3
    return result
