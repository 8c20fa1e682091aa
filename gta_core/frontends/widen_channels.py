"""Channel counts that do not divide into blocks are widened to the next multiple.

``ConvertLayout`` blocks a conv2d only when its channels divide by the block (16 on
``avx512``): MobileNet-V2's 24-channel layers (EfficientNet's 40, 80 and 112) stay in
NCHW, their convolutions run with no vector of channels read in place, and layout
transforms sit around them. onnxruntime's NCHWc kernels pad channels to the block instead;
:func:`widen_channels` does so on the graph, before ``ConvertLayout``:

- a conv2d whose output channels ``K`` do not divide computes ``K' = ceil(K / b) * b``, the
  extra weight rows zero, where that at most doubles its work (3 output channels stay: 16
  would be 5x the work);
- the elementwise ops after it compute on ``K'`` channels, each per-channel constant padded
  with its last channel's value (the extra channels stay finite: a zero weight times an
  infinity would not be zero);
- a conv2d that reads the widened tensor takes zero weights for the extra input channels
  (a depthwise one ``K'`` groups, zero kernels, and its output is widened in turn), so the
  extra channels never reach a real one;
- anywhere else (pooling, a reshape, the function's output, an operand that is not
  widened) the tensor is sliced back to ``K`` channels first.

A quantized model's integer convolutions widen alike: the extra input channels' zero
weights add nothing to the zero-point correction.
"""

from __future__ import annotations

import numpy as np

from .relax_exprs import BINARY, constant_value, op_name, static_shape

_UNARY = {"relax.nn.relu", "relax.clip", "relax.astype", "relax.round"}


def _plain_conv(value) -> bool:
    if op_name(value) != "relax.nn.conv2d":
        return False
    attrs = value.attrs
    return (attrs.data_layout == attrs.out_layout == "NCHW" and attrs.kernel_layout == "OIHW"
            and constant_value(value.args[1]) is not None)


def _pad(array: np.ndarray, axis: int, to: int, zero: bool) -> np.ndarray:
    widths = [(0, 0)] * array.ndim
    widths[axis] = (0, to - array.shape[axis])
    return np.pad(array, widths, mode="constant" if zero else "edge")


def widened_to(channels: int, block: int) -> int:
    """``channels`` rounded up to a multiple of ``block``."""
    return -(-channels // block) * block


def widen_channels(mod, block: int):
    """``mod`` (Relax, before ``ConvertLayout``) with each conv2d's channel count that does
    not divide by ``block`` widened as the module docstring says; unchanged where none."""
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    def narrow(value) -> bool:
        out = static_shape(value)
        return (_plain_conv(value) and out is not None and out[1] % block != 0
                and widened_to(out[1], block) <= 2 * out[1] and int(value.attrs.groups) == 1)

    func = mod["main"]
    if not any(narrow(b.value) for blk in func.body.blocks for b in blk.bindings):
        return mod
    # bias reshapes folded into constants, so that they can be padded
    mod = relax.transform.FoldConstant()(mod)
    func = mod["main"]

    @mutator
    class Widen(PyExprMutator):
        def __init__(self, module) -> None:
            super().__init__(module)
            self.channels: dict = {}  # widened var (new) -> its real channel count

        def _sliced(self, expr):
            """``expr`` (visited) as its real channels."""
            if isinstance(expr, relax.Tuple):  # a concatenation's operands
                return relax.Tuple([self._sliced(f) for f in expr.fields])
            if expr not in self.channels:
                return expr
            return self.builder_.emit(relax.op.strided_slice(
                expr, axes=[1], begin=[0], end=[self.channels[expr]]))

        def _widened(self, value, args):
            """The call computing ``value`` on widened ``args``, with its real channel count;
            None where it cannot."""
            op = op_name(value)
            wide = [a for a in args if a in self.channels]
            if op == "relax.nn.conv2d" and _plain_conv(value):
                return self._conv(value, args)
            if not wide:
                return None
            real = self.channels[wide[0]]
            full = static_shape(wide[0])[1]
            if op in _UNARY or op == "relax.nn.pad" and not any(  # spatial padding only
                    int(w) for w in list(value.attrs.pad_width)[:4]):
                return relax.Call(value.op, args, value.attrs), real
            if op not in BINARY or (op == "relax.divide" and args[1] in self.channels):
                return None
            padded = []
            for arg in args:
                shape = static_shape(arg)
                if arg in self.channels:
                    if self.channels[arg] != real or shape[1] != full:
                        return None
                    padded.append(arg)
                elif shape is not None and len(shape) == 0:
                    padded.append(arg)
                elif (data := constant_value(arg)) is not None and len(shape) >= 3 \
                        and shape[-3] == real:
                    padded.append(relax.const(_pad(data, data.ndim - 3, full, zero=False)))
                else:
                    return None
            return relax.Call(value.op, padded, value.attrs), real

        def _conv(self, value, args):
            attrs, data = value.attrs, args[0]
            weight = constant_value(value.args[1])
            groups, out = int(attrs.groups), weight.shape[0]
            if data in self.channels:
                real, full = self.channels[data], static_shape(data)[1]
                if groups == 1:
                    weight = _pad(weight, 1, full, zero=True)
                elif groups == real == out and weight.shape[1] == 1:  # depthwise
                    weight, groups = _pad(weight, 0, full, zero=True), full
                else:
                    return None
            elif not narrow(value):
                return None
            if narrow(value):
                weight = _pad(weight, 0, widened_to(out, block), zero=True)
            call = relax.op.nn.conv2d(data, relax.const(weight), attrs.strides, attrs.padding,
                                      attrs.dilation, groups, "NCHW", "OIHW", "NCHW",
                                      attrs.out_dtype or None)
            return call, out if weight.shape[0] != out else None

        def _rewritten(self, value):
            """``value`` on the visited operands, and its real channel count if widened."""
            if isinstance(value, relax.Tuple):
                return self._sliced(relax.Tuple([self.visit_expr(f) for f in value.fields])), None
            args = [self.visit_expr(a) for a in value.args]
            widened = self._widened(value, args)
            if widened is None:
                return relax.Call(value.op, [self._sliced(a) for a in args], value.attrs,
                                  value.ty_args), None
            return widened

        def visit_var_binding_(self, binding):
            if not isinstance(binding.value, (relax.Call, relax.Tuple)):
                return super().visit_var_binding_(binding)
            call, real = self._rewritten(binding.value)
            name = binding.var.name
            if isinstance(binding.var, relax.DataflowVar):
                new = self.builder_.emit(call, name_hint=name)
                if real is not None:
                    self.channels[new] = real
            elif real is None:
                new = self.builder_.emit_output(call, name_hint=name)
            else:  # a block's output leaves with its real channels
                wide = self.builder_.emit(call)
                self.channels[wide] = real
                new = self.builder_.emit_output(self._sliced(wide), name_hint=name)
            self.set_var_remap(binding.var, new)

    widen = Widen(mod)
    widen.builder_.update_func(mod.get_global_var("main"), widen.visit_expr(func))
    return widen.builder_.get()
