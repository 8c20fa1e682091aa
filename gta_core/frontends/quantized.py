"""Quantized (QDQ) models as integer programs.

TVM imports a QDQ model's ``DequantizeLinear -> Conv/MatMul/Gemm -> QuantizeLinear`` as
float arithmetic: it runs the convolutions in float32. :func:`integer_cores` rewrites each
such chain into what onnxruntime's int8 kernels compute, and what GTA's VNNI mappings take:

* an integer core, ``u8 activations x s8 weights -> s32`` (``conv2d`` or ``matmul`` with
  ``out_dtype="int32"``); a padded convolution pads with the input's zero point, so the
  border contributes ``zx * w`` like every other input;
* a requantize epilogue behind it: ``acc + c`` where ``c = round(bias / (sx*sw)) -
  zx * sum(w)`` per output channel (the zero-point correction, folded with the bias at
  compile time since weights are constants), then ``round(acc * sx*sw/sy) + zy``,
  saturated to the output dtype and to a ReLU or clip that sat between the core and the
  quantize.

The epilogue is elementwise, so fusion puts it in the integer task, and GTA computes it
in the output tile as it is written back: an int8 layer reads u8 and writes u8.

A MatMul of two computed tensors (attention's ``Q K^T`` and ``softmax V``) runs on the same
u8 x s8 core: the second operand shifted to s8, both zero points corrected by sums over
the depth (:func:`_activation_product`).

A chain is left in float (and named in the summary) when it is not of that form: int8
activations, weights that are not constant int8 with zero points of 0, a per-tensor
parameter that is not a scalar constant, or an intermediate value that something else
also reads.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .qdq_graph import (
    Chains,
    NotInteger,
    along,
    constant,
    is_constant,
    op,
    scalar,
    zero_point,
)

_ANCHORS = {"relax.nn.conv2d": "Conv", "relax.matmul": "MatMul"}


@dataclass
class QuantizedSummary:
    """What :func:`integer_cores` did to a model: layers made integer, and the rest with why."""

    integer: Counter = field(default_factory=Counter)   # "Conv" -> count
    kept_float: Counter = field(default_factory=Counter)  # "MatMul of two activations" -> n
    # Per model output, its quantization step where it is dequantized (else None): the
    # unit its agreement with onnxruntime is measured in.
    output_steps: list[float | None] = field(default_factory=list)

    def __str__(self) -> str:
        made = sum(self.integer.values())
        total = made + sum(self.kept_float.values())
        line = f"{made} of {total} quantized Conv/MatMul layers run as u8 x s8 integer programs"
        if self.kept_float:
            kept = ", ".join(f"{why} x{n}" for why, n in sorted(self.kept_float.items()))
            line += f"; left in float: {kept}"
        return line


def _weight(chains: Chains, expr, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(int8 weight, its float scale broadcast to the weight's shape) behind ``expr``:
    a ``dequantize`` of a constant, maybe through ``permute_dims`` (a Gemm's transB)."""
    value = chains.bound(expr, single_use=False)
    permuted = op(value, "relax.permute_dims") is not None
    if permuted:
        axes = None if value.attrs.axes is None else [int(a) for a in value.attrs.axes]
        value = chains.bound(value.args[0], single_use=False)
    if not op(value, "relax.dequantize"):
        raise NotInteger(f"{kind} with a weight that is not dequantized")
    if not is_constant(value.args[0]):
        raise NotInteger(f"{kind} of two activations")
    weight = constant(value.args[0])
    if weight.dtype != np.int8:
        raise NotInteger(f"{kind} with {weight.dtype} weights")
    if np.any(constant(value.args[2]) != 0):
        raise NotInteger("a weight zero point that is not 0")
    scale = along(constant(value.args[1]).astype(np.float64), weight.ndim,
                   int(value.attrs.axis))
    scale = np.broadcast_to(scale, weight.shape)
    if permuted:
        weight, scale = np.transpose(weight, axes), np.transpose(scale, axes)
    return np.ascontiguousarray(weight), scale


def _per_channel(full: np.ndarray, channel_axis: int, what: str) -> np.ndarray:
    """``full`` (the weight's shape) as one value per output channel; raise if it varies
    along any other axis."""
    moved = np.moveaxis(full, channel_axis, 0).reshape(full.shape[channel_axis], -1)
    if not np.all(moved == moved[:, :1]):
        raise NotInteger(f"a {what} that is not per output channel")
    return moved[:, 0]


