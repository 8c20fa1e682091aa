"""Elementwise intrinsics (16 lanes, C[i] += A[i] * B[i]): depthwise convolutions, lanes <- c."""

from __future__ import annotations

import pytest
import tvm

from gta_core.api import load_workload
from gta_core.hookspecs import hookimpl
from gta_core.mapping import mapping_candidates
from gta_core.mapping.realise import ensure_registered, realise
from gta_core.measure import measure_program
from gta_core.measure.check import build
from gta_core.measure.settings import MeasureSettings
from gta_core.models import MappingCandidate
from gta_core.plugins import default_registry, load
from gta_core.tuning import tune

ELEMENTWISE = {"int8": "mac16-u8s8", "float32": "fma16-elementwise"}
DEPTHWISE = "depthwise_conv2d:N=1,C=32,H=8,W=8,R=3,S=3,pad=1"
# int8: LLVM fuses the widened multiply-add into vpdpwssd (the extended values fit in 16 bits).
# The widened int8 MAC is an int16 multiply-add: VNNI's vpdpwssd where LLVM's model of the
# host prefers it, else vpmaddwd + vpaddd (LLVM's choice for mcpu=cooperlake).
INSTRUCTION = {"int8": ("vpmovzxbd", "vpmovsxbd", ("vpdpwssd", "vpmaddwd")),
               "float32": ("vfmadd",)}


def candidates(spec: str, registry=None) -> list[MappingCandidate]:
    return mapping_candidates(load_workload(spec), "avx512", registry or default_registry())


def test_both_intrinsics_are_registered_with_their_tvm_pairs():
    registry = default_registry()
    for name in ELEMENTWISE.values():
        intrinsic = registry.intrinsics[name]
        assert intrinsic.target == "avx512"
        assert [v.kind for v in intrinsic.compute.iter_vars] == ["spatial"]
        assert all(o.indices == ["i"] for o in intrinsic.compute.operands)
        ensure_registered(intrinsic)
        for tvm_name in intrinsic.tvm_intrinsics.values():
            assert tvm.s_tir.TensorIntrin.get(tvm_name, allow_missing=True) is not None


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_depthwise_takes_its_lanes_from_the_channels(dtype):
    found = [c for c in candidates(f"depthwise_conv2d:N=1,C=128,H=56,W=56,R=3,S=3,pad=1,"
                                   f"dtype={dtype}")
             if c.intrinsic == ELEMENTWISE[dtype] and not c.rfactor]
    assert found and all(c.status == "kept" for c in found)
    assert all(c.axes == {"i": ["c"]} and not c.padding for c in found)
    assert all(c.operands["C"] == "depthwise_conv2d" for c in found)


@pytest.mark.parametrize("spec", ["gemm:M=64,N=64,K=64", "conv2d:N=1,C=16,H=8,W=8,K=16,R=3,S=3"])
@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_gemm_and_conv2d_have_no_loop_all_three_tensors_share(spec, dtype):
    found = [c for c in candidates(f"{spec},dtype={dtype}") if c.intrinsic == ELEMENTWISE[dtype]]
    # Only lanes from a reduction loop (rfactor), and none of those reads contiguous memory.
    assert all(c.rfactor and c.status == "pruned" for c in found)


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_a_realised_depthwise_matches_numpy_and_packs_the_input_once(dtype):
    workload = load_workload(f"{DEPTHWISE},dtype={dtype}")
    registry = default_registry()
    target = registry.target("avx512")
    for candidate in [c for c in candidates(workload.spec)
                      if c.intrinsic == ELEMENTWISE[dtype] and c.status == "kept"]:
        realised = realise(workload, candidate, registry.intrinsics[candidate.intrinsic], target)
        buffers = {b.name: [int(x) for x in b.shape]
                   for b in realised.sch.mod["main"].body.block.alloc_buffers}
        # NCHW16c, the padded input copied once (not the 9x im2col a reindex would make).
        assert buffers["pad_global"] == [1, 2, 10, 10, 16]
        result = measure_program(realised.sch.mod, workload, target, number=1, repeat=1)
        assert result.correct, result.mismatch  # int8: exact; float32: the workload's tolerance
        asm = build(realised.sch.mod, target).mod.inspect_source("asm")
        for wanted in INSTRUCTION[dtype]:
            assert any(m in asm for m in ((wanted,) if isinstance(wanted, str) else wanted)), wanted


class OnlyElementwise:
    """Vetoes every mapping but the elementwise intrinsics' (so tuning measures those)."""

    @hookimpl
    def gta_mapping_veto(self, candidate, workload, intrinsic, target):
        return None if candidate.intrinsic in ELEMENTWISE.values() else "not elementwise"


@pytest.mark.slow  # ~60 s: building the sampled candidates dominates
def test_a_short_tune_of_an_int8_depthwise_is_correct(tmp_path):
    registry = load(environ={"GTA_PLUGINS": "gta-avx512"},
                    extra=[("only-elementwise", OnlyElementwise())])
    fast = MeasureSettings(number=1, repeat=2, min_repeat_ms=0)
    task = tune([f"{DEPTHWISE},dtype=int8"], "avx512", 4, tmp_path, measure=fast,
                registry=registry).tasks[0]
    assert task.correct is True and task.latency_us > 0
    assert task.mapping.startswith("mac16-u8s8-")
    assert task.trials == 4
