"""One blocked layout for a model's convolutions (NCHW16c): layers read and write it in place,
layout transforms stay at the graph's edges, and every kind of convolution computes what
the model's framework computes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
import tvm
from graphs import ConvGraph
from onnx import TensorProto, helper

from gta_core.frontends import channel_block, fuse, load_onnx, model_tasks
from gta_core.mapping import mapping_candidates
from gta_core.model_compile import compile_model
from gta_core.plugins import default_registry
from gta_core.scheduler.space import MappingSpace, Task
from gta_core.weight_prepack import call_tirs


def _layout_calls(fused) -> int:
    calls = Counter(c.args[0].name_hint for c in call_tirs(fused["main"]))
    return sum(n for name, n in calls.items() if "layout_transform" in name)


def _sketches(task, mapping) -> list:
    """The design spaces of a model ``task`` under ``mapping`` on avx512, every rule on."""
    registry = default_registry()
    program = Task(task.workload, mapping, registry.intrinsics[mapping.intrinsic],
                   registry.target("avx512"))
    space = MappingSpace(program, list(registry.rules.values()), [])
    sketches = space.generate_design_space(tvm.IRModule({"main": task.func}))
    assert sketches
    return sketches


def _activation_readers(sch) -> set[str]:
    """The stages of a sketch that read its first argument (the activations)."""
    activations = sch.mod["main"].params[0]
    return {sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))
            if any(r.source.same_as(activations) for r in sch.get(b).reads)}


def _save(path, name, nodes, weights, input_shape) -> str:
    """The graph of ``nodes`` from input ``x`` to output ``y`` [1, 10], as an ONNX file."""
    graph = helper.make_graph(nodes, name,
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             list(input_shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
                              weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


def _convolutions_onnx(path) -> str:
    """Every kind of 2-D convolution a blocked model meets: a 3-channel stem (not
    blockable), stride 2, a depthwise layer with ReLU6, a grouped 1x1 (4 groups), a dilated
    3x3 with a residual add, a 24-channel layer (not a multiple of 16), then global pooling
    and a classifier."""
    g = ConvGraph(seed=0, scale=0.2)
    g.weights += [helper.make_tensor("lo", TensorProto.FLOAT, [], [0.0]),
                  helper.make_tensor("hi", TensorProto.FLOAT, [], [6.0])]
    stem = g.conv("stem", "x", 3, 32, 3, stride=2, pad=1)
    g.nodes.append(helper.make_node("Relu", [stem], ["stem_relu"]))
    depthwise = g.conv("dw", "stem_relu", 32, 32, 3, pad=1, groups=32)
    g.nodes.append(helper.make_node("Clip", [depthwise, "lo", "hi"], ["dw_relu6"]))
    grouped = g.conv("grouped", "dw_relu6", 32, 32, 1, groups=4)
    dilated = g.conv("dilated", grouped, 32, 32, 3, pad=2, dilation=2)
    g.nodes.append(helper.make_node("Add", [dilated, "dw_relu6"], ["residual"]))
    g.classifier(g.conv("narrow", "residual", 32, 24, 1), 24)
    return g.save(path, (1, 3, 16, 16), (1, 10))


def test_the_block_is_a_float32_vector_of_the_target():
    registry = default_registry()
    assert channel_block(registry.target("avx512")) == 16


def test_a_residual_model_runs_blocked_between_its_edges(residual_onnx, tmp_path):
    """Every convolution of the residual model reads and writes NCHW16c; the only layout
    transforms left are the model's input into the blocked layout and the pooled features
    out of it, where NCHW as the model gives it had none at all."""
    model = load_onnx(residual_onnx(tmp_path / "m.onnx"))
    plain, blocked = fuse(model.mod), fuse(model.mod, 16)
    assert _layout_calls(plain) == 0 and _layout_calls(blocked) == 2
    anchors = [t.workload.main_block for t in model_tasks(blocked)]
    assert anchors.count("conv2d_NCHWc") == 2 and "conv2d_nchw" not in anchors
    assert [t.weight for t in model_tasks(blocked) if t.workload.main_block ==
            "conv2d_NCHWc"] == [t.weight for t in model_tasks(plain)
                                if t.workload.main_block == "conv2d_nchw"]


def test_each_kind_of_convolution_is_blocked_where_its_channels_allow(tmp_path):
    model = load_onnx(_convolutions_onnx(tmp_path / "c.onnx"))
    anchors = Counter(t.workload.main_block for t in model_tasks(fuse(model.mod, 16)))
    assert anchors["conv2d_nchw"] == 0
    assert anchors["depthwise_conv2d_NCHWc"] == 1
    assert anchors["group_conv2d_NCHWc"] == 1
    # the dilated 3x3; the stem, writing blocks; the 24-channel layer, widened to 32
    assert anchors["conv2d_NCHWc"] == 3


def test_a_blocked_model_matches_onnxruntime(tmp_path):
    """Compiled with TVM's schedules (no records), the blocked model's output is
    onnxruntime's: stride, padding, dilation, groups and depthwise all land where they
    should."""
    model = load_onnx(_convolutions_onnx(tmp_path / "c.onnx"))
    _, report = compile_model(model, "avx512", tmp_path)
    assert report.checked_against == "onnxruntime"
    assert report.max_error <= report.tolerance


@pytest.mark.parametrize("anchor", ["conv2d_NCHWc", "depthwise_conv2d_NCHWc"])
def test_a_blocked_convolution_is_mapped_with_lanes_on_the_channel_block_read_in_place(
        anchor, tmp_path):
    """The FMA mapping with its lanes on the block's lane axis reads activations and writes
    its output where they lie: no stage of its programs re-lays either (the weights',
    constants, run once while compiling), and the epilogue runs on each output tile inside
    the parallel loop, not as a pass of its own over the output."""
    from gta_core.generation.rule import constant_names, constant_stages

    registry = default_registry()
    model = load_onnx(_convolutions_onnx(tmp_path / "c.onnx"))
    task = next(t for t in model_tasks(fuse(model.mod, 16)) if t.workload.main_block == anchor)
    lanes = [c for c in mapping_candidates(task.workload, "avx512", registry)
             if c.status == "kept" and list(c.axes.values()) == [["lane"]]]
    assert lanes, "no kept mapping with its lanes on the channel block"
    sketches = _sketches(task, lanes[0])
    for sch in sketches:
        blocks = {sch.get(b).name_hint: b for b in sch.get_child_blocks(sch.get_sblock("root"))}
        # the padding (in one sketch a zero fill and a copy), the computation's own blocks
        # (the epilogue inlined into the copy-out of an accumulator tile) or else the
        # epilogue (the bias add) in a block of its own
        prepacked = constant_stages(sch, constant_names(task.workload))
        assert {n for n in blocks if not n.startswith(anchor)} - prepacked <= {
            "pad_temp", "pad_temp_pad_const", "T_add"}
        if "T_add" in blocks:  # ... computed per tile, under the loop that computes it
            outer = sch.get_loops(blocks[f"{anchor}_update_o"])[0]
            assert sch.get(sch.get_loops(blocks["T_add"])[0]).same_as(sch.get(outer))


def _stem_onnx(path) -> str:
    """A ResNet-like start: a 3-channel stem with bias, ReLU and max-pool, then a residual
    3x3 layer (the pooled tensor feeds the convolution and the add), global pooling and a
    classifier."""
    rng = np.random.default_rng(1)

    def tensor(name, shape, scale=0.2):
        return helper.make_tensor(name, TensorProto.FLOAT, shape,
                                  rng.standard_normal(shape).astype(np.float32).ravel() * scale)

    weights = [tensor("stem_w", (16, 3, 3, 3)), tensor("stem_b", (16,)),
               tensor("body_w", (16, 16, 3, 3)), tensor("body_b", (16,)),
               tensor("fc_w", (16, 10))]
    nodes = [helper.make_node("Conv", ["x", "stem_w", "stem_b"], ["stem"], strides=[2, 2],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["stem"], ["stem_relu"]),
             helper.make_node("MaxPool", ["stem_relu"], ["pooled"], kernel_shape=[3, 3],
                              strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["pooled", "body_w", "body_b"], ["body"],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["body", "pooled"], ["residual"]),
             helper.make_node("GlobalAveragePool", ["residual"], ["gap"]),
             helper.make_node("Flatten", ["gap"], ["flat"]),
             helper.make_node("MatMul", ["flat", "fc_w"], ["y"])]
    return _save(path, "stem", nodes, weights, (1, 3, 20, 20))


def test_a_stem_that_cannot_be_blocked_writes_blocked_outputs(tmp_path):
    """The 3-channel stem reads the model's NCHW input as it is and writes NCHW16c; its
    bias, ReLU and max-pool follow, so the transform that blocked the pooled tensor is
    gone: one transform is left (out of the blocked layout before the flatten), where
    ConvertLayout alone left two. The stem is mapped with its lanes on the output block,
    and the compiled model is onnxruntime's."""
    registry = default_registry()
    model = load_onnx(_stem_onnx(tmp_path / "s.onnx"))
    fused = fuse(model.mod, 16)
    assert _layout_calls(fused) == 1
    tasks = model_tasks(fused)
    assert [t.workload.main_block for t in tasks].count("conv2d_NCHWc") == 2
    pool = next(t for t in tasks if "max_pool" in t.name)
    assert [len(p.shape) for p in pool.func.params] == [5, 5], "the max-pool is not blocked"
    stem = next(t for t in tasks if t.workload.main_block == "conv2d_NCHWc"
                and len(t.func.params[0].shape) == 4)
    lanes = [c for c in mapping_candidates(stem.workload, "avx512", registry)
             if c.status == "kept" and list(c.axes.values()) == [["lane"]]]
    assert lanes
    _, report = compile_model(model, "avx512", tmp_path)
    assert report.max_error <= report.tolerance


