"""Quantized ONNX models (QDQ and operator form) run their layers as u8 x s8 integer programs
with the requantization fused behind them, and agree with onnxruntime's int8 kernels."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tvm.script import tirx as T

from gta_core.bench.hotspots import hotspots
from gta_core.cli import main
from gta_core.frontends import ModelError, fuse, load_onnx, model_tasks
from gta_core.measure.settings import MeasureSettings, model_settings
from gta_core.model_compile import CompileError, compile_model
from gta_core.model_tuning import tune_model
from gta_core.plugins import default_registry
from gta_core.quantized_check import RMS_FLOOR, check_own_quantization, check_quantized
from gta_core.workloads.spec import Expected, output_mismatch
from gta_core.workloads.subgraph import ROUNDING_TIES, SubgraphWorkload


@pytest.fixture(scope="module")
def qdq(tmp_path_factory, model_makers):
    where = tmp_path_factory.mktemp("qdq")
    return model_makers.quantized(model_makers.residual(where / "f.onnx"), where / "q.onnx")


def _untuned(model, where):
    """``model`` compiled with TVM's default schedules (an empty database), checked against
    onnxruntime: the compile report."""
    (where / "db").mkdir(exist_ok=True)
    return compile_model(model, "avx512", where / "db")[1]


def _integer_anchors(model) -> list:
    """The fused tasks whose anchor multiplies u8 by s8 into s32."""
    tasks = model_tasks(fuse(model.mod, 16))
    found = []
    for task in tasks:
        dtypes = [str(p.dtype) for p in task.func.params]
        if task.workload.main_block and dtypes[:2] == ["uint8", "int8"]:
            found.append(task)
    return found


def test_a_qdq_models_convolutions_and_gemm_become_integer_programs_matching_onnxruntime(
        qdq, tmp_path):
    model = load_onnx(qdq)
    assert dict(model.quantized.integer) == {"Conv": 3, "MatMul": 1}
    assert not model.quantized.kept_float
    assert model.quantized.output_steps[0] > 0  # the output is dequantized: checked in steps
    anchors = _integer_anchors(model)
    # Three convolutions (two 3x3 of one shape, distinct when their zero points differ)
    # and the Gemm: every layer's anchor multiplies u8 by s8.
    assert sum(t.weight for t in anchors) == 4
    assert sorted(t.workload.main_block for t in anchors)[-1] == "matmul"
    # The requantization is in the integer task: it writes u8, no int32 tensor in memory.
    assert {str(t.func.params[-1].dtype) for t in anchors} <= {"uint8", "float32"}
    assert any(str(t.func.params[-1].dtype) == "uint8" for t in anchors)
    report = _untuned(model, tmp_path)
    assert report.checked_against == "onnxruntime"
    assert report.quantized.within_one_step >= 0.999
    assert report.quantized.relative_rms <= report.quantized.rms_bound


def test_tvms_own_import_of_the_same_model_stays_float(qdq):
    model = load_onnx(qdq, integer=False)
    assert model.quantized is None
    assert not _integer_anchors(model)


def test_the_operator_form_runs_as_its_qdq_form(tmp_path, model_makers):
    make = model_makers
    path = make.quantized(make.residual(tmp_path / "f.onnx"), tmp_path / "q.onnx",
                          operators=True)
    assert {"QLinearConv", "QGemm"} <= {n.op_type for n in onnx.load(path).graph.node}
    model = load_onnx(path)
    assert dict(model.quantized.integer) == {"Conv": 3, "MatMul": 1}
    report = _untuned(model, tmp_path)
    assert report.quantized.within_one_step >= 0.999


@pytest.mark.parametrize("relu", [True, False], ids=["zero-points-0", "zero-points-inside"])
def test_products_of_two_activations_run_on_u8_x_s8_with_both_zero_points_corrected(
        tmp_path, model_makers, relu):
    make = model_makers
    model = load_onnx(make.quantized(make.attention(tmp_path / "a.onnx", relu=relu),
                                     tmp_path / "aq.onnx"))
    assert dict(model.quantized.integer) == {"MatMul": 4}
    assert not model.quantized.kept_float
    # h @ h^T and s @ h multiply u8 by the other operand shifted to s8 (w - 128, exact)
    products = [t for t in _integer_anchors(model) if len(t.func.params) > 2]
    assert sum(t.weight for t in _integer_anchors(model)) == 4 and products
    report = _untuned(model, tmp_path)
    assert report.quantized.within_one_step >= 0.999
    assert report.quantized.relative_rms <= report.quantized.rms_bound


def test_int8_activations_stay_float_and_are_named(tmp_path, model_makers):
    make = model_makers
    signed = load_onnx(make.quantized(make.residual(tmp_path / "f.onnx"),
                                      tmp_path / "s8.onnx", activations="int8"))
    assert signed.quantized.kept_float["Conv of int8 activations"] == 3
    assert "left in float: Conv of int8 activations x3" in str(signed.quantized)
    report = _untuned(signed, tmp_path)
    assert report.quantized.within_one_step >= 0.999


def test_a_quantized_model_is_held_to_its_frameworks_own_spread():
    rng = np.random.default_rng(0)
    want = [np.round(rng.standard_normal(4000) / 0.05) * 0.05]  # on a grid of step 0.05
    literal = [want[0] + 0.05 * (rng.random(4000) < 0.01)]  # the framework, 1% a step off
    near = [want[0] + 0.05 * (rng.random(4000) < 0.02)]  # 2% a step off
    check = check_quantized(near, want, literal, [0.05])
    assert 0.97 < check.within_one_step <= 1 and check.framework_within_one_step == 1.0
    assert check.rms_bound == RMS_FLOOR and check.relative_rms < RMS_FLOOR
    wrong = [want[0] * 1.1]  # a layer off by 10%: far outside
    with pytest.raises(CompileError, match="relative RMS.*at most 0.0156"):
        check_quantized(wrong, want, literal, [0.05])
    spread = [want[0] + 0.05 * rng.integers(-3, 4, 4000)]  # a framework far from itself
    assert check_quantized(wrong, want, spread, [0.05]).rms_bound > 0.1
    with pytest.raises(CompileError, match="has shape"):
        check_quantized([want[0][:10]], want, literal, [0.05])


def test_a_model_quantized_on_its_own_may_add_at_most_its_quantizations_error():
    rng = np.random.default_rng(0)
    float_want = [rng.standard_normal(4000)]
    reference = [float_want[0] + 0.02 * rng.standard_normal(4000)]  # 2% from the float model
    near = [reference[0] + 0.01 * rng.standard_normal(4000)]  # ties flipped: 1% more
    check = check_own_quantization(near, reference, float_want)
    assert 0.02 < check.relative_rms < check.rms_bound and 0.03 < check.rms_bound < 0.05
    assert check.within_one_step is None
    with pytest.raises(CompileError, match="from the float model's; at most"):
        check_own_quantization([float_want[0] * 1.1], reference, float_want)  # 10% off
    with pytest.raises(CompileError, match="at most"):
        check_own_quantization([float_want[0] * np.nan], reference, float_want)
    exact = check_own_quantization([float_want[0] + 1e-4], [float_want[0]], float_want)
    assert exact.rms_bound == RMS_FLOOR  # a quantization that loses nothing: the floor


def _qdq_conv(path, zero_point: np.ndarray) -> str:
    """x -> QuantizeLinear -> DequantizeLinear -> Conv (s8 weights) with the given zero point
    for the activations."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.array(0.05, np.float32), "s"),
             numpy_helper.from_array(zero_point, "z"),
             numpy_helper.from_array(rng.integers(-9, 9, (4, 4, 3, 3)).astype(np.int8), "wq"),
             numpy_helper.from_array(np.full(4, 0.01, np.float32), "ws"),
             numpy_helper.from_array(np.zeros(4, np.int8), "wz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=0),
             helper.make_node("Conv", ["xd", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["c", "s", "z"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "s", "z"], ["y"])]
    graph = helper.make_graph(
        nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


def test_a_padded_convolution_pads_with_the_input_zero_point(tmp_path):
    model = load_onnx(_qdq_conv(tmp_path / "c.onnx", np.array(200, np.uint8)))
    assert dict(model.quantized.integer) == {"Conv": 1}
    report = _untuned(model, tmp_path)
    # the border too: padding is zx, not 0 (a border of zeros is off by zx * w there)
    assert report.quantized.within_one_step == 1.0


def test_a_zero_point_outside_its_dtype_is_refused_in_one_line(tmp_path):
    with pytest.raises(ModelError, match="zero point 300 .* outside uint8") as info:
        load_onnx(_qdq_conv(tmp_path / "c.onnx", np.array(300, np.int32)))
    assert "\n" not in str(info.value)


FAST = MeasureSettings(number=1, repeat=2, min_repeat_ms=0)


def test_a_quantized_model_tunes_its_integer_tasks_on_int8_intrinsics_and_compiles(
        qdq, tmp_path, capsys):
    model = load_onnx(qdq)
    report = tune_model(model, "avx512", 10, tmp_path / "db", measure=model_settings(FAST))
    assert report.quantized == str(model.quantized)
    integer = {t.digest for t in _integer_anchors(model)}
    tuned = [t for t in report.tasks if t.workload.split("/")[-1] in integer
             and t.tuned and t.tuned.trials]
    assert tuned and all(t.tuned.correct for t in tuned)  # checked exactly (integer outputs)
    # Each integer task is tuned in the design spaces of its mappings onto the target's
    # int8 intrinsics, not in MetaSchedule's generic space.
    assert all(t.mappings >= 1 and t.tuned.mapping != "generic" for t in tuned)
    assert main(["compile", "--model", qdq, "--target", "avx512", "--db",
                 str(tmp_path / "db"), "--out", str(tmp_path / "m.so")]) == 0
    assert "within one quantization step" in capsys.readouterr().out


def test_a_residual_read_as_u8_is_dequantized_inside_the_output_tile(tmp_path, model_makers):
    """Each block's residual input is u8 (the model's quantized input, the first block's
    output), dequantized in the convolution's function: every sketch takes that
    dequantization into the epilogue (it used to stay a pass of its own, and the epilogue
    behind it with it: 5x slower), and computes the right u8 output."""
    import tvm

    from gta_core.mapping import mapping_candidates
    from gta_core.measure import measure_program
    from gta_core.plugins import default_registry
    from gta_core.scheduler.space import MappingSpace, Task

    registry = default_registry()
    target = registry.target("avx512")
    make = model_makers
    model = load_onnx(make.quantized(make.two_blocks(tmp_path / "f.onnx"), tmp_path / "q.onnx"))
    tasks = [t for t in model_tasks(fuse(model.mod, 16)) if t.workload.main_block
             and sum(str(p.dtype) == "uint8" for p in t.func.params[:-1]) == 2]
    assert len(tasks) == 2
    kept = [(task, c) for task in tasks for c in [c for c in mapping_candidates(
        task.workload, "avx512", registry) if c.status == "kept"][:2]]
    assert len(kept) == 4
    for task, candidate in kept:
        program = Task(task.workload, candidate, registry.intrinsics[candidate.intrinsic],
                       target)
        space = MappingSpace(program, list(registry.rules.values()), [])
        sketches = space.generate_design_space(tvm.IRModule({"main": task.func}))
        assert sketches
        for sch in sketches[:2]:
            root = [sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))]
            # (a mapping that accumulates in place keeps its epilogue as one block, T_add,
            # computed per tile; see FuseEpilogue)
            assert not any(name.startswith(("T_multiply", "T_cast", "compute", "T_subtract"))
                           for name in root), root
            result = measure_program(sch.mod, task.workload, target, number=1, repeat=1)
            assert result.correct, result.mismatch


