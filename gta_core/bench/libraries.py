"""The library contenders of ``gta bench``: PyTorch, numpy and ONNX Runtime, each calling
its library on the workload's inputs, writing into an output allocated once where the library
lets it (see contenders.py for the tuning ones).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from ..host import cpu_cores
from ..measure import garbage_output
from ..workloads import Expected, Workload
from ..workloads.operator import UNIT_ROUNDOFF
from . import im2col, onnx_runtime
from .contenders import BenchContext, Contender, Prepared
from .programs import CallableProgram


def bench_cores(ctx: BenchContext) -> int:
    """The threads a library contender runs on: the target's cores, else this process's."""
    return ctx.target.resources.cores or cpu_cores()


class Torch(Contender):
    name = "torch"
    method = ("PyTorch on the CPU (oneDNN), torch.set_num_threads(the target's cores), timed "
              "like the other library calls (the median of repeats of back-to-back calls): "
              "float32 GEMM / batched GEMM / GEMV as torch.matmul / torch.bmm / torch.mv "
              "with out= into one output tensor, filled with garbage before the check; "
              "bfloat16 the same on bf16 tensors, its output bf16 (oneDNN sums in float32, "
              "then rounds: checked within that rounding); int8 "
              "GEMM as torch._int_mm(out=) on the u8 activations as they are (this torch's "
              "CPU kernel takes u8 x s8 and is exact, and was faster than shifting them to "
              "s8), batched int8 GEMM as a loop of it into slices of the output, int8 GEMV as "
              "it on [1, K] x A^T (a transposed view); convolutions through "
              "torch.nn.functional, which has no out= and allocates its output in every "
              "call; mean / variance / scan as torch.mean / torch.var(correction=0) / "
              "torch.cumsum(dtype=the output's) with out=; no int8 convolution (torch's "
              "quantized ones requantise to 8 bits). "
              "In its own process (the default) PyTorch keeps its shipped OpenMP settings "
              "(gta_core.host.library_defaults); with --one-process, OMP_WAIT_POLICY=PASSIVE "
              "unless set (gta_core.host.quiet_idle_threads), since spinning OpenMP workers "
              "stall the TVM programs timed after them in that process")

    def skip_reason(self, workload: Workload, ctx: BenchContext) -> str | None:
        if not import_torch():
            return "torch is not installed (pip install 'gta-core[bench]')"
        return _torch_call(workload, None)[2]

    def prepare(self, workload: Workload, inputs: list[np.ndarray],
                ctx: BenchContext) -> Prepared:
        import torch

        torch.set_num_threads(bench_cores(ctx))
        run, out, _ = _torch_call(workload, inputs)
        if workload.params.dtype == "bfloat16":
            return Prepared(program=Bfloat16OutputProgram(run, out), note=BF16_NOTE)
        return Prepared(program=CallableProgram(run, lambda t: t.numpy(), out=out))


BF16_NOTE = ("bf16 output: oneDNN sums in float32 and rounds each output to bf16 (torch has "
             "no float32 output for a bf16 product on the CPU); checked within that rounding")


class Bfloat16OutputProgram(CallableProgram):
    """A torch call on bf16 tensors whose output is bf16 (``out``: a torch tensor, or None
    where the call returns one). Its output is read as float32 and checked against the
    float32 reference with one bf16 rounding of each output allowed beside the sum's."""

    def __init__(self, run: Callable[[], Any], out: Any) -> None:
        super().__init__(run, out=None)
        self.bf16_out = out

    def output(self) -> np.ndarray:
        result = self.run()
        return (result if self.bf16_out is None else self.bf16_out).float().numpy()

    def mismatch(self, workload: Workload, expected: Expected) -> str | None:
        rounding = UNIT_ROUNDOFF["bfloat16"] * np.abs(expected.value.astype(np.float64))
        bound = rounding if expected.bound is None else expected.bound + rounding
        return workload.mismatch(self.output(), replace(expected, bound=bound))