def _bias(chains: Chains, expr) -> np.ndarray:
    """The float value of a constant bias: a constant, or a dequantized constant, maybe
    reshaped (a convolution's bias is reshaped to (1, K, 1, 1))."""
    value = chains.bound(expr, single_use=False)
    if op(value, "relax.reshape"):
        shape = [int(d) for d in value.ty.shape]
        return np.reshape(_bias(chains, value.args[0]), shape)
    if op(value, "relax.dequantize"):
        data = constant(value.args[0]).astype(np.float64)
        ndim = data.ndim
        scale = along(constant(value.args[1]).astype(np.float64), ndim, int(value.attrs.axis))
        zero = along(constant(value.args[2]).astype(np.float64), ndim, int(value.attrs.axis))
        return (data - zero) * scale
    return constant(value).astype(np.float64)


def _clip_bounds(chains: Chains, expr) -> tuple[object, float, float]:
    """Peel ReLU and constant max/min (ReLU6) off ``expr``: (what is under them, lo, hi)."""
    lo, hi = -np.inf, np.inf
    while True:
        value = chains.bound(expr)
        if op(value, "relax.nn.relu"):
            lo, expr = max(lo, 0.0), value.args[0]
        elif op(value, "relax.maximum") and is_constant(value.args[1]):
            lo, expr = max(lo, scalar(value.args[1])), value.args[0]
        elif op(value, "relax.minimum") and is_constant(value.args[1]):
            hi, expr = min(hi, scalar(value.args[1])), value.args[0]
        elif op(value, "relax.clip"):
            raise NotInteger("a clip with bounds that are not constants")
        else:
            return expr, lo, hi


def _split_bias(chains: Chains, expr):
    """(the product under a bias add, the bias's float value or None)."""
    value = chains.bound(expr)
    if op(value, "relax.add"):
        for core, bias in ((value.args[0], value.args[1]), (value.args[1], value.args[0])):
            if op(chains.bound(core, single_use=False)) in _ANCHORS:
                return chains.bound(core), _bias(chains, bias)
    return value, None


def _integer(bb, chains: Chains, quantize) -> tuple[str, object]:
    """The integer program for the chain ending in ``quantize``: (layer kind, u8/s8 expr)."""
    from tvm import relax

    out_dtype = str(quantize.attrs.out_dtype)
    if out_dtype not in ("uint8", "int8"):
        raise NotInteger(f"a quantize to {out_dtype}")
    sy, zy = scalar(quantize.args[1]), zero_point(quantize.args[2], out_dtype, "quantize")
    under, lo, hi = _clip_bounds(chains, quantize.args[0])
    core, bias = _split_bias(chains, under)
    kind = _ANCHORS.get(op(core) or "")
    if kind is None:
        raise NotInteger("no Conv or MatMul under the quantize")
    act = chains.bound(core.args[0], single_use=False)
    if not op(act, "relax.dequantize"):
        raise NotInteger(f"{kind} of an input that is not dequantized")
    xq = act.args[0]
    if str(xq.ty.dtype) != "uint8":
        raise NotInteger(f"{kind} of {xq.ty.dtype} activations")
    sx, zx = scalar(act.args[1]), zero_point(act.args[2], "uint8", f"{kind}'s input")
    other = _activation(chains, core.args[1]) if kind == "MatMul" else None
    if other is not None:  # attention's Q K^T and softmax V: both operands computed
        acc, correction, sw = _activation_product(bb, xq, zx, *other)
    else:
        acc, correction, sw = _weight_product(bb, chains, core, kind, xq, zx)
    unit = sx * sw  # the value of one accumulator step, per output channel
    shape = [int(d) for d in core.ty.shape]
    ndim, axis = len(shape), (1 if kind == "Conv" else len(shape) - 1)
    if bias is not None:
        full = np.broadcast_to(bias, shape)
        correction = correction + np.round(_per_channel(full, axis, "bias") / unit)

    def vector(values, dtype):
        return relax.const(along(np.asarray(values), ndim, axis).astype(dtype), dtype)

    acc = bb.emit(relax.op.add(acc, vector(correction, "int32")))
    scaled = relax.op.multiply(relax.op.astype(acc, "float32"), vector(unit / sy, "float32"))
    low = np.round(lo / sy) + zy if np.isfinite(lo) else -np.inf
    high = np.round(hi / sy) + zy if np.isfinite(hi) else np.inf
    return kind, bb.normalize(_saturated(scaled, zy, out_dtype, low, high))


