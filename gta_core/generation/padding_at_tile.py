"""A zero padding the main block reads in place, computed per parallel tile.

A depthwise or FMA convolution reads its padded input as it is (the packing copy
inlined: :class:`~.cpu.InlineContiguousOperands`), so the padding is a pass of its own
over the whole input before the tiles run: in a model, a write and a read of a tensor
larger than the L2 (MobileNet-V2's first depthwise layer pads 1.66 MB). Computed under
the parallel tile loop instead, each core pads the window its tile reads (the halo read
twice) into a buffer that stays in L1.
"""

from __future__ import annotations

from collections import Counter

from ..mapping.stages import is_packing_stage
from .cpu import PER_TILE_ONLY, VectorizePacking, _is_cpu, movable_stages
from .rule import GenerationRule, ScheduleContext
from .stage_lanes import MARK, MAX_LANES


class PaddingAtTile(GenerationRule):
    """Fork a sketch where each zero padding read in place (still one guarded copy, not
    split into a fill and a copy, whose buffer would have two writers) is computed under
    the last S0 loop, marked for the lanes postprocessor
    (:class:`~gta_core.scheduler.vectorize_lanes.VectorizeMarkedLanes`); the search
    compares it with the padding done whole, but for a depthwise layer's padding
    (:meth:`~.cpu.VectorizePacking.padded_per_tile`): then only this sketch is kept."""

    name = "padding-at-tile"
    stage = 45  # after the parallel loop exists, so the padding runs inside it

    def applies(self, context: ScheduleContext) -> bool:
        return (_is_cpu(context) and bool(context.levels.get("S0"))
                and movable_stages(context) and bool(self._paddings(context)))

    def apply(self, context: ScheduleContext) -> list[ScheduleContext]:
        only = context.notes.get(PER_TILE_ONLY, [])
        whole = not any(context.sch.get(b).name_hint in only for b in self._paddings(context))
        fork = context.fork()
        tile = fork.levels["S0"][-1]
        for block in self._paddings(fork):
            fork.sch.compute_at(block, tile)
            fork.sch.annotate(block, MARK, MAX_LANES)
        fork.notes["padding"] = "per-tile"
        return [context, fork] if whole else [fork]

    @staticmethod
    def _paddings(context: ScheduleContext) -> list:
        sch = context.sch
        producers = sch.get_producers(sch.get_sblock(context.block))
        writers = Counter(sch.get(b).writes[0].source.name for b in producers)
        return [b for b in producers if writers[sch.get(b).writes[0].source.name] == 1
                and not is_packing_stage(sch.get(b).name_hint)  # packing-at-tile's to move
                and VectorizePacking._padding_read_in_place(context, b)]
