"""Models in: ONNX files and PyTorch modules imported, fused into tasks with the right weights,
and every bad input refused in one line."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from gta_core.cli import main
from gta_core.frontends import (
    ModelError,
    from_torch,
    fuse,
    load_onnx,
    model_tasks,
    parse_input_shapes,
)


def test_an_onnx_model_becomes_fused_tasks_with_call_counts_as_weights(residual_onnx, tmp_path):
    model = load_onnx(residual_onnx(tmp_path / "m.onnx"))
    assert [(i.name, i.shape, i.dtype) for i in model.inputs] == [("x", (1, 16, 8, 8),
                                                                   "float32")]
    tasks = {t.name: t for t in model_tasks(fuse(model.mod))}
    # the two 3x3 layers are one function called twice
    [conv3x3] = [t for t in tasks.values() if t.workload.macs == 16 * 16 * 9 * 64]
    assert conv3x3.weight == 2 and len(conv3x3.functions) in (1, 2)
    assert conv3x3.workload.main_block == "conv2d_nchw"
    assert conv3x3.workload.spec.startswith("fused_conv2d_add_relu/")
    [pointwise] = [t for t in tasks.values() if t.workload.macs == 16 * 16 * 64]
    assert pointwise.weight == 1 and "add_add" in pointwise.name  # bias and residual fused
    [gemm] = [t for t in tasks.values() if t.workload.main_block == "matmul"]
    assert gemm.workload.macs == 16 * 10
    anchorless = [t for t in tasks.values() if t.workload.main_block is None]
    assert anchorless and all("multiply-accumulate" in t.workload.why for t in anchorless)


def test_a_subgraph_checks_against_its_unscheduled_self(residual_onnx, tmp_path):
    model = load_onnx(residual_onnx(tmp_path / "m.onnx"))
    task = next(t for t in model_tasks(fuse(model.mod)) if t.workload.main_block)
    workload = task.workload
    inputs = workload.random_inputs()
    expected = workload.expected(inputs)
    assert workload.mismatch(expected.value, expected) is None
    wrong = expected.value.copy()
    wrong.flat[0] += 1e-2
    assert "1 of" in workload.mismatch(wrong, expected)
    assert "none of the" in workload.mismatch(np.full_like(wrong, np.nan), expected)


def test_the_same_subgraph_in_two_models_has_one_spec(residual_onnx, tmp_path):
    first = load_onnx(residual_onnx(tmp_path / "a.onnx"))
    second = load_onnx(residual_onnx(tmp_path / "b.onnx"))
    specs = [{t.workload.spec for t in model_tasks(fuse(m.mod))}
             for m in (first, second)]
    assert specs[0] == specs[1]


def test_open_input_shapes_are_given_on_the_command_line(residual_onnx, tmp_path):
    path = residual_onnx(tmp_path / "open.onnx", batch="N")
    with pytest.raises(ModelError, match=r"input 'x' .* no fixed shape \(\?x16x8x8\).*"
                                         r"--input-shape x="):
        load_onnx(path)
    model = load_onnx(path, parse_input_shapes(["x=2x16x8x8"]))
    assert model.inputs[0].shape == (2, 16, 8, 8)
    with pytest.raises(ModelError, match="does not fit the model's"):
        load_onnx(path, {"x": (2, 3, 8, 8)})
    with pytest.raises(ModelError, match="'y', which is not an input.*its inputs: x"):
        load_onnx(path, {"y": (1,)})


@pytest.mark.parametrize("text", ["x", "x=", "x=1xAx3", "x=0x3", "=1x2"])
def test_bad_input_shape_text_is_refused(text):
    with pytest.raises(ModelError, match="is not NAME=DIMxDIM"):
        parse_input_shapes([text])


def test_bad_models_are_one_line_errors_with_exit_2(tmp_path, capsys):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(bytes(range(256)) * 8)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    node = helper.make_node("NoSuchOp", ["x"], ["y"], name="mystery")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 4])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 4])])
    unsupported = tmp_path / "unsupported.onnx"
    onnx.save(helper.make_model(graph), str(unsupported))
    cases = {
        str(tmp_path / "missing.onnx"): "no such file",
        str(garbage): "is not an ONNX model",
        str(empty): "is not an ONNX model",
        str(unsupported): "does not support: NoSuchOp (node 'mystery')",
    }
    for path, message in cases.items():
        assert main(["compile", "--model", path, "--db", str(tmp_path),
                     "--out", str(tmp_path / "m.so")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert main(["tune", "--model", str(unsupported), "gemm:M=1,N=1,K=1", "--target", "avx512",
                 "--trials", "1", "--db", str(tmp_path)]) == 2
    assert "one of the two" in capsys.readouterr().err


def test_a_torch_module_imports_through_torch_export(small_torch_module):
    import torch

    model = from_torch(small_torch_module, (torch.randn(1, 8, 6, 6),))
    assert model.source == "torch" and model.inputs[0].shape == (1, 8, 6, 6)
    anchors = {t.workload.main_block for t in model_tasks(fuse(model.mod))}
    assert "conv2d_nchw" in anchors


def test_amax_and_amin_import_as_relax_reductions():
    """TVM 0.27's importer has no ``amax``/``amin``; GTA's converters map them, every form
    of ``dim`` and ``keepdim``, and the imported model computes what torch does."""
    import torch
    import tvm
    from tvm import relax

    class Extremes(torch.nn.Module):
        def forward(self, x):
            return (x.amax(1, keepdim=True) - x.amin((2, 3)).unsqueeze(-1).unsqueeze(-1)
                    + torch.amax(x))

    x = torch.randn(2, 5, 4, 3)
    model = from_torch(Extremes(), (x,))
    vm = relax.VirtualMachine(tvm.compile(model.mod, target="llvm"), tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(x.numpy()))
    np.testing.assert_allclose(got.numpy(), Extremes()(x).numpy(), rtol=1e-6)


def test_torch_inputs_that_cannot_be_used_are_model_errors():
    import torch

    class Branchy(torch.nn.Module):
        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: torch.export refuses it
                return x * 2
            return x

    with pytest.raises(ModelError, match="torch.export could not trace Branchy"):
        from_torch(Branchy(), (torch.randn(3),))
    with pytest.raises(ModelError, match="expected a torch.nn.Module"):
        from_torch(lambda x: x, (torch.randn(3),))
    with pytest.raises(ModelError, match="must be one or more torch.Tensor"):
        from_torch(torch.nn.ReLU(), ([1, 2],))


def test_a_clamp_from_above_does_not_shrink_the_rounding_a_check_allows(tmp_path):
    """ReLU6 after a 1x1 convolution over 320 channels: the sums of |a*b| run near 80, and a
    correct program's rounding with them. Read through the clamp, the allowance was that of
    a sum of 6 (MobileNet-V2's 320 -> 1280 layer rejected most of its correct programs)."""
    rng = np.random.default_rng(0)
    weight = rng.uniform(-1, 1, (16, 320, 1, 1)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"]),
         helper.make_node("Clip", ["c", "lo", "hi"], ["y"])],
        "conv_relu6",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 320, 7, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 7, 7])],
        [onnx.numpy_helper.from_array(weight, "w"),
         onnx.numpy_helper.from_array(np.zeros(16, np.float32), "b"),
         onnx.numpy_helper.from_array(np.array(0, np.float32), "lo"),
         onnx.numpy_helper.from_array(np.array(6, np.float32), "hi")])
    path = tmp_path / "relu6.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    [task] = [t for t in model_tasks(fuse(load_onnx(str(path)).mod)) if t.workload.main_block]
    workload = task.workload
    expected = workload.expected(workload.random_inputs())
    inside = (expected.value > 0) & (expected.value < 6)
    # 16 units of roundoff times a clamped sum (at most 6) and the output (at most 6)
    clamped = 16 * 2.0**-24 * 12
    assert inside.any() and np.median(expected.bound[inside]) > 2 * clamped
    wrong = expected.value.copy()
    wrong[inside] += 1e-2  # one product of the sum moved: still far outside
    assert workload.mismatch(wrong, expected)
