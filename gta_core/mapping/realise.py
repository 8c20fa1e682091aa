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

An input that ``reindex`` would duplicate (a sliding window: ``pad[n, c, h + r, w + s]``
depends on more loops than it has dimensions, so its einsum form is an im2col copy ~R*S times
its size) is packed in place instead when every window variable is fed by one operator loop
that indexes one dimension of it alone: ``cache_read`` copies it and ``transform_layout``
splits each such dimension d to (d // e, d % e) with the inner parts last, the other
dimensions kept (for depthwise with lanes from the channels, NCHW -> NCHW16c). Its window is
then trailing and contiguous as well, at the cost of one copy of the input. (CPU only, and not
with padding: ``pad_einsum`` needs the einsum form.)

An input whose window is a contiguous run where it is (one lane variable stepping through its
last dimension by one: ``pad[n, c, h + r, w0 + s : w0 + s + 16]`` with lanes from ``w``) is read
there, with no copy at all (:func:`reads_in_place`); tensorize takes a window at any offset.
When the lanes do not divide that loop, the candidate is realised from a widened program instead
(see :mod:`.rewrite`), since ``pad_einsum`` would need the im2col form.

Two steps skip copies where the data is laid out right already. A mapping whose lanes come
from a reduction loop (``candidate.rfactor``) first splits that loop by the lanes and
``rfactor``s the inner part; the new partial-sum block is the one realised, and the original
block is left adding the lanes up. An output whose intrinsic window is one plain loop over its
last dimension is written in place: ``reindex`` would lay it out in the same bytes, and its
write-back would copy the whole output once more per call.

The result is a correct, untuned program: the starting point of the
generation rules, which tile and place the reindex (packing) stages.

On a GPU target (``realise(..., target)`` with ``target.kind != "cpu"``),
steps 1-4 and the split of step 5 are the same; then, instead of plain loops,
the main block becomes one kernel (one fragment per thread block, each input
staged through "shared" into its declared fragment scope, the accumulator
stored back through "shared"), and every other stage an elementwise kernel:
``stage_operands`` places the copies and ``finish_gpu`` tensorizes, as the GPU
generation rules of a target plugin do with tiled loops. Scopes and
data-movement intrinsics come from the intrinsic's declared operands (``scope``,
``load``, ``store``) and from the TVM intrinsics they name, not from intrinsic
names.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from ..models import Intrinsic, MappingCandidate, Target
from ..workloads import Workload
from .access import (
    Access,
    Computation,
    block_computation,
    intrinsic_computation,
    workload_computation,
)
from .placement import in_place_inputs, index_vars, reads_in_place, writes_in_place
from .rewrite import cpu_program_for, program_for
from .stages import RealisationError


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
             mod=None, pack_in_place: bool = True):
    """Steps 1-4 and the window split: (schedule, main block, op, intr, order)."""
    from tvm import s_tir

    ensure_registered(intrinsic)
    block_name = workload.main_block
    intr = intrinsic_computation(intrinsic)
    sch = s_tir.Schedule(mod if mod is not None else workload.prim_func())
    if candidate.rfactor:
        block_name, candidate = _rfactor(sch, block_name, candidate, intr)
    op = block_computation(sch, block_name)
    order = _new_order(op, intr, candidate)
    where = _Where(direct=reads_in_place(op, intr, candidate) if pack_in_place else set(),
                   packed=in_place_inputs(op, intr, candidate) if pack_in_place else {},
                   output=pack_in_place and writes_in_place(op, intr, candidate))
    _to_einsum(sch, block_name, op, where)
    _relayout_buffers(sch, block_name, op, intr, candidate, order, where)
    _relayout_block(sch, block_name, op, order)
    _pad(sch, block_name, op, intr, candidate, order)
    _split_windows(sch, block_name, op, intr, candidate, order, where)
    return sch, block_name, op, intr, order, candidate


def _bindings(sch, block) -> list:
    """The values the block's iteration variables are bound to, in their order."""
    from tvm.s_tir.stmt import SBlockRealize

    realize = sch.get(sch.get_loops(block)[-1]).body
    if not isinstance(realize, SBlockRealize):
        raise RealisationError("the block is not directly inside its innermost loop")
    return list(realize.iter_values)


