"""The third-party AVX2 target in examples/: installs, conforms, tunes correctly, and emits the
instructions it declares (an exact widening int8 dot product, never a saturating one)."""

from __future__ import annotations

import re

import pytest


@pytest.fixture(scope="module")
def registry(avx2_registry):
    return avx2_registry


def test_it_tunes_gemm_and_conv2d_in_int8_and_float32_correctly(registry, tmp_path):
    from gta_core.tuning import tune

    specs = [f"{op},dtype={dtype}" for op in ("gemm:M=64,N=64,K=128",
                                               "conv2d:N=1,C=16,H=14,W=14,K=32,R=3,S=3,pad=1")
             for dtype in ("int8", "float32")]
    report = tune(specs, "avx2", 8, tmp_path / "db", registry=registry)
    for task in report.tasks:
        assert task.correct, task.workload
        assert task.mapping.startswith("avx2-"), task.mapping
        assert task.wrong == 0


def test_a_depthwise_layer_tunes_on_the_lane_by_lane_multiply_add(registry, tmp_path):
    """Each lane another channel: in int8 only the lane-by-lane intrinsic takes a depthwise
    layer (the dot product broadcasts the activations)."""
    from gta_core.api import mappings
    from gta_core.tuning import tune

    spec = "depthwise_conv2d:N=1,C=16,H=14,W=14,R=3,S=3,pad=1,dtype={}"
    [task] = tune([spec.format("int8")], "avx2", 6, tmp_path / "db", registry=registry).tasks
    assert task.correct and task.wrong == 0 and task.mapping.startswith("avx2-mac8-u8s8")
    # float32 also maps onto the broadcast FMA (lanes on the pixels); the lane-by-lane one
    # on the channels is kept, and computes correctly
    lanes = [m for m in mappings(spec.format("float32"), "avx2", check=True,
                                 registry=registry).mappings
             if m.intrinsic == "avx2-fma8-elementwise" and m.status == "kept"]
    assert lanes and all(m.checked for m in lanes)
    asm = _assembly(registry, "avx2-mac8-u8s8")
    # widened (LLVM then multiplies the 16-bit values with vpmaddwd, or with vpmulld)
    assert re.search(r"\bvpmovzxbd\b", asm) and re.search(r"\bvpmovsxbd\b", asm)
    assert re.search(r"\bvp(maddwd|mulld)\b", asm) and not re.search(r"\bzmm\d", asm)


def _assembly(registry, intrinsic_name: str) -> str:
    from gta_core.intrinsic_check import sample_mappings
    from gta_core.mapping.realise import realise
    from gta_core.measure.check import build

    target = registry.targets["avx2"]
    intrinsic = registry.intrinsics[intrinsic_name]
    workload, candidate = sample_mappings(intrinsic, target, registry)[0]
    realised = realise(workload, candidate, intrinsic, target)
    return build(realised.sch.mod, target).mod.inspect_source("asm")


def test_int8_is_an_exact_widening_dot_product_in_ymm_registers(registry):
    asm = _assembly(registry, "avx2-madd-u8s8")
    assert re.search(r"\bvpmaddwd\b", asm) and re.search(r"\bvpmovsxbw\b", asm)
    assert not re.search(r"\bvpmaddubsw\b", asm)  # saturates: wrong on full-range data
    assert not re.search(r"\bzmm\d", asm)  # nothing AVX-512


def test_float32_is_a_256_bit_fma(registry):
    asm = _assembly(registry, "avx2-fma")
    assert re.search(r"\bvfmadd\d+ps\s+%?ymm", asm) or re.search(r"vfmadd\d+ps.*ymm", asm)
    assert not re.search(r"\bzmm\d", asm)


def test_a_chain_no_intrinsic_takes_tunes_as_one_parallel_pass_and_is_checked(registry,
                                                                             tmp_path):
    """A model's function with no anchor (here an 8-bit stem's input quantized, padded and
    laid out in words of channels) is searched in MetaSchedule's generic space and as one
    injective pass (gta_core.scheduler.injective); the pick is checked against the
    function run unscheduled. On this target so that it runs on any AVX2 CPU."""
    import tvm
    from test_injective import input_words

    from gta_core.database import RecordStore
    from gta_core.tuning import tune_workloads
    from gta_core.workloads.subgraph import SubgraphWorkload, narrowed

    workload = SubgraphWorkload.from_function(
        "input_words", narrowed(input_words(40, 48)["main"]))
    assert workload.main_block is None
    report = tune_workloads([workload], [1.0], "avx2", 12, tmp_path / "db", registry=registry,
                            generic_fallback=True)
    [task] = report.tasks
    assert task.mapping == "generic" and task.correct and task.wrong == 0
    # the one pass was measured: a single block under a parallel loop, the word unrolled
    store = RecordStore(tmp_path / "db")
    passes = []
    for record in store.records():
        sch = store.schedule(record)
        blocks = sch.get_child_blocks(sch.get_sblock("root"))
        kinds = [int(sch.get(loop).kind) for loop in sch.get_loops(blocks[-1])]
        if len(blocks) == 1 and kinds[-1] == tvm.tirx.ForKind.UNROLLED and \
                tvm.tirx.ForKind.PARALLEL in kinds:
            passes.append(record)
    assert passes and all(r.correct for r in passes)


def test_its_16_registers_keep_a_short_image_to_tiles_that_do_not_spill(registry):
    """A 1x1 convolution at 7x7: 7 pixels x 2 channel vectors are 14 accumulators, the 2
    weight vectors they reuse and a broadcast, 17 registers (LLVM spilled an accumulator:
    MobileNet-V2's 960 -> 160 layer took 161-165 us so, 141-143 as 7 x 1). The 7 x 1 tile
    is the largest that fits, so it hides the FMA latency as well as these loops allow."""
    from gta_core.generation.rule import ScheduleContext
    from gta_core.mapping import mapping_candidates
    from gta_core.pruning.cpu import RegisterTile, RegisterTileLatency, TiledLoop
    from gta_core.scheduler.space import Task
    from gta_core.workloads import parse_workload

    workload = parse_workload("conv2d:N=1,C=64,H=7,W=7,K=32,R=1,S=1,dtype=float32",
                              registry.operators)
    mapping = next(c for c in mapping_candidates(workload, "avx2", registry)
                   if c.status == "kept" and c.axes == {"i": ["k"]})
    task = Task(workload, mapping, registry.intrinsics[mapping.intrinsic],
                registry.target("avx2"))

    def verdicts(pixels: int, vectors: int) -> list[str | None]:
        tiles = [TiledLoop("S2", "h", pixels), TiledLoop("S2", "i", vectors)]
        context = ScheduleContext(sch=None, block=task.workload.main_block, target=task.target,
                                  workload=task.workload, intrinsic=task.intrinsic,
                                  mapping=task.mapping, tiles=tiles)
        return [RegisterTile().check(context), RegisterTileLatency().check(context)]

    spilled, latency = verdicts(7, 2)
    assert spilled and "needs 17 vector registers" in spilled and "has 16" in spilled
    assert verdicts(7, 1) == [None, None]
    assert verdicts(1, 4)[0] is None and "7 needed" in verdicts(1, 4)[1]
