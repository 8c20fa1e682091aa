"""Generation rules this pack adds."""

from __future__ import annotations

from collections import Counter

from gta_core.sdk import GenerationRule, ScheduleContext, movable_stages, stage_role


class PackingAtTile(GenerationRule):
    """Pack operands per tile: each packing stage also computed inside the tile loops.

    The core packs every operand whole, before the computation. For a large
    convolution the packed (im2col-like) activation is many times the input;
    packing it per parallel tile (under the last S0 loop) or per reduction
    tile (under the last R0 loop) keeps it in cache and lets each core pack
    its own slice. Each placement is its own design space, beside the core's
    whole-tensor packing, so the search compares them by measurement. A model's
    constant weights stay packed whole: a compiled model packs them once, at compile
    time, which it can only do outside the tile loops.
    """

    name = "packing-at-tile"
    stage = 45  # after the parallel loop exists, so the packing can run inside it
    levels = ("S0", "R0")

    def applies(self, context: ScheduleContext) -> bool:
        return (context.target.kind == "cpu" and movable_stages(context)
                and bool(self._packing(context))
                and any(context.levels.get(level) for level in self.levels))

    def apply(self, context: ScheduleContext) -> list[ScheduleContext]:
        sketches = [context]
        for level in self.levels:
            if not context.levels.get(level):
                continue
            fork = context.fork()
            for block in self._packing(fork):
                fork.sch.compute_at(block, fork.levels[level][-1])
            fork.notes["packing"] = level
            sketches.append(fork)
        return sketches

    @staticmethod
    def _packing(context: ScheduleContext) -> list:
        sch = context.sch
        producers = sch.get_producers(sch.get_sblock(context.block))
        writers = Counter(sch.get(b).writes[0].source.name for b in producers)
        # A stage split into a zero fill and a copy (vectorize-packing) has two writers,
        # and compute_at moves only a buffer's one writer.
        return [b for b in producers if stage_role(sch.get(b).name_hint) == "packing"
                and writers[sch.get(b).writes[0].source.name] == 1
                and not context.reads_constant(b)]