def _weight_product(bb, chains: Chains, core, kind: str, xq, zx: int):
    """The u8 x s8 core on a constant weight: (s32 accumulator, the zero-point correction
    ``-zx * sum(w)`` per output channel, the weight's scale per output channel)."""
    from tvm import relax

    weight, wscale = _weight(chains, core.args[1], kind)
    channel = 0 if kind == "Conv" else weight.ndim - 1
    sw = _per_channel(wscale, channel, "weight scale")
    sums = np.moveaxis(weight.astype(np.int64), channel, 0).reshape(weight.shape[channel], -1)
    correction = -zx * sums.sum(axis=1)
    if kind == "MatMul":
        return (bb.emit(relax.op.matmul(xq, relax.const(weight, "int8"), out_dtype="int32")),
                correction, sw)
    attrs = core.attrs
    if (attrs.data_layout, attrs.kernel_layout) != ("NCHW", "OIHW"):
        raise NotInteger(f"Conv in layout {attrs.data_layout}/{attrs.kernel_layout}")
    padding = [int(p) for p in attrs.padding]
    data = xq
    if zx != 0 and any(padding):
        top, left, bottom, right = padding
        data = bb.emit(relax.op.nn.pad(xq, [0, 0, 0, 0, top, bottom, left, right],
                                       pad_value=float(zx)))
        padding = [0, 0, 0, 0]
    acc = bb.emit(relax.op.nn.conv2d(
        data, relax.const(weight, "int8"), strides=attrs.strides, padding=padding,
        dilation=attrs.dilation, groups=int(attrs.groups), data_layout=attrs.data_layout,
        kernel_layout=attrs.kernel_layout, out_layout=attrs.out_layout, out_dtype="int32"))
    return acc, correction, sw


def _activation(chains: Chains, expr) -> tuple[object, float, int] | None:
    """(u8 or s8 tensor, scale, zero point) where ``expr`` dequantizes a computed tensor
    with per-tensor parameters, maybe through ``permute_dims`` (applied to the integers,
    since dequantizing is elementwise), else None (a constant weight, or not dequantized)."""
    from tvm import relax

    value = chains.bound(expr, single_use=False)
    axes = False
    if op(value, "relax.permute_dims"):
        axes = None if value.attrs.axes is None else [int(a) for a in value.attrs.axes]
        value = chains.bound(value.args[0], single_use=False)
    if not op(value, "relax.dequantize") or is_constant(value.args[0]):
        return None
    tensor = value.args[0]
    dtype = str(tensor.ty.dtype)
    if dtype not in ("uint8", "int8"):
        return None
    found = scalar(value.args[1]), zero_point(value.args[2], dtype, "MatMul's second input")
    if axes is not False:
        tensor = relax.op.permute_dims(tensor, axes)
    return (tensor, *found)


def _activation_product(bb, xq, zx: int, wq, sw: float, zw: int):
    """``sum_k (x - zx)(w - zw)`` of two computed tensors on VNNI's u8 x s8 product:
    (s32 accumulator, the constant left to add, sw).

    A u8 ``w`` goes in as ``s = w - 128`` (s8, exact; s = w for an s8 ``w``, shift 0).
    The sums over k of x (per row) and of s (per column) carry the zero points:
    ``x.s + (shift - zw) sum(x) - zx sum(s) + K zx (zw - shift)``."""
    from tvm import relax

    wq = bb.emit(wq) if not isinstance(wq, relax.Var) else wq
    shift = 128 if str(wq.ty.dtype) == "uint8" else 0
    signed = wq
    if shift:
        signed = bb.emit(relax.op.astype(relax.op.subtract(
            relax.op.astype(wq, "int16"), relax.const(shift, "int16")), "int8"))
    acc = bb.emit(relax.op.matmul(xq, signed, out_dtype="int32"))

    def times(tensor, axis: int, factor: int):
        # the factor is a tensor, not a scalar that TIR would inline as a literal: layers
        # with other zero points stay one task (subgraph.structure masks float literals)
        factor = relax.const(np.full((1,) * len(tensor.ty.shape), factor, "int32"))
        return relax.op.multiply(bb.emit(relax.op.sum(relax.op.astype(tensor, "int32"),
                                                      axis=[axis], keepdims=True)), factor)

    if shift != zw:
        acc = bb.emit(relax.op.add(acc, times(xq, -1, shift - zw)))
    if zx:  # summed over s, not w, so that w has one reader and its producer writes s
        acc = bb.emit(relax.op.subtract(acc, times(signed, -2, zx)))
    depth = int(xq.ty.shape[-1])
    return acc, np.array([depth * zx * (zw - shift)], dtype=np.int64), sw


def _saturated(value, zero: float, dtype: str, low: float = -np.inf, high: float = np.inf):
    """``value`` rounded (half to even), shifted by ``zero`` and saturated to ``dtype`` and
    to [low, high]: what QuantizeLinear does after its scaling."""
    from tvm import relax

    info = np.iinfo(dtype)
    value = relax.op.round(value)
    if zero:
        value = relax.op.add(value, relax.const(float(zero), "float32"))
    value = relax.op.maximum(value, relax.const(max(float(info.min), low), "float32"))
    value = relax.op.minimum(value, relax.const(min(float(info.max), high), "float32"))
    return relax.op.astype(value, dtype)


