"""What a generation rule is.

A rule is a small object: a name, a docstring saying what it does, a
condition and an apply step, as Ansor's sketch rules are. Rules sample their
decisions with MetaSchedule's sampling instructions (``sch.sample_perfect_tile``,
``sch.sample_categorical``...), so one applied rule sequence is a design space
whose random decisions a trace records and replays.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from ..models import Intrinsic, MappingCandidate, Target
    from ..workloads import Workload


@dataclass
class ScheduleContext:
    """What rules and constraints see: a schedule and what it was made for."""

    sch: object  # tvm.s_tir.Schedule
    block: str  # name of the operator's main block
    target: Target
    workload: Workload | None = None
    intrinsic: Intrinsic | None = None
    mapping: MappingCandidate | None = None
    notes: dict[str, object] = field(default_factory=dict)


class GenerationRule(ABC):
    """One generation rule; subclasses set ``name`` and write a docstring."""

    name: ClassVar[str]

    @abstractmethod
    def applies(self, context: ScheduleContext) -> bool:
        """Whether the rule has something to do on ``context``."""

    @abstractmethod
    def apply(self, context: ScheduleContext) -> None:
        """Transform ``context.sch`` in place, sampling decisions as needed."""

