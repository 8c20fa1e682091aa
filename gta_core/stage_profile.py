"""Where a scheduled program's time goes, stage by stage: packing, accumulator init,
compute, write-back, epilogue.

Each stage's loop nest is wrapped in reads of the CPU's cycle counter
(``llvm.readcyclecounter``: the TSC on x86, constant-rate and synchronised across cores)
and the difference is added to a counter of its own, an extra ``int64`` argument indexed
by the parallel loop's iteration, so threads never share one. A stage at the function's
top level is timed as a whole from the calling thread (its wall time, parallel or not);
a stage inside a parallel loop is timed per iteration, summed, and divided among the
threads as TVM's parallel launch splits that loop (static contiguous chunks), which also
gives the imbalance between threads. What no stage covers (loop control between stages,
the parallel launch) is the remainder. The instrumented program must compute exactly
what the program computes; :func:`profile` checks it.
"""

from __future__ import annotations

import platform
import statistics
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, computed_field

StageKind = Literal["packing", "init", "compute", "write-back", "epilogue", "other"]
Placement = Literal["whole", "per tile"]
COUNTERS = "gta_cycles"
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686")  # programs run here


class StageProfileError(RuntimeError):
    """A program whose stages cannot be timed; the message is one line."""


class StageTime(BaseModel):
    kind: StageKind
    placement: Placement  # "whole": at the top level, wall time; "per tile": in a parallel loop
    blocks: list[str]
    us: float  # per call: wall time, or cycles summed over tiles / threads running them
    share: float  # of the instrumented program's time


class StageProfile(BaseModel):
    threads: int
    us: float  # the program's median time per call, not instrumented
    us_instrumented: float
    stages: list[StageTime]
    imbalance_us: float  # per-tile work of the busiest thread beyond the threads' mean
    remainder_us: float  # what no stage covers: loop control, the parallel launch

    @computed_field
    @property
    def overhead(self) -> float:
        """The instrumented program's time over the program's, minus one."""
        return self.us_instrumented / self.us - 1.0


def _children(stmt) -> list:
    from tvm import tirx

    if isinstance(stmt, tirx.For | tirx.AttrStmt):
        return [stmt.body]
    if isinstance(stmt, tirx.SeqStmt):
        return list(stmt.seq)
    if isinstance(stmt, tirx.IfThenElse):
        return [stmt.then_case] + ([stmt.else_case] if stmt.else_case is not None else [])
    return []


def blocks_in(stmt) -> list:
    """The blocks in ``stmt`` not nested in another block (a block is one stage whole)."""
    from tvm.s_tir import SBlockRealize

    if isinstance(stmt, SBlockRealize):
        return [stmt.block]
    return [b for child in _children(stmt) for b in blocks_in(child)]


def _buffers(regions) -> set[str]:
    return {region.source.name for region in regions}


def _is_copy(block) -> bool:
    import tvm
    from tvm import tirx

    value = getattr(block.body, "value", None)
    while isinstance(value, tirx.Cast):
        value = value.value
    return isinstance(block.body, tirx.BufferStore) and isinstance(value, tvm.ir.expr.TensorLoad)


def classify(func) -> dict[str, StageKind]:
    """The stage of each of ``func``'s top-level blocks (scheduled TensorIR): ``compute``
    has a reduction axis; ``init`` writes what compute accumulates into and reads nothing
    of it; ``packing`` produces what compute reads, directly or through other packing;
    ``write-back`` copies (or casts) what compute wrote onward (to another reduction, too:
    rfactor's lanes), ``epilogue`` does other arithmetic on it; ``other`` is none of
    these (a program with no reduction)."""
    from tvm import tirx

    blocks = blocks_in(func.body.block.body)
    kinds: dict[str, StageKind] = {
        b.name_hint: "compute" for b in blocks
        if any(iv.iter_type == tirx.IterVar.CommReduce for iv in b.iter_vars)}
    accumulated = {name for b in blocks if b.name_hint in kinds for name in _buffers(b.writes)}
    for b in blocks:
        if b.name_hint not in kinds and _buffers(b.writes) & accumulated \
                and not _buffers(b.reads) & accumulated:
            kinds[b.name_hint] = "init"
    needed = {n for b in blocks if kinds.get(b.name_hint) == "compute" for n in _buffers(b.reads)}
    made = set(accumulated)
    changed = True
    while changed:
        changed = False
        for b in blocks:
            if b.name_hint in kinds:
                continue
            if _buffers(b.reads) & made:  # first: between two reductions (rfactor's lanes)
                kinds[b.name_hint] = "write-back" if _is_copy(b) else "epilogue"
                made |= _buffers(b.writes)
                changed = True
            elif _buffers(b.writes) & needed:
                kinds[b.name_hint] = "packing"
                needed |= _buffers(b.reads)
                changed = True
    return {b.name_hint: kinds.get(b.name_hint, "other") for b in blocks}


