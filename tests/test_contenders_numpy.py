"""The ``numpy`` contender: np.matmul(out=) for matrix products, im2col + one matmul for
convolutions, every output written into one garbage-filled array."""

from __future__ import annotations

import numpy as np
import pytest

from gta_core.api import load_workload
from gta_core.bench import CONTENDERS, BenchContext
from gta_core.bench.im2col import im2col_conv
from gta_core.plugins import default_registry

CONVS = [
    "conv1d:N=1,C=4,L=16,K=8,R=3,pad=1,dilation=2",
    "conv1d:N=2,C=6,L=20,K=4,R=5,stride=3",
    "conv2d:N=1,C=4,H=8,W=8,K=8,R=3,S=3,stride=2,pad=1,groups=2",
    "conv2d:N=2,C=8,H=9,W=7,K=4,R=3,S=2,stride=2,pad=2,dilation=2,groups=4",
    "conv2d:N=1,C=3,H=7,W=7,K=5,R=1,S=1",
    "conv3d:N=1,C=4,D=4,H=6,W=6,K=8,T=3,R=3,S=3,pad=1",
    "conv3d:N=1,C=2,D=5,H=5,W=7,K=3,T=2,R=3,S=1,stride=2",
    "depthwise_conv2d:N=1,C=8,H=8,W=8,R=3,S=3,pad=2,dilation=2",
    "depthwise_conv2d:N=2,C=4,H=9,W=9,R=3,S=3,stride=2,pad=1",
    "conv2d_transpose:N=1,C=4,H=5,W=5,K=8,R=4,S=4,stride=2,pad=1",
    "conv2d_transpose:N=2,C=3,H=4,W=6,K=5,R=3,S=2,stride=3",
]


@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("spec", CONVS)
def test_im2col_convolution_equals_the_reference(spec, dtype):
    workload = load_workload(f"{spec},dtype={dtype}")
    inputs = workload.random_inputs(seed=0)
    call, out = im2col_conv(workload, inputs)
    assert out.dtype == (np.int32 if dtype == "int8" else np.float32)
    assert call() is None  # it writes into out
    assert workload.mismatch(out, workload.expected(inputs)) is None
    out.fill(0)
    call()  # the buffers are reused: a second call gives the same output
    assert workload.mismatch(out, workload.expected(inputs)) is None


def test_im2col_refuses_a_matrix_product():
    with pytest.raises(ValueError, match="gemm is not a convolution"):
        im2col_conv(load_workload("gemm:M=4,N=4,K=4"), [])


@pytest.mark.parametrize("spec", ["gemm:M=16,N=32,K=24", "batch_gemm:B=2,M=8,N=16,K=8",
                                  "gemv:M=16,K=32", CONVS[3]])
@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_numpy_writes_into_its_garbage_filled_output(tmp_path, spec, dtype):
    registry = default_registry()
    ctx = BenchContext(target=registry.target("avx512"), trials=1, out=tmp_path,
                       registry=registry)
    workload = load_workload(f"{spec},dtype={dtype}")
    inputs = workload.random_inputs(seed=0)
    program = CONTENDERS["numpy"]().prepare(workload, inputs, ctx).program
    before = program.out.copy()
    assert workload.mismatch(before, workload.expected(inputs)) is not None  # garbage
    program.run()
    assert workload.mismatch(program.out, workload.expected(inputs)) is None
