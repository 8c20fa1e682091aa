"""A mapping's cost before any trial: what the dual-task scheduler starts by.

A mapping's realised program (before any generation rule) says what every
program in its space must do: ``calls`` of the intrinsic over the padded
iteration space, and ``staged bytes`` written by its other stages (the
padded, re-laid-out and im2col copies of its operands, the write-back or crop
of its output), but for the copies the generation rules read in place
(``inline-contiguous-operands``: a broadcast scalar, a contiguous row) and the packing of
a model's constant weights, which the compiled model runs once. Its
prior is the cycles of a roofline that issues one intrinsic call per cycle
and stages :data:`STAGED_BYTES_PER_CYCLE` bytes per cycle. Absolute values
mean little; within a workload the ratios rank the mappings, and the
scheduler starts the ones within reach of the best first.
"""

from __future__ import annotations

import math

# Staging copies are gathers with index arithmetic, seldom vectorised: about two bytes a
# cycle, fitted on conv2d int8's 27 mappings here (2026-11-30; their best latencies after a
# few trials against calls and staged bytes).
STAGED_BYTES_PER_CYCLE = 2.0


def prior_cycles(task) -> float | None:
    """The task's roofline cycles (one core; lower is faster), or None where its mapping
    cannot be realised (it then ranks with the best)."""
    from ..generation.cpu import inlined_packing
    from ..generation.rule import constant_names, constant_stages
    from ..mapping.access import intrinsic_computation
    from ..mapping.realise import RealisationError, reshape

    if task.mapping is None:  # MetaSchedule's generic space: nothing to compare it with
        return None
    try:
        shaped = reshape(task.workload, task.mapping, task.intrinsic,
                         pack_in_place=task.target.kind == "cpu")
    except RealisationError:
        return None
    sch = shaped.sch
    main = sch.get(sch.get_sblock(shaped.block))
    work = math.prod(int(iv.dom.extent) for iv in main.iter_vars)
    per_call = math.prod(a.extent for a in intrinsic_computation(task.intrinsic).axes)
    skipped = {shaped.block} | (inlined_packing(task.workload, task.intrinsic, task.mapping)
                                if task.target.kind == "cpu" else set())
    stages = [sch.get(b) for b in sch.get_child_blocks(sch.get_sblock("root"))]
    skipped |= constant_stages(sch, constant_names(task.workload))  # run while compiling
    staged = sum(_bytes(stage.writes[0].source) for stage in stages
                 if stage.name_hint not in skipped)
    return work / per_call + staged / STAGED_BYTES_PER_CYCLE


def _bytes(buffer) -> int:
    import tvm

    return math.prod(int(n) for n in buffer.shape) * tvm.DataType(buffer.dtype).bits // 8
