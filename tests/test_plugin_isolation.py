"""A plugin's rule, constraint or cost model at tuning time: used when asked for, and a
broken one named and left out while tuning goes on."""

from __future__ import annotations

import json
import types

import pytest

from gta_core.cli import main
from gta_core.generation.engine import apply_rules
from gta_core.plugins import load
from gta_core.sdk import Constraint, CostModelEntry, GenerationRule, ScheduleContext, hookimpl
from gta_core.tuning import tune

SPEC = "gemm:M=64,N=64,K=64,dtype=float32"


class BrokenRule(GenerationRule):
    """Annotates a loop, then raises: a plugin's bug half-way through a sketch."""

    name = "broken-rule"
    stage = 25

    def applies(self, context: ScheduleContext) -> bool:
        return context.target.kind == "cpu"

    def apply(self, context: ScheduleContext):
        sch = context.sch
        sch.annotate(sch.get_loops(sch.get_sblock(context.block))[0], "half_done", 1)
        raise RuntimeError("boom in the rule")


class BrokenConstraint(Constraint):
    """Raises whenever it checks a schedule."""

    name = "broken-constraint"

    def applies(self, target) -> bool:
        return target.kind == "cpu"

    def check(self, context: ScheduleContext) -> str | None:
        raise ValueError("boom in the constraint")


MADE: list[str] = []


def _counting_random_model():
    from tvm.s_tir.meta_schedule.cost_model import RandomModel

    MADE.append("random")
    return RandomModel()


def _broken_pack() -> types.ModuleType:
    module = types.ModuleType("broken_pack")

    @hookimpl
    def gta_register_rules(register):
        register(BrokenRule())

    @hookimpl
    def gta_register_constraints(register):
        register(BrokenConstraint())

    @hookimpl
    def gta_register_cost_models(register):
        register(CostModelEntry(name="counting-random", description="random scores",
                                factory=_counting_random_model))

    module.gta_register_rules = gta_register_rules
    module.gta_register_constraints = gta_register_constraints
    module.gta_register_cost_models = gta_register_cost_models
    return module


def test_a_rule_that_raises_leaves_the_sketch_as_it_was(tmp_path):
    from tvm import s_tir

    from gta_core.api import load_workload
    from gta_core.plugins import default_registry

    workload = load_workload(SPEC)
    sch = s_tir.Schedule(workload.prim_func())
    context = ScheduleContext(sch=sch, block=workload.main_block,
                              target=default_registry().target("avx512"), workload=workload)
    before = str(sch.mod)
    left_out: dict = {}
    [sketch] = apply_rules(context, [BrokenRule()], left_out)
    assert str(sketch.sch.mod) == before
    assert left_out == {("rule", "broken-rule"): "RuntimeError: boom in the rule"}
    with pytest.raises(RuntimeError, match="boom"):  # not isolated: a rule's own tests see it
        apply_rules(context.fork(), [BrokenRule()])


def test_a_tune_names_and_leaves_out_a_broken_rule_and_constraint_and_uses_the_cost_model(
        tmp_path):
    registry = load(extra=[("broken-pack", _broken_pack())])
    MADE.clear()
    report = tune([SPEC], "avx512", 4, tmp_path / "db", registry=registry,
                  cost_model="counting-random")
    [task] = report.tasks
    assert task.correct and task.latency_us
    assert MADE == ["random"]  # the plugin's model ranked the candidates
    left = {(entry.kind, entry.name): entry for entry in task.left_out}
    assert set(left) == {("rule", "broken-rule"), ("constraint", "broken-constraint")}
    assert left[("rule", "broken-rule")].plugin == "broken-pack"
    assert "boom in the rule" in left[("rule", "broken-rule")].cause
    assert "boom in the constraint" in left[("constraint", "broken-constraint")].cause
    assert left[("rule", "broken-rule")].mappings
    assert "left_out" in json.loads(report.model_dump_json())["tasks"][0]


def test_an_unknown_cost_model_is_refused_with_the_loaded_ones(tmp_path, capsys):
    code = main(["tune", SPEC, "--target", "avx512", "--trials", "1", "--db",
                 str(tmp_path / "db"), "--cost-model", "nope"])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown cost model 'nope'" in err and "xgb" in err
    assert not (tmp_path / "db").exists() or not any((tmp_path / "db").iterdir())


def _raising_model():
    from tvm.s_tir.meta_schedule.cost_model import RandomModel

    class Raising(RandomModel):  # a working model whose ranking breaks
        def predict(self, context, candidates):
            raise ZeroDivisionError("the model's bug")

    return Raising()


def test_a_cost_model_that_raises_is_named_and_replaced_while_tuning_goes_on(tmp_path):
    module = types.ModuleType("raising_model")

    @hookimpl
    def gta_register_cost_models(register):
        register(CostModelEntry(name="raising", factory=_raising_model))

    module.gta_register_cost_models = gta_register_cost_models
    registry = load(extra=[("model-pack", module)])
    # past its start (ranked by the tile estimate), a mapping's search asks the model
    report = tune([SPEC], "avx512", 12, tmp_path / "db", registry=registry, cost_model="raising")
    assert report.tasks[0].correct
    assert report.cost_model == "raising"
    assert report.cost_model_failure == "predict: ZeroDivisionError: the model's bug"
