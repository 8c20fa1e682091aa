"""Prepacked weights laid out tile by tile: each parallel tile's slice one contiguous run.

A weight packing stage (:mod:`.weight_prepack`) writes the layout the intrinsic reads, e.g.
``(K, N/16, 16)`` for a GEMV, and each parallel tile of the program reads a column block of
it: rows of a few hundred bytes, one per ``k``, a whole row of the buffer apart. Across a
4 KiB page per row the hardware prefetchers stop and every row is a TLB lookup: a
1280 -> 1000 classifier read its 5 MB of weights at 24 GB/s in the model against
onnxruntime's 36. Since the stage runs once, while the model compiles, the layout costs
nothing to change: each dimension the parallel loop tiles is split, its tile index moved in
front (``(N/16/t, K, t, 16)``), so a tile reads one contiguous stretch in the order it
walks it.
"""

from __future__ import annotations

from typing import Any, Callable


def lay_out_by_tile(func, stages: list[str]) -> Any:
    """``func`` with the buffer each of ``stages`` (packing stages, by name) writes laid out
    tile by tile where a parallel loop tiles it; unchanged where none does."""
    import tvm
    from tvm.s_tir import Schedule
    from tvm.s_tir import transform as s_tir_transform
    from tvm.s_tir.schedule import ScheduleError

    plans = []
    lookup = Schedule(func)
    for name in stages:
        block = lookup.get(lookup.get_sblock(name))
        buffer = block.writes[0].source
        extents = _tile_extents(func.body, buffer, block)
        index_map = _tile_major([int(d) for d in buffer.shape], extents) if extents else None
        if index_map is not None:
            plans.append((name, index_map))
    if not plans:
        return func
    # The intrinsic's blocks read the weight through match_buffer, which TransformLayout
    # does not rewrite: lower it to plain accesses first (as the build would).
    mod = s_tir_transform.LowerMatchBuffer()(tvm.IRModule({"main": func}))
    sch = Schedule(mod["main"])
    try:
        for name, index_map in plans:
            sch.transform_layout(sch.get_sblock(name), ("write", 0), index_map)
    except (ScheduleError, tvm.error.InternalError):
        return func  # only a layout: the program as it was computes the same
    # Folds the vector indices LowerMatchBuffer leaves (Broadcast(0) + Ramp) that the
    # build's flattening cannot take.
    return s_tir_transform.StmtSimplify()(sch.mod)["main"]


def _tile_extents(body, buffer, stage) -> list[int] | None:
    """How far each dimension of ``buffer`` runs within one iteration of the parallel loop
    around its first reader other than ``stage``; None without such a reader or loop."""
    import tvm
    from tvm import sym, tirx

    found = _reader(body, buffer, stage)
    if found is None:
        return None
    realize, loops = found
    parallel = [i for i, loop in enumerate(loops) if loop.kind == tirx.ForKind.PARALLEL]
    if not parallel:
        return None
    block = realize.block
    region = next(r for r in block.reads if r.source.same_as(buffer)).region
    starts = tirx.IndexMap([iv.var for iv in block.iter_vars], [r.min for r in region],
                           None).map_indices(list(realize.iter_values))
    analyzer = sym.Analyzer()
    for i, loop in enumerate(loops):  # the loops down to the parallel one held at 0
        analyzer.bind(loop.loop_var, tvm.ir.Range.from_min_extent(0, 1) if i <= parallel[0]
                      else tvm.ir.Range.from_min_extent(loop.min, loop.extent))
    extents = []
    for start, r in zip(starts, region):
        bound = analyzer.const_int_bound(start)
        extents.append(int(bound.max_value) - int(bound.min_value) + int(r.extent))
    return extents


def _reader(stmt, buffer, stage, loops: tuple = ()):
    """(block realize, enclosing loops) of the first block other than ``stage`` that lists
    ``buffer`` among its reads."""
    from tvm import s_tir, tirx

    if isinstance(stmt, tirx.For):
        return _reader(stmt.body, buffer, stage, loops + (stmt,))
    if isinstance(stmt, tirx.SeqStmt):
        for s in stmt:
            found = _reader(s, buffer, stage, loops)
            if found is not None:
                return found
        return None
    if isinstance(stmt, s_tir.SBlockRealize):
        block = stmt.block
        if not block.same_as(stage) and any(r.source.same_as(buffer) for r in block.reads):
            return stmt, loops
        return _reader(block.body, buffer, stage, loops)
    body = getattr(stmt, "body", None)
    return _reader(body, buffer, stage, loops) if body is not None else None


def _tile_major(shape: list[int], extents: list[int]) -> Callable | None:
    """The index map splitting each dimension a tile covers part of (evenly), its tile
    index first; None when no dimension is so tiled."""
    tiled = [d for d, (n, t) in enumerate(zip(shape, extents)) if t < n and n % t == 0]
    if not tiled:
        return None

    def index_map(*x):
        return ([x[d] // extents[d] for d in tiled]
                + [x[d] % extents[d] if d in tiled else x[d] for d in range(len(x))])

    return index_map
