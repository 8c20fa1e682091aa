"""The ``torch`` contender: out= into one garbage-filled tensor where the op has it, the
target's cores as its threads, and no int8 convolution (torch's requantise)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from gta_core.api import load_workload
from gta_core.bench import CONTENDERS

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("spec", ["gemm:M=16,N=32,K=24", "batch_gemm:B=2,M=8,N=16,K=8",
                                  "gemv:M=16,K=32"])
@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_torch_writes_the_preallocated_output(ctx, spec, dtype):
    workload = load_workload(f"{spec},dtype={dtype}")
    inputs = workload.random_inputs(seed=0)
    program = CONTENDERS["torch"]().prepare(workload, inputs, ctx).program
    expected = workload.expected(inputs)
    assert workload.mismatch(program.out, expected) is not None  # garbage until it runs
    program.run()  # the timed call
    assert workload.mismatch(program.out, expected) is None
    assert workload.mismatch(program.output(), expected) is None


def test_torch_convolutions_allocate_their_output(ctx):
    workload = load_workload("conv2d:N=1,C=4,H=8,W=8,K=8,R=3,S=3,pad=1,groups=2,dtype=float32")
    inputs = workload.random_inputs(seed=0)
    program = CONTENDERS["torch"]().prepare(workload, inputs, ctx).program
    assert program.out is None  # F.conv2d has no out=: each call returns a new tensor
    assert workload.mismatch(program.output(), workload.expected(inputs)) is None
    assert "no out=" in CONTENDERS["torch"].method


def test_torch_runs_on_the_targets_cores(ctx):
    workload = load_workload("gemm:M=8,N=8,K=8,dtype=float32")
    torch.set_num_threads(1)
    CONTENDERS["torch"]().prepare(workload, workload.random_inputs(seed=0), ctx)
    assert torch.get_num_threads() == ctx.target.resources.cores


def test_torch_int8_convolution_is_na_because_torch_requantises(ctx):
    workload = load_workload("conv2d:N=1,C=4,H=8,W=8,K=8,R=3,S=3,dtype=int8")
    reason = CONTENDERS["torch"]().skip_reason(workload, ctx)
    assert reason.startswith("n/a:") and "requantises to quint8" in reason
    assert np.dtype(workload.params.acc_dtype) == np.int32


@pytest.mark.parametrize("spec", ["gemm:M=32,N=48,K=256", "batch_gemm:B=2,M=8,N=16,K=64",
                                  "gemv:M=16,K=64", "conv2d:N=1,C=16,H=8,W=8,K=32,R=3,S=3,pad=1"])
def test_torch_bfloat16_is_checked_within_its_outputs_rounding(ctx, spec):
    """oneDNN sums a bf16 product in float32 and rounds each output to bf16: accepted within
    that one rounding, and still caught when an output is wrong or left unwritten."""
    workload = load_workload(f"{spec},dtype=bfloat16")
    inputs = workload.random_inputs(seed=0)
    prepared = CONTENDERS["torch"]().prepare(workload, inputs, ctx)
    program, expected = prepared.program, workload.expected(inputs)
    assert "bf16 output" in prepared.note
    if program.bf16_out is not None:
        assert torch.isnan(program.bf16_out).all()  # unwritten until it runs
    assert program.mismatch(workload, expected) is None
    wrong = expected.value.copy()
    wrong.flat[3] += 0.05 * (1 + abs(float(wrong.flat[3])))  # beyond a bf16 rounding
    assert program.mismatch(workload, replace(expected, value=wrong)) is not None
