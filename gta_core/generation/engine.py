"""Apply generation rules to a realised mapping: the design spaces (sketches) of one task."""

from __future__ import annotations

from collections.abc import Iterable

from .rule import GenerationRule, ScheduleContext


def ordered(rules: Iterable[GenerationRule]) -> list[GenerationRule]:
    """Rules in stage order; registration order breaks ties (sorted is stable)."""
    return sorted(rules, key=lambda rule: rule.stage)


def apply_rules(context: ScheduleContext, rules: Iterable[GenerationRule]
                ) -> list[ScheduleContext]:
    """Every sketch the rules make from ``context``: a rule may fork alternatives."""
    contexts = [context]
    for rule in ordered(rules):
        after = []
        for current in contexts:
            if not rule.applies(current):
                after.append(current)
                continue
            forks = rule.apply(current)
            after.extend(forks if forks else [current])
        contexts = after
    return contexts
