"""Generation rules and resource constraints on small realised mappings."""

from __future__ import annotations

from math import prod

import pytest
from tvm.tirx import ForKind

from gta_core.api import load_workload
from gta_core.generation import ScheduleContext
from gta_core.generation.cpu import (
    InlineContiguousOperands,
    InlinePaddingIntoPacking,
    MultiLevelTiling,
    ParallelOuterTiles,
    RegisterAccumulator,
    UnrollRegisterTile,
    VectorizePacking,
    WriteBackPerTile,
)
from gta_core.generation.engine import apply_rules
from gta_core.mapping import mapping_candidates
from gta_core.mapping.realise import finish_cpu, reshape
from gta_core.mapping.rewrite import cpu_program_for
from gta_core.measure import measure_program
from gta_core.models import MappingCandidate
from gta_core.plugins import default_registry
from gta_core.pruning.cpu import (
    CacheWorkingSet,
    PaddingWaste,
    ParallelExtent,
    RegisterTile,
    RegisterTileLatency,
    loops_of,
    parallel_extent,
    tiled_loops,
)


def context_for(spec: str, intrinsic: str = "vnni", lanes: str | None = None) -> ScheduleContext:
    """The first kept candidate of ``intrinsic`` (with lanes from ``lanes``), reshaped."""
    workload = load_workload(spec)
    candidate = next(c for c in mapping_candidates(workload, "avx512", default_registry())
                     if c.status == "kept" and c.intrinsic == intrinsic
                     and (lanes is None or c.axes["i"] == [lanes]))
    return reshaped(workload, candidate)


def reshaped(workload, candidate: MappingCandidate) -> ScheduleContext:
    """The candidate reshaped as a tuning task reshapes it: from the program it is realised
    from (widened where it needs it), with the candidate restated on that program."""
    registry = default_registry()
    intrinsic = registry.intrinsics[candidate.intrinsic]
    workload, candidate = cpu_program_for(workload, candidate, intrinsic)
    shaped = reshape(workload, candidate, intrinsic)
    return ScheduleContext(
        sch=shaped.sch, block=shaped.block, target=registry.target("avx512"),
        workload=workload, intrinsic=intrinsic, mapping=candidate,
        spatial=shaped.spatial, reduce=shaped.reduce, inner=shaped.inner,
        notes={"spatial_axes": shaped.spatial_axes, "reduce_axes": shaped.reduce_axes,
               "compute": shaped.compute})


def finished_correct(context: ScheduleContext) -> bool:
    finish_cpu(context.sch, context.block, context.levels.get("R0") or context.reduce,
               context.inner, context.notes["compute"])
    return measure_program(context.sch.mod, context.workload, context.target, number=1,
                           repeat=1).correct


def block_names(context: ScheduleContext) -> set[str]:
    sch = context.sch
    return {sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))}


GEMM = "gemm:M=64,N=64,K=64,dtype=int8"
CONV = "conv2d:N=1,C=8,H=8,W=16,K=16,R=3,S=3,pad=1,dtype=int8"


def test_inline_contiguous_operands_reads_the_activation_in_place_but_packs_the_weights():
    context = context_for(GEMM)
    rule = InlineContiguousOperands()
    assert rule.applies(context)
    rule.apply(context)
    assert "A_reindex_reindex" not in block_names(context)  # A[m, k] feeds VNNI as it is
    assert "B_reindex_reindex" in block_names(context)  # B needs [N/16, K/4, 16, 4]
    assert finished_correct(context)


@pytest.mark.parametrize("spec", ["gemm:M=64,N=64,K=32,dtype=float32",
                                  "conv2d:N=1,C=8,H=8,W=16,K=16,R=3,S=3,pad=1,dtype=float32"])
def test_inline_contiguous_operands_reads_fmas_broadcast_scalar_in_place(spec):
    workload = load_workload(spec)
    candidate = next(c for c in mapping_candidates(workload, "avx512", default_registry())
                     if c.status == "kept" and c.intrinsic == "fma" and not c.padding)
    context = reshaped(workload, candidate)
    scalar = candidate.operands["A"]  # fma's A is the scalar it broadcasts over 16 lanes
    assert f"{scalar}_reindex_reindex" in block_names(context)
    InlineContiguousOperands().apply(context)
    assert f"{scalar}_reindex_reindex" not in block_names(context)
    assert finished_correct(context)


def test_inline_contiguous_operands_leaves_a_strided_window_packed():
    context = context_for(CONV, lanes="k")  # 4-reduction over c: stride H*W in the input
    assert not InlineContiguousOperands().applies(context)