@_step("rfactor")
def _rfactor(sch, block_name: str, candidate: MappingCandidate,
             intr: Computation) -> tuple[str, MappingCandidate]:
    """Lanes from a reduction loop: split it by the lanes and ``rfactor`` the inner part.

    The new block accumulates ``out_rf[..., lane]`` over the outer part, and the original
    block (``block_name``) is left adding the lanes up. Returns the new block's name and
    the candidate restated on it: the lane axis takes the new spatial variable, the output
    operand the partial-sum buffer.
    """
    original = block_computation(sch, block_name)
    [name] = candidate.rfactor  # the enumerator makes one lane axis per reduction variable
    lane = next(v for v, group in candidate.axes.items() if group == [name])
    loop = next((loop for loop in sch.get_loops(sch.get_sblock(block_name))
                 if sch.get(loop).loop_var.name == name), None)
    if loop is None:
        raise RealisationError(f"no loop named {name} around block {block_name}")
    _, inner = sch.split(loop, factors=[None, intr.axis(lane).extent])
    rf_block = sch.rfactor(inner, factor_axis=len(original.output.indices))
    rf_name = sch.get(rf_block).name_hint
    # transform_block_layout wants the loops in the order of the block's variables, and
    # rfactor puts the lane variable first.
    loops = {sch.get(loop).loop_var.name: loop for loop in sch.get_loops(rf_block)}
    sch.reorder(*(loops[value.name] for value in _bindings(sch, rf_block)))
    rf = block_computation(sch, rf_name)
    known = {a.name for a in original.axes}
    [new] = [a.name for a in rf.axes if a.kind == "spatial" and a.name not in known]
    output = next(k for k, v in candidate.operands.items() if v == original.output.tensor)
    return rf_name, candidate.model_copy(update={
        "axes": {**candidate.axes, lane: [new]}, "rfactor": [],
        "operands": {**candidate.operands, output: rf.output.tensor}})


def reshape(workload: Workload, candidate: MappingCandidate, intrinsic: Intrinsic,
            mod=None, pack_in_place: bool = True) -> Reshaped:
    """The operator (``mod``, default the workload's PrimFunc) in the mapping's shape.

    Generation rules tile and place stages around the intrinsic's loops next;
    :func:`finish_cpu` then tensorizes. ``pack_in_place`` allows packing sliding-window
    inputs in place (see the module docstring; the GPU pipeline stages einsum-form
    operands only, so it passes False).
    """
    sch, block, op, intr, order, candidate = _prepare(workload, candidate, intrinsic, mod,
                                                      pack_in_place)
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
    operands declare (see the comment above :class:`Memory`).
    """
    if target is None or target.kind == "cpu":
        program, candidate = _cpu_program(workload, candidate, intrinsic)
        shaped = reshape(program, candidate, intrinsic)
        finish_cpu(shaped.sch, shaped.block, shaped.reduce, shaped.inner, shaped.compute)
        return Realised(sch=shaped.sch, block=shaped.block,
                        outer_loops=len(shaped.spatial) + len(shaped.reduce),
                        compute_intrinsic=shaped.compute)
    program = _rewritten(workload, candidate, intrinsic)
    shaped = reshape(program, candidate, intrinsic, pack_in_place=False)
    if not shaped.reduce:
        raise RealisationError("split failed: the intrinsic has no reduce axis to accumulate over")
    inputs, output = block_memory(program, candidate, intrinsic)
    sch = shaped.sch
    thread_block = _bind_thread_blocks(sch, shaped.spatial)
    # One warp per thread block, one fragment per staging buffer (see the comment above Memory).
    stage_operands(sch, shaped.block, inputs, output, intrinsic,
                   Staging(output_at=thread_block, accumulator_at=thread_block,
                           shared_at=shaped.reduce[-1], fragment_at=shaped.reduce[-1]),
                   warp_size(target))
    finish_gpu(sch, shaped.block, shaped.reduce, shaped.inner, shaped.compute)
    return Realised(sch=sch, block=shaped.block, outer_loops=1 + len(shaped.reduce),
                    compute_intrinsic=shaped.compute)


_cpu_program = _step("rewrite the program")(cpu_program_for)
_rewritten = _step("rewrite the program")(program_for)


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


@dataclass(frozen=True)
class _Where:
    """Which operands keep their memory: inputs read where they are (``direct``), inputs packed
    in place (``packed``: read index -> window variable -> dimension), the output written
    where it is (``output``). Every other operand goes through the einsum form."""

    direct: set[int]
    packed: dict[int, dict[str, int]]
    output: bool

    def __post_init__(self) -> None:
        for index in self.direct:  # read where it is beats a copy
            self.packed.pop(index, None)

    def keeps(self, operand: _Operand) -> bool:
        """Whether ``operand`` skips the einsum layout (its own, or no layout change at all)."""
        if operand.kind == "write":
            return self.output
        return operand.index in self.direct or operand.index in self.packed


@_step("reindex")
def _to_einsum(sch, block_name: str, op: Computation, where: _Where) -> None:
    block = sch.get_sblock(block_name)
    for index in range(len(op.inputs)):
        if index in where.packed:
            sch.cache_read(block, index, "global")
        elif index not in where.direct:
            sch.reindex(block, ("read", index))
    if not where.output:
        sch.reindex(block, ("write", 0))


@dataclass(frozen=True)
class _Operand:
    """Where one operand of the main block sits: its buffer and its intrinsic window."""

    kind: str  # "read" | "write": the buffer's side of the main block
    index: int
    dims: tuple[str, ...]  # after reindex: the variables it depends on, in block order
    outer: tuple[str, ...]  # dims outside the intrinsic's window
    intrinsic: Access  # the intrinsic operand it is

    @property
    def window(self) -> tuple[str, ...]:
        """The intrinsic variables indexing the window, in the operand's order."""
        return tuple(v for index in self.intrinsic.indices for v, c in index if v and c)


