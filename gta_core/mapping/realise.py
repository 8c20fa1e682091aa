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
from dataclasses import dataclass

from ..models import Intrinsic, MappingCandidate, Target
from ..workloads import Workload
from .access import (
    Access,
    Computation,
    block_computation,
    intrinsic_computation,
)
from .enumerate import lane_of, split_terms
from .placement import in_place_inputs, index_vars, reads_in_place, writes_in_place
from .rewrite import cpu_program_for, rebuild_index, steps_by_one
from .stages import PADDED, RealisationError


@dataclass
class Realised:
    """A realised candidate: the schedule and where its pieces are."""

    sch: object  # tvm.s_tir.Schedule
    block: str  # the tensorized main block
    outer_loops: int  # loops of the main block outside the intrinsic
    compute_intrinsic: str  # the TVM tensor intrinsic used


def realisation_step(name: str):
    """Decorate one step of a realisation: any exception it raises becomes a
    :class:`RealisationError` naming the step (TVM's schedule primitives raise many kinds)."""

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
    layouts = _declared_layouts(op, candidate, intrinsic)
    where = where.without(layouts)
    _to_einsum(sch, block_name, op, where)
    _relayout_buffers(sch, block_name, op, intr, candidate, order, where)
    _relayout_block(sch, block_name, op, order)
    _pad(sch, block_name, op, intr, candidate, order)
    if pack_in_place and candidate.padding:
        _pack_into_padding(sch, block_name)
    _split_windows(sch, block_name, op, intr, candidate, order, where)
    _lay_out_windows(sch, block_name, op, intr, candidate, order, layouts)
    return sch, block_name, op, intr, order, candidate


def _declared_layouts(op: Computation, candidate: MappingCandidate,
                      intrinsic: Intrinsic) -> dict[tuple[str, int], list[str]]:
    """(``"read"``/``"write"``, index) -> the window layout its intrinsic operand declares."""
    declared = {o.name: o.layout for o in intrinsic.compute.operands if o.layout}
    role = {tensor: name for name, tensor in candidate.operands.items()}
    sides = (("read", op.inputs), ("write", (op.output,)))
    return {(kind, n): declared[role[access.tensor]] for kind, accesses in sides
            for n, access in enumerate(accesses) if role[access.tensor] in declared}


def _bindings(sch, block) -> list:
    """The values the block's iteration variables are bound to, in their order."""
    from tvm.s_tir.stmt import SBlockRealize

    realize = sch.get(sch.get_loops(block)[-1]).body
    if not isinstance(realize, SBlockRealize):
        raise RealisationError("the block is not directly inside its innermost loop")
    return list(realize.iter_values)


