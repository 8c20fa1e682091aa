"""3x3 convolutions as Winograd's minimal filtering: fewer multiplications than the direct
convolution, the rest a batched GEMM the intrinsics run.

A float32 3x3 convolution at stride 1 spends 9 multiply-adds per output and input
channel. Winograd's F(m x m, 3 x 3) (Lavin and Gray, 2016) computes an m x m tile of
outputs from an (m+2) x (m+2) tile of inputs with (m+2)^2 of them: F(2, 3) 16 for 36
(2.25x fewer), F(4, 3) 36 for 144 (4x). The convolution becomes four functions:

- the weights transformed, ``U = G g G^T`` per input and output channel: a constant in a
  model, computed once when the module is compiled (``FoldConstant``);
- the input's tiles transformed, ``V = B^T d B``: a pass over the input with additions
  only (F(2, 3)) or a few small constants (F(4, 3)), written here as a scheduled program
  (:func:`scheduled_data_transform`): each tile read once, its (m+2)^2 outputs in
  registers;
- ``(m+2)^2`` independent GEMMs, ``M[e] = V[e] x U[e]`` over the input channels: the bulk of
  the work, tuned by GTA as any batched GEMM;
- the output tiles, ``Y = A^T M A``: an injective function the convolution's bias, ReLU
  and residual add fuse into.

onnxruntime's and oneDNN's float32 CPU convolutions are direct; this is what makes GTA's
3x3 layers need fewer instructions than theirs, at the price of transforms that move
(m+2)^2/m^2 times the input's and output's bytes, weights (m+2)^2/9 times as large, and
a rounding error a few times the direct convolution's (the transforms' constants are
exact in float32 for F(2, 3); F(4, 3)'s G holds thirds).
"""

from __future__ import annotations

from functools import cache

import numpy as np

KERNEL = 3


