"""The stage writing a tile's results out is vectorised over its lanes by a postprocessor,
where every access is contiguous along them; elsewhere it is left to LLVM."""

from __future__ import annotations

import numpy as np
import tvm
from tvm.script import tirx as T
from tvm.tirx import ForKind

from gta_core.frontends import channel_block, fuse, load_onnx, model_tasks
from gta_core.generation.stage_lanes import MARK
from gta_core.mapping import mapping_candidates
from gta_core.mapping.stages import is_packing_stage
from gta_core.measure import measure_program
from gta_core.plugins import default_registry
from gta_core.scheduler.space import MappingSpace, Task
from gta_core.scheduler.vectorize_lanes import VectorizeMarkedLanes


@T.prim_func(s_tir=True)
def _three_stages(a: T.Buffer((8, 32), "float32"), bias: T.Buffer((32,), "float32"),
                  table: T.Buffer((256,), "float32"), idx: T.Buffer((8, 32), "int32"),
                  out: T.Buffer((8, 32), "float32"), transposed: T.Buffer((32, 8), "float32"),
                  gathered: T.Buffer((8, 32), "float32")):
    for i, j in T.grid(8, 32):
        with T.sblock("biased"):
            vi, vj = T.axis.remap("SS", [i, j])
            out[vi, vj] = T.max(a[vi, vj] + bias[vj], T.float32(0))
    for i, j in T.grid(8, 32):
        with T.sblock("transposed"):
            vi, vj = T.axis.remap("SS", [i, j])
            transposed[vj, vi] = a[vi, vj]
    for i, j in T.grid(8, 32):
        with T.sblock("gathered"):
            vi, vj = T.axis.remap("SS", [i, j])
            gathered[vi, vj] = table[idx[vi, vj]]


def _innermost_kind(sch, name: str):
    return sch.get(sch.get_loops(sch.get_sblock(name))[-1]).kind


def test_only_a_stage_contiguous_along_its_innermost_loop_is_vectorised():
    sch = tvm.s_tir.Schedule(tvm.IRModule({"main": _three_stages}))
    for name in ("biased", "transposed", "gathered"):
        sch.annotate(sch.get_sblock(name), MARK, 16)
    assert VectorizeMarkedLanes().apply(sch)
    # 32 lanes split to the mark's 16
    assert _innermost_kind(sch, "biased") == ForKind.VECTORIZED
    assert [sch.get(lp).extent.value for lp in sch.get_loops(sch.get_sblock("biased"))] \
        == [8, 2, 16]
    assert _innermost_kind(sch, "transposed") == ForKind.SERIAL  # strided write
    assert _innermost_kind(sch, "gathered") == ForKind.SERIAL  # a load's index is a load
    assert MARK not in sch.get(sch.get_sblock("biased")).annotations
    assert MARK not in sch.get(sch.get_sblock("transposed")).annotations


def _sketches(workload, candidate, registry, target):
    """Every design space of ``candidate`` on ``workload``, its postprocessors applied
    (each must accept it)."""
    program = Task(workload, candidate, registry.intrinsics[candidate.intrinsic], target)
    space = MappingSpace(program, list(registry.rules.values()), [])
    for sch in space.generate_design_space(tvm.IRModule({"main": workload.prim_func()})):
        sch.enter_postproc()
        assert all(p.apply(sch) for p in space.postprocs)
        yield sch


def test_a_fused_convolutions_copy_out_is_vectorised_and_correct(residual_onnx, tmp_path):
    """Every design space of a fused conv + bias + relu marks the stages after the main
    block; after the postprocessors, the one that writes the output is vectorised where
    the output's lanes are its innermost loop, and every program computes correctly."""
    registry = default_registry()
    target = registry.target("avx512")
    model = load_onnx(residual_onnx(tmp_path / "m.onnx"))
    task = next(t for t in model_tasks(fuse(model.mod)) if t.weight == 2)
    candidates = [c for c in mapping_candidates(task.workload, "avx512", registry)
                  if c.status == "kept" and not c.padding]
    vectorised = 0
    for candidate in candidates[:2]:
        for sch in _sketches(task.workload, candidate, registry, target):
            script = sch.mod.script()
            assert MARK not in script
            root = sch.get_sblock("root")
            allocated = {b.name for b in sch.get(root).alloc_buffers}
            writer = [b for b in sch.get_child_blocks(root)  # the one writing a parameter
                      if sch.get(b).writes[0].source.name not in allocated]
            vectorised += any(_innermost_kind(sch, sch.get(b).name_hint)
                              == ForKind.VECTORIZED for b in writer)
            result = measure_program(sch.mod, task.workload, target, number=1, repeat=1)
            assert result.correct, result.mismatch
    assert vectorised, "no copy-out vectorised"


