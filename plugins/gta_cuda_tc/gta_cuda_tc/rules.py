"""Generation rules for Tensor Core kernels: thread-block / warp / fragment tiling, staging.

They run on a reshaped mapping (see :mod:`gta_cuda_tc.realisation`): the main block's
``spatial`` and ``reduce`` loops step over fragments, its ``inner`` loops are one fragment
product. Together they give the classic structure of a wmma kernel::

    for bx  (S0, fused)              blockIdx.x   a thread block's tile of outputs
      for ty  (S1, fused)            threadIdx.y  one warp per sub-tile
        accumulators = 0                          S2 fragments per warp, in registers
        for R0:                                   a k-step: A and B tiles -> shared (all threads)
          for R1:                                 fragments shared -> wmma.matrix_a / _b
            for S2: mma_sync                      each accumulator of the warp
        accumulators -> shared -> global          (all threads)

Every tile size is sampled with ``sample_perfect_tile`` and every unroll depth with
``sample_categorical``, so a design space is a trace whose decisions MetaSchedule mutates and
replays; the placement and tensorization are shared with the untuned realisation
(:func:`gta_cuda_tc.realisation.stage_operands`, :func:`~gta_cuda_tc.realisation.finish`).
The R0 loop is then a two-stage software pipeline whose copies are ``cp.async``
(:class:`SoftwarePipeline`).
"""

from __future__ import annotations

from gta_core.sdk import (
    GenerationRule,
    Intrinsic,
    RealisationError,
    ScheduleContext,
    child_statements,
)

from .realisation import Staging, block_memory, fragment_scopes, stage_operands, warp_size

COPY_BYTES = 16  # what one lane moves per global -> shared load: a 128-bit vector


_FRAGMENT_INTRINSICS: dict[str, bool] = {}


def _fragment_intrinsic(intrinsic: Intrinsic) -> bool:
    """Whether ``intrinsic`` computes on fragments it loads from shared memory (wmma)."""
    if intrinsic.name not in _FRAGMENT_INTRINSICS:
        try:
            fragment_scopes(intrinsic)
            _FRAGMENT_INTRINSICS[intrinsic.name] = True
        except RealisationError:
            _FRAGMENT_INTRINSICS[intrinsic.name] = False
    return _FRAGMENT_INTRINSICS[intrinsic.name]


def tensor_core(context: ScheduleContext) -> bool:
    """Whether ``context`` is a reshaped mapping onto a fragment intrinsic of a GPU target."""
    return (context.target.kind == "gpu" and context.intrinsic is not None
            and context.mapping is not None and _fragment_intrinsic(context.intrinsic))


class WarpTiling(GenerationRule):
    """Tile the fragment loops three ways: thread blocks, warps, fragments per warp.

    Each spatial loop splits into S0 (blockIdx.x), S1 (a warp each, threadIdx.y) and S2
    (accumulator fragments a warp holds); each reduction loop into R0 (a k-step staged in
    shared memory) and R1 (fragments loaded per k-step). Loops are ordered S0 S1 R0 R1 S2,
    the S0 loops fused onto blockIdx.x and the S1 loops onto threadIdx.y. Warps and
    fragments are sampled per loop up to ``max_factor`` each; the constraints reject the
    combinations that do not fit.
    """

    name = "warp-tiling"
    stage = 20
    max_factor = 4

    def applies(self, context: ScheduleContext) -> bool:
        return tensor_core(context) and bool(context.spatial) and bool(context.reduce)

    def apply(self, context: ScheduleContext) -> None:
        sch = context.sch
        blocks, warps, fragments, warp_factors = [], [], [], []
        for loop in context.spatial:
            outer, fragment = sch.split(loop, sch.sample_perfect_tile(
                loop, n=2, max_innermost_factor=self.max_factor))
            factors = sch.sample_perfect_tile(outer, n=2, max_innermost_factor=self.max_factor)
            block, warp = sch.split(outer, factors)
            blocks.append(block)
            warps.append(warp)
            fragments.append(fragment)
            warp_factors.append(factors[1])
        steps, loads = [], []
        for loop in context.reduce:
            step, load = sch.split(loop, sch.sample_perfect_tile(
                loop, n=2, max_innermost_factor=self.max_factor))
            steps.append(step)
            loads.append(load)
        sch.reorder(*blocks, *warps, *steps, *loads, *fragments, *context.inner)
        block = sch.fuse(*blocks)
        sch.bind(block, "blockIdx.x")
        warp = sch.fuse(*warps)
        sch.bind(warp, "threadIdx.y")
        context.levels.update({"S0": [block], "S1": [warp], "S2": fragments, "R0": steps,
                               "R1": loads})
        # The sampled warp factors: the cooperative copies split by them too, so a mutated
        # decision changes both together.
        context.notes["warps"] = warp_factors


