"""What a pruning constraint is: a check that says why a candidate cannot fit."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from ..generation import ScheduleContext
    from ..models import Target


class Constraint(ABC):
    """One resource constraint; subclasses set ``name`` and write a docstring."""

    name: ClassVar[str]

    @abstractmethod
    def applies(self, target: Target) -> bool:
        """Whether ``target`` declares the resources this constraint checks."""

    @abstractmethod
    def check(self, context: ScheduleContext) -> str | None:
        """The reason ``context.sch`` cannot run well on the target, or None."""