def test_a_vectorised_copy_out_matches_numpy():
    """The postprocessor's vector computes what the scalar loop did."""
    sch = tvm.s_tir.Schedule(tvm.IRModule({"main": _three_stages}))
    sch.annotate(sch.get_sblock("biased"), MARK, 64)
    VectorizeMarkedLanes().apply(sch)
    lib = tvm.compile(sch.mod, target="llvm")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((8, 32)).astype("float32")
    bias = rng.standard_normal(32).astype("float32")
    idx = rng.integers(0, 256, (8, 32)).astype("int32")
    table = rng.standard_normal(256).astype("float32")
    args = [tvm.runtime.tensor(x) for x in (a, bias, table, idx)]
    outs = [tvm.runtime.tensor(np.full(s, np.nan, "float32")) for s in ((8, 32), (32, 8), (8, 32))]
    lib["main"](*args, *outs)
    np.testing.assert_array_equal(outs[0].numpy(), np.maximum(a + bias, 0))
    np.testing.assert_array_equal(outs[2].numpy(), table[idx])


def _depthwise_onnx(path, channels: int = 32, size: int = 10, dense: bool = False) -> str:
    """A depthwise 3x3 convolution, padded by one, with its bias and ReLU6 (MobileNet's);
    ``dense``: a dense one (every output channel reads every input channel)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    fan_in = channels if dense else 1
    w = numpy_helper.from_array(rng.uniform(-1, 1, (channels, fan_in, 3, 3)).astype("float32"),
                                "w")
    b = numpy_helper.from_array(rng.uniform(-1, 1, channels).astype("float32"), "b")
    low, high = (numpy_helper.from_array(np.array(v, "float32"), n)
                 for n, v in (("low", 0.0), ("high", 6.0)))
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1],
                              group=1 if dense else channels),
             helper.make_node("Clip", ["c", "low", "high"], ["y"])]
    shape = [1, channels, size, size]
    graph = helper.make_graph(nodes, "depthwise",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
                              [w, b, low, high])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path)


def _padded_sketches(tmp_path, dense: bool = False) -> tuple[int, int]:
    """The 3x3 layer's sketches on the mapping that reads its padded input in place
    (fma16-elementwise for the depthwise layer, fma for the dense one), each checked to
    compute correctly: (those padding per parallel tile, all)."""
    registry = default_registry()
    target = registry.target("avx512")
    model = load_onnx(_depthwise_onnx(tmp_path / "dw.onnx", dense=dense))
    [task] = [t for t in model_tasks(fuse(model.mod, channel_block(target)))
              if t.workload.main_block]
    intrinsic = "fma" if dense else "fma16-elementwise"
    # a mapping that fuses loops into one intrinsic axis moves no stage into a tile
    candidates = [c for c in mapping_candidates(task.workload, "avx512", registry)
                  if c.status == "kept" and c.intrinsic == intrinsic
                  and all(len(group) == 1 for group in c.axes.values())]
    per_tile = sketches = 0
    for candidate in candidates:
        for sch in _sketches(task.workload, candidate, registry, target):
            names = [sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))]
            if "pad_temp" not in names or any(
                    is_packing_stage(sch.get(b).name_hint)
                    for b in sch.get_consumers(sch.get_sblock("pad_temp"))):
                continue  # inlined into, or copied by, a packing stage: not read in place
            sketches += 1
            loops = [sch.get(lp) for lp in sch.get_loops(sch.get_sblock("pad_temp"))]
            if loops[0].kind == ForKind.PARALLEL and loops[0].annotations.get("gta_tile"):
                per_tile += 1  # under the tile loop, the lanes vectorised
                assert loops[-1].kind == ForKind.VECTORIZED and loops[-1].extent.value == 16
            result = measure_program(sch.mod, task.workload, target, number=1, repeat=1)
            assert result.correct, result.mismatch
    return per_tile, sketches


def test_a_depthwise_layers_padding_read_in_place_is_computed_per_tile_and_vectorised(
        tmp_path):
    """A blocked depthwise layer reads its padded input in place, each output channel its
    own input channel: every sketch pads per parallel tile (no whole pass, nor its
    fill-then-copy form, which cannot move into a tile), the padding's lanes vectorised by
    the postprocessor; every sketch computes correctly."""
    per_tile, sketches = _padded_sketches(tmp_path)
    assert per_tile == sketches > 0


def test_a_dense_layers_padding_is_searched_per_tile_and_whole(tmp_path):
    """A dense 3x3 layer's input is read by every tile of output channels: padded per tile,
    each would pad it again, so the padding done whole is searched beside it."""
    per_tile, sketches = _padded_sketches(tmp_path, dense=True)
    assert 0 < per_tile < sketches
