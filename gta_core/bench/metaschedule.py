"""MetaSchedule as a baseline: its search spaces, resumable tuning, and its records read back.

A work directory holds MetaSchedule's JSONDatabase (``database_workload.json``,
``database_tuning_record.json``: one line per measured candidate, in order) and
``batch_times.json``, one line ``{"time", "trials"}`` per measured batch, written by a
measure callback: MetaSchedule's records carry no time, and tuning curves need one.
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import time
from pathlib import Path
from typing import Any

from ..database import metaschedule_files
from ..database.lines import read_json_lines
from ..database.metaschedule_files import RECORDS, WORKLOADS
from ..measure import MeasureSettings, make_builder, make_runner
from ..measure.runners import closed_after
from ..models import Target

BATCH_TIMES = "batch_times.json"
FAILED_RUN_SECS = 1e10  # MetaSchedule's run time for a candidate that failed
TRIALS_PER_BATCH = 16


def vnni_space(intrinsic: str) -> Any:
    """MetaSchedule's auto-tensorization rule (MultiLevelTilingWithIntrin) on ``intrinsic``.

    The x86 defaults with the intrinsic swapped in, except ``max_vectorize_extent=-1``:
    with 64 the loop around the tensorized block is vectorised and the build crashes
    ("Cannot broadcast lanes=16 ... to 64"; shared TVM notes).
    """
    from tvm.s_tir import meta_schedule as ms

    rule = ms.schedule_rule
    return ms.space_generator.PostOrderApply(
        sch_rules=[
            rule.AutoInline(into_producer=False, into_consumer=True, inline_const_tensor=True,
                            disallow_if_then_else=True, require_injective=True,
                            require_ordered=True, disallow_op=["tirx.exp"]),
            rule.AddRFactor(max_jobs_per_core=16, max_innermost_factor=64),
            rule.MultiLevelTilingWithIntrin(
                intrinsic, structure="SSRSRS", tile_binds=None, max_innermost_factor=64,
                vector_load_lens=None, reuse_read=None,
                reuse_write=rule.ReuseType(req="may", levels=[1, 2], scope="global")),
            rule.ParallelizeVectorizeUnroll(max_jobs_per_core=16, max_vectorize_extent=-1,
                                            unroll_max_steps=[0, 16, 64, 512],
                                            unroll_explicit=True),
            rule.RandomComputeLocation(),
        ],
        postprocs=[
            ms.postproc.DisallowDynamicLoop(),
            ms.postproc.RewriteParallelVectorizeUnroll(),
            ms.postproc.RewriteReductionBlock(),
            ms.postproc.RewriteTensorize(vectorize_init_loop=True),
            ms.postproc.RewriteLayout(),
        ],
        mutator_probs="llvm",
    )


AUTO_TENSORIZE = "meta_schedule.auto_tensorize"  # MultiLevelTilingWithIntrin's block annotation


def tensorizes(prim_func: Any, target: Target, space: Any) -> bool:
    """Whether any design space ``space`` generates for ``prim_func`` tensorizes a block:
    the auto-tensorization rule annotates each block it maps onto its intrinsic (the
    RewriteTensorize postproc later swaps the annotated block for the intrinsic), and a
    space without that annotation holds only scalar (LLVM-vectorised) programs.

    The first call in a process takes about 40 s here: TVM parses every built-in tensor
    intrinsic when the tuning context starts.
    """
    import tvm
    from tvm.s_tir import meta_schedule as ms

    context = ms.TuneContext(mod=tvm.IRModule({"main": prim_func}),
                             target=target.tvm_target(), space_generator=space,
                             task_name="tensorizes", num_threads=1)
    return any(inst.kind.name == "Annotate" and str(inst.attrs[0]) == AUTO_TENSORIZE
               for sch in context.generate_design_space() for inst in sch.trace.insts)


def measured(work_dir: Path) -> int:
    """How many candidates MetaSchedule has measured (failed ones included) in ``work_dir``."""
    return len(metaschedule_files.records(work_dir))


def _batch_timer(path: Path) -> Any:
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

    @derived_object
    class BatchTimes(PyMeasureCallback):
        """Appends when each measured batch finished and how many candidates it had."""

        def apply(self, task_scheduler, task_id, measure_candidates, builder_results,
                  runner_results) -> None:
            with path.open("a") as handle:
                handle.write(json.dumps({"time": time.time(),
                                         "trials": len(runner_results)}) + "\n")

    return BatchTimes()


def tune(prim_func: Any, target: Target, work_dir: Path, trials: int, space: Any,
         measure: MeasureSettings) -> None:
    """Tune until ``work_dir`` holds ``trials`` measured candidates (records there count).

    ``space`` None takes MetaSchedule's default for the target. Builder and runner are
    GTA's, so both tuners build with the same timeout and time the same way.
    """
    metaschedule_files.repair(work_dir)
    remaining = trials - measured(work_dir)
    if remaining <= 0:
        return
    work_dir.mkdir(parents=True, exist_ok=True)
    # MetaSchedule points its console log handler at whatever sys.stdout is when tuning
    # starts, and stdout belongs to `--json`; its full log stays in work_dir/logs.
    with contextlib.redirect_stdout(_DISCARD):
        _tune_tir(prim_func, target, work_dir, remaining, space, measure)


class _Discard(io.TextIOBase):
    """A text stream that drops what it is given (and is never closed under a handler)."""

    def write(self, text: str) -> int:
        return len(text)


_DISCARD = _Discard()


def _tune_tir(prim_func: Any, target: Target, work_dir: Path, trials: int, space: Any,
              measure: MeasureSettings) -> None:
    from tvm.s_tir import meta_schedule as ms

    callbacks = [*ms.measure_callback.MeasureCallback.create("default"),
                 _batch_timer(work_dir / BATCH_TIMES)]
    with closed_after(make_builder(measure)) as builder:
        ms.tune_tir(prim_func, target.tvm_target(), str(work_dir), trials,
                    num_trials_per_iter=min(TRIALS_PER_BATCH, trials),
                    builder=builder, runner=make_runner(measure, target),
                    measure_callbacks=callbacks,
                    **({"space": space} if space is not None else {}))


def best_schedule(prim_func: Any, target: Target, work_dir: Path) -> Any:
    """MetaSchedule's best schedule from ``work_dir``'s records, or None if none ran."""
    from tvm.s_tir import meta_schedule as ms

    metaschedule_files.repair(work_dir)
    if measured(work_dir) == 0:
        return None
    database = ms.database.JSONDatabase(str(work_dir / WORKLOADS), str(work_dir / RECORDS))
    # compile_tir needs the PrimFunc: given the IRModule it finds nothing (shared TVM notes).
    return ms.tir_integration.compile_tir(database, prim_func, target.tvm_target())


def history(work_dir: Path) -> list[tuple[float | None, float | None]]:
    """``(finish time, latency_us or None if it failed)`` per measured candidate, in order."""
    times: list[float] = []
    for _, batch in read_json_lines(work_dir / BATCH_TIMES):
        times += [batch["time"]] * batch["trials"]
    out: list[tuple[float | None, float | None]] = []
    for i, (_, record) in enumerate(metaschedule_files.records(work_dir)):
        run_secs = record[1][1] or [FAILED_RUN_SECS]
        failed = any(s >= FAILED_RUN_SECS for s in run_secs)
        out.append((times[i] if i < len(times) else None,
                    None if failed else statistics.median(run_secs) * 1e6))
    return out