def test_multi_level_tiling_makes_annotated_parallel_cache_and_register_levels():
    context = context_for(GEMM)
    MultiLevelTiling().apply(context)
    levels = {loop.level for loop in tiled_loops(context.sch)}
    assert levels == {"S0", "S1", "S2", "R0", "R1"}
    assert {loop.axis for loop in tiled_loops(context.sch) if loop.level == "S2"} == {"m", "i"}
    assert str(context.sch.trace).count("sample_perfect_tile") == 3
    assert finished_correct(context)


def test_register_accumulator_forks_a_design_space_with_a_local_accumulator():
    context = context_for(GEMM)
    MultiLevelTiling().apply(context)
    plain, cached = RegisterAccumulator().apply(context)
    assert plain is context and "cache_write" in str(cached.sch.trace)
    # the plain space blocks the reduction around the cache tiles; the cached one keeps the
    # whole reduction inside them, so its accumulator is copied out once per tile
    def order(ctx):
        return [loop.level for loop in tiled_loops(ctx.sch)]
    assert order(plain) == ["S0", "S0", "R0", "S1", "S1", "R1", "S2", "S2"]
    assert order(cached) == ["S0", "S0", "S1", "S1", "R0", "R1", "S2", "S2"]
    sch = cached.sch
    above_copy_out = [sch.get(loop) for loop in sch.get_loops(
        sch.get_sblock(cached.notes["accumulator"]))]
    def among(loop):
        return any(sch.get(loop).same_as(other) for other in above_copy_out)
    assert among(cached.levels["S1"][-1]) and not any(map(among, cached.levels["R0"]))
    assert finished_correct(cached) and finished_correct(plain)


def test_parallel_outer_tiles_and_write_back_per_tile_stay_correct():
    context = context_for(CONV, "vnni-act-lanes", lanes="w")  # one loop per axis
    for rule in (MultiLevelTiling(), WriteBackPerTile(), ParallelOuterTiles(),
                 UnrollRegisterTile()):
        assert rule.applies(context)
        rule.apply(context)
    assert parallel_extent(context.sch) >= 1
    assert "meta_schedule.unroll_explicit" in str(context.sch.trace)
    assert finished_correct(context)


def _loops_of_stage(context: ScheduleContext, name: str) -> list[tuple[int, str]]:
    """(extent, kind: serial, parallel, vectorized...) of each loop above the stage ``name``."""
    sch = context.sch
    return [(int(sch.get(loop).extent), ForKind(int(sch.get(loop).kind)).name.lower())
            for loop in sch.get_loops(sch.get_sblock(name))]


def test_a_packing_stage_is_walked_in_the_order_it_writes_and_left_to_llvms_vectoriser():
    # B[k, n] -> B_reindex[n // 16, k // 4, n % 16, k % 4]: walked as it reads (n, then k),
    # every byte lands 64 bytes from the last (190 us for 512x512, against 13 us this way)
    context = context_for("gemm:M=64,N=256,K=256,dtype=int8")
    InlineContiguousOperands().apply(context)
    VectorizePacking().apply(context)
    # the inner two loops interleave 4 rows of B: LLVM's loop vectoriser does that well;
    # the rest, 16 x 64 x 16 iterations, run on the cores
    assert _loops_of_stage(context, "B_reindex_reindex") == [
        (1024, "parallel"), (16, "serial"), (4, "serial")]
    assert finished_correct(context)


def test_a_write_back_stage_is_walked_in_the_packed_order_with_the_outputs_rows_inside():
    # conv2d[n, k, h, w] = conv2d_reindex[n, h, w, k // 16, k % 16]: the packed buffer's
    # order (n, h, k // 16 ...), with w (the output's rows) just inside the lanes' block:
    # 35 us for 56x56x64 int32, against 152 us walked in the output's order
    context = context_for("conv2d:N=1,C=8,H=8,W=16,K=32,R=3,S=3,pad=1,dtype=int8", lanes="k")
    VectorizePacking().apply(context)
    assert _loops_of_stage(context, "conv2d_reindex") == [
        (1, "serial"), (8, "serial"), (2, "serial"), (16, "serial"), (16, "serial")]
    # the weights' rows (s, 3 long) are shorter than the lanes' block (c % 4): written order
    assert [e for e, _ in _loops_of_stage(context, "weight_reindex_reindex")] == \
        [3, 3, 2, 2, 16, 4]
    assert finished_correct(context)


