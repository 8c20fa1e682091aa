"""Realise a mapping candidate in TensorIR: reshape the operator to the mapping, tensorize.

The steps, all TVM schedule primitives:

1. ``reindex`` every operand of the main block, so each is a buffer indexed
   by the block's iteration variables directly (the einsum form);
2. ``transform_layout`` each such buffer to [outer variables..., the fused
   intrinsic axes in the order the intrinsic operand indexes them], so the
   intrinsic's window is the buffer's trailing, contiguous dimensions;
3. ``transform_block_layout`` the block to [outer variables..., fused
   intrinsic axes in the intrinsic's order];
4. ``pad_einsum`` where a fused extent is not a multiple of the intrinsic's;
5. split the intrinsic axes to the intrinsic's extents, move them innermost,
   ``decompose_reduction`` and ``tensorize``.

The result is a correct, untuned program: the starting point of the
generation rules, which tile and place the reindex (packing) stages.

On a GPU target (``realise(..., target)`` with ``target.kind != "cpu"``),
steps 1-4 and the split of step 5 are the same; then, instead of plain loops,
the main block becomes one kernel (one fragment per thread block, each input
staged through "shared" into its declared fragment scope, the accumulator
stored back through "shared"), and every other stage an elementwise kernel:
see ``_realise_gpu``. Scopes and data-movement intrinsics come from the
intrinsic's declared operands (``scope``, ``load``, ``store``) and from the
TVM intrinsics they name, not from intrinsic names.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..models import Intrinsic, MappingCandidate, Target
from ..workloads import Workload
from .access import Computation, block_computation, intrinsic_computation


class RealisationError(RuntimeError):
    """A candidate that TVM's schedule primitives could not realise; says which step failed."""


@dataclass
class Realised:
    """A realised candidate: the schedule and where its pieces are."""

    sch: object  # tvm.s_tir.Schedule
    block: str  # the tensorized main block
    outer_loops: int  # loops of the main block outside the intrinsic
    compute_intrinsic: str  # the TVM tensor intrinsic used


