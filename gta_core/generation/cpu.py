"""The core's generation rules for CPU targets.

They run on a realised mapping (see :mod:`gta_core.mapping.realise`): the
main block's loops are ``spatial`` and ``reduce`` loops outside the
intrinsic's own ``inner`` loops, and each operand has a reindex (packing)
stage that lays it out as the intrinsic wants. Together they give the
classic structure of a fast CPU kernel: parallel tiles, cache tiles, and a
register-resident accumulator tile around the intrinsic.
"""

from __future__ import annotations

from ..mapping.rewrite import steps_by_one, uses_var
from ..mapping.stages import PADDED, is_packing_stage, is_write_back_stage
from .rule import GenerationRule, ScheduleContext, constant_names, constant_stages

LEVEL_KEY = "gta_tile"  # loop annotation naming a tile level; constraints read it back
PER_TILE_ONLY = "padded-per-tile-only"  # note: the paddings no sketch may do whole


def _is_cpu(context: ScheduleContext) -> bool:
    return context.target.kind == "cpu" and context.intrinsic is not None


def movable_stages(context: ScheduleContext) -> bool:
    """Whether packing / write-back stages may be moved under tile loops.

    Not when the mapping fuses several operator loops into one intrinsic axis:
    TVM 0.27's compute_at then under-estimates the region a stage must cover
    (the bounding box of a fused index's floordiv/floormod), and the program
    builds but computes wrong results (seen on conv2d with c*r fused).
    """
    return context.mapping is not None and all(
        len(group) == 1 for group in context.mapping.axes.values())


class InlineContiguousOperands(GenerationRule):
    """Read an operand in place when its intrinsic window is already contiguous in memory.

    A GEMM's activation row feeds VNNI's broadcast word straight from A[m, k]:
    copying A into a packed buffer first only costs time. An operand's packing
    stage is inlined when its window has one dimension, needs no padding and is fed by
    operator loops whose innermost indexes the source tensor's last dimension with
    coefficient 1, any outer ones a dimension each and the window dividing the innermost's
    extent (an NCHW16c input's channel block and lane under VNNI's 4-byte word: the word
    lies inside one block); and when it has none (FMA's broadcast scalar: any element is
    contiguous) in a mapping that pads nothing. A model's constant weight keeps its
    packing stage: the compiled model runs it once.
    """

    name = "inline-contiguous-operands"
    stage = 10

    def applies(self, context: ScheduleContext) -> bool:
        return _is_cpu(context) and bool(self._inlinable(context))

    def apply(self, context: ScheduleContext) -> None:
        sch = context.sch
        names = self._inlinable(context)
        for block in sch.get_producers(sch.get_sblock(context.block)):
            if sch.get(block).name_hint in names:
                sch.compute_inline(block)

    @staticmethod
    def _inlinable(context: ScheduleContext) -> set[str]:
        names = inlined_packing(context.workload, context.intrinsic, context.mapping)
        # A constant's packing stays: the compiled model runs it once, and read in place a
        # weight is walked a row apart per step (BERT's QKV projection, a (768, 2304)
        # weight, 8 columns at a time, each row 9 KB on from the last).
        names -= constant_stages(context.sch, constant_names(context.workload))
        return {name for name in names if not _computed_elementwise(context.sch, name)}


def _computed_elementwise(sch, packing: str) -> bool:
    """Whether the packing stage ``packing`` copies a stage that does arithmetic on each
    element (``x * x`` of a variance's moments): reading that stage in place would leave it a
    pass of its own over memory, where :class:`InlinePaddingIntoPacking` computes it inside
    the packing copy instead. A padding, a cast or a constant is no such stage (reading it in
    place costs what it did)."""
    from tvm import tirx

    arithmetic = (tirx.Add, tirx.Sub, tirx.Mul, tirx.Div, tirx.FloorDiv, tirx.Min, tirx.Max)
    try:
        producers = sch.get_producers(sch.get_sblock(packing))
    except Exception:  # noqa: BLE001 - no such stage in this program
        return False
    for producer in producers:
        block = sch.get(producer)
        if not block.iter_vars or any(v.iter_type != 0 for v in block.iter_vars):
            continue
        if isinstance(block.body, tirx.BufferStore) and _does_arithmetic(block.body.value,
                                                                         arithmetic):
            return True
    return False