def test_a_padding_read_in_place_is_vectorised_and_split_into_fill_and_copy():
    # FMA's broadcast scalar reads the padded input in place (its packing copy inlined):
    # the padding stage is then the main block's producer, and was left serial and scalar
    workload = load_workload("conv2d:N=1,C=16,H=30,W=32,K=16,R=3,S=3,pad=1,dtype=float32")
    candidate = next(c for c in mapping_candidates(workload, "avx512", default_registry())
                     if c.status == "kept" and c.intrinsic == "fma" and not c.padding)
    context = reshaped(workload, candidate)
    InlineContiguousOperands().apply(context)
    sketches = VectorizePacking().apply(context)
    assert [s.notes.get("padding") for s in sketches] == [None, "fill-then-copy"]
    guarded, split = sketches
    assert _loops_of_stage(guarded, "pad")[-1] == (34, "vectorized")
    assert _loops_of_stage(split, "pad")[0][1] == "parallel"  # the inside, by planes
    assert _loops_of_stage(split, "pad")[-1] == (32, "vectorized")
    assert "pad_pad_const" in block_names(split)  # the zero fill
    assert all(finished_correct(s) for s in sketches)


@pytest.mark.runs("avx512")
@pytest.mark.parametrize("spec, padded, merged", [
    # A's rows rounded up (to AMX's 16-row tiles): the packing reads A's rows, so the one
    # copy moves rows
    pytest.param("gemm:M=400,N=32,K=256,dtype=int8", "A_reindex_pad", True, marks=(
        pytest.mark.skipif(not any(n.startswith("amx-") for n in default_registry().intrinsics),
                           reason="no AMX-INT8 here: no mapping pads A's rows"))),
    # a 3x3 im2col over NCHW reads pad[n, c, h + r, w + s]: merged, its copy would gather
    ("conv2d:N=1,C=64,H=14,W=14,K=32,R=3,S=3,pad=1,dtype=int8", "pad_reindex_pad", False),
    # a stem: 2w + s over its taps fused, a gather; 2w + rx over a row of 7 taps, a run
    ("conv2d:N=1,C=3,H=32,W=32,K=16,R=7,S=7,stride=2,pad=3,dtype=int8", "pad_reindex_pad",
     None),
])
def test_a_padded_input_is_one_copy_on_the_cores_where_its_rows_are_contiguous(
        spec, padded, merged):
    # pad_einsum's padding copy was a second, serial and scalar pass after the packing copy
    # (ResNet-50's layer3 3x3 on AMX spent 56 of 147 us in the two): where the packing reads
    # its source's rows, it is inlined into the padding copy, which runs vectorised on the
    # cores (but where packing-at-tile moves it under the tiles)
    workload = load_workload(spec)
    registry = default_registry()
    contexts = [reshaped(workload, c) for c in mapping_candidates(workload, "avx512", registry)
                if c.status == "kept" and c.padding]
    contexts = [c for c in contexts if padded in block_names(c)]
    assert contexts
    packing = padded.replace("_pad", "_reindex")
    seen = set()
    for context in contexts:
        two = packing in block_names(context)
        seen.add(not two)
        assert merged is None or two != merged, context.mapping.id
        sketches = apply_rules(context, registry.rules.values())
        for sketch in sketches:
            loops = _loops_of_stage(sketch, padded)
            kinds = [kind for _, kind in loops]
            large = prod(e for e, _ in loops) >= VectorizePacking.min_parallel_vector_elements
            assert two or "packing" in sketch.notes or kinds[-1] == "vectorized" and (
                "parallel" in kinds or not large), context.mapping.id
            # the packing copy kept before the padding copy is vectorised as well (it was
            # left serial and scalar: 470 of ResNet-50's stem's 818 us in the two copies)
            assert not two or _loops_of_stage(sketch, packing)[-1][1] == "vectorized"
            assert finished_correct(sketch), f"{context.mapping.id} {sketch.notes}"
        assert any("packing" not in sketch.notes for sketch in sketches)
    assert merged is not None or seen == {True, False}  # the stem: both kinds


def test_a_padded_input_whose_packing_does_not_inline_keeps_two_copies(monkeypatch):
    import gta_core.mapping.realise as realisation

    def refuse(expr, new):
        raise ValueError("an index this does not rebuild")

    monkeypatch.setattr(realisation, "rebuild_index", refuse)
    workload = load_workload("gemm:M=20,N=64,K=64,dtype=int8")
    registry = default_registry()
    candidate = next(c for c in mapping_candidates(workload, "avx512", registry)
                     if c.status == "kept" and c.padding)
    context = reshaped(workload, candidate)  # realised all the same
    assert {"A_reindex_reindex", "A_reindex_pad"} <= block_names(context)
    assert all(finished_correct(s) for s in apply_rules(context, registry.rules.values()))