def integer_cores(mod):
    """``mod`` (a QDQ model as TVM imports it) with each quantized Conv/MatMul as an
    integer core plus a requantize epilogue: (new module, :class:`QuantizedSummary`)."""
    from tvm import relax

    summary = QuantizedSummary()

    @relax.expr_functor.mutator
    class Rewriter(relax.PyExprMutator):
        def __init__(self, module, chains) -> None:
            super().__init__(module)
            self.chains = chains

        def visit_var_binding_(self, binding) -> None:
            value = None
            if op(binding.value, "relax.quantize"):
                try:
                    kind, value = _integer(self.builder_, self.chains, binding.value)
                except NotInteger as exc:
                    if _anchor_under(self.chains, binding.value):
                        summary.kept_float[str(exc)] += 1
                else:
                    summary.integer[kind] += 1
            if value is None:
                value = _pooled(self.builder_, self.chains, binding.value)
            if value is None:
                value = _elementwise(self.builder_, binding.value)
            if value is None:
                super().visit_var_binding_(binding)
            else:
                self.builder_.emit_normalized(relax.VarBinding(binding.var, value))

    for gv, func in list(mod.functions_items()):
        if isinstance(func, relax.Function):
            rewritten = Rewriter(mod, Chains(func)).visit_expr(func)
            mod.update_func(gv, rewritten)
    mod = relax.transform.DeadCodeElimination()(mod)
    return mod, summary


def _pooled(bb, chains: Chains, quantize):
    """``quantize(max_pool2d(dequantize(x)))`` with the same scale and zero point on both
    sides as ``max_pool2d(x)`` on the integers (dequantizing is increasing, so the maximum
    commutes with it; a pooling window always holds an element of x, so padding with the
    integer type's minimum pads as -inf does), else None."""
    from tvm import relax

    if not op(quantize, "relax.quantize"):
        return None
    try:
        pool = chains.bound(quantize.args[0])
        if not op(pool, "relax.nn.max_pool2d"):
            return None
        dequantize = chains.bound(pool.args[0], single_use=False)
        if not op(dequantize, "relax.dequantize"):
            return None
        same = (scalar(dequantize.args[1]) == scalar(quantize.args[1])
                and scalar(dequantize.args[2]) == scalar(quantize.args[2]))
    except NotInteger:
        return None
    data = dequantize.args[0]
    if not same or str(data.ty.dtype) != str(quantize.attrs.out_dtype):
        return None
    a = pool.attrs
    return bb.normalize(relax.op.nn.max_pool2d(data, a.pool_size, a.strides, a.padding,
                                               a.dilation, a.ceil_mode, a.count_include_pad,
                                               a.layout, a.out_layout))


def _elementwise(bb, call):
    """A per-tensor ``quantize`` or ``dequantize`` as the elementwise arithmetic TVM
    legalises it into (the same values), or None: Relax's layout conversion sees through
    those ops, not through quantize, so a residual add between blocked layers stays
    blocked instead of paying a layout transform either side."""
    from tvm import relax

    name = op(call)
    if name not in ("relax.quantize", "relax.dequantize"):
        return None
    try:
        scale, zero = scalar(call.args[1]), scalar(call.args[2])
    except NotInteger:
        return None
    data, dtype = call.args[0], str(call.attrs.out_dtype)
    if name == "relax.dequantize":
        if dtype != "float32" or str(data.ty.dtype) not in ("uint8", "int8"):
            return None
        zero_point(call.args[2], str(data.ty.dtype), "dequantize")
        value = relax.op.astype(data, "float32")
        if zero:
            value = relax.op.subtract(value, relax.const(zero, "float32"))
        return bb.normalize(relax.op.multiply(value, relax.const(scale, "float32")))
    if dtype not in ("uint8", "int8") or str(data.ty.dtype) != "float32":
        return None
    zero_point(call.args[2], dtype, "quantize")
    return bb.normalize(_saturated(relax.op.divide(data, relax.const(scale, "float32")),
                                   zero, dtype))


def _anchor_under(chains: Chains, quantize) -> bool:
    """Whether a Conv or MatMul feeds ``quantize`` through the ops :func:`_integer` peels
    (clips, a bias add): a chain worth naming when it stays float."""
    peeled = {"relax.nn.relu", "relax.maximum", "relax.minimum", "relax.clip", "relax.add"}
    value = chains.bound(quantize.args[0], single_use=False)
    while op(value) in peeled:
        if op(value) == "relax.add" and any(
                op(chains.bound(a, single_use=False)) in _ANCHORS for a in value.args):
            return True
        value = chains.bound(value.args[0], single_use=False)
    return op(value) in _ANCHORS