def test_integers_rounded_from_float_may_be_one_off_on_ties_only():
    """A requantization computed in float rounds a value on a tie either way when one
    program contracts its multiply and add into a fused multiply-add and the other does
    not: such outputs may be one off on 2^-10 of the elements, and on nothing more."""
    want = np.arange(4096, dtype=np.float64) % 256
    got = want.copy()
    got[:4] += 1  # four ties of 4096: within 2^-10
    assert output_mismatch(got, Expected(want, None, ROUNDING_TIES)) is None
    assert "4 of 4096 outputs differ" in output_mismatch(got, Expected(want, None))  # exact
    got[4] += 1
    assert "5 of 4096" in output_mismatch(got, Expected(want, None, ROUNDING_TIES))
    two_off = want.copy()
    two_off[0] += 2
    assert output_mismatch(two_off, Expected(want, None, ROUNDING_TIES))


def test_only_a_function_that_computes_in_float_allows_ties(qdq):
    model = load_onnx(qdq)
    tasks = model_tasks(fuse(model.mod, 16))
    requantized = next(t for t in tasks if t.workload.main_block
                       and str(t.func.params[-1].dtype) == "uint8")
    inputs = requantized.workload.random_inputs()
    assert requantized.workload.expected(inputs).ties > 0

    @T.prim_func(s_tir=True)
    def integer(a: T.Buffer((4, 8), "uint8"), b: T.Buffer((8, 4), "int8"),
                c: T.Buffer((4, 4), "int32")):
        for i, j, k in T.grid(4, 4, 8):
            with T.sblock("matmul"):
                vi, vj, vk = T.axis.remap("SSR", [i, j, k])
                with T.init():
                    c[vi, vj] = 0
                c[vi, vj] = c[vi, vj] + T.Cast("int32", a[vi, vk]) * T.Cast("int32", b[vk, vj])

    exact = SubgraphWorkload.from_function("matmul", integer.with_attr("global_symbol", "main"))
    assert exact.expected(exact.random_inputs()).ties == 0