def _step(name: str):
    def wrap(function):
        def run(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except RealisationError:
                raise
            except Exception as exc:  # noqa: BLE001 - TVM raises many kinds; all mean failure
                first = str(exc).strip().splitlines()
                raise RealisationError(f"{name} failed: {first[-1] if first else exc!r}") from exc
        return run
    return wrap


def ensure_registered(intrinsic: Intrinsic) -> None:
    """Import the module that registers ``intrinsic``'s TVM tensor intrinsics.

    Replaying a recorded trace needs them as much as making one does.
    """
    if intrinsic.tvm_module:
        importlib.import_module(intrinsic.tvm_module)


@dataclass
class Reshaped:
    """The operator in a mapping's shape, before tensorize: what generation rules work on."""

    sch: object  # tvm.s_tir.Schedule
    block: str
    spatial: list  # loops outside the intrinsic, outermost first
    reduce: list
    inner: list  # the intrinsic's loops
    spatial_axes: list[str]  # per spatial loop: operator loop or intrinsic axis it walks
    reduce_axes: list[str]
    compute: str  # the TVM tensor intrinsic to tensorize with


def _prepare(workload: Workload, candidate: MappingCandidate, intrinsic: Intrinsic,
             mod=None, commute: bool = False):
    """Steps 1-4 and the window split: (schedule, main block, op, intr, order)."""
    from tvm import s_tir

    ensure_registered(intrinsic)
    block_name = workload.main_block
    intr = intrinsic_computation(intrinsic)
    sch = s_tir.Schedule(mod if mod is not None else workload.prim_func())
    op = block_computation(sch, block_name)
    if commute and _needs_commuting(op, intr, candidate, intrinsic):
        sch = s_tir.Schedule(_commuted_prim_func(workload))
        op = block_computation(sch, block_name)
    order = _new_order(op, intr, candidate)
    _to_einsum(sch, block_name, op)
    _relayout_buffers(sch, block_name, op, intr, candidate, order)
    _relayout_block(sch, block_name, op, order)
    _pad(sch, block_name, op, intr, candidate, order)
    _split_windows(sch, block_name, op, intr, candidate, order)
    return sch, block_name, op, intr, order


def reshape(workload: Workload, candidate: MappingCandidate, intrinsic: Intrinsic,
            mod=None) -> Reshaped:
    """The operator (``mod``, default the workload's PrimFunc) in the mapping's shape.

    Generation rules tile and place stages around the intrinsic's loops next;
    :func:`finish_cpu` then tensorizes.
    """
    sch, block, op, intr, order = _prepare(workload, candidate, intrinsic, mod)
    spatial, reduce, inner = _split_and_order(sch, block, op, intr, order)
    kinds = {a.name: a.kind for a in op.axes}
    return Reshaped(
        sch=sch, block=block, spatial=spatial, reduce=reduce, inner=inner,
        spatial_axes=[n for n in order.outer if kinds[n] == "spatial"]
        + [v.name for v in intr.axes if v.kind == "spatial"],
        reduce_axes=[n for n in order.outer if kinds[n] == "reduce"]
        + [v.name for v in intr.axes if v.kind == "reduce"],
        compute=_compute_name(op, intr, candidate, intrinsic),
    )


@_step("tensorize")
def finish_cpu(sch, block_name: str, reduce: list, inner: list, compute: str) -> None:
    """Separate the init before the outermost reduction loop, then tensorize.

    (The init's loops are left to LLVM's vectoriser: how many there are depends on
    the sampled tile sizes, unit loops being dropped, and a trace whose queries
    return a decision-dependent number of loops cannot be replayed.)
    """
    block = sch.get_sblock(block_name)
    sch.decompose_reduction(block, reduce[0] if reduce else inner[0])
    sch.tensorize(inner[0], compute)


def realise(workload: Workload, candidate: MappingCandidate, intrinsic: Intrinsic,
            target: Target | None = None) -> Realised:
    """A schedule computing ``workload`` with ``intrinsic`` as ``candidate`` maps it.

    ``target`` picks the program's structure: None or a CPU target gives the CPU
    schedule (packing stages at the root, the tensorized block in plain loops); a GPU
    target gives a kernel whose operands move through the memory scopes the intrinsic's
    operands declare (see :func:`_realise_gpu`).
    """
    if target is None or target.kind == "cpu":
        shaped = reshape(workload, candidate, intrinsic)
        finish_cpu(shaped.sch, shaped.block, shaped.reduce, shaped.inner, shaped.compute)
        return Realised(sch=shaped.sch, block=shaped.block,
                        outer_loops=len(shaped.spatial) + len(shaped.reduce),
                        compute_intrinsic=shaped.compute)
    ensure_registered(intrinsic)  # the scopes are read from the TVM intrinsics it names
    memory = _fragment_scopes(intrinsic)
    sch, block_name, op, intr, order = _prepare(workload, candidate, intrinsic, commute=True)
    outer = _realise_gpu(sch, block_name, op, intr, candidate, intrinsic, order, memory,
                         _warp_size(target))
    return Realised(sch=sch, block=block_name, outer_loops=outer,
                    compute_intrinsic=_compute_name(op, intr, candidate, intrinsic))


@dataclass(frozen=True)
class _Order:
    outer: tuple[str, ...]  # unmapped operator variables: spatial first, then reduce
    groups: tuple[tuple[str, ...], ...]  # per intrinsic axis, in the intrinsic's order


def _new_order(op: Computation, intr: Computation, candidate: MappingCandidate) -> _Order:
    mapped = {name for group in candidate.axes.values() for name in group}
    outer = [a for a in op.axes if a.name not in mapped]
    outer.sort(key=lambda a: a.kind == "reduce")  # stable: spatial first, then reduce
    return _Order(outer=tuple(a.name for a in outer),
                  groups=tuple(tuple(candidate.axes[v.name]) for v in intr.axes))


def _fuse(names: tuple[str, ...], values: dict, extents: dict[str, int]):
    expr = values[names[0]]
    for name in names[1:]:
        expr = expr * extents[name] + values[name]
    return expr


@_step("reindex")
def _to_einsum(sch, block_name: str, op: Computation) -> None:
    block = sch.get_sblock(block_name)
    for index in range(len(op.inputs)):
        sch.reindex(block, ("read", index))
    sch.reindex(block, ("write", 0))


@dataclass(frozen=True)
class _Operand:
    """Where one operand of the main block sits: its buffer and its intrinsic window."""

    kind: str  # "read" | "write": the buffer's side of the main block
    index: int
    dims: tuple[str, ...]  # after reindex: the variables it depends on, in block order
    outer: tuple[str, ...]  # dims outside the intrinsic's window
    window: tuple[str, ...]  # intrinsic variables indexing the window, in the operand's order


def _operands(op: Computation, intr: Computation, candidate: MappingCandidate,
              order: _Order) -> list[_Operand]:
    intr_operands = {x.tensor: x for x in (*intr.inputs, intr.output)}
    role = {tensor: name for name, tensor in candidate.operands.items()}
    out = []
    for kind, accesses in (("read", op.inputs), ("write", (op.output,))):
        for index, access in enumerate(accesses):
            dims = tuple(a.name for a in op.axes if access.depends_on(a.name))
            out.append(_Operand(kind, index, dims, tuple(d for d in order.outer if d in dims),
                                tuple(_index_vars(intr_operands[role[access.tensor]]))))
    return out


@_step("transform_layout")
def _relayout_buffers(sch, block_name: str, op: Computation, intr: Computation,
                      candidate: MappingCandidate, order: _Order) -> None:
    """Each operand buffer to [outer dims..., one fused dim per window variable]."""
    from tvm.tirx import IndexMap

    extents = {a.name: a.extent for a in op.axes}
    group_of = dict(zip((v.name for v in intr.axes), order.groups))
    block = sch.get_sblock(block_name)
    for operand in _operands(op, intr, candidate, order):
        window = [group_of[var] for var in operand.window]
        relayout = _layout(list(operand.dims), list(operand.outer), window, extents)
        sch.transform_layout(block, (operand.kind, operand.index),
                             IndexMap.from_func(relayout, ndim=len(operand.dims),
                                                index_dtype="int32"))


@_step("transform_layout (split)")
def _split_windows(sch, block_name: str, op: Computation, intr: Computation,
                   candidate: MappingCandidate, order: _Order) -> None:
    """Each fused window dim d to (d // e, d % e) with the inner parts last: contiguous windows."""
    from tvm.tirx import IndexMap

    block = sch.get_sblock(block_name)
    for operand in _operands(op, intr, candidate, order):
        sizes = [intr.axis(var).extent for var in operand.window]
        sch.transform_layout(block, (operand.kind, operand.index), IndexMap.from_func(
            _split(len(operand.outer), sizes), ndim=len(operand.outer) + len(sizes),
            index_dtype="int32"))


def _split(n_outer: int, sizes: list[int]):
    """Index map: [outer..., window...] -> [outer..., window // size..., window % size...].

    (A closure, not default arguments: IndexMap.from_func turns keyword arguments into
    variables.)
    """
    def split(*values):
        window = values[n_outer:]
        return [*values[:n_outer], *(v // e for v, e in zip(window, sizes)),
                *(v % e for v, e in zip(window, sizes))]

    return split


def _layout(dims: list[str], outer: list[str], window: list[tuple[str, ...]],
            extents: dict[str, int]):
    """Index map: buffer dims -> [outer dims..., fused window dims...]."""
    def relayout(*values):
        named = dict(zip(dims, values))
        return [named[d] for d in outer] + [_fuse(g, named, extents) for g in window]

    return relayout


def _index_vars(operand) -> list[str]:
    """The intrinsic variables an operand is indexed by, one per dimension, in order."""
    out = []
    for index in operand.indices:
        names = [v for v, c in index if v and c]
        if len(names) > 1:
            raise RealisationError(f"operand {operand.tensor} index mixes variables {names}")
        out += names
    return out


@_step("transform_block_layout")
def _relayout_block(sch, block_name: str, op: Computation, order: _Order) -> None:
    from tvm.tirx import IndexMap

    extents = {a.name: a.extent for a in op.axes}
    names = [a.name for a in op.axes]
    relayout = _layout(names, list(order.outer), list(order.groups), extents)
    sch.transform_block_layout(sch.get_sblock(block_name),
                               IndexMap.from_func(relayout, ndim=len(names), index_dtype="int32"))


@_step("pad_einsum")
def _pad(sch, block_name: str, op: Computation, intr: Computation,
         candidate: MappingCandidate, order: _Order) -> None:
    if not candidate.padding:
        return
    multiples = [1] * len(order.outer) + [v.extent for v in intr.axes]
    sch.pad_einsum(sch.get_sblock(block_name), multiples)


def _compute_name(op: Computation, intr: Computation, candidate: MappingCandidate,
                  intrinsic: Intrinsic) -> str:
    """The compute intrinsic whose read order is the block's (tensorize compares it)."""
    block_order = [a.tensor for a in op.inputs]
    intrinsic_order = [candidate.operands[x.tensor] for x in intr.inputs]
    if block_order == intrinsic_order:
        return intrinsic.tvm_intrinsics["compute"]
    mirrored = intrinsic.tvm_intrinsics.get("compute_mirrored")
    if mirrored is None:
        raise RealisationError(
            f"the block multiplies {block_order} but {intrinsic.name} multiplies "
            f"{intrinsic_order}, and the intrinsic declares no 'compute_mirrored'")
    return mirrored


def _needs_commuting(op: Computation, intr: Computation, candidate: MappingCandidate,
                     intrinsic: Intrinsic) -> bool:
    """Whether the block reads its two inputs the other way round from the compute intrinsic,
    and the intrinsic declares no ``compute_mirrored`` for that order (GPU path only: the CPU
    path reports such candidates as unrealisable, as before)."""
    block_order = [a.tensor for a in op.inputs]
    intrinsic_order = [candidate.operands[x.tensor] for x in intr.inputs]
    return (block_order != intrinsic_order and block_order == intrinsic_order[::-1]
            and "compute_mirrored" not in intrinsic.tvm_intrinsics)


@_step("commute the product")
def _commuted_prim_func(workload: Workload):
    """The workload's PrimFunc with its main block's ``out + a * b`` written ``out + b * a``.

    Exact (multiplication commutes, also in floating point), and the main block then reads
    its inputs the other way round, which is the order TVM's tensorize needs when a
    candidate gives the intrinsic's first input the operator's second tensor. (TVM 0.27 has
    no Python IR mutator: the loop nest above the block is rebuilt by hand.)
    """
    from tvm import tirx
    from tvm.s_tir.stmt import SBlock, SBlockRealize
    from tvm.tirx import stmt as ir

    def with_body(block, body, reads=None) -> SBlock:
        return SBlock(block.iter_vars, block.reads if reads is None else reads, block.writes,
                      block.name_hint, body, block.init, block.alloc_buffers,
                      block.match_buffers, block.annotations)

    def commute(block) -> SBlock:
        store = block.body
        value = getattr(store, "value", None)
        if not (isinstance(store, ir.BufferStore) and isinstance(value, tirx.Add)
                and isinstance(value.b, tirx.Mul) and len(block.reads) == 2):
            raise RealisationError(f"cannot commute the product of {block.name_hint}: it is "
                                   "not out = out + a * b")
        product = tirx.Mul(value.b.b, value.b.a)
        body = ir.BufferStore(store.buffer, tirx.Add(value.a, product), store.indices)
        return with_body(block, body, reads=[block.reads[1], block.reads[0]])

    def visit(stmt):
        if isinstance(stmt, SBlockRealize):
            block = stmt.block
            block = (commute(block) if block.name_hint == workload.main_block
                     else with_body(block, visit(block.body)))
            return SBlockRealize(stmt.iter_values, stmt.predicate, block)
        if isinstance(stmt, ir.SeqStmt):
            return ir.SeqStmt([visit(child) for child in stmt.seq])
        if isinstance(stmt, ir.For):
            return ir.For(stmt.loop_var, stmt.min, stmt.extent, stmt.kind, visit(stmt.body),
                          stmt.thread_binding, stmt.annotations, stmt.step)
        return stmt

    func = workload.prim_func()
    return func.with_body(visit(func.body))


def _split_and_order(sch, block_name: str, op: Computation, intr: Computation,
                     order: _Order) -> tuple[list, list, list]:
    """Split each intrinsic axis to (outer, intrinsic extent); order spatial, reduce, inner.

    Returns the loops as (spatial, reduce, inner): the operator's outer variables and the
    split-outer parts of the intrinsic axes, spatial ones then reduce ones, then the
    intrinsic-sized inner loops in the intrinsic's axis order.
    """
    block = sch.get_sblock(block_name)
    loops = sch.get_loops(block)
    n_outer = len(order.outer)
    outer_loops, mapped_loops = loops[:n_outer], loops[n_outer:]
    kinds = {a.name: a.kind for a in op.axes}
    outers, inners = [], []
    for loop, var in zip(mapped_loops, intr.axes):
        o, i = sch.split(loop, factors=[None, var.extent])
        outers.append((o, var.kind))
        inners.append(i)
    spatial = [loop for loop, name in zip(outer_loops, order.outer) if kinds[name] == "spatial"]
    reduce = [loop for loop, name in zip(outer_loops, order.outer) if kinds[name] == "reduce"]
    spatial += [o for o, kind in outers if kind == "spatial"]
    reduce += [o for o, kind in outers if kind == "reduce"]
    sch.reorder(*spatial, *reduce, *inners)
    return spatial, reduce, inners


# --- GPU: a kernel whose operands move through the intrinsic's declared memory scopes ---------
#
# After the generic reshape above, every operand of the main block is a packed buffer laid out
# [outer..., window // e..., window % e...]: each intrinsic-sized window (a fragment) is
# contiguous, whatever tiling is put on top later. `_realise_gpu` then builds one kernel for the
# main block (one warp per thread block, warp size from the target):
#
#   for bx in (spatial outer loops, fused):            blockIdx.x
#     accumulator fragment = 0                         tvm_intrinsics["init"]
#     for (reduce outer loops):
#       each input: global -> staging ("shared")       cooperative copy on threadIdx.x
#                   staging -> fragment                operand.load into operand.scope
#       accumulator += A fragment * B fragment         tvm_intrinsics["compute"]
#     accumulator -> staging ("shared")                operand.store from operand.scope
#     staging -> global                                cooperative copy on threadIdx.x
#
# and binds each stage left at the root (padding, packing, unpacking) as an elementwise kernel.
# The staging scope is the one the TVM load / store intrinsic's description reads from / writes
# to. No performance tiling (the generation rules add it): every staging buffer holds exactly
# one fragment, so each fragment pointer is the start of a buffer. A tiled version stays
# aligned too: in the packed layout each fragment starts at a multiple of its own size (>= 256
# bytes), which meets the 32-byte rule of the wmma intrinsics (a row-major tile of fragments
# narrower than 32 bytes would break it; see the cuda-tc plugin's tests).
#
# A candidate that gives the intrinsic's first input the operator's second tensor is realised
# from the workload with its product commuted (`_commuted_prim_func`): tensorize matches a
# block's reads by position, and the cuda-tc intrinsics declare no "compute_mirrored".


@dataclass(frozen=True)
class _Memory:
    """Where one intrinsic operand lives and how it moves: read from the declarations."""

    fragment: str  # the declared scope, e.g. "wmma.matrix_a"
    staging: str  # the scope its load intrinsic reads from / its store intrinsic writes to
    move: str  # the TVM intrinsic that loads it (inputs) or stores it (the output)
    dims: int  # dimensions of its window: the innermost loops a load / store tensorizes


def _warp_size(target: Target) -> int:
    return int(target.tvm.get("thread_warp_size") or target.resources.warp_size or 32)


def _desc_scopes(tvm_intrinsic: str) -> tuple[str, str]:
    """(scope read, scope written) by a registered TVM data-movement intrinsic's description."""
    from tvm.s_tir import TensorIntrin

    found = TensorIntrin.get(tvm_intrinsic, allow_missing=True)
    if found is None:
        raise RealisationError(f"TVM tensor intrinsic {tvm_intrinsic} is not registered")
    block = found.desc.body.block
    return block.reads[0].source.scope(), block.writes[0].source.scope()


def _fragment_scopes(intrinsic: Intrinsic) -> dict[str, _Memory]:
    """Per intrinsic operand, its scopes and mover; RealisationError where one is missing.

    The fragment scope is the operand's declared ``scope``; the staging scope (where a load
    reads from, where a store writes to) comes from the TVM intrinsic named by its ``load``
    or ``store``, whose description says it.
    """
    if "init" not in intrinsic.tvm_intrinsics:
        raise RealisationError(f"{intrinsic.name} declares no 'init' tensor intrinsic, which "
                               "a GPU accumulator fragment needs")
    out = {}
    for operand in intrinsic.compute.operands:
        move = operand.load if operand.role == "input" else operand.store
        if operand.scope == "global" or move is None:
            raise RealisationError(
                f"{intrinsic.name}: operand {operand.name} declares scope {operand.scope!r} and "
                f"{'load' if operand.role == 'input' else 'store'} {move!r}; GPU realisation "
                "needs a fragment scope and the intrinsic moving it")
        read, written = _desc_scopes(move)
        fragment, staging = (written, read) if operand.role == "input" else (read, written)
        if fragment == "warp":
            raise RealisationError(
                f"{intrinsic.name}: {move} keeps operand {operand.name} in 'warp' memory: "
                "mma.sync realisation needs the warp-memory pipeline; not done yet")
        if fragment != operand.scope:
            raise RealisationError(
                f"{intrinsic.name}: operand {operand.name} declares scope {operand.scope!r} "
                f"but {move} moves it to/from {fragment!r}")
        out[operand.name] = _Memory(fragment=fragment, staging=staging, move=move,
                                    dims=len(operand.indices))
    return out


def _realise_gpu(sch, block_name: str, op: Computation, intr: Computation,
                 candidate: MappingCandidate, intrinsic: Intrinsic, order: _Order,
                 memory: dict[str, _Memory], warp: int) -> int:
    """The main block as one GPU kernel (see the comment above); returns its outer loop count."""
    compute = _compute_name(op, intr, candidate, intrinsic)
    role = {tensor: name for name, tensor in candidate.operands.items()}
    output = memory[role[op.output.tensor]]
    inputs = [memory[role[access.tensor]] for access in op.inputs]  # in the block's read order
    spatial, reduce = _gpu_loops(sch, block_name, op, intr, order)
    block = sch.get_sblock(block_name)
    thread_block = _bind_thread_blocks(sch, spatial)
    store = _stage_output(sch, block, thread_block, output, warp)
    loads = _stage_inputs(sch, block, reduce[-1], 1 + len(reduce), inputs, warp)
    init = _decompose(sch, block, reduce[0])
    _tensorize_gpu(sch, block, compute, len(intr.axes), (init, intrinsic.tvm_intrinsics["init"]),
                   [*zip(loads, inputs), (store, output)])
    _bind_root_stages(sch, warp)
    return 1 + len(reduce)  # blockIdx.x and the reduce loops


@_step("split")
def _gpu_loops(sch, block_name: str, op: Computation, intr: Computation, order: _Order):
    """(spatial, reduce) outer loops, the intrinsic-sized loops innermost."""
    spatial, reduce, _ = _split_and_order(sch, block_name, op, intr, order)
    if not reduce:
        raise RealisationError("the intrinsic has no reduce axis to accumulate over")
    return spatial, reduce


@_step("bind blockIdx.x")
def _bind_thread_blocks(sch, spatial: list):
    """One thread block per output fragment: the spatial outer loops fused, on blockIdx.x."""
    fused = sch.fuse(*spatial)
    sch.bind(fused, "blockIdx.x")
    return fused


def _cooperative(sch, copy, depth: int, warp: int) -> None:
    """The copy's loops below the first ``depth`` fused and spread over a warp's threads."""
    fused = sch.fuse(*sch.get_loops(copy)[depth:])
    _, lane = sch.split(fused, factors=[None, warp])
    sch.bind(lane, "threadIdx.x")


def _move_under(sch, block, loop, *, after: bool = False) -> None:
    """``block`` to ``loop`` (compute_at, or reverse_compute_at when ``after``).

    cache_read / cache_write put a new stage beside the stage it copies for; when that one
    is already under ``loop``, so is the new stage (and moving it again is an error).
    """
    here = sch.get(loop)
    if any(sch.get(outer).same_as(here) for outer in sch.get_loops(block)):
        return
    (sch.reverse_compute_at if after else sch.compute_at)(block, loop)


@_step("stage output (cache_write)")
def _stage_output(sch, block, thread_block, output: _Memory, warp: int):
    """Accumulate in the fragment scope; store it to staging, copied out by all threads.

    Returns the block the store intrinsic tensorizes (fragment -> staging).
    """
    if output.staging != "global":
        staged = sch.cache_write(block, 0, output.staging)
        _move_under(sch, staged, thread_block, after=True)
        _cooperative(sch, staged, 1, warp)
    store = sch.cache_write(block, 0, output.fragment)
    _move_under(sch, store, thread_block, after=True)
    return store


@_step("stage inputs (cache_read)")
def _stage_inputs(sch, block, loop, depth: int, inputs: list[_Memory], warp: int) -> list:
    """Each input: global -> staging (cooperative copy) -> fragment, per reduction step.

    Both copies sit under ``loop`` (the innermost reduce loop outside the fragment, at loop
    depth ``depth``), so a staging buffer holds one fragment whatever the problem size.
    Returns the fragment loads, in the block's read order.
    """
    loads = []
    for index, memory in enumerate(inputs):
        if memory.staging != "global":
            staged = sch.cache_read(block, index, memory.staging)
            _move_under(sch, staged, loop)
            _cooperative(sch, staged, depth, warp)
        load = sch.cache_read(block, index, memory.fragment)
        _move_under(sch, load, loop)
        loads.append(load)
    return loads


@_step("decompose_reduction")
def _decompose(sch, block, first_reduce):
    """The accumulator's initialisation, split out before the reduction: the init block."""
    return sch.decompose_reduction(block, first_reduce)


@_step("tensorize")
def _tensorize_gpu(sch, block, compute: str, n_axes: int, init: tuple[object, str],
                   moves: list[tuple[object, _Memory]]) -> None:
    """Each stage at its window loops: init (the output's window), loads, store, compute.

    ``moves`` pairs each load block with its input's memory, then the store block with the
    output's; the compute tensorizes at the main block's ``n_axes`` intrinsic loops.
    """
    init_block, init_intrinsic = init
    output = moves[-1][1]
    sch.tensorize(sch.get_loops(init_block)[-output.dims], init_intrinsic)
    for stage, memory in moves:
        sch.tensorize(sch.get_loops(stage)[-memory.dims], memory.move)
    sch.tensorize(sch.get_loops(block)[-n_axes], compute)


@_step("bind root stages")
def _bind_root_stages(sch, threads: int) -> None:
    """Every stage left at the root (padding, packing, unpacking): an elementwise kernel."""
    from tvm.tirx import ForKind

    for stage in sch.get_child_blocks(sch.get_sblock("root")):
        loops = sch.get_loops(stage)
        if not loops or sch.get(loops[0]).kind == ForKind.THREAD_BINDING:
            continue
        blocks, lanes = sch.split(sch.fuse(*loops), factors=[None, threads])
        sch.bind(blocks, "blockIdx.x")
        sch.bind(lanes, "threadIdx.x")
