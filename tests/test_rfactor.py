"""Lanes from a reduction loop (rfactor): a GEMV's lanes from k, its matrix read in place."""

from __future__ import annotations

import pytest

from gta_core.api import load_workload
from gta_core.generation.engine import apply_rules
from gta_core.mapping import enumerate_mappings, mapping_candidates
from gta_core.mapping.access import Access, Axis, Computation
from gta_core.mapping.realise import realise
from gta_core.measure import measure_program
from gta_core.models import MappingCandidate
from gta_core.plugins import default_registry

ELEMENTWISE = {"int8": "mac16-u8s8", "float32": "fma16-elementwise"}


def candidates(spec: str) -> list[MappingCandidate]:
    return mapping_candidates(load_workload(spec), "avx512", default_registry())


def _access(tensor, dtype, *dims, output=False):
    return Access(tensor, dtype, tuple(((d, 1),) for d in dims), output=output)


def test_an_elementwise_lane_may_take_a_reduction_loop_every_input_shares():
    """y[m] += A[m, k] * x[k] onto c[i] += a[i] * b[i]: lanes from k, never from m."""
    op = Computation(axes=(Axis("m", 64, "spatial"), Axis("k", 32, "reduce")),
                     inputs=(_access("A", "float32", "m", "k"), _access("x", "float32", "k")),
                     output=_access("y", "float32", "m", output=True))
    intr = Computation(axes=(Axis("i", 16, "spatial"),),
                       inputs=(_access("a", "float32", "i"), _access("b", "float32", "i")),
                       output=_access("c", "float32", "i", output=True))
    [found] = enumerate_mappings(op, intr, "ew")  # a and b are interchangeable: one order
    assert found.operands == {"a": "A", "b": "x", "c": "y"}
    assert found.axes == {"i": ["k"]} and found.rfactor == ["k"] and found.status == "kept"


def test_an_intrinsic_with_its_own_reduction_never_takes_lanes_from_one():
    op = Computation(axes=(Axis("m", 64, "spatial"), Axis("k", 32, "reduce")),
                     inputs=(_access("A", "uint8", "m", "k"), _access("x", "int8", "k")),
                     output=_access("y", "int32", "m", output=True))
    dot = Computation(axes=(Axis("i", 16, "spatial"), Axis("r", 4, "reduce")),
                      inputs=(_access("a", "uint8", "i", "r"), _access("b", "int8", "i", "r")),
                      output=_access("c", "int32", "i", output=True))
    assert not any(c.rfactor for c in enumerate_mappings(op, dot, "dot"))


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_a_gemv_takes_its_lanes_from_k(dtype):
    found = [c for c in candidates(f"gemv:M=256,K=512,dtype={dtype}")
             if c.intrinsic == ELEMENTWISE[dtype]]
    assert found and all(c.status == "kept" and c.rfactor == ["k"] for c in found)
    assert all(c.axes == {"i": ["k"]} and not c.padding for c in found)


def test_rfactor_lanes_that_would_not_read_contiguous_memory_are_pruned_with_the_reason():
    found = [c for c in candidates("gemm:M=64,N=64,K=64,dtype=float32") if c.rfactor]
    assert found and all(c.status == "pruned" for c in found)
    assert all("would not be contiguous in B" in c.reason for c in found)


def test_rfactor_lanes_need_a_multiple_of_the_lanes():
    [*found] = [c for c in candidates("gemv:M=64,K=40,dtype=float32") if c.rfactor]
    assert found and all(c.status == "pruned" and "multiple of 16" in c.reason for c in found)


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_a_realised_rfactor_gemv_matches_numpy(dtype):
    registry = default_registry()
    workload = load_workload(f"gemv:M=48,K=64,dtype={dtype}")
    target = registry.target("avx512")
    for candidate in [c for c in mapping_candidates(workload, "avx512", registry) if c.rfactor]:
        realised = realise(workload, candidate, registry.intrinsics[candidate.intrinsic], target)
        assert realised.block == "gemv_rf"  # the lanes' partial sums, added up by "gemv"
        assert measure_program(realised.sch.mod, workload, target, number=1, repeat=1).correct


def test_every_sketch_of_an_rfactor_gemv_is_correct_and_reads_the_matrix_in_place():
    from tests.test_generation import block_names, finished_correct, reshaped

    registry = default_registry()
    workload = load_workload("gemv:M=64,K=128,dtype=float32")
    [candidate, *_] = [c for c in mapping_candidates(workload, "avx512", registry)
                       if c.rfactor]
    sketches = apply_rules(reshaped(workload, candidate), registry.rules.values())
    assert sketches
    for sketch in sketches:
        assert not {"A_reindex_reindex", "x_reindex_reindex"} & block_names(sketch)
        # The lanes' sum runs in the parallel tile, after the partial sums it adds up.
        sch = sketch.sch
        outer = sch.get(sch.get_loops(sch.get_sblock("gemv"))[0])
        assert str(outer.kind).endswith(("Parallel", "parallel", "1")), outer.kind
        assert finished_correct(sketch), sketch.notes
