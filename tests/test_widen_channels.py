"""Channel counts that do not divide into the target's blocks are widened to the next
multiple, so the whole graph stays blocked (MobileNet-V2's 24-channel layers), and the
model still computes what onnxruntime computes, in float and in int8."""

from __future__ import annotations

import pytest
from graphs import ConvGraph
from onnx import helper

from gta_core.frontends import fuse, load_onnx, model_tasks
from gta_core.model_compile import compile_model
from gta_core.weight_prepack import call_tirs


def _narrow_onnx(path, channels: int = 24, tail: str = "conv") -> str:
    """A 16 -> ``channels`` 1x1 projection (no activation), a 3x3 and a depthwise 3x3 on
    those channels with a residual add, then ``tail``: a 1x1 back to 16 channels ("conv"),
    or global pooling and a classifier ("pool", where the widened tensor must be cut)."""
    g = ConvGraph(seed=3, scale=0.3)
    c = channels
    project = g.conv("project", "x", 16, c, 1)
    g.nodes.append(helper.make_node("Relu", [g.conv("full", project, c, c, 3, pad=1)],
                                    ["full_relu"]))
    g.nodes.append(helper.make_node("Relu", [g.conv("dw", "full_relu", c, c, 3, pad=1,
                                                    groups=c)], ["dw_relu"]))
    g.nodes.append(helper.make_node("Add", ["dw_relu", project], ["residual"]))
    if tail == "conv":
        g.conv("y", "residual", c, 16, 1)
        return g.save(path, (1, 16, 8, 8), (1, 16, 8, 8))
    g.classifier("residual", c)
    return g.save(path, (1, 16, 8, 8), (1, 10))


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