def _operands(op: Computation, intr: Computation, candidate: MappingCandidate,
              order: _Order) -> list[_Operand]:
    intr_operands = {x.tensor: x for x in (*intr.inputs, intr.output)}
    role = {tensor: name for name, tensor in candidate.operands.items()}
    out = []
    for kind, accesses in (("read", op.inputs), ("write", (op.output,))):
        for index, access in enumerate(accesses):
            dims = tuple(a.name for a in op.axes if access.depends_on(a.name))
            out.append(_Operand(kind, index, dims, tuple(d for d in order.outer if d in dims),
                                intr_operands[role[access.tensor]]))
    return out


@_step("transform_layout")
def _relayout_buffers(sch, block_name: str, op: Computation, intr: Computation,
                      candidate: MappingCandidate, order: _Order, where: _Where) -> None:
    """Each operand buffer to [outer dims..., one fused dim per window variable].

    An input packed in place keeps its dimensions, each window dimension d split to
    (d // e in place, d % e last): its windows are contiguous from here on. An input read
    and an output written where they are keep their layout.
    """
    from tvm.tirx import IndexMap

    extents = {a.name: a.extent for a in op.axes}
    group_of = dict(zip((v.name for v in intr.axes), order.groups))
    block = sch.get_sblock(block_name)
    for operand in _operands(op, intr, candidate, order):
        if operand.kind == "read" and operand.index in where.packed:
            window = where.packed[operand.index]
            ndim = len(op.inputs[operand.index].indices)
            sizes = {window[var]: intr.axis(var).extent for var in operand.window}
            sch.transform_layout(block, ("read", operand.index), IndexMap.from_func(
                _split_in_place(sizes, [window[var] for var in operand.window]), ndim=ndim,
                index_dtype="int32"))
            continue
        if where.keeps(operand):
            continue
        window = [group_of[var] for var in index_vars(operand.intrinsic)]
        relayout = _layout(list(operand.dims), list(operand.outer), window, extents)
        sch.transform_layout(block, (operand.kind, operand.index),
                             IndexMap.from_func(relayout, ndim=len(operand.dims),
                                                index_dtype="int32"))


@_step("transform_layout (split)")
def _split_windows(sch, block_name: str, op: Computation, intr: Computation,
                   candidate: MappingCandidate, order: _Order, where: _Where) -> None:
    """Each fused window dim d to (d // e, d % e) with the inner parts last: contiguous windows."""
    from tvm.tirx import IndexMap

    block = sch.get_sblock(block_name)
    for operand in _operands(op, intr, candidate, order):
        if where.keeps(operand):
            continue  # split when it was laid out, or contiguous where it is
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


def _split_in_place(sizes: dict[int, int], window: list[int]):
    """Index map: dims -> [each dim, or d // size for a window dim..., d % size per window dim].

    ``window`` lists the window dimensions in the order the intrinsic operand indexes them.
    """
    def split(*values):
        return [v // sizes[d] if d in sizes else v for d, v in enumerate(values)] + [
            values[d] % sizes[d] for d in window]

    return split


def _layout(dims: list[str], outer: list[str], window: list[tuple[str, ...]],
            extents: dict[str, int]):
    """Index map: buffer dims -> [outer dims..., fused window dims...]."""
    def relayout(*values):
        named = dict(zip(dims, values))
        return [named[d] for d in outer] + [_fuse(g, named, extents) for g in window]

    return relayout


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
# contiguous, whatever tiling is put on top later. `realise` then builds one kernel for the
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
# The program is the workload rewritten where the candidate needs it (`rewrite.program_for`):
# its product commuted, when the intrinsic's first input is the operator's second tensor
# (tensorize matches a block's reads by position), and u8 data taken as s8 plus a correction,
# for an s8 x s8 intrinsic.


