"""Where a blocked layout must stop: ops that TVM 0.27's ``ConvertLayout`` cannot carry one
through.

``ConvertLayout`` asks each op how its inputs' layouts become its output's. Two answers
are wrong when an input is a blocked ``NCHW{b}c`` tensor:

- a statistical reduction over the channel axis (``mean``, ``sum``, ``max``...: a
  normalisation over channels, an L2 norm) yields a layout that ``LegalizeOps`` cannot
  index ("Could not parse mapping as sum of iterators"), or with ``keepdims`` fails;
- an elementwise op broadcasting one operand along the channels (a per-pixel map, as a
  spatial attention multiplies by, or a per-sample scalar kept 4-D) fails ("Cannot
  broadcast from 5 to 4").

An op that has no layout rule gets its inputs back in their first layout instead, and
``layout_transform`` has none; so :func:`fence_channel_reductions` puts an identity
transform in front of such an op's inputs before the conversion, and :func:`unfenced`
removes what is left of them after it: the op reads NCHW, which one transform out of the
blocks supplies.
"""

from __future__ import annotations

from .relax_exprs import BINARY, op_name, static_shape

# Reductions whose layout rule cannot reduce a blocked axis.
_REDUCTIONS = {"relax.mean", "relax.sum", "relax.max", "relax.min", "relax.prod",
               "relax.variance", "relax.std"}


def _over_channels(value) -> bool:
    """Whether ``value`` reduces a 4-D tensor over its channel axis (or over every axis)."""
    if op_name(value) not in _REDUCTIONS or value.args[0].ty.ndim != 4:
        return False
    axes = value.attrs.axis
    return axes is None or any(int(a) % 4 == 1 for a in axes)


def _channel(shape: tuple[int, ...]) -> int | None:
    """The extent of the channel axis in ``shape`` aligned to NCHW from the right; None
    where it has no such axis."""
    return shape[len(shape) - 3] if len(shape) >= 3 else None


def _broadcast_over_channels(value) -> list[int]:
    """The operands of ``value``, an elementwise op with a 4-D result, to read NCHW: every
    operand with channels, when another of three or more axes has one channel, broadcast
    along them (one of fewer axes has no channel axis: TVM's rule handles it); none
    otherwise."""
    if op_name(value) not in BINARY:
        return []
    shapes = [static_shape(a) for a in value.args]
    out = static_shape(value)
    if None in shapes or out is None or len(out) != 4 or out[1] == 1:
        return []
    along = [i for i, s in enumerate(shapes) if _channel(s) == 1]
    return [i for i, s in enumerate(shapes) if _channel(s) == out[1]] if along else []


def _identity(ndim: int):
    from tvm.tirx import IndexMap

    return IndexMap.from_func(lambda *i: i, ndim=ndim, index_dtype="int64")


def fence_channel_reductions(mod):
    """``mod`` with an identity ``layout_transform`` in front of each reduction over
    channels (:func:`_over_channels`) and of the channelled operands of each broadcast
    along them (:func:`_broadcast_over_channels`); unchanged where there is none."""
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    @mutator
    class Fence(PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            fenced = [0] if _over_channels(call) else _broadcast_over_channels(call)
            if not fenced:
                return call
            args = [self.builder_.emit(relax.op.layout_transform(a, _identity(4)))
                    if i in fenced else a for i, a in enumerate(call.args)]
            return relax.Call(call.op, args, call.attrs)

    fence = Fence(mod)
    fence.builder_.update_func(mod.get_global_var("main"), fence.visit_expr(mod["main"]))
    return fence.builder_.get()


def unfenced(mod):
    """``mod`` without identity ``layout_transform`` calls: each replaced by its input."""
    from tvm.relax.expr_functor import PyExprMutator, mutator

    @mutator
    class Unfence(PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            if (op_name(call) == "relax.layout_transform" and call.attrs.pad_value is None
                    and call.attrs.index_map.is_equivalent_to(_identity(call.args[0].ty.ndim))):
                return call.args[0]
            return call

    unfence = Unfence(mod)
    unfence.builder_.update_func(mod.get_global_var("main"), unfence.visit_expr(mod["main"]))
    return unfence.builder_.get()
