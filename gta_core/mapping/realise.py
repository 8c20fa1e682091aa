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
"""

from __future__ import annotations

from dataclasses import dataclass

from ..models import Intrinsic, MappingCandidate
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


def realise(workload: Workload, candidate: MappingCandidate, intrinsic: Intrinsic) -> Realised:
    """A schedule computing ``workload`` with ``intrinsic`` as ``candidate`` maps it."""
    from tvm import s_tir

    if intrinsic.tvm_module:
        import importlib

        importlib.import_module(intrinsic.tvm_module)
    sch = s_tir.Schedule(workload.prim_func())
    block_name = workload.main_block
    op = block_computation(sch, block_name)
    intr = intrinsic_computation(intrinsic)
    order = _new_order(op, intr, candidate)
    _to_einsum(sch, block_name, op)
    _relayout_buffers(sch, block_name, op, intr, candidate, order)
    _relayout_block(sch, block_name, op, order)
    _pad(sch, block_name, op, intr, candidate, order)
    _split_windows(sch, block_name, op, intr, candidate, order)
    outer = _tile_and_tensorize(sch, block_name, op, intr, candidate, intrinsic, order)
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
                             IndexMap.from_func(relayout, ndim=len(operand.dims), index_dtype="int32"))


@_step("transform_layout (split)")
def _split_windows(sch, block_name: str, op: Computation, intr: Computation,
                   candidate: MappingCandidate, order: _Order) -> None:
    """Each fused window dim d to (d // e, d % e) with the inner parts last: contiguous windows."""
    from tvm.tirx import IndexMap

    block = sch.get_sblock(block_name)
    for operand in _operands(op, intr, candidate, order):
        sizes = [intr.axis(var).extent for var in operand.window]
        sch.transform_layout(block, (operand.kind, operand.index), IndexMap.from_func(
            _split(len(operand.outer), sizes), ndim=len(operand.outer) + len(sizes), index_dtype="int32"))


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


@_step("tensorize")
def _tile_and_tensorize(sch, block_name: str, op: Computation, intr: Computation,
                        candidate: MappingCandidate, intrinsic: Intrinsic, order: _Order) -> int:
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
    spatial = [l for l, name in zip(outer_loops, order.outer) if kinds[name] == "spatial"]
    reduce = [l for l, name in zip(outer_loops, order.outer) if kinds[name] == "reduce"]
    spatial += [o for o, kind in outers if kind == "spatial"]
    reduce += [o for o, kind in outers if kind == "reduce"]
    sch.reorder(*spatial, *reduce, *inners)
    first_reduce = reduce[0] if reduce else inners[0]
    sch.decompose_reduction(block, first_reduce)
    sch.tensorize(inners[0], _compute_name(op, intr, candidate, intrinsic))
    return len(spatial) + len(reduce)

