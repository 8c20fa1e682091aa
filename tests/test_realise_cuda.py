"""Realising cuda-tc mapping candidates: every kept candidate becomes a CUDA kernel.

No GPU here: each kept candidate is realised with the cuda-tc target, built with
``gta_core.measure.build`` and its CUDA source checked for its instruction on the intrinsic's
fragment shape (``wmma::mma_sync``, or ``ldmatrix`` and ``mma.sync`` for the intrinsics whose
fragments live in "warp" memory), and the sources (a sample for the convolutions) are compiled
with ``nvcc -arch=sm_80 -c`` (skipped without nvcc). Running against numpy needs a CUDA device
and is skipped here.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from gta_core.api import load_workload
from gta_core.mapping import mapping_candidates
from gta_core.mapping.realise import RealisationError, realise
from gta_core.measure import build, garbage_output
from gta_core.models import Intrinsic, MappingCandidate
from gta_core.plugins import default_registry

# TVM compiles CUDA itself only where a CUDA runtime is loaded (the GPU run); its default,
# nvrtc, needs Python CUDA bindings that the project does not install.
os.environ.setdefault("TVM_CUDA_COMPILE_MODE", "nvcc")

TARGET = "cuda-tc"
NVCC = shutil.which("nvcc")

WORKLOADS = {
    "gemm-f32": "gemm:M=64,N=64,K=64,dtype=float16",
    "gemm-f16": "gemm:M=64,N=64,K=64,dtype=float16,out_dtype=float16",
    "batch_gemm": "batch_gemm:B=2,M=32,N=32,K=32,dtype=float16",
    "conv2d": "conv2d:N=1,C=16,H=8,W=8,K=16,R=3,S=3,pad=1,dtype=float16",
    # the main stage is not the last one (a copy restores [N, K, H, W])
    "grouped": "conv2d:N=1,C=16,H=6,W=16,K=32,R=3,S=3,pad=1,groups=2,dtype=float16",
    # u8 x s8 on the s8 x s8 intrinsic, through the signed form (gta_core.mapping.rewrite)
    "gemm-int8": "gemm:M=64,N=64,K=64,dtype=int8",
}
# The convolutions have 46 and 24 wmma candidates, and their mma.sync ones: all are built
# (~0.1 s each), nvcc compiles a deterministic sample (~1-2 s each on 2 cores).
NVCC_EVERY = {"conv2d": 5, "grouped": 5}


@dataclass
class Built:
    candidate: MappingCandidate
    intrinsic: Intrinsic
    source: str


@dataclass
class Realisations:
    kept: int
    built: list[Built]


@functools.cache
def _registry():
    return default_registry()


@functools.cache
def _realise_all(name: str) -> Realisations:
    """Every kept candidate of WORKLOADS[name], realised and built."""
    registry = _registry()
    workload = load_workload(WORKLOADS[name])
    target = registry.target(TARGET)
    kept = [c for c in mapping_candidates(workload, TARGET, registry) if c.status == "kept"]
    built = []
    for candidate in kept:
        intrinsic = registry.intrinsics[candidate.intrinsic]
        try:
            realised = realise(workload, candidate, intrinsic, target)
        except RealisationError as exc:
            raise AssertionError(f"{candidate.id}: {exc}") from exc
        source = build(realised.sch.mod, target).mod.imports[0].inspect_source()
        built.append(Built(candidate, intrinsic, source))
    return Realisations(kept=len(kept), built=built)


def _shape(intrinsic: Intrinsic) -> tuple[int, int, int]:
    extent = intrinsic.compute.extent
    return extent("i"), extent("j"), extent("k")


def _warp(intrinsic: Intrinsic) -> bool:
    return intrinsic.compute.operands[0].scope == "warp"


@pytest.mark.parametrize("name", WORKLOADS)
def test_every_kept_candidate_builds_with_its_tensor_core_instruction(name: str) -> None:
    result = _realise_all(name)
    assert len(result.built) == result.kept and result.kept
    assert {_warp(b.intrinsic) for b in result.built} == {False, True}  # wmma and mma.sync
    for item in result.built:
        m, n, k = _shape(item.intrinsic)
        if _warp(item.intrinsic):
            # each m x n x k tile is two m16n8kK instructions on fragments loaded by ldmatrix
            assert f"mma.sync.aligned.m{m}n{n // 2}k{k}.row.col" in item.source, item.candidate.id
            assert "ldmatrix.sync.aligned.m8n8.x4" in item.source, item.candidate.id
            assert "wmma::" not in item.source, item.candidate.id
            continue
        assert "wmma::mma_sync" in item.source, item.candidate.id
        for role in ("matrix_a", "matrix_b", "accumulator"):
            assert f"wmma::{role}, {m}, {n}, {k}," in item.source, (item.candidate.id, role)


@pytest.mark.parametrize("name", WORKLOADS)
def test_every_wmma_shape_and_both_operand_orders_are_realised(name: str) -> None:
    """Each wmma shape of the workload's output dtype builds, with data as matrix_a and (for
    some shape) as matrix_b: the second order goes through the commuted product."""
    registry = _registry()
    out_dtype = load_workload(WORKLOADS[name]).params.acc_dtype
    shapes = {i.name for i in registry.intrinsics_for(TARGET)
              if i.tvm_intrinsics["compute"].startswith("gta_wmma") and i.output_dtype == out_dtype}
    built = [b for b in _realise_all(name).built if not _warp(b.intrinsic)]
    assert {b.intrinsic.name for b in built} == shapes
    assert len({b.candidate.operands["A"] for b in built}) == 2


def _nvcc(source: str, path: Path) -> str | None:
    """None when ``source`` compiles for sm_80, else nvcc's complaint."""
    path.write_text(source)
    proc = subprocess.run([NVCC, "-arch=sm_80", "-c", str(path), "-o", str(path.with_suffix(".o"))],
                          capture_output=True, text=True, timeout=300)
    return None if proc.returncode == 0 else proc.stderr[-2000:]