def test_a_quantized_stem_reads_its_input_in_words_of_channels_where_they_lie(
        tmp_path, model_makers):
    """An 8-bit stem's 3 channels are zero-filled to a 32-bit word (NCHW4c, written by the
    input's quantization, the word's fourth weight zero): VNNI's 4-deep dot product reads
    each pixel's word where it lies, so no stage of its programs copies the activations
    (in NCHW each call re-laid them, an im2col of R*S words per output pixel). The
    compiled model's agreement is checked with the other quantized tests of this file."""
    registry = default_registry()
    path = model_makers.quantized(_convolutions_onnx(tmp_path / "f.onnx"), tmp_path / "q.onnx")
    tasks = model_tasks(fuse(load_onnx(path).mod, 16))
    stem = next(t for t in tasks if t.workload.main_block == "conv2d_NCHWc"
                and int(t.func.params[0].shape[-1]) == 4)
    data, weight = (tuple(int(d) for d in p.shape) for p in stem.func.params[:2])
    assert data == (1, 1, 18, 18, 4) and weight == (2, 4, 3, 3, 1, 16)
    words = [c for c in mapping_candidates(stem.workload, "avx512", registry)
             if c.status == "kept" and c.intrinsic == "vnni" and c.axes.get("k") == ["rl"]]
    assert words, "no kept VNNI mapping reducing over the word"
    sketches = _sketches(stem, words[0])
    for sch in sketches:
        readers = _activation_readers(sch)
        assert readers == {"conv2d_NCHWc_update_o"}, f"stages reading the activations: {readers}"


