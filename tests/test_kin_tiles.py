"""Tiles measured on one task are offered to its kin, the tasks whose sketch is the same
program but for its extents (gta_core.scheduler.kin_tiles), fitted to their extents; a
task's first batch starts from them, and its later populations carry them."""

from __future__ import annotations

from math import prod

import pytest
from searches import first_mapping_search
from tvm.s_tir import meta_schedule as ms

from gta_core.scheduler.kin_tiles import KinTiles, fitted
from gta_core.scheduler.search import SearchSettings

SMALL, LARGE = "gemm:M=64,N=64,K=64,dtype=float32", "gemm:M=128,N=96,K=256,dtype=float32"
OTHER = "conv2d:N=1,C=16,H=12,W=12,K=32,R=3,S=3,pad=1,dtype=float32"


class CountingKin(KinTiles):
    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    def offered(self, sketches, task):
        self.asked += 1
        return super().offered(sketches, task)


def _started(spec: str, kin: KinTiles, share: float = 0.5):
    search = first_mapping_search(spec, SearchSettings(start_samples=6, kin_share=share))
    search.kin = kin
    search._start()
    return search


@pytest.fixture()
def kin():
    return CountingKin()


@pytest.fixture()
def measured(kin):
    """The small GEMM's search, its first four candidates measured (one failed)."""
    search = _started(SMALL, kin)
    first = search.propose(4)
    search._draws.learn(first, [40.0, 10.0, 30.0, None])
    yield search
    search.close()


def test_a_fitted_draw_is_one_the_sketch_may_draw_keeping_the_inner_factors_that_fit(measured):
    large = _started(LARGE, KinTiles())
    try:
        for k, tiles in measured._draws.latency:
            sketch = large._draws.sketches[k]
            assert sketch.instructions == measured._draws.sketches[k].instructions
            got = fitted(sketch, tiles)
            grown = 0
            for site, factors, donor in zip(sketch.sites, got, tiles):
                assert factors in site.choices and prod(factors) == site.extent
                if site.extent % prod(donor) == 0:  # only the outermost factor grows
                    assert factors[1:] == donor[1:]
                    grown += 1
            assert 0 < grown < len(sketch.sites)  # M and K grew by whole tilings, N did not
            assert fitted(measured._draws.sketches[k], tiles) == tiles  # its own extents
    finally:
        large.close()


def test_each_kin_offers_its_fastest_draws_first_never_a_task_its_own(measured, kin):
    draws = measured._draws
    assert list(kin.offered(draws.sketches, measured.task.key)) == []  # its own, not offered
    large = _started(LARGE, KinTiles())
    try:
        offers = list(kin.offered(large._draws.sketches, large.task.key))
        fastest = sorted(draws.latency, key=draws.latency.get)[:KinTiles.per_task]
        assert offers == [(k, fitted(large._draws.sketches[k], tiles)) for k, tiles in fastest]
    finally:
        large.close()


def test_tasks_of_another_program_are_not_kin(measured, kin):
    conv = _started(OTHER, KinTiles())
    try:
        assert list(kin.offered(conv._draws.sketches, conv.task.key)) == []
    finally:
        conv.close()


def test_a_first_batch_takes_its_share_from_the_kins_fastest_then_draws_fresh(measured, kin):
    large = _started(LARGE, kin)
    try:
        picked = large.propose(4)
        draws = [large._draws._proposed[id(c)][1] for c in picked]
        offers = list(kin.offered(large._draws.sketches, large.task.key))
        assert draws[:2] == offers[:2]  # half the batch: the two offers, fastest first
        assert len(set(draws)) == 4 and not set(draws[2:]) & set(offers)
        again = [large._draws._proposed[id(c)][1] for c in large.propose(2)]
        assert not set(again) & set(draws)  # an offer is replayed once
    finally:
        large.close()


def test_with_no_share_the_kin_are_not_asked(measured, kin):
    asked = kin.asked
    large = _started(LARGE, kin, share=0.0)
    try:
        assert len(large.propose(4)) == 4
        assert kin.asked == asked
    finally:
        large.close()


def test_a_resumed_task_offers_its_records_to_its_kin(measured, kin):
    """Draws a task remembers from its records (a resumed run) are published too."""
    again = KinTiles()
    draws = measured._draws
    replays = []
    for (k, tiles), latency in draws.latency.items():
        sch = draws.sketches[k].replay(measured._context.mod, tiles, [], seed=1)
        replays.append((sch.trace, latency))
    resumed = _started(SMALL, again)
    try:
        resumed._draws.remember(replays)
        large = _started(LARGE, KinTiles())
        try:
            fastest = min(draws.latency, key=draws.latency.get)
            assert list(again.offered(large._draws.sketches, large.task.key))[0] == (
                fastest[0], fitted(large._draws.sketches[fastest[0]], fastest[1]))
        finally:
            large.close()
    finally:
        resumed.close()


def test_a_warm_search_ranks_the_kins_draws_with_its_own(measured, kin, monkeypatch):
    large = _started(LARGE, kin, share=0.5)
    try:
        large._draws.learn(large.propose(1), [50.0])  # its start: the kin's fastest
        replayed, real = [], large._draws._replayed

        def recorded(draws, mod, limit=None):
            replayed.extend(draws)
            return real(draws, mod, limit)

        monkeypatch.setattr(large._draws, "_replayed", recorded)
        large._draws.evolved(large._context, 2, ms.cost_model.RandomModel(), population=16,
                             eps_greedy=0.0)
        offers = list(kin.offered(large._draws.sketches, large.task.key))
        assert offers[1] in replayed  # the kin's second fastest joined the population
        assert offers[0] not in replayed  # its fastest was the start, measured already
    finally:
        large.close()


def test_every_task_of_a_run_shares_one_kin(monkeypatch):
    """run_schedule hands the searches of all subgraphs one KinTiles."""
    from gta_core.scheduler import dual

    made = []

    class Recorded:
        def __init__(self, task, **kwargs):
            made.append(kwargs["kin"])
            self.task, self.outcome = task, None

        def close(self):
            pass

    monkeypatch.setattr(dual, "TaskSearch", Recorded)
    monkeypatch.setattr(dual, "_state_from_store", lambda subgraph, store: dual.SubgraphState(
        subgraph.name, subgraph.weight, []))
    task = type("Task", (), {"workload": None})
    subgraphs = [dual.Subgraph(name, 1.0, [task(), task()]) for name in ("a", "b")]
    monkeypatch.setattr(dual, "Reference", lambda workload: None)
    dual.run_schedule(subgraphs, 0, store=None, builder=None, runner=None, cost_model=None,
                      rules=[], constraints=[])
    assert len(made) == 4 and all(isinstance(k, KinTiles) for k in made)
    assert len({id(k) for k in made}) == 1
