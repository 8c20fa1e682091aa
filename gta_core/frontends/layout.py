"""One blocked activation layout for a whole model: convolutions read and write NCHW{b}c.

A convolution in NCHW makes every program re-lay its input for the intrinsic (channels
innermost, one vector of them) and write its output back to NCHW, on every call, and
re-lay the weight too. onnxruntime (its NCHWc kernels) and TVM's x86 schedules keep
activations blocked between layers instead: ``[n, c // b, h, w, c % b]`` with ``b`` the
vector's lanes, so a float32 FMA mapping reads its activations, its weights
(``OIHW1i{b}o``, laid out once: they are constants) and its output in place.

Relax's own ``ConvertLayout`` rewrites the graph: every conv2d whose channels divide into
blocks takes the blocked layout, the elementwise ops, pooling and reductions between them
follow it, and the layout transforms left sit where a layer cannot be blocked (a flatten)
and at the graph's edges. Channel counts that do not divide are widened to the block
first (:mod:`.widen_channels`); a spatial pad is computed in blocks
(:func:`pads_in_blocks`); a convolution whose input
cannot be blocked but whose output can (a 3-channel stem) reads NCHW and writes blocks
(:mod:`.blocked_outputs`); a reduction over channels reads NCHW (:mod:`.layout_barriers`).
TVM 0.27 cannot legalize a blocked conv2d
(TOPI's ``conv`` takes 4-letter layouts only), so :func:`legalize_map` supplies it: the
convolution written over the blocked axes, one reduction axis per blocked dimension, so
that its accesses stay affine for mapping enumeration; a depthwise convolution reads each
lane's own channel; a float32 3x3 one at stride 1 becomes Winograd's where that costs less
(:mod:`.winograd`).
"""

from __future__ import annotations

import re
from typing import Any

from . import winograd
from .relax_exprs import into_blocks, op_name, static_shape

_BLOCKED_DATA = re.compile(r"NCHW(\d+)c")
_BLOCKED_KERNEL = re.compile(r"OIHW(\d+)i(\d+)o")


def channel_block(target) -> int | None:
    """Channels per block for ``target``: a float32 vector's lanes (16 with 512-bit
    vectors); None when the target declares no vector width (no blocked layout then)."""
    bits = target.resources.vector_width_bits
    return bits // 32 if target.kind == "cpu" and bits and bits >= 64 else None


def blocked_layout(mod, block: int):
    """``mod`` (Relax, before legalization) with its conv2d layers in ``NCHW{block}c``
    wherever the channel counts divide by ``block``; the rest keep their layout.

    Weights take ``OIHW1i{block}o``: output channels blocked as the output is, input
    channels whole, which a depthwise kernel (one input channel per group) fits as well.
    """
    from tvm import relax

    from .blocked_outputs import block_outputs
    from .layout_barriers import fence_channel_reductions, unfenced
    from .widen_channels import widen_channels

    mod = widen_channels(mod, block)  # channels that do not divide widened to the block
    # a transposed convolution stays NCHW: TVM's layout rule for it fails on a blocked
    # input ("Layouts must have the same size") unless told the layout it wants
    mod = unfenced(relax.transform.ConvertLayout(
        {"relax.nn.conv2d": [f"NCHW{block}c", f"OIHW1i{block}o"],
         "relax.nn.conv2d_transpose": ["NCHW", "IOHW"]})(fence_channel_reductions(mod)))
    mod = pads_in_blocks(mod, block)
    mod = transforms_first(mod)
    # ConvertLayout transforms a tensor once per blocked consumer (a residual block's input
    # feeds a convolution and an add): one transform serves them all
    mod = relax.transform.EliminateCommonSubexpr()(mod)
    mod = relax.transform.DeadCodeElimination()(mod)
    return block_outputs(mod, block)  # a stem that cannot read blocks still writes them


def pads_in_blocks(mod, block: int):
    """``mod`` with each spatial ``nn.pad`` that ``ConvertLayout`` left between a transform
    out of ``NCHW{block}c`` and one back into it computed in the blocks instead: it has no
    layout rule for a pad, and a quantized model pads a convolution's input with its zero
    point explicitly."""
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator
    from tvm.tirx import IndexMap

    func = mod["main"]
    values = {b.var: b.value for blk in func.body.blocks for b in blk.bindings}
    into = IndexMap.from_func(into_blocks(block), index_dtype="int64")
    out_of = IndexMap.from_func(lambda n, c, h, w, b: (n, c * block + b, h, w),
                                index_dtype="int64")

    def transform(value, index_map) -> bool:
        return (op_name(value) == "relax.layout_transform"
                and value.attrs.index_map.is_equivalent_to(index_map))

    def padded_blocks(value):
        """The blocked tensor ``value`` pads and transforms back into blocks, or None."""
        pad = values.get(value.args[0]) if transform(value, into) else None
        if op_name(pad) != "relax.nn.pad" or any(int(w) for w in list(pad.attrs.pad_width)[:4]):
            return None
        source = values.get(pad.args[0])
        return source.args[0] if transform(source, out_of) else None

    @mutator
    class Rewrite(PyExprMutator):
        def visit_var_binding_(self, binding):
            source = padded_blocks(binding.value)
            if source is None:
                return super().visit_var_binding_(binding)
            pad = values[binding.value.args[0]]
            padded = self.builder_.emit(relax.op.nn.pad(
                self.visit_expr(source), [*(int(w) for w in pad.attrs.pad_width), 0, 0],
                pad.attrs.pad_mode, float(pad.attrs.pad_value)), name_hint=binding.var.name)
            self.set_var_remap(binding.var, padded)

    rewriter = Rewrite(mod)
    rewriter.builder_.update_func(mod.get_global_var("main"), rewriter.visit_expr(func))
    return rewriter.builder_.get()