@cache
def matrices(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(A^T, B^T, G)`` of F(m x m, 3 x 3) in float64: shapes (m, a), (a, a), (a, 3) with
    ``a = m + 2`` (TVM's Cook-Toom construction on its interpolation points)."""
    from tvm.topi.nn.winograd_util import _cook_toom_convolution, _interpolation_points

    a, b, g = _cook_toom_convolution(_interpolation_points(m + KERNEL - 1), m, KERNEL)
    return a.T.copy(), b.T.copy(), g.copy()


def tiles(extent: int, m: int) -> int:
    """Tiles of ``m`` outputs covering ``extent`` (the last one cut)."""
    return -(-extent // m)


def weight_points(m: int) -> np.ndarray:
    """``G (x) G`` as ``[(m+2)^2, 9]`` float32: row ``e = i*(m+2) + j`` holds
    ``G[i, r] * G[j, s]`` at column ``r*3 + s`` (products taken in float64)."""
    _, _, g = matrices(m)
    return np.einsum("ir,js->ijrs", g, g).reshape(-1, KERNEL * KERNEL).astype("float32")


def weight_transform(points, kernel):
    """``U[e, c, k] = sum_t points[e, t] g[k, c, t]``: the blocked kernel
    ``[k // b, c, 3, 3, 1, k % b]`` (``OIHW1i{b}o``) at the ``(m+2)^2`` points
    (:func:`weight_points`)."""
    from tvm import te

    out_blocks, channels, _, _, _, lanes = (int(d) for d in kernel.shape)
    taps = te.reduce_axis((0, KERNEL * KERNEL), "t")
    return te.compute(
        (int(points.shape[0]), channels, out_blocks * lanes),
        lambda e, c, k: te.sum(points[e, taps] * kernel[k // lanes, c, taps // KERNEL,
                                                          taps % KERNEL, 0, k % lanes],
                               axis=taps), name="winograd_weight")


def _terms(coefficients: np.ndarray, values) -> object:
    """``sum coefficients[i, j] * values(i, j)`` over the nonzero coefficients, a unit one
    as an add or subtract: the expression a transform's point computes."""
    total = None
    for (i, j), c in np.ndenumerate(coefficients):
        if c == 0:
            continue
        value = values(i, j)
        term = value if c == 1 else -value if c == -1 else value * float(c)
        total = term if total is None else total + term
    return total


def _chain(index, branches: list):
    """``branches[index]`` as a chain of ``if_then_else`` (evaluated lazily: only the
    branch taken runs once ``index`` is a constant or invariant in the vector loop)."""
    from tvm import tirx

    expr = branches[-1]
    for k in range(len(branches) - 2, -1, -1):
        expr = tirx.if_then_else(index == k, branches[k], expr)
    return expr


def data_transform(data, m: int, padding: tuple[int, int, int, int]):
    """``V[e, p, c]``: the blocked input ``[n, c // b, h, w, c % b]`` cut into the tiles of
    a 3x3 convolution's ``m x m`` outputs (``p`` over ``n``, tile rows, tile columns), each
    transformed, ``B^T d B``, zeros where the tile reaches into the padding."""
    from tvm import te, tirx

    batch, in_blocks, height, width, lanes = (int(d) for d in data.shape)
    top, left, bottom, right = padding
    rows = tiles(height + top + bottom - KERNEL + 1, m)
    cols = tiles(width + left + right - KERNEL + 1, m)
    _, bt, _ = matrices(m)
    a = m + KERNEL - 1

    def compute(e, p, c):
        n, rest = p // (rows * cols), p % (rows * cols)
        y0, x0 = rest // cols * m - top, rest % cols * m - left
        block, lane = c // lanes, c % lanes

        def tap(i, j):
            y, x = y0 + i, x0 + j
            inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
            return tirx.if_then_else(inside, data[n, block, y, x, lane], tirx.const(0, data.dtype))

        points = [_terms(np.outer(bt[xi], bt[nu]), tap) for xi in range(a) for nu in range(a)]
        return _chain(e, points)

    return te.compute((a * a, batch * rows * cols, in_blocks * lanes), compute,
                      name="winograd_data")


def batched_gemm(v, u):
    """``M[e, p, k] = sum_c V[e, p, c] U[e, c, k]``: one GEMM per point."""
    from tvm import te

    points, positions, channels = (int(d) for d in v.shape)
    c = te.reduce_axis((0, channels), "c")
    return te.compute((points, positions, int(u.shape[2])),
                      lambda e, p, k: te.sum(v[e, p, c] * u[e, c, k], axis=c),
                      name="winograd_gemm")


def output_transform(product, m: int, shape: tuple[int, ...]):
    """The blocked output ``[n, k // b, y, x, k % b]`` (``shape``) of the products
    ``M[e, p, k]``: each tile ``A^T M A``, the element at ``(y % m, x % m)`` of it."""
    from tvm import te

    batch, out_blocks, height, width, lanes = shape
    rows, cols = tiles(height, m), tiles(width, m)
    at, _, _ = matrices(m)
    a = m + KERNEL - 1

    def compute(n, k, y, x, lane):
        p = (n * rows + y // m) * cols + x // m
        channel = k * lanes + lane

        def point(xi, nu):
            return product[xi * a + nu, p, channel]

        outputs = [_terms(np.outer(at[i], at[j]), point) for i in range(m) for j in range(m)]
        return _chain(y % m * m + x % m, outputs)

    return te.compute(shape, compute, name="winograd_output")


def scheduled_data_transform(data, m: int, padding: tuple[int, int, int, int]):
    """:func:`data_transform` as a scheduled PrimFunc of ``(data, V)``, with V's shape: a
    parallel loop over the tiles and channel blocks, each tile's points unrolled (each its
    few nonzero terms, the tile's loads shared), the block's lanes one vector. It is no
    task to tune: ``op_pattern`` opaque keeps ``FuseOps`` from merging it,
    ``tirx.is_scheduled`` keeps GTA and TVM from scheduling it again."""
    from tvm import s_tir, te

    lanes = int(data.shape[-1])
    out = data_transform(data, m, padding)
    sch = s_tir.Schedule(te.create_prim_func([data, out]))
    point, position, channel = sch.get_loops(sch.get_sblock("winograd_data"))
    block, lane = sch.split(channel, [None, lanes])
    sch.reorder(position, block, point, lane)
    sch.parallel(sch.fuse(position, block))
    sch.unroll(point)
    sch.vectorize(lane)
    func = sch.mod["main"].with_attr("op_pattern", 8).with_attr("tirx.is_scheduled", True)
    return func, [int(d) for d in out.shape]


def legalize(bb, call, m: int):
    """The blocked conv2d ``call`` (3x3, stride 1, no dilation or groups) as Winograd's
    F(m x m, 3 x 3): the Relax bindings of the module docstring's four functions."""
    from tvm import relax, te

    data, kernel = call.args
    shape = tuple(int(d) for d in call.ty.shape)
    padding = tuple(int(p) for p in call.attrs.padding)
    placeholder = te.placeholder([int(d) for d in data.ty.shape], str(data.ty.dtype), "data")
    transform, v_shape = scheduled_data_transform(placeholder, m, padding)
    points = bb.emit(relax.const(weight_points(m)))
    weights = bb.emit_te(weight_transform, points, kernel, primfunc_name_hint="winograd_weight")
    tiles_in = bb.emit(relax.call_tir(bb.add_func(transform, "winograd_data"), [data],
                                      relax.TensorType(v_shape, "float32")))
    products = bb.emit_te(batched_gemm, tiles_in, weights, primfunc_name_hint="winograd_gemm")
    return bb.call_te(output_transform, products, m, shape, primfunc_name_hint="winograd_output")


# What a byte moved costs in multiply-adds, for choosing the tile. A model's weights come
# from memory once per inference, overlapping the arithmetic: on the 2-core Zen 4 here, a
# F(2, 3) GEMM over ResNet's 7x7 pixels, weights flushed to memory, ran its 67 M
# multiply-adds and read its 16.8 MB of weights in 653 us, about as long as the
# arithmetic alone: 4 multiply-adds per byte keep up. The transformed tiles pass through
# the caches between two functions, on top of the arithmetic: about 1 per byte.
MACS_PER_WEIGHT_BYTE = 4.0
MACS_PER_TILE_BYTE = 1.0
# Winograd runs three functions where the direct convolution runs one; each more is a
# parallel launch and a pass over its tensors, a few microseconds here whatever the size:
# about 1.2 M multiply-adds for the two. It keeps a small layer (8x8 pixels, 16
# channels) direct, where the transforms' fixed costs outweigh the products saved.
EXTRA_FUNCTIONS_MACS = 1.2e6
TILES = (2, 4)


def tile_for(batch: int, channels: int, out_channels: int, out_h: int, out_w: int) -> int | None:
    """The ``m`` of F(m x m, 3 x 3) that costs least for this layer, or None where the
    direct convolution does. Each costs its multiply-adds or its weights' bytes, whichever
    is more (a roofline), plus the transformed tiles' bytes and the two extra functions
    (at the exchange rates above).
    F(m) saves multiply-adds in proportion to the pixels but makes the weights (m+2)^2/9
    times as large: it wins on large images and loses where a layer has few pixels for
    its weights (F(4, 3) on ResNet's 7x7 layers, any tile on 2x2 pixels)."""
    weights = channels * out_channels * 4 * MACS_PER_WEIGHT_BYTE
    cost = {None: max(out_h * out_w * batch * channels * out_channels * 9, 9 * weights)}
    for m in TILES:
        points = (m + KERNEL - 1) ** 2
        count = batch * tiles(out_h, m) * tiles(out_w, m)
        cost[m] = (max(points * count * channels * out_channels, points * weights)
                   + 2 * points * count * (channels + out_channels) * 4 * MACS_PER_TILE_BYTE
                   + EXTRA_FUNCTIONS_MACS)
    return min(cost, key=cost.get)


def eligible(call) -> bool:
    """A float32 blocked conv2d (``NCHW{b}c``, ``OIHW1i{b}o``) with a 3x3 kernel, stride 1,
    no dilation, no groups; never with ``GTA_WINOGRAD=0`` in the environment (tuning and
    compiling a model must agree on it: their functions differ)."""
    import os

    if os.environ.get("GTA_WINOGRAD", "1") == "0":
        return False
    attrs = call.attrs
    kernel = [int(d) for d in call.args[1].ty.shape]
    return (str(call.args[0].ty.dtype) == str(call.args[1].ty.dtype) == "float32"
            and (attrs.out_dtype in ("", None) or str(attrs.out_dtype) == "float32")
            and int(attrs.groups) == 1 and len(kernel) == 6 and kernel[2:4] == [3, 3]
            and all(int(s) == 1 for s in attrs.strides)
            and all(int(d) == 1 for d in attrs.dilation))
