"""``gta_core.tune``: tune workloads on a target under one trial budget, resumably."""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from .final_pick import Retimed
from .host import runs_here
from .measure.settings import MeasureSettings
from .paths import writable_dir
from .plugins import Registry, default_registry
from .workloads import Workload, parse_workload

if TYPE_CHECKING:
    from .scheduler.allocate import MappingState, SubgraphState
    from .scheduler.dual import Progress
    from .scheduler.search import SearchSettings, TaskOutcome


class TuneError(ValueError):
    """A tuning request that cannot run as given; the message is one line."""


class MappingReport(BaseModel):
    id: str
    trials: int
    best_latency_us: float | None
    prior: float | None = None  # its cost before any trial, over the workload's best mapping's
    dropped: bool = False
    why: str | None = None  # why it was dropped, or stopped (its design space ran out)


class LeftOut(BaseModel):
    """A plugin's rule or constraint that raised while a workload was tuned, and was left
    out of it (tuning went on without it)."""

    plugin: str
    kind: str  # "rule" or "constraint"
    name: str
    cause: str  # the exception, in one line
    mappings: list[str]  # the mappings whose search left it out


class TaskReport(BaseModel):
    """One workload's result: its best program over all of its mappings."""

    workload: str
    target: str
    arch: str | None = None  # the architecture tuned for, where the target declares several
    latency_us: float | None  # the final pick's median where it ran here, else tuning's best
    gflops: float | None  # GOPS for integer work
    mapping: str | None
    trials: int
    new_trials: int
    wrong: int = 0  # new trials whose output differed from the reference (never a best)
    failed: int = 0  # new trials that failed to build or run
    checked: int = 0  # new trials whose output was checked (all, on a CPU measured here)
    check_seconds: float = 0.0  # the time those checks took, reference included
    correct: bool | None
    pruned: dict[str, int]
    weight: float
    mappings: list[MappingReport]
    retimed: list[Retimed] = []  # the final pick's candidates (gta_core.final_pick)
    left_out: list[LeftOut] = []  # rules / constraints that raised, and were left out


class TuneReport(BaseModel):
    tasks: list[TaskReport]
    trials: int  # the budget
    seconds: float
    ended_by: str  # "trials", "time" (--time-budget) or "search space" (nothing left)
    scheduler: str  # "dual" or "even"
    cost_model: str = "xgb"  # the registered cost model that ranked candidates
    # Why it was replaced by random ranking mid-run ("predict: ValueError: ..."), if it was.
    cost_model_failure: str | None = None


def check_db(db: str | os.PathLike) -> Path:
    """The record directory, created if needed; TuneError if it cannot be written."""
    return writable_dir(db, "--db", TuneError)


def parse_weights(weights: Sequence[float] | str | None, count: int) -> list[float]:
    """One positive weight per workload (default 1 each); ``"2,1"`` as the CLI gives it."""
    if weights is None:
        return [1.0] * count
    text = weights if isinstance(weights, str) else None
    try:
        values = [float(w) for w in (text.split(",") if text is not None else weights)]
    except (TypeError, ValueError):
        raise TuneError(f"--weights must be numbers separated by commas, got {weights!r}"
                        ) from None
    if len(values) != count:
        raise TuneError(f"--weights has {len(values)} values for {count} workloads; "
                        "give one per workload")
    if not all(v > 0 and math.isfinite(v) for v in values):
        raise TuneError(f"--weights must be positive, got {weights!r}")
    return values


def check_budget(trials: int, time_budget: float | None, scheduler: str) -> None:
    """TuneError (one line) for a trial count, time budget or scheduler that cannot be used."""
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise TuneError(f"--trials must be a positive integer, got {trials!r}")
    if time_budget is not None and not (time_budget > 0 and math.isfinite(time_budget)):
        raise TuneError(f"--time-budget must be a positive number of seconds, got {time_budget!r}")
    from .scheduler.dual import POLICIES

    if scheduler not in POLICIES:
        raise TuneError(f"unknown scheduler {scheduler!r}; choose from {', '.join(POLICIES)}")


