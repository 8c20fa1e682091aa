"""The ``onnxruntime``, ``onnxruntime-qlinear`` and ``onnxruntime-prepacked`` contenders:
one-node ONNX models run through IOBinding, checked against the reference (the requantising
ones against its requantisation)."""

from __future__ import annotations

import numpy as np
import pytest

from gta_core.api import load_workload
from gta_core.bench import CONTENDERS, BenchContext, Suite, run_bench
from gta_core.bench.onnx_runtime import Requantisation, RequantisedProgram
from gta_core.host import cpu_flags
from gta_core.plugins import default_registry

pytest.importorskip("onnxruntime")

SPECS = [
    "gemm:M=16,N=32,K=24", "batch_gemm:B=2,M=8,N=16,K=8", "gemv:M=16,K=32",
    "conv1d:N=1,C=4,L=16,K=8,R=3,pad=1,dilation=2",
    "conv2d:N=1,C=4,H=8,W=8,K=8,R=3,S=3,stride=2,pad=1,groups=2",
    "conv3d:N=1,C=4,D=4,H=6,W=6,K=8,T=3,R=3,S=3,pad=1",
    "depthwise_conv2d:N=1,C=8,H=8,W=8,R=3,S=3,pad=2,dilation=2",
    "conv2d_transpose:N=1,C=4,H=5,W=5,K=8,R=4,S=4,stride=2,pad=1",
]


def _int8_exact_here() -> None:
    """Skips where onnxruntime's u8 x s8 kernels are not exact: on a CPU without VNNI, MLAS
    adds pairs of products in saturating 16 bits (vpmaddubsw; 2 x 255 x 127 > 32767), which
    its docs answer with ``reduce_range``. Its int8 results are then rightly reported wrong."""
    if not {"avx512_vnni", "avx_vnni", "amx_int8"} & cpu_flags():
        pytest.skip("this CPU has no VNNI: onnxruntime's u8 x s8 kernels saturate pairs of "
                    "products in 16 bits (vpmaddubsw), so they are not exact here")


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    registry = default_registry()
    return BenchContext(target=registry.target("avx512"), trials=1,
                        out=tmp_path_factory.mktemp("bench"), registry=registry)


def _checked(name, spec, ctx):
    """``(mismatch, program)`` of contender ``name`` on ``spec``, or ``(skip reason, None)``."""
    workload = load_workload(spec)
    contender = CONTENDERS[name]()
    reason = contender.skip_reason(workload, ctx)
    if reason is not None:
        return reason, None
    inputs = workload.random_inputs(seed=0)
    program = contender.prepare(workload, inputs, ctx).program
    return program.mismatch(workload, workload.expected(inputs)), program


@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("spec", SPECS)
def test_onnxruntime_computes_exactly_the_reference(ctx, spec, dtype):
    if dtype == "int8" and not spec.startswith(("depthwise", "conv2d_transpose")):
        _int8_exact_here()
    mismatch, program = _checked("onnxruntime", f"{spec},dtype={dtype}", ctx)
    if spec.startswith("conv2d_transpose") and dtype == "int8":
        assert program is None and mismatch.startswith("n/a: ONNX has no integer transposed")
        return
    assert mismatch is None
    assert program.out.dtype == (np.int32 if dtype == "int8" else np.float32)


@pytest.mark.parametrize("spec", [s for s in SPECS if not s.startswith("conv2d_transpose")])
def test_onnxruntime_qlinear_matches_the_requantised_reference(ctx, spec):
    if not spec.startswith("depthwise"):
        _int8_exact_here()
    mismatch, program = _checked("onnxruntime-qlinear", f"{spec},dtype=int8", ctx)
    assert mismatch is None
    assert isinstance(program, RequantisedProgram) and program.out.dtype == np.uint8
    assert len(np.unique(program.out)) > 8  # the scale spreads the outputs, not all saturated


def test_onnxruntime_qlinear_is_int8_only_and_says_it_computes_something_else(ctx):
    mismatch, program = _checked("onnxruntime-qlinear", "gemm:M=8,N=8,K=8,dtype=float32", ctx)
    assert program is None and mismatch.startswith("n/a: int8 only")
    method = CONTENDERS["onnxruntime-qlinear"].method
    assert "extra work" in method and "different output" in method


def test_the_bound_output_starts_as_garbage_and_the_session_writes_it(ctx):
    workload = load_workload("conv2d:N=1,C=4,H=6,W=6,K=8,R=3,S=3,pad=1,dtype=float32")
    inputs = workload.random_inputs(seed=0)
    program = CONTENDERS["onnxruntime"]().prepare(workload, inputs, ctx).program
    assert np.isnan(program.out).all()  # not run yet
    program.run()  # the timed call: nothing returned, the bound output written
    assert workload.mismatch(program.out, workload.expected(inputs)) is None