def _does_arithmetic(expr, arithmetic: tuple) -> bool:
    """Whether the value ``expr`` computes with the loaded values (its indices left out)."""
    if isinstance(expr, arithmetic):
        return True
    children = [getattr(expr, name, None) for name in
                ("value", "condition", "true_value", "false_value")]
    children += list(getattr(expr, "args", None) or [])
    return any(child is not None and not isinstance(child, str) and hasattr(child, "dtype")
               and _does_arithmetic(child, arithmetic) for child in children)


def inlined_packing(workload, intrinsic, mapping) -> set[str]:
    """The packing stages :class:`InlineContiguousOperands` reads in place, by block name."""
    from ..mapping.access import intrinsic_computation
    from ..mapping.builtin import workload_computation

    op = workload_computation(workload)
    intr = intrinsic_computation(intrinsic)
    names = set()
    for operand in intr.inputs:
        window = [v for index in operand.indices for v, c in index if v and c]
        access = next(a for a in op.inputs if a.tensor == mapping.operands[operand.tensor])
        if not window and not mapping.padding:
            names.add(f"{access.tensor}_reindex_reindex")
        if len(window) != 1 or window[0] in mapping.padding:
            continue
        group = mapping.axes[window[0]]
        if access.innermost(group[-1]) and _blocks_whole(
                group, intr.axis(window[0]).extent, op, access):
            names.add(f"{access.tensor}_reindex_reindex")
    return names


def _blocks_whole(group: list[str], window: int, op, access) -> bool:
    """Whether a run of ``window`` values of the loops ``group`` fused (outermost first)
    stays inside one run of its innermost loop, each outer loop on a dimension of its own:
    an NCHW16c input's channel block and lane under VNNI's 4-byte word."""
    *outer, inner = group
    return op.axis(inner).extent % window == 0 and all(
        access.dimension_of({v: 1}) not in (None, len(access.indices) - 1) for v in outer)


class InlinePaddingIntoPacking(GenerationRule):
    """Compute zero padding inside the packing copy that reads it: one pass over the input.

    A convolution's ``pad`` stage writes a padded copy that a packing stage then copies
    again; inlining it makes the packing stage read the input directly (the bounds test
    becomes part of the copy). Applies to every stage at the root whose only consumers are
    packing stages and that reduces nothing.
    """

    name = "inline-padding-into-packing"
    stage = 12

    def applies(self, context: ScheduleContext) -> bool:
        return _is_cpu(context) and bool(self._inlinable(context))

    def apply(self, context: ScheduleContext) -> None:
        for block in self._inlinable(context):
            context.sch.compute_inline(block)

    @staticmethod
    def _inlinable(context: ScheduleContext) -> list:
        sch = context.sch
        out = []
        for packing in sch.get_producers(sch.get_sblock(context.block)):
            if not is_packing_stage(sch.get(packing).name_hint):
                continue
            for block in sch.get_producers(packing):
                consumers = sch.get_consumers(block)
                if is_packing_stage(sch.get(block).name_hint):  # an unmerged padded input's
                    continue
                if all(v.iter_type == 0 for v in sch.get(block).iter_vars) and consumers and all(
                        is_packing_stage(sch.get(c).name_hint) for c in consumers) and not any(
                        sch.get(block).same_as(sch.get(b)) for b in out):
                    out.append(block)
        return out


class MultiLevelTiling(GenerationRule):
    """Tile the loops around the intrinsic: parallel, cache and register levels.

    Spatial loops split three ways (S0 parallel, S1 cache, S2 register) and
    reduction loops two ways (R0, R1), ordered S0 R0 S1 R1 S2 around the
    intrinsic: each S2 x intrinsic tile of outputs stays in vector registers
    while R1 streams through its inputs. Tile sizes are sampled with
    ``sample_perfect_tile``; each loop is annotated ``level/axis`` (e.g.
    ``S2/m``), which the resource constraints read back.
    """

    name = "multi-level-tiling"
    stage = 20
    max_register_factor = 8
    max_reduction_factor = 64

    def applies(self, context: ScheduleContext) -> bool:
        return _is_cpu(context) and bool(context.spatial)

    def apply(self, context: ScheduleContext) -> None:
        sch = context.sch
        levels: dict[str, list] = {"S0": [], "S1": [], "S2": [], "R0": [], "R1": []}
        for loop in context.spatial:
            tiles = sch.split(loop, sch.sample_perfect_tile(
                loop, n=3, max_innermost_factor=self.max_register_factor))
            for name, tile in zip(("S0", "S1", "S2"), tiles):
                levels[name].append(tile)
        for loop in context.reduce:
            tiles = sch.split(loop, sch.sample_perfect_tile(
                loop, n=2, max_innermost_factor=self.max_reduction_factor))
            for name, tile in zip(("R0", "R1"), tiles):
                levels[name].append(tile)
        sch.reorder(*levels["S0"], *levels["R0"], *levels["S1"], *levels["R1"], *levels["S2"],
                    *context.inner)
        axes = {"S": context.notes.get("spatial_axes", []),
                "R": context.notes.get("reduce_axes", [])}
        for name, loops in levels.items():
            for loop, axis in zip(loops, axes[name[0]] or [""] * len(loops)):
                sch.annotate(loop, LEVEL_KEY, f"{name}/{axis}")
        context.levels.update(levels)


