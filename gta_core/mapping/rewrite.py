"""The program a mapping is realised from: the workload, rewritten where the intrinsic needs it.

Three exact rewrites, each applied only where a candidate needs it:

- **commuted**: the main block's ``out + a * b`` written ``out + b * a``, for a candidate that
  gives the intrinsic's first input the operator's second tensor (TVM's tensorize matches a
  block's reads by position) when the intrinsic declares no ``compute_mirrored``;
- **signed**: a u8 x s8 product computed on an s8 x s8 intrinsic (NVIDIA's wmma has no mixed-sign
  fragment pair). With ``a' = a - 128`` (an s8 value), ``sum a*b = sum a'*b + 128 * sum b``: the
  main stage multiplies ``a'`` by ``b``, a small reduction sums ``b`` over the reduction axes
  (once per weight column, not per output), and an elementwise stage adds ``128 *`` that sum.
  Padded elements stay exact: a padded ``a = 0`` becomes ``a' = -128`` and the correction adds
  its ``128 * b`` back.
- **widened** (CPU): a loop whose extent the intrinsic's lanes do not divide, computed over the
  padded extent, for a candidate that reads a sliding-window input where it is (a depthwise
  convolution's ``pad[n, c, h + r, w + s]`` with lanes from ``w``: ``pad_einsum``, the other way
  to pad, needs every operand in the einsum form, which for that input is an im2col copy R*S times
  its size). The main stage writes a wider buffer that a ``_crop`` stage copies into the output,
  and each input indexed by the loop is read through a ``_wide`` stage that appends zeros (the
  padding stage it reads, if any, inlined into it). The extra lanes compute garbage nobody reads.

A rewritten workload keeps its spec, reference and main block name, so task keys, records and
numpy checks are unchanged; only its program differs.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..models import Intrinsic, MappingCandidate
from ..workloads import Workload
from .access import block_computation, intrinsic_computation, workload_computation
from .placement import reads_in_place
from .stages import CROPPED, WIDE, RealisationError

OFFSET = 128  # a u8 value minus OFFSET is an s8 value


class RewriteError(RealisationError):
    """A workload that the rewrite a candidate needs does not apply to; says why."""


@dataclass(frozen=True)
class RewrittenWorkload(Workload):
    """A workload whose program is rewritten (see the module docstring); same spec."""

    signed: bool = False
    commuted: bool = False
    widened: tuple[tuple[str, int], ...] = ()  # (main stage axis, extent computed)

    def te(self) -> list:
        tensors = super().te()
        if self.widened:
            tensors = widened_te(tensors, self.main_block, dict(self.widened))
        return signed_te(tensors, self.main_block) if self.signed else tensors

    def prim_func(self):
        func = super().prim_func()
        if self.widened:
            func = _inline_into_wide(func)
        return commuted_prim_func(func, self.main_block) if self.commuted else func


def needs_signed(workload: Workload, intrinsic: Intrinsic) -> bool:
    """Whether ``workload`` reads u8 data that ``intrinsic`` can only take as s8."""
    data = [t.dtype for t in workload.operator.inputs(workload.params)]
    return "uint8" in data and "uint8" not in intrinsic.input_dtypes \
        and "int8" in intrinsic.input_dtypes


def signed_form(workload: Workload, intrinsic: Intrinsic) -> Workload:
    """``workload`` in the form whose operands ``intrinsic`` takes (itself when it already is)."""
    if not needs_signed(workload, intrinsic) or getattr(workload, "signed", False):
        return workload
    return RewrittenWorkload(workload.operator, workload.params, signed=True)


def program_for(workload: Workload, candidate: MappingCandidate,
                intrinsic: Intrinsic) -> Workload:
    """The workload ``candidate`` is realised from on a GPU: signed and/or commuted as needed."""
    program = signed_form(workload, intrinsic)
    if not _needs_commuting(program, candidate, intrinsic):
        return program
    return RewrittenWorkload(workload.operator, workload.params,
                             signed=getattr(program, "signed", False), commuted=True)


def cpu_program_for(workload: Workload, candidate: MappingCandidate,
                    intrinsic: Intrinsic) -> tuple[Workload, MappingCandidate]:
    """The workload and candidate a CPU candidate is realised from: widened where it needs it
    (see the module docstring), with the padding it no longer needs dropped; else both as
    they are."""
    widen = widening(workload, candidate, intrinsic)
    if not widen:
        return workload, candidate
    program = RewrittenWorkload(workload.operator, workload.params,
                                widened=tuple(sorted(widen.items())))
    grown = {a.tensor for a in workload_computation(workload).inputs
             if any(a.depends_on(name) for name in widen)}
    operands = {k: f"{v}{WIDE}" if v in grown else v for k, v in candidate.operands.items()}
    return program, candidate.model_copy(update={"padding": {}, "operands": operands})


def widening(workload: Workload, candidate: MappingCandidate,
             intrinsic: Intrinsic) -> dict[str, int]:
    """Operator loops to compute over a padded extent, {loop: extent}; {} when none.

    So when: the candidate pads, every padded intrinsic axis takes one loop, and an input is
    read where it is (:func:`~gta_core.mapping.placement.reads_in_place`) but for that padding.
    A reduction loop qualifies only where an input indexes a dimension with it alone: that
    input's zeros then cancel every extra term (``weight[c, r, s]`` for ``s``; ``pad[.., w +
    s]`` is not zero at ``s = 3``). Every other padded candidate goes through ``pad_einsum``.
    """
    if not candidate.padding or candidate.rfactor or not isinstance(workload, Workload) or \
            workload.te()[-1].op.name != workload.main_block:  # stages after it: not widened
        return {}  # (a model's fused function has no TE to widen: it pads through pad_einsum)
    op = workload_computation(workload)
    intr = intrinsic_computation(intrinsic)
    widen = {}
    for var, extent in candidate.padding.items():
        [*group] = candidate.axes[var]
        if len(group) != 1 or op.axis(group[0]).kind == "reduce" and not any(
                ((group[0], 1),) in access.indices for access in op.inputs):
            return {}
        widen[group[0]] = extent
    unpadded = candidate.model_copy(update={"padding": {}})
    if not reads_in_place(op, intr, unpadded):
        return {}
    # Each access must step through a widened loop by one, in one dimension at most: that
    # dimension then grows by as much as the loop does.
    for access in (*op.inputs, op.output):
        for name in widen:
            if access.depends_on(name) and access.dimension_of({name: 1}) is None:
                return {}
    return widen


def _needs_commuting(workload: Workload, candidate: MappingCandidate,
                     intrinsic: Intrinsic) -> bool:
    """Whether the block reads its two inputs the other way round from the compute intrinsic,
    and the intrinsic declares no ``compute_mirrored`` for that order."""
    from tvm import s_tir

    op = block_computation(s_tir.Schedule(workload.prim_func()), workload.main_block)
    intr = intrinsic_computation(intrinsic)
    block_order = [a.tensor for a in op.inputs]
    intrinsic_order = [candidate.operands.get(x.tensor) for x in intr.inputs]
    return (block_order != intrinsic_order and block_order == intrinsic_order[::-1]
            and "compute_mirrored" not in intrinsic.tvm_intrinsics)


# --- commuted -----------------------------------------------------------------------------------


def commuted_prim_func(func, main_block: str):
    """``func`` with its main block's ``out + a * b`` written ``out + b * a``.

    Exact (multiplication commutes, also in floating point), and the main block then reads
    its inputs the other way round.
    """
    from tvm import tirx
    from tvm.tirx import stmt as ir

    def commute(block):
        if block.name_hint != main_block:
            return None
        store = block.body
        value = getattr(store, "value", None)
        if not (isinstance(store, ir.BufferStore) and isinstance(value, tirx.Add)
                and isinstance(value.b, tirx.Mul) and len(block.reads) == 2):
            raise RewriteError(f"cannot commute the product of {block.name_hint}: it is "
                               "not out = out + a * b")
        product = tirx.Mul(value.b.b, value.b.a)
        body = ir.BufferStore(store.buffer, tirx.Add(value.a, product), store.indices)
        return _with_body(block, body, reads=[block.reads[1], block.reads[0]])

    return _map_blocks(func, commute)


def _with_body(block, body, reads=None):
    from tvm.s_tir.stmt import SBlock

    return SBlock(block.iter_vars, block.reads if reads is None else reads, block.writes,
                  block.name_hint, body, block.init, block.alloc_buffers,
                  block.match_buffers, block.annotations)


def _map_blocks(func, change):
    """``func`` with each block that ``change(block)`` returns a new block for replaced.

    (TVM 0.27 has no Python IR mutator: the loop nest above the blocks is rebuilt by hand.)
    """
    from tvm.s_tir.stmt import SBlockRealize
    from tvm.tirx import stmt as ir

    def visit(stmt):
        if isinstance(stmt, SBlockRealize):
            block = change(stmt.block) or _with_body(stmt.block, visit(stmt.block.body))
            return SBlockRealize(stmt.iter_values, stmt.predicate, block)
        if isinstance(stmt, ir.SeqStmt):
            return ir.SeqStmt([visit(child) for child in stmt.seq])
        if isinstance(stmt, ir.For):
            return ir.For(stmt.loop_var, stmt.min, stmt.extent, stmt.kind, visit(stmt.body),
                          stmt.thread_binding, stmt.annotations, stmt.step)
        return stmt

    return func.with_body(visit(func.body))


# --- signed -------------------------------------------------------------------------------------


def rebuild_index(expr, values: dict):
    """An index expression with its variables replaced by ``values`` (Var -> PrimExpr)."""
    from tvm import tirx

    if isinstance(expr, tirx.Var):
        return values.get(expr, expr)
    if isinstance(expr, (tirx.IntImm,)):
        return expr
    if isinstance(expr, tirx.Cast):
        return tirx.Cast(expr.dtype, rebuild_index(expr.value, values))
    if hasattr(expr, "a") and hasattr(expr, "b"):  # Add, Sub, Mul, FloorDiv, FloorMod, Min...
        return type(expr)(rebuild_index(expr.a, values), rebuild_index(expr.b, values))
    raise RewriteError(f"index expression {expr} is not affine arithmetic")


def _loads(reduce) -> list:
    """The two tensor loads of ``sum cast(x[...]) * cast(y[...])``: (tensor, indices) each."""
    from tvm import tirx

    source = reduce.source[0] if len(reduce.source) == 1 else None
    if not isinstance(source, tirx.Mul):
        raise RewriteError("the main stage is not a sum of products")
    loads = []
    for operand in (source.a, source.b):
        load = operand.value if isinstance(operand, tirx.Cast) else operand
        if getattr(getattr(load, "op", None), "name", None) != "te.tensor_load":
            raise RewriteError("a factor of the main stage is not a tensor element")
        loads.append((load.args[0], list(load.args[1:])))
    return loads


def _fresh_axes(reduce, extents: dict[str, int] | None = None) -> list:
    """New reduction axes like ``reduce``'s, with the extents ``extents`` names instead."""
    from tvm import te

    extents = extents or {}
    return [te.reduce_axis((axis.dom.min, axis.dom.min + extents.get(axis.var.name,
                                                                     axis.dom.extent)),
                           name=axis.var.name) for axis in reduce.axis]