def import_torch() -> bool:
    """Whether torch is installed (import gta_core set its OpenMP wait policy before it loads)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


TORCH_INT8_CONV = ("n/a: torch has no int8 convolution with the exact int32 output (its "
                   "quantized x86 convolution, torch.ops.quantized.conv2d, requantises to "
                   "quint8)")


def _torch_call(workload: Workload, inputs: list[np.ndarray] | None
                ) -> tuple[Callable[[], Any] | None, np.ndarray | None, str | None]:
    """``(call, out, None)`` for the PyTorch form of ``workload`` on ``inputs``: ``call``
    writes into ``out`` (garbage-filled) where the op has out=, else ``out`` is None and it
    returns a new tensor; ``(None, None, why)`` when there is none."""
    import torch
    import torch.nn.functional as F

    p, op, dtype = workload.params, workload.operator.name, workload.params.dtype
    if dtype not in ("int8", "float32", "bfloat16"):
        return None, None, (f"no torch path wired for dtype {dtype} (the suites use int8, "
                            "float32 and bfloat16)")
    if dtype == "int8" and op not in ("gemm", "batch_gemm", "gemv", "scan"):
        return None, None, TORCH_INT8_CONV
    int8 = dtype == "int8"

    def batched_int_mm(a, w, o):
        for i in range(a.shape[0]):
            torch._int_mm(a[i], w[i], out=o[i])

    writes: dict[str, Callable[..., Any]] = {  # (inputs..., out)
        "gemm": (lambda a, b, o: torch._int_mm(a, b, out=o)) if int8
        else (lambda a, b, o: torch.matmul(a, b, out=o)),
        "batch_gemm": batched_int_mm if int8 else (lambda a, w, o: torch.bmm(a, w, out=o)),
        "gemv": (lambda x, a, o: torch._int_mm(x[None], a.t(), out=o[None])) if int8
        else (lambda x, a, o: torch.mv(a, x, out=o)),
        "mean": lambda x, o: torch.mean(x, 1, out=o),
        "variance": lambda x, o: torch.var(x, 1, correction=0, out=o),
        "scan": lambda x, o: torch.cumsum(x, 1, dtype=o.dtype, out=o),
    }
    returns: dict[str, Callable[..., Any]] = {  # (inputs...) -> a new tensor
        "conv1d": lambda x, w: F.conv1d(x, w, stride=p.stride, padding=p.pad,
                                        dilation=p.dilation),
        "conv2d": lambda x, w: F.conv2d(x, w, stride=p.stride, padding=p.pad,
                                        dilation=p.dilation, groups=p.groups),
        "depthwise_conv2d": lambda x, w: F.conv2d(x, w[:, None], stride=p.stride,
                                                  padding=p.pad, dilation=p.dilation,
                                                  groups=p.C),
        "conv3d": lambda x, w: F.conv3d(x, w, stride=p.stride, padding=p.pad),
        "conv2d_transpose": lambda x, w: F.conv_transpose2d(x, w, stride=p.stride,
                                                            padding=p.pad),
    }
    if op not in writes and op not in returns:
        return None, None, f"no torch path for operator {op}"
    if inputs is None:
        return None, None, None
    bf16 = dtype == "bfloat16"
    tensors = [torch.from_numpy(x.view(np.int16)).view(torch.bfloat16) if bf16
               else torch.from_numpy(x) for x in inputs]
    if op in returns:
        call = returns[op]
        return (lambda: call(*tensors)), None, None
    if bf16:  # its output is bf16 too: NaN until written
        out = torch.full(workload.output_shape, float("nan"), dtype=torch.bfloat16)
        tensors.append(out)
    else:
        out = garbage_output(workload)
        tensors.append(torch.from_numpy(out))  # shares out's memory
    write = writes[op]
    return (lambda: write(*tensors)), out, None


REDUCTIONS: dict[str, Callable[[np.ndarray, np.ndarray], Any]] = {  # numpy's, with out=
    "mean": lambda x, o: np.mean(x, axis=1, out=o),
    "variance": lambda x, o: np.var(x, axis=1, out=o),
    "scan": lambda x, o: np.cumsum(x, axis=1, dtype=o.dtype, out=o),
}


class Numpy(Contender):
    name = "numpy"
    method = ("numpy, each call writing into one output array (garbage-filled before the "
              "check): GEMM / batched GEMM / GEMV as np.matmul(out=) in the accumulator "
              "dtype (float32 BLAS; int8 operands cast to int32 inside the call: numpy has "
              "no int8 BLAS, and its int32 matmul is its own loop, not BLAS); convolutions "
              "as im2col (the input zero-padded into a buffer, its windows from "
              "sliding_window_view copied into a column matrix) and one np.matmul(out=) per "
              "group batch, transposed ones on the zero-stuffed input with the flipped "
              "kernel (bench/im2col.py); mean / variance / scan as np.mean / np.var / "
              "np.cumsum(out=); OPENBLAS_THREAD_TIMEOUT=4 unless set "
              "(gta_core.host.quiet_idle_threads): idle OpenBLAS workers otherwise spin "
              "and stall the TVM programs timed after them")

    def prepare(self, workload: Workload, inputs: list[np.ndarray],
                ctx: BenchContext) -> Prepared:
        acc = np.dtype(workload.params.acc_dtype)
        op = workload.operator.name
        if op in im2col.CONVOLUTIONS:
            call, out = im2col.im2col_conv(workload, inputs)
            return Prepared(CallableProgram(call, out=out))
        if op in REDUCTIONS:
            x, out = inputs[0], garbage_output(workload)
            return Prepared(CallableProgram(lambda: REDUCTIONS[op](x, out), out=out))
        if op not in ("gemm", "batch_gemm", "gemv"):
            raise ValueError(f"no numpy path for operator {op}")
        left, right = inputs if op != "gemv" else inputs[::-1]  # gemv: y = A @ x
        out = garbage_output(workload)

        def call() -> None:
            np.matmul(left.astype(acc, copy=False), right.astype(acc, copy=False), out=out)

        return Prepared(CallableProgram(call, out=out))


class OnnxRuntime(Contender):
    name = "onnxruntime"
    method = ("ONNX Runtime on its CPU execution provider, a one-node ONNX model per "
              "workload with the weights bound as an input like the data (so ORT transforms "
              "them inside every timed call, as every TVM contender packs its weights inside "
              "its call; `onnxruntime-prepacked` has them as constants), intra-op threads = "
              "the target's cores, inter-op 1, ORT_ENABLE_ALL, idle workers not spinning; float32 "
              "through MatMul / Conv / ConvTranspose, int8 through MatMulInteger / "
              "ConvInteger (u8 x s8 -> s32, exactly GTA's output; no integer transposed "
              "convolution in ONNX). Timed: session.run_with_iobinding with input and output "
              "bound once (the output garbage-filled before the check; bench/onnx_runtime.py)")
    FORM: ClassVar[onnx_runtime.Form] = "exact"
    PREPACK: ClassVar[bool] = False

    def form(self, workload: Workload) -> onnx_runtime.Form:
        return self.FORM

    def skip_reason(self, workload: Workload, ctx: BenchContext) -> str | None:
        return onnx_runtime.skip_reason(workload, self.form(workload))

    def prepare(self, workload: Workload, inputs: list[np.ndarray],
                ctx: BenchContext) -> Prepared:
        form = self.form(workload)
        return Prepared(onnx_runtime.ort_program(workload, inputs, form, bench_cores(ctx),
                                                 prepack=self.PREPACK),
                        note=QLINEAR_NOTE if form == "qlinear" else None)


class OnnxRuntimeQLinear(OnnxRuntime):
    name = "onnxruntime-qlinear"
    method = ("ONNX Runtime as `onnxruntime`, int8 through QLinearMatMul / QLinearConv (its "
              "fast u8 x s8 paths), which do extra work and compute a different output: they "
              "requantise the int32 accumulators to u8 (saturate(round(acc / scale) + "
              "zero point), scale and zero point covering the reference's range), checked "
              "within 1 unit against numpy requantising GTA's reference; int8 only")
    FORM = "qlinear"


QLINEAR_NOTE = ("does extra work and computes a different output: requantised to u8, "
                "checked within 1 unit against the requantised reference")


class OnnxRuntimePrepacked(OnnxRuntime):
    name = "onnxruntime-prepacked"
    method = ("ONNX Runtime as deployed: the weights are constants of the model, which ORT "
              "prepacks once when the session starts, outside the timed call (every other "
              "contender transforms its weights inside its call); its strongest form per "
              "dtype: float32 MatMul / Conv / ConvTranspose, int8 QLinearMatMul / QLinearConv "
              "(requantised to u8, as `onnxruntime-qlinear`)")
    PREPACK = True

    def form(self, workload: Workload) -> onnx_runtime.Form:
        return "qlinear" if workload.params.dtype == "int8" else "exact"


# Contenders calling a library rather than running a TVM program: timed in a process of
# their own with the library's own thread settings (gta_core.host.library_defaults).
LIBRARY_CONTENDERS = frozenset(c.name for c in (Torch, Numpy, OnnxRuntime, OnnxRuntimeQLinear,
                                                OnnxRuntimePrepacked)) | {"torch-prepacked"}
