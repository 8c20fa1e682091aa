"""Elementwise chains of one 8-bit tensor computed as 256-entry tables
(gta_core.frontends.lookup_tables)."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import relax

from gta_core.frontends import fuse, load_onnx, model_tasks
from gta_core.frontends.lookup_tables import lookup_tables, tableable_chains
from gta_core.measure.fast_math import register_fast_math
from gta_core.model_compile import compile_model

SHAPE = (4, 64)  # 256 elements: every 8-bit value once


def _f(value: float):
    return relax.const(value, "float32")


def _dequantized(x, zero: float, scale: float):
    return relax.op.multiply(relax.op.subtract(relax.op.astype(x, "float32"), _f(zero)),
                             _f(scale))


def _quantized(value, scale: float, zero: float, dtype: str = "uint8"):
    info = np.iinfo(dtype)
    value = relax.op.add(relax.op.round(relax.op.divide(value, _f(scale))), _f(zero))
    value = relax.op.minimum(relax.op.maximum(value, _f(info.min)), _f(info.max))
    return relax.op.astype(value, dtype)


def _module(body, dtypes=("uint8",)):
    """A Relax module whose main takes one SHAPE tensor per dtype and returns ``body(*xs)``."""
    bb = relax.BlockBuilder()
    xs = [relax.Var(f"x{i}", relax.TensorType(SHAPE, d)) for i, d in enumerate(dtypes)]
    with bb.function("main", xs):
        with bb.dataflow():
            out = bb.emit_output(bb.normalize(body(*xs)))
        bb.emit_func_output(out)
    return bb.get()


def _run(mod, *inputs) -> np.ndarray:
    register_fast_math()
    lib = tvm.compile(relax.transform.LegalizeOps()(mod), target="llvm")
    vm = relax.VirtualMachine(lib, tvm.cpu())
    return vm["main"](*[tvm.runtime.tensor(x) for x in inputs]).numpy()


def _every_value(dtype: str) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.arange(info.min, info.max + 1).astype(dtype).reshape(SHAPE)


def _ops(mod) -> set[str]:
    found = set()

    def visit(expr) -> None:
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
            found.add(expr.op.name)

    relax.analysis.post_order_visit(mod["main"], visit)
    return found


def _gelu(x, dtype: str = "uint8"):
    """BERT's quantized GELU: each op between a dequantize and a quantize."""
    zero = 0.0 if dtype == "int8" else 120.0
    h = _dequantized(x, zero, 0.03)
    d = _dequantized(_quantized(relax.op.divide(h, _f(2 ** 0.5)), 0.02, zero, dtype), zero, 0.02)
    e = _dequantized(_quantized(relax.op.erf(d), 0.008, 127.0), 127.0, 0.008)
    e1 = relax.op.add(e, _f(1.0))
    return _quantized(relax.op.multiply(relax.op.multiply(h, e1), _f(0.5)), 0.025, 14.0)


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_a_gelu_between_quantizations_becomes_a_table_with_the_same_bits(dtype):
    mod = _module(lambda x: _gelu(x, dtype), (dtype,))
    chains = tableable_chains(mod["main"])
    assert len(chains) == 1 and "relax.erf" in chains[0].ops
    tabled, replaced = lookup_tables(mod)
    assert replaced == 1
    assert "relax.take" in _ops(tabled) and "relax.erf" not in _ops(tabled)
    x = _every_value(dtype)
    expected = _run(mod, x)
    assert len(np.unique(expected)) > 20  # a real function of x, not a constant
    np.testing.assert_array_equal(_run(tabled, x), expected)


def test_chains_that_are_not_functions_of_one_8bit_tensor_are_left_alone():
    per_channel = relax.const(np.linspace(-1, 1, SHAPE[1]).astype("float32"))
    cases = {
        # a per-channel operand: 256 results per channel, not 256 in all
        "per-channel": (lambda x: _quantized(relax.op.erf(relax.op.add(
            _dequantized(x, 120, 0.03), per_channel)), 0.01, 127.0), ("uint8",)),
        # two computed inputs
        "two inputs": (lambda x, y: _quantized(relax.op.erf(relax.op.add(
            _dequantized(x, 120, 0.03), _dequantized(y, 120, 0.03))), 0.01, 127.0),
            ("uint8", "uint8")),
        # a float input
        "float input": (lambda x: _quantized(relax.op.erf(x), 0.01, 127.0), ("float32",)),
        # a requantize alone is a few vector instructions: cheaper than a load per element
        "requantize": (lambda x: _quantized(_dequantized(x, 120, 0.03), 0.02, 127.0),
                       ("uint8",)),
    }
    for name, (body, dtypes) in cases.items():
        mod = _module(body, dtypes)
        assert not tableable_chains(mod["main"]), name
        assert lookup_tables(mod)[1] == 0, name


def test_a_value_also_read_outside_the_chain_is_still_computed():
    def body(x):
        h = _dequantized(x, 120.0, 0.03)
        g = _quantized(relax.op.erf(h), 0.01, 127.0)
        return relax.op.add(relax.op.astype(g, "float32"), h)  # h read again

    mod = _module(body)
    tabled, replaced = lookup_tables(mod)
    assert replaced == 1
    x = _every_value("uint8")
    np.testing.assert_array_equal(_run(tabled, x), _run(mod, x))


@pytest.fixture(scope="module")
def quantized_ffn(tmp_path_factory, model_makers):
    where = tmp_path_factory.mktemp("ffn")
    return model_makers.quantized(model_makers.ffn(where / "f.onnx"), where / "q.onnx")


def test_a_quantized_gelu_is_one_lookup_in_its_matmuls_epilogue(quantized_ffn, tmp_path):
    model = load_onnx(quantized_ffn)
    fused = fuse(model.mod, 16)
    names = [t.name for t in model_tasks(fused)]
    assert not [n for n in names if "erf" in n]
    # the lookup fused where the chain was: behind the first matmul's requantization
    assert [n for n in names if "matmul" in n and "take" in n], names
    (tmp_path / "db").mkdir()
    report = compile_model(model, "avx512", tmp_path / "db")[1]
    assert report.checked_against == "onnxruntime"
    assert report.quantized.within_one_step >= 0.999
