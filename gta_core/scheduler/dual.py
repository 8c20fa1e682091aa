"""The dual-task scheduling loop: one trial budget over subgraphs and their mappings.

Each round asks :func:`~.allocate.decide` (or the even split) where the next
trials go until a batch is full, has each picked task's search propose that
many candidates, builds and runs them all together (so the builder's workers
stay busy even when a round spans several one-trial starts), and feeds the
measured latencies and the cost model's prediction back into the state.
The state is rebuilt from the record store at the start, so a rerun with the
same budget measures nothing and a killed run resumes where it stopped.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

from .. import interrupts
from ..measure.artifact_check import Reference
from .allocate import (
    INF,
    AllocationSettings,
    MappingState,
    SubgraphState,
    decide,
    decide_even,
)
from .kin_tiles import KinTiles
from .search import SearchSettings, TaskOutcome, TaskSearch, measure_round
from .space import Task

POLICIES = {"dual": decide, "even": decide_even}


@dataclass
class Subgraph:
    """A workload of the application, its weight, and one task per kept mapping."""

    name: str
    weight: float
    tasks: list[Task]


@dataclass(frozen=True)
class Progress:
    done: int  # trials on record over the whole run
    budget: int
    subgraph: str
    mapping: str
    best_us: float | None  # the subgraph's best so far
    flops: int  # the subgraph's work, for throughput


@dataclass
class ScheduleResult:
    states: list[SubgraphState]
    outcomes: list[list[TaskOutcome]]  # per subgraph, per task
    ended_by: str  # "trials", "time" or "search space"


def run_schedule(subgraphs: list[Subgraph], budget: int, *, store, builder, runner,
                 cost_model, rules, constraints, time_budget: float | None = None,
                 policy: str = "dual", search: SearchSettings | None = None,
                 allocation: AllocationSettings | None = None,
                 progress: Callable[[Progress], None] | None = None) -> ScheduleResult:
    """Spend ``budget`` trials (and at most ``time_budget`` seconds) over ``subgraphs``."""
    search = search or SearchSettings()
    allocation = allocation or AllocationSettings(batch=search.batch)
    choose = POLICIES[policy]
    kin = KinTiles()  # the tasks of all subgraphs offer each other their fastest tiles
    searches = [_searches(s, budget, store=store, builder=builder, runner=runner,
                          cost_model=cost_model, rules=rules, constraints=constraints,
                          settings=search, kin=kin) for s in subgraphs]
    states = [_state_from_store(s, store) for s in subgraphs]
    started = time.perf_counter()
    ended_by = "search space"
    try:
        while True:
            interrupts.check()  # a signal whose exception TVM's FFI swallowed
            if sum(s.trials for s in states) >= budget:
                ended_by = "trials"
                break
            if time_budget is not None and time.perf_counter() - started >= time_budget:
                ended_by = "time"
                break
            picks = _plan_round(states, budget, choose, allocation)
            proposed = [(i, j, searches[i][j].propose(n)) for i, j, n in picks]
            for i, j, _ in proposed:
                states[i].mappings[j].exhausted = searches[i][j].exhausted
            proposed = [p for p in proposed if p[2]]
            if not proposed:
                if picks:
                    continue  # the picked tasks ran out of candidates: plan again without them
                break
            measured = measure_round([(searches[i][j], c) for i, j, c in proposed])
            for (i, j, candidates), (results, records) in zip(proposed, measured):
                states[i].record(j, searches[i][j].absorb(candidates, results, records))
                score = searches[i][j].outcome.predicted_score
                best = states[i].best_us
                states[i].mappings[j].predicted_us = (best / score if score and best < INF
                                                      else None)
            if progress is not None:
                i, j, _ = proposed[-1]
                best = states[i].best_us
                progress(Progress(done=sum(s.trials for s in states), budget=budget,
                                  subgraph=states[i].name, mapping=states[i].mappings[j].id,
                                  best_us=best if best < INF else None,
                                  flops=subgraphs[i].tasks[j].workload.flops))
    finally:
        for row in searches:
            for task_search in row:
                task_search.close()
    return ScheduleResult(states=states, outcomes=[[t.outcome for t in row] for row in searches],
                          ended_by=ended_by)


def _searches(subgraph: Subgraph, budget: int, **kwargs) -> list[TaskSearch]:
    # The tasks of a subgraph are one workload's mappings: one reference checks them all.
    reference = Reference(subgraph.tasks[0].workload) if subgraph.tasks else None
    return [TaskSearch(task, max_trials=budget, reference=reference, **kwargs)
            for task in subgraph.tasks]


def _plan_round(states: list[SubgraphState], budget: int, choose,
                settings: AllocationSettings) -> list[tuple[int, int, int]]:
    """The (subgraph, mapping, trials) of the next round: decisions taken one after
    another until a batch is full, each seeing the trials the earlier ones reserved
    (as trials that have not improved anything yet). Drops apply at once."""
    planned = copy.deepcopy(states)
    picks: dict[tuple[int, int], int] = {}
    while sum(picks.values()) < settings.batch:
        decision, drops = choose(planned, budget, settings)
        for i, j, why in drops:
            planned[i].mappings[j].dropped = why
            if not picks:  # measured facts, not reservations, led to these
                states[i].mappings[j].dropped = why
        if decision is None:
            break
        i, j = decision.subgraph, decision.mapping
        trials = min(decision.trials, settings.batch - sum(picks.values()))
        planned[i].record(j, [None] * trials)
        picks[i, j] = picks.get((i, j), 0) + trials
    return [(i, j, n) for (i, j), n in picks.items()]


def _state_from_store(subgraph: Subgraph, store) -> SubgraphState:
    """A subgraph's state from its records, in the order they were measured."""
    state = SubgraphState(subgraph.name, subgraph.weight,
                          [MappingState(t.mapping_id, prior=t.prior) for t in subgraph.tasks])
    index = {t.key: j for j, t in enumerate(subgraph.tasks)}
    for record in store.records():
        if record.task in index:
            state.record(index[record.task], [record.latency_us if record.ok else None])
    return state