@dataclass(frozen=True)
class Memory:
    """Where one intrinsic operand lives and how it moves: read from the declarations."""

    fragment: str  # the declared scope, e.g. "wmma.matrix_a"
    staging: str  # the scope its load intrinsic reads from / its store intrinsic writes to
    move: str  # the TVM intrinsic that loads it (inputs) or stores it (the output)
    dims: int  # dimensions of its window: the innermost loops a load / store tensorizes


# Block annotations naming the TVM intrinsic that finish_gpu tensorizes a block with: on a
# load / store block, and on the main block for its accumulator's initialisation.
TENSORIZE = "gta.tensorize"
TENSORIZE_INIT = "gta.tensorize_init"
ELEMENTWISE_THREADS = 128  # threads per block of the kernels left at the root (packing...)


def warp_size(target: Target) -> int:
    return int(target.tvm.get("thread_warp_size") or target.resources.warp_size or 32)


def _desc_scopes(tvm_intrinsic: str) -> tuple[str, str]:
    """(scope read, scope written) by a registered TVM data-movement intrinsic's description."""
    from tvm.s_tir import TensorIntrin

    found = TensorIntrin.get(tvm_intrinsic, allow_missing=True)
    if found is None:
        raise RealisationError(f"TVM tensor intrinsic {tvm_intrinsic} is not registered")
    block = found.desc.body.block
    return block.reads[0].source.scope(), block.writes[0].source.scope()


def fragment_scopes(intrinsic: Intrinsic) -> dict[str, Memory]:
    """Per intrinsic operand, its scopes and mover; RealisationError where one is missing.

    The fragment scope is the operand's declared ``scope``; the staging scope (where a load
    reads from, where a store writes to) comes from the TVM intrinsic named by its ``load``
    or ``store``, whose description says it.
    """
    ensure_registered(intrinsic)  # the scopes are read from the TVM intrinsics it names
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
        out[operand.name] = Memory(fragment=fragment, staging=staging, move=move,
                                   dims=len(operand.indices))
    return out


def block_memory(program: Workload, candidate: MappingCandidate,
                 intrinsic: Intrinsic) -> tuple[list[Memory], Memory]:
    """The main block's inputs' memory, in the order the block reads them, and its output's."""
    memory = fragment_scopes(intrinsic)
    op = workload_computation(program)
    role = {tensor: name for name, tensor in candidate.operands.items()}
    return [memory[role[a.tensor]] for a in op.inputs], memory[role[op.output.tensor]]


@dataclass
class Staging:
    """Where the copies of the main block's operands go (loops of the main block).

    The accumulator fragments live under ``accumulator_at`` (a warp's loop) and are stored to
    their staging buffer under ``output_at`` (the thread block's), which all threads copy out;
    each input is copied to its staging buffer under ``shared_at`` by all threads, then loaded
    into fragments under ``fragment_at``. ``warps`` (ints or sampled factors, whose product is
    the warp count) spreads copies over threadIdx.y as well as a warp's threadIdx.x lanes;
    ``vector`` is the elements each lane moves at once.
    """

    output_at: object
    accumulator_at: object
    shared_at: object
    fragment_at: object
    warps: list = field(default_factory=list)
    vector: int = 1


@_step("stage operands (cache_read / cache_write)")
def stage_operands(sch, block_name: str, inputs: list[Memory], output: Memory,
                   intrinsic: Intrinsic, staging: Staging, warp: int) -> None:
    """Stage every operand of the main block as ``staging`` says, and name the intrinsics that
    :func:`finish_gpu` tensorizes the fragment loads and store with."""
    block = sch.get_sblock(block_name)
    if output.staging != "global":
        staged = sch.cache_write(block, 0, output.staging)
        _move_under(sch, staged, staging.output_at, after=True)
        _cooperative(sch, staged, _depth(sch, block, staging.output_at), warp, staging.warps, 1)
    store = sch.cache_write(block, 0, output.fragment)
    _move_under(sch, store, staging.accumulator_at, after=True)
    sch.annotate(store, TENSORIZE, output.move)
    for index, memory in enumerate(inputs):
        if memory.staging != "global":
            staged = sch.cache_read(block, index, memory.staging)
            _move_under(sch, staged, staging.shared_at)
            _cooperative(sch, staged, _depth(sch, block, staging.shared_at), warp, staging.warps,
                         staging.vector)
        load = sch.cache_read(block, index, memory.fragment)
        _move_under(sch, load, staging.fragment_at)
        sch.annotate(load, TENSORIZE, memory.move)
    sch.annotate(block, TENSORIZE_INIT, intrinsic.tvm_intrinsics["init"])


