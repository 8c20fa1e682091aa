"""Models tuned under one budget and compiled into a library whose outputs match the model's
own framework (onnxruntime, PyTorch)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import tvm

from gta_core.cli import main
from gta_core.frontends import from_torch, fuse, load_onnx, model_tasks
from gta_core.mapping import mapping_candidates
from gta_core.mapping.stages import is_packing_stage
from gta_core.measure import measure_program
from gta_core.measure.settings import MeasureSettings, model_settings
from gta_core.model_compile import (
    CompileError,
    compile_model,
    model_inputs,
    reference_outputs,
    run_model,
)
from gta_core.model_tuning import tune_model
from gta_core.plugins import default_registry
from gta_core.scheduler.space import MappingSpace, Task
from gta_core.weight_prepack import mark_weight_packing

FAST = MeasureSettings(number=1, repeat=2, min_repeat_ms=0)


@pytest.fixture(scope="module")
def tuned(residual_onnx, tmp_path_factory):
    """The residual model tuned for 8 trials, timed as a model's functions are (caches
    flushed): (model, db)."""
    where = tmp_path_factory.mktemp("tuned")
    model = load_onnx(residual_onnx(where / "m.onnx"))
    report = tune_model(model, "avx512", 8, where / "db", measure=model_settings(FAST))
    return model, where / "db", report


def test_a_model_tune_reports_every_function_and_spends_the_budget_on_the_tunable(tuned):
    _, _, report = tuned
    assert sum(t.tuned.trials for t in report.tasks) == 8
    assert any(t.tuned.correct for t in report.tasks if t.tuned.trials)
    for task in report.tasks:
        assert task.untuned_us and task.untuned_us > 0
        if task.anchor is None:  # pooling, reshape: MetaSchedule's generic space
            assert task.why.startswith("MetaSchedule's generic rules: no multiply-accumulate")
            assert {m.id for m in task.tuned.mappings} == {"generic"}
    conv3x3 = next(t for t in report.tasks if t.weight == 2)
    assert conv3x3.mappings >= 1 and conv3x3.anchor == "conv2d_NCHWc"  # blocked layout


def test_the_compiled_library_runs_in_a_vm_and_matches_onnxruntime(tuned, tmp_path):
    model, db, _ = tuned
    out = tmp_path / "model.so"
    _, report = compile_model(model, "avx512", db, out)
    assert report.checked_against == "onnxruntime" and report.max_error <= report.tolerance
    gta = [f for f in report.functions if f.schedule == "gta"]
    assert gta and all(f.mapping for f in gta)
    assert all(f.why for f in report.functions if f.schedule == "default")
    inputs = model_inputs(model, seed=7)
    got = run_model(tvm.runtime.load_module(str(out)), inputs)
    _, want = reference_outputs(model, inputs)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-4)


def test_a_compiled_model_that_disagrees_with_its_framework_is_not_written(tuned, tmp_path,
                                                                           monkeypatch):
    model, db, _ = tuned
    import gta_core.model_compile as compiling

    def off_by_one(model, inputs):
        name, outputs = reference_outputs(model, inputs)
        return name, [o + 1.0 for o in outputs]

    monkeypatch.setattr(compiling, "reference_outputs", off_by_one)
    out = tmp_path / "wrong.so"
    with pytest.raises(CompileError, match="output 0 differs from the reference"):
        compile_model(model, "avx512", db, out)
    assert not out.exists()


def test_compiling_without_records_keeps_tvm_defaults_and_names_them(residual_onnx, tmp_path):
    model = load_onnx(residual_onnx(tmp_path / "m.onnx"))
    (tmp_path / "empty").mkdir()
    _, report = compile_model(model, "avx512", tmp_path / "empty")
    assert {f.schedule for f in report.functions} == {"default"}
    assert any("no checked record" in f.why for f in report.functions)
    with pytest.raises(CompileError, match="no such directory"):
        compile_model(model, "avx512", tmp_path / "nowhere")


def test_epilogues_are_computed_where_the_output_is_written_back(residual_onnx, tmp_path):
    """Every design space of a fused conv + bias + relu has its epilogue inlined somewhere
    (no T_add / ReLU block left at the root) where the mapping writes through a write-back
    or an accumulator; each sampled program is correct."""
    registry = default_registry()
    target = registry.target("avx512")
    model = load_onnx(residual_onnx(tmp_path / "m.onnx"))
    task = next(t for t in model_tasks(fuse(model.mod)) if t.weight == 2)
    candidate = next(c for c in mapping_candidates(task.workload, "avx512", registry)
                     if c.status == "kept" and not c.padding)
    program = Task(task.workload, candidate, registry.intrinsics[candidate.intrinsic], target)
    space = MappingSpace(program, list(registry.rules.values()), [])
    sketches = space.generate_design_space(tvm.IRModule({"main": task.workload.prim_func()}))
    assert sketches
    fused = 0
    for sch in sketches:
        names = {sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))}
        fused += not names & {"T_add", "compute"}
        result = measure_program(sch.mod, task.workload, target, number=1, repeat=1)
        assert result.correct, result.mismatch
    assert fused == len(sketches)


def _gelu_onnx(path):
    """x @ W + b, then GELU written out as BERT's export writes it: the sum read twice."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((32, 48)).astype("float32"), "w")
    b = numpy_helper.from_array(rng.standard_normal(48).astype("float32"), "b")
    c = {name: numpy_helper.from_array(np.array(v, "float32"), name)
         for name, v in (("sqrt2", 1.4142135), ("one", 1.0), ("half", 0.5))}
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["y"]),
             helper.make_node("Div", ["y", "sqrt2"], ["d"]),
             helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["f"]),
             helper.make_node("Mul", ["y", "f"], ["g"]),
             helper.make_node("Mul", ["g", "half"], ["out"])]
    graph = helper.make_graph(
        nodes, "gelu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 32])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [8, 48])],
        [w, b, *c.values()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_an_epilogue_that_reads_the_result_twice_is_joined_and_fused(tmp_path):
    """GELU reads the biased sum twice: its branches are joined into one block, inlined
    where the output is written; every sketch of every mapping builds and is correct (a
    half-inlined epilogue read a buffer nothing wrote, and no program built)."""
    registry = default_registry()
    target = registry.target("avx512")
    model = load_onnx(_gelu_onnx(tmp_path / "gelu.onnx"))
    [task] = [t for t in model_tasks(fuse(model.mod)) if t.workload.main_block]
    kept = [c for c in mapping_candidates(task.workload, "avx512", registry)
            if c.status == "kept"]
    assert kept
    for candidate in kept:
        program = Task(task.workload, candidate, registry.intrinsics[candidate.intrinsic],
                       target)
        space = MappingSpace(program, list(registry.rules.values()), [])
        sketches = space.generate_design_space(tvm.IRModule({"main": program.workload.prim_func()}))
        assert sketches
        for sch in sketches:
            root = [sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))]
            assert not any(name.startswith(("T_divide", "compute", "T_multiply"))
                           for name in root), root
            result = measure_program(sch.mod, program.workload, target, number=1, repeat=1)
            assert result.correct, result.mismatch


