"""Quantized ONNX operators as the QDQ form they stand for.

TVM's ONNX importer rejects the operator form of a quantized model (what
``onnxruntime.quantization`` writes with ``QuantFormat.QOperator``): QLinearConv,
QLinearMatMul, ConvInteger, MatMulInteger, and onnxruntime's QLinearAdd and
QLinearGlobalAveragePool. Each is by definition its float operator between
DequantizeLinear and QuantizeLinear, so :func:`as_qdq` writes it that way, and the
integer rewrite (:mod:`.quantized`) then treats it as it treats a QDQ model.

ConvInteger and MatMulInteger return int32 with no quantize behind them: they become
``Cast(int32)`` of the float product of their dequantized (unit-scale) inputs, exact while
the sums stay below 2^24, and stay float (the integer rewrite names them).
"""

from __future__ import annotations

import numpy as np

_PAIR = [(0, 1, 2), (3, 4, 5)]  # (data, scale, zero point) of inputs A and B
# op -> (inputs dequantized, float op, int32 bias input, output (scale, zero point) or None)
_QLINEAR = {
    "QLinearConv": (_PAIR, "Conv", 8, (6, 7)),
    "QLinearMatMul": (_PAIR, "MatMul", None, (6, 7)),
    "QGemm": (_PAIR, "Gemm", 6, (7, 8)),  # onnxruntime's; no output scale: float out
    "QLinearAdd": (_PAIR, "Add", None, (6, 7)),
    "QLinearMul": (_PAIR, "Mul", None, (6, 7)),
    "QLinearGlobalAveragePool": ([(0, 1, 2)], "GlobalAveragePool", None, (3, 4)),
}
_INTEGER = {"ConvInteger": "Conv", "MatMulInteger": "MatMul"}
QUANTIZED_OPERATORS = frozenset(_QLINEAR) | frozenset(_INTEGER)


class _Graph:
    """New nodes and initializers for one model, with fresh names."""

    def __init__(self, model) -> None:
        self.model = model
        self.taken = {v for n in model.graph.node for v in (*n.input, *n.output)}
        self.taken |= {i.name for i in model.graph.initializer}
        self.constants = {i.name: i for i in model.graph.initializer}

    def name(self, base: str) -> str:
        n, name = 0, base
        while name in self.taken:
            n, name = n + 1, f"{base}_{n + 1}"
        self.taken.add(name)
        return name

    def constant(self, base: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(base)
        self.model.graph.initializer.append(numpy_helper.from_array(value, name))
        return name

    def array(self, name: str) -> np.ndarray | None:
        from onnx import numpy_helper

        init = self.constants.get(name)
        return None if init is None else numpy_helper.to_array(init)


def _attributes(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _given(inputs: list[str], position: int | None) -> str | None:
    return inputs[position] if position is not None and len(inputs) > position and \
        inputs[position] else None


def _qlinear(graph: _Graph, node) -> list:
    from onnx import helper

    triples, float_op, bias, output = _QLINEAR[node.op_type]
    inputs, attributes = list(node.input), _attributes(node)
    if attributes.pop("channels_last", 0):
        raise ValueError(f"{node.op_type} {node.name!r} with channels_last=1 is not supported")
    # A per-channel weight scale runs along the weight's output channels.
    weight_axis = {"Conv": 0, "MatMul": 1, "Gemm": 0 if attributes.get("transB") else 1}
    label = node.name or node.op_type
    made, floats = [], []
    for position, (data, scale, zero) in enumerate(triples):
        out = graph.name(f"{label}_dq{position}")
        axis = weight_axis.get(float_op) if position == 1 else None
        made.append(helper.make_node("DequantizeLinear", [inputs[data], inputs[scale],
                                                          inputs[zero]], [out],
                                     **_axis(graph, inputs[scale], axis)))
        floats.append(out)
    if _given(inputs, bias):
        a_scale, b_scale = graph.array(inputs[1]), graph.array(inputs[4])
        if a_scale is None or b_scale is None:
            raise ValueError(f"{node.op_type} {node.name!r} has a bias but its scales are "
                             "not constants")
        product = (a_scale * b_scale).astype(np.float32)
        shape = () if product.size == 1 else (product.size,)
        bias_scale = graph.constant(f"{inputs[bias]}_scale", product.reshape(shape))
        bias_zero = graph.constant(f"{inputs[bias]}_zero", np.zeros(shape, np.int32))
        out = graph.name(f"{label}_bias")
        made.append(helper.make_node("DequantizeLinear", [inputs[bias], bias_scale, bias_zero],
                                     [out], **({"axis": 0} if shape else {})))
        floats.append(out)
    if output is None or not _given(inputs, output[0]):  # a float output (QGemm may)
        made.append(helper.make_node(float_op, floats, list(node.output), **attributes))
        return made
    result = graph.name(f"{label}_float")
    made.append(helper.make_node(float_op, floats, [result], **attributes))
    made.append(helper.make_node("QuantizeLinear", [result, inputs[output[0]],
                                                    inputs[output[1]]], list(node.output)))
    return made


def _axis(graph: _Graph, scale: str, axis: int | None) -> dict:
    """The axis attribute only for a per-channel scale (a scalar one takes none)."""
    value = graph.array(scale)
    return {"axis": axis} if axis is not None and value is not None and value.size > 1 else {}


def _integer(graph: _Graph, node) -> list:
    from onnx import helper

    one = graph.constant("unit_scale", np.array(1.0, np.float32))
    made, floats = [], []
    for position, data in enumerate(node.input[:2]):
        zero_name = node.input[2 + position] if len(node.input) > 2 + position else ""
        inputs = [data, one] + ([zero_name] if zero_name else [])
        out = graph.name(f"{node.name or node.op_type}_dq{position}")
        made.append(helper.make_node("DequantizeLinear", inputs, [out]))
        floats.append(out)
    result = graph.name(f"{node.name or node.op_type}_float")
    made.append(helper.make_node(_INTEGER[node.op_type], floats, [result], **_attributes(node)))
    made.append(helper.make_node("Cast", [result], list(node.output), to=6))  # int32
    return made


def as_qdq(model):
    """``model`` (onnx ModelProto) with each operator of :data:`QUANTIZED_OPERATORS` written
    as DequantizeLinear -> float op -> QuantizeLinear (a copy; ``model`` is unchanged).
    Raises ValueError (one line) for one it cannot write so."""
    import onnx

    if not any(n.op_type in QUANTIZED_OPERATORS for n in model.graph.node):
        return model
    if not any(o.domain in ("", "ai.onnx") and o.version >= 13 for o in model.opset_import):
        raise ValueError("quantized operators need opset 13 or later (per-channel "
                         "DequantizeLinear)")
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = _Graph(model)
    nodes = []
    for node in model.graph.node:
        if node.op_type in _QLINEAR:
            nodes.extend(_qlinear(graph, node))
        elif node.op_type in _INTEGER:
            nodes.extend(_integer(graph, node))
        else:
            nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model
