"""Models whose ops TVM's ConvertLayout cannot carry a blocked layout through still compile in
the blocked layout and match onnxruntime; where TVM fails anyway, the model compiles in its
own layout with a warning; a function with int64 data (a gather's index) is a task too."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tvm
from graphs import ConvGraph
from onnx import TensorProto, helper

from gta_core.frontends import LayoutFallbackWarning, fuse, load_onnx, model_tasks

BLOCK = 8  # the avx2 example's float32 lanes



def _graph(tail, out_channels: int, path) -> str:
    """x (1, 8, 10, 12) -> a 3x3 conv to 16 channels (blocked: its channels divide) -> the
    nodes ``tail(graph, "c1")`` adds, ending in y of ``out_channels`` at 10x12."""
    graph = ConvGraph(seed=0, scale=0.1)
    tail(graph, graph.conv("c1", "x", 8, 16, 3, pad=1))
    return graph.save(path, (1, 8, 10, 12), (1, out_channels, 10, 12))


def _channel_norm(graph, c1):
    """c1 minus its mean over channels, then a 1x1 conv: a reduction over the blocked axis
    and a per-pixel map broadcast back along it."""
    graph.nodes += [helper.make_node("ReduceMean", [c1], ["m"], axes=[1], keepdims=1),
                    helper.make_node("Sub", [c1, "m"], ["d"])]
    graph.conv("y", "d", 16, 16, 1)


def _spatial_attention(graph, c1):
    """c1 times the sigmoid of its maximum over channels (as CBAM's spatial attention)."""
    graph.nodes += [helper.make_node("ReduceMax", [c1], ["m"], axes=[1], keepdims=1),
                    helper.make_node("Sigmoid", ["m"], ["s"]),
                    helper.make_node("Mul", [c1, "s"], ["y"])]


def _transposed(graph, c1):
    """A transposed convolution reading the blocked conv's output, then cropped back to
    the input's size so the graph's output keeps its shape."""
    shape = (16, 16, 4, 4)
    graph.weights.append(helper.make_tensor(
        "ct_w", TensorProto.FLOAT, shape,
        graph.rng.standard_normal(shape).astype(np.float32).ravel() * 0.1))
    graph.nodes.append(helper.make_node("ConvTranspose", [c1, "ct_w"], ["t"], strides=[2, 2],
                                        pads=[1, 1, 1, 1]))
    graph.nodes.append(helper.make_node("MaxPool", ["t"], ["y"], kernel_shape=[2, 2],
                                        strides=[2, 2]))


CASES = {"channel-norm": (_channel_norm, 16), "spatial-attention": (_spatial_attention, 16),
         "transposed": (_transposed, 16)}


def _blocked(fused) -> bool:
    """Whether a function of ``fused`` takes a blocked (5-D) tensor."""
    return any(len(p.ty.shape) == 5 for func in fused.functions.values()
               if isinstance(func, tvm.tirx.PrimFunc) for p in func.params
               if hasattr(p.ty, "shape"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_ops_the_layout_rules_cannot_take_are_fenced_and_the_model_stays_blocked(
        case, compile_on_avx2, tmp_path):
    tail, channels = CASES[case]
    model = load_onnx(_graph(tail, channels, tmp_path / "m.onnx"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", LayoutFallbackWarning)
        fused = fuse(model.mod, BLOCK)
    assert _blocked(fused)
    report = compile_on_avx2(model)
    assert report.max_error <= report.tolerance


def test_a_model_tvm_cannot_block_is_lowered_in_its_own_layout_with_a_warning(
        compile_on_avx2, tmp_path, monkeypatch):
    from gta_core.frontends import layout

    def fails(mod, block):
        raise tvm.error.InternalError("Check failed: a layout rule TVM lacks")

    monkeypatch.setattr(layout, "blocked_layout", fails)
    model = load_onnx(_graph(_channel_norm, 16, tmp_path / "m.onnx"))
    with pytest.warns(LayoutFallbackWarning, match="NCHW8c was not applied.*a layout rule"):
        fused = fuse(model.mod, BLOCK)
    assert not _blocked(fused)
    with pytest.warns(LayoutFallbackWarning):
        report = compile_on_avx2(model)
    assert report.max_error <= report.tolerance


def test_a_function_with_int64_data_is_a_task_left_unnarrowed(tmp_path):
    """A gather whose index reaches its function as an int64 tensor (TVM's narrowing pass
    refuses int64 parameters) is a task of the model like any other."""
    graph = ConvGraph(seed=0, scale=0.1)
    graph.conv("c1", "x", 8, 16, 3, pad=1)
    graph.nodes += [helper.make_node("ReduceMax", ["x"], ["mx"], axes=[1, 2, 3], keepdims=0),
                    helper.make_node("Cast", ["mx"], ["i"], to=TensorProto.INT64),
                    helper.make_node("Clip", ["i", "lo", "hi"], ["ic"]),
                    helper.make_node("Gather", ["c1", "ic"], ["y"], axis=1)]
    graph.weights += [helper.make_tensor("lo", TensorProto.INT64, (), [0]),
                      helper.make_tensor("hi", TensorProto.INT64, (), [15])]
    path = graph.save(tmp_path / "m.onnx", (1, 8, 10, 12), (1, 10, 12))
    model = load_onnx(path)
    tasks = model_tasks(fuse(model.mod, BLOCK))
    int64 = [t for t in tasks if any(str(p.dtype) == "int64" for p in t.func.params)]
    assert int64, [t.name for t in tasks]