def test_a_models_constant_weights_are_packed_where_compile_can_prepack_them(residual_onnx,
                                                                             tmp_path):
    """The fused convolutions know their weight and bias are constants; no sketch of any
    kept mapping packs them inside the tile loops (packing-at-tile moves only the
    activations there), so every stage reading only constants is marked for prepacking."""
    registry = default_registry()
    target = registry.target("avx512")
    model = load_onnx(residual_onnx(tmp_path / "m.onnx"))
    tasks = [t for t in model_tasks(fuse(model.mod)) if t.workload.main_block == "conv2d_nchw"]
    assert tasks and all(t.workload.constant_inputs == {1, 2} for t in tasks)
    per_tile = 0
    for task in tasks:
        constant = {task.func.params[i].name for i in task.workload.constant_inputs}
        for candidate in mapping_candidates(task.workload, "avx512", registry):
            if candidate.status != "kept":
                continue
            program = Task(task.workload, candidate, registry.intrinsics[candidate.intrinsic],
                           target)
            space = MappingSpace(program, list(registry.rules.values()), [])
            for sch in space.generate_design_space(tvm.IRModule({"main": task.func})):
                blocks = [sch.get(b) for b in sch.get_child_blocks(sch.get_sblock("root"))]
                reads_constant = {b.name_hint for b in blocks if b.reads
                                  and {r.source.name for r in b.reads} <= constant}
                _, marked = mark_weight_packing(sch.mod["main"],
                                                set(task.workload.constant_inputs))
                assert set(marked) == reads_constant
                per_tile += any(is_packing_stage(sch.get(b).name_hint) and sch.get_loops(b)
                                and len(sch.get_child_blocks(sch.get_loops(b)[0])) > 1
                                for b in sch.get_child_blocks(sch.get_sblock("root")))
    assert per_tile  # the activations are still packed per tile in some sketches


