"""ONNX Runtime as a baseline: a one-node ONNX model per workload, run through IOBinding.

The model is built in memory with ``onnx.helper``: the workload's data is a graph input,
and its weights are either a graph input too (``prepack=False``: ORT then transforms them
inside every timed call, as every TVM contender does with its weight packing) or
initializers (``prepack=True``: constants, as in a deployed model, which ORT prepacks once
when the session starts, outside the timed call). The session runs on the CPU execution
provider with ``intra_op_num_threads`` = the target's cores, ``inter_op_num_threads`` = 1
and every graph optimisation (ORT_ENABLE_ALL). Inputs and output are bound once to ORT values that
share memory with numpy arrays (the output garbage-filled first), so the timed call is
``session.run_with_iobinding`` alone.

Two forms:

* exact: float32 through MatMul / Conv / ConvTranspose; int8 (u8 x s8 -> s32) through
  MatMulInteger / ConvInteger, which compute exactly GTA's int32 output.
* qlinear: int8 through QLinearMatMul / QLinearConv, ORT's fast u8 x s8 paths, which also
  requantise the int32 accumulators to u8: ``y = saturate(round(acc / scale) + zero_point)``,
  round half to even, with ``scale`` and ``zero_point`` mapping the reference's accumulator
  range onto 0..255 (:class:`Requantisation`). Its output is a different one; it is checked
  within 1 unit against numpy applying the same requantisation to GTA's reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..measure import garbage
from ..workloads import Expected, Workload
from .programs import CallableProgram

Form = Literal["exact", "qlinear"]
OPSET = 21
IR_VERSION = 10  # what this onnxruntime reads; onnx's newest may be newer
MATMULS = ("gemm", "batch_gemm", "gemv")
CONVS = ("conv1d", "conv2d", "conv3d", "depthwise_conv2d")


def skip_reason(workload: Workload, form: Form) -> str | None:
    """Why ONNX Runtime has no ``form`` program for ``workload``; None when it has one."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return "onnx or onnxruntime is not installed (pip install 'gta-core[bench]')"
    op, dtype = workload.operator.name, workload.params.dtype
    if op not in (*MATMULS, *CONVS, "conv2d_transpose"):
        return f"n/a: no ONNX form wired for operator {op}"
    if dtype not in ("int8", "float32"):
        return f"n/a: no ONNX form wired for dtype {dtype} (the suites use int8 and float32)"
    if form == "qlinear" and dtype != "int8":
        return "n/a: int8 only (QLinearMatMul / QLinearConv take 8-bit inputs)"
    if dtype == "int8" and op == "conv2d_transpose":
        return ("n/a: ONNX has no integer transposed convolution (ConvInteger and "
                "QLinearConv have no transposed form)")
    return None


@dataclass(frozen=True)
class Requantisation:
    """int32 accumulators to u8 as QLinearMatMul / QLinearConv do it (inputs' scales 1,
    zero points 0): ``saturate(round_half_even(acc / scale) + zero_point)``."""

    scale: float  # a float32 value
    zero_point: int  # 0..255

    @classmethod
    def covering(cls, acc: np.ndarray) -> Requantisation:
        """The one mapping the range of ``acc`` (and 0) onto 0..255."""
        lo, hi = min(int(acc.min()), 0), max(int(acc.max()), 0)
        scale = float(np.float32(max(hi - lo, 1) / 255))
        return cls(scale=scale, zero_point=int(np.clip(np.rint(-lo / scale), 0, 255)))

    def apply(self, acc: np.ndarray) -> np.ndarray:
        """numpy's requantisation of ``acc`` (float64 arithmetic, round half to even)."""
        y = np.rint(acc.astype(np.float64) / self.scale) + self.zero_point
        return np.clip(y, 0, 255).astype(np.uint8)


class RequantisedProgram(CallableProgram):
    """A program whose output is the requantised (u8) form of the operator's output: checked
    against ``requantisation`` applied to the operator's reference, within 1 unit (the
    library rounds ``acc * (1 / scale)`` in float32)."""

    def __init__(self, run: Any, out: np.ndarray, requantisation: Requantisation) -> None:
        super().__init__(run, out=out)
        self.requantisation = requantisation

    def mismatch(self, workload: Workload, expected: Expected) -> str | None:
        got = self.output()
        want = self.requantisation.apply(expected.value)
        if got.shape != want.shape:
            return f"shape {got.shape} != expected {want.shape}"
        error = np.abs(got.astype(np.int64) - want.astype(np.int64))
        bad = error > 1
        if not bad.any():
            return None
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        return (f"{int(bad.sum())} of {bad.size} requantised outputs differ from numpy's "
                f"requantisation of the reference by more than 1 (largest {int(error.max())}; "
                f"at {first}: got {got[first]}, expected {want[first]})")


