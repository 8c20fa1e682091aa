"""What a pruning constraint is: a check that says why a candidate cannot fit."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from ..generation import ScheduleContext
    from ..models import MappingCandidate, Target


class Constraint(ABC):
    """One resource constraint; subclasses set ``name`` and write a docstring."""

    name: ClassVar[str]

    @abstractmethod
    def applies(self, target: Target) -> bool:
        """Whether ``target`` declares the resources this constraint checks."""

    @abstractmethod
    def check(self, context: ScheduleContext) -> str | None:
        """The reason ``context.sch`` cannot run well on the target, or None."""

    def check_mapping(self, candidate: MappingCandidate, target: Target) -> str | None:
        """The reason a mapping candidate cannot be used at all, or None (the default).

        Checked once per candidate when mappings are enumerated, before any
        schedule exists; most constraints only look at schedules.
        """
        return None

