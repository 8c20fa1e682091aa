"""Convolutions whose input cannot be blocked still write blocked outputs.

``ConvertLayout`` blocks a conv2d only when both its channel counts divide into blocks, so
a network's 3-channel stem stays in NCHW (other channel counts that do not divide are
widened first: :mod:`.widen_channels`), and the layers after it pay a layout transform:
in ResNet-18 the stem, its bias, ReLU and
max-pool all run in NCHW, then a transform copies the pooled tensor into NCHW16c.

:func:`block_outputs` rewrites such a conv2d (NCHW input, output channels divisible by the
block) to read its NCHW input as it is (an 8-bit one in ``NCHW4c``, its channels in
32-bit words: :func:`_word`) and write ``NCHW{b}c``, together with the chain of
ops between it and the transform that blocked its result (per-channel or scalar
elementwise ops, pooling), and drops that transform. A chain with a second consumer, or an
op not listed here, is left alone.
"""

from __future__ import annotations

from typing import Any

from .relax_exprs import BINARY, into_blocks, op_name, static_shape
from .widen_channels import widened_to

_UNARY = {"relax.nn.relu", "relax.clip", "relax.sigmoid", "relax.nn.silu", "relax.nn.gelu",
          "relax.tanh", "relax.astype", "relax.round"}
_POOLS = {"relax.nn.max_pool2d", "relax.nn.avg_pool2d"}


def _starts_chain(value, block: int) -> bool:
    """A conv2d left in NCHW whose output channels divide into blocks."""
    if op_name(value) != "relax.nn.conv2d":
        return False
    attrs, out = value.attrs, static_shape(value)
    return (attrs.data_layout == attrs.out_layout == "NCHW" and attrs.kernel_layout == "OIHW"
            and int(attrs.groups) == 1 and out is not None and out[1] % block == 0)


def _word(data) -> int | None:
    """Channels per 32-bit word where ``data`` is 8-bit integers, else None.

    An 8-bit dot-product intrinsic reduces a word of 4 products per lane (VNNI's
    ``vpdpbusd``, each AMX row); in ``NCHW4c`` (channels zero-filled up to a word) a stem's
    word at every pixel is a contiguous run it reads in place, where an NCHW input is
    re-laid (an im2col of R*S words per output pixel) on every call.
    """
    dtype = str(getattr(data.ty, "dtype", ""))
    return 4 if dtype in ("int8", "uint8") else None


def _follows(value, current) -> bool:
    """``value`` is an op the chain carries into the blocked layout (its data: ``current``)."""
    op = op_name(value)
    if op in _UNARY:
        return True
    if op in _POOLS:
        return value.attrs.layout == value.attrs.out_layout == "NCHW"
    if op in BINARY:
        others = [a for a in value.args if not a.same_as(current)]
        if len(others) != 1:
            return False
        shape, channels = static_shape(others[0]), static_shape(current)[1]
        return shape == () or shape == (1, channels, 1, 1)
    return False


def _ends_chain(value, current, block: int) -> bool:
    """The transform of ``current`` into ``NCHW{block}c``."""
    from tvm.tirx import IndexMap

    return (op_name(value) == "relax.layout_transform" and value.args[0].same_as(current)
            and value.attrs.index_map.is_equivalent_to(
                IndexMap.from_func(into_blocks(block), index_dtype="int64")))


def _chains(func, block: int) -> list[list[Any]]:
    """Each chain of bindings: the conv2d, the ops it carries, the transform ending it."""
    from tvm import relax

    bindings = [b for blk in func.body.blocks for b in blk.bindings]
    uses: dict[Any, list] = {}
    for binding in bindings:
        for var in relax.analysis.free_vars(binding.value):
            uses.setdefault(var, []).append(binding)
    for var in relax.analysis.free_vars(func.body.body):
        uses.setdefault(var, []).append(None)  # a function output: never rewritten
    chains = []
    for binding in bindings:
        if not _starts_chain(binding.value, block):
            continue
        chain, current = [binding], binding.var
        while len(uses.get(current, [])) == 1 and uses[current][0] is not None:
            user = uses[current][0]
            if _ends_chain(user.value, current, block):
                chains.append([*chain, user])
                break
            if not _follows(user.value, current):
                break
            chain.append(user)
            current = user.var
    return chains


def block_outputs(mod, block: int):
    """``mod`` (Relax, after ``ConvertLayout``) with each NCHW conv2d chain as described in
    the module docstring written in ``NCHW{block}c``; unchanged where there is none."""
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    func = mod["main"]
    chains = _chains(func, block)
    if not chains:
        return mod
    layout = f"NCHW{block}c"
    rewritten = {b.var: b.value for chain in chains for b in chain[:-1]}
    ends = {chain[-1].var: chain[-2].var for chain in chains}

    @mutator
    class Rewrite(PyExprMutator):
        def _blocked_call(self, value):
            op, args = op_name(value), [self.visit_expr(a) for a in value.args]
            if op == "relax.nn.conv2d":
                attrs = value.attrs
                data, weight, data_layout = *args, "NCHW"
                word = _word(data)
                if word:  # channels in words, the last one zero-filled
                    wide = widened_to(static_shape(data)[1], word)
                    data = self.builder_.emit(relax.op.layout_transform(
                        data, into_blocks(word), pad_value=0))
                    weight = self.builder_.emit(relax.op.nn.pad(
                        weight, [0, 0, 0, wide - static_shape(weight)[1], 0, 0, 0, 0]))
                    data_layout = f"NCHW{word}c"
                weight = self.builder_.emit(relax.op.layout_transform(
                    weight, lambda o, i, h, w: (o // block, i, h, w, o * 0, o % block)))
                return relax.op.nn.conv2d(
                    data, weight, attrs.strides, attrs.padding, attrs.dilation, 1,
                    data_layout, f"OIHW1i{block}o", layout, attrs.out_dtype or None)
            if op in _POOLS:
                attrs = value.attrs
                pool = (relax.op.nn.max_pool2d if op == "relax.nn.max_pool2d"
                        else relax.op.nn.avg_pool2d)
                return pool(args[0], attrs.pool_size, attrs.strides, attrs.padding,
                            attrs.dilation, attrs.ceil_mode, attrs.count_include_pad, layout,
                            layout)
            if op in BINARY:  # the per-channel operand follows the data into blocks
                args = [a if static_shape(a) == () or len(static_shape(a)) == 5 else
                        self.builder_.emit(relax.op.layout_transform(a, into_blocks(block)))
                        for a in args]
            return relax.Call(value.op, args, value.attrs)

        def visit_var_binding_(self, binding):
            if binding.var in ends:
                self.set_var_remap(binding.var, self.visit_expr(ends[binding.var]))
            elif binding.var in rewritten:
                new = self.builder_.emit(self._blocked_call(rewritten[binding.var]),
                                         name_hint=binding.var.name)
                self.set_var_remap(binding.var, new)
            else:
                super().visit_var_binding_(binding)

    rewriter = Rewrite(mod)
    rewriter.builder_.update_func(mod.get_global_var("main"), rewriter.visit_expr(func))
    return rewriter.builder_.get()
