"""Apply generation rules to a realised mapping: the design spaces (sketches) of one task."""

from __future__ import annotations

from collections.abc import Iterable

from .rule import GenerationRule, ScheduleContext


def ordered(rules: Iterable[GenerationRule]) -> list[GenerationRule]:
    """Rules in stage order; registration order breaks ties (sorted is stable)."""
    return sorted(rules, key=lambda rule: rule.stage)


def apply_rules(context: ScheduleContext, rules: Iterable[GenerationRule],
                left_out: dict[tuple[str, str], str] | None = None) -> list[ScheduleContext]:
    """Every sketch the rules make from ``context``: a rule may fork alternatives.

    With ``left_out`` (shared by one task's calls), a rule that raises is left out whole
    -- the sketches go on as if it were not loaded -- and recorded there as
    ``("rule", name) -> cause``; a rule already in it is skipped. Without it a rule's
    exception propagates (a rule's own tests want to see it).
    """
    contexts = [context]
    for rule in ordered(rules):
        if left_out is not None and ("rule", rule.name) in left_out:
            continue
        try:
            contexts = _apply(rule, contexts, isolated=left_out is not None)
        except Exception as exc:  # noqa: BLE001 - a plugin's rule must not stop the tuning
            if left_out is None:
                raise
            left_out[("rule", rule.name)] = describe(exc)
    return contexts


def _apply(rule: GenerationRule, contexts: list[ScheduleContext], isolated: bool
           ) -> list[ScheduleContext]:
    after = []
    for current in contexts:
        if not rule.applies(current):
            after.append(current)
            continue
        # Isolated, the rule works on a copy: one that raises half-way leaves the sketch
        # as it was before the rule.
        subject = current.fork() if isolated else current
        forks = rule.apply(subject)
        after.extend(forks if forks else [subject])
    return after


def describe(exc: BaseException) -> str:
    """An exception in one line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
