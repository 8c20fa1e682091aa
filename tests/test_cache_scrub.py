"""A model's functions timed with their data where the model leaves it: the last-level cache
when the model fits there (each core's private caches scrubbed), memory when it does not."""

from __future__ import annotations

import numpy as np
import pytest
import tvm

from gta_core.measure import MeasureSettings, flushed_to_fit, make_runner, model_settings, scrub
from gta_core.plugins import default_registry

CACHES = {"L1": 48 << 10, "L2": 2 << 20, "L3": 32 << 20}


def test_auto_times_a_model_that_fits_half_the_last_level_cache_from_it():
    assert MeasureSettings().flush_to == "memory"  # TVM's clflush, where a flush is asked
    cold = model_settings()
    assert cold.flush_to == "auto"  # a model's: where the model leaves its weights
    assert flushed_to_fit(cold, 16 << 20, CACHES).flush_to == "llc"
    assert flushed_to_fit(cold, (16 << 20) + 1, CACHES).flush_to == "memory"
    # no shared level above L2, or none known: memory, as TVM's flush
    assert flushed_to_fit(cold, 1 << 10, {"L1": 1 << 15, "L2": 1 << 21}).flush_to == "memory"
    assert flushed_to_fit(cold, 1 << 10, {}).flush_to == "memory"
    # a choice made, or no flush at all, is left as it is
    chosen = cold.model_copy(update={"flush_to": "memory"})
    assert flushed_to_fit(chosen, 1, CACHES).flush_to == "memory"
    warm = MeasureSettings(flush_to="auto")
    assert flushed_to_fit(warm, 1, CACHES) == warm


def test_the_command_line_chooses_where_a_models_flush_leaves_it(tmp_path, capsys):
    from gta_core.cli import build_parser, main
    from gta_core.cli_model import measure_settings

    def settings(*argv):
        return measure_settings(build_parser().parse_args(["tune", *argv, "--target", "avx512",
                                                           "--trials", "1", "--db", "d"]))

    assert settings("--model", "m.onnx").flush_to == "auto"
    assert settings("--model", "m.onnx", "--flush-to", "llc").flush_to == "llc"
    memory = settings("--model", "m.onnx", "--flush-to", "memory")
    assert memory.flush_to == "memory" and memory.enable_cpu_cache_flush
    for argv in (["gemm:M=16,N=16,K=16"], ["--model", "m.onnx", "--warm-caches"]):
        assert main(["tune", *argv, "--target", "avx512", "--trials", "1",
                     "--db", str(tmp_path), "--flush-to", "llc"]) == 2
        assert "--flush-to is for --model" in capsys.readouterr().err


def test_each_choice_times_with_its_preprocessor():
    assert scrub.preprocessor(MeasureSettings()) == ""
    flushed = model_settings()  # "auto", unresolved: memory
    assert scrub.preprocessor(flushed) == scrub.FLUSH_PREPROC
    memory = flushed.model_copy(update={"flush_to": "memory"})
    assert scrub.preprocessor(memory) == scrub.FLUSH_PREPROC
    llc = flushed.model_copy(update={"flush_to": "llc"})
    assert scrub.preprocessor(llc) == scrub.PREPROC
    assert tvm.get_global_func(scrub.PREPROC) is not None
    assert tvm.get_global_func(scrub.FLUSH_PREPROC) is not None


def test_the_runner_scrubs_the_private_caches_either_way():
    target = default_registry().target("avx512")
    llc = make_runner(model_settings().model_copy(update={"flush_to": "llc"}), target)
    assert llc.f_run_evaluator is scrub.run_evaluator
    assert not llc.evaluator_config.enable_cpu_cache_flush
    memory = make_runner(model_settings(), target)  # scrubbed, then flushed by the evaluator
    assert memory.f_run_evaluator is scrub.run_evaluator_flushed
    assert not memory.evaluator_config.enable_cpu_cache_flush


def _copy_program():
    from tvm.script import tirx as T

    @T.prim_func(s_tir=True)
    def copy(a: T.Buffer((4096,), "float32"), b: T.Buffer((4096,), "float32")):
        for i in range(4096):
            with T.sblock("copy"):
                v = T.axis.remap("S", [i])
                b[v] = a[v] * T.float32(2)

    return tvm.compile(copy, target="llvm").mod


@pytest.mark.parametrize("preproc", [scrub.PREPROC, scrub.FLUSH_PREPROC])
def test_a_program_timed_after_a_scrub_runs_and_keeps_its_first_argument(preproc):
    lib = _copy_program()
    a = tvm.runtime.tensor(np.arange(4096, dtype="float32"))
    b = tvm.runtime.tensor(np.zeros(4096, "float32"))
    timer = lib.time_evaluator("main", tvm.cpu(), number=1, repeat=3, f_preproc=preproc)
    assert len(timer(a, b).results) == 3
    np.testing.assert_array_equal(b.numpy(), 2 * np.arange(4096, dtype="float32"))
    np.testing.assert_array_equal(a.numpy(), np.arange(4096, dtype="float32"))


@pytest.mark.parametrize("flush_to", ["llc", "memory"])
def test_a_local_runner_times_a_built_program_either_way(flush_to, tmp_path):
    from tvm.s_tir import meta_schedule as ms

    path = tmp_path / "copy.so"
    _copy_program().export_library(str(path))
    target = default_registry().target("avx512")
    runner = make_runner(model_settings().model_copy(update={"flush_to": flush_to}), target)
    args = [ms.arg_info.TensorInfo("float32", [4096]), ms.arg_info.TensorInfo("float32", [4096])]
    (future,) = runner.run([ms.runner.RunnerInput(str(path), "cpu", args)])
    result = future.result()
    assert result.error_msg is None, result.error_msg
    assert len(result.run_secs) == model_settings().repeat and min(result.run_secs) > 0


def test_a_models_footprint_counts_its_weights_and_inputs(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from gta_core.frontends import load_onnx

    weight = np.ones((16, 8), "float32")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])],
        [numpy_helper.from_array(weight, "w")])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert load_onnx(path).footprint_bytes() == weight.nbytes + 4 * 16 * 4


def test_what_an_inference_writes_is_its_fused_functions_outputs(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from gta_core.frontends import fuse, load_onnx, written_bytes

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "v"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 2])],
        [numpy_helper.from_array(np.ones((16, 8), "float32"), "w"),
         numpy_helper.from_array(np.ones((8, 2), "float32"), "v")])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    # the first MatMul and its ReLU are one function: its 4x8 output, then the 4x2 one
    assert written_bytes(fuse(load_onnx(path).mod)) == (4 * 8 + 4 * 2) * 4