def test_requantisation_rounds_half_to_even_then_saturates():
    requantise = Requantisation(scale=2.0, zero_point=10)
    acc = np.array([1, 3, 5, -7, -100, 1000], dtype=np.int32)  # /2: .5 1.5 2.5 -3.5 -50 500
    assert requantise.apply(acc).tolist() == [10, 12, 12, 6, 0, 255]


def test_requantisation_covering_a_range_maps_its_ends_to_0_and_255():
    acc = np.array([-3000, 0, 1000, 7200], dtype=np.int32)
    y = Requantisation.covering(acc).apply(acc)
    assert y[0] == 0 and y[-1] == 255 and 0 < y[1] < y[2] < 255


def test_a_requantised_output_off_by_two_is_wrong():
    workload = load_workload("gemm:M=4,N=4,K=8,dtype=int8")
    inputs = workload.random_inputs(seed=0)
    expected = workload.expected(inputs)
    requantise = Requantisation.covering(expected.value)
    out = np.zeros(workload.output_shape, dtype=np.uint8)

    def off_by(units):
        def run():
            out[...] = np.clip(requantise.apply(expected.value).astype(np.int64) + units,
                               0, 255)
        return RequantisedProgram(run, out, requantise).mismatch(workload, expected)

    assert off_by(0) is None
    assert off_by(1) is None  # the library rounds in float32: 1 unit is allowed
    assert "differ from numpy's requantisation of the reference by more than 1" in off_by(-2)


def test_both_forms_are_timed_in_a_bench_on_a_tiny_gemm_and_conv2d(tmp_path):
    specs = [f"{s},dtype={d}" for s in ("gemm:M=16,N=16,K=16",
                                         "conv2d:N=1,C=8,H=6,W=6,K=8,R=3,S=3,pad=1")
             for d in ("float32", "int8")]
    suite = Suite(name="t", description="tiny gemm and conv2d", workloads=tuple(specs),
                  trials=1)
    report = run_bench(suite, tmp_path, contenders=[CONTENDERS["onnxruntime"](),
                                                    CONTENDERS["onnxruntime-qlinear"]()],
                       peak=False, repeat=1)
    for result in report.workloads:
        exact, qlinear = (result.contenders[n] for n in ("onnxruntime", "onnxruntime-qlinear"))
        assert exact.status == "timed" and exact.correct, result.workload
        if result.dtype == "int8":
            assert qlinear.status == "timed" and qlinear.correct, result.workload
            assert "computes a different output" in qlinear.note
        else:
            assert qlinear.status == "skipped"


def test_an_isolated_qlinear_program_is_checked_in_its_own_process(tmp_path):
    _int8_exact_here()
    from gta_core.bench.isolated import prepare_isolated

    registry = default_registry()
    ctx = BenchContext(target=registry.target("avx512"), trials=1, out=tmp_path,
                       registry=registry)
    workload = load_workload("gemm:M=8,N=16,K=8,dtype=int8")
    prepared = prepare_isolated("onnxruntime-qlinear", workload.spec, ctx)
    try:
        expected = workload.expected(workload.random_inputs(seed=0))
        assert prepared.program.mismatch(workload, expected) is None  # the child's own check
        assert workload.mismatch(prepared.program.output(), expected) is not None  # u8, not s32
    finally:
        prepared.program.close()


@pytest.mark.parametrize("spec", ["gemm:M=16,N=32,K=24",
                                  "conv2d:N=1,C=4,H=8,W=8,K=8,R=3,S=3,pad=1"])
@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_onnxruntime_prepacked_is_its_strongest_form_with_constant_weights(ctx, spec, dtype):
    if dtype == "int8":
        _int8_exact_here()
    mismatch, program = _checked("onnxruntime-prepacked", f"{spec},dtype={dtype}", ctx)
    assert mismatch is None
    assert set(program.run.values) == {"data", "out"}  # the weights are the model's constants
    assert isinstance(program, RequantisedProgram) is (dtype == "int8")


def test_onnxruntime_binds_the_weights_as_an_input_like_every_other_contender(ctx):
    """Without prepacking, ORT transforms its weights inside each timed call, as every TVM
    contender packs its weights inside its own: the same treatment for all."""
    for name in ("onnxruntime", "onnxruntime-qlinear"):
        _, program = _checked(name, "conv2d:N=1,C=4,H=8,W=8,K=8,R=3,S=3,pad=1,dtype=int8", ctx)
        assert set(program.run.values) == {"data", "weight", "out"}, name
        assert [i.name for i in program.run.session.get_inputs()] == ["data", "weight"]