@_step("bind blockIdx.x")
def _bind_thread_blocks(sch, spatial: list):
    """One thread block per output fragment: the spatial outer loops fused, on blockIdx.x."""
    fused = sch.fuse(*spatial)
    sch.bind(fused, "blockIdx.x")
    return fused


def _depth(sch, block, loop) -> int:
    """How many loops of ``block`` enclose ``loop``, itself included."""
    here = sch.get(loop)
    return 1 + next(i for i, outer in enumerate(sch.get_loops(block))
                    if sch.get(outer).same_as(here))


def _cooperative(sch, copy, depth: int, warp: int, warps: list, vector: int) -> None:
    """The copy's loops below the first ``depth`` fused and spread over the block's threads.

    The threadIdx.y part is split by each factor of ``warps`` and fused back, so that a trace
    holds only the sampled factors themselves (it cannot hold their product).
    """
    fused = sch.fuse(*sch.get_loops(copy)[depth:])
    parts = sch.split(fused, factors=[None, *warps, warp, *([vector] if vector > 1 else [])])
    if warps:
        sch.bind(sch.fuse(*parts[1:1 + len(warps)]), "threadIdx.y")
    sch.bind(parts[1 + len(warps)], "threadIdx.x")
    if vector > 1:
        sch.vectorize(parts[-1])


def _move_under(sch, block, loop, *, after: bool = False) -> None:
    """``block`` to ``loop`` (compute_at, or reverse_compute_at when ``after``).

    cache_read / cache_write put a new stage beside the stage it copies for; when that one
    is already under ``loop``, so is the new stage (and moving it again is an error).
    """
    here = sch.get(loop)
    if any(sch.get(outer).same_as(here) for outer in sch.get_loops(block)):
        return
    # Unit loops kept: the moved stage then has as many loops whatever the tile sizes, which a
    # trace replayed with other sampled decisions needs (its get_loops must return as many).
    (sch.reverse_compute_at if after else sch.compute_at)(block, loop, preserve_unit_loops=True)


def _window_loops(tvm_intrinsic: str) -> int:
    """How many loops the description of a registered TVM tensor intrinsic has."""
    from tvm.s_tir import TensorIntrin
    from tvm.tirx import For

    stmt, count = TensorIntrin.get(tvm_intrinsic).desc.body.block.body, 0
    while isinstance(stmt, For):
        count, stmt = count + 1, stmt.body
    return count


@_step("tensorize")
def finish_gpu(sch, block_name: str, reduce: list, inner: list, compute: str) -> None:
    """Tensorize a staged GPU program (see :func:`stage_operands`) and bind the other kernels.

    The accumulator's initialisation is split out before ``reduce[0]``; it, each annotated
    load and store, and the main block (at ``inner[0]``) are tensorized; every stage left at
    the root becomes an elementwise kernel.
    """
    block = sch.get_sblock(block_name)
    init_intrinsic = str(sch.get(block).annotations[TENSORIZE_INIT])
    movers = [(stage, str(sch.get(stage).annotations[TENSORIZE]))
              for stage in [*sch.get_producers(block), *sch.get_consumers(block)]
              if TENSORIZE in sch.get(stage).annotations]
    init = sch.decompose_reduction(block, reduce[0])
    sch.tensorize(sch.get_loops(init)[-_window_loops(init_intrinsic)], init_intrinsic)
    for stage, name in movers:
        sch.tensorize(sch.get_loops(stage)[-_window_loops(name)], name)
    sch.tensorize(inner[0], compute)
    _bind_root_stages(sch, ELEMENTWISE_THREADS)


def _bind_root_stages(sch, threads: int) -> None:
    """Every stage left at the root (padding, packing, unpacking, sums): a kernel over its
    spatial loops (a reduction stays serial in each thread)."""
    from tvm.tirx import ForKind

    for stage in sch.get_child_blocks(sch.get_sblock("root")):
        loops = sch.get_loops(stage)
        if not loops or sch.get(loops[0]).kind == ForKind.THREAD_BINDING:
            continue
        spatial = sum(1 for v in sch.get(stage).iter_vars if v.iter_type == 0)  # DataPar
        blocks, lanes = sch.split(sch.fuse(*loops[:spatial]), factors=[None, threads])
        sch.bind(blocks, "blockIdx.x")
        sch.bind(lanes, "threadIdx.x")
