"""ONNX files in: checked, shapes fixed, imported by TVM's Relax ONNX frontend."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from .model import Model, ModelError, ModelInput


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".rstrip(": ")


def _read(path: Path):
    try:
        import onnx
    except ImportError:
        raise ModelError("ONNX models need the onnx package: pip install onnx") from None
    if path.is_dir():
        raise ModelError(f"{path} is not an ONNX model (it is a folder)")
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf raises several kinds on garbage
        raise ModelError(f"{path} is not an ONNX model ({_first_line(exc)})") from None
    # Protobuf parses many byte strings as an empty message: a model has a graph with nodes.
    if not model.ir_version or not model.graph.node:
        raise ModelError(f"{path} is not an ONNX model (no graph nodes in it)")
    return model


def _unsupported(model) -> list[str]:
    """Operators of ``model`` that TVM's importer has no converter for, as 'Op (node name)'."""
    from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map

    known = set(_get_convert_map()) | {"If", "Constant"}
    seen: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type not in known:
            seen.setdefault(node.op_type, node.name or "unnamed")
    return [f"{op} (node {name!r})" for op, name in seen.items()]


def _inputs(model, path: Path, shapes: dict[str, tuple[int, ...]]) -> list[ModelInput]:
    from onnx import helper

    weights = {init.name for init in model.graph.initializer}
    graph_inputs = [vi for vi in model.graph.input if vi.name not in weights]
    names = [vi.name for vi in graph_inputs]
    for name in shapes:
        if name not in names:
            raise ModelError(f"--input-shape names {name!r}, which is not an input of {path}; "
                             f"its inputs: {', '.join(names)}")
    inputs = []
    for vi in graph_inputs:
        tensor = vi.type.tensor_type
        dtype = str(helper.tensor_dtype_to_np_dtype(tensor.elem_type))
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                for d in tensor.shape.dim]
        shape = shapes.get(vi.name)
        if shape is None:
            if None in dims or not tensor.HasField("shape"):
                shown = "x".join("?" if d is None else str(d) for d in dims) or "unknown"
                raise ModelError(f"input {vi.name!r} of {path} has no fixed shape ({shown}); "
                                 f"give one with --input-shape {vi.name}=DIMxDIM...")
            shape = tuple(dims)
        elif len(shape) != len(dims) or any(d not in (None, s) for d, s in zip(dims, shape)):
            model_shape = "x".join("?" if d is None else str(d) for d in dims)
            raise ModelError(f"--input-shape {vi.name}={'x'.join(map(str, shape))} does not fit "
                             f"the model's {model_shape}")
        inputs.append(ModelInput(vi.name, tuple(int(s) for s in shape), dtype))
    return inputs


def load_onnx(path: str | os.PathLike,
              input_shapes: dict[str, tuple[int, ...]] | None = None,
              integer: bool = True) -> Model:
    """The ONNX model at ``path`` in Relax, weights bound as constants.

    ``input_shapes`` fixes inputs the model leaves open (``{"x": (1, 3, 224, 224)}``);
    every input needs a concrete shape. A quantized model (QuantizeLinear /
    DequantizeLinear around its layers, as ``onnxruntime.quantization`` writes it) has
    each quantized Conv, MatMul and Gemm turned into an integer program (u8 x s8 -> s32
    and a requantize epilogue; ``Model.quantized`` says which); ``integer=False`` keeps
    TVM's own import, which computes them in float. Raises :class:`ModelError` (one line)
    for a file that is not ONNX, an operator TVM cannot import (named), or an open shape.
    """
    from .qoperators import as_qdq

    path = Path(path)
    model = _read(path)
    inputs = _inputs(model, path, dict(input_shapes or {}))
    try:
        model = as_qdq(model)
    except ValueError as exc:
        raise ModelError(f"{path}: {exc}") from None
    unsupported = _unsupported(model)
    if unsupported:
        raise ModelError(f"{path} uses operators TVM's ONNX importer does not support: "
                         f"{', '.join(unsupported)}")
    from tvm.relax.frontend.onnx import from_onnx

    quantized = _check_zero_points(model, path)
    try:
        with _clip_as_relax_ops():
            mod = from_onnx(model, {i.name: list(i.shape) for i in inputs},
                            {i.name: i.dtype for i in inputs})
    except Exception as exc:  # noqa: BLE001 - the importer raises anything; name it
        raise ModelError(f"{path}: TVM's ONNX importer failed ({_first_line(exc)})") from None
    summary = None
    if integer and quantized:
        from .quantized import integer_cores

        mod, summary = integer_cores(mod)
        summary.output_steps = _output_steps(model)
    return Model(name=path.stem, mod=mod, inputs=inputs, source="onnx", origin=path,
                 quantized=summary)


