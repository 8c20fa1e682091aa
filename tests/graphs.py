"""ONNX graphs written node by node for the tests (random weights, no downloads).

Imported as ``graphs``: ``conftest`` puts this folder on the path, as pytest's importlib
mode does not."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper


class ConvGraph:
    """An ONNX graph written node by node, its convolutions' weights and biases drawn from
    ``seed`` (normal, weights times ``scale``), in the order the layers are added."""

    def __init__(self, seed: int, scale: float) -> None:
        self.rng, self.scale = np.random.default_rng(seed), scale
        self.weights: list = []
        self.nodes: list = []

    def conv(self, name, x, cin, cout, k, stride=1, pad=0, groups=1, dilation=1) -> str:
        shape = (cout, cin // groups, k, k)
        self.weights.append(helper.make_tensor(
            f"{name}_w", TensorProto.FLOAT, shape,
            self.rng.standard_normal(shape).astype(np.float32).ravel() * self.scale))
        self.weights.append(helper.make_tensor(
            f"{name}_b", TensorProto.FLOAT, (cout,),
            self.rng.standard_normal(cout).astype(np.float32)))
        self.nodes.append(helper.make_node(
            "Conv", [x, f"{name}_w", f"{name}_b"], [name], strides=[stride] * 2,
            pads=[pad] * 4, group=groups, dilations=[dilation] * 2))
        return name

    def classifier(self, x, channels: int, classes: int = 10) -> None:
        """Global average pooling, then a MatMul to ``classes`` outputs named y."""
        self.weights.append(helper.make_tensor(
            "fc_w", TensorProto.FLOAT, (channels, classes),
            self.rng.standard_normal(channels * classes).astype(np.float32)))
        self.nodes += [helper.make_node("GlobalAveragePool", [x], ["pool"]),
                       helper.make_node("Flatten", ["pool"], ["flat"]),
                       helper.make_node("MatMul", ["flat", "fc_w"], ["y"])]

    def save(self, path, input_shape, output_shape) -> str:
        """The graph from input x to output y, as an ONNX file at ``path``."""
        graph = helper.make_graph(
            self.nodes, "graph",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_shape))],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(output_shape))],
            self.weights)
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
                  str(path))
        return str(path)
