"""What the graph rewrites ask of a Relax expression (its operator, its static shape, its
constant value), and the NCHW -> NCHW{b}c index map they match layout transforms with."""

from __future__ import annotations

import numpy as np

# Elementwise ops of two operands that broadcast: what a per-channel constant rides on.
BINARY = {"relax.add", "relax.multiply", "relax.subtract", "relax.divide", "relax.maximum",
          "relax.minimum"}


def op_name(expr) -> str | None:
    """The name of the operator ``expr`` calls; None for anything but an operator call."""
    import tvm
    from tvm import relax

    return expr.op.name if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) \
        else None


def static_shape(expr) -> tuple[int, ...] | None:
    """``expr``'s shape; None when it is not a tensor or a dimension is symbolic."""
    try:
        return tuple(int(d) for d in expr.ty.shape)
    except (AttributeError, TypeError, ValueError):
        return None


def constant_value(expr) -> np.ndarray | None:
    """The value of a constant; None for anything computed."""
    from tvm.ir.expr import Constant  # relax.Constant in TVM 0.27

    return expr.value.numpy() if isinstance(expr, Constant) else None


def into_blocks(block: int):
    """The index map NCHW -> NCHW{block}c, as a function of (n, c, h, w)."""
    return lambda n, c, h, w: (n, c // block, h, w, c % block)
