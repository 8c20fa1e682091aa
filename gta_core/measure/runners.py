"""Build and time batches of candidate programs in worker processes (MetaSchedule's pools).

A candidate that fails to build, crashes, or runs past its timeout is one failed
:class:`Outcome`; the rest of its batch is still measured.
"""

from __future__ import annotations

import os
import re
import statistics
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from ..host import require_runs_here
from ..models import Target
from .check import build
from .rpc import check_farm, make_rpc_runner
from .settings import MeasureSettings

if TYPE_CHECKING:
    import tvm
    from tvm.s_tir import meta_schedule as ms


class Outcome(BaseModel):
    """One candidate's measurement, or the one line saying why there is none."""

    latency_us: float | None = None  # median of run_secs
    run_secs: list[float] = []
    error: str | None = None  # 'timeout' for a timeout
    failed_at: Literal["build", "run"] | None = None


def build_candidate(mod: tvm.IRModule, target: tvm.target.Target,
                    _params: dict | None = None, *,
                    pipeline: str | None = None) -> tvm.runtime.Module:
    """The builder workers' build function: MetaSchedule's default without its imports.

    TVM's default first imports every registered tensor intrinsic (tvm.s_tir.tensor_intrin,
    ~18 s here), which every new builder worker would pay (a one-candidate batch took
    19.3 s, with this 1.7 s, worker start-up and ``import tvm`` included). A tensorized
    program has the intrinsic's implementation inlined, so building needs no intrinsic
    module. Module-level on purpose: the workers import it by name (cloudpickle), which
    costs them only ``gta_core.measure``.

    It builds through :func:`check.build`, as every other GTA build does. The one
    difference is MetaSchedule's: its ``RewriteLayout`` postprocessor adds blocks that
    re-lay the weights, which tuning removes (it assumes weights laid out ahead of time).
    GTA's programs have no such block. ``gta bench`` builds every TVM contender with its
    blocks kept, so all of them pay their weight transform on every call. ``pipeline`` is
    the GTA target's ``tir_pipeline`` (the workers get only the TVM target).
    """
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return build(mod, target, pipeline=pipeline).mod


def make_builder(settings: MeasureSettings, target: Target | None = None) -> ms.builder.Builder:
    """A builder with the settings' timeout and workers, building with ``build_candidate``
    (through ``target``'s TIR pipeline, where it names one), its workers kept from one
    batch to the next (:class:`.build_pool.PooledBuilder`)."""
    import functools

    from .build_pool import PooledBuilder

    workers = settings.builder_workers
    if settings.rpc is not None and "builder_workers" not in settings.model_fields_set:
        from ..host import cpu_cores

        workers = cpu_cores()  # a farm measures elsewhere: every local core builds
    f_build = build_candidate
    if target is not None and target.tir_pipeline is not None:
        f_build = functools.partial(build_candidate, pipeline=target.tir_pipeline)
    return PooledBuilder(max_workers=workers, timeout_sec=settings.build_timeout_s,
                         f_build=f_build)


@contextmanager
def closed_after(builder):
    """``builder`` for the block, its kept workers (if it keeps any) stopped when the block
    ends, not ``idle_s`` later: a process that tunes one thing after another would otherwise
    hold each builder's workers (~400 MB each here) that long."""
    try:
        yield builder
    finally:
        close = getattr(builder, "close", None)
        if close is not None:
            close()


def _tvm_target(target: Target | tvm.target.Target) -> tvm.target.Target:
    return target.tvm_target() if isinstance(target, Target) else target


def _device_type(target: tvm.target.Target) -> str:
    kind = target.kind.name
    return "cpu" if kind in ("llvm", "c") else kind


def make_runner(settings: MeasureSettings, target: Target | tvm.target.Target) -> ms.runner.Runner:
    """A LocalRunner (:mod:`.watched_runner`'s: no wait without end), or an RPCRunner over
    every server of ``settings.rpc``'s key (rpc.py).
    Cache flushing applies to CPU targets only; a local run scrubs the private caches too
    (:mod:`.scrub`: to the last-level cache, ``flush_to="llc"``, or then to memory), a remote
    one is TVM's ``clflush`` to memory."""
    from tvm.s_tir import meta_schedule as ms

    cpu = _device_type(_tvm_target(target)) == "cpu"
    flush = settings.enable_cpu_cache_flush and cpu
    scrub = flush and settings.rpc is None
    evaluator = ms.runner.EvaluatorConfig(
        number=settings.number, repeat=settings.repeat, min_repeat_ms=settings.min_repeat_ms,
        enable_cpu_cache_flush=flush and not scrub)
    if settings.rpc is None:
        from . import scrub as scrubbing  # its import registers the preprocessor
        from .run_arguments import alloc_arguments

        if isinstance(target, Target):  # measured here: refused before a worker dies of SIGILL
            require_runs_here(target)
        from .watched_runner import WatchedLocalRunner

        return WatchedLocalRunner(timeout_sec=settings.run_timeout_s,
                                  evaluator_config=evaluator,
                                  f_alloc_argument=alloc_arguments,
                                  f_run_evaluator=None if not scrub
                                  else scrubbing.run_evaluator if settings.flush_to == "llc"
                                  else scrubbing.run_evaluator_flushed)
    return make_rpc_runner(settings, evaluator)


