"""Generation rules this pack adds."""

from __future__ import annotations

from math import prod

from gta_core.generation import GenerationRule, ScheduleContext
from tvm.tirx import IterVar


class ReductionFactor(GenerationRule):
    """Split a long reduction across cores (rfactor) when the output alone cannot fill them.

    A GEMV with 4 outputs and K=4096 has 4 parallel iterations for the whole
    machine; with rfactor, each core sums its own slice of K and a short
    final reduction adds the slices.
    """

    name = "reduction-factor"
    min_parallel_per_core = 16  # spatial iterations per core below which cores starve
    min_reduction = 256

    def applies(self, context: ScheduleContext) -> bool:
        cores = context.target.resources.cores
        if context.target.kind != "cpu" or cores is None:
            return False
        spatial, reduction = _extents(context)
        loops = context.sch.get_loops(context.sch.get_sblock(context.block))
        return (
            len(reduction) == 1
            and int(context.sch.get(loops[-1]).extent) == reduction[0]  # still innermost
            and prod(spatial) < self.min_parallel_per_core * cores
            and reduction[0] >= self.min_reduction
        )

    def apply(self, context: ScheduleContext) -> None:
        sch = context.sch
        block = sch.get_sblock(context.block)
        loop = sch.get_loops(block)[-1]
        outer, inner = sch.split(loop, factors=sch.sample_perfect_tile(loop, n=2,
                                                                       max_innermost_factor=64))
        partial = sch.rfactor(outer, factor_axis=0)
        sch.parallel(sch.get_loops(partial)[0])


def _extents(context: ScheduleContext) -> tuple[list[int], list[int]]:
    """Extents of the main block's spatial and reduction loops (loops in block-var order)."""
    sch = context.sch
    block = sch.get_sblock(context.block)
    spatial, reduction = [], []
    for iter_var in sch.get(block).iter_vars:
        extent = int(iter_var.dom.extent)
        (reduction if iter_var.iter_type == IterVar.CommReduce else spatial).append(extent)
    return spatial, reduction