def _check_zero_points(model, path: Path) -> bool:
    """Whether ``model`` is quantized (has QuantizeLinear or DequantizeLinear); ModelError
    for a zero point whose value does not fit the type it quantizes to."""
    import numpy as np
    from onnx import numpy_helper

    constants = {i.name: i for i in model.graph.initializer}
    quantized = False
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        quantized = True
        zero = constants.get(node.input[2]) if len(node.input) > 2 else None
        if zero is None:
            continue
        data = constants.get(node.input[0])
        dtype = (np.dtype("uint8") if node.op_type == "QuantizeLinear"
                 and zero.data_type not in (2, 3)  # uint8, int8: what ONNX allows
                 else numpy_helper.to_array(data).dtype if data is not None
                 else numpy_helper.to_array(zero).dtype)
        if dtype.kind not in "iu":
            continue
        values, info = numpy_helper.to_array(zero), np.iinfo(dtype)
        if values.size and (values.min() < info.min or values.max() > info.max):
            bad = values.min() if values.min() < info.min else values.max()
            raise ModelError(f"{path}: the zero point {bad} of {node.op_type} "
                             f"{node.name or node.output[0]!r} is outside {dtype} "
                             f"({info.min}..{info.max})")
    return quantized


def _output_steps(model) -> list[float | None]:
    """Each graph output's quantization step: the scale of the DequantizeLinear that
    writes it, where that is one constant; None for an output written otherwise."""
    from onnx import numpy_helper

    constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    writers = {out: node for node in model.graph.node for out in node.output}
    steps: list[float | None] = []
    for output in model.graph.output:
        node = writers.get(output.name)
        scale = (constants.get(node.input[1]) if node is not None
                 and node.op_type == "DequantizeLinear" else None)
        steps.append(float(scale.reshape(())) if scale is not None and scale.size == 1
                     else None)
    return steps


@contextmanager
def _clip_as_relax_ops():
    """TVM's ONNX importer, with a Clip between constant bounds (ReLU6) imported as Relax's
    ``maximum`` and ``minimum`` with those constants. TVM emits it as opaque TE calls, which
    a layout conversion cannot see through (every blocked layer around a ReLU6 would convert
    back and forth) and which leave the bounds as inputs of every fused function."""
    import numpy as np
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import onnx_frontend

    original = onnx_frontend._get_convert_map
    clip = original()["Clip"]

    def constant(bound) -> bool:  # a scalar constant that is not NaN (NaN: no bound)
        if not isinstance(bound, tvm.ir.expr.Constant):
            return False
        value = bound.value.numpy()
        return value.ndim == 0 and not np.isnan(value)

    class ConstantClip(clip):
        @classmethod
        def _impl_v13(cls, bb, inputs, attr, params):
            low, high = (inputs[i] if len(inputs) > i else None for i in (1, 2))
            if not all(b is None or constant(b) for b in (low, high)):
                return super()._impl_v13(bb, inputs, attr, params)
            result = inputs[0]
            if low is not None:
                result = relax.op.maximum(result, low)
            if high is not None:
                result = relax.op.minimum(result, high)
            return result

    def convert_map():
        return {**original(), "Clip": ConstantClip}

    onnx_frontend._get_convert_map = convert_map
    try:
        yield
    finally:
        onnx_frontend._get_convert_map = original
