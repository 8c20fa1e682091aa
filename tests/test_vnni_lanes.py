"""``vnni-lanes``: a blocked int8 depthwise convolution's taps on vpdpbusd, its input read
where it is (gta_avx512's ``gta_avx512_vnni_lanes_16x3``, gta_core.mapping.placement)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from gta_core.frontends import fuse, load_onnx, model_tasks
from gta_core.mapping import mapping_candidates
from gta_core.mapping.access import intrinsic_computation, workload_computation
from gta_core.mapping.placement import reads_in_place
from gta_core.mapping.realise import realise
from gta_core.measure import measure_program
from gta_core.plugins import default_registry


def _depthwise(path, channels: int = 32, size: int = 12, stride: int = 1) -> str:
    rng = np.random.default_rng(4)
    weight = numpy_helper.from_array(
        rng.uniform(-1, 1, (channels, 1, 3, 3)).astype("float32"), "w")
    bias = numpy_helper.from_array(rng.uniform(-1, 1, channels).astype("float32"), "b")
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], group=channels, pads=[1] * 4,
                            strides=[stride] * 2)
    out = (size + 2 - 3) // stride + 1
    graph = helper.make_graph(
        [node], "depthwise",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, out, out])],
        [weight, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return str(path)


@pytest.mark.parametrize("stride", [1, 2])
def test_a_blocked_depthwise_convolution_reads_three_taps_in_place_and_computes_exactly(
        tmp_path, model_makers, stride):
    quantized = model_makers.quantized(_depthwise(tmp_path / "f.onnx", stride=stride),
                                       tmp_path / "q.onnx")
    registry = default_registry()
    target = registry.target("avx512")
    [task] = [t for t in model_tasks(fuse(load_onnx(quantized).mod, 16))
              if t.workload.main_block]
    workload = task.workload
    op = workload_computation(workload)
    lanes = [c for c in mapping_candidates(workload, "avx512", registry)
             if c.intrinsic == "vnni-lanes" and c.status == "kept"]
    # the taps along a row of the blocked input: 3 pixels of 16 channels, 48 adjacent bytes
    row = [c for c in lanes if len(c.axes["k"]) == 1
           and op.inputs[0].dimension_of({c.axes["k"][0]: 1}) == 3]
    assert row, [c.axes for c in lanes]
    intrinsic = registry.intrinsics["vnni-lanes"]
    assert 0 in reads_in_place(op, intrinsic_computation(intrinsic), row[0])
    realised = realise(workload, row[0], intrinsic, target)
    script = realised.sch.mod.script()
    assert "vpdpbusd" in script and "pad_temp_reindex" not in script  # no copy of the input
    result = measure_program(realised.sch.mod, workload, target, number=1, repeat=1)
    assert result.correct, result.mismatch
