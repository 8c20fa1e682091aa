"""float32 erf and exp are lowered to polynomials that vectorise, within a few units of
the functions they stand for."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import tvm
from tvm.script import tirx as T

from gta_core.measure import runnable
from gta_core.plugins import default_registry


def _elementwise(name: str):
    @T.prim_func(s_tir=True)
    def func(A: T.Buffer((4096,), "float32"), B: T.Buffer((4096,), "float32")):
        for i in range(4096):
            with T.sblock("f"):
                vi = T.axis.remap("S", [i])
                B[vi] = T.erf(A[vi]) if name == "erf" else T.exp(A[vi])

    return func


def _run(name: str, x: np.ndarray):
    """(``name`` of x as the avx512 target builds it, the functions its LLVM IR calls)."""
    module = runnable(tvm.IRModule({"main": _elementwise(name)}),
                      default_registry().target("avx512"))
    padded = np.resize(x, 4096).astype("float32")
    out = tvm.runtime.tensor(np.full(4096, np.nan, "float32"))
    module["main"](tvm.runtime.tensor(padded), out)
    calls = set(re.findall(r"call [^@]*@([\w.]+)", module.inspect_source("ll")))
    return out.numpy()[:x.size], calls


def test_float32_erf_is_close_to_erf_and_vectorised():
    x = np.concatenate([np.linspace(-6, 6, 4000), [0.0, 1e-8, -1e-8, 3.9999, 4.0, -4.0, 100.0,
                                                    -100.0, 0.5, -0.5, 1e-3, -1e-3, 2.0,
                                                    -2.0, 0.1, -0.1]]).astype("float32")
    out, calls = _run("erf", x)
    expected = np.array([math.erf(float(v)) for v in x])
    assert np.abs(out - expected).max() < 4e-7
    assert "erff" not in calls and any("v16f32" in c for c in calls)


def test_float32_exp_is_within_two_units_of_exp_and_vectorised():
    # a softmax's range (x - max <= 0) densely, then float32's whole range
    x = np.concatenate([np.linspace(-30, 0, 3000), np.linspace(-87, 88, 1000),
                        [0.0, -0.0, 1e-8, -1e-8, 0.5 * math.log(2), -0.5 * math.log(2)]])
    x = x.astype("float32")
    out, calls = _run("exp", x)
    expected = np.exp(x.astype(np.float64))
    units = np.abs(out - expected) / np.spacing(expected.astype("float32"))
    assert units.max() <= 2, x[np.argmax(units)]
    assert "expf" not in calls and any("v16f32" in c for c in calls)


@pytest.mark.parametrize("x, want", [(-np.inf, 0.0), (-100.0, 0.0), (np.nan, np.nan)])
def test_float32_exp_at_the_ends_of_its_range(x, want):
    out, _ = _run("exp", np.array([x], "float32"))
    assert out[0] == want or (np.isnan(want) and np.isnan(out[0]))