@pytest.mark.parametrize("spec", [GEMM, CONV, "depthwise_conv2d:N=1,C=16,H=8,W=16,R=3,S=3,"
                                               "pad=1,dtype=int8"])
def test_every_sketch_of_every_kept_mapping_is_correct(spec):
    registry = default_registry()
    workload = load_workload(spec)
    for candidate in mapping_candidates(workload, "avx512", registry):
        if candidate.status == "kept":
            for sketch in apply_rules(reshaped(workload, candidate), registry.rules.values()):
                assert finished_correct(sketch), f"{candidate.id} {sketch.notes}"


def _register_level(context: ScheduleContext, factors: list[int]) -> ScheduleContext:
    """``context`` with each spatial loop split [rest, 1, factor] and annotated as tiled."""
    sch = context.sch
    for loop, axis, factor in zip(context.spatial, context.notes["spatial_axes"], factors):
        for part, level in zip(sch.split(loop, [None, 1, factor]), ["S0", "S1", "S2"]):
            sch.annotate(part, "gta_tile", f"{level}/{axis}")
    return context


def test_register_tile_rejects_an_accumulator_tile_that_would_spill():
    context = context_for("gemm:M=256,N=1024,K=64,dtype=int8")
    sch = context.sch
    MultiLevelTiling().apply(context)
    assert RegisterTile().applies(context.target)
    # Force the register level to 8 x 8 accumulators (64 > 32 registers), beside the 8
    # weight vectors it reuses and one broadcast word.
    fresh = _register_level(context_for("gemm:M=256,N=1024,K=64,dtype=int8"), [8, 8])
    r = fresh.reduce
    reason = RegisterTile().check(fresh)
    assert reason and "73 vector registers" in reason and "has 32" in reason
    assert sch is context.sch and r


@pytest.mark.parametrize("factors, needed", [([7, 4], 33), ([4, 7], 33), ([14, 2], 31),
                                             ([6, 4], 29), ([1, 8], 10)])
def test_register_tile_counts_the_input_values_a_tile_reuses(factors, needed):
    # An outer product of rows x column vectors keeps the fewer of its rows' broadcasts or
    # its columns' vectors live through a step and streams the other through one register:
    # 7 x 4 float FMAs are 28 accumulators, 4 weight vectors and a broadcast (33 of 32:
    # LLVM spills), where counting one register per input read 30.
    context = _register_level(context_for("gemm:M=112,N=256,K=64,dtype=float32", "fma"),
                              factors)
    reason = RegisterTile().check(context)
    assert (reason is not None) == (needed > 32)
    if reason:
        assert f"needs {needed} vector registers" in reason


@pytest.mark.parametrize("factors, rejected", [([1, 1], True), ([2, 2], True), ([4, 2], False),
                                               ([1, 8], False)])
def test_register_tile_latency_rejects_tiles_too_small_to_hide_latency(factors, rejected):
    context = _register_level(context_for("gemm:M=256,N=256,K=64,dtype=float32", "fma"),
                              factors)
    reason = RegisterTileLatency().check(context)
    assert (reason is not None) == rejected
    if rejected:
        assert f"tile of {factors[0] * factors[1]} vector registers" in reason


def test_register_tile_latency_accepts_the_largest_tile_small_loops_allow():
    # M=2 and N/16=2: a 2 x 2 tile is all there is, and must not be pruned.
    context = context_for("gemm:M=2,N=32,K=64,dtype=int8")
    assert RegisterTileLatency().check(_register_level(context, [2, 2])) is None
    fresh = context_for("gemm:M=2,N=32,K=64,dtype=int8")
    assert "4 needed" in RegisterTileLatency().check(_register_level(fresh, [1, 2]))


def test_the_init_blocks_copies_of_the_tiled_loops_are_not_counted():
    """decompose_reduction copies the S1/S2 loops, annotations and all, around the init
    block; counted too, a 4-register tile read as 16 and passed the latency bound."""
    context = context_for("gemm:M=512,N=512,K=512,dtype=float32", "fma", "n")
    sch = context.sch
    (m, i), (k,) = context.spatial, context.reduce
    tiles = [*sch.split(m, [None, 1, 4]), *sch.split(i, [None, 1, 1])]
    sch.reorder(tiles[0], tiles[3], k, tiles[1], tiles[4], tiles[2], tiles[5])
    for loop, level in zip([*tiles, k], ["S0/m", "S1/m", "S2/m", "S0/i", "S1/i", "S2/i",
                                         "R0/k"]):
        sch.annotate(loop, "gta_tile", level)
    tiled = tiled_loops(sch)
    assert "4 vector registers" in RegisterTileLatency().check(context)
    sch.decompose_reduction(sch.get_sblock(context.block), k)
    annotated = [loop for loop in loops_of(sch) if "gta_tile" in loop.annotations]
    assert len(annotated) == len(tiled) + 4  # the init's copies of S1 and S2 are there...
    assert tiled_loops(sch) == tiled  # ...and left out
    assert "4 vector registers" in RegisterTileLatency().check(context)