def test_the_compiled_model_runs_its_weight_packing_once_not_per_call(tuned):
    """Every function whose record packs a constant weight is split as it is compiled: the
    model's main calls the compute part, which reads the weight already laid out (GTA's
    functions carry ``tirx.is_scheduled``, and the split must still take them)."""
    from gta_core.model_compile import schedule_model
    from gta_core.weight_prepack import call_tirs, prepack_passes

    model, db, _ = tuned
    fused, rows = schedule_model(model, "avx512", db)
    packing = {r.name for r in rows if r.prepacked}
    assert packing
    mod = tvm.transform.Sequential(prepack_passes())(fused)
    called = {c.args[0].name_hint for c in call_tirs(mod["main"])}
    assert {f"{name}_prepacked" for name in packing} <= called
    assert not packing & called


def test_a_models_gemm_weight_keeps_its_packing_stage_where_a_spec_reads_it_in_place(
        model_makers, tmp_path):
    """FMA could read a MatMul's weight in place (its window is a run of the last
    dimension), and does where the weight is an input; a model's constant weight keeps its
    packing stage in every sketch instead, marked for prepacking: packed once while
    compiling, it is laid out tile by tile."""
    from gta_core.generation.cpu import InlineContiguousOperands
    from gta_core.generation.rule import constant_names

    registry = default_registry()
    target = registry.target("avx512")
    model = load_onnx(model_makers.ffn(tmp_path / "f.onnx", tokens=16, hidden=32, inner=64))
    tasks = [t for t in model_tasks(fuse(model.mod)) if t.workload.main_block == "matmul"]
    assert tasks
    inline = InlineContiguousOperands().name
    for task in tasks:
        weights = constant_names(task.workload)
        for constant in (True, False):
            workload = task.workload if constant else dataclasses.replace(
                task.workload, constant_inputs=frozenset())
            kept = [c for c in mapping_candidates(workload, "avx512", registry)
                    if c.status == "kept" and c.intrinsic == "fma"]
            assert kept
            for candidate in kept:
                program = Task(workload, candidate, registry.intrinsics[candidate.intrinsic],
                               target)
                space = MappingSpace(program, [registry.rules[inline]], [])
                for sch in space.generate_design_space(tvm.IRModule({"main": task.func})):
                    in_place = {r.source.name for b in _all_blocks(sch) for r in b.reads
                                if any(v.iter_type == 2 for v in b.iter_vars)} & weights
                    _, marked = mark_weight_packing(sch.mod["main"],
                                                    set(task.workload.constant_inputs))
                    assert bool(in_place) != constant and bool(marked) == constant