class StageThroughShared(GenerationRule):
    """Stage operands through shared memory into the fragment scopes, and back out.

    Per k-step (the last R0 loop) each input tile is copied global -> shared by all threads
    of the block, each lane moving a 16-byte vector; per R1 step its fragments are loaded
    shared -> ``wmma.matrix_a`` / ``wmma.matrix_b``. Each warp's accumulators live in
    ``wmma.accumulator`` and are stored to shared under the block's loop, from where all
    threads copy the block's tile to global memory.
    """

    name = "stage-through-shared"
    stage = 30

    def applies(self, context: ScheduleContext) -> bool:
        return tensor_core(context) and bool(context.levels.get("R1"))

    def apply(self, context: ScheduleContext) -> None:
        inputs, output = block_memory(context.workload, context.mapping, context.intrinsic)
        itemsize = max(1, _bits(context.intrinsic.input_dtypes[0]) // 8)
        levels = context.levels
        stage_operands(context.sch, context.block, inputs, output, context.intrinsic,
                       Staging(output_at=levels["S0"][-1], accumulator_at=levels["S1"][-1],
                               shared_at=levels["R0"][-1], fragment_at=levels["R1"][-1],
                               warps=context.notes["warps"], vector=COPY_BYTES // itemsize),
                       warp_size(context.target))


class SoftwarePipeline(GenerationRule):
    """Load the next k-step's tiles while the Tensor Cores work on this one.

    The k-step loop (the last R0 loop) becomes a two-stage software pipeline: its
    global -> shared copies are stage 0, issued as asynchronous copies (``cp.async``, sm_80+)
    one k-step ahead into a second set of shared buffers, and the fragment loads and
    products are stage 1. TVM's ``InjectSoftwarePipeline`` builds it from the
    ``software_pipeline_*`` annotations set here, its ``InjectPTXAsyncCopy`` the copies
    (``tirx.use_async_copy``, set for CUDA builds); the shared-memory constraint counts the
    doubled buffers.
    """

    name = "software-pipeline"
    stage = 40

    def applies(self, context: ScheduleContext) -> bool:
        return tensor_core(context) and bool(context.levels.get("R0"))

    def apply(self, context: ScheduleContext) -> None:
        sch = context.sch
        step = context.levels["R0"][-1]
        body = sch.get(step).body
        children = list(body.seq) if hasattr(body, "seq") else [body]
        stages = [0 if _copies_to_shared(child) else 1 for child in children]
        if 0 not in stages or 1 not in stages:
            return  # nothing to overlap
        sch.annotate(step, "software_pipeline_stage", stages)
        sch.annotate(step, "software_pipeline_order", list(range(len(stages))))
        sch.annotate(step, "software_pipeline_async_stages", [0])


def _copies_to_shared(stmt) -> bool:
    """Whether every block under ``stmt`` writes shared memory (a staging copy)."""
    blocks, stack = [], [stmt]
    while stack:
        node = stack.pop()
        if hasattr(node, "writes") and hasattr(node, "alloc_buffers"):  # a block
            blocks.append(node)
        stack.extend(child_statements(node, init=False))
    return bool(blocks) and all(r.source.scope() == "shared" for b in blocks for r in b.writes)


class UnrollKernel(GenerationRule):
    """Let the compiler unroll the kernel's loops up to a sampled depth (0, 16, 64 or 512).

    Unrolled fragment loops turn fragment indices into constants (registers instead of
    local-memory arrays); the depth is sampled since deeper unrolling also costs registers.
    """

    name = "unroll-kernel"
    stage = 50
    depths = (0, 16, 64, 512)

    def applies(self, context: ScheduleContext) -> bool:
        return tensor_core(context) and bool(context.levels.get("S1"))

    def apply(self, context: ScheduleContext) -> None:
        sch = context.sch
        depth = sch.sample_categorical(list(self.depths), [1 / len(self.depths)] * len(self.depths))
        sch.annotate(sch.get_sblock("root"), "meta_schedule.unroll_explicit", depth)


def _bits(dtype: str) -> int:
    return int("".join(ch for ch in dtype if ch.isdigit()) or 8)


GPU_RULES = (WarpTiling(), StageThroughShared(), SoftwarePipeline(), UnrollKernel())