class RegisterAccumulator(GenerationRule):
    """Keep the accumulator tile in registers: a small local buffer per cache tile.

    Forks two design spaces: one accumulating straight into the output (S0 R0 S1 R1
    S2: the reduction blocked for the cache, each step re-reading the output tile),
    and one through ``cache_write`` into a buffer copied out under the last S1 loop,
    with the whole reduction moved inside S1 (S0 S1 R0 R1 S2), so the S2 x
    intrinsic-sized accumulator is initialised, kept in vector registers across the
    reduction and copied out once (the note ``accumulator`` names the block copying
    it out). Left outside S1, R0 would make that buffer span every cache tile, be
    re-read at each R0 step and copied out after each: the first space's work plus
    the copies (float32 GEMM 512^3: 1616 us against 1448).
    """

    name = "register-accumulator"
    stage = 30

    def applies(self, context: ScheduleContext) -> bool:
        return _is_cpu(context) and bool(context.levels.get("S1"))

    def apply(self, context: ScheduleContext) -> list[ScheduleContext]:
        cached = context.fork()
        sch = cached.sch
        if cached.levels.get("R0"):
            sch.reorder(*cached.levels["S1"], *cached.levels["R0"])
        accumulator = sch.cache_write(sch.get_sblock(cached.block), 0, "global")
        sch.reverse_compute_at(accumulator, cached.levels["S1"][-1])
        cached.notes["accumulator"] = sch.get(accumulator).name_hint
        return [context, cached]


class WriteBackPerTile(GenerationRule):
    """Copy results back out of the intrinsic's output layout per parallel tile.

    The output's reindex stage (or a widened program's crop) moves under the
    last S0 loop, so each core writes back its own tile while it is still in
    cache. With lanes from a reduction (``rfactor``), the block adding the
    lanes up goes there as well.
    (A mapping whose output windows are contiguous where they are writes the
    output in place and has no write-back stage.)
    """

    name = "write-back-per-tile"
    stage = 30

    def applies(self, context: ScheduleContext) -> bool:
        return _is_cpu(context) and bool(context.levels.get("S0")) and movable_stages(context)

    def apply(self, context: ScheduleContext) -> None:
        sch = context.sch
        main = sch.get_sblock(context.block)
        tile = context.levels["S0"][-1]
        stages = sch.get_consumers(main)
        if context.notes.get("accumulator"):  # the write-back reads the accumulator's copy-out
            stages += sch.get_consumers(sch.get_sblock(context.notes["accumulator"]))
        for consumer in stages:
            if is_write_back_stage(sch.get(consumer).name_hint):
                sch.reverse_compute_at(consumer, tile)
        if context.block != context.workload.main_block:  # rfactor: the sum of the lanes
            _sum_lanes_at(sch, sch.get_sblock(context.workload.main_block), tile)


def _sum_lanes_at(sch, total, tile) -> None:
    """Add the lanes up in ``tile``, each output's lanes in an unrolled innermost loop: its
    partial sums (contiguous) are then one chain of adds, where rfactor's order (the lanes
    outermost) loads and stores every output once a lane.

    Compute-at keeps unit loops, so that the loops fetched to reorder are as many whatever
    sizes the tile samples: a trace replayed with other sizes must fetch as many as it
    recorded.
    """
    from tvm.tirx import IterVar

    sch.reverse_compute_at(total, tile, preserve_unit_loops=True)
    loops = sch.get_loops(total)
    realize = sch.get(loops[-1]).body
    reduced = [value for iv, value in zip(realize.block.iter_vars, realize.iter_values)
               if iv.iter_type == IterVar.CommReduce]
    lanes = [loop for loop in loops
             if any(uses_var(value, sch.get(loop).loop_var) for value in reduced)]
    if len(lanes) != 1:
        return
    inside = loops[loops.index(lanes[0]) + 1:]
    if inside:
        sch.reorder(*inside, lanes[0])
    sch.unroll(lanes[0])


