"""A zero padding the main block reads in place, computed per parallel tile.

A depthwise or FMA convolution reads its padded input as it is (the packing copy
inlined: :class:`~.cpu.InlineContiguousOperands`), so the padding is a pass of its own
over the whole input before the tiles run: in a model, a write and a read of a tensor
larger than the L2 (MobileNet-V2's first depthwise layer pads 1.66 MB). Computed under
the parallel tile loop instead, each core pads the window its tile reads (the halo read
twice). A tile can still be large (two tiles over MobileNet-V2's 112x112x96 stride-2
layer: 2.5 MB each), so a third sketch pads per strip of output rows within the tile,
under the cache loop of the second-to-last window axis (a depthwise layer's rows of
its output: the input rows the strip's taps read, across the tile's width), a buffer
that stays in L1 or L2 at the cost of the rows the strips share.
"""

from __future__ import annotations

from collections import Counter

from ..mapping.access import workload_computation
from ..mapping.stages import is_packing_stage
from .cpu import VectorizePacking, _is_cpu, movable_stages
from .rule import GenerationRule, ScheduleContext
from .stage_lanes import MARK, MAX_LANES


class PaddingAtTile(GenerationRule):
    """Fork sketches where each zero padding read in place (still one guarded copy, not
    split into a fill and a copy, whose buffer would have two writers) is computed under
    the last S0 loop (per tile) or an S1 loop (per strip of rows), marked for the lanes
    postprocessor (:class:`~gta_core.scheduler.vectorize_lanes.VectorizeMarkedLanes`); the
    search compares them with the padding done whole."""

    name = "padding-at-tile"
    stage = 45  # after the parallel loop exists, so the padding runs inside it

    def applies(self, context: ScheduleContext) -> bool:
        return (_is_cpu(context) and bool(context.levels.get("S0"))
                and movable_stages(context) and bool(self._paddings(context)))

    def apply(self, context: ScheduleContext) -> list[ScheduleContext]:
        sketches = [context]
        for where, loop in (("per-tile", lambda c: c.levels["S0"][-1]),
                            ("per-row", self._row_loop)):
            fork = context.fork()
            at = loop(fork)
            if at is None:
                continue
            for block in self._paddings(fork):
                fork.sch.compute_at(block, at)
                fork.sch.annotate(block, MARK, MAX_LANES)
            fork.notes["padding"] = where
            sketches.append(fork)
        return sketches

    @staticmethod
    def _row_loop(context: ScheduleContext):
        """The cache loop of the second-to-last window axis (a spatial axis that an
        input's index adds a reduction axis to: ``y`` of ``y * s + ry``), or None: with
        fewer than two such axes a strip is the register tile's own window; and not when
        a reduction loop is outside the cache loops (no accumulator sketch), where the
        strip would be padded again at each of its steps."""
        if not context.notes.get("accumulator"):
            return None
        op = workload_computation(context.workload)
        kinds = {a.name: a.kind for a in op.axes}
        windows = {v for access in op.inputs for index in access.indices
                   for v, c in index if c and kinds.get(v) == "spatial"
                   and any(c2 and kinds.get(w) == "reduce" for w, c2 in index)}
        rows = [loop for loop, axis in zip(context.levels["S1"],
                                           context.notes.get("spatial_axes", []))
                if axis in windows]
        return rows[-2] if len(rows) >= 2 else None

    @staticmethod
    def _paddings(context: ScheduleContext) -> list:
        sch = context.sch
        producers = sch.get_producers(sch.get_sblock(context.block))
        writers = Counter(sch.get(b).writes[0].source.name for b in producers)
        return [b for b in producers if writers[sch.get(b).writes[0].source.name] == 1
                and not is_packing_stage(sch.get(b).name_hint)  # packing-at-tile's to move
                and VectorizePacking._padding_read_in_place(context, b)]
