"""Sliding windows read where they are, and loops the lanes do not divide computed widened.

A depthwise convolution with lanes from its output columns reads ``pad[n, c, h + r, w + s]``
16 columns at a time, at any offset: no packing stage. When 16 does not divide the width, the
program computes a wider output from a zero-extended input and crops it.
"""

from __future__ import annotations

import pytest

from gta_core.api import load_workload
from gta_core.generation.engine import apply_rules
from gta_core.mapping import mapping_candidates
from gta_core.mapping.realise import realise
from gta_core.mapping.rewrite import RewrittenWorkload, cpu_program_for, widened_te
from gta_core.measure import measure_program
from gta_core.models import MappingCandidate
from gta_core.plugins import default_registry
from tests.test_generation import block_names, finished_correct, reshaped

# The intrinsic whose lanes come from the output columns, the weight broadcast, per dtype.
BROADCAST = {"int8": "mac16-u8s8-bcast", "float32": "fma"}


def depthwise(dtype: str, width: int, pad: int = 1, stride: int = 1) -> str:
    return (f"depthwise_conv2d:N=1,C=16,H=6,W={width},R=3,S=3,stride={stride},pad={pad},"
            f"dtype={dtype}")


def lanes_over_w(workload, dtype: str) -> MappingCandidate:
    return next(c for c in mapping_candidates(workload, "avx512", default_registry())
                if c.intrinsic == BROADCAST[dtype] and c.axes["i"] == ["w"])


def blocks(func) -> set[str]:
    from tvm import s_tir

    sch = s_tir.Schedule(func)
    return {sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))}


def test_a_width_the_lanes_do_not_divide_is_computed_widened_and_cropped():
    workload = load_workload(depthwise("int8", 20))
    candidate = lanes_over_w(workload, "int8")
    assert candidate.status == "kept" and candidate.padding == {"i": 32}
    registry = default_registry()
    program, realised_as = cpu_program_for(workload, candidate,
                                           registry.intrinsics[candidate.intrinsic])
    assert isinstance(program, RewrittenWorkload) and program.widened == (("w", 32),)
    assert program.spec == workload.spec  # same task keys, records and numpy reference
    assert realised_as.padding == {} and realised_as.id == candidate.id
    assert realised_as.operands == {"A": "pad_wide", "B": "weight", "C": "depthwise_conv2d"}
    # The padding is written in the one zero-extended copy: no separate "pad" stage.
    assert blocks(program.prim_func()) == {"pad_wide", "depthwise_conv2d",
                                           "depthwise_conv2d_crop"}


@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("pad", [0, 1])
def test_a_widened_depthwise_realises_correctly_reading_its_input_in_place(dtype, pad):
    registry = default_registry()
    workload = load_workload(depthwise(dtype, 20, pad=pad))
    candidate = lanes_over_w(workload, dtype)
    target = registry.target("avx512")
    realised = realise(workload, candidate, registry.intrinsics[candidate.intrinsic], target)
    sch = realised.sch
    names = {sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))}
    source = "pad_wide" if pad else "data_wide"
    assert source in names and not any(n.startswith(source) and n != source for n in names)
    assert measure_program(sch.mod, workload, target, number=1, repeat=1).correct


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_a_width_the_lanes_divide_is_read_in_place_without_rewriting(dtype):
    registry = default_registry()
    workload = load_workload(depthwise(dtype, 32))
    candidate = lanes_over_w(workload, dtype)
    assert not candidate.padding
    program, same = cpu_program_for(workload, candidate, registry.intrinsics[candidate.intrinsic])
    assert program is workload and same is candidate
    context = reshaped(workload, candidate)
    assert "pad_reindex_reindex" not in block_names(context)  # no im2col copy to inline later
    assert finished_correct(context)


def test_a_strided_window_is_not_contiguous_so_it_keeps_pad_einsum():
    registry = default_registry()
    workload = load_workload(depthwise("float32", 40, stride=2))  # 20 output columns
    candidate = lanes_over_w(workload, "float32")
    assert candidate.padding  # w * 2 + s: 16 columns are 32 elements apart
    program, same = cpu_program_for(workload, candidate, registry.intrinsics[candidate.intrinsic])
    assert program is workload and same is candidate


