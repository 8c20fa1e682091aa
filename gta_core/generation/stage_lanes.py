"""Stages moved under the tile loops, vectorised over their contiguous lanes.

A stage moved under the tile loops (the accumulator's copy-out, a write-back, an
epilogue run per tile, a padding computed per tile) gets new loops that nothing
vectorises but LLVM, and LLVM does it poorly where an epilogue is fused in: MobileNet-V2's
first depthwise layer (112x112x32, bias and ReLU6 fused) took 193 us a call, of which
137 us were that copy-out, and 58 us with its 16 lanes vectorised by TVM.

How many loops the moved stage has depends on the sampled tile sizes (unit loops
vanish), and a trace whose queries return a decision-dependent number of loops cannot
be replayed. So rules only mark the stages (:data:`MARK`: :class:`MarkWriteBackLanes`
here, :class:`~.padding_at_tile.PaddingAtTile`), and a postprocessor, which runs on each
replayed program, vectorises what is marked
(:class:`~gta_core.scheduler.vectorize_lanes.VectorizeMarkedLanes`): the innermost loop,
where every access steps through the last dimension of its buffer by one element per
iteration or not at all.
"""

from __future__ import annotations

from .cpu import VectorizePacking, _is_cpu
from .epilogue import _elementwise
from .rule import GenerationRule, ScheduleContext

MARK = "gta.vector_lanes"  # block annotation: vectorise the innermost loop, up to these lanes
MAX_LANES = VectorizePacking.max_lanes  # as many lanes as a packing stage's vector


class MarkWriteBackLanes(GenerationRule):
    """Mark the stages after the main block, its accumulator's copy-out, and the stages
    after that (each elementwise: a write-back or an epilogue left as its own block) for
    :class:`~gta_core.scheduler.vectorize_lanes.VectorizeMarkedLanes`."""

    name = "mark-write-back-lanes"
    stage = 36  # after fuse-epilogue: the epilogue is in the stage it was inlined into

    def applies(self, context: ScheduleContext) -> bool:
        return _is_cpu(context)

    def apply(self, context: ScheduleContext) -> None:
        sch = context.sch
        seen = set()
        stages = sch.get_consumers(sch.get_sblock(context.block))
        while stages:
            block = stages.pop()
            name = sch.get(block).name_hint
            if name in seen or not _elementwise(sch, block):
                continue
            seen.add(name)
            sch.annotate(block, MARK, MAX_LANES)
            stages += sch.get_consumers(block)