def tune(specs: Sequence[str], target: str, trials: int, db: str | os.PathLike, *,
         weights: Sequence[float] | str | None = None, time_budget: float | None = None,
         arch: str | None = None,
         scheduler: str = "dual", measure: MeasureSettings | None = None,
         search: SearchSettings | None = None, registry: Registry | None = None,
         progress: Callable[[Progress], None] | None = None,
         cost_model: str = "xgb") -> TuneReport:
    """Tune ``specs`` on ``target`` as one application, recorded in ``db``.

    ``trials`` measurements in all (as MetaSchedule counts), and at most
    ``time_budget`` seconds: whichever ends first. The dual-task scheduler
    (:mod:`gta_core.scheduler.allocate`) spreads them over the workloads,
    weighted by ``weights`` (how often each occurs in the application), and
    over each workload's kept mappings; ``scheduler="even"`` splits them
    evenly instead. Records already in ``db`` count toward the budget, so a
    rerun with the same budget measures nothing and a run killed half-way
    resumes where it stopped. ``arch`` picks one of the target's declared
    architectures (a GPU's ``sm_90``). ``progress`` is called after every
    measured batch. ``cost_model`` names a registered cost model (a plugin's, or the
    built-in ``xgb``) that ranks candidates before they are measured.
    """
    check_budget(trials, time_budget, scheduler)
    registry = registry or default_registry()
    workloads = [parse_workload(spec, registry.operators) for spec in specs]
    if not workloads:
        raise TuneError("no workload to tune; give at least one spec")
    return tune_workloads(workloads, parse_weights(weights, len(workloads)), target, trials,
                          db, time_budget=time_budget, arch=arch, scheduler=scheduler,
                          measure=measure, search=search, registry=registry,
                          progress=progress, cost_model=cost_model)


def tune_workloads(workloads: Sequence[Workload], weights: Sequence[float], target: str,
                   trials: int, db: str | os.PathLike, *, time_budget: float | None = None,
                   arch: str | None = None, scheduler: str = "dual",
                   measure: MeasureSettings | None = None, search: SearchSettings | None = None,
                   registry: Registry | None = None,
                   progress: Callable[[Progress], None] | None = None,
                   generic_fallback: bool = False, cost_model: str = "xgb") -> TuneReport:
    """:func:`tune` on workloads already made (a spec's, or a model's fused functions),
    each with its weight. ``generic_fallback``: a workload with no kept mapping is searched
    in MetaSchedule's generic space (a model's pooling or softmax) instead of refused."""
    check_budget(trials, time_budget, scheduler)
    registry = registry or default_registry()
    chosen = registry.target(target).for_arch(arch)
    if cost_model not in registry.cost_models:
        raise TuneError(f"unknown cost model {cost_model!r}; loaded: "
                        f"{', '.join(sorted(registry.cost_models))}")
    # A workload given twice is one subgraph that occurs more often: weights add up.
    merged: dict[str, tuple[Workload, float]] = {}
    for workload, weight in zip(workloads, weights):
        seen = merged.get(workload.spec)
        merged[workload.spec] = (workload, weight + (seen[1] if seen else 0.0))
    workloads = [w for w, _ in merged.values()]
    weight_of = [weight for _, weight in merged.values()]
    measure = measure or MeasureSettings()
    if chosen.kind != "cpu" and measure.rpc is None and measure.offline is None \
            and not _local_gpu():
        raise TuneError(f"target {target} needs a GPU or an RPC tracker: this machine has no GPU "
                        "that TVM sees; pass --rpc tracker=HOST:PORT,key=KEY to measure on a "
                        "GPU host")
    path = check_db(db)
    # Imported here: MetaSchedule and the search cost seconds to import, which the
    # command line's other commands and its error paths should not pay.
    from .cost_model.guarded import guarded
    from .database import RecordStore
    from .mapping import mapping_candidates
    from .measure.runners import closed_after, make_builder, make_runner
    from .scheduler.dual import Subgraph, run_schedule
    from .scheduler.space import Task

    subgraphs = []
    for workload, weight in zip(workloads, weight_of):
        kept = [c for c in mapping_candidates(workload, target, registry) if c.status == "kept"
                ] if workload.main_block is not None else []
        # Starts go by prior (tasks' roofline cost); mappings of equal prior in this order:
        # padding is wasted work, and fused axes cost index arithmetic and keep rules from
        # tiling them.
        kept.sort(key=lambda c: (c.waste, sum(len(loops) for loops in c.axes.values())))
        tasks = [Task(workload, c, registry.intrinsics[c.intrinsic], chosen) for c in kept]
        if not tasks and generic_fallback:
            tasks = [Task(workload, None, None, chosen)]
        if not tasks:
            raise TuneError(f"{workload.spec} has no kept mapping on {target} "
                            f"(see gta mappings '{workload.spec}' --target {target})")
        subgraphs.append(Subgraph(workload.spec, weight, tasks))
    store = RecordStore(path)
    if measure.offline is not None:
        from .measure.offline import OfflineRound, RoundError, take_back

        measure.offline.mkdir(parents=True, exist_ok=True)
        try:
            take_back(measure.offline, store)
        except RoundError as exc:
            raise TuneError(str(exc)) from None
        runner = OfflineRound(measure.offline, chosen)
    else:
        runner = make_runner(measure, chosen)
    start = time.perf_counter()
    model = guarded(registry.cost_models[cost_model].factory)
    with closed_after(make_builder(measure, chosen)) as builder:
        result = run_schedule(
            subgraphs, trials, store=store, builder=builder, runner=runner, cost_model=model,
            rules=list(registry.rules.values()), constraints=list(registry.constraints.values()),
            time_budget=time_budget, policy=scheduler, search=search, progress=progress)
    reports = [_report(w, chosen, weight, state, outcomes, store, measure, registry)
               for w, weight, state, outcomes
               in zip(workloads, weight_of, result.states, result.outcomes)]
    return TuneReport(tasks=reports, trials=trials, seconds=time.perf_counter() - start,
                      ended_by=result.ended_by, scheduler=scheduler, cost_model=cost_model,
                      cost_model_failure=model.failure)


