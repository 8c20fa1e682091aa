"""``gta_core.tune``: tune workloads on a target under one trial budget, resumably."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from .measure import measure_program
from .measure.settings import MeasureSettings
from .plugins import Registry, default_registry
from .workloads import Workload, parse_workload

if TYPE_CHECKING:
    from .scheduler.search import SearchSettings, TaskOutcome


class TuneError(ValueError):
    """A tuning request that cannot run as given; the message is one line."""


class MappingReport(BaseModel):
    id: str
    trials: int
    best_latency_us: float | None
    dropped: bool = False


class TaskReport(BaseModel):
    """One workload's result: its best program over all of its mappings."""

    workload: str
    target: str
    latency_us: float | None
    gflops: float | None  # GOPS for integer work
    mapping: str | None
    trials: int
    new_trials: int
    correct: bool | None
    pruned: dict[str, int]
    mappings: list[MappingReport]


class TuneReport(BaseModel):
    tasks: list[TaskReport]
    seconds: float
    ended_by: str  # "trials"


def check_db(db: str | os.PathLike) -> Path:
    """The record directory, created if needed; TuneError if it cannot be written."""
    path = Path(db)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".gta-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise TuneError(f"--db {db}: cannot write there ({exc.strerror or exc})") from None
    return path


def even_split(total: int, parts: int) -> list[int]:
    """``total`` trials over ``parts`` tasks, the remainder to the first ones."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def tune(specs: Sequence[str], target: str, trials: int, db: str | os.PathLike, *,
         measure: MeasureSettings | None = None, search: SearchSettings | None = None,
         registry: Registry | None = None,
         progress: Callable[[TaskOutcome, int], None] | None = None) -> TuneReport:
    """Tune ``specs`` on ``target`` with ``trials`` measurements in all, recorded in ``db``.

    Trials are split evenly over the workloads, then over each workload's
    kept mappings. Records already in ``db`` count toward each task's share,
    so a rerun with the same budget measures nothing, and a run killed
    half-way resumes where it stopped. ``progress(outcome, share)`` is called
    after every measured batch.
    """
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise TuneError(f"--trials must be a positive integer, got {trials!r}")
    registry = registry or default_registry()
    chosen = registry.target(target)
    workloads = [parse_workload(spec, registry.operators) for spec in specs]
    if not workloads:
        raise TuneError("no workload to tune; give at least one spec")
    measure = measure or MeasureSettings()
    if chosen.kind != "cpu" and measure.rpc is None and not _local_gpu():
        raise TuneError(f"target {target} needs a GPU or an RPC tracker: this machine has no GPU "
                        "that TVM sees; pass --rpc tracker=HOST:PORT,key=KEY to measure on a "
                        "GPU host")
    path = check_db(db)
    # Imported here: MetaSchedule and the search cost seconds to import, which the
    # command line's other commands and its error paths should not pay.
    from .database import RecordStore
    from .mapping import mapping_candidates
    from .measure.runners import make_builder, make_runner
    from .scheduler.search import SearchSettings, search_task
    from .scheduler.space import Task

    store = RecordStore(path)
    builder, runner = make_builder(measure), make_runner(measure, chosen)
    rules = list(registry.rules.values())
    constraints = list(registry.constraints.values())
    start = time.perf_counter()
    reports = []
    for workload, budget in zip(workloads, even_split(trials, len(workloads))):
        tasks = [Task(workload, c, registry.intrinsics[c.intrinsic], chosen)
                 for c in mapping_candidates(workload, target, registry) if c.status == "kept"]
        if not tasks:
            raise TuneError(f"{workload.spec} has no kept mapping on {target} "
                            f"(see gta mappings '{workload.spec}' --target {target})")
        outcomes = []
        for task, share in zip(tasks, even_split(budget, len(tasks))):
            cost_model = registry.cost_models["xgb"].factory()
            outcomes.append(search_task(
                task, share, store=store, builder=builder, runner=runner,
                cost_model=cost_model, rules=rules, constraints=constraints,
                settings=search or SearchSettings(),
                on_batch=(lambda o, share=share: progress(o, share)) if progress else None))
        reports.append(_report(workload, chosen, outcomes))
    return TuneReport(tasks=reports, seconds=time.perf_counter() - start, ended_by="trials")


def _local_gpu() -> bool:
    """Whether TVM sees a CUDA device here (then LocalRunner measures on it)."""
    import tvm

    return bool(tvm.cuda().exist)


def _report(workload: Workload, target, outcomes: list[TaskOutcome]) -> TaskReport:
    pruned: Counter = Counter()
    for outcome in outcomes:
        pruned.update(outcome.pruned)
    best, correct = None, None
    ranked = sorted((o for o in outcomes if o.best_latency_us is not None),
                    key=lambda o: o.best_latency_us)
    for outcome in ranked:  # the best program that is also right (or cannot be checked here)
        correct = _check(workload, target, outcome)
        if correct is not False:
            best = outcome
            break
    return TaskReport(
        workload=workload.spec, target=target.name,
        latency_us=best.best_latency_us if best else None,
        gflops=workload.flops / best.best_latency_us / 1e3 if best else None,
        mapping=best.task.mapping.id if best else None,
        trials=sum(o.measured for o in outcomes), new_trials=sum(o.new for o in outcomes),
        correct=correct, pruned=dict(pruned),
        mappings=[MappingReport(id=o.task.mapping.id, trials=o.measured,
                                best_latency_us=o.best_latency_us) for o in outcomes],
    )


def _check(workload: Workload, target, outcome: TaskOutcome) -> bool | None:
    """Replay the task's best trace and compare the program's output with numpy.

    None where this machine cannot run the program (a GPU target measured over RPC).
    """
    from tvm import s_tir

    if target.kind != "cpu":
        return None

    sch = s_tir.Schedule(workload.prim_func())
    outcome.best_trace.apply_to_schedule(sch, remove_postproc=False)
    return measure_program(sch.mod, workload, target, number=1, repeat=1).correct