# Elementwise ops a layout transform moves in front of when their other operand is a scalar.
_PER_TENSOR = {"relax.astype", "relax.round", "relax.multiply", "relax.subtract", "relax.add",
               "relax.divide", "relax.maximum", "relax.minimum"}


def transforms_first(mod):
    """``mod`` with each layout transform of a per-tensor elementwise chain moved in front of
    the chain: ``T(dequantize(x))`` becomes ``dequantize(T(x))``. In a quantized model a
    tensor feeds a convolution as integers and a residual add dequantized;
    ``ConvertLayout`` transforms the two separately (the second in float, 4x the bytes),
    where moved in front they are one transform (``EliminateCommonSubexpr`` merges them).

    A transform never moves in front of an op that narrows its dtype: ``T(quantize(x))``
    stays, so a blocked convolution feeding one that cannot be blocked (channels that do
    not divide) requantizes in its own epilogue and the transform moves u8, where moved in
    front it would move float32 and leave the requantization a pass of its own."""
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    func = mod["main"]
    values = {b.var: b.value for blk in func.body.blocks for b in blk.bindings}

    def per_tensor(value) -> bool:
        if op_name(value) not in _PER_TENSOR or _bits(value.args[0]) > _bits(value):
            return False
        return all(static_shape(a) == () for a in value.args[1:])

    @mutator
    class Hoist(PyExprMutator):
        def _moved(self, expr, transform):
            value = values.get(expr)
            if value is None or not per_tensor(value):
                return None
            inner = self._moved(value.args[0], transform)
            if inner is None:
                inner = self.builder_.emit(relax.Call(transform.op, [value.args[0]],
                                                      transform.attrs))
            return self.builder_.normalize(relax.Call(value.op, [inner, *value.args[1:]],
                                                      value.attrs))

        def visit_var_binding_(self, binding):
            value = binding.value
            if isinstance(value, relax.Call) and getattr(value.op, "name", None) == \
                    "relax.layout_transform":
                moved = self._moved(value.args[0], value)
                if moved is not None:
                    self.builder_.emit_normalized(relax.VarBinding(binding.var, moved))
                    return
            super().visit_var_binding_(binding)

    hoist = Hoist(mod)
    hoist.builder_.update_func(mod.get_global_var("main"), hoist.visit_expr(func))
    return hoist.builder_.get()


def _bits(expr) -> int:
    """Bits per element of a tensor-valued Relax expression."""
    from tvm import DataType

    dtype = DataType(expr.ty.dtype)
    return dtype.bits * dtype.lanes


def legalize_map() -> dict[str, Any]:
    """Legalizations ``LegalizeOps`` lacks for a blocked model (TVM's own for the rest)."""
    return {"relax.nn.conv2d": _conv2d}


def _conv2d(bb, call):
    from tvm.relax.transform.legalize_ops import nn

    attrs = call.attrs
    data = _BLOCKED_DATA.fullmatch(attrs.data_layout)
    kernel = _BLOCKED_KERNEL.fullmatch(attrs.kernel_layout)
    out = _BLOCKED_DATA.fullmatch(attrs.out_layout)
    blocked = (data and kernel and attrs.out_layout == attrs.data_layout
               and kernel.group(1) == "1" and kernel.group(2) == data.group(1))
    # an NCHW input read as it is, or an 8-bit one in words of channels, the output
    # written in blocks (blocked_outputs.py)
    into_blocks_out = (kernel and out and kernel.group(1) == "1"
                       and kernel.group(2) == out.group(1) and int(attrs.groups) == 1)
    plain_in = into_blocks_out and attrs.data_layout == "NCHW"
    words_in = into_blocks_out and data is not None
    if not (blocked or plain_in or words_in):
        return nn._nn_conv2d(bb, call)  # TVM's legalization (it declines what it cannot do)
    if blocked and winograd.eligible(call):
        n, _, y, x, _ = (int(d) for d in call.ty.shape)
        m = winograd.tile_for(n, int(call.args[1].ty.shape[1]),
                              int(call.ty.shape[1]) * int(call.ty.shape[4]), y, x)
        if m:
            return winograd.legalize(bb, call, m)
    return bb.call_te(_plain_in_conv2d if plain_in else _blocked_conv2d, call.args[0],
                      call.args[1], [int(s) for s in attrs.strides],
                      [int(p) for p in attrs.padding], [int(d) for d in attrs.dilation],
                      int(attrs.groups), attrs.out_dtype or None, primfunc_name_hint="conv2d")