def test_a_quantized_layer_over_two_channel_blocks_reads_its_words_where_they_lie(
        tmp_path, model_makers):
    """A 1x1 int8 layer over 32 channels (two NCHW16c blocks) on VNNI with the block and the
    lane fused onto the word's axis: each 4-byte word lies inside one block's 16 channels,
    so the activations are read in place (before, each call copied them into words first),
    and the program computes exactly what the unscheduled function does."""
    from gta_core.measure import runnable
    from gta_core.workloads.operator import random_array

    registry = default_registry()
    target = registry.target("avx512")
    path = model_makers.quantized(_convolutions_onnx(tmp_path / "f.onnx"), tmp_path / "q.onnx")
    layer = next(t for t in model_tasks(fuse(load_onnx(path).mod, 16))
                 if t.workload.main_block == "conv2d_NCHWc"
                 and tuple(int(d) for d in t.func.params[0].shape)[1::3] == (2, 16)
                 and tuple(int(d) for d in t.func.params[1].shape)[2:4] == (1, 1))
    fused = [c for c in mapping_candidates(layer.workload, "avx512", registry)
             if c.status == "kept" and c.intrinsic == "vnni" and c.axes.get("k") == ["rc", "rl"]]
    assert fused, "no kept VNNI mapping fusing the channel block and lane onto the word"
    sketches = _sketches(layer, fused[0])
    rng = np.random.default_rng(0)
    params = layer.func.params
    args = [random_array(tuple(int(d) for d in p.shape), str(p.dtype), rng) for p in params]
    want = [tvm.runtime.tensor(a) for a in args]
    runnable(tvm.IRModule({"main": layer.func}), target)["main"](*want)
    for sch in sketches:
        readers = _activation_readers(sch)
        assert readers == {"conv2d_NCHWc_update_o"}, f"stages reading the activations: {readers}"
        got = [tvm.runtime.tensor(a) for a in args]
        got[-1] = tvm.runtime.tensor(np.full_like(args[-1], 7))  # garbage in the output
        runnable(sch.mod, target)["main"](*got)
        np.testing.assert_array_equal(got[-1].numpy(), want[-1].numpy())