def _product(reduce, spatial: list, x: tuple, y: tuple, acc: str,
             extents: dict[str, int] | None = None):
    """A ``te.compute`` body: ``reduce``'s ``sum x[ix] * y[iy]`` over fresh reduction axes (of
    ``extents`` where it names them), with ``x`` and ``y`` ((tensor, indices), the tensors
    rewritten ones of its own) cast to ``acc``."""
    from tvm import te

    reduced = [axis.var for axis in reduce.axis]

    def factor(tensor, indices, values):
        value = tensor(*[rebuild_index(i, values) for i in indices])
        return value if tensor.dtype == acc else value.astype(acc)

    def product(*index):
        axes = _fresh_axes(reduce, extents)
        values = {**dict(zip(spatial, index)), **dict(zip(reduced, [a.var for a in axes]))}
        return te.sum(factor(*x, values) * factor(*y, values), axis=axes)

    return product


def signed_te(tensors: list, main_block: str) -> list:
    """``tensors`` (inputs..., output) with the main stage's u8 operand taken as s8 (see above)."""
    from tvm import te, tirx

    *inputs, out = tensors
    if out.op.name != main_block:
        raise RewriteError(f"signed operands need the main stage {main_block} to be the output")
    reduce = out.op.body[0]
    (x, ix), (y, iy) = _loads(reduce)
    if x.dtype != "uint8" or y.dtype != "int8":
        raise RewriteError(f"signed operands need u8 x s8 factors, got {x.dtype} x {y.dtype}")
    acc = out.dtype
    spatial = [axis.var for axis in out.op.axis]
    reduced = [axis.var for axis in reduce.axis]
    x_signed = te.compute(
        x.shape, lambda *i: (x(*i).astype("int32") - OFFSET).astype("int8"),
        name=f"{x.op.name}_signed")
    names = [var.name for var in spatial]  # keep the operator's axis names (mappings name them)
    main = te.compute(out.shape, _product(reduce, spatial, (x_signed, ix), (y, iy), acc),
                      name=main_block, varargs_names=names)
    # The weight sums depend on the output axes that index the weight only.
    used = [n for n, var in enumerate(spatial)
            if any(uses_var(i, var) for i in iy)]

    def weight_sum(*index):
        axes = _fresh_axes(reduce)
        values = {**{spatial[n]: v for n, v in zip(used, index)},
                  **dict(zip(reduced, [a.var for a in axes]))}
        return te.sum(y(*[rebuild_index(i, values) for i in iy]).astype(acc), axis=axes)

    sums = te.compute([out.shape[n] for n in used], weight_sum, name=f"{main_block}_weight_sum",
                      varargs_names=[names[n] for n in used])
    result = te.compute(
        out.shape, lambda *i: main(*i) + tirx.const(OFFSET, acc) * sums(*[i[n] for n in used]),
        name=f"{main_block}_offset", varargs_names=names)
    return [*inputs, result]


