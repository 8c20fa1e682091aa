"""fuse-epilogue never inlines a consumer that covers fewer points than its writer computes."""

from __future__ import annotations

import random

import tvm
from searches import first_mapping_search


def test_a_transposed_convolutions_phase_gather_is_not_inlined_past_the_output():
    # Each phase computes 2 x 6 rows for the 11 output rows: inlining the gather into the
    # write-back wrote a row before the output and one after it (TVM accepted it).
    search = first_mapping_search(
        "conv2d_transpose:N=1,C=16,H=6,W=6,K=16,R=4,S=4,stride=2,pad=1,dtype=float32")
    try:
        context = search._start()
        rng = random.Random(0)
        programs = [sketch.replay(context.mod, sketch.draw(rng), [], seed=7)
                    for sketch in search._draws.sketches]
    finally:
        search.close()
    programs = [sch for sch in programs if sch is not None]
    assert programs
    for sch in programs:
        gather = sch.get(sch.get_sblock("phase_gather"))  # still a block of its own
        assert [r.source.name for r in gather.writes] == ["phase_gather"]
        tvm.s_tir.analysis.OOBChecker()(sch.mod)  # raises on an access past a buffer
