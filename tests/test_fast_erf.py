"""float32 erf is lowered to a polynomial that vectorises, within a few units of erf."""

from __future__ import annotations

import math
import re

import numpy as np
import tvm
from tvm.script import tirx as T

from gta_core.measure import build
from gta_core.plugins import default_registry


@T.prim_func(s_tir=True)
def erf_of(A: T.Buffer((4096,), "float32"), B: T.Buffer((4096,), "float32")):
    for i in range(4096):
        with T.sblock("erf"):
            vi = T.axis.remap("S", [i])
            B[vi] = T.erf(A[vi])


def test_float32_erf_is_close_to_erf_and_vectorised():
    module = build(tvm.IRModule({"main": erf_of}), default_registry().target("avx512")).jit()
    x = np.concatenate([np.linspace(-6, 6, 4000), [0.0, 1e-8, -1e-8, 3.9999, 4.0, -4.0, 100.0,
                                                    -100.0, 0.5, -0.5, 1e-3, -1e-3, 2.0,
                                                    -2.0, 0.1, -0.1] + [1.0] * 80])
    x = x.astype("float32")
    out = tvm.runtime.tensor(np.full(4096, np.nan, "float32"))
    module["main"](tvm.runtime.tensor(x), out)
    expected = np.array([math.erf(float(v)) for v in x])
    assert np.abs(out.numpy() - expected).max() < 4e-7
    source = module.inspect_source("ll")
    calls = set(re.findall(r"call [^@]*@([\w.]+)", source))
    assert "erff" not in calls and any("v16f32" in c for c in calls)