@dataclass
class _Layout:
    """Where each stage's cycles go in the counters: column per (kind, placement); row 0
    for the top level, then one row per iteration of each parallel loop timed inside."""

    slots: list[tuple[StageKind, Placement]] = field(default_factory=list)
    blocks: dict[tuple[StageKind, Placement], list[str]] = field(default_factory=dict)
    parallel: list[tuple[int, int]] = field(default_factory=list)  # (first row, extent)

    def slot(self, kind: StageKind, placement: Placement, names: list[str]) -> int:
        key = (kind, placement)
        if key not in self.slots:
            self.slots.append(key)
            self.blocks[key] = []
        self.blocks[key] += [n for n in names if n not in self.blocks[key]]
        return self.slots.index(key)

    @property
    def rows(self) -> int:
        return 1 + sum(extent for _, extent in self.parallel)


def instrument(func) -> tuple[Any, _Layout]:
    """``func`` with each stage timed into a counters buffer, its last argument
    (``int64``, rows x (stages + 1): the last column of row 0 counts the cycles of whole
    calls)."""
    from tvm import s_tir, tirx

    kinds = classify(func)
    root = func.body.block
    # The first walk finds the stages and parallel loops, which size the counters.
    _, layout = _timed_stages(root.body, kinds, tirx.decl_buffer((1, 1), "int64", COUNTERS))
    counters = tirx.decl_buffer((layout.rows, len(layout.slots) + 1), "int64", COUNTERS)
    body, layout = _timed_stages(root.body, kinds, counters)
    body = _timed(body, counters, 0, len(layout.slots))
    block = s_tir.SBlock(root.iter_vars, root.reads, root.writes, root.name_hint, body,
                         root.init, root.alloc_buffers, root.match_buffers, root.annotations)
    realize = s_tir.SBlockRealize(func.body.iter_values, func.body.predicate, block)
    return tirx.PrimFunc(list(func.params) + [counters], realize, attrs=func.attrs), layout


def _timed(stmt, counters, row, column):
    """``stmt`` between two reads of the cycle counter, the difference added to
    ``counters[row, column]``. On x86 each read is fenced (``lfence`` before and after):
    the core executes out of order, and a few hundred cycles of a stage would otherwise
    be counted in the next one."""
    from tvm import tirx

    def clock():
        return tirx.call_llvm_intrin("int64", "llvm.readcyclecounter")

    def fence() -> list:
        return [tirx.Evaluate(tirx.call_llvm_intrin("void", "llvm.x86.sse2.lfence"))] \
            if _X86 else []

    start = tirx.Var("gta_t0", "int64")
    return tirx.SeqStmt([*fence(), tirx.LetStmt(start, clock()), *fence(), stmt, *fence(),
                         tirx.BufferStore(counters, counters[row, column] + (clock() - start),
                                          [row, column])])


def _timed_stages(body, kinds: dict[str, StageKind], counters) -> tuple[Any, _Layout]:
    """``body`` (the root block's) with each largest loop nest of one stage timed."""
    from tvm import tirx

    layout = _Layout()

    def wrap(stmt, row):
        names = [b.name_hint for b in blocks_in(stmt)]
        found = {kinds[n] for n in names}
        if not found:
            return stmt
        if len(found) == 1:
            placement = "whole" if row is None else "per tile"
            return _timed(stmt, counters, 0 if row is None else row,
                          layout.slot(found.pop(), placement, names))
        if isinstance(stmt, tirx.For):
            inner = row
            if stmt.kind == tirx.ForKind.PARALLEL and row is None:
                inner = stmt.loop_var - stmt.min + layout.rows
                layout.parallel.append((layout.rows, int(stmt.extent)))
            return tirx.For(stmt.loop_var, stmt.min, stmt.extent, stmt.kind,
                            wrap(stmt.body, inner), stmt.thread_binding, stmt.annotations)
        if isinstance(stmt, tirx.SeqStmt):
            return tirx.SeqStmt([wrap(s, row) for s in stmt.seq])
        if isinstance(stmt, tirx.IfThenElse):
            return tirx.IfThenElse(stmt.condition, wrap(stmt.then_case, row),
                                   stmt.else_case and wrap(stmt.else_case, row))
        if isinstance(stmt, tirx.AttrStmt):
            return tirx.AttrStmt(stmt.node, stmt.attr_key, stmt.value, wrap(stmt.body, row))
        return stmt  # a statement of mixed stages this walk cannot enter: the remainder

    return wrap(body, None), layout


