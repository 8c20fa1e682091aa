"""The AMX-INT8 intrinsics: declared with a window layout of their own, realised by the core's
CPU realisation, and (on a host that grants the tiles) run exactly, in processes that never
asked for the tiles themselves."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from gta_avx512.plugin import AMX_DEPTHS, AMX_INTRINSICS, AMX_SIGNS, _amx, amx_refused

from gta_core.api import default_registry, load_workload, mappings
from gta_core.mapping.access import intrinsic_computation, workload_computation
from gta_core.mapping.enumerate import enumerate_mappings
from gta_core.mapping.realise import realise

REFUSED = amx_refused()
needs_amx = pytest.mark.skipif(REFUSED is not None, reason=f"no AMX here: {REFUSED}")

DECLARED = [_amx(depth, a, b) for a, b in AMX_SIGNS for depth in AMX_DEPTHS]


def test_registered_exactly_where_the_host_grants_the_tiles():
    registered = {i.name for i in default_registry().intrinsics.values()
                  if i.name.startswith("amx-")}
    assert registered == ({i.name for i in DECLARED} if REFUSED is None else set())
    assert len(AMX_INTRINSICS) == (len(DECLARED) if REFUSED is None else 0)


@pytest.mark.parametrize("intrinsic", DECLARED, ids=lambda i: i.name)
def test_packed_operand_is_laid_out_as_the_tiles_read_it(intrinsic):
    """Realised anywhere (nothing is built): the operand declaring ``k // 4, j, k % 4`` is
    packed into [..., k // 4, j, k % 4] and the call is tensorized with the AMX desc."""
    workload = load_workload("gemm:M=64,N=96,K=256,dtype=int8")
    [candidate] = [c for c in enumerate_mappings(workload_computation(workload),
                                                 intrinsic_computation(intrinsic),
                                                 intrinsic.name) if c.status == "kept"]
    realised = realise(workload, candidate, intrinsic)
    script = realised.sch.mod.script()
    packed = candidate.operands["B"]
    depth = intrinsic.compute.extent("k")
    # [k blocks, j blocks, k % depth // 4, j % 32, k % 4] (K = 256 pads the 512-deep call)
    blocks = -(-256 // depth), (96 if packed == "B" else 64) // 32
    shape = f"({blocks[0]}, {blocks[1]}, {depth // 4}, 32, 4)"
    assert re.search(rf"{packed}_reindex(_pad)? = T.sblock_alloc_buffer\({re.escape(shape)}",
                     script), script
    assert realised.compute_intrinsic == intrinsic.tvm_intrinsics["compute"]
    assert "tdpbusd" in script or "tdpbsud" in script


def test_memory_held_operands_take_no_vector_registers():
    """The register-tile constraints count what stays in vector registers between calls;
    AMX's operands are loaded and stored by each call."""
    from gta_core.pruning.cpu import _registers

    class Context:
        intrinsic = DECLARED[0]

    assert all(_registers(Context, o) == 0 for o in DECLARED[0].compute.operands)


@needs_amx
@pytest.mark.parametrize("spec", ["gemm:M=96,N=64,K=640,dtype=int8",
                                  "conv2d:N=1,C=64,H=14,W=14,K=64,R=3,S=3,dtype=int8"])
def test_every_amx_mapping_computes_exactly(spec):
    """Every kept AMX mapping realised, built and run against numpy (outputs garbage-filled
    first), padded ones included (K = 640 pads the 512-deep call; 12 x 12 outputs the 32 rows)."""
    report = mappings(spec, "avx512", check=True)
    amx = [row for row in report.mappings if row.intrinsic.startswith("amx-")]
    assert amx and any(row.padding for row in amx if row.status == "kept")
    kept = [row for row in amx if row.status == "kept" or "build" in (row.reason or "")
            or "wrong" in (row.reason or "")]
    assert kept and all(row.checked for row in kept), [(r.id, r.reason) for r in kept]


_FRESH_PROCESS = """
import sys, numpy as np, tvm
lib = tvm.runtime.load_module(sys.argv[1])
a = np.load(sys.argv[2]); b = np.load(sys.argv[3])
out = tvm.runtime.tensor(np.full((a.shape[0], b.shape[1]), -7, np.int32))
lib["main"](tvm.runtime.tensor(a), tvm.runtime.tensor(b), out)
print(bool(np.array_equal(out.numpy(), a.astype(np.int64) @ b.astype(np.int64))))
"""


@needs_amx
def test_a_library_asks_for_the_tiles_itself(tmp_path):
    """A process that only loads the library (no GTA, no plugin) runs it: the target's TIR
    pipeline makes each tile-using function ask Linux for the tile data at its entry."""
    from gta_core.measure import build

    registry = default_registry()
    workload = load_workload("gemm:M=64,N=64,K=512,dtype=int8", registry)
    target = registry.target("avx512")
    intrinsic = registry.intrinsics["amx-u8s8-k512"]
    [candidate] = [c for c in enumerate_mappings(workload_computation(workload),
                                                 intrinsic_computation(intrinsic),
                                                 intrinsic.name) if c.status == "kept"]
    build(realise(workload, candidate, intrinsic).sch.mod, target).export_library(
        str(tmp_path / "amx.so"))
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.integers(0, 256, (64, 512), dtype=np.uint8))
    np.save(tmp_path / "b.npy", rng.integers(-128, 128, (512, 64), dtype=np.int8))
    run = subprocess.run([sys.executable, "-c", _FRESH_PROCESS, str(tmp_path / "amx.so"),
                          str(tmp_path / "a.npy"), str(tmp_path / "b.npy")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().endswith("True")


def test_a_tiny_workload_is_all_padding_and_pruned_not_an_error():
    """A 1 x 1 x 1 product on a 32 x 32 x 128 call is 99.999% padding: its waste must stay a
    valid fraction below 1 (it once rounded to 1.0 and failed validation) and be pruned."""
    workload = load_workload("gemm:M=1,N=1,K=1,dtype=int8")
    [candidate] = enumerate_mappings(workload_computation(workload),
                                     intrinsic_computation(DECLARED[0]), DECLARED[0].name)
    assert 0.999 < candidate.waste < 1
    rows = [row for row in mappings("gemm:M=1,N=1,K=1,dtype=int8", "avx512").mappings
            if row.intrinsic.startswith("amx-")]
    assert len(rows) == len(AMX_INTRINSICS) * 1  # one mapping each (i <- m, j <- n, k <- k)
    assert all(row.status == "pruned" and "padding" in row.reason for row in rows)


@needs_amx
@pytest.mark.parametrize("name", ["amx-u8s8-k128", "amx-s8u8-k512"])
def test_the_peak_kernel_repeats_the_call_exactly_and_is_measured(name):
    """``gta peak``'s AMX kernel: each worker's C is ``trips`` times its A @ B, exactly; the
    measurement counts 2 x 32 x 32 x depth ops per call."""
    import tvm
    from gta_avx512.amx_peak import _dtype, _kernel, _shape, measure_amx_peak

    from gta_core.sdk import build

    registry = default_registry()
    intrinsic, target = registry.intrinsics[name], registry.target("avx512")
    module = build(_kernel(intrinsic, 2), target).jit()
    rng = np.random.default_rng(1)
    a, b = (rng.integers(-128 if _dtype(intrinsic, x) == "int8" else 0, 128,
                         (2, *_shape(intrinsic, x)), dtype=_dtype(intrinsic, x)) for x in "AB")
    out = tvm.runtime.tensor(np.full((2, 32, 32), -5, np.int32))
    module["main"](tvm.runtime.tensor(a), tvm.runtime.tensor(b), out, 3)
    unpacked = b.transpose(0, 1, 3, 2).reshape(2, -1, 32).astype(np.int64)  # [w, k, j]
    assert np.array_equal(out.numpy(), 3 * (a.astype(np.int64) @ unpacked))
    peak = measure_amx_peak(intrinsic, target, repeats=2, target_seconds=0.05)
    assert peak.gops > 0 and peak.cores == target.resources.cores