def _plain_in_conv2d(data, kernel, strides, padding, dilation, groups, out_dtype):
    """The convolution of NCHW data ``[n, c, h, w]`` with kernel ``[k//b, c, r, t, 0, k%b]``
    into blocked output ``[n, k//b, y, x, k%b]`` (``groups`` is 1)."""
    from tvm import te, topi

    top, left, bottom, right = padding
    if top or left or bottom or right:
        data = topi.nn.pad(data, [0, 0, top, left], [0, 0, bottom, right], name="pad_temp")
    batch, channels, height, width = (int(d) for d in data.shape)
    out_blocks, _, kh, kw, _, lanes = (int(d) for d in kernel.shape)
    out_h = (height - (kh - 1) * dilation[0] - 1) // strides[0] + 1
    out_w = (width - (kw - 1) * dilation[1] - 1) // strides[1] + 1
    dtype = out_dtype or data.dtype
    rc = te.reduce_axis((0, channels), "rc")
    ry = te.reduce_axis((0, kh), "ry")
    rx = te.reduce_axis((0, kw), "rx")
    return te.compute((batch, out_blocks, out_h, out_w, lanes), lambda n, k, y, x, lane: te.sum(
        data[n, rc, y * strides[0] + ry * dilation[0], x * strides[1] + rx * dilation[1]]
        .astype(dtype) * kernel[k, rc, ry, rx, 0, lane].astype(dtype), axis=[rc, ry, rx]),
        name="conv2d_NCHWc")


def _blocked_conv2d(data, kernel, strides, padding, dilation, groups, out_dtype):
    """The convolution over blocked data ``[n, c//b, h, w, c%b]`` and kernel
    ``[k//o, c, r, t, 0, k%o]`` into ``[n, k//o, y, x, k%o]`` (``o`` is ``b`` but for a
    stem's words of channels, ``b`` 4). Without groups the input channel is two reduction
    axes (block, lane), so every access stays affine; a depthwise one (a group per channel)
    reads its own lane; other groupings compute the channel of each group."""
    from tvm import te, topi

    batch, in_blocks, height, width, lanes = (int(d) for d in data.shape)
    out_blocks, group_in, kh, kw, _, out_lanes = (int(d) for d in kernel.shape)
    top, left, bottom, right = padding
    stride_h, stride_w = strides
    dil_h, dil_w = dilation
    if top or left or bottom or right:
        data = topi.nn.pad(data, [0, 0, top, left, 0], [0, 0, bottom, right, 0],
                           name="pad_temp")
    out_h = (height + top + bottom - (kh - 1) * dil_h - 1) // stride_h + 1
    out_w = (width + left + right - (kw - 1) * dil_w - 1) // stride_w + 1
    dtype = out_dtype or data.dtype
    ry = te.reduce_axis((0, kh), "ry")
    rx = te.reduce_axis((0, kw), "rx")

    def window(y, x):
        return y * stride_h + ry * dil_h, x * stride_w + rx * dil_w

    shape = (batch, out_blocks, out_h, out_w, out_lanes)
    if groups == 1:
        rc = te.reduce_axis((0, in_blocks), "rc")
        rl = te.reduce_axis((0, lanes), "rl")
        return te.compute(shape, lambda n, k, y, x, lane: te.sum(
            data[(n, rc, *window(y, x), rl)].astype(dtype)
            * kernel[k, rc * lanes + rl, ry, rx, 0, lane].astype(dtype),
            axis=[rc, ry, rx, rl]), name="conv2d_NCHWc")
    if groups == in_blocks * lanes == out_blocks * lanes:  # depthwise
        return te.compute(shape, lambda n, k, y, x, lane: te.sum(
            data[(n, k, *window(y, x), lane)].astype(dtype)
            * kernel[k, 0, ry, rx, 0, lane].astype(dtype), axis=[ry, rx]),
            name="depthwise_conv2d_NCHWc")
    group_out = out_blocks * lanes // groups
    rc = te.reduce_axis((0, group_in), "rc")

    def channel(k, lane):  # the input channel ``rc`` of output channel k*b+lane's group
        return (k * lanes + lane) // group_out * group_in + rc

    return te.compute(shape, lambda n, k, y, x, lane: te.sum(
        data[(n, channel(k, lane) // lanes, *window(y, x), channel(k, lane) % lanes)]
        .astype(dtype) * kernel[k, rc, ry, rx, 0, lane].astype(dtype),
        axis=[rc, ry, rx]), name="group_conv2d_NCHWc")
