"""``gta codegen`` on cuda-tc: tensor-core kernels for the issue's four workloads, nvcc-checked.

No GPU here: each source is compiled with ``nvcc -c`` (skipped without nvcc); running the
kernels against numpy is behind a skip that needs a CUDA device.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import tvm

from gta_core.api import load_workload
from gta_core.codegen import CodegenError, codegen
from gta_core.database import RecordStore
from gta_core.mapping import mapping_candidates
from gta_core.measure import garbage_output
from gta_core.plugins import default_registry
from gta_core.scheduler.space import Task

NVCC = shutil.which("nvcc")
HAS_GPU = tvm.cuda().exist

WORKLOADS = {
    "gemm": "gemm:M=1024,N=1024,K=1024,dtype=float16",
    "conv2d": "conv2d:N=8,C=64,H=56,W=56,K=64,R=3,S=3,pad=1,dtype=float16",
    "batch_gemm": "batch_gemm:B=12,M=128,N=128,K=64,dtype=float16",
    "gemm-int8": "gemm:M=512,N=512,K=512,dtype=int8",
}


@functools.cache
def generated(name: str, out_dir: str, arch: str | None = None):
    out = Path(out_dir) / f"{name}-{arch or 'default'}.cu"
    return codegen(WORKLOADS[name], out, target="cuda-tc", arch=arch)


# The mma.sync intrinsic each workload is generated with in the mma tests.
MMA = {"gemm": "mma-m16n8k16-f16f32", "conv2d": "mma-m16n8k16-f16f32",
       "batch_gemm": "mma-m16n8k16-f16f32", "gemm-int8": "mma-m16n8k32-s8s32"}


@functools.cache
def generated_mma(name: str, out_dir: str, arch: str | None = None):
    spec = WORKLOADS[name]
    mapping = next(c.id for c in mapping_candidates(load_workload(spec), "cuda-tc",
                                                    default_registry())
                   if c.status == "kept" and c.intrinsic == MMA[name])
    out = Path(out_dir) / f"{name}-mma-{arch or 'default'}.cu"
    return codegen(spec, out, target="cuda-tc", arch=arch, mapping=mapping)


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("codegen"))


def nvcc(source: Path, arch: str) -> None:
    if NVCC is None:
        pytest.skip("nvcc not found: the CUDA source is not compiled")
    proc = subprocess.run([NVCC, f"-arch={arch}", "-c", str(source), "-o",
                           str(source.with_suffix(f".{arch}.o"))],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("name", WORKLOADS)
def test_codegen_writes_a_tensor_core_kernel(name: str, out_dir: str):
    result = generated(name, out_dir)
    source = Path(result.source).read_text()
    assert result.instructions == ["wmma::mma_sync"]
    assert "wmma::mma_sync" in source and "__shared__" in source
    # the k-step's tiles copied asynchronously one step ahead (software-pipeline)
    assert "cp.async.commit_group" in source and "cp.async.wait_group 1" in source
    assert result.origin == "sampled" and result.seed >= 1 and result.arch == "sm_80"
    assert result.workload == load_workload(WORKLOADS[name]).spec


@pytest.mark.parametrize("name", WORKLOADS)
def test_codegen_output_compiles_for_sm_80(name: str, out_dir: str):
    nvcc(Path(generated(name, out_dir).source), "sm_80")


def test_codegen_for_sm_90_compiles_for_sm_90(out_dir: str):
    result = generated("gemm", out_dir, "sm_90")
    assert result.arch == "sm_90"
    nvcc(Path(result.source), "sm_90")


@pytest.mark.parametrize("name", WORKLOADS)
def test_mma_mappings_give_ldmatrix_and_mma_sync_kernels(name: str, out_dir: str):
    result = generated_mma(name, out_dir)
    source = Path(result.source).read_text()
    assert result.instructions == ["mma.sync"]
    shape = "m16n8k32" if name == "gemm-int8" else "m16n8k16"
    assert f"mma.sync.aligned.{shape}.row.col" in source
    assert "ldmatrix.sync.aligned.m8n8.x4" in source  # A's fragments at least
    assert "__shared__" in source and "wmma::" not in source
    for arch in ("sm_80", "sm_90"):
        nvcc(Path(result.source), arch)


def test_int8_kernel_multiplies_signed_fragments(out_dir: str):
    source = Path(generated("gemm-int8", out_dir).source).read_text()
    for role in ("matrix_a", "matrix_b"):
        assert f"wmma::fragment<nvcuda::wmma::{role}, 16, 16, 16, signed char," in source
    assert "wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, int>" in source


def test_a_chosen_mapping_and_seed_are_used(tmp_path: Path):
    spec = "gemm:M=256,N=256,K=256,dtype=float16"
    kept = [c for c in mapping_candidates(load_workload(spec), "cuda-tc", default_registry())
            if c.status == "kept" and c.intrinsic == "wmma-m32n8k16-f16f32"]
    result = codegen(spec, tmp_path / "k.cu", mapping=kept[0].id, seed=5)
    assert result.mapping == kept[0].id and result.seed >= 5
    assert "wmma::fragment<nvcuda::wmma::accumulator, 32, 8, 16, float>" in \
        (tmp_path / "k.cu").read_text()


def test_the_best_record_of_a_db_is_used(tmp_path: Path):
    spec = "gemm:M=256,N=256,K=256,dtype=float16"
    sampled = codegen(spec, tmp_path / "sampled.cu", seed=3)
    registry = default_registry()
    workload = load_workload(spec)
    candidate = next(c for c in mapping_candidates(workload, "cuda-tc", registry)
                     if c.id == sampled.mapping)
    task = Task(workload, candidate, registry.intrinsics[candidate.intrinsic],
                registry.target("cuda-tc"))
    # Record the sampled schedule as if measured: the same sampling, replayed from its trace.
    from gta_core.codegen import _sampled

    sch = _sampled(workload, task.target, [candidate], sampled.seed, 1, registry, print)[0]
    store = RecordStore(tmp_path / "db")
    store.append(task.key, candidate.id, tvm.IRModule({"main": task.workload.prim_func()}),
                 sch.trace, [12e-6], task.target.tvm_target())
    result = codegen(spec, tmp_path / "from-db.cu", db=tmp_path / "db")
    assert result.origin == "database" and result.latency_us == pytest.approx(12.0)
    assert result.mapping == candidate.id
    assert (tmp_path / "from-db.cu").read_text() == (tmp_path / "sampled.cu").read_text()


def test_an_empty_db_falls_back_to_sampling(tmp_path: Path):
    (tmp_path / "db").mkdir()
    result = codegen("gemm:M=64,N=64,K=64,dtype=float16", tmp_path / "k.cu", db=tmp_path / "db")
    assert result.origin == "sampled"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"target": "avx512"}, "is a cpu target"),
    ({"mapping": "nope"}, "unknown mapping 'nope'"),
    ({"arch": "sm_70"}, "has no arch 'sm_70'; declared: sm_80, sm_86, sm_89, sm_90"),
    ({"db": "/nonexistent-gta-db"}, "no such directory"),
])
def test_bad_requests_raise_one_line(kwargs: dict, message: str, tmp_path: Path):
    with pytest.raises(CodegenError, match=message) as caught:
        codegen("gemm:M=64,N=64,K=64,dtype=float16", tmp_path / "k.cu", **kwargs)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "k.cu").exists()


@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU that TVM sees (none here)")
@pytest.mark.parametrize("spec", ["gemm:M=256,N=256,K=128,dtype=float16",
                                  "conv2d:N=2,C=32,H=14,W=14,K=32,R=3,S=3,pad=1,dtype=float16",
                                  "batch_gemm:B=3,M=64,N=64,K=64,dtype=float16",
                                  "gemm:M=128,N=128,K=128,dtype=int8"])
def test_sampled_kernels_match_numpy_on_the_gpu(spec: str):
    from gta_core.codegen import _candidates, _sampled
    from gta_core.measure import build

    os.environ.setdefault("TVM_CUDA_COMPILE_MODE", "nvcc")
    registry = default_registry()
    workload = load_workload(spec)
    target = registry.target("cuda-tc")
    candidates = _candidates(workload, "cuda-tc", None, registry)
    # The first mapping of each instruction family (wmma, mma.sync).
    firsts = {c.intrinsic.split("-")[0]: c for c in reversed(candidates)}
    for candidate in firsts.values():
        sch = _sampled(workload, target, [candidate], 1, 8, registry, print)[0]
        module = build(sch.mod, target).jit()
        inputs = workload.random_inputs(0)
        device = tvm.cuda()
        out = tvm.runtime.tensor(garbage_output(workload),
                                 device)
        module(*[tvm.runtime.tensor(x, device) for x in inputs], out)
        assert workload.mismatch(out.numpy(), workload.expected(inputs)) is None, candidate.id