def _local_gpu() -> bool:
    """Whether TVM sees a CUDA device here (then LocalRunner measures on it)."""
    import tvm

    return bool(tvm.cuda().exist)


def _report(workload: Workload, target, weight: float, state: SubgraphState,
            outcomes: list[TaskOutcome], store, measure: MeasureSettings,
            registry: Registry) -> TaskReport:
    from .final_pick import final_pick

    pruned: Counter = Counter()
    for outcome in outcomes:
        pruned.update(outcome.pruned)
    best_prior = min((m.prior for m in state.mappings if m.prior), default=None)
    report = TaskReport(
        workload=workload.spec, target=target.name, arch=target.arch, latency_us=None,
        gflops=None, mapping=None, correct=None,
        trials=sum(o.measured for o in outcomes), new_trials=sum(o.new for o in outcomes),
        wrong=sum(o.wrong for o in outcomes), failed=sum(o.failed for o in outcomes),
        checked=sum(o.checked for o in outcomes),
        check_seconds=sum(o.check_seconds for o in outcomes),
        pruned=dict(pruned), weight=weight,
        mappings=[_mapping_report(o, m, best_prior) for o, m in zip(outcomes, state.mappings)],
        left_out=_left_out(outcomes, registry),
    )
    if runs_here(target):  # re-time, check, pick
        pick = final_pick(store, workload, target, [o.task.key for o in outcomes], measure)
        if pick is not None:
            report.retimed = pick.candidates
            picked = pick.picked
            report.correct = picked is not None
            if picked is not None:
                report.mapping, report.latency_us = picked.mapping, picked.median_us
    else:  # measured elsewhere (a GPU, another CPU): the tuning's best stands, unchecked here
        measured = [o for o in outcomes if o.best_latency_us is not None]
        if measured:
            best = min(measured, key=lambda o: o.best_latency_us)
            report.mapping, report.latency_us = best.task.mapping_id, best.best_latency_us
    if report.latency_us is not None:
        report.gflops = workload.flops / report.latency_us / 1e3
    return report


def _left_out(outcomes: list[TaskOutcome], registry: Registry) -> list[LeftOut]:
    """What the tasks of one workload left out, once per (kind, name), with its plugin."""
    found: dict[tuple[str, str], LeftOut] = {}
    for outcome in outcomes:
        for (kind, name), cause in outcome.left_out.items():
            entry = found.setdefault((kind, name), LeftOut(
                plugin=registry.owner(f"{kind}s", name) or "unknown", kind=kind, name=name,
                cause=cause, mappings=[]))
            entry.mappings.append(outcome.task.mapping_id)
    return list(found.values())


def _mapping_report(outcome: TaskOutcome, m: MappingState, best_prior: float | None,
                    ) -> MappingReport:
    prior = m.prior / best_prior if m.prior and best_prior else None
    why = m.dropped or ("its design space has no candidate left" if m.exhausted else None)
    if why is None and not outcome.measured:
        why = "not started: " + (f"its prior is {prior:.1f}x the best mapping's, and what the "
                                 "started ones measured never made it worth a start"
                                 if prior is not None else "the run ended first")
    return MappingReport(id=outcome.task.mapping_id, trials=outcome.measured,
                         best_latency_us=outcome.best_latency_us, prior=prior,
                         dropped=m.dropped is not None or not outcome.measured, why=why)
