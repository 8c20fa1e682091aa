"""Lanes from a reduction loop (rfactor): a GEMV's lanes from k, its matrix read in place."""

from __future__ import annotations

from math import prod

import pytest
from tvm import s_tir

from gta_core.api import load_workload
from gta_core.generation.engine import apply_rules
from gta_core.mapping import enumerate_mappings, mapping_candidates
from gta_core.mapping.access import Access, Axis, Computation
from gta_core.mapping.enumerate import dot_shaped
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


def _gemv_u8s8(k: int = 128) -> Computation:
    return Computation(axes=(Axis("m", 64, "spatial"), Axis("k", k, "reduce")),
                       inputs=(_access("A", "uint8", "m", "k"), _access("x", "int8", "k")),
                       output=_access("y", "int32", "m", output=True))


def test_an_intrinsic_with_its_own_reduction_takes_no_lanes_from_one_unless_dot_shaped():
    """Inputs [i, r] (two dimensions): no rfactor. Inputs [4i + r] (one run of the lanes'
    terms): only the split form, the one reduction variable feeding both i and r."""
    dot = Computation(axes=(Axis("i", 16, "spatial"), Axis("r", 4, "reduce")),
                      inputs=(_access("a", "uint8", "i", "r"), _access("b", "int8", "i", "r")),
                      output=_access("c", "int32", "i", output=True))
    assert not dot_shaped(dot)
    assert not any(c.rfactor for c in enumerate_mappings(_gemv_u8s8(), dot, "dot"))
    run = ((("i", 4), ("r", 1)),)
    flat = Computation(axes=dot.axes, output=dot.output,
                       inputs=(Access("a", "uint8", run), Access("b", "int8", run)))
    assert dot_shaped(flat)
    [found] = enumerate_mappings(_gemv_u8s8(), flat, "flat")
    assert found.axes == {"i": ["k"], "r": ["k"]} and found.rfactor == ["k"]
    assert found.status == "kept" and not found.padding
    # Each call reads 64 terms: a reduction of 96 does not split into whole runs.
    [short] = enumerate_mappings(_gemv_u8s8(96), flat, "flat")
    assert short.status == "pruned" and "multiple of 64" in short.reason


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_a_gemv_takes_its_lanes_from_k(dtype):
    found = [c for c in candidates(f"gemv:M=256,K=512,dtype={dtype}")
             if c.intrinsic == ELEMENTWISE[dtype]]
    assert found and all(c.status == "kept" and c.rfactor == ["k"] for c in found)
    assert all(c.axes == {"i": ["k"]} and not c.padding for c in found)


def test_an_int8_gemv_also_splits_k_into_vnni_dot_lanes_of_four_terms():
    [dot] = [c for c in candidates("gemv:M=256,K=512,dtype=int8") if c.intrinsic == "vnni-dot"]
    assert dot.status == "kept" and dot.rfactor == ["k"]
    assert dot.axes == {"i": ["k"], "k": ["k"]} and dot.operands == {"A": "x", "B": "A",
                                                                     "C": "gemv"}
    [short] = [c for c in candidates("gemv:M=256,K=96,dtype=int8") if c.intrinsic == "vnni-dot"]
    assert short.status == "pruned" and "multiple of 64" in short.reason
    # A GEMM's reduction does not step through B's last dimension, and a depthwise
    # convolution's taps are not alone in the input's last index: neither splits.
    for spec in ("gemm:M=64,N=64,K=64,dtype=int8",
                 "depthwise_conv2d:N=1,C=16,H=8,W=8,R=3,S=3,pad=1,dtype=int8"):
        found = [c for c in candidates(spec) if c.intrinsic == "vnni-dot"]
        assert found and all(c.status == "pruned" and c.reason for c in found)


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


@pytest.mark.parametrize("dtype,intrinsic", [("float32", "fma16-elementwise"),
                                             ("int8", "vnni-dot")])
def test_every_sketch_of_an_rfactor_gemv_is_correct_and_reads_the_matrix_in_place(dtype,
                                                                                   intrinsic):
    from tests.test_generation import block_names, finished_correct, reshaped

    registry = default_registry()
    workload = load_workload(f"gemv:M=64,K=128,dtype={dtype}")
    [candidate] = [c for c in mapping_candidates(workload, "avx512", registry)
                   if c.rfactor and c.intrinsic == intrinsic]
    sketches = apply_rules(reshaped(workload, candidate), registry.rules.values())
    assert sketches
    for sketch in sketches:
        assert not {"A_reindex_reindex", "x_reindex_reindex"} & block_names(sketch)
        # The lanes' sum runs in the parallel tile, after the partial sums it adds up.
        sch = sketch.sch
        outer = sch.get(sch.get_loops(sch.get_sblock("gemv"))[0])
        assert str(outer.kind).endswith(("Parallel", "parallel", "1")), outer.kind
        # Each output's 16 partial sums are added in a row (one vector reduction), unrolled.
        lanes = sch.get(sch.get_loops(sch.get_sblock("gemv"))[-1])
        assert int(lanes.extent) == 16 and str(lanes.kind).lower().endswith(("unrolled", "3"))
        assert finished_correct(sketch), sketch.notes


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_an_rfactor_gemv_sketch_replays_with_any_tile_sizes(dtype):
    """The evolutionary search replays each sketch's trace with other sampled sizes; the
    block adding the lanes up must come out with as many loops whatever they are."""
    from tests.test_generation import reshaped

    registry = default_registry()
    workload = load_workload(f"gemv:M=64,K=128,dtype={dtype}")
    for candidate in [c for c in mapping_candidates(workload, "avx512", registry)
                      if c.rfactor and c.status == "kept"]:
        context = reshaped(workload, candidate)
        program = context.workload.prim_func()
        for sketch in apply_rules(context, registry.rules.values()):
            trace = sketch.sch.trace
            tiles = [i for i in trace.insts if i.kind.name == "SamplePerfectTile"]
            assert tiles
            for outer in (True, False):  # all of each loop in its outermost or innermost part
                for inst in tiles:
                    n = prod(int(f) for f in trace.decisions[inst])
                    size = len(trace.decisions[inst])
                    decision = [n] + [1] * (size - 1) if outer else [1] * (size - 1) + [n]
                    trace = trace.with_decision(inst, decision, remove_postproc=True)
                replayed = s_tir.Schedule(program)
                trace.apply_to_schedule(replayed, remove_postproc=True)
