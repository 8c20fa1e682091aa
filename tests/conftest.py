"""Shared fixtures: small models built in the tests (no downloads)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


def _weight(name: str, shape: tuple[int, ...], rng) -> onnx.TensorProto:
    return numpy_helper.from_array(rng.uniform(-1, 1, shape).astype("float32"), name)


def residual_model(path, batch: int | str = 1, channels: int = 16) -> str:
    """conv3x3 + bias + relu, twice with the same shape (one task of weight 2), a 1x1 conv
    + residual add, global pooling, flatten, gemm: what the issue lists."""
    rng = np.random.default_rng(0)
    c = channels
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"]),
        helper.make_node("Add", ["c3", "x"], ["s"]),
        helper.make_node("GlobalAveragePool", ["s"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "wg", "bg"], ["y"], transB=1),
    ]
    inits = [_weight("w1", (c, c, 3, 3), rng), _weight("b1", (c,), rng),
             _weight("w2", (c, c, 3, 3), rng), _weight("b2", (c,), rng),
             _weight("w3", (c, c, 1, 1), rng), _weight("b3", (c,), rng),
             _weight("wg", (10, c), rng), _weight("bg", (10,), rng)]
    graph = helper.make_graph(
        nodes, "residual", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                          [batch, c, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


@pytest.fixture(scope="session")
def residual_onnx():
    """Writes the residual test model: ``residual_onnx(path, batch=1, channels=16)``."""
    return residual_model


@pytest.fixture
def small_torch_module():
    """A two-layer torch module: conv + ReLU, mean over space, linear; input (1, 8, 6, 6)."""
    import torch

    class Small(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(8, 16, 3, padding=1)
            self.fc = torch.nn.Linear(16, 4)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))

    return Small()
