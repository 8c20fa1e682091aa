"""int8 workloads in three signednesses: u8 x s8 (``int8``, VNNI's), s8 x s8 and u8 x u8; the
operand dtypes come from the workload, and an intrinsic maps only what it computes."""

from __future__ import annotations

import numpy as np
import pytest

from gta_core.api import load_workload, mappings
from gta_core.tuning import TuneError, tune


@pytest.mark.parametrize("dtype, data, weight", [
    ("int8", "uint8", "int8"), ("int8_s8s8", "int8", "int8"), ("int8_u8u8", "uint8", "uint8"),
])
def test_each_signedness_has_its_operands_over_their_full_range(dtype, data, weight):
    workload = load_workload(f"gemm:M=64,N=64,K=256,dtype={dtype}")
    a, b = workload.random_inputs(0)
    assert (a.dtype, b.dtype) == (np.dtype(data), np.dtype(weight))
    for array in (a, b):
        info = np.iinfo(array.dtype)
        assert array.min() <= info.min + 8 and array.max() >= info.max - 8
    assert workload.unit == "GOPS"


def test_signed_int8_maps_onto_the_signed_wmma_directly():
    rows = mappings("gemm:M=64,N=64,K=64,dtype=int8_s8s8", "cuda-tc").mappings
    kept = [r for r in rows if r.status == "kept"]
    assert {r.intrinsic for r in kept} == {"wmma-m16n16k16-s8s32", "mma-m16n8k32-s8s32"}
    assert not any("signed" in name for r in kept for name in r.operands.values())


def test_a_signedness_no_intrinsic_computes_is_refused_by_name(tmp_path):
    # VNNI is u8 x s8: an s8 x s8 GEMM has no mapping on avx512, and says so.
    assert not [r for r in mappings("gemm:M=64,N=64,K=64,dtype=int8_s8s8", "avx512").mappings
                if r.status == "kept"]
    with pytest.raises(TuneError, match="no kept mapping"):
        tune(["gemm:M=64,N=64,K=64,dtype=int8_s8s8"], "avx512", 1, tmp_path / "db")
