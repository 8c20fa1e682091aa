"""Search one task: evolutionary search over its design space, guided by a cost model.

Each batch: the search proposes candidates (the cost model ranks mutated
traces; the constraints reject what cannot fit before anything is built),
the builder and runner measure them, every result goes to the record store
at once, and the search and cost model learn from it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ..generation.rule import GenerationRule
from ..pruning.constraint import Constraint
from .space import MappingSpace, Task


@dataclass(frozen=True)
class SearchSettings:
    batch: int = 8  # candidates measured per round
    population: int = 64
    genetic_iterations: int = 2
    eps_greedy: float = 0.05  # share of each batch picked at random, not by the cost model
    seed: int = 0


@dataclass
class TaskOutcome:
    task: Task
    measured: int = 0  # trials on record for this task, old and new
    new: int = 0
    best_latency_us: float | None = None
    best_trace: object | None = None  # tvm.s_tir.Trace of the best record
    pruned: Counter = field(default_factory=Counter)
    failed: int = 0
    seconds: float = 0.0


def search_task(task: Task, trials: int, *, store, builder, runner, cost_model,
                rules: list[GenerationRule], constraints: list[Constraint],
                settings: SearchSettings = SearchSettings(),
                on_batch: Callable[[TaskOutcome], None] | None = None) -> TaskOutcome:
    """Bring ``task`` to ``trials`` measured candidates (records already in ``store`` count)."""
    import tvm
    from tvm.s_tir import meta_schedule as ms

    start = time.perf_counter()
    outcome = TaskOutcome(task=task)
    mod = tvm.IRModule({"main": task.workload.prim_func()})
    workload_index = store.commit_workload(mod)
    outcome.measured = store.measured_count(task.key)
    remaining = trials - outcome.measured
    if remaining > 0:  # (a TuneContext costs ~20 s of imports: only when there is work)
        space = MappingSpace(task, rules, constraints, outcome.pruned)
        context = ms.TuneContext(
            mod=mod, target=task.target.tvm_target(), space_generator=space,
            search_strategy=ms.search_strategy.EvolutionarySearch(
                population_size=settings.population,
                init_min_unmeasured=settings.population // 2,
                genetic_num_iters=settings.genetic_iterations,
                eps_greedy=settings.eps_greedy),
            task_name=task.key, rand_state=settings.seed, num_threads=1)
        spaces = context.space_generator.generate_design_space(mod)
        if spaces:
            database = store.metaschedule_view(task.key, task.mapping.id)
            context.search_strategy.pre_tuning(remaining, settings.batch, spaces, database,
                                               cost_model)
            while remaining > 0:
                candidates = context.search_strategy.generate_measure_candidates()
                if not candidates:
                    break
                candidates = list(candidates)[:remaining]
                results = _measure(task, candidates, builder, runner, store, workload_index)
                context.search_strategy.notify_runner_results(candidates, results)
                cost_model.update(context, candidates, results)
                outcome.new += len(candidates)
                outcome.measured += len(candidates)
                outcome.failed += sum(1 for r in results if r.error_msg)
                remaining -= len(candidates)
                _best_from_store(outcome, store)
                if on_batch is not None:
                    on_batch(outcome)
            context.search_strategy.post_tuning()
    _best_from_store(outcome, store)
    outcome.seconds = time.perf_counter() - start
    return outcome


def _measure(task: Task, candidates: list, builder, runner, store, workload: int) -> list:
    """Build and run ``candidates``; append each result to the store as it is known."""
    from tvm.s_tir import meta_schedule as ms

    target = task.target.tvm_target()
    device = "cpu" if task.target.kind == "cpu" else target.kind.name
    built = builder.build([ms.builder.BuilderInput(c.sch.mod, target) for c in candidates])
    inputs, where = [], []
    for index, (candidate, result) in enumerate(zip(candidates, built)):
        if result.error_msg is None:
            inputs.append(ms.runner.RunnerInput(result.artifact_path, device,
                                                candidate.args_info))
            where.append(index)
    ran = [f.result() for f in runner.run(inputs)] if inputs else []
    results = [ms.runner.RunnerResult(run_secs=None, error_msg=r.error_msg) for r in built]
    for index, result in zip(where, ran):
        results[index] = result
    for candidate, result in zip(candidates, results):
        secs = [float(s) for s in result.run_secs] if result.run_secs else None
        store.append(task.key, task.mapping.id, workload, candidate.sch.trace, secs, target,
                     candidate.args_info, error=_first_line(result.error_msg))
    return results


def _first_line(message: str | None) -> str | None:
    if not message:
        return None
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return lines[-1][:300] if lines else None


def _best_from_store(outcome: TaskOutcome, store) -> None:
    best = store.best(outcome.task.key)
    if best is not None and best.latency_us != outcome.best_latency_us:
        outcome.best_latency_us = best.latency_us
        outcome.best_trace = store.schedule(best).trace
