"""A task's search: its first proposal samples the design space (no evolutionary search),
ranked by their estimated time (or by the cost model once it is warm, where a sample has no
estimate); later proposals evolve."""

from __future__ import annotations

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
        scores = np.array([hash(str(c.sch.trace)) % 1000 for c in candidates], dtype=float)
        self.asked.append((candidates, scores))
        return scores


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


def test_a_first_proposal_samples_and_keeps_the_best_estimated(search, evolutions):
    from gta_core.scheduler.tile_cost import estimated_cycles

    drawn = []
    real = search._ranked
    search._ranked = lambda context, samples: drawn.extend(samples) or real(context, samples)
    picked = search.propose(2)
    assert len(picked) == 2 and not evolutions
    assert len(drawn) == 8  # four times the trials asked for, as that is more than 6
    task = search.task
    cycles = {str(c.sch.trace): estimated_cycles(c.sch, task.workload, task.mapping,
                                                 task.intrinsic, task.target.resources)
              for c in drawn}
    assert [cycles[str(c.sch.trace)] for c in picked] == sorted(cycles.values())[:2]
    assert not search.cost_model.asked  # the learned model has seen nothing of this workload
    assert search._pending == []  # the other samples are not measured later


def test_samples_without_an_estimate_are_ranked_by_the_warm_cost_model(search, monkeypatch):
    monkeypatch.setattr("gta_core.scheduler.search.estimated_cycles", lambda *a: None)
    picked = search.propose(1)
    [(samples, scores)] = search.cost_model.asked
    assert len(samples) == 6  # start_samples, as it is more than four times the trials
    assert hash(str(picked[0].sch.trace)) % 1000 == max(scores)


def test_a_task_with_records_evolves(search, evolutions):
    search.propose(1)
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

    from gta_core.scheduler.search import _unknown_rule_warnings_dropped
    from gta_core.scheduler.space import generic_space

    x = te.placeholder((1, 8, 16, 16), name="x")
    pooled = topi.nn.pool2d(x, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1), "max")
    mod = tvm.IRModule({"main": te.create_prim_func([x, pooled])})
    context = ms.TuneContext(mod=mod, target=tvm.target.Target({"kind": "llvm", "num-cores": 2}),
                             space_generator=generic_space())
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
