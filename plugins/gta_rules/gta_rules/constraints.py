"""Pruning constraints this pack adds."""

from __future__ import annotations

from math import ceil

from gta_core.sdk import Constraint, ScheduleContext, Target, parallel_extent


class ParallelBalance(Constraint):
    """Reject CPU schedules whose parallel loops leave cores idle.

    With E parallel iterations on C cores the last round runs E mod C of
    them, so the machine does ceil(E/C)*C/E - 1 extra rounds' worth of idle
    time; more than ``max_idle`` of it is rejected before anything is built.
    (The core's ``parallel-extent`` already rejects fewer iterations than cores.)
    """

    name = "parallel-balance"
    max_idle = 0.25

    def applies(self, target: Target) -> bool:
        return target.kind == "cpu" and (target.resources.cores or 1) > 1

    def check(self, context: ScheduleContext) -> str | None:
        cores = context.target.resources.cores or 1
        extent = parallel_extent(context.sch)
        if extent == 0:
            return None
        idle = ceil(extent / cores) * cores / extent - 1
        if idle > self.max_idle:
            return (f"{extent} parallel iterations on {cores} cores leave {idle:.0%} idle "
                    f"(bound {self.max_idle:.0%})")
        return None
