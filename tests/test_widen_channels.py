"""Channel counts that do not divide into the target's blocks are widened to the next
multiple, so the whole graph stays blocked (MobileNet-V2's 24-channel layers), and the
model still computes what onnxruntime computes, in float and in int8."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from gta_core.frontends import fuse, load_onnx, model_tasks
from gta_core.model_compile import compile_model
from gta_core.weight_prepack import call_tirs


def _narrow_onnx(path, channels: int = 24, tail: str = "conv") -> str:
    """A 16 -> ``channels`` 1x1 projection (no activation), a 3x3 and a depthwise 3x3 on
    those channels with a residual add, then ``tail``: a 1x1 back to 16 channels ("conv"),
    or global pooling and a classifier ("pool", where the widened tensor must be cut)."""
    rng = np.random.default_rng(3)
    weights, nodes = [], []

    def conv(name, x, cin, cout, k, groups=1):
        shape = (cout, cin // groups, k, k)
        weights.append(helper.make_tensor(f"{name}_w", TensorProto.FLOAT, shape,
                                          rng.standard_normal(shape).astype(np.float32)
                                          .ravel() * 0.3))
        weights.append(helper.make_tensor(f"{name}_b", TensorProto.FLOAT, (cout,),
                                          rng.standard_normal(cout).astype(np.float32)))
        nodes.append(helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [name],
                                      pads=[k // 2] * 4, group=groups))
        return name

    c = channels
    project = conv("project", "x", 16, c, 1)
    nodes.append(helper.make_node("Relu", [conv("full", project, c, c, 3)], ["full_relu"]))
    nodes.append(helper.make_node("Relu", [conv("dw", "full_relu", c, c, 3, groups=c)],
                                  ["dw_relu"]))
    nodes.append(helper.make_node("Add", ["dw_relu", project], ["residual"]))
    if tail == "conv":
        conv("y", "residual", c, 16, 1)
        out = [1, 16, 8, 8]
    else:
        weights.append(helper.make_tensor("fc_w", TensorProto.FLOAT, (c, 10),
                                          rng.standard_normal(c * 10).astype(np.float32)))
        nodes += [helper.make_node("GlobalAveragePool", ["residual"], ["pool"]),
                  helper.make_node("Flatten", ["pool"], ["flat"]),
                  helper.make_node("MatMul", ["flat", "fc_w"], ["y"])]
        out = [1, 10]
    graph = helper.make_graph(
        nodes, "narrow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


def _transforms(fused) -> list[str]:
    return [name for name in (c.args[0].name_hint for c in call_tirs(fused["main"]))
            if "layout_transform" in name]


def _anchors(fused) -> list[str]:
    return sorted(t.workload.main_block for t in model_tasks(fused) if t.workload.main_block)


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "int8"])
def test_a_narrow_layer_is_widened_and_the_graph_stays_blocked(tmp_path, model_makers,
                                                               quantized):
    path = _narrow_onnx(tmp_path / "f.onnx")
    if quantized:
        path = model_makers.quantized(path, tmp_path / "q.onnx")
    model = load_onnx(path)
    fused = fuse(model.mod, 16)
    # only the graph's edges: the input into blocks, the output out of them
    assert len(_transforms(fused)) == 2, _transforms(fused)
    assert "conv2d_nchw" not in _anchors(fused)
    assert "depthwise_conv2d_NCHWc" in _anchors(fused)
    _, report = compile_model(model, "avx512", tmp_path)
    if quantized:
        assert report.quantized.within_one_step >= 0.999
        assert report.quantized.relative_rms <= report.quantized.rms_bound
    else:
        assert report.max_error <= report.tolerance


def test_a_widened_tensor_is_cut_back_where_pooling_reads_it(tmp_path):
    model = load_onnx(_narrow_onnx(tmp_path / "f.onnx", tail="pool"))
    fused = fuse(model.mod, 16)
    assert "conv2d_nchw" not in _anchors(fused)
    _, report = compile_model(model, "avx512", tmp_path)
    assert report.max_error <= report.tolerance


@pytest.mark.parametrize("channels", [32, 4])
def test_channels_that_divide_or_would_more_than_double_are_left_as_they_are(tmp_path,
                                                                              channels):
    import tvm

    from gta_core.frontends.widen_channels import widen_channels

    mod = tvm.relax.transform.DecomposeOpsForInference()(
        load_onnx(_narrow_onnx(tmp_path / "f.onnx", channels=channels)).mod)
    assert widen_channels(mod, 16) is mod