class ParallelOuterTiles(GenerationRule):
    """Run the S0 tiles in parallel: fuse them into one loop over the cores."""

    name = "parallel-outer-tiles"
    stage = 40

    def applies(self, context: ScheduleContext) -> bool:
        return _is_cpu(context) and bool(context.levels.get("S0"))

    def apply(self, context: ScheduleContext) -> None:
        sch = context.sch
        outer = context.levels["S0"]
        if len(outer) > 1:
            for loop in outer:  # fuse refuses annotated loops
                sch.unannotate(loop, LEVEL_KEY)
            fused = sch.fuse(*outer)
            sch.annotate(fused, LEVEL_KEY, "S0/")
        else:
            fused = outer[0]
        sch.parallel(fused)
        context.levels["S0"] = [fused]


class UnrollRegisterTile(GenerationRule):
    """Unroll the register tile fully, and let LLVM unroll up to a sampled step above it.

    Unrolling S2 turns the accumulator tile's indices into constants, which is
    what lets LLVM hold it in registers; the sampled auto-unroll step (0, 16
    or 64) is bounded to keep builds cheap.
    """

    name = "unroll-register-tile"
    stage = 50
    steps = (0, 16, 64)

    def applies(self, context: ScheduleContext) -> bool:
        return _is_cpu(context) and bool(context.levels.get("S2"))

    def apply(self, context: ScheduleContext) -> None:
        sch = context.sch
        for loop in context.levels["S2"]:
            sch.unroll(loop)
        step = sch.sample_categorical(list(self.steps), [1 / len(self.steps)] * len(self.steps))
        sch.annotate(sch.get_sblock("root"), "meta_schedule.unroll_explicit", step)


def split_to_lanes(sch, loops: list, lanes: int) -> list:
    """``loops``, the innermost split by its largest divisor up to ``lanes`` when it is
    longer (a widened input's 66 columns: 2 x 33); unchanged where no divisor but 1 fits."""
    extent = sch.get(loops[-1]).extent
    if not hasattr(extent, "value") or extent.value <= lanes:
        return loops
    divisor = max(d for d in range(1, lanes + 1) if extent.value % d == 0)
    return loops if divisor == 1 else [*loops[:-1], *sch.split(loops[-1], [None, divisor])]


