"""`generation/bounds.py`: a program that would write outside its buffers is never run."""

from __future__ import annotations

import random

import pytest
import tvm
from searches import first_mapping_search
from tvm.script import tirx as T

from gta_core.generation.bounds import writes_inside, writes_outside

SPEC = "conv2d_transpose:N=1,C=16,H=6,W=6,K=16,R=4,S=4,stride=2,pad=1,dtype=float32"


def _programs(mapping: int) -> list:
    search = first_mapping_search(SPEC, index=mapping)
    try:
        context = search._start()
        rng = random.Random(0)
        programs = [sketch.replay(context.mod, sketch.draw(rng), [], seed=seed)
                    for sketch in search._draws.sketches for seed in (1, 2)]
    finally:
        search.close()
    return [sch for sch in programs if sch is not None]


def _gather_writers(sch) -> list[str]:
    return [sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))
            if "phase_gather" in {r.source.name for r in sch.get(b).writes}]


def test_a_transposed_convolutions_unguarded_gather_is_found():
    # This mapping's write-back takes the phase gather in, and the predicate that kept its
    # 2 x 6 phase rows inside the 11 output rows is gone by the end: it writes row -1 and 11.
    programs = _programs(3)
    flagged = [writes_outside(sch.mod) for sch in programs]
    assert any(flagged)
    assert all(set(f) <= set(_gather_writers(sch)) for f, sch in zip(flagged, programs))


@pytest.mark.parametrize("mapping", [0, 1])
def test_guarded_and_padded_writes_are_inside(mapping):
    programs = _programs(mapping)
    assert programs and not any(writes_outside(sch.mod) for sch in programs)


def test_writes_inside_reads_the_loops_and_the_predicate():
    @T.prim_func(s_tir=True)
    def shifted(a: T.Buffer((8,), "float32"), b: T.Buffer((8,), "float32")):
        for i in range(8):
            with T.sblock("b"):
                vi = T.axis.remap("S", [i])
                b[vi * 2 - 1] = a[vi]  # rows -1 .. 13 of 8

    @T.prim_func(s_tir=True)
    def guarded(a: T.Buffer((8,), "float32"), b: T.Buffer((8,), "float32")):
        for i in range(8):
            with T.sblock("b"):
                vi = T.axis.remap("S", [i])
                T.where(1 <= i and i < 4)
                b[vi * 2 - 1] = a[vi]

    for func, inside in ((shifted, False), (guarded, True)):
        sch = tvm.s_tir.Schedule(func)
        assert writes_inside(sch, sch.get_sblock("b")) is inside
    assert writes_outside(tvm.IRModule({"main": shifted})) == ["b"]