def test_cache_working_set_rejects_a_tile_larger_than_l2():
    from gta_core.host import cpu_cache_bytes

    # Rows of 1 KiB (a 1024-deep int8 reduction step) enough for twice this machine's L2.
    rows = 1 << max(8, (2 * cpu_cache_bytes().get("L2", 1 << 20) // 1024 - 1).bit_length())
    context = context_for(f"gemm:M={2 * rows},N=512,K=4096,dtype=int8")
    sch = context.sch
    m = sch.split(context.spatial[0], [1, 2, rows])  # a tile of `rows` rows per S1 step
    for loop, level in zip(m, ["S0", "S1", "S2"]):
        sch.annotate(loop, "gta_tile", f"{level}/m")
    k = sch.split(context.reduce[0], [1, 1024])
    for loop, level in zip(k, ["R0", "R1"]):
        sch.annotate(loop, "gta_tile", f"{level}/k")
    reason = CacheWorkingSet().check(context)
    assert reason and "L2" in reason


def test_parallel_extent_rejects_a_serial_program():
    context = context_for(GEMM)
    assert ParallelExtent().check(context) == "0 parallel iterations for 2 cores"
    MultiLevelTiling().apply(context)
    ParallelOuterTiles().apply(context)
    extent = parallel_extent(context.sch)
    assert (ParallelExtent().check(context) is None) == (extent >= 2)


def test_padding_waste_prunes_a_mapping_before_any_schedule_exists():
    fields = {"id": "m", "intrinsic": "vnni", "operands": {}, "axes": {}}
    target = default_registry().target("avx512")
    assert PaddingWaste().check_mapping(MappingCandidate(**fields, waste=0.3), target) is None
    assert "94%" in PaddingWaste().check_mapping(MappingCandidate(**fields, waste=0.9375),
                                                 target)


def test_an_operand_computed_elementwise_is_computed_inside_its_packing_copy():
    """A variance's moments (x and x^2) do arithmetic on each element: read in place, they
    would be a pass over memory of their own, so their packing stage stays and the padding
    rule computes them inside it. A plain input is still read in place."""
    context = context_for("variance:M=64,K=256", "fma")
    sketch = apply_rules(context, [InlineContiguousOperands(), InlinePaddingIntoPacking()])[0]
    assert "moments" not in block_names(sketch)
    assert finished_correct(sketch)
    mean = context_for("mean:M=64,K=256", "fma16-elementwise")
    sketch = apply_rules(mean, [InlineContiguousOperands()])[0]
    assert "x_reindex_reindex" not in block_names(sketch)


def _one_padded_copy(index: str, extent: int, row: int = 230):
    """A padded copy ``X_reindex_pad[w, v] = if_then_else(v < 7, src[...index...], 0)``."""
    from tvm.s_tir import Schedule
    from tvm.script import from_source

    func = from_source(f"""
# from tvm.script import tirx as T
@T.prim_func(s_tir=True)
def main(src: T.Buffer((8, {row}), "uint8"), out: T.Buffer((56, {extent}), "uint8")):
    for w, v in T.grid(56, {extent}):
        with T.sblock("X_reindex_pad"):
            vw, vv = T.axis.remap("SS", [w, v])
            out[vw, vv] = T.if_then_else(vv < 7, src[{index}], T.uint8(0))
""")
    sch = Schedule(func)
    VectorizePacking()._padded_packing(sch, sch.get_sblock("X_reindex_pad"))
    return [(int(sch.get(loop).extent), ForKind(int(sch.get(loop).kind)).name.lower())
            for loop in sch.get_loops(sch.get_sblock("X_reindex_pad"))]


def test_a_padded_copy_vectorises_the_runs_its_source_is_contiguous_over():
    # a stem's row from an offset (2w + rx): one run of the loop's 8
    assert _one_padded_copy("vw % 8, vw * 2 + vv", 8)[-1] == (8, "vectorized")
    # a loop over blocks of a source's 16 (an NCHW16c input under a 128-deep call): runs of
    # 16, not a 128-wide gather (ResNet-50 int8's AMX layers ran at half speed with that)
    assert _one_padded_copy("vv // 16 % 8, vv % 16", 128, 16)[-1] == (16, "vectorized")
