"""The operator library: TE definitions agree with numpy references, references
agree with naive loops, and MAC / FLOP counts are those of the true operator."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest

from gta_core.workloads import BUILTIN_OPERATORS, Workload, parse_workload

OPERATORS = {op.name: op for op in BUILTIN_OPERATORS}
DTYPES = ("float32", "float16", "bfloat16", "int8")

# Small shapes covering every option an operator has.
CASES = [
    "gemm:M=8,N=12,K=32",
    "batch_gemm:B=2,M=4,N=8,K=16",
    "gemv:M=8,K=24",
    "conv1d:N=1,C=4,L=10,K=6,R=3",
    "conv1d:N=2,C=3,L=11,K=4,R=3,stride=2,pad=1,dilation=2",
    "conv2d:N=1,C=4,H=6,W=7,K=5,R=3,S=3",
    "conv2d:N=1,C=3,H=9,W=8,K=4,R=3,S=2,stride=2,pad=1,dilation=2",
    "conv2d:N=2,C=4,H=6,W=6,K=6,R=3,S=3,pad=1,groups=2",
    "depthwise_conv2d:N=1,C=4,H=7,W=6,R=3,S=3",
    "depthwise_conv2d:N=1,C=3,H=9,W=8,R=3,S=2,stride=2,pad=1,dilation=2",
    "conv3d:N=1,C=2,D=4,H=5,W=4,K=3,T=2,R=3,S=2",
    "conv3d:N=1,C=3,D=5,H=6,W=5,K=4,T=3,R=3,S=2,stride=2,pad=1",
    "conv2d_transpose:N=1,C=3,H=4,W=5,K=4,R=3,S=3",
    "conv2d_transpose:N=1,C=3,H=5,W=4,K=4,R=3,S=4,stride=2,pad=1",
    "conv2d_transpose:N=1,C=2,H=3,W=3,K=2,R=1,S=1",
    "conv2d_transpose:N=1,C=2,H=5,W=4,K=3,R=3,S=3,pad=2",
]


def workload(spec: str) -> Workload:
    return parse_workload(spec, OPERATORS)


def run_llvm(w: Workload, inputs: list[np.ndarray]) -> np.ndarray:
    import tvm

    ex = tvm.compile(w.prim_func(), target="llvm")
    dev = tvm.cpu()
    out_dtype = w.reference(inputs).dtype
    out = tvm.runtime.tensor(np.zeros(w.output_shape, dtype=out_dtype), dev)
    ex(*[tvm.runtime.tensor(a, dev) for a in inputs], out)
    return out.numpy()


def test_cases_cover_every_builtin_operator() -> None:
    reductions = {"mean", "variance", "scan"}  # one input each: tests/test_reductions.py
    assert {spec.partition(":")[0] for spec in CASES} | reductions == set(OPERATORS)
    assert len(OPERATORS) == len(BUILTIN_OPERATORS)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", CASES)
def test_te_matches_reference(spec: str, dtype: str) -> None:
    w = workload(f"{spec},dtype={dtype}")
    inputs = w.random_inputs(seed=1)
    expected = w.expected(inputs)
    actual = run_llvm(w, inputs)
    assert actual.dtype == expected.value.dtype
    assert w.mismatch(actual, expected) is None


def test_float16_gemm_with_float16_output() -> None:
    w = workload("gemm:M=8,N=12,K=64,dtype=float16,out_dtype=float16")
    inputs = w.random_inputs(seed=2)
    expected = w.expected(inputs)
    assert expected.value.dtype == np.float16
    actual = run_llvm(w, inputs)
    assert actual.dtype == np.float16
    assert w.mismatch(actual, expected) is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", CASES)
def test_te_signature_matches_inputs(spec: str, dtype: str) -> None:
    w = workload(f"{spec},dtype={dtype}")
    tensors = w.te()
    infos = w.operator.inputs(w.params)
    assert len(tensors) == len(infos) + 1
    assert [i.role for i in infos] == ["data", "weight"]
    for tensor, info in zip(tensors, infos, strict=False):
        assert tuple(int(s) for s in tensor.shape) == info.shape
        assert tensor.dtype == info.dtype
    out = tensors[-1]
    assert w.main_block in stage_names(w)  # the output's stage, or one it reads
    assert tuple(int(s) for s in out.shape) == w.output_shape
    assert out.dtype == w.params.acc_dtype
    assert w.random_inputs()[0].shape == infos[0].shape


def stage_names(w: Workload) -> set[str]:
    """Names of every compute stage reachable from the output."""
    names, todo = set(), [w.te()[-1]]
    while todo:
        tensor = todo.pop()
        names.add(tensor.op.name)
        todo.extend(getattr(tensor.op, "input_tensors", []))
    return names


def test_pad_stage_only_when_padding() -> None:
    assert "pad" in stage_names(workload("conv2d:N=1,C=2,H=5,W=5,K=2,R=3,S=3,pad=1"))
    assert "pad" not in stage_names(workload("conv2d:N=1,C=2,H=5,W=5,K=2,R=3,S=3"))
    assert "pad" in stage_names(workload("conv3d:N=1,C=2,D=3,H=3,W=3,K=2,T=3,R=3,S=3,pad=1"))
    transpose = workload("conv2d_transpose:N=1,C=2,H=3,W=3,K=2,R=3,S=3,pad=1")
    assert "pad" in stage_names(transpose)


@pytest.mark.parametrize("spec", [
    "conv2d_transpose:N=1,C=128,H=14,W=14,K=64,R=4,S=4,stride=2,pad=1",
    "conv2d_transpose:N=1,C=8,H=9,W=7,K=4,R=3,S=5,stride=3,pad=1",
])
def test_a_strided_transposed_convolution_spends_no_multiply_adds_on_zeros(spec) -> None:
    """One dense convolution per output phase: the main block iterates over the real
    multiply-adds and the few rows each phase computes past the output's ends (a
    convolution over the zero-stuffed input would iterate stride^2 times as many)."""
    w = workload(spec)
    main = w.te()[-1].op.input_tensors[0]
    assert main.op.name == "conv2d_transpose"
    iterations = math.prod(int(a.dom.extent) for a in (*main.op.axis, *main.op.reduce_axis))
    assert iterations <= 1.5 * w.operator.macs(w.params)


def test_dtype_roles() -> None:
    w = workload("conv2d:N=1,C=2,H=5,W=5,K=2,R=3,S=3,dtype=int8")
    data, weight = w.random_inputs()
    assert (data.dtype, weight.dtype) == (np.uint8, np.int8)
    assert w.reference([data, weight]).dtype == np.int32
    w = workload("gemm:M=2,N=2,K=2,dtype=bfloat16")
    assert w.reference(w.random_inputs()).dtype == np.float32


# Naive implementations: plain loops over every output element and tap, padding
# by bounds checks instead of np.pad, so they share no code with the references.


def naive_conv(x, w, stride: int, pad: int, dilation: int, groups: int) -> np.ndarray:
    """N-d convolution; x [N, C, *spatial], w [K, C/groups, *kernel]."""
    n_, k_, cg = x.shape[0], *w.shape[:2]
    spatial, kernel = x.shape[2:], w.shape[2:]
    out_sp = [
        (e + 2 * pad - dilation * (k - 1) - 1) // stride + 1
        for e, k in zip(spatial, kernel, strict=True)
    ]
    out = np.zeros((n_, k_, *out_sp), dtype=np.float64)
    kg = k_ // groups
    for n, k in itertools.product(range(n_), range(k_)):
        for o in itertools.product(*map(range, out_sp)):
            acc = 0.0
            for c in range(cg):
                for t in itertools.product(*map(range, kernel)):
                    i = [oi * stride + ti * dilation - pad for oi, ti in zip(o, t, strict=True)]
                    if all(0 <= ii < e for ii, e in zip(i, spatial, strict=True)):
                        acc += float(x[(n, k // kg * cg + c, *i)]) * float(w[(k, c, *t)])
            out[(n, k, *o)] = acc
    return out


def naive_conv2d_transpose(x, w, stride: int, pad: int) -> np.ndarray:
    """Scatter form: each input pixel adds x * w into the output window it covers."""
    n_, c_, h_, w_ = x.shape
    _, k_, r_, s_ = w.shape
    ho, wo = (h_ - 1) * stride - 2 * pad + r_, (w_ - 1) * stride - 2 * pad + s_
    out = np.zeros((n_, k_, ho, wo), dtype=np.float64)
    for n, c, h, q in itertools.product(range(n_), range(c_), range(h_), range(w_)):
        for k, r, s in itertools.product(range(k_), range(r_), range(s_)):
            oh, ow = h * stride + r - pad, q * stride + s - pad
            if 0 <= oh < ho and 0 <= ow < wo:
                out[n, k, oh, ow] += float(x[n, c, h, q]) * float(w[c, k, r, s])
    return out


REFERENCE_CASES = [
    ("conv1d:N=2,C=3,L=9,K=4,R=3,stride=2,pad=2,dilation=2", "conv"),
    ("conv1d:N=1,C=2,L=5,K=3,R=5,pad=1", "conv"),
    ("conv2d:N=1,C=4,H=7,W=6,K=6,R=3,S=2,stride=2,pad=1,dilation=2,groups=2", "conv"),
    ("conv2d:N=2,C=6,H=5,W=5,K=3,R=2,S=3,stride=1,pad=2,groups=3", "conv"),
    ("conv2d:N=1,C=3,H=6,W=5,K=2,R=3,S=3,stride=3", "conv"),
    ("depthwise_conv2d:N=1,C=3,H=7,W=6,R=3,S=2,stride=2,pad=1,dilation=2", "depthwise"),
    ("depthwise_conv2d:N=2,C=2,H=5,W=5,R=3,S=3,pad=1", "depthwise"),
    ("conv3d:N=1,C=2,D=4,H=5,W=4,K=3,T=2,R=3,S=2,stride=2,pad=1", "conv"),
    ("conv2d_transpose:N=1,C=2,H=3,W=4,K=3,R=3,S=2,stride=2,pad=1", "transpose"),
    ("conv2d_transpose:N=2,C=3,H=4,W=3,K=2,R=4,S=3,stride=3", "transpose"),
    ("conv2d_transpose:N=1,C=2,H=3,W=3,K=2,R=3,S=3,pad=2", "transpose"),
]


@pytest.mark.parametrize("dtype", ("float32", "int8"))
@pytest.mark.parametrize("spec, kind", REFERENCE_CASES)
def test_reference_matches_naive_loops(spec: str, kind: str, dtype: str) -> None:
    w = workload(f"{spec},dtype={dtype}")
    p = w.params
    x, wt = w.random_inputs(seed=3)
    if kind == "transpose":
        naive = naive_conv2d_transpose(x, wt, p.stride, p.pad)
    elif kind == "depthwise":
        # Depthwise is a grouped convolution with one channel per group.
        naive = naive_conv(x, wt[:, None], p.stride, p.pad, p.dilation, groups=p.C)
    else:
        dilation, groups = getattr(p, "dilation", 1), getattr(p, "groups", 1)
        naive = naive_conv(x, wt, p.stride, p.pad, dilation, groups)
    got = w.reference([x, wt])
    assert got.shape == naive.shape == w.output_shape
    if dtype == "int8":
        np.testing.assert_array_equal(got, naive.astype(np.int64))
    else:
        np.testing.assert_allclose(got, naive, rtol=1e-5, atol=1e-5)


def test_matmul_references_match_naive_loops() -> None:
    w = workload("gemv:M=3,K=5,dtype=int8")
    x, a = w.random_inputs()
    want = [sum(int(a[m, k]) * int(x[k]) for k in range(5)) for m in range(3)]
    np.testing.assert_array_equal(w.reference([x, a]), want)

    w = workload("batch_gemm:B=2,M=3,N=4,K=5,dtype=int8")
    a, b = w.random_inputs()
    want = [
        [
            [sum(int(a[i, m, k]) * int(b[i, k, n]) for k in range(5)) for n in range(4)]
            for m in range(3)
        ]
        for i in range(2)
    ]
    np.testing.assert_array_equal(w.reference([a, b]), want)


def test_int8_reference_is_exact_at_extremes() -> None:
    # Worst case u8 255 x s8 -128 must not wrap: the reference sums in int64.
    w = workload("gemm:M=1,N=1,K=512,dtype=int8")
    a = np.full((1, 512), 255, dtype=np.uint8)
    b = np.full((512, 1), -128, dtype=np.int8)
    assert int(w.reference([a, b])[0, 0]) == 255 * -128 * 512


def test_reference_is_vectorised() -> None:
    w = workload("conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,pad=1")
    inputs = w.random_inputs()
    start = time.perf_counter()
    out = w.reference(inputs)
    # Loops over output elements would take minutes; the bound is loose for slow machines.
    assert time.perf_counter() - start < 5.0
    assert out.shape == (1, 64, 56, 56)


def test_flops_and_macs() -> None:
    assert workload("gemm:M=3,N=5,K=7").flops == 2 * 3 * 5 * 7
    assert workload("batch_gemm:B=2,M=3,N=5,K=7").flops == 2 * 2 * 3 * 5 * 7
    assert workload("gemv:M=3,K=7").flops == 2 * 3 * 7
    # 8x8 output (pad 1 keeps the size), 6 filters of 4 channels x 3x3.
    assert workload("conv2d:N=1,C=4,H=8,W=8,K=6,R=3,S=3,pad=1").flops == 2 * 6 * 8 * 8 * 4 * 9
    # groups=2 halves the channels each filter sees; stride 2 gives a 4x4 output.
    grouped = workload("conv2d:N=2,C=4,H=8,W=8,K=6,R=3,S=3,stride=2,pad=1,groups=2")
    assert grouped.output_shape == (2, 6, 4, 4)
    assert grouped.flops == 2 * 2 * 6 * 4 * 4 * 2 * 9
    depthwise = workload("depthwise_conv2d:N=1,C=4,H=8,W=8,R=3,S=3")
    assert depthwise.flops == 2 * 4 * 6 * 6 * 9
    # Transposed convolution counts the non-zero work: every input pixel x every tap.
    transpose = workload("conv2d_transpose:N=1,C=3,H=4,W=4,K=2,R=3,S=3,stride=2,pad=1")
    assert transpose.output_shape == (1, 2, 7, 7)
    assert transpose.flops == 2 * 3 * 2 * 4 * 4 * 9


def test_output_shapes() -> None:
    conv1d = workload("conv1d:N=1,C=1,L=10,K=2,R=3,stride=2,pad=1,dilation=2")
    assert conv1d.output_shape == (1, 2, 4)
    conv3d = workload("conv3d:N=1,C=1,D=5,H=6,W=7,K=2,T=3,R=3,S=3,stride=2")
    assert conv3d.output_shape == (1, 2, 2, 2, 3)


def test_mismatch_reports_wrong_output() -> None:
    w = workload("conv2d:N=1,C=2,H=5,W=5,K=3,R=3,S=3,pad=1")
    inputs = w.random_inputs()
    expected = w.expected(inputs)
    assert w.mismatch(expected.value.copy(), expected) is None
    wrong = expected.value.copy()
    wrong[0, 1, 2, 3] += 1.0
    message = w.mismatch(wrong, expected)
    assert message is not None and "1 of 75" in message and "(0, 1, 2, 3)" in message
    assert w.mismatch(expected.value[:, :2], expected) is not None

    w = workload("gemm:M=2,N=2,K=4,dtype=int8")
    expected = w.expected(w.random_inputs())
    off_by_one = expected.value + np.int32(1)
    assert w.mismatch(off_by_one, expected) is not None
