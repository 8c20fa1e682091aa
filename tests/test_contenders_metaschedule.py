"""``metaschedule-vnni`` is n/a on a workload its auto-tensorization rule cannot tensorize,
decided by generating the workload's design space, once per target and workload."""

from __future__ import annotations

import json

import pytest

from gta_core.api import load_workload
from gta_core.bench import CONTENDERS
from gta_core.bench import metaschedule as ms_baseline

CONV = "conv2d:N=1,C=16,H=8,W=8,K=16,R=3,S=3,pad=1,dtype=int8"
GEMM = "gemm:M=32,N=32,K=32,dtype=int8"


def test_the_tensorize_decision_is_made_once_per_workload_and_kept(ctx, monkeypatch):
    asked = []

    def fake_tensorizes(prim_func, target, space):
        asked.append(prim_func)
        return len(asked) == 1  # the first workload asked tensorizes, the second does not

    monkeypatch.setattr(ms_baseline, "tensorizes", fake_tensorizes)
    contender = CONTENDERS["metaschedule-vnni"]()
    gemm, conv = load_workload(GEMM), load_workload(CONV)
    assert contender.skip_reason(gemm, ctx) is None
    reason = contender.skip_reason(conv, ctx)
    assert reason.startswith("n/a: MetaSchedule's auto-tensorization rule cannot tensorize "
                             "conv2d (")
    assert contender.skip_reason(conv, ctx) == reason and len(asked) == 2  # not asked again
    kept = json.loads((ctx.out / "metaschedule-vnni" / "tensorizes.json").read_text())
    assert kept == {f"avx512 {gemm.spec}": True, f"avx512 {conv.spec}": False}
    assert contender.skip_reason(load_workload("gemm:M=8,N=8,K=8,dtype=float32"), ctx) \
        == "int8 only: the VNNI intrinsic computes u8 x s8 -> s32"


@pytest.mark.slow
def test_metaschedules_vnni_space_tensorizes_a_gemm_but_not_an_nchw_conv2d(ctx):
    """About 40 s: TVM parses its built-in tensor intrinsics when a tuning context starts."""
    contender = CONTENDERS["metaschedule-vnni"]()
    assert contender.tensorizes(load_workload(GEMM), ctx)
    assert not contender.tensorizes(load_workload(CONV), ctx)


def test_the_intrinsic_it_drives_is_found_by_its_declared_compute(ctx):
    contender = CONTENDERS["metaschedule-vnni"]()
    assert contender.intrinsic(ctx).name == "vnni"  # C[i] += A[k] u8 * B[i, k] s8
