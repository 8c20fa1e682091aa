"""Run a plugin's rules and constraints on real design spaces, as tuning would.

For the conformance kit: each loaded target's intrinsics, each on the first sample workload
it maps (``gta_core.intrinsic_check.SAMPLE_SPECS``), give a task; its design space is
generated with every loaded rule (the plugin's watched, to see where they apply), with the
same isolation as tuning, and the plugin's constraints judge every sketch.
"""

from __future__ import annotations

from typing import Any

from .generation.engine import describe
from .generation.rule import GenerationRule, ScheduleContext

Result = tuple[str, str]  # (status, detail)


class _Watched(GenerationRule):
    """A rule that notes whether it applied (``hit``), and otherwise is the rule."""

    def __init__(self, rule: GenerationRule) -> None:
        self.rule, self.name, self.stage = rule, rule.name, rule.stage
        self.hit, self.applied = False, 0  # in the current design space; in how many

    def applies(self, context: ScheduleContext) -> bool:
        applies = self.rule.applies(context)
        self.hit = self.hit or bool(applies)
        return applies

    def apply(self, context: ScheduleContext):
        return self.rule.apply(context)


def exercise(registry, objects: dict[tuple[str, str], Any]) -> dict[tuple[str, str], Result]:
    """``(kind, name) -> (status, detail)`` for each rule and constraint of ``objects``."""
    import tvm

    from .scheduler.space import MappingSpace

    watched = {name: _Watched(obj) for (kind, name), obj in objects.items() if kind == "rule"}
    rules = [watched.get(rule.name, rule) for rule in registry.rules.values()]
    constraints = {name: obj for (kind, name), obj in objects.items() if kind == "constraint"}
    left_out: dict[tuple[str, str], str] = {}
    judged = {name: [0, 0] for name in constraints}  # sketches checked, rejected
    spaces = 0
    for task in _sample_tasks(registry):
        space = MappingSpace(task, rules, [], left_out=left_out)
        sketches = space.generate_design_space(tvm.IRModule({"main": task.workload.prim_func()}))
        spaces += 1
        for rule in watched.values():
            rule.applied, rule.hit = rule.applied + rule.hit, False
        for name, constraint in constraints.items():
            _judge(constraint, task, sketches, judged[name], left_out)
    results: dict[tuple[str, str], Result] = {}
    for name, rule in watched.items():
        results[("rule", name)] = _result(left_out.get(("rule", name)), spaces, rule.applied,
                                          f"applied in {rule.applied} of {spaces} design spaces")
    for name, (checked, rejected) in judged.items():
        results[("constraint", name)] = _result(
            left_out.get(("constraint", name)), spaces, checked,
            f"judged {checked} sketches of {spaces} design spaces, rejected {rejected}")
    return results


def _result(raised: str | None, spaces: int, used: int, detail: str) -> Result:
    if raised is not None:
        return "failed", f"raised {raised}"
    if not spaces:
        return "skipped", "no loaded target has an intrinsic mapping a sample workload"
    if not used:
        return "skipped", f"did not apply to any of {spaces} sample design spaces"
    return "passed", detail


def _judge(constraint, task, sketches: list, counts: list[int],
           left_out: dict[tuple[str, str], str]) -> None:
    key = ("constraint", constraint.name)
    try:
        if key in left_out or not constraint.applies(task.target):
            return
        for sch in sketches:
            context = ScheduleContext(sch=sch, block=task.workload.main_block,
                                      target=task.target, workload=task.workload,
                                      intrinsic=task.intrinsic, mapping=task.mapping)
            reason = constraint.check(context)
            if reason is not None and not isinstance(reason, str):
                raise TypeError(f"check returned {type(reason).__name__}, not a str or None")
            counts[0] += 1
            counts[1] += reason is not None
    except Exception as exc:  # noqa: BLE001 - reported as the constraint's failure
        left_out[key] = describe(exc)


def _sample_tasks(registry):
    """One task per loaded intrinsic: its first kept mapping of the first sample it maps."""
    from .intrinsic_check import sample_mappings
    from .scheduler.space import Task

    for target in registry.targets.values():
        for intrinsic in registry.intrinsics_for(target.name):
            for workload, candidate in sample_mappings(intrinsic, target, registry)[:1]:
                yield Task(workload, candidate, intrinsic, target)
