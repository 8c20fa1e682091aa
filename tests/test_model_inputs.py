"""The inputs models and their functions are checked and timed on: integer indices inside the
tables they index, masks that mask nothing, and references that are not finite compared as
they are."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tvm
from onnx import TensorProto, helper

from gta_core.frontends import fuse, load_onnx, model_tasks
from gta_core.frontends.sample_inputs import sample_inputs
from gta_core.host import HostCannotRun
from gta_core.measure.run_arguments import alloc_arguments
from gta_core.model_compile import CompileError, check_outputs
from gta_core.model_tuning import tune_model


def _embedding_graph(path, ids_type=TensorProto.INT64, rows=30) -> str:
    """ids (2, 6) gather rows of a (rows, 8) table, times a mask (2, 6) cast to float, then
    a MatMul to 4 outputs: a language model's first layer, as small as it gets."""
    rng = np.random.default_rng(0)
    table = helper.make_tensor("table", TensorProto.FLOAT, (rows, 8),
                               rng.standard_normal(rows * 8).astype(np.float32))
    w = helper.make_tensor("w", TensorProto.FLOAT, (8, 4),
                           rng.standard_normal(32).astype(np.float32))
    axes = helper.make_tensor("axes", TensorProto.INT64, (1,), [2])
    nodes = [helper.make_node("Gather", ["table", "ids"], ["e"], axis=0),
             helper.make_node("Cast", ["mask"], ["m"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["m", "axes"], ["m3"]),
             helper.make_node("Mul", ["e", "m3"], ["em"]),
             helper.make_node("MatMul", ["em", "w"], ["y"])]
    graph = helper.make_graph(
        nodes, "embedding",
        [helper.make_tensor_value_info("ids", ids_type, [2, 6]),
         helper.make_tensor_value_info("mask", TensorProto.INT64, [2, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 6, 4])], [table, w, axes])
    import onnx

    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


def test_a_models_indices_stay_inside_their_table_and_other_integers_are_ones(tmp_path):
    model = load_onnx(_embedding_graph(tmp_path / "m.onnx", rows=30))
    ids, mask = sample_inputs(model)
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < 30
    assert len(np.unique(ids)) > 1  # drawn, not a constant
    assert mask.dtype == np.int64 and (mask == 1).all()


def test_a_gathers_indices_are_drawn_inside_the_table_for_its_functions_check(tmp_path):
    model = load_onnx(_embedding_graph(tmp_path / "m.onnx", TensorProto.INT32, rows=7))
    [take] = [t for t in model_tasks(fuse(model.mod, 8)) if "take" in t.name]
    indices = [x for x in take.workload.random_inputs() if x.dtype == np.int32]
    assert indices and all(0 <= x.min() and x.max() < 7 for x in indices)


def test_runner_workers_time_integers_as_zeros_and_floats_as_random_values():
    [[ints, floats]] = alloc_arguments(tvm.cpu(), [("TENSOR", "int32", [64]),
                                                   ("TENSOR", "float32", [64])], 1)
    assert (ints.numpy() == 0).all()
    assert len(np.unique(floats.numpy())) > 1


def test_a_model_with_int32_indices_tunes_every_function_and_compiles(avx2_registry,
                                                                     compile_on_avx2, tmp_path):
    """Random int32 indices crashed every trial of the gather's function (TVM's ``take``
    reads unchecked); inside the table, each is timed and checked."""
    model = load_onnx(_embedding_graph(tmp_path / "m.onnx", TensorProto.INT32, rows=7))
    try:
        tune_model(model, "avx2", 12, tmp_path / "db", registry=avx2_registry)
    except HostCannotRun as exc:
        pytest.skip(f"this CPU cannot run the avx2 example's programs: {exc}")
    lines = [json.loads(line) for line in
             (tmp_path / "db" / "gta_records.json").read_text().splitlines()]
    takes = [r for r in lines if r["task"].startswith("take/")]
    assert takes and not any("crashed" in (r["error"] or "") for r in takes), takes
    report = compile_on_avx2(model, tmp_path / "db")
    assert report.max_error <= report.tolerance
    assert any(f.name.startswith("take") and f.schedule == "gta" for f in report.functions)


def test_a_reference_that_is_not_finite_is_matched_exactly_where_it_is_not():
    want = np.array([1.0, np.nan, -np.inf, 2.0], np.float32)
    error, _ = check_outputs([want + np.float32(1e-7)], [want])
    assert error < 1e-6
    with pytest.raises(CompileError, match="where the reference is NaN or infinite"):
        check_outputs([np.array([1.0, 0.0, -np.inf, 2.0], np.float32)], [want])
    with pytest.raises(CompileError, match="NaN or infinite everywhere"):
        check_outputs([np.full(3, np.nan, np.float32)], [np.full(3, np.nan, np.float32)])