def _residual_chain_onnx(path) -> str:
    """A 1x1 convolution with ReLU, then two residual blocks of one shape (1x1 convolution,
    add the block's input, ReLU): quantized, the blocks differ only in their scales."""
    rng = np.random.default_rng(5)
    nodes, weights = [], []
    source = "x"
    for n in range(3):
        weights += [numpy_helper.from_array(rng.standard_normal((16, 16, 1, 1))
                                            .astype(np.float32) * 0.5, f"w{n}"),
                    numpy_helper.from_array(rng.standard_normal(16).astype(np.float32),
                                            f"b{n}")]
        nodes.append(helper.make_node("Conv", [source, f"w{n}", f"b{n}"], [f"c{n}"]))
        if n:
            nodes.append(helper.make_node("Add", [f"c{n}", source], [f"s{n}"]))
        nodes.append(helper.make_node("Relu", [f"s{n}" if n else f"c{n}"],
                                      ["y" if n == 2 else f"r{n}"]))
        source = f"r{n}"
    graph = helper.make_graph(
        nodes, "residual_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 8, 8])], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


def test_layers_equal_up_to_their_scales_are_one_task_each_run_with_its_own(tmp_path,
                                                                             model_makers):
    """A quantized model's layers of one shape differ in the scales folded into their
    functions: they are one task (one budget, one record), and the record's schedule is
    replayed on each function, so each computes with its own scales."""
    model = load_onnx(model_makers.quantized(_residual_chain_onnx(tmp_path / "f.onnx"),
                                             tmp_path / "q.onnx"))
    tasks = model_tasks(fuse(model.mod, 16))
    [shared] = [t for t in tasks if len(t.functions) == 2]
    assert shared.workload.main_block == "conv2d_NCHWc" and shared.weight == 2
    tuned = tune_model(model, "avx512", 4, tmp_path / "db", measure=model_settings(FAST))
    _, report = compile_model(model, "avx512", tmp_path / "db")
    assert {f.schedule for f in report.functions if f.name in shared.functions} == {"gta"}
    # the bench's table of where the time goes names the mapping of each, not the first only
    times = [(name, 1, 10.0) for name in shared.functions]
    spots = hotspots(times, tuned, {}, default_registry(), top=len(times))
    assert [h.anchor for h in spots] == ["conv2d_NCHWc"] * 2
    assert len({h.mapping for h in spots}) == 1 and spots[0].mapping
    assert report.quantized.within_one_step >= 0.999
    assert report.quantized.relative_rms <= report.quantized.rms_bound
