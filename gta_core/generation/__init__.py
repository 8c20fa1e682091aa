"""Generation rules: realised mapping -> design space (search space)."""

from .rule import GenerationRule, ScheduleContext

__all__ = ["GenerationRule", "ScheduleContext"]
