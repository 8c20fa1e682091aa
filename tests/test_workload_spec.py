"""Workload spec text: what parses, its canonical form, and the one-line errors."""

from __future__ import annotations

import pytest

from gta_core.workloads import BUILTIN_OPERATORS, SpecError, Workload, parse_workload

OPERATORS = {op.name: op for op in BUILTIN_OPERATORS}

GOOD = [
    "gemm:M=64,N=32,K=16",
    "batch_gemm:B=4,M=8,N=8,K=32,dtype=int8",
    "gemv:M=128,K=64,dtype=bfloat16",
    "conv1d:N=1,C=16,L=32,K=8,R=3,stride=2,pad=1,dilation=2",
    "conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,pad=1",
    "conv2d:N=2,C=8,H=14,W=14,K=16,R=3,S=3,stride=2,pad=2,dilation=2,groups=4,dtype=float16",
    "depthwise_conv2d:N=1,C=32,H=28,W=28,R=3,S=3,stride=2,pad=1",
    "conv3d:N=1,C=4,D=8,H=8,W=8,K=8,T=3,R=3,S=3,pad=1",
    "conv2d_transpose:N=1,C=16,H=8,W=8,K=8,R=4,S=4,stride=2,pad=1",
    "gemm:M=8,N=8,K=8,dtype=float16,out_dtype=float16",
]


def parse(text: str) -> Workload:
    return parse_workload(text, OPERATORS)


def test_defaults_are_filled() -> None:
    w = parse("conv2d:N=1,C=3,H=8,W=8,K=4,R=3,S=3")
    p = w.params
    assert (p.stride, p.pad, p.dilation, p.groups) == (1, 0, 1, 1)
    assert p.dtype == "float32" and p.out_dtype is None
    assert w.spec == (
        "conv2d:N=1,C=3,H=8,W=8,K=4,R=3,S=3,stride=1,pad=0,dilation=1,groups=1,dtype=float32"
    )
    assert str(parse("gemm:K=4,N=3,M=2")) == "gemm:M=2,N=3,K=4,dtype=float32"


def test_dtype_defaults_to_role_dtypes() -> None:
    p = parse("gemm:M=2,N=2,K=2,dtype=int8").params
    assert (p.data_dtype, p.weight_dtype, p.acc_dtype) == ("uint8", "int8", "int32")
    p = parse("gemm:M=2,N=2,K=2,dtype=float16,out_dtype=float16").params
    assert (p.data_dtype, p.acc_dtype) == ("float16", "float16")


@pytest.mark.parametrize("text", GOOD)
def test_canonical_spec_round_trips(text: str) -> None:
    w = parse(text)
    again = parse(w.spec)
    assert again.params == w.params
    assert again.operator is w.operator
    assert again.spec == w.spec


def test_whitespace_is_tolerated() -> None:
    w = parse("  conv2d : N = 1 , C=4,\tH=8 ,W=8, K=4,R=3,S=3 , pad= 1 ,  ")
    assert w.operator.name == "conv2d"
    assert (w.params.C, w.params.H, w.params.pad) == (4, 8, 1)
    assert w == parse("conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=3,pad=1")


CONV2D = "conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=3"

# (spec, substrings the one-line message must contain)
BAD = [
    ("", ["empty workload spec", "gemm", "conv2d"]),
    ("   ", ["empty workload spec"]),
    ("matmul:M=1,N=1,K=1", ["unknown operator 'matmul'", "gemm"]),
    ("gemm:M=1,N=1,K=1,X=3", ["unknown key 'X'", "M, N, K"]),
    ("gemm:M=1,N=1", ["missing key 'K'"]),
    ("gemm", ["missing key 'M'"]),
    ("gemm:M=abc,N=1,K=1", ["M='abc'", "integer"]),
    ("gemm:M=1.5,N=1,K=1", ["M='1.5'", "integer"]),
    ("gemm:M=1.0,N=1,K=1", ["M='1.0'", "integer"]),
    ("gemm:M=0,N=1,K=1", ["M='0'", "positive integer"]),
    ("gemm:M=1,N=-4,K=1", ["N='-4'", "positive integer"]),
    ("gemm:M=1,N=1,K=1,dtype=int4", ["dtype='int4'", "float32", "int8"]),
    ("gemm:M=1,N=1,K=1,dtype=int8,out_dtype=float16", ["out_dtype=float16", "int32"]),
    (f"{CONV2D},stride=0", ["stride='0'", "positive integer"]),
    (f"{CONV2D},pad=-1", ["pad='-1'", "at least 0"]),
    (f"{CONV2D},dilation=0", ["dilation='0'", "positive integer"]),
    ("conv2d:N=1,C=1,H=4,W=8,K=1,R=5,S=1", ["R=5", "dilated extent 5", "H+2*pad=4"]),
    ("conv2d:N=1,C=1,H=8,W=6,K=1,R=1,S=3,dilation=3", ["S=3", "dilated extent 7", "W+2*pad=6"]),
    ("conv1d:N=1,C=1,L=3,K=1,R=3,dilation=2", ["R=3", "dilated extent 5", "L+2*pad=3"]),
    ("depthwise_conv2d:N=1,C=2,H=2,W=8,R=5,S=1,pad=1", ["R=5", "H+2*pad=4"]),
    ("conv3d:N=1,C=1,D=2,H=8,W=8,K=1,T=3,R=1,S=1", ["T=3", "D+2*pad=2"]),
    ("conv2d:N=1,C=6,H=4,W=4,K=4,R=1,S=1,groups=4", ["C=6", "groups=4"]),
    ("conv2d:N=1,C=4,H=4,W=4,K=6,R=1,S=1,groups=4", ["K=6", "groups=4"]),
    ("conv2d_transpose:N=1,C=1,H=4,W=4,K=1,R=3,S=3,pad=3", ["pad=3", "R-1=2"]),
    ("conv2d_transpose:N=1,C=1,H=4,W=4,K=1,R=4,S=2,pad=2", ["pad=2", "S-1=1"]),
    ("conv2d_transpose:N=1,C=1,H=1,W=4,K=1,R=3,S=3,pad=2", ["(H-1)*stride-2*pad+R=-1"]),
    ("gemm:M=1,M=2,N=1,K=1", ["'M' given twice"]),
    ("gemm:M=1,N,K=1", ["'N' is not key=value"]),
    ("gemm:M=,N=1,K=1", ["'M=' is not key=value"]),
]


@pytest.mark.parametrize("text, expected", BAD)
def test_bad_spec_raises_one_line_error(text: str, expected: list[str]) -> None:
    with pytest.raises(SpecError) as info:
        parse(text)
    message = str(info.value)
    assert message and "\n" not in message
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_operator_name_prefixes_errors() -> None:
    with pytest.raises(SpecError, match=r"^conv2d: kernel R=9"):
        parse("conv2d:N=1,C=1,H=4,W=4,K=1,R=9,S=1")
