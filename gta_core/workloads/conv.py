"""Convolutions: 1-D, 2-D (grouped, dilated), depthwise, 3-D and transposed 2-D.

Common conventions:

* Layouts are channel-first (NCL, NCHW, NCDHW); the activation (``data``) is
  the first input, the filter (``weight``) the second.
* Zero padding is its own TE stage named ``pad`` (skipped when ``pad=0``), so
  the main stage reads a padded tensor with affine indices. The main stage is
  the last tensor returned and is named after the operator.
* Both operands are cast to ``acc_dtype`` before the multiply and summed with
  ``te.sum``: int8 is u8 data x s8 weights -> int32, float16 / bfloat16
  accumulate in float32 unless ``out_dtype`` asks otherwise.
* References are vectorised numpy (windows from ``sliding_window_view``, sums
  with ``einsum``) in float64 or int64.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import NonNegativeInt, PositiveInt, model_validator

from .operator import Operator, OperatorParams, ShapeError, TensorInfo, numpy_dtype


def _span(kernel: int, dilation: int) -> int:
    """Input extent one (dilated) kernel window covers."""
    return dilation * (kernel - 1) + 1


def _out_extent(extent: int, kernel: int, stride: int, pad: int, dilation: int = 1) -> int:
    return (extent + 2 * pad - _span(kernel, dilation)) // stride + 1


def _check_window(
    axis: str, extent: int, kname: str, kernel: int, pad: int, dilation: int | None = None
) -> None:
    """Raise ShapeError when the kernel does not fit once in the padded input."""
    span = _span(kernel, dilation or 1)
    if span > extent + 2 * pad:
        dilated = f" (dilated extent {span})" if dilation is not None else ""
        raise ShapeError(
            f"kernel {kname}={kernel}{dilated} is larger than the padded input "
            f"{axis}+2*pad={extent + 2 * pad}"
        )


def _math(a: np.ndarray) -> np.ndarray:
    """``a`` in the dtype the references compute in: int64 for ints, float64 otherwise."""
    return a.astype(np.int64 if np.issubdtype(a.dtype, np.integer) else np.float64)


def _windows(
    x: np.ndarray, kernel: tuple[int, ...], stride: int, pad: int, dilation: int = 1
) -> np.ndarray:
    """Zero-pad the spatial axes of ``x`` [N, C, *spatial] and view its kernel windows.

    Returns a view [N, C, *out_spatial, *kernel]: element (..., o, k) is the
    padded input at o*stride + k*dilation.
    """
    nsp = len(kernel)
    x = np.pad(x, [(0, 0), (0, 0)] + [(pad, pad)] * nsp)
    spans = tuple(_span(k, dilation) for k in kernel)
    v = sliding_window_view(x, spans, axis=tuple(range(2, 2 + nsp)))
    return v[
        (slice(None), slice(None))
        + (slice(None, None, stride),) * nsp
        + (slice(None, None, dilation),) * nsp
    ]


def _pad_stage(data, pad: int | tuple[int, ...]):
    """Zero-pad every axis after N and C on both sides, as a stage named 'pad': by ``pad``,
    or by ``pad[i]`` along the i-th of those axes."""
    shape = [int(s) for s in data.shape]
    pads = (pad,) * (len(shape) - 2) if isinstance(pad, int) else tuple(pad)
    if not any(pads):
        return data
    from tvm import te, tirx

    padded = shape[:2] + [s + 2 * q for s, q in zip(shape[2:], pads, strict=True)]

    def fcompute(n, c, *idx):
        inside = []
        for i, extent, q in zip(idx, shape[2:], pads, strict=True):
            inside += [i >= q, i < q + extent]
        value = data[(n, c, *(i - q for i, q in zip(idx, pads, strict=True)))]
        return te.if_then_else(tirx.all(*inside), value, tirx.const(0, data.dtype))

    return te.compute(padded, fcompute, name="pad")


class Conv1dParams(OperatorParams):
    N: PositiveInt
    C: PositiveInt
    L: PositiveInt
    K: PositiveInt
    R: PositiveInt
    stride: PositiveInt = 1
    pad: NonNegativeInt = 0
    dilation: PositiveInt = 1

    @model_validator(mode="after")
    def _shape(self) -> Conv1dParams:
        _check_window("L", self.L, "R", self.R, self.pad, self.dilation)
        return self


class Conv1d(Operator):
    """1-D convolution, NCL data and KCR weights.

    Inputs: ``data`` [N, C, L] (data_dtype), ``weight`` [K, C, R] (weight_dtype).
    Output [N, K, L_out] in acc_dtype with
    L_out = (L + 2*pad - dilation*(R-1) - 1) // stride + 1:
    out[n, k, l] = sum_{c, r} pad(data)[n, c, l*stride + r*dilation] * weight[k, c, r].
    """

    name = "conv1d"
    description = "1-D convolution, NCL data x KCR weights"
    Params = Conv1dParams

    def _lout(self, p: Conv1dParams) -> int:
        return _out_extent(p.L, p.R, p.stride, p.pad, p.dilation)

    def inputs(self, p: Conv1dParams) -> list[TensorInfo]:
        return [
            TensorInfo("data", (p.N, p.C, p.L), p.data_dtype, "data"),
            TensorInfo("weight", (p.K, p.C, p.R), p.weight_dtype, "weight"),
        ]

    def output_shape(self, p: Conv1dParams) -> tuple[int, ...]:
        return (p.N, p.K, self._lout(p))

    def te(self, p: Conv1dParams) -> list:
        from tvm import te

        x = te.placeholder((p.N, p.C, p.L), p.data_dtype, name="data")
        wt = te.placeholder((p.K, p.C, p.R), p.weight_dtype, name="weight")
        xp = _pad_stage(x, p.pad)
        c = te.reduce_axis((0, p.C), name="c")
        r = te.reduce_axis((0, p.R), name="r")
        acc, st, dil = p.acc_dtype, p.stride, p.dilation
        out = te.compute(
            self.output_shape(p),
            # Axis names are what users read in mappings; hence the ambiguous 'l'.
            lambda n, k, l: te.sum(  # noqa: E741
                xp[n, c, l * st + r * dil].astype(acc) * wt[k, c, r].astype(acc), axis=[c, r]
            ),
            name="conv1d",
        )
        return [x, wt, out]

    def reference(self, p: Conv1dParams, inputs: list[np.ndarray]) -> np.ndarray:
        x, w = (_math(t) for t in inputs)
        v = _windows(x, (p.R,), p.stride, p.pad, p.dilation)
        out = np.einsum("nclr,kcr->nkl", v, w, optimize=True)
        return out.astype(numpy_dtype(p.acc_dtype))

    def macs(self, p: Conv1dParams) -> int:
        return p.N * p.K * self._lout(p) * p.C * p.R


class Conv2dParams(OperatorParams):
    N: PositiveInt
    C: PositiveInt
    H: PositiveInt
    W: PositiveInt
    K: PositiveInt
    R: PositiveInt
    S: PositiveInt
    stride: PositiveInt = 1
    pad: NonNegativeInt = 0
    dilation: PositiveInt = 1
    groups: PositiveInt = 1

    @model_validator(mode="after")
    def _shape(self) -> Conv2dParams:
        for name, extent in (("C", self.C), ("K", self.K)):
            if extent % self.groups:
                raise ShapeError(f"{name}={extent} is not divisible by groups={self.groups}")
        _check_window("H", self.H, "R", self.R, self.pad, self.dilation)
        _check_window("W", self.W, "S", self.S, self.pad, self.dilation)
        return self


class Conv2d(Operator):
    """2-D convolution, NCHW data and [K, C/groups, R, S] weights (OIHW).

    Grouped convolution splits C and K into ``groups`` equal parts; output
    channel k reads input channels of group k // (K/groups). Dilated
    convolution spaces kernel taps ``dilation`` apart.

    Inputs: ``data`` [N, C, H, W] (data_dtype), ``weight`` [K, C/groups, R, S]
    (weight_dtype). Output [N, K, P, Q] in acc_dtype with
    P = (H + 2*pad - dilation*(R-1) - 1) // stride + 1 (Q likewise from W, S):
    out[n, k, h, w] = sum_{c, r, s} pad(data)[n, g*C/groups + c, h*stride + r*dilation,
    w*stride + s*dilation] * weight[k, c, r, s], g = k // (K/groups).
    """

    name = "conv2d"
    description = "2-D convolution (grouped, dilated), NCHW data x OIHW weights"
    Params = Conv2dParams

    def inputs(self, p: Conv2dParams) -> list[TensorInfo]:
        return [
            TensorInfo("data", (p.N, p.C, p.H, p.W), p.data_dtype, "data"),
            TensorInfo("weight", (p.K, p.C // p.groups, p.R, p.S), p.weight_dtype, "weight"),
        ]

    def output_shape(self, p: Conv2dParams) -> tuple[int, ...]:
        return (
            p.N,
            p.K,
            _out_extent(p.H, p.R, p.stride, p.pad, p.dilation),
            _out_extent(p.W, p.S, p.stride, p.pad, p.dilation),
        )

    def main_block(self, p: Conv2dParams) -> str:
        return "conv2d" if p.groups == 1 else "conv2d_grouped"

    def te(self, p: Conv2dParams) -> list:
        from tvm import te

        cg, kg = p.C // p.groups, p.K // p.groups
        x = te.placeholder((p.N, p.C, p.H, p.W), p.data_dtype, name="data")
        wt = te.placeholder((p.K, cg, p.R, p.S), p.weight_dtype, name="weight")
        xp = _pad_stage(x, p.pad)
        c = te.reduce_axis((0, cg), name="c")
        r = te.reduce_axis((0, p.R), name="r")
        s = te.reduce_axis((0, p.S), name="s")
        acc, st, dil = p.acc_dtype, p.stride, p.dilation
        _, _, ho, wo = self.output_shape(p)
        if p.groups == 1:
            out = te.compute(
                (p.N, p.K, ho, wo),
                lambda n, k, h, w: te.sum(
                    xp[n, c, h * st + r * dil, w * st + s * dil].astype(acc)
                    * wt[k, c, r, s].astype(acc),
                    axis=[c, r, s],
                ),
                name="conv2d",
            )
            return [x, wt, out]
        # Groups get an axis of their own so every index stays affine in the loop
        # variables (k // kg would not be), then a copy restores the [N, K, H, W] layout.
        grouped = te.compute(
            (p.N, p.groups, kg, ho, wo),
            lambda n, g, k, h, w: te.sum(
                xp[n, g * cg + c, h * st + r * dil, w * st + s * dil].astype(acc)
                * wt[g * kg + k, c, r, s].astype(acc),
                axis=[c, r, s],
            ),
            name=self.main_block(p),
        )
        out = te.compute(
            (p.N, p.K, ho, wo),
            lambda n, k, h, w: grouped[n, k // kg, k % kg, h, w],
            name="conv2d",
        )
        return [x, wt, out]

    def reference(self, p: Conv2dParams, inputs: list[np.ndarray]) -> np.ndarray:
        x, w = (_math(t) for t in inputs)
        v = _windows(x, (p.R, p.S), p.stride, p.pad, p.dilation)
        n, _, ph, pw = self.output_shape(p)
        g, cg, kg = p.groups, p.C // p.groups, p.K // p.groups
        if g == 1:
            out = np.einsum("nchwrs,kcrs->nkhw", v, w, optimize=True)
        else:
            v = v.reshape(n, g, cg, ph, pw, p.R, p.S)
            wg = w.reshape(g, kg, cg, p.R, p.S)
            out = np.einsum("ngchwrs,gkcrs->ngkhw", v, wg, optimize=True)
            out = out.reshape(n, p.K, ph, pw)
        return out.astype(numpy_dtype(p.acc_dtype))

    def macs(self, p: Conv2dParams) -> int:
        n, k, ph, pw = self.output_shape(p)
        return n * k * ph * pw * (p.C // p.groups) * p.R * p.S


class DepthwiseConv2dParams(OperatorParams):
    N: PositiveInt
    C: PositiveInt
    H: PositiveInt
    W: PositiveInt
    R: PositiveInt
    S: PositiveInt
    stride: PositiveInt = 1
    pad: NonNegativeInt = 0
    dilation: PositiveInt = 1

    @model_validator(mode="after")
    def _shape(self) -> DepthwiseConv2dParams:
        _check_window("H", self.H, "R", self.R, self.pad, self.dilation)
        _check_window("W", self.W, "S", self.S, self.pad, self.dilation)
        return self


class DepthwiseConv2d(Operator):
    """Depthwise 2-D convolution: one R x S filter per channel, C channels out.

    Inputs: ``data`` [N, C, H, W] (data_dtype), ``weight`` [C, R, S]
    (weight_dtype). Output [N, C, P, Q] in acc_dtype, P and Q as for conv2d:
    out[n, c, h, w] = sum_{r, s} pad(data)[n, c, h*stride + r*dilation,
    w*stride + s*dilation] * weight[c, r, s].
    """

    name = "depthwise_conv2d"
    description = "depthwise 2-D convolution, NCHW data x [C, R, S] weights"
    Params = DepthwiseConv2dParams

    def inputs(self, p: DepthwiseConv2dParams) -> list[TensorInfo]:
        return [
            TensorInfo("data", (p.N, p.C, p.H, p.W), p.data_dtype, "data"),
            TensorInfo("weight", (p.C, p.R, p.S), p.weight_dtype, "weight"),
        ]

    def output_shape(self, p: DepthwiseConv2dParams) -> tuple[int, ...]:
        return (
            p.N,
            p.C,
            _out_extent(p.H, p.R, p.stride, p.pad, p.dilation),
            _out_extent(p.W, p.S, p.stride, p.pad, p.dilation),
        )

    def te(self, p: DepthwiseConv2dParams) -> list:
        from tvm import te

        x = te.placeholder((p.N, p.C, p.H, p.W), p.data_dtype, name="data")
        wt = te.placeholder((p.C, p.R, p.S), p.weight_dtype, name="weight")
        xp = _pad_stage(x, p.pad)
        r = te.reduce_axis((0, p.R), name="r")
        s = te.reduce_axis((0, p.S), name="s")
        acc, st, dil = p.acc_dtype, p.stride, p.dilation
        out = te.compute(
            self.output_shape(p),
            lambda n, c, h, w: te.sum(
                xp[n, c, h * st + r * dil, w * st + s * dil].astype(acc) * wt[c, r, s].astype(acc),
                axis=[r, s],
            ),
            name="depthwise_conv2d",
        )
        return [x, wt, out]

    def reference(self, p: DepthwiseConv2dParams, inputs: list[np.ndarray]) -> np.ndarray:
        x, w = (_math(t) for t in inputs)
        v = _windows(x, (p.R, p.S), p.stride, p.pad, p.dilation)
        out = np.einsum("nchwrs,crs->nchw", v, w, optimize=True)
        return out.astype(numpy_dtype(p.acc_dtype))

    def macs(self, p: DepthwiseConv2dParams) -> int:
        return int(np.prod(self.output_shape(p))) * p.R * p.S


class Conv3dParams(OperatorParams):
    N: PositiveInt
    C: PositiveInt
    D: PositiveInt
    H: PositiveInt
    W: PositiveInt
    K: PositiveInt
    T: PositiveInt
    R: PositiveInt
    S: PositiveInt
    stride: PositiveInt = 1
    pad: NonNegativeInt = 0

    @model_validator(mode="after")
    def _shape(self) -> Conv3dParams:
        _check_window("D", self.D, "T", self.T, self.pad)
        _check_window("H", self.H, "R", self.R, self.pad)
        _check_window("W", self.W, "S", self.S, self.pad)
        return self


class Conv3d(Operator):
    """3-D convolution, NCDHW data and [K, C, T, R, S] weights.

    Inputs: ``data`` [N, C, D, H, W] (data_dtype), ``weight`` [K, C, T, R, S]
    (weight_dtype). Output [N, K, O_d, O_h, O_w] in acc_dtype with
    O_d = (D + 2*pad - T) // stride + 1 (O_h from H, R; O_w from W, S):
    out[n, k, d, h, w] = sum_{c, t, r, s} pad(data)[n, c, d*stride + t, h*stride + r,
    w*stride + s] * weight[k, c, t, r, s].
    """

    name = "conv3d"
    description = "3-D convolution, NCDHW data x [K, C, T, R, S] weights"
    Params = Conv3dParams

    def inputs(self, p: Conv3dParams) -> list[TensorInfo]:
        return [
            TensorInfo("data", (p.N, p.C, p.D, p.H, p.W), p.data_dtype, "data"),
            TensorInfo("weight", (p.K, p.C, p.T, p.R, p.S), p.weight_dtype, "weight"),
        ]

    def output_shape(self, p: Conv3dParams) -> tuple[int, ...]:
        return (
            p.N,
            p.K,
            _out_extent(p.D, p.T, p.stride, p.pad),
            _out_extent(p.H, p.R, p.stride, p.pad),
            _out_extent(p.W, p.S, p.stride, p.pad),
        )

    def te(self, p: Conv3dParams) -> list:
        from tvm import te

        x = te.placeholder((p.N, p.C, p.D, p.H, p.W), p.data_dtype, name="data")
        wt = te.placeholder((p.K, p.C, p.T, p.R, p.S), p.weight_dtype, name="weight")
        xp = _pad_stage(x, p.pad)
        rc = te.reduce_axis((0, p.C), name="c")
        t = te.reduce_axis((0, p.T), name="t")
        r = te.reduce_axis((0, p.R), name="r")
        s = te.reduce_axis((0, p.S), name="s")
        acc, st = p.acc_dtype, p.stride
        out = te.compute(
            self.output_shape(p),
            lambda n, k, d, h, w: te.sum(
                xp[n, rc, d * st + t, h * st + r, w * st + s].astype(acc)
                * wt[k, rc, t, r, s].astype(acc),
                axis=[rc, t, r, s],
            ),
            name="conv3d",
        )
        return [x, wt, out]

    def reference(self, p: Conv3dParams, inputs: list[np.ndarray]) -> np.ndarray:
        x, w = (_math(t) for t in inputs)
        v = _windows(x, (p.T, p.R, p.S), p.stride, p.pad)
        out = np.einsum("ncdhwtrs,kctrs->nkdhw", v, w, optimize=True)
        return out.astype(numpy_dtype(p.acc_dtype))

    def macs(self, p: Conv3dParams) -> int:
        n, k, od, oh, ow = self.output_shape(p)
        return n * k * od * oh * ow * p.C * p.T * p.R * p.S


class Conv2dTransposeParams(OperatorParams):
    N: PositiveInt
    C: PositiveInt
    H: PositiveInt
    W: PositiveInt
    K: PositiveInt
    R: PositiveInt
    S: PositiveInt
    stride: PositiveInt = 1
    pad: NonNegativeInt = 0

    @model_validator(mode="after")
    def _shape(self) -> Conv2dTransposeParams:
        for kname, kernel in (("R", self.R), ("S", self.S)):
            if self.pad > kernel - 1:
                raise ShapeError(
                    f"pad={self.pad} is larger than {kname}-1={kernel - 1}; "
                    f"conv2d_transpose needs pad <= R-1 and pad <= S-1"
                )
        for axis, extent, kname, kernel in (("H", self.H, "R", self.R), ("W", self.W, "S", self.S)):
            out = (extent - 1) * self.stride - 2 * self.pad + kernel
            if out < 1:
                raise ShapeError(
                    f"output extent ({axis}-1)*stride-2*pad+{kname}={out} is less than 1"
                )
        return self


class Conv2dTranspose(Operator):
    """Transposed 2-D convolution (the gradient of conv2d w.r.t. its input).

    Inputs: ``data`` [N, C, H, W] (data_dtype), ``weight`` [C, K, R, S]
    (weight_dtype; PyTorch's ConvTranspose2d layout). Output [N, K, H_out, W_out]
    in acc_dtype with H_out = (H-1)*stride - 2*pad + R (W_out likewise): every
    input pixel (h, w) adds data[n, c, h, w] * weight[c, k, r, s] to output
    (h*stride + r - pad, w*stride + s - pad).

    The TE form at stride 1 is a convolution with the flipped kernel over the input
    padded by R-1-pad (S-1-pad); at larger strides, one dense convolution per output
    phase (:func:`_transpose_by_phases`), never a convolution over a zero-stuffed input,
    which would spend stride^2 times the multiply-adds on zeros.
    """

    name = "conv2d_transpose"
    description = "transposed 2-D convolution, NCHW data x [C, K, R, S] weights"
    Params = Conv2dTransposeParams

    def inputs(self, p: Conv2dTransposeParams) -> list[TensorInfo]:
        return [
            TensorInfo("data", (p.N, p.C, p.H, p.W), p.data_dtype, "data"),
            TensorInfo("weight", (p.C, p.K, p.R, p.S), p.weight_dtype, "weight"),
        ]

    def output_shape(self, p: Conv2dTransposeParams) -> tuple[int, ...]:
        return (
            p.N,
            p.K,
            (p.H - 1) * p.stride - 2 * p.pad + p.R,
            (p.W - 1) * p.stride - 2 * p.pad + p.S,
        )

    def te(self, p: Conv2dTransposeParams) -> list:
        from tvm import te

        x = te.placeholder((p.N, p.C, p.H, p.W), p.data_dtype, name="data")
        wt = te.placeholder((p.C, p.K, p.R, p.S), p.weight_dtype, name="weight")
        if p.stride > 1:
            return [x, wt, _transpose_by_phases(x, wt, p, self.output_shape(p))]
        return [x, wt, _transpose_dense(x, wt, p, self.output_shape(p))]

    def reference(self, p: Conv2dTransposeParams, inputs: list[np.ndarray]) -> np.ndarray:
        # Scatter form, independent of the TE's gather form: each kernel tap (r, s)
        # adds its whole input-sized product to a strided slice of the full output.
        x, w = (_math(t) for t in inputs)
        st = p.stride
        taps = np.einsum("nchw,ckrs->rsnkhw", x, w, optimize=True)
        full = np.zeros((p.N, p.K, (p.H - 1) * st + p.R, (p.W - 1) * st + p.S), dtype=taps.dtype)
        for r in range(p.R):
            for s in range(p.S):
                full[:, :, r : r + (p.H - 1) * st + 1 : st, s : s + (p.W - 1) * st + 1 : st] += (
                    taps[r, s]
                )
        _, _, ho, wo = self.output_shape(p)
        out = full[:, :, p.pad : p.pad + ho, p.pad : p.pad + wo]
        return out.astype(numpy_dtype(p.acc_dtype))

    def macs(self, p: Conv2dTransposeParams) -> int:
        return p.N * p.C * p.K * p.H * p.W * p.R * p.S


def _transpose_dense(x, wt, p: Conv2dTransposeParams, shape: tuple[int, ...]):
    """Stride 1: a convolution with the flipped kernel over the input padded by R-1-pad."""
    from tvm import te

    xp = _pad_stage(x, (p.R - 1 - p.pad, p.S - 1 - p.pad))
    rc = te.reduce_axis((0, p.C), name="c")
    r = te.reduce_axis((0, p.R), name="r")
    s = te.reduce_axis((0, p.S), name="s")
    acc = p.acc_dtype
    return te.compute(
        shape,
        lambda n, k, h, w: te.sum(
            xp[n, rc, h + r, w + s].astype(acc)
            * wt[rc, k, p.R - 1 - r, p.S - 1 - s].astype(acc),
            axis=[rc, r, s],
        ),
        name="conv2d_transpose",
    )


def _transpose_by_phases(x, wt, p: Conv2dTransposeParams, shape: tuple[int, ...]):
    """Stride > 1 as stride^2 dense convolutions, one per output phase (sub-pixel form).

    Output row h takes input rows i and kernel taps r with h + pad = i*stride + r. Per
    phase py = (h + pad) % stride, only taps r = py + stride*t contribute, from input row
    q - t where q = (h + pad) // stride: a dense convolution over the input with
    T = ceil(R / stride) taps. The stage ``phase_weight`` lays the weights out per phase
    (taps past R are zero), ``conv2d_transpose`` computes every phase at every q (a few
    rows past the output's ends), and the output gathers its phase. stride^2 times fewer
    multiply-adds than a convolution over the zero-stuffed input.
    """
    from tvm import te, tirx

    st = p.stride
    th, tw = -(-p.R // st), -(-p.S // st)
    qh, qw = p.H - 1 + th, p.W - 1 + tw
    xp = _pad_stage(x, (th - 1, tw - 1))

    def phase_weight(py, px, c, k, t, v):
        r, s = py + st * (th - 1 - t), px + st * (tw - 1 - v)
        inside = tirx.all(r < p.R, s < p.S)
        value = wt[c, k, tirx.min(r, p.R - 1), tirx.min(s, p.S - 1)]
        return te.if_then_else(inside, value, tirx.const(0, wt.dtype))

    wph = te.compute((st, st, p.C, p.K, th, tw), phase_weight, name="phase_weight")
    c = te.reduce_axis((0, p.C), name="c")
    t = te.reduce_axis((0, th), name="t")
    v = te.reduce_axis((0, tw), name="v")
    acc = p.acc_dtype
    phased = te.compute(
        (p.N, p.K, st, st, qh, qw),
        lambda n, k, py, px, q, u: te.sum(
            xp[n, c, q + t, u + v].astype(acc) * wph[py, px, c, k, t, v].astype(acc),
            axis=[c, t, v],
        ),
        name="conv2d_transpose",
    )
    return te.compute(
        shape,
        lambda n, k, h, w: phased[n, k, tirx.floormod(h + p.pad, st),
                                  tirx.floormod(w + p.pad, st),
                                  tirx.floordiv(h + p.pad, st), tirx.floordiv(w + p.pad, st)],
        name="phase_gather",
    )