def ort_program(workload: Workload, inputs: list[np.ndarray], form: Form,
                cores: int, prepack: bool = False) -> CallableProgram:
    """The ``form`` program for ``workload`` on ``inputs``, its session on ``cores`` threads;
    the weights constants of the model with ``prepack``, else bound as an input.

    ValueError when there is none (:func:`skip_reason` says why).
    """
    reason = skip_reason(workload, form)
    if reason is not None:
        raise ValueError(reason)
    import onnxruntime as ort

    requantisation = (Requantisation.covering(workload.reference(inputs))
                      if form == "qlinear" else None)
    model, bound = _model(workload, inputs, requantisation, prepack)
    options = ort.SessionOptions()
    options.intra_op_num_threads = cores
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle workers sleep at once, as OMP_WAIT_POLICY=PASSIVE has PyTorch's do: spinning ones
    # take the core another contender's parallel program needs (gta_core.host).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    out = garbage(workload.output_shape,
                  np.uint8 if requantisation else np.dtype(_acc(workload)))
    run = BoundSession(session, bound, out)
    if requantisation is not None:
        return RequantisedProgram(run, out, requantisation)
    return CallableProgram(run, out=out)


class BoundSession:
    """A session with its inputs (name -> array) and output bound once to ORT values sharing
    memory with them and ``out``; calling it runs the session into ``out``."""

    def __init__(self, session: Any, inputs: dict[str, np.ndarray], out: np.ndarray) -> None:
        import onnxruntime as ort

        self.session = session
        # The ORT values hold the arrays: the binding's copies of them do not.
        self.values = {name: ort.OrtValue.ortvalue_from_numpy(array)
                       for name, array in inputs.items()}
        self.values["out"] = ort.OrtValue.ortvalue_from_numpy(out)
        self.binding = session.io_binding()
        for name in inputs:
            self.binding.bind_ortvalue_input(name, self.values[name])
        self.binding.bind_ortvalue_output("out", self.values["out"])

    def __call__(self) -> None:
        self.session.run_with_iobinding(self.binding)


def _acc(workload: Workload) -> str:
    return "int32" if workload.params.acc_dtype == "int32" else workload.params.acc_dtype


def _model(workload: Workload, inputs: list[np.ndarray], requantisation: Requantisation | None,
           prepack: bool) -> tuple[bytes, dict[str, np.ndarray]]:
    """The serialised one-node model and the arrays its graph inputs are bound to."""
    from onnx import TensorProto, helper, numpy_helper

    p, op = workload.params, workload.operator.name
    data, weight = inputs
    int8 = p.dtype == "int8"
    if op == "gemv":  # y = A @ x: x [K] is the data, A [M, K] the weight
        data, weight = inputs
        if int8:  # x @ A^T: the integer ops want the u8 activations first
            first, second = "data", "weight"
            weight = np.ascontiguousarray(weight.T)
        else:
            first, second = "weight", "data"
    else:
        first, second = "data", "weight"
    attrs: dict[str, Any] = {}
    if op in CONVS or op == "conv2d_transpose":
        nsp = data.ndim - 2
        attrs = {"strides": [p.stride] * nsp, "pads": [p.pad] * (2 * nsp)}
        if op != "conv2d_transpose":
            attrs["dilations"] = [getattr(p, "dilation", 1)] * nsp
            attrs["group"] = getattr(p, "groups", 1)
        if op == "depthwise_conv2d":
            weight, attrs["group"] = weight[:, None], p.C  # [C, 1, R, S]
    kind = "matmul" if op in MATMULS else "conv"
    if op == "conv2d_transpose":  # ONNX's weight layout [C, K/group, R, S] is GTA's
        node_op = "ConvTranspose"
    elif requantisation is not None:
        node_op = {"matmul": "QLinearMatMul", "conv": "QLinearConv"}[kind]
    elif int8:
        node_op = {"matmul": "MatMulInteger", "conv": "ConvInteger"}[kind]
    else:
        node_op = {"matmul": "MatMul", "conv": "Conv"}[kind]
    weight = np.ascontiguousarray(weight)
    bound = {"data": np.ascontiguousarray(data)}
    if prepack:
        initializers = [numpy_helper.from_array(weight, "weight")]
    else:
        initializers, bound["weight"] = [], weight
    if requantisation is not None:  # data and weight: scale 1, zero point 0
        names = [first, "one", "zero_u8", second, "one", "zero_s8", "out_scale", "out_zero"]
        initializers += [
            numpy_helper.from_array(np.array(1, np.float32), "one"),
            numpy_helper.from_array(np.array(0, np.uint8), "zero_u8"),
            numpy_helper.from_array(np.array(0, np.int8), "zero_s8"),
            numpy_helper.from_array(np.array(requantisation.scale, np.float32), "out_scale"),
            numpy_helper.from_array(np.array(requantisation.zero_point, np.uint8), "out_zero")]
        out_type = TensorProto.UINT8
    else:
        names = [first, second]
        out_type = helper.np_dtype_to_tensor_dtype(np.dtype(_acc(workload)))
    node = helper.make_node(node_op, names, ["out"], **attrs)
    graph = helper.make_graph(
        [node], workload.operator.name,
        [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(array.dtype),
                                       array.shape) for name, array in bound.items()],
        [helper.make_tensor_value_info("out", out_type, workload.output_shape)],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model.SerializeToString(), bound
