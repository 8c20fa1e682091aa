"""Whether a scheduled program writes outside its buffers, found before it runs.

TVM's schedule primitives keep a program's results, not always its bounds. Measured here
(2026-12-07): a float32 transposed convolution's phase gather, inlined into the write-back
(TVM accepted the inline; a later step dropped the predicate that guarded it), wrote a row
before the output and one after it. The results were right; the heap was corrupt, and a
later ``malloc`` in the runner's worker faulted. A block's write region, over its loops'
ranges and under its predicate, says so statically; TVM's own ``OOBChecker`` ignores
predicates and flags the padded tiles every mapping makes.
"""

from __future__ import annotations


def writes_outside(mod) -> list[str]:
    """The blocks of ``mod``'s functions (scheduled TensorIR) that may write outside a
    buffer; a block whose bounds cannot be read is given the benefit of the doubt."""
    import tvm

    found = []
    for _, func in mod.functions_items():
        if not isinstance(func, tvm.tirx.PrimFunc):
            continue
        sch = tvm.s_tir.Schedule(tvm.IRModule({"main": func}))
        for block in sch.get_child_blocks(sch.get_sblock("root")):
            try:
                inside = writes_inside(sch, block)
            except Exception:  # noqa: BLE001 - no bound read: not evidence of a bad write
                inside = True
            if not inside:
                found.append(sch.get(block).name_hint)
    return found


def outside_error(mod) -> str | None:
    """The error a candidate that may write outside a buffer is recorded with (never built
    or run), None for one that writes inside its buffers."""
    blocks = writes_outside(mod)
    return f"writes outside its buffer: {', '.join(blocks)}" if blocks else None


def writes_inside(sch, block) -> bool:
    """Whether every write of ``block`` lands inside its buffer, over its loops' ranges and
    under its predicate."""
    import tvm
    from tvm import sym, tirx
    from tvm.s_tir import SBlockRealize

    loops = [sch.get(loop) for loop in sch.get_loops(block)]
    realize = loops[-1].body if loops else None
    if not isinstance(realize, SBlockRealize):
        return True  # not directly under its innermost loop: nothing to bound here
    analyzer = sym.Analyzer()
    for loop in loops:
        analyzer.bind(loop.loop_var, tvm.ir.Range.from_min_extent(loop.min, loop.extent))
    iter_vars = [iv.var for iv in realize.block.iter_vars]
    values = list(realize.iter_values)
    with analyzer.constraint_scope(analyzer.simplify(realize.predicate)):
        for region in realize.block.writes:
            lows = tirx.IndexMap(iter_vars, [r.min for r in region.region], None)
            highs = tirx.IndexMap(iter_vars, [r.min + r.extent - 1 for r in region.region],
                                  None)
            for extent, low, high in zip(region.source.shape, lows.map_indices(values),
                                         highs.map_indices(values)):
                if not (analyzer.can_prove(low >= 0) and analyzer.can_prove(high < extent)):
                    return False
    return True
