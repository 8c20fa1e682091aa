"""A task's search: its first proposal samples the design space (no evolutionary search),
ranked by their estimated time (or by the cost model once it is warm, where a sample has no
estimate); later proposals evolve."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from gta_core.database import RecordStore
from gta_core.mapping import mapping_candidates
from gta_core.plugins import default_registry
from gta_core.scheduler.search import SearchSettings, TaskSearch
from gta_core.scheduler.space import Task
from gta_core.workloads import parse_workload


@derived_object
class RankingModel(ms.cost_model.PyCostModel):
    """A warm cost model that scores each candidate by its trace text and remembers what it
    was asked, so a test can see which sample won."""

    num_warmup_samples = 0
    data_size = 1

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[list, np.ndarray]] = []

    def load(self, path: str) -> None:
        pass

    def save(self, path: str) -> None:
        pass

    def update(self, context, candidates, results) -> None:
        pass

    def predict(self, context, candidates):
        scores = np.array([score(c.sch.trace) for c in candidates], dtype=float)
        self.asked.append((candidates, scores))
        return scores


def score(trace) -> float:
    """A trace's score: the same in every process, and two different traces tie about once
    in 2**52 (``hash() % 1000`` tied often enough in a population of dozens that the best
    three by score were not one set)."""
    return float(int(hashlib.sha256(str(trace).encode()).hexdigest()[:13], 16))


@pytest.fixture()
def search(tmp_path):
    registry = default_registry()
    workload = parse_workload("gemm:M=64,N=64,K=64,dtype=int8", registry.operators)
    kept = next(c for c in mapping_candidates(workload, "avx512", registry)
                if c.status == "kept")
    task = Task(workload, kept, registry.intrinsics[kept.intrinsic], registry.target("avx512"))
    return TaskSearch(task, store=RecordStore(tmp_path), builder=None, runner=None,
                      cost_model=RankingModel(), rules=list(registry.rules.values()),
                      constraints=list(registry.constraints.values()),
                      settings=SearchSettings(start_samples=6))


@pytest.fixture()
def evolutions(monkeypatch):
    """Counts the evolutionary search's proposals (ReplayTrace's are not counted)."""
    calls = []
    real = ms.search_strategy.SearchStrategy.generate_measure_candidates

    def counted(self):
        calls.append(self)
        return real(self)

    monkeypatch.setattr(ms.search_strategy.EvolutionarySearch, "generate_measure_candidates",
                        counted, raising=False)
    return calls


def test_a_first_proposal_draws_tiles_and_replays_only_the_best_estimated(search, evolutions,
                                                                         monkeypatch):
    from gta_core.scheduler import drawn_search
    from gta_core.scheduler.tile_cost import estimated_cycles
    from gta_core.scheduler.tile_draw import SketchDraw

    drawn, replayed = [], []
    real_draw, real_replay = drawn_search.draw_inside, SketchDraw.replay
    monkeypatch.setattr(drawn_search, "draw_inside",
                        lambda *a, **k: drawn.extend(real_draw(*a, **k)) or drawn[-8:])
    monkeypatch.setattr(SketchDraw, "replay",
                        lambda self, *a: replayed.append(1) or real_replay(self, *a))
    picked = search.propose(2)
    assert len(picked) == 2 and not evolutions
    assert len(drawn) == 8  # four times the trials asked for, as that is more than 6
    assert len(replayed) == 2  # the best two by estimate passed the postprocessors
    task = search.task

    def cycles(program):
        return estimated_cycles(program, task.workload, task.mapping, task.intrinsic,
                                task.target.resources)

    best = sorted(cycles(search._draws.sketches[k].tiles(tiles)) for k, tiles in drawn)[:2]
    assert [cycles(c.sch) for c in picked] == pytest.approx(best)
    assert not search.cost_model.asked  # the learned model has seen nothing of this workload
    assert search._pending == []  # the other samples are not measured later


def test_samples_without_an_estimate_are_ranked_by_the_warm_cost_model(search, monkeypatch):
    """Without an estimate the drawn tiles cannot be ranked before their replay: the start
    is MetaSchedule's replay, ranked by the cost model."""
    for module in ("search", "drawn_search"):
        monkeypatch.setattr(f"gta_core.scheduler.{module}.estimated_cycles", lambda *a: None)
    picked = search.propose(1)
    [(samples, scores)] = search.cost_model.asked
    assert len(samples) == 6  # start_samples, as it is more than four times the trials
    assert score(picked[0].sch.trace) == max(scores)