def profile(func, inputs: list, outputs: list[np.ndarray], target, rounds: int = 7,
            min_ms: int = 40) -> StageProfile:
    """Stage times of ``func`` (scheduled, its outputs its last parameters) built for
    ``target``, on ``inputs`` (TVM tensors) and outputs like ``outputs`` (garbage-filled
    arrays): the program and its instrumented copy timed in alternating rounds, warm,
    after checking that the copy computes exactly what the program does; each stage's
    time the median over the rounds of its cycles per call in the round."""
    import tvm

    from .measure import runnable

    timed_func, layout = instrument(func)
    plain = runnable(tvm.IRModule({"main": func}), target)
    timed = runnable(tvm.IRModule({"main": timed_func}), target)
    device = inputs[0].device if inputs else tvm.cpu()
    zeros = np.zeros((layout.rows, len(layout.slots) + 1), "int64")
    counters = tvm.runtime.tensor(zeros, device)
    mine = [tvm.runtime.tensor(o.copy(), device) for o in outputs]
    theirs = [tvm.runtime.tensor(o.copy(), device) for o in outputs]
    plain(*inputs, *mine)
    timed(*inputs, *theirs, counters)
    for a, b in zip(mine, theirs):
        if not np.array_equal(a.numpy(), b.numpy(), equal_nan=True):
            raise StageProfileError("the instrumented program computes other values than "
                                    "the program: its stages cannot be timed this way")
    args = [*inputs, *mine]
    per_round = []
    for _ in range(rounds):
        us = _sample(plain, device, args, min_ms)
        counters.copyfrom(zeros)
        us_timed = _sample(timed, device, [*args, counters], min_ms)
        per_round.append(_stage_times(counters.numpy(), layout, us, us_timed))
    return _median(per_round)


def _sample(lib, device, args: list, min_ms: int) -> float:
    """Microseconds per call, the mean over at least ``min_ms`` of calls."""
    return lib.time_evaluator("main", device, number=1, repeat=1,
                              min_repeat_ms=min_ms)(*args).mean * 1e6


def _median(rounds: list[StageProfile]) -> StageProfile:
    """Each time the median over ``rounds`` (a slow spell on a shared host skews a sum
    over every call, not the median round); the remainder is what the median stages leave
    of the median instrumented time."""
    first = rounds[0]
    us_timed = statistics.median(r.us_instrumented for r in rounds)
    stages = [t.model_copy(update={"us": statistics.median(r.stages[i].us for r in rounds)})
              for i, t in enumerate(first.stages)]
    stages = [t.model_copy(update={"share": t.us / us_timed}) for t in stages]
    imbalance = statistics.median(r.imbalance_us for r in rounds)
    return StageProfile(threads=first.threads, us=statistics.median(r.us for r in rounds),
                        us_instrumented=us_timed, stages=stages, imbalance_us=imbalance,
                        remainder_us=us_timed - sum(t.us for t in stages) - imbalance)


def threads() -> int:
    """The threads TVM's parallel loops run on in this process."""
    import tvm

    return int(tvm.get_global_func("runtime.NumThreads")())


def _stage_times(cycles: np.ndarray, layout: _Layout, us: float, us_timed: float
                 ) -> StageProfile:
    """The counters of one round read into times: cycles are shares of the whole calls'
    cycles (the last column), times those shares of the instrumented program's time.
    A parallel loop's cycles are divided among the threads that run it: TVM's parallel
    launch gives each a contiguous chunk of ceil(extent / threads) iterations."""
    n = threads()
    total = float(cycles[0, -1]) or 1.0
    spent = cycles[0, :-1].astype(float)  # the top level's stages: wall cycles
    per_tile = np.zeros_like(spent)
    busiest = 0.0
    for first, extent in layout.parallel:
        rows = cycles[first:first + extent, :-1].astype(float)
        step = -(-extent // n)
        loads = [rows[t:t + step].sum() for t in range(0, extent, step)]
        per_tile += rows.sum(axis=0) / len(loads)
        busiest += max(loads) - sum(loads) / len(loads)
    stages = []
    for column, (kind, placement) in enumerate(layout.slots):
        cost = spent[column] if placement == "whole" else per_tile[column]
        stages.append(StageTime(kind=kind, placement=placement,
                                blocks=layout.blocks[(kind, placement)],
                                us=cost / total * us_timed, share=cost / total))
    imbalance = busiest / total * us_timed
    return StageProfile(threads=n, us=us, us_instrumented=us_timed, stages=stages,
                        imbalance_us=imbalance,
                        remainder_us=us_timed - sum(s.us for s in stages) - imbalance)
