"""``weights=constant``: a workload whose weights are a deployed model's constants, laid out
once ahead of the calls, and the contenders that time it that way (GTA's program split as a
compiled model runs it; ``torch-prepacked``)."""

from __future__ import annotations

import numpy as np
import pytest
import tvm

from gta_core.api import load_workload
from gta_core.bench import CONTENDERS
from gta_core.bench.programs import TVMProgram
from gta_core.model_compile import compile_specs
from gta_core.tuning import tune
from gta_core.weight_prepack import as_model_runs
from gta_core.workloads import SpecError

CONV = "conv2d:N=1,C=16,H=10,W=10,K=32,R=3,S=3,pad=1,dtype=float32"


def test_weights_constant_marks_the_weight_inputs_and_names_its_own_task():
    held = load_workload(f"{CONV},weights=constant")
    plain = load_workload(CONV)
    assert held.constant_inputs == {1} and plain.constant_inputs == frozenset()
    assert held.spec == plain.spec + ",weights=constant"  # a task of its own, canonical
    assert "weights" not in plain.spec  # specs without it keep their records
    assert load_workload("gemv:M=16,K=32,weights=constant").constant_inputs == {1}  # A


@pytest.mark.parametrize("spec, message", [
    ("mean:M=8,K=8,weights=constant", "mean has no weight input"),
    (f"{CONV},weights=packed", "accepted: 'constant'"),
])
def test_weights_constant_needs_a_weight_and_says_so(spec, message):
    with pytest.raises(SpecError, match=message):
        load_workload(spec)


@pytest.mark.runs("avx512")
def test_gtas_program_lays_its_weights_out_once_and_times_the_compute(tmp_path, ctx):
    workload = load_workload(f"{CONV},weights=constant")
    tune([workload.spec], "avx512", 2, tmp_path)
    gta = CONTENDERS["gta"]()
    program = gta.best_program(workload, tmp_path, ctx, None)
    split = as_model_runs(workload, program)
    assert split.prepack is not None and split.reads == (1,)  # the weight's layout, once
    assert not any(r.source.name == "weight" for b in _blocks(split.compute)
                   for r in b.reads)  # the timed compute never reads the weight as given
    inputs = workload.random_inputs(seed=1)
    timed = TVMProgram(program, workload, ctx.target, inputs)
    assert timed.mismatch(workload, workload.expected(inputs)) is None
    assert timed.sample_us() > 0

    # gta compile: the layout as a function of its own, run once by the caller
    _, report = compile_specs([workload.spec], "avx512", tmp_path, tmp_path / "ops.so")
    row = report.functions[0]
    assert row.prepack == f"{row.function}_prepack" and row.packed_weights
    # the compute takes the laid-out weights where the weight was
    assert split.sources == ((False, 0), *((True, j) for j in range(len(row.packed_weights))))
    lib = tvm.runtime.load_module(str(tmp_path / "ops.so"))
    data, weight = (tvm.runtime.tensor(x) for x in inputs)
    packed = [tvm.runtime.tensor(np.empty(shape, dtype)) for shape, dtype in row.packed_weights]
    lib[row.prepack](weight, *packed)
    out = tvm.runtime.tensor(np.full(workload.output_shape, np.nan, "float32"))
    lib[row.function](data, *packed, out)
    assert workload.mismatch(out.numpy(), workload.expected(inputs)) is None


def _blocks(func) -> list:
    import tvm

    sch = tvm.s_tir.Schedule(func)
    return [sch.get(b) for b in sch.get_child_blocks(sch.get_sblock("root"))]


@pytest.mark.parametrize("spec", [
    "conv1d:N=1,C=8,L=20,K=16,R=3,pad=1,stride=2",
    "conv2d:N=1,C=8,H=9,W=9,K=16,R=3,S=3,pad=2,dilation=2,groups=2",
    "conv2d:N=1,C=8,H=9,W=9,K=16,R=3,S=3,pad=1,stride=2",
    "depthwise_conv2d:N=1,C=16,H=9,W=9,R=3,S=3,pad=1",
    "conv3d:N=1,C=8,D=4,H=6,W=6,K=8,T=3,R=3,S=3,pad=1",
    "conv2d_transpose:N=1,C=8,H=5,W=5,K=16,R=4,S=4,stride=2,pad=1",
    "gemm:M=24,N=40,K=32",
])
def test_torch_prepacked_is_correct_on_every_weighted_operator(ctx, spec):
    pytest.importorskip("torch")
    workload = load_workload(f"{spec},dtype=float32")
    contender = CONTENDERS["torch-prepacked"]()
    assert contender.skip_reason(workload, ctx) is None
    inputs = workload.random_inputs(seed=0)
    program = contender.prepare(workload, inputs, ctx).program
    assert program.mismatch(workload, workload.expected(inputs)) is None


@pytest.mark.parametrize("spec, why", [
    ("gemm:M=8,N=8,K=8,dtype=int8", "float32 only"),
    ("batch_gemm:B=2,M=8,N=8,K=8", "no weight PyTorch prepacks"),
])
def test_torch_prepacked_says_where_it_has_no_path(ctx, spec, why):
    pytest.importorskip("torch")
    assert why in CONTENDERS["torch-prepacked"]().skip_reason(load_workload(spec), ctx)