def measured(search, candidates, latencies):
    """As absorb() records a measured batch, without building anything."""
    search.outcome.measured += len(candidates)
    search._draws.learn(candidates, latencies)


def test_a_cold_cost_model_leaves_the_picks_to_the_estimate(search, evolutions):
    """A cold model would rank at random; fresh draws ranked by the estimate, never the
    tiles of an earlier proposal again."""
    search.cost_model.num_warmup_samples, search.cost_model.data_size = 16, 0
    measured(search, search.propose(1), [10.0])
    assert len(search.propose(2)) == 2 and not evolutions and not search.cost_model.asked
    assert len(search._draws.drawn) == 3  # three tile draws replayed, none twice


def test_a_warm_cost_model_ranks_neighbours_of_the_fastest_and_fresh_draws(search, evolutions,
                                                                          monkeypatch):
    from gta_core.scheduler.drawn_search import DrawnSearch

    first = search.propose(2)
    measured(search, first, [20.0, 10.0])
    draws = search._draws
    fastest = min(draws.latency, key=draws.latency.get)
    replayed = []
    real = DrawnSearch._replayed
    monkeypatch.setattr(DrawnSearch, "_replayed",
                        lambda self, tiles, *a, **k: replayed.extend(tiles) or real(self, tiles,
                                                                                   *a, **k))
    picked = search.propose(3)
    [(population, scores)] = search.cost_model.asked
    assert not evolutions and len(picked) == 3 and 0 < len(population) <= len(replayed)
    assert {str(c.sch.trace) for c in picked} == {  # the model's best three
        str(population[j].sch.trace) for j in np.argsort(-scores)[:3]}
    near = [(k, tiles) for k, tiles in replayed if k == fastest[0]
            and sum(a != b for a, b in zip(tiles, fastest[1])) == 1]
    pool = SearchSettings().population_per_trial * 3  # for three trials
    assert len(replayed) <= pool
    assert len(near) >= pool // 2 // 2  # its share, between 2 parents
    assert len(replayed) > len(near)  # and fresh draws
    failed = len(replayed) - len(population)  # rejected by a postprocessor: never again
    assert len(draws.drawn) == 2 + 3 + failed  # the others may be drawn again


def test_a_warm_proposal_replays_a_pool_sized_by_the_trials_asked(search, monkeypatch):
    """Eight draws replayed per trial asked, up to the population: a mapping given one trial
    a round does not pay for replaying 64."""
    from gta_core.scheduler.drawn_search import DrawnSearch

    measured(search, search.propose(2), [20.0, 10.0])
    pools = []
    real = DrawnSearch._replayed
    monkeypatch.setattr(DrawnSearch, "_replayed",
                        lambda self, tiles, *a, **k: pools.append(len(tiles)) or real(
                            self, tiles, *a, **k))
    settings = SearchSettings()
    for trials in (1, 2, 16):
        search._pending = []
        search.propose(trials)
    assert 0 < pools[0] <= settings.population_per_trial
    assert settings.population_per_trial < pools[1] <= 2 * settings.population_per_trial
    assert 2 * settings.population_per_trial < pools[2] <= settings.population


def test_a_task_whose_tiles_cannot_be_drawn_evolves_with_metaschedule(search, evolutions,
                                                                       monkeypatch):
    monkeypatch.setattr("gta_core.scheduler.drawn_search.SketchDraw.of", lambda sch: None)
    search.propose(1)
    assert search._draws is None
    search.outcome.measured = 1  # as absorb() counts a measured start
    assert len(search.propose(2)) == 2
    assert len(evolutions) == 1
    assert len(search._pending) == SearchSettings().batch - 2  # the batch's rest, for later


