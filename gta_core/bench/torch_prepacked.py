"""``torch-prepacked``: PyTorch's oneDNN (and MKL) kernels with the weights laid out once.

``torch.nn.functional`` reorders a convolution's weights into oneDNN's blocked layout in
every call; a deployed PyTorch model does not. ``torch.compile`` with freezing (Inductor's
CPU path) prepacks each constant weight once (``torch.ops.mkldnn._reorder_*_weight``,
``torch.ops.mkl._mkl_reorder_linear_weight``) and calls the prepacked kernels. This
contender calls the same kernels directly, so the timed call is the compute alone, as for
``onnxruntime-prepacked`` and GTA's ``weights=constant`` workloads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..workloads import Workload
from .contenders import BenchContext, Contender, Prepared
from .libraries import bench_cores, import_torch
from .programs import CallableProgram

CONVOLUTIONS = ("conv1d", "conv2d", "depthwise_conv2d", "conv3d", "conv2d_transpose")


class TorchPrepacked(Contender):
    name = "torch-prepacked"
    method = ("PyTorch as Inductor's frozen CPU path runs a deployed model: the weights laid "
              "out once before the timed calls, by torch.ops.mkldnn._reorder_convolution_"
              "weight / _reorder_convolution_transpose_weight (oneDNN's blocked layout) and "
              "torch.ops.mkl._mkl_reorder_linear_weight (MKL's packed GEMM), then "
              "_convolution_pointwise / _convolution_transpose_pointwise / _mkl_linear per "
              "call on the NCHW data (conv1d as conv2d of height 1; depthwise as groups=C); "
              "float32 only; torch.set_num_threads(the target's cores)")

    def skip_reason(self, workload: Workload, ctx: BenchContext) -> str | None:
        if not import_torch():
            return "torch is not installed (pip install 'gta-core[bench]')"
        op = workload.operator.name
        if workload.params.dtype != "float32":
            return "n/a: PyTorch's prepacked CPU kernels are wired here for float32 only"
        if op not in (*CONVOLUTIONS, "gemm"):
            return f"n/a: {op} has no weight PyTorch prepacks"
        return None

    def prepare(self, workload: Workload, inputs: list[np.ndarray],
                ctx: BenchContext) -> Prepared:
        import torch

        torch.set_num_threads(bench_cores(ctx))
        data, weight = (torch.from_numpy(x) for x in inputs)
        with torch.no_grad():
            call = (_linear(data, weight) if workload.operator.name == "gemm"
                    else _convolution(workload, data, weight))
        return Prepared(program=CallableProgram(call, lambda t: t.numpy()))


def _linear(a: Any, b: Any) -> Callable[[], Any]:
    """``a @ b`` with ``b`` ([K, N]) packed for ``a``'s rows: MKL's packed GEMM, else
    oneDNN's."""
    import torch

    rows, w = a.shape[0], b.t().contiguous()  # [N, K], as nn.Linear holds it
    if torch.backends.mkl.is_available():
        packed = torch.ops.mkl._mkl_reorder_linear_weight(w, rows)
        return lambda: torch.ops.mkl._mkl_linear(a, packed, w, None, rows)
    packed = torch.ops.mkldnn._reorder_linear_weight(w, rows)
    return lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], "")


def _convolution(workload: Workload, x: Any, w: Any) -> Callable[[], Any]:
    """The convolution with its weights in oneDNN's layout for ``x``'s shape."""
    import torch

    p, op, mkldnn = workload.params, workload.operator.name, torch.ops.mkldnn
    groups = p.C if op == "depthwise_conv2d" else getattr(p, "groups", 1)
    if op == "depthwise_conv2d":
        w = w[:, None]  # [C, 1, R, S]
    if op == "conv1d":  # oneDNN's prepacked path has 2-D and 3-D forms: a height of 1
        x, w = x[:, :, None], w[:, :, None]
    dims = x.dim() - 2

    def axes(value: int, height: int) -> list[int]:
        return [height, value] if op == "conv1d" else [value] * dims

    pad, stride = axes(p.pad, 0), axes(p.stride, 1)
    dilation = axes(getattr(p, "dilation", 1), 1)
    x, w = x.contiguous(), w.contiguous()
    if op == "conv2d_transpose":
        out_pad = [0] * dims
        packed = mkldnn._reorder_convolution_transpose_weight(
            w, pad, out_pad, stride, dilation, groups, list(x.shape))
        return lambda: mkldnn._convolution_transpose_pointwise(
            x, packed, None, pad, out_pad, stride, dilation, groups, "none", [], "")
    packed = mkldnn._reorder_convolution_weight(w, pad, stride, dilation, groups,
                                                list(x.shape))

    def run() -> Any:
        return mkldnn._convolution_pointwise(x, packed, None, pad, stride, dilation, groups,
                                             "none", [], "")

    return (lambda: run()[:, :, 0]) if op == "conv1d" else run