def _all_blocks(sch, parent=None) -> list:
    children = sch.get_child_blocks(parent or sch.get_sblock("root"))
    return [b for c in children for b in [sch.get(c), *_all_blocks(sch, c)]]


def test_the_command_line_resumes_a_model_tune_and_compiles_it(tuned, tmp_path, capsys):
    model, db, _ = tuned
    path, out = str(model.origin), tmp_path / "m.so"
    assert main(["tune", "--model", path, "--target", "avx512", "--trials", "8",
                 "--db", str(db), "--quiet", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)  # the budget is on record: nothing new
    assert sum(t["tuned"]["trials"] for t in again["tasks"]) == 8
    assert sum(t["tuned"]["new_trials"] for t in again["tasks"]) == 0
    assert main(["compile", "--model", path, "--db", str(db), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "outputs match onnxruntime" in text and out.exists()


def test_a_models_functions_are_timed_with_caches_flushed_unless_asked_warm(tmp_path, capsys):
    from gta_core.cli import build_parser
    from gta_core.cli_model import measure_settings

    def settings(*argv):
        return measure_settings(build_parser().parse_args(["tune", *argv, "--target", "avx512",
                                                           "--trials", "1", "--db", "d"]))

    cold = settings("--model", "m.onnx", "--run-timeout", "5")
    assert cold.enable_cpu_cache_flush and cold.number == 1 and cold.min_repeat_ms == 0
    assert cold.run_timeout_s == 5  # the user's settings stay
    assert not settings("--model", "m.onnx", "--warm-caches").enable_cpu_cache_flush
    assert not settings("gemm:M=16,N=16,K=16").enable_cpu_cache_flush  # operators: warm
    assert main(["tune", "gemm:M=16,N=16,K=16", "--target", "avx512", "--trials", "1",
                 "--db", str(tmp_path), "--warm-caches"]) == 2
    assert "--warm-caches is for --model" in capsys.readouterr().err


def test_a_torch_module_compiles_and_matches_torch(small_torch_module, tmp_path):
    import torch

    model = from_torch(small_torch_module, (torch.randn(1, 8, 6, 6),))
    report = tune_model(model, "avx512", 3, tmp_path, measure=FAST)
    assert sum(t.tuned.trials for t in report.tasks) == 3
    _, compiled = compile_model(model, "avx512", tmp_path, tmp_path / "small.so")
    assert compiled.checked_against == "torch"
    assert any(f.schedule == "gta" for f in compiled.functions)


def test_tuned_workloads_compile_into_one_library_of_checked_functions(tmp_path, capsys):
    from gta_core.model_compile import function_name
    from gta_core.tuning import tune
    from gta_core.workloads import parse_workload

    specs = ["gemm:M=32,N=32,K=32,dtype=int8", "gemm:M=16,N=48,K=32"]
    tune(specs, "avx512", 4, tmp_path, measure=FAST)
    out = tmp_path / "ops.so"
    assert main(["compile", *specs, "--db", str(tmp_path), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [f["workload"] for f in report["functions"]] == [
        "gemm:M=32,N=32,K=32,dtype=int8", "gemm:M=16,N=48,K=32,dtype=float32"]
    library = tvm.runtime.load_module(str(out))
    workload = parse_workload(specs[0], default_registry().operators)
    a, b = workload.random_inputs(seed=3)
    c = tvm.runtime.tensor(np.zeros((32, 32), "int32"))
    library[function_name(workload.spec)](tvm.runtime.tensor(a), tvm.runtime.tensor(b), c)
    np.testing.assert_array_equal(c.numpy(), a.astype(np.int64) @ b.astype(np.int64))
    assert main(["compile", "gemm:M=8,N=8,K=8", "--db", str(tmp_path), "--out",
                 str(tmp_path / "x.so")]) == 2
    assert "no checked record of gemm:M=8,N=8,K=8" in capsys.readouterr().err
    assert not (tmp_path / "x.so").exists()


def _relu6_conv_onnx(path):
    """A 1x1 convolution (16 -> 24 channels) and a Clip between constants 0 and 6 (ReLU6)."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    weights = [helper.make_tensor(name, TensorProto.FLOAT, shape,
                                  rng.standard_normal(shape).astype(np.float32).ravel())
               for name, shape in (("w", (24, 16, 1, 1)), ("b", (24,)))]
    bounds = [helper.make_tensor("lo", TensorProto.FLOAT, [], [0.0]),
              helper.make_tensor("hi", TensorProto.FLOAT, [], [6.0])]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"]),
         helper.make_node("Clip", ["c", "lo", "hi"], ["y"])], "relu6",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 24, 8, 8])],
        weights + bounds)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


def test_a_relu6_is_fused_into_its_convolution_with_its_bounds_in_the_program(tmp_path):
    """ONNX Clip between constants imports as Relax maximum/minimum (TVM's importer makes
    opaque TE calls of it): it fuses into the convolution with 0 and 6 written in the
    function, not passed as inputs, and the model still matches onnxruntime."""
    model = load_onnx(_relu6_conv_onnx(tmp_path / "relu6.onnx"))
    [task] = model_tasks(fuse(model.mod))
    assert task.workload.main_block == "conv2d_nchw" and task.workload.scalars == ()
    assert len(task.func.params) == 4  # data, weight, bias, output
    _, report = compile_model(model, "avx512", tmp_path)  # no records: TVM's schedules
    assert report.checked_against == "onnxruntime" and report.max_error <= report.tolerance


def test_checks_run_a_fused_function_with_the_models_scalar_constants():
    """A fused function may take scalar constants as inputs (a clip's bounds emitted as TE
    calls, as TVM's own ONNX importer does): checks use the model's values, not random
    numbers that would clamp the error allowance (MobileNet-V2's 1x1 convolutions were all
    judged wrong that way)."""
    from tvm import relax, topi
    from tvm.script import relax as R

    rng = np.random.default_rng(0)
    builder = relax.BlockBuilder()
    x = relax.Var("x", R.Tensor((1, 16, 8, 8), "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            weight = relax.const(rng.standard_normal((24, 16, 1, 1)).astype(np.float32))
            y = builder.emit(relax.op.nn.conv2d(x, weight))
            y = builder.emit_te(topi.maximum, y, relax.const(np.float32(0.0)))
            y = builder.emit_output(builder.emit_te(topi.minimum, y,
                                                    relax.const(np.float32(6.0))))
        builder.emit_func_output(y)
    [task] = [t for t in model_tasks(fuse(builder.get())) if t.workload.main_block]
    scalars = dict(task.workload.scalars)
    assert sorted(scalars.values()) == [0.0, 6.0]
    inputs = task.workload.random_inputs(3)
    assert all(inputs[i].item() == value for i, value in scalars.items())
    assert set(scalars) <= task.workload.constant_inputs


def test_gta_stages_times_a_models_scheduled_functions_as_the_model_calls_them(tuned):
    from gta_core.stage_report import markdown, model_stages

    model, db, _ = tuned
    report = model_stages(model, "avx512", db, peak=False)
    mapped = [p for p in report.programs if p.mapping != "generic"]  # the convolutions
    assert mapped and all(p.gop > 0 and p.calls >= 1 for p in mapped)
    assert all("compute" in {s.kind for s in p.profile.stages} for p in mapped)
    order = [p.calls * p.profile.us for p in report.programs]
    assert order == sorted(order, reverse=True)  # where the model's time goes first
    assert report.programs[0].program in "\n".join(markdown(report))
    with pytest.raises(CompileError, match="no function GTA scheduled from .* named like nope"):
        model_stages(model, "avx512", db, ["nope"], peak=False)