@realisation_step("rfactor")
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
    lane = lane_of(intr, candidate.axes, name)
    terms = split_terms(intr, candidate.axes, name)
    loop = next((loop for loop in sch.get_loops(sch.get_sblock(block_name))
                 if sch.get(loop).loop_var.name == name), None)
    if loop is None:
        raise RealisationError(f"no loop named {name} around block {block_name}")
    # The split form (a dot intrinsic) keeps the lane's terms as an inner reduction loop.
    inner = sch.split(loop, factors=[None, intr.axis(lane).extent]
                      + ([terms] if terms > 1 else []))[1]
    rf_block = sch.rfactor(inner, factor_axis=len(original.output.indices))
    rf_name = sch.get(rf_block).name_hint
    # transform_block_layout wants the loops in the order of the block's variables, and
    # rfactor puts the lane variable first.
    loops = {sch.get(loop).loop_var.name: loop for loop in sch.get_loops(rf_block)}
    sch.reorder(*(loops[value.name] for value in _bindings(sch, rf_block)))
    rf = block_computation(sch, rf_name)
    known = {a.name for a in original.axes}
    [new] = [a.name for a in rf.axes if a.kind == "spatial" and a.name not in known]
    axes = {**candidate.axes, lane: [new]}
    if terms > 1:  # the reduction axis takes the innermost of the split's loops
        term = [a.name for a in rf.axes if a.kind == "reduce" and a.name not in known][-1]
        axes.update({v: [term] for v, group in candidate.axes.items()
                     if group == [name] and intr.axis(v).kind == "reduce"})
    output = next(k for k, v in candidate.operands.items() if v == original.output.tensor)
    return rf_name, candidate.model_copy(update={
        "axes": axes, "rfactor": [],
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


@realisation_step("tensorize")
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
    """A schedule computing ``workload`` with ``intrinsic`` as ``candidate`` maps it, untuned.

    None or a CPU target gives the core's CPU schedule (packing stages at the root, the
    tensorized block in plain loops). A target that names a ``realisation`` module (a GPU's:
    a kernel whose operands move through the memory scopes its intrinsics declare) is
    realised by that module's ``realise``.
    """
    module = realisation_module(target)
    if module is not None:
        return module.realise(workload, candidate, intrinsic, target)
    program, candidate = _cpu_program(workload, candidate, intrinsic)
    shaped = reshape(program, candidate, intrinsic)
    finish_cpu(shaped.sch, shaped.block, shaped.reduce, shaped.inner, shaped.compute)
    return Realised(sch=shaped.sch, block=shaped.block,
                    outer_loops=len(shaped.spatial) + len(shaped.reduce),
                    compute_intrinsic=shaped.compute)


def realisation_module(target: Target | None):
    """The plugin module realising ``target``'s programs (``Target.realisation``), or None
    for the core's CPU realisation; a non-CPU target naming none cannot be realised."""
    if target is not None and target.realisation:
        return importlib.import_module(target.realisation)
    if target is not None and target.kind != "cpu":
        raise RealisationError(f"target {target.name} is a {target.kind} target and names no "
                               "realisation module; the core realises CPU programs only")
    return None


def finisher(target: Target):
    """``finish(sch, block, reduce, inner, compute)`` for ``target``'s sketches: tensorize
    the main block (and, on a GPU, its staging copies) once the rules have run."""
    module = realisation_module(target)
    return finish_cpu if module is None else module.finish


_cpu_program = realisation_step("rewrite the program")(cpu_program_for)


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

    def without(self, operands) -> _Where:
        """The same, with ``operands`` (``(kind, index)`` pairs) going through the einsum
        form: an operand whose intrinsic declares a layout of its own is packed into it."""
        reads = {index for kind, index in operands if kind == "read"}
        return _Where(direct=self.direct - reads,
                      packed={i: w for i, w in self.packed.items() if i not in reads},
                      output=self.output and ("write", 0) not in operands)

    def keeps(self, operand: _Operand) -> bool:
        """Whether ``operand`` skips the einsum layout (its own, or no layout change at all)."""
        if operand.kind == "write":
            return self.output
        return operand.index in self.direct or operand.index in self.packed


@realisation_step("reindex")
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


@realisation_step("transform_layout")
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


@realisation_step("transform_layout (split)")
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


@realisation_step("transform_layout (intrinsic's window layout)")
def _lay_out_windows(sch, block_name: str, op: Computation, intr: Computation,
                     candidate: MappingCandidate, order: _Order,
                     layouts: dict[tuple[str, int], list[str]]) -> None:
    """Each window an intrinsic operand reads in a layout of its own (``Operand.layout``)
    to that layout: its trailing window dims, named by the operand's variables, become the
    layout's dims."""
    from tvm.tirx import IndexMap

    block = sch.get_sblock(block_name)
    for operand in _operands(op, intr, candidate, order):
        layout = layouts.get((operand.kind, operand.index))
        if layout is None:
            continue
        leading = len(operand.outer) + len(operand.window)  # then the windows (_split_windows)
        sch.transform_layout(block, (operand.kind, operand.index), IndexMap.from_func(
            _in_layout(leading, operand.window, layout),
            ndim=leading + len(operand.window), index_dtype="int32"))


def _in_layout(leading: int, window: tuple[str, ...], layout: list[str]):
    """Index map: [leading..., window...] -> [leading..., layout's expressions of the window]."""
    code = [compile(expression, "<layout>", "eval") for expression in layout]

    def lay_out(*values):
        named = dict(zip(window, values[leading:]))
        # The expressions were checked to be affine over these names (models.Operand).
        return [*values[:leading], *(eval(c, {"__builtins__": {}}, named) for c in code)]

    return lay_out


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


@realisation_step("transform_block_layout")
def _relayout_block(sch, block_name: str, op: Computation, order: _Order) -> None:
    from tvm.tirx import IndexMap

    extents = {a.name: a.extent for a in op.axes}
    names = [a.name for a in op.axes]
    relayout = _layout(names, list(order.outer), list(order.groups), extents)
    sch.transform_block_layout(sch.get_sblock(block_name),
                               IndexMap.from_func(relayout, ndim=len(names), index_dtype="int32"))


@realisation_step("pad_einsum")
def _pad(sch, block_name: str, op: Computation, intr: Computation,
         candidate: MappingCandidate, order: _Order) -> None:
    if not candidate.padding:
        return
    multiples = [1] * len(order.outer) + [v.extent for v in intr.axes]
    sch.pad_einsum(sch.get_sblock(block_name), multiples)


@realisation_step("pack into the padding")
def _pack_into_padding(sch, block_name: str) -> None:
    """Make each padded input one copy: its packing stage inlined into ``pad_einsum``'s.

    ``pad_einsum`` pads the packed buffer with a copy of its own (``X_reindex_pad``), so
    the input went through two serial passes (a 3x3 convolution's im2col, then that copy
    with its rows rounded up to the intrinsic's: 56 of ResNet-50's layer3 3x3's 147 us on
    AMX). Walking the packing stage in the order of the buffer it writes makes it a plain
    copy, which inlines; the padding stage is then the packing stage, which the generation
    rules vectorise, run in parallel and inline the convolution's own padding into. Only
    where the one copy moves contiguous runs (:func:`_reads_runs`): a stem's im2col over
    fused taps (``2w + s % 7``) merged became a gather, 485 us against 302 for ResNet-18's
    stem at 128x128. An input whose packing is not merged keeps its two copies: the merge is
    an optimisation, never a reason to lose a candidate.
    """
    from tvm import tirx

    main = sch.get_sblock(block_name)
    for pad in sch.get_producers(main):
        if not sch.get(pad).name_hint.endswith(PADDED):
            continue
        for packing in sch.get_producers(pad):
            stmt = sch.get(packing)
            if not stmt.name_hint.endswith("_reindex_reindex") or not _reads_runs(stmt):
                continue  # merged, the copy would gather: two copies stay
            variables = [v.var for v in stmt.iter_vars]
            try:
                sch.transform_block_layout(packing, tirx.IndexMap.from_func(
                    _written_at(stmt), ndim=len(variables), index_dtype=str(variables[0].ty)))
                sch.compute_inline(packing)
            except Exception:  # noqa: BLE001 - TVM raises many kinds; the primitives are atomic
                continue


MIN_RUN = 4  # elements a merged copy moves at a time, at least


def _reads_runs(stmt) -> bool:
    """Whether a packing stage reads its source's last dimension with one of its loops
    (an NCHWc input's channels, a GEMM row), or steps it by one along the variable of its
    own last written index for at least ``MIN_RUN`` elements (a 7x7 stride-2 stem's
    ``2w + rx``, its taps' rows and columns kept apart): ResNet-50's stem on a VNNI mapping,
    its copies merged, 578 us against 638 with two parallel copies and 818 with the im2col
    serial. A 3x3 window's rows of 3 stay two copies."""
    from tvm import tirx

    if len(stmt.reads) != 1:
        return False
    index = stmt.reads[0].region[-1].min
    if isinstance(index, tirx.Var):
        return True
    last = stmt.writes[0].region[-1].min
    if not isinstance(last, tirx.Var):
        return False
    run = next(int(v.dom.extent) for v in stmt.iter_vars if v.var.same_as(last))
    return run >= MIN_RUN and steps_by_one(index, last)


def _written_at(stmt):
    """The index map from ``stmt``'s iteration variables to the indices it writes."""
    variables = [v.var for v in stmt.iter_vars]
    written = [r.min for r in stmt.writes[0].region]
    return lambda *new: [rebuild_index(index, dict(zip(variables, new))) for index in written]


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
