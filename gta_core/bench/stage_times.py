"""A TensorIR program's time stage by stage: where the cycles go besides the arithmetic.

A tensorized program is its main block (the reduction on the intrinsic, with its init and
the copy of its accumulators) plus stages around it: packing an operand into the layout the
intrinsic reads, padding, writing the results back to the output's layout. A stage's cost is
the program's time minus the time of the same program with that stage's block emptied: the
stage's own work plus what it costs the rest (cache traffic), as the program runs it.

An emptied block leaves buffers nobody writes or nobody reads, and LLVM deletes loops whose
results are never read and folds loads of memory never written. So the buffers the emptied
block touched, where the function allocates them, become arguments of the variant (filled
with zeros): the work on them stays observable, and stays. The main block's accumulators are
never touched, so its register tiles are built as in the program.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
from pydantic import BaseModel

from ..mapping.stages import stage_role
from ..measure import runnable
from ..models import Target

_REDUCE = 2  # IterVar.iter_type of a reduction axis (CommReduce)


class StageTime(BaseModel):
    """One stage of a program: its block and what it costs."""

    block: str
    role: str  # "packing", "write-back" or "other" (padding, a layout copy): stage_role
    us: float | None  # the program's time minus its time without this stage
    note: str | None = None  # why it has no time (its variant did not build)


class StageBreakdown(BaseModel):
    """A program's median time and each of its stages' share of it."""

    program_us: float
    stages: list[StageTime]

    @property
    def compute_us(self) -> float:
        """The program without its stages: the main block's arithmetic, as measured."""
        return self.program_us - sum(s.us for s in self.stages if s.us is not None)


def stage_blocks(func) -> list[Any]:
    """The blocks of ``func`` that are stages: every block that neither reduces nor reads or
    writes a buffer a reduction writes (the main block, its init, its accumulators' copy)."""
    import tvm

    sch = tvm.s_tir.Schedule(tvm.IRModule({"main": func}))
    blocks = [sch.get(b) for b in sch.get_child_blocks(sch.get_sblock("root"))]
    accumulators = {r.source.name for b in blocks
                    if any(int(v.iter_type) == _REDUCE for v in b.iter_vars) for r in b.writes}
    return [b for b in blocks if not _buffers(b) & accumulators]


def without_stage(func, block: str) -> tuple[Any, list[Any]]:
    """``func`` with ``block`` emptied, and the buffers it allocated that the block touched
    moved to the end of its parameters (returned, in that order)."""
    import tvm
    from tvm.s_tir import SBlock, SBlockRealize

    sch = tvm.s_tir.Schedule(tvm.IRModule({"main": func}))
    sref = sch.get_sblock(block)
    old = sch.get(sref)
    empty = SBlock(old.iter_vars, [], [], old.name_hint, tvm.tirx.Evaluate(0), None,
                   old.alloc_buffers, old.match_buffers, old.annotations)
    sch.state.replace(sch.get_sref(sref), empty, {old: empty})
    emptied = sch.mod["main"]
    root = emptied.body.block
    touched = _buffers(old)
    lifted = [b for b in root.alloc_buffers if b.name in touched]
    kept = [b for b in root.alloc_buffers if b.name not in touched]
    new_root = SBlock(root.iter_vars, root.reads, root.writes, root.name_hint, root.body,
                      root.init, kept, root.match_buffers, root.annotations)
    body = SBlockRealize(emptied.body.iter_values, emptied.body.predicate, new_root)
    return tvm.tirx.PrimFunc([*emptied.params, *lifted], body, emptied.ret_type,
                             emptied.attrs), lifted


def stage_breakdown(program, target: Target, args: list[Any], repeats: int = 10,
                    min_repeat_s: float = 1e-3) -> StageBreakdown:
    """``program`` (a PrimFunc, or an IRModule of one) timed whole and without each stage,
    on ``args`` (its arguments as TVM tensors, output last), each a median of ``repeats``
    repeats lasting about ``min_repeat_s``."""
    import tvm

    func = program if isinstance(program, tvm.tirx.PrimFunc) else program["main"]
    device = tvm.cpu()
    whole = runnable(func, target)
    once = whole.time_evaluator(whole.entry_name, device, number=1, repeat=5)
    number = max(1, int(min_repeat_s / max(min(once(*args).results), 1e-9)) + 1)

    def median_us(module, extra: list[Any]) -> float:
        timer = module.time_evaluator(module.entry_name, device, number=number,
                                      repeat=repeats)
        return statistics.median(timer(*args, *extra).results) * 1e6

    program_us = median_us(whole, [])
    stages = []
    for block in stage_blocks(func):
        name = block.name_hint
        try:
            variant, lifted = without_stage(func, name)
            extra = [tvm.runtime.tensor(np.zeros([int(d) for d in b.shape], b.dtype), device)
                     for b in lifted]
            us = program_us - median_us(runnable(variant, target), extra)
            stages.append(StageTime(block=name, role=stage_role(name), us=us))
        except Exception as exc:  # noqa: BLE001 - one stage that will not build is named
            stages.append(StageTime(block=name, role=stage_role(name), us=None,
                                    note=str(exc).strip().splitlines()[0][:200]))
    return StageBreakdown(program_us=program_us, stages=stages)


def _buffers(block) -> set[str]:
    return {r.source.name for r in (*block.reads, *block.writes)}