def steps_by_one(expr, var) -> bool:
    """Whether the index expression ``expr`` is ``var`` plus terms free of it (``2w + rx``
    in ``rx``): consecutive values of ``var`` read consecutive elements."""
    from tvm import sym, tirx

    linear = sym.detect_linear_equation(expr, [var])
    return (len(linear) == 2 and isinstance(linear[0], tirx.IntImm) and linear[0].value == 1
            and not uses_var(linear[1], var))


def uses_var(expr, var) -> bool:
    """Whether the index expression ``expr`` depends on ``var``."""
    from tvm import tirx

    if isinstance(expr, tirx.Var):
        return expr.same_as(var)
    return any(uses_var(getattr(expr, name), var) for name in ("a", "b", "value")
               if hasattr(expr, name) and not isinstance(getattr(expr, name), (int, str)))


# --- widened ------------------------------------------------------------------------------------


def widened_te(tensors: list, main_block: str, widen: dict[str, int]) -> list:
    """``tensors`` (inputs..., output) with the main stage computed over ``widen``'s extents
    (axis name -> extent), then cropped to the output."""
    from tvm import te, tirx

    *inputs, out = tensors
    if out.op.name != main_block:
        raise RewriteError(f"widening needs the main stage {main_block} to be the output")
    reduce = out.op.body[0]
    (x, ix), (y, iy) = _loads(reduce)
    spatial = [axis.var for axis in out.op.axis]
    names = [var.name for var in spatial]
    axes = [*out.op.axis, *reduce.axis]
    unknown = set(widen) - {axis.var.name for axis in axes}
    if unknown:
        raise RewriteError(f"cannot widen {sorted(unknown)}: not an axis of {main_block}")
    grow = {axis.var: widen[axis.var.name] - int(axis.dom.extent)
            for axis in axes if axis.var.name in widen}

    def wide(tensor, indices):
        """``tensor`` grown by zeros along the dimensions a widened axis indexes."""
        added = [sum(g for var, g in grow.items() if uses_var(index, var)) for index in indices]
        if not any(added):
            return tensor
        old = [int(n) for n in tensor.shape]

        def grown(*i):
            inside = tirx.all(*(v < n for v, n, a in zip(i, old, added) if a))
            return te.if_then_else(inside, tensor(*i), tirx.const(0, tensor.dtype))

        return te.compute([n + a for n, a in zip(old, added)], grown,
                          name=f"{tensor.op.name}{WIDE}")

    product = _product(reduce, spatial, (wide(x, ix), ix), (wide(y, iy), iy), out.dtype,
                       extents=widen)
    shape = [widen.get(n, int(e)) for n, e in zip(names, out.shape)]
    main = te.compute(shape, product, name=main_block, varargs_names=names)
    crop = te.compute(out.shape, lambda *i: main(*i), name=f"{main_block}{CROPPED}",
                      varargs_names=names)
    return [*inputs, crop]