class VectorizePacking(GenerationRule):
    """Vectorise the innermost loop of each packing and write-back stage; run large ones in
    parallel (their loops but the innermost vector and serial ones fused on the cores).

    A packing stage that pads (``if_then_else(inside, x, 0)``, e.g. a convolution's padding
    inlined into it) also gets a second sketch where it is a zero fill and an unguarded
    copy of the inside, per plane of its last two loops: the guarded load keeps the
    stage's vector scalar. So does a padding stage the main block reads in place (its
    packing copy inlined by :class:`InlineContiguousOperands`).

    A stage that moves data between a tensor and the intrinsic's packed layout
    (``B_reindex[n // 16, k // 4, n % 16, k % 4] = B[k, n]``, or a write-back
    ``conv2d[n, k, h, w] = conv2d_reindex[n, h, w, k // 16, k % 16]``) first gets the
    packed buffer's indices as its own iteration space (``transform_block_layout``), so
    it walks that buffer in order wherever it is later moved (``compute_at`` makes loops
    from the block's iterators); see :meth:`_in_packed_order`. When the packed side's
    innermost index is a split (``k % 4``), the two innermost loops move a small 2-D tile
    between the layouts and are left to LLVM, whose interleaved-access vectoriser turns
    them into row loads and shuffles (B of 512x512 int8: 13 us, against 42 us with TVM's
    vector of 4 strided loads and 190 us walked in B's order).

    Runs first (stage 15), while every stage still has its own loop nest at the
    root: once a stage is moved under tile loops, how many loops it has depends
    on the sampled tile sizes (unit loops vanish), and a trace whose queries
    return a decision-dependent number of loops cannot be replayed. (A moved
    stage gets new loops; LLVM's vectoriser handles those.)
    """

    name = "vectorize-packing"
    stage = 15
    max_lanes = 64
    min_parallel_elements = 1 << 14  # below this, starting the cores costs more than it saves
    # A vectorised stage this large (lanes included) runs on the cores however few its
    # vectors: a depthwise layer's 14x14x576 u8 zero padding (9216 vectors of 16) took
    # 24.5 us of its function's time serial, 16.6 in parallel.
    min_parallel_vector_elements = 1 << 16

    def applies(self, context: ScheduleContext) -> bool:
        return _is_cpu(context)

    def apply(self, context: ScheduleContext) -> list[ScheduleContext] | None:
        sch = context.sch
        main = sch.get_sblock(context.block)
        producers = sch.get_producers(main)
        padded = []
        for block in [*producers, *sch.get_consumers(main)]:
            name = sch.get(block).name_hint
            producer = any(sch.get(block).same_as(sch.get(p)) for p in producers)
            role = is_packing_stage(name) if producer else is_write_back_stage(name)
            if not (role or producer and self._padding_read_in_place(context, block)):
                continue
            if producer and name.endswith(PADDED):
                self._padded_packing(sch, block)
                for packing in sch.get_producers(block):  # not merged into it: two copies
                    if is_packing_stage(sch.get(packing).name_hint):
                        self._vector_and_parallel(sch, sch.get_loops(packing),
                                                  self._in_packed_order(sch, packing, True))
                continue
            interleaved = self._in_packed_order(sch, block, producer)
            loops = sch.get_loops(block)
            if producer and len(loops) > 2 and sch.can_decompose_padding(block, loops[-2]):
                padded.append((block, loops, interleaved))
                continue
            self._vector_and_parallel(sch, loops, interleaved)
        if not padded:
            return None
        # A padded copy's guarded load does not vectorise; split into a zero fill and a copy
        # of the inside, it does, but it can then no longer be moved into a tile (its buffer
        # has two writers). Both are kept, as two sketches. (The guarded copy gets TVM's
        # vector even when interleaved: LLVM leaves a guarded load scalar.)
        # A depthwise layer's padding is never split: it is padded per tile
        # (:class:`~.padding_at_tile.PaddingAtTile` reads the note), which a split one
        # cannot be.
        tiled = [self.padded_per_tile(context, block) for block, _, _ in padded]
        context.notes[PER_TILE_ONLY] = [sch.get(block).name_hint
                                        for (block, _, _), only in zip(padded, tiled) if only]
        split = context.fork()
        for (block, loops, interleaved), only in zip(padded, tiled):
            self._vector_and_parallel(sch, loops)
            if only:
                self._vector_and_parallel(split.sch, loops)
            else:
                self._fill_then_copy(split.sch, block, loops, interleaved)
        if all(tiled):
            return None
        split.notes["padding"] = "fill-then-copy"
        return [context, split]

    def _padded_packing(self, sch, block) -> None:
        """A padded input's one packing stage (realisation's ``_pack_into_padding``: the
        input, its own zero padding and the rows rounded up to the intrinsic's, in one
        guarded copy), walked in the order it writes: its innermost loop split by the run
        its source is contiguous over (the 16 channels of an NCHW16c block), vectorised,
        the rest on the cores. Its conditions do not change along that run, so the vector
        is a masked row copy (ResNet-50's layer3 3x3 on AMX, 40 trials: 101 us against 132
        with the copy scalar and serial)."""
        from math import gcd

        from tvm import tirx

        stmt = sch.get(block)
        loops = sch.get_loops(block)
        inner = stmt.iter_vars[-1].var
        source = stmt.reads[0] if len(stmt.reads) == 1 else None
        extent = sch.get(loops[-1]).extent
        if source is None or not hasattr(extent, "value") or not uses_var(
                source.region[-1].min, inner):  # a transposing copy: as an unpadded one,
            interleaved = self._in_packed_order(sch, block, True)  # but on the cores when
            loops = sch.get_loops(block)  # large (an im2col's 2-D tiles are few and long)
            if interleaved and (self._elements(sch, loops) or 0) >= \
                    self.min_parallel_vector_elements:
                self._parallel(sch, loops[:-2], True)
            else:
                self._vector_and_parallel(sch, loops, interleaved)
            return
        # a loop over several of the source's rows (channel blocks: c % 16), or a plain
        # variable that may wrap past a row's end, moves runs of the gcd; one that steps
        # along a row from an offset (a stem's 2w + rx) moves one run
        index = source.region[-1].min
        run = int(extent.value) if not isinstance(index, tirx.Var) and steps_by_one(
            index, inner) else gcd(int(extent.value), int(source.source.shape[-1]))
        if 1 < run < extent.value:
            loops = [*loops[:-1], *sch.split(loops[-1], [None, run])]
        self._vector_and_parallel(sch, loops)

    @staticmethod
    def _padding_read_in_place(context: ScheduleContext, block) -> bool:
        """Whether ``block``, a producer of the main block that is no packing stage, is a
        zero padding the main block reads as it is, its packing copy inlined (FMA's
        broadcast scalar from a padded NCHWc input): left alone, it is a serial, scalar
        pass over the input before the parallel loop (ResNet-18's stem at 128x128: 307 us,
        284 with the padding vectorised). A constant's padding is left to the compiled
        model's prepacking."""
        sch = context.sch
        stmt = sch.get(block)
        loops = sch.get_loops(block)
        return (len(loops) > 2 and len(stmt.reads) == 1 and len(stmt.writes) == 1
                and all(v.iter_type == 0 for v in stmt.iter_vars)
                and not context.reads_constant(block)
                and sch.can_decompose_padding(block, loops[-2]))

    @classmethod
    def padded_per_tile(cls, context: ScheduleContext, block) -> bool:
        """Whether ``block`` is a padding read in place (:meth:`_padding_read_in_place`)
        that the main block reads along every one of its spatial iterators (a depthwise
        layer's input: no output channel reads another's): padded per parallel tile, each
        core then pads only the window its own tile reads (its halo twice), into L1,
        where padded whole it is a pass over memory and a parallel region of its own.
        Only the per-tile sketch is made for it. A dense convolution's input, read by
        every tile of output channels, would be padded again by each: both are searched.
        MobileNet-V2 tuned so (1000 trials) ran in 0.90x the time of its model tuned with
        both searched, and 0.94x of one with only the paddings larger than a core's L2
        done per tile (20 alternating rounds each; the search had drawn too few trials
        on its small depthwise layers to find the per-tile sketch)."""
        from tvm.tirx import IterVar

        sch = context.sch
        if not movable_stages(context) or is_packing_stage(sch.get(block).name_hint) \
                or not cls._padding_read_in_place(context, block):
            return False  # a padding that cannot move into a tile keeps both whole forms
        buffer = sch.get(block).writes[0].source
        main = sch.get(sch.get_sblock(context.block))
        regions = [r.region for r in main.reads if r.source.same_as(buffer)]
        spatial = [iv.var for iv in main.iter_vars
                   if iv.iter_type == IterVar.DataPar and getattr(iv.dom.extent, "value", 2) > 1]
        return bool(regions) and all(
            any(uses_var(axis.min, var) for region in regions for axis in region)
            for var in spatial)

    def _vector_and_parallel(self, sch, loops: list, interleaved: bool = False) -> None:
        if interleaved:  # the last two loops are LLVM's to vectorise
            self._parallel(sch, loops[:-2], self._large(sch, loops[:-1]))
            return
        loops = split_to_lanes(sch, loops, self.max_lanes)
        vector = self._vectorize(sch, loops[-1])
        serial = loops[:-1] if vector else loops
        # the innermost serial loop stays: a vector of it is too little work per thread
        self._parallel(sch, serial[:-1] or serial, self._large(sch, serial) or vector and (
            self._elements(sch, loops) or 0) >= self.min_parallel_vector_elements)

    def _vectorize(self, sch, loop) -> bool:
        extent = sch.get(loop).extent
        vector = hasattr(extent, "value") and 1 < extent.value <= self.max_lanes
        if vector:
            sch.vectorize(loop)
        return vector

    def _fill_then_copy(self, sch, block, loops: list, interleaved: bool) -> None:
        """A padded copy (``if_then_else(inside, x, 0)``), per plane of its last two loops,
        as a zero fill and an unguarded copy of the inside: both vectorise, where the
        guarded load would not (an interleaved copy by LLVM). The planes run on the cores."""
        large = self._large(sch, loops)
        fill = sch.decompose_padding(block, loops[-2])
        plane = sch.fuse(*sch.get_loops(fill)[-2:])  # one run of zeros: 58 x 67 -> 67 x 58
        vectors = [plane] if interleaved else [plane, sch.get_loops(block)[-1]]
        for last in vectors:
            self._vectorize(sch, split_to_lanes(sch, [last], self.max_lanes)[-1])
        self._parallel(sch, loops[:-2], large)


    @staticmethod
    def _parallel(sch, outer: list, large: bool) -> None:
        """``outer`` fused and run on the cores when the stage is ``large``."""
        if outer and large:
            sch.parallel(sch.fuse(*outer) if len(outer) > 1 else outer[0])

    def _large(self, sch, loops: list) -> bool:
        """Whether ``loops`` (a stage's iterations outside the vector; a split stage's whole
        planes) reach the threshold."""
        return (self._elements(sch, loops) or 0) >= self.min_parallel_elements

    @staticmethod
    def _elements(sch, loops: list) -> int | None:
        from math import prod

        extents = [sch.get(loop).extent for loop in loops]
        return prod(e.value for e in extents) if all(hasattr(e, "value") for e in extents) \
            else None

    @staticmethod
    def _in_packed_order(sch, block, producer: bool) -> bool:
        """Give ``block`` the indices of the packed buffer it writes (a packing stage) or
        reads (a write-back stage) as its iterators, when they split an iterator
        (``v // c``, ``v % c``); whether the innermost is such a split (interleaved).

        Walking the packed buffer in order, each innermost run of it is one contiguous
        vector and the other side's rows stay in cache (a 56x56x64 int32 write-back to
        NCHW: 35 us, against 152 us walked in the NCHW order). Stages whose indices are
        plain iterators, or not a one-to-one image of them, are left as they are."""
        from tvm import tirx
        from tvm.s_tir.schedule import ScheduleError

        stmt = sch.get(block)
        if len(stmt.reads) != 1 or len(stmt.writes) != 1:  # a copy from one tensor
            return False
        packed = [r.min for r in (stmt.writes if producer else stmt.reads)[0].region]
        variables = [v.var for v in stmt.iter_vars]

        def split_of(index):
            return isinstance(index, (tirx.FloorDiv, tirx.FloorMod)) and isinstance(
                index.b, tirx.IntImm) and any(index.a.same_as(v) for v in variables)

        if not any(split_of(index) for index in packed) or not all(
                split_of(index) or any(index.same_as(v) for v in variables)
                for index in packed):
            return False

        def position(var):
            return next(i for i, v in enumerate(variables) if var.same_as(v))

        def extent(index):
            if isinstance(index, tirx.FloorMod):
                return int(index.b)
            whole = int(stmt.iter_vars[position(index.a if split_of(index) else index)]
                        .dom.extent)
            return whole // int(index.b) if split_of(index) else whole

        # The iterator along the other side's rows goes second-innermost, when it is at
        # least as long as the innermost: the two innermost loops then move a 2-D tile
        # between the layouts, each side a few rows that stay in cache.
        other = (stmt.reads if producer else stmt.writes)[0].region[-1].min
        if isinstance(other, (tirx.Add, tirx.Sub)) and isinstance(other.b, tirx.IntImm):
            other = other.a  # a padded read (w - 1)
        rows = [i for i, index in enumerate(packed) if index.same_as(other) or (
            isinstance(index, tirx.FloorMod) and index.a.same_as(other))]
        if rows and rows[0] < len(packed) - 2 and extent(packed[rows[0]]) >= extent(packed[-1]):
            packed.insert(len(packed) - 2, packed.pop(rows[0]))

        def layout(*new):
            return [type(index)(new[position(index.a)], index.b) if split_of(index)
                    else new[position(index)] for index in packed]

        try:
            sch.transform_block_layout(block, tirx.IndexMap.from_func(
                layout, ndim=len(variables), index_dtype=str(variables[0].ty)))
        except ScheduleError:  # not one-to-one (an iterator used twice, or not at all)
            return False
        return isinstance(packed[-1], tirx.FloorMod)


CPU_RULES = (InlineContiguousOperands(), InlinePaddingIntoPacking(), MultiLevelTiling(),
             RegisterAccumulator(), WriteBackPerTile(), ParallelOuterTiles(),
             UnrollRegisterTile(), VectorizePacking())
