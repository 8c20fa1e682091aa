"""``gta tune --model``: one dual-task budget over a model's fused functions and their mappings.

Each distinct fused function whose anchor some intrinsic of the target can take becomes a
subgraph of the dual-task scheduler, weighted by how often the model calls it; its
mappings share that subgraph's trials. Records key on the function's content
(:class:`~gta_core.workloads.subgraph.SubgraphWorkload`), so a function two models share
shares its records. A function no intrinsic takes (pooling, a layout change, a
normalisation) is listed with the reason and tuned under the same budget in MetaSchedule's
generic CPU design space (``generic_fallback``); with no record at all it compiles with
TVM's default schedule.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel

from .frontends import Model, ModelTask, channel_block, fuse, model_tasks, written_bytes
from .measure import MeasureSettings, flushed_to_fit, model_settings, runnable
from .plugins import Registry, default_registry
from .tuning import TaskReport, TuneError, check_budget, tune_workloads


class ModelTaskReport(BaseModel):
    """One fused function of the model: what it is, how it was tuned, what it costs."""

    name: str  # the fused function, as the model's module names it (the first of functions)
    functions: list[str] = []  # every function it stands for: equal up to their constants
    workload: str  # the records' key
    weight: int  # calls in the model
    anchor: str | None  # the anchor block: what the intrinsic computes (None: no anchor)
    gflops_work: float  # the anchor's work per call, GFLOP (GOP for integers)
    mappings: int  # kept mappings on the target
    untuned_us: float | None  # TVM with no schedule, timed here as the tuned programs are
    tuned: TaskReport | None
    why: str | None = None  # why it is tuned without an intrinsic

    @property
    def latency_us(self) -> float | None:
        """Per call: the tuned program's where there is one, else the untuned one's."""
        tuned = self.tuned.latency_us if self.tuned and self.tuned.correct else None
        return tuned if tuned is not None else self.untuned_us


class ModelTuneReport(BaseModel):
    model: str
    target: str
    tasks: list[ModelTaskReport]
    trials: int
    seconds: float
    ended_by: str
    quantized: str | None = None  # a quantized model: which layers run as integers


def _untuned_us(task: ModelTask, target, settings: MeasureSettings) -> float | None:
    """The task's function built for ``target`` with no schedule, timed (median of 3) on
    random inputs as ``settings`` time a tuned one (caches flushed where they say), so the
    report's speedup compares like with like."""
    import tvm

    from .measure.scrub import preprocessor
    from .workloads.operator import random_array

    rng = np.random.default_rng(0)
    try:
        lib = runnable(tvm.IRModule({"main": task.func}), target)
        device = tvm.cpu()
        args = [tvm.runtime.tensor(random_array(tuple(int(d) for d in b.shape), str(b.dtype),
                                                rng), device) for b in task.func.params]
        timer = lib.time_evaluator("main", device, number=1, repeat=3,
                                   f_preproc=preprocessor(settings))
        return float(np.median(timer(*args).results)) * 1e6
    except Exception:  # noqa: BLE001 - an untimed function is reported as such, not fatal
        return None


def tune_model(model: Model, target: str, trials: int, db: str | os.PathLike, *,
               time_budget: float | None = None, scheduler: str = "dual",
               measure: MeasureSettings | None = None, registry: Registry | None = None,
               progress: Callable | None = None, cost_model: str = "xgb") -> ModelTuneReport:
    """Tune ``model``'s fused functions on ``target`` under one budget of ``trials``,
    recorded in ``db`` (resumable as :func:`gta_core.tune` is), ranked by ``cost_model``.

    ``measure`` None times each function as the model runs it, caches flushed of all but
    its first argument (:func:`gta_core.measure.model_settings`); settings given are used
    as they are, a ``flush_to`` of "auto" resolved for this model
    (:func:`~gta_core.measure.settings.flushed_to_fit`)."""
    check_budget(trials, time_budget, scheduler)
    registry = registry or default_registry()
    chosen = registry.target(target)
    if chosen.kind != "cpu":
        raise TuneError(f"models are tuned for CPU targets so far; {target} is a "
                        f"{chosen.kind} target")
    from .mapping import mapping_candidates

    start = time.perf_counter()
    fused = fuse(model.mod, channel_block(chosen))
    measure = flushed_to_fit(measure or model_settings(),
                             model.footprint_bytes() + written_bytes(fused),
                             chosen.resources.cache_bytes)
    tasks = model_tasks(fused)
    kept = {t.digest: sum(c.status == "kept" for c in mapping_candidates(
        t.workload, target, registry)) if t.workload.main_block else 0 for t in tasks}
    report = tune_workloads([t.workload for t in tasks], [float(t.weight) for t in tasks],
                            target, trials, db, time_budget=time_budget, scheduler=scheduler,
                            measure=measure, registry=registry, progress=progress,
                            generic_fallback=True, cost_model=cost_model)
    tuned = {r.workload: r for r in report.tasks}
    rows = []
    for task in tasks:
        workload = task.workload
        why = workload.why or (None if kept[task.digest] else
                               f"no mapping of its anchor onto {target}'s intrinsics")
        rows.append(ModelTaskReport(
            name=task.name, functions=task.functions, workload=workload.spec,
            weight=task.weight,
            anchor=workload.main_block, gflops_work=workload.flops / 1e9,
            mappings=kept[task.digest], untuned_us=_untuned_us(task, chosen, measure),
            tuned=tuned.get(workload.spec),
            why=why and f"MetaSchedule's generic rules: {why}"))
    return ModelTuneReport(model=model.name, target=target, tasks=rows, trials=trials,
                           seconds=time.perf_counter() - start, ended_by=report.ended_by,
                           quantized=model.quantized and str(model.quantized))
