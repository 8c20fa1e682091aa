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
    reads_tiles_only: ClassVar[bool] = False
    """True where :meth:`check` reads nothing of the program but its tile loops
    (``context.tiled_loops()``) and what the context was made for: the search then asks it
    of tile sizes it drew, before replaying them into a program (``context.sch`` None), so
    samples are drawn inside the constraint instead of built and rejected."""

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