def test_a_pooling_task_keeps_its_generic_space_without_tvms_unknown_rule_warning(capfd):
    """TOPI's pooling block names a rule no CPU registers; the warning is dropped, the other
    lines on stderr and the space are kept."""
    import sys

    import tvm
    from tvm import te, topi

    from gta_core.scheduler.search import (
        _stock_intrinsics_skipped,
        _unknown_rule_warnings_dropped,
    )
    from gta_core.scheduler.space import generic_space

    x = te.placeholder((1, 8, 16, 16), name="x")
    pooled = topi.nn.pool2d(x, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1), "max")
    mod = tvm.IRModule({"main": te.create_prim_func([x, pooled])})
    with _stock_intrinsics_skipped(True):  # as the search makes it: a CPU needs none
        context = ms.TuneContext(mod=mod, space_generator=generic_space(),
                                 target=tvm.target.Target({"kind": "llvm", "num-cores": 2}))
    with _unknown_rule_warnings_dropped(True):
        print("a line of GTA's own", file=sys.stderr, flush=True)
        kept = context.space_generator.generate_design_space(mod)
    err = capfd.readouterr().err
    assert "Unknown schedule rule" not in err and "a line of GTA's own" in err
    assert len(kept) == len(context.space_generator.generate_design_space(mod)) > 1
    assert "Unknown schedule rule" in capfd.readouterr().err  # what is dropped


def test_a_task_no_intrinsic_takes_races_its_unscheduled_program_first(tmp_path):
    import tvm
    from tvm import te, topi

    from gta_core.workloads.subgraph import SubgraphWorkload

    x = te.placeholder((1, 16, 16, 16), name="x")
    pooled = topi.nn.pool2d(x, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1), "max")
    func = te.create_prim_func([x, pooled])
    registry = default_registry()
    task = Task(SubgraphWorkload.from_function("pool", func), None, None,
                registry.target("avx512"))

    def searched():
        return TaskSearch(task, store=RecordStore(tmp_path), builder=None, runner=None,
                          cost_model=RankingModel(), rules=[], constraints=[],
                          settings=SearchSettings(start_samples=4))

    picked = searched().propose(3)
    assert len(picked) == 3
    assert len(picked[0].sch.trace.insts) == 0  # TVM's program as it is, no schedule
    tvm.ir.assert_structural_equal(picked[0].sch.mod["main"].body, func.body)
    assert all(len(c.sch.trace.insts) > 0 for c in picked[1:])  # then the space's samples
    assert len(searched().propose(1)) == 1  # one trial: the unscheduled program alone


def test_a_resumed_search_starts_from_its_records_draws(search):
    """Resumed, a task's search does not draw its recorded tiles again, and its fastest
    records are the parents of its first evolution."""
    first = search.propose(3)
    target = search.task.target.tvm_target()
    for candidate, latency in zip(first, [30.0, 10.0, None]):
        search.store.append(search.task.key, search.task.mapping_id, search._workload,
                            candidate.sch.trace, [latency * 1e-6] if latency else [],
                            target, candidate.args_info,
                            error=None if latency else "failed", correct=bool(latency),
                            latency_us=latency)
    registry = default_registry()
    resumed = TaskSearch(search.task, store=search.store, builder=None, runner=None,
                         cost_model=RankingModel(), rules=list(registry.rules.values()),
                         constraints=list(registry.constraints.values()),
                         settings=SearchSettings(start_samples=6))
    resumed._start()
    try:
        assert resumed._draws.drawn == search._draws.drawn  # the three draws, known
        assert sorted(resumed._draws.latency.values()) == [10.0, 30.0]  # the failure: none
        fastest = min(resumed._draws.latency, key=resumed._draws.latency.get)
        assert fastest in search._draws.drawn
    finally:
        resumed.close()