def test_a_chain_with_a_second_consumer_stays_as_convertlayout_left_it(tmp_path):
    """The stem's ReLU output feeds two layers: the rewrite would need it in both layouts,
    so nothing changes."""
    from gta_core.frontends.blocked_outputs import block_outputs

    path = _stem_onnx(tmp_path / "s.onnx")
    proto = onnx.load(path)
    proto.graph.node.append(helper.make_node("ReduceMean", ["stem_relu"], ["side"],
                                             axes=[2, 3], keepdims=0))
    proto.graph.output.append(helper.make_tensor_value_info("side", TensorProto.FLOAT,
                                                            [1, 16]))
    onnx.save(proto, path)
    mod = tvm.relax.transform.DecomposeOpsForInference()(load_onnx(path).mod)
    converted = tvm.relax.transform.ConvertLayout(
        {"relax.nn.conv2d": ["NCHW16c", "OIHW1i16o"]})(mod)
    assert block_outputs(converted, 16) is converted  # no chain to rewrite
    assert _layout_calls(fuse(load_onnx(path).mod, 16)) >= 2


def test_a_quantized_layer_that_cannot_be_blocked_reads_its_input_transformed_as_u8(
        tmp_path, model_makers):
    """The 24-channel layer reads NCHW: its blocked producer requantizes in its own epilogue
    and the transform between them moves u8, not the float32 before the requantization
    (which left the requantization a pass of its own, 4x the bytes moved)."""
    path = model_makers.quantized(_convolutions_onnx(tmp_path / "f.onnx"), tmp_path / "q.onnx")
    model = load_onnx(path)
    fused = fuse(model.mod, 16)
    # a transform moves u8; one fused into the input's quantization (the stem's words of
    # channels) reads the float input and writes u8
    moved = {name: str(fused[name].params[0 if name.startswith("te_") else -1].dtype)
             for name in (c.args[0].name_hint for c in call_tirs(fused["main"]))
             if "layout_transform" in name}
    assert moved and set(moved.values()) == {"uint8"}, moved
    _, report = compile_model(model, "avx512", tmp_path)
    assert report.quantized.within_one_step >= 0.999
    assert report.quantized.relative_rms <= report.quantized.rms_bound