@pytest.mark.skipif(NVCC is None, reason="nvcc not found")
@pytest.mark.parametrize("name", WORKLOADS)
def test_sources_compile_with_nvcc(name: str, tmp_path: Path) -> None:
    """Every built source, or for the convolutions every 5th and the last (~1-2 s each)."""
    built = _realise_all(name).built
    every = NVCC_EVERY.get(name, 1)
    sample = [b for i, b in enumerate(built) if i % every == 0 or i == len(built) - 1]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        errors = pool.map(lambda ib: _nvcc(ib[1].source, tmp_path / f"k{ib[0]}.cu"),
                          enumerate(sample))
        failed = {b.candidate.id: e for b, e in zip(sample, errors) if e is not None}
    assert not failed, failed


@pytest.mark.parametrize("spec", ["gemm:M=64,N=64,K=64,dtype=int8",
                                  "conv2d:N=1,C=16,H=8,W=8,K=16,R=3,S=3,pad=1,dtype=int8"])
def test_int8_maps_through_its_signed_form(spec: str) -> None:
    """int8 workloads are u8 x s8 and the wmma int8 intrinsic s8 x s8: the candidates are those
    of the signed form (u8 data less 128, plus a weight-sum correction), realised and built."""
    registry = _registry()
    workload = load_workload(spec)
    kept = [c for c in mapping_candidates(workload, TARGET, registry) if c.status == "kept"]
    assert {c.intrinsic for c in kept} == {"wmma-m16n16k16-s8s32", "mma-m16n8k32-s8s32"}
    for intrinsic, instruction in (("wmma-m16n16k16-s8s32", "wmma::mma_sync"),
                                   ("mma-m16n8k32-s8s32", "mma.sync.aligned.m16n8k32")):
        candidate = next(c for c in kept if c.intrinsic == intrinsic and (
            "A_signed" in c.operands.values() or "pad_signed" in c.operands.values()))
        realised = realise(workload, candidate, registry.intrinsics[intrinsic],
                           registry.target(TARGET))
        source = build(realised.sch.mod, registry.target(TARGET)).mod.imports[0].inspect_source()
        assert instruction in source and "signed char" in source


def test_cuda_tc_programs_build_through_the_pipeline_the_target_names() -> None:
    from tvm.tirx.compilation_pipeline import get_tir_pipeline

    from gta_core.measure.check import registered

    target = _registry().target(TARGET)
    assert target.tir_pipeline == "gta_cuda_tc.tvm_intrinsics:gta_warp_mma"
    assert registered(target.tir_pipeline) == "gta_warp_mma"  # its module imported
    assert get_tir_pipeline("gta_warp_mma") is not None
    assert registered(None) == "default"  # a target naming no pipeline builds with TVM's


def test_the_builder_workers_build_mma_sync_through_the_targets_pipeline() -> None:
    """Tuning on a GPU builds in worker processes that get only the TVM target: the GTA
    target's pipeline reaches them through the builder (TVM's default cannot lower warp
    memory)."""
    from tvm.s_tir import meta_schedule as ms

    from gta_core.measure.runners import make_builder
    from gta_core.measure.settings import MeasureSettings

    registry = _registry()
    workload = load_workload(WORKLOADS["gemm-f32"])
    target = registry.target(TARGET)
    candidate = next(c for c in mapping_candidates(workload, TARGET, registry)
                     if c.status == "kept" and c.intrinsic.startswith("mma-"))
    realised = realise(workload, candidate, registry.intrinsics[candidate.intrinsic], target)
    inputs = [ms.builder.BuilderInput(realised.sch.mod, target.tvm_target())]
    settings = MeasureSettings(builder_workers=1)
    assert make_builder(settings, target).build(inputs)[0].error_msg is None
    assert "warp" in make_builder(settings).build(inputs)[0].error_msg


def _has_gpu() -> bool:
    import tvm

    return bool(tvm.cuda().exist)


@pytest.mark.skipif(not _has_gpu(), reason="needs a CUDA GPU (none here)")
@pytest.mark.parametrize("name", WORKLOADS)
def test_realised_kernels_match_numpy(name: str) -> None:
    import tvm

    registry = _registry()
    workload = load_workload(WORKLOADS[name])
    target = registry.target(TARGET)
    inputs = workload.random_inputs(0)
    expected = workload.expected(inputs)
    device = tvm.cuda()
    failed = {}
    for item in _realise_all(name).built:
        realised = realise(workload, item.candidate, item.intrinsic, target)
        module = build(realised.sch.mod, target).jit()
        out = tvm.runtime.tensor(garbage_output(workload),
                                 device)
        module(*[tvm.runtime.tensor(x, device) for x in inputs], out)
        mismatch = workload.mismatch(out.numpy(), expected)
        if mismatch is not None:
            failed[item.candidate.id] = mismatch
    assert not failed, failed