# The line a Python traceback ends with: ``module.Type: message`` or a bare ``Type``.
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)(:\s|:?$)")


def error_line(message: str) -> str:
    """One line saying why a build or run failed, from its builder's or runner's message.

    That is the traceback's final exception line; when its message goes on over more
    lines (LLVM's verifier puts the reason on the next one), their first is appended.
    A timeout is 'timeout'; a worker that died (a crash) says so.
    """
    lines = [line.strip() for line in message.strip().splitlines()]
    if lines and "Timeout, killed after" in lines[0]:
        return "timeout"
    lines = [line for line in lines if line]
    found = [i for i, line in enumerate(lines) if _EXCEPTION_LINE.match(line)]
    if found:
        first = found[-1]
        text = " ".join(lines[first:first + 2]) if lines[first].endswith(":") else lines[first]
    else:  # no traceback: the message is the error itself
        text = lines[-1] if lines else "unknown error"
    if text.endswith("Subprocess terminated"):
        return "crashed: the worker process died"
    return text[:300]


def _entry(mod: tvm.IRModule) -> tvm.tirx.PrimFunc:
    import tvm

    if "main" in [gv.name_hint for gv in mod.get_global_vars()]:
        return mod["main"]
    funcs = [f for _, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc)]
    if len(funcs) != 1:
        raise ValueError(f"the module has {len(funcs)} PrimFuncs and no 'main' to measure")
    return funcs[0]


def remove_artifact(path: str) -> None:
    """Remove a built artifact, the library the runner linked beside it, and their directory
    if that leaves it empty (LocalBuilder gives each artifact a fresh temporary one)."""
    for name in (path, path + ".so"):
        try:
            os.remove(name)
        except OSError:
            pass
    try:
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass


def measure_batch(builder: ms.builder.Builder, runner: ms.runner.Runner, mods: list,
                  target: Target | tvm.target.Target) -> list[Outcome]:
    """Build ``mods`` (IRModules or PrimFuncs) together, then time each built one.

    Returns one :class:`Outcome` per module, in order. Runs use random inputs: this
    times programs, it does not check them (``measure_program`` does).
    """
    import tvm
    from tvm.s_tir import meta_schedule as ms

    if not mods:
        return []
    tvm_target = _tvm_target(target)
    device_type = _device_type(tvm_target)
    mods = [tvm.IRModule({"main": m}) if isinstance(m, tvm.tirx.PrimFunc) else m for m in mods]
    args_info = [ms.arg_info.ArgInfo.from_prim_func(_entry(mod)) for mod in mods]
    built = builder.build([ms.builder.BuilderInput(mod, tvm_target) for mod in mods])
    outcomes = [Outcome(error="the builder returned no result", failed_at="build")
                for _ in mods]
    inputs, positions = [], []
    for i, result in enumerate(built):
        if result.error_msg is not None:
            outcomes[i] = Outcome(error=error_line(result.error_msg), failed_at="build")
            continue
        inputs.append(ms.runner.RunnerInput(result.artifact_path, device_type, args_info[i]))
        positions.append(i)
        outcomes[i] = Outcome(error="the runner returned no result", failed_at="run")
    try:
        futures = runner.run(inputs) if inputs else []
        for i, future in zip(positions, futures):
            result = future.result()
            if result.error_msg is not None:
                outcomes[i] = Outcome(error=error_line(result.error_msg), failed_at="run")
                continue
            secs = [float(s) for s in result.run_secs]  # RPC returns TVM FloatImms
            outcomes[i] = Outcome(latency_us=statistics.median(secs) * 1e6, run_secs=secs)
        if positions and all(outcomes[i].failed_at == "run" for i in positions):
            check_farm(runner)  # a tracker that went away ends the run, not every candidate
    finally:
        for runner_input in inputs:
            remove_artifact(str(runner_input.artifact_path))
    return outcomes