def test_widening_an_axis_the_main_stage_lacks_says_so():
    from gta_core.mapping.rewrite import RewriteError

    workload = load_workload(depthwise("int8", 20))
    with pytest.raises(RewriteError, match="not an axis"):
        widened_te(workload.te(), workload.main_block, {"q": 4})


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_every_sketch_of_a_widened_mapping_is_correct_and_crops_per_parallel_tile(dtype):
    registry = default_registry()
    workload = load_workload(depthwise(dtype, 20))
    candidate = lanes_over_w(workload, dtype)
    program, realised_as = cpu_program_for(workload, candidate,
                                           registry.intrinsics[candidate.intrinsic])
    sketches = apply_rules(reshaped(program, realised_as), registry.rules.values())
    assert sketches
    for sketch in sketches:
        sch = sketch.sch
        crop = sch.get_loops(sch.get_sblock("depthwise_conv2d_crop"))
        assert str(sch.get(crop[0]).kind).endswith(("Parallel", "parallel", "1"))
        assert finished_correct(sketch), sketch.notes


def test_a_zero_extended_input_longer_than_64_lanes_is_vectorised_in_parts():
    from tvm.tirx import ForKind

    registry = default_registry()
    workload = load_workload("depthwise_conv2d:N=1,C=16,H=6,W=56,R=3,S=3,pad=1,dtype=int8")
    candidate = lanes_over_w(workload, "int8")
    program, realised_as = cpu_program_for(workload, candidate,
                                           registry.intrinsics[candidate.intrinsic])
    [first, *_] = apply_rules(reshaped(program, realised_as), registry.rules.values())
    sch = first.sch
    loops = [sch.get(loop) for loop in sch.get_loops(sch.get_sblock("pad_wide"))]
    assert loops[-1].kind == ForKind.VECTORIZED and int(loops[-1].extent) == 33  # 66 = 2 x 33
    assert finished_correct(first)


def test_a_sliding_window_intrinsic_widens_the_taps_with_zero_weights():
    """vnni-window's A[i + k] over pad[.., w + s]: w 20 -> 32 and s 3 -> 4, the fourth tap's
    weights zero; the product of the widened taps is exact."""
    registry = default_registry()
    workload = load_workload(depthwise("int8", 28))
    [candidate] = [c for c in mapping_candidates(workload, "avx512", registry)
                   if c.intrinsic == "vnni-window" and c.status == "kept"]
    assert candidate.axes == {"i": ["w"], "k": ["s"]} and candidate.padding == {"i": 32, "k": 4}
    intrinsic = registry.intrinsics[candidate.intrinsic]
    program, realised_as = cpu_program_for(workload, candidate, intrinsic)
    assert program.widened == (("s", 4), ("w", 32))
    assert realised_as.operands == {"A": "pad_wide", "B": "weight_wide", "C": "depthwise_conv2d"}
    target = registry.target("avx512")
    realised = realise(workload, candidate, intrinsic, target)
    assert measure_program(realised.sch.mod, workload, target, number=1, repeat=1).correct
    for sketch in apply_rules(reshaped(program, realised_as), registry.rules.values()):
        assert finished_correct(sketch), sketch.notes



@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_the_zero_extended_input_also_has_a_sketch_filled_then_copied_in_vectors(dtype):
    """The padding inlined into the widened copy merges with its guard, so the copy can be
    split into a zero fill and an unguarded copy of the inside: both vector loops, under the
    channels run on the cores."""
    from tvm.tirx import ForKind

    registry = default_registry()
    workload = load_workload(depthwise(dtype, 20).replace("C=16", "C=64"))
    candidate = lanes_over_w(workload, dtype)
    program, realised_as = cpu_program_for(workload, candidate,
                                           registry.intrinsics[candidate.intrinsic])
    assert str(program.prim_func()).count("if_then_else") == 1  # one guard, in pad_wide
    sketches = apply_rules(reshaped(program, realised_as), registry.rules.values())
    split = [s for s in sketches if s.notes.get("padding") == "fill-then-copy"]
    assert split and len(split) < len(sketches)
    for sketch in split:
        sch = sketch.sch
        for stage in ("pad_wide_pad_const", "pad_wide"):
            [loop] = [sch.get(loop) for loop in sch.get_loops(sch.get_sblock(stage))
                      if sch.get(loop).kind == ForKind.VECTORIZED]
            assert int(loop.extent) == (34 if stage.endswith("const") else 20)
        [outer] = [sch.get(loop) for loop in sch.get_loops(sch.get_sblock("pad_wide"))
                   if sch.get(loop).kind == ForKind.PARALLEL]
        assert int(outer.extent) == 64
        assert "if_then_else" not in str(sch.mod)
        assert finished_correct(sketch), sketch.notes
