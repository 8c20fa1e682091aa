"""mean, variance and scan: reductions as products with ones, mapped onto the intrinsics,
tuned and checked like every operator, beside numpy and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from gta_core.api import load_workload
from gta_core.bench import CONTENDERS
from gta_core.mapping.candidates import mapping_candidates
from gta_core.measure.settings import MeasureSettings
from gta_core.plugins import default_registry
from gta_core.tuning import tune
from gta_core.workloads import SpecError

FAST = MeasureSettings(number=1, repeat=2, min_repeat_ms=0)
CASES = [  # (spec, dtypes it takes)
    ("mean:M=6,K=40", ("float32", "float16", "bfloat16")),
    ("variance:M=5,K=33", ("float32", "float16", "bfloat16")),
    ("scan:M=4,K=19", ("float32", "float16", "bfloat16", "int8")),
]
ALL = [(f"{spec},dtype={dtype}") for spec, dtypes in CASES for dtype in dtypes]


def test_cases_cover_every_reduction():
    from gta_core.workloads.reduction import Mean, Scan, Variance

    assert {spec.partition(":")[0] for spec, _ in CASES} == {
        op.name for op in (Mean(), Variance(), Scan())}


def built_by_tvm(workload, inputs: list[np.ndarray]) -> np.ndarray:
    """The operator's TE as TVM builds it with no schedule."""
    import tvm

    ex = tvm.compile(workload.prim_func(), target="llvm")
    out = tvm.runtime.tensor(np.full(workload.output_shape, 7,
                                     dtype=workload.reference(inputs).dtype))
    ex(*[tvm.runtime.tensor(x) for x in inputs], out)
    return out.numpy()


@pytest.mark.parametrize("spec", ALL)
def test_the_product_with_ones_computes_the_reduction(spec):
    workload = load_workload(spec)
    inputs = workload.random_inputs(seed=4)
    expected = workload.expected(inputs)
    assert workload.mismatch(built_by_tvm(workload, inputs), expected) is None
    # The check is not blind: one output off by a term of the sum is caught.
    wrong = expected.value.astype(np.float64).copy()
    wrong.flat[1] += float(np.abs(inputs[0]).max()) / 2
    assert workload.mismatch(wrong.astype(expected.value.dtype), expected) is not None


def test_references_match_naive_loops():
    x = load_workload("mean:M=3,K=5").random_inputs(seed=1)[0].astype(np.float64)
    rows = [list(r) for r in x]
    means = [sum(r) / 5 for r in rows]
    np.testing.assert_allclose(load_workload("mean:M=3,K=5").reference([x]), means, rtol=1e-6)
    variances = [sum((v - m) ** 2 for v in r) / 5 for r, m in zip(rows, means, strict=True)]
    np.testing.assert_allclose(load_workload("variance:M=3,K=5").reference([x]), variances,
                               rtol=1e-5)
    u8 = np.array([[255, 1, 0, 255], [3, 2, 1, 0]], dtype=np.uint8)
    got = load_workload("scan:M=2,K=4,dtype=int8").reference([u8])
    np.testing.assert_array_equal(got, [[255, 256, 256, 511], [3, 5, 6, 6]])
    assert got.dtype == np.int32


def test_sizes_and_work():
    assert load_workload("mean:M=3,K=5").output_shape == (3,)
    assert load_workload("variance:M=3,K=5").flops == 2 * 2 * 3 * 5  # both moments
    scan = load_workload("scan:M=3,K=5,dtype=int8")
    assert scan.output_shape == (3, 5) and scan.flops == 2 * 3 * 5  # a sequential scan's
    assert [i.name for i in scan.operator.inputs(scan.params)] == ["x"]  # the ones are internal


@pytest.mark.parametrize("spec", ["mean:M=4,K=8,dtype=int8", "variance:M=4,K=8,dtype=int8_s8s8"])
def test_a_mean_of_integers_is_refused_in_one_line(spec):
    with pytest.raises(SpecError) as raised:
        load_workload(spec)
    message = str(raised.value)
    assert "\n" not in message and "float" in message


@pytest.mark.parametrize("spec, intrinsics", [
    ("mean:M=64,K=256", {"fma", "fma16-elementwise"}),
    ("variance:M=64,K=256", {"fma", "fma16-elementwise"}),
    ("scan:M=64,K=64,dtype=int8", {"vnni", "vnni-act-lanes"}),
])
def test_each_maps_onto_the_intrinsics(spec, intrinsics):
    kept = {c.intrinsic for c in mapping_candidates(load_workload(spec), "avx512",
                                                    default_registry()) if c.status == "kept"}
    assert kept & intrinsics, kept


@pytest.mark.parametrize("spec", ["variance:M=32,K=128", "scan:M=32,K=64,dtype=int8"])
def test_tuned_on_an_intrinsic_and_checked(tmp_path, spec):
    task = tune([spec], "avx512", 3, tmp_path, measure=FAST).tasks[0]
    assert task.correct is True and task.trials == 3 and task.gflops > 0
    assert task.mapping and not task.mapping.startswith("untensorized")


@pytest.mark.parametrize("contender", ["numpy", "torch"])
@pytest.mark.parametrize("spec", ["mean:M=8,K=40", "variance:M=8,K=40", "scan:M=4,K=24",
                                  "scan:M=4,K=24,dtype=int8"])
def test_library_contenders_write_their_preallocated_output(ctx, contender, spec):
    if contender == "torch":
        pytest.importorskip("torch")
    workload = load_workload(spec)
    inputs = workload.random_inputs(seed=0)
    program = CONTENDERS[contender]().prepare(workload, inputs, ctx).program
    expected = workload.expected(inputs)
    assert workload.mismatch(program.out, expected) is not None  # garbage until it runs
    program.run()
    assert workload.mismatch(program.output(), expected) is None
