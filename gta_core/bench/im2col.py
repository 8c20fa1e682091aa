"""Convolutions as a numpy user writes them: im2col, then a BLAS matrix product.

For a convolution with G groups (depthwise: G = C) the input is zero-padded into a buffer
allocated once, its kernel windows are viewed with ``sliding_window_view`` and copied into
a column matrix ``[N, G, C/G * kernel, out pixels]`` (allocated once), and ``np.matmul``
multiplies the weights ``[G, K/G, C/G * kernel]`` by it straight into the output, whose
``[N, K, *out]`` layout is that product's ``[N, G, K/G, out pixels]``: one ``np.matmul``
per image, since broadcasting the weights over N took numpy's slow path (10x slower).
Float32 runs in float32 BLAS, the weights used as they are; int8 runs in int32 (numpy has
no int8 BLAS, and its int32 matmul is its own loop, not BLAS): the padded buffer and the
weights are int32 copies made inside the call.

A transposed convolution is the same on the zero-stuffed input (``stride - 1`` zeros
between input pixels, padded by ``R - 1 - pad``) with the flipped, transposed kernel;
that kernel is made once, like the weights of a deployed model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..measure import garbage_output
from ..workloads import Workload

CONVOLUTIONS = ("conv1d", "conv2d", "conv3d", "depthwise_conv2d", "conv2d_transpose")


def im2col_conv(workload: Workload, inputs: list[np.ndarray]
                ) -> tuple[Callable[[], None], np.ndarray]:
    """``(call, out)``: ``call()`` computes the convolution ``workload`` on ``inputs`` into
    ``out`` (allocated once, garbage-filled, so an unwritten output fails the check)."""
    p, op = workload.params, workload.operator.name
    if op not in CONVOLUTIONS:
        raise ValueError(f"{op} is not a convolution; accepted: {', '.join(CONVOLUTIONS)}")
    acc = np.dtype(np.int32 if p.acc_dtype == "int32" else p.acc_dtype)
    x, w = inputs
    nsp = x.ndim - 2
    stride, pad, dilation = p.stride, p.pad, getattr(p, "dilation", 1)
    groups = getattr(p, "groups", 1)
    if op == "depthwise_conv2d":
        groups, w = p.C, w[:, None]  # [C, 1, R, S]: one single-channel filter per channel
    stuffing = 1  # input pixels sit `stuffing` apart in the buffer (transposed: stride)
    if op == "conv2d_transpose":
        # out = conv(stuffed input, flipped kernel as [K, C, R, S]), stride 1, no padding
        w = np.ascontiguousarray(np.flip(w, axis=(2, 3)).transpose(1, 0, 2, 3))
        stuffing, stride = stride, 1
        before = [k - 1 - pad for k in w.shape[2:]]
    else:
        before = [pad] * nsp
    kernel = w.shape[2:]
    n, c = x.shape[:2]
    k = w.shape[0]
    spans = [dilation * (r - 1) + 1 for r in kernel]
    padded_shape = [(e - 1) * stuffing + 1 + 2 * b for e, b in zip(x.shape[2:], before)]
    padded = np.zeros((n, c, *padded_shape), dtype=acc)  # borders (and stuffing) stay zero
    interior = padded[(slice(None), slice(None))
                      + tuple(slice(b, b + (e - 1) * stuffing + 1, stuffing)
                              for b, e in zip(before, x.shape[2:]))]
    windows = sliding_window_view(padded, spans, axis=tuple(range(2, 2 + nsp)))
    windows = windows[(slice(None), slice(None)) + (slice(None, None, stride),) * nsp
                      + (slice(None, None, dilation),) * nsp]  # [N, C, *out, *kernel]
    out_sp = windows.shape[2:2 + nsp]
    cg, kg = c // groups, k // groups
    # [N, G, C/G, *kernel, *out]: the column matrix's layout before its axes are merged
    windows = windows.reshape(n, groups, cg, *out_sp, *kernel)
    order = (0, 1, 2, *range(3 + nsp, 3 + 2 * nsp), *range(3, 3 + nsp))
    windows = windows.transpose(order)
    columns = np.empty(windows.shape, dtype=acc)
    rows = cg * int(np.prod(kernel))
    pixels = int(np.prod(out_sp))
    matrix = columns.reshape(n, groups, rows, pixels)
    weights = w.reshape(groups, kg, rows)  # a view of the weights as they are
    converted = weights.dtype != acc
    if converted:
        w_view, weights = weights, np.empty(weights.shape, dtype=acc)
    out = garbage_output(workload)
    product = out.reshape(n, groups, kg, pixels)

    def call() -> None:
        np.copyto(interior, x)  # int8: converted to int32 here
        if converted:
            np.copyto(weights, w_view)
        np.copyto(columns, windows)
        for i in range(n):  # [G, K/G, rows] x [G, rows, pixels] per image
            np.matmul(weights, matrix[i], out=product[i])

    return call, out