def _inline_into_wide(func):
    """``func`` with each stage that only a ``_wide`` stage reads inlined into it (a
    convolution's padding: the zeros are then written in one pass).

    The inlined guard and the widening's own are merged into one, so that the stage has
    the plain padding form ``if_then_else(inside, x, 0)`` a schedule can split into a
    zero fill and an unguarded copy of the inside (``decompose_padding``).
    """
    from tvm import s_tir
    from tvm.tirx import stmt as ir

    sch = s_tir.Schedule(func)
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        consumers = sch.get_consumers(block)
        if consumers and all(sch.get(c).name_hint.endswith(WIDE) for c in consumers):
            sch.compute_inline(block)

    def merge(block):
        store = block.body
        if not (block.name_hint.endswith(WIDE) and isinstance(store, ir.BufferStore)):
            return None
        return _with_body(block, ir.BufferStore(store.buffer, _one_guard(store.value),
                                                store.indices))

    return _map_blocks(sch.mod["main"], merge)


def _one_guard(value):
    """``if_then_else(a, if_then_else(b, x, z), z)`` as ``if_then_else(a and b, x, z)``."""
    from tvm import tirx

    def guarded(e):
        return getattr(getattr(e, "op", None), "name", None) == "prim.if_then_else"

    if not guarded(value):
        return value
    outer, inner, zero = value.args
    inner = _one_guard(inner)
    other = inner.args[2] if guarded(inner) else None
    if other is not None and str(other) == str(zero):
        return tirx.if_then_else(tirx.And(outer, inner.args[0]), inner.args[1], zero)
    return value
