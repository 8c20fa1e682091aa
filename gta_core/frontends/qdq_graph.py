"""Reading a quantized model's Relax graph: bindings, their uses, constant parameters.

The helpers :mod:`.quantized` matches ``dequantize -> conv/matmul -> quantize`` chains with.
A chain that does not fit raises :class:`NotInteger`, whose message says in a few words
why it stays float.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .relax_exprs import op_name


class NotInteger(Exception):
    """A chain that stays float; the message says why (one short phrase)."""


def op(expr, name: str | None = None) -> str | None:
    """The operator ``expr`` calls (when it is ``name``, if given), else None."""
    found = op_name(expr)
    return found if name is None or found == name else None


def constant(expr) -> np.ndarray:
    """A constant's value; NotInteger for anything computed."""
    if not is_constant(expr):
        raise NotInteger("a quantization parameter that is not a constant")
    return expr.value.numpy()


def scalar(expr) -> float:
    """A one-element constant's value; NotInteger for a vector (a per-channel parameter)."""
    value = constant(expr)
    if value.size != 1:
        raise NotInteger("a per-channel activation scale or zero point")
    return float(value.reshape(()))


def zero_point(expr, dtype: str, what: str) -> int:
    """A scalar zero point of ``dtype`` values; ModelError if it lies outside the dtype
    (the model is wrong, and computing with it would be silently wrong)."""
    from .model import ModelError

    zero = int(scalar(expr))
    info = np.iinfo(dtype)
    if not info.min <= zero <= info.max:
        raise ModelError(f"the zero point {zero} of a {what} is outside {dtype} "
                         f"({info.min}..{info.max})")
    return zero


class Chains:
    """The bindings of a function, with how often each variable is read."""

    def __init__(self, func) -> None:
        from tvm import relax

        self.value: dict = {}
        self.uses: Counter = Counter()
        for block in func.body.blocks:
            for binding in block.bindings:
                self.value[binding.var] = binding.value
        relax.analysis.post_order_visit(func.body, self._count)

    def _count(self, node) -> None:
        from tvm import relax

        if isinstance(node, relax.Call):
            for arg in node.args:
                if isinstance(arg, relax.Var):
                    self.uses[arg] += 1

    def bound(self, expr, single_use: bool = True):
        """What ``expr`` (a variable) is bound to; constants stand for themselves."""
        from tvm import relax

        if not isinstance(expr, relax.Var):
            return expr
        if expr not in self.value:
            return expr  # a function parameter
        if single_use and self.uses[expr] != 1:
            raise NotInteger("an intermediate value read twice")
        return self.value[expr]


def is_constant(expr) -> bool:
    from tvm.ir.expr import Constant  # relax.Constant in TVM 0.27

    return isinstance(expr, Constant)


def along(values: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    """A per-axis parameter vector shaped to broadcast along ``axis`` of an ``ndim`` tensor."""
    if values.size == 1:
        return values.reshape((1,) * ndim)
    shape = [1] * ndim
    shape[axis % ndim] = values.size
    return values.reshape(shape)
