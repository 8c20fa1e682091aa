"""A rule pack: one generation rule, for every CPU target loaded beside it.

A rule pack registers no target: its rules run on the design spaces of whichever targets
are installed (``gta check-plugin gta-unroll-pack`` exercises them on each).
"""

from __future__ import annotations

from gta_core.sdk import GenerationRule, ScheduleContext, hookimpl

GTA_API_VERSION = "1.0"


class UnrollReductionTile(GenerationRule):
    """Let LLVM unroll the inner reduction tile (R1) up to a sampled step: 0, 8 or 32.

    The core unrolls the register tile (S2) fully; the reduction loop around it stays a
    loop, paying a compare and a branch per intrinsic-tile step. A sampled step leaves the
    choice to measurement, as MetaSchedule does for its own unrolling.
    """

    name = "unroll-reduction-tile"
    stage = 55  # after the core's tiling (20) and its register-tile unrolling (50)
    steps = (0, 8, 32)

    def applies(self, context: ScheduleContext) -> bool:
        return context.target.kind == "cpu" and bool(context.levels.get("R1"))

    def apply(self, context: ScheduleContext) -> None:
        sch = context.sch
        step = sch.sample_categorical(list(self.steps), [1 / len(self.steps)] * len(self.steps))
        sch.annotate(context.levels["R1"][-1], "pragma_auto_unroll_max_step", step)
        sch.annotate(context.levels["R1"][-1], "pragma_unroll_explicit", 1)


@hookimpl
def gta_register_rules(register):
    register(UnrollReductionTile())
