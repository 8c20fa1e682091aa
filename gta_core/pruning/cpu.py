"""The core's resource constraints: candidates that cannot fit are dropped unmeasured."""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from ..generation.cpu import LEVEL_KEY
from ..generation.rule import ScheduleContext
from ..models import MappingCandidate, Target, index_variables
from .constraint import Constraint
from .register_use import bits as _bits
from .register_use import input_registers


@dataclass(frozen=True)
class TiledLoop:
    level: str  # "S0", "S1", "S2", "R0", "R1"
    axis: str  # the operator loop, or the intrinsic axis a split-outer loop belongs to
    extent: int


def loops_of(sch) -> list:
    """Every loop of the program, read from its IR.

    Constraints run as MetaSchedule postprocessors, where schedule queries
    (``get_loops``...) would be recorded into the trace and break its replay
    when a mutated decision changes the loop structure; walking the IR records
    nothing.
    """
    from tvm import tirx

    return [node for node in _statements(sch.mod["main"].body) if isinstance(node, tirx.For)]


def child_statements(node, init: bool = True) -> list:
    """The statements directly under ``node``, in program order; a block's ``init`` among
    them unless ``init`` is False (a walk for staging buffers: the init writes only the
    accumulator)."""
    from tvm import tirx

    names = ("body", "block", "then_case", "else_case") + (("init",) if init else ())
    found = [getattr(node, name, None) for name in names]
    found += list(getattr(node, "seq", None) or [])
    return [child for child in found if isinstance(child, tirx.Stmt)]


def _statements(root) -> list:
    """``root`` and every statement under it, each before the statements under it."""
    found, stack = [], [root]
    while stack:
        node = stack.pop()
        found.append(node)
        stack.extend(reversed(child_statements(node)))
    return found


def tiled_loops(sch) -> list[TiledLoop]:
    """Loops the tiling rule annotated, read back from the program (so replays work too),
    in :func:`loops_of`'s order, in one walk of the IR (the constraints ask it of every
    sample).

    ``decompose_reduction`` copies the S1 and S2 loops around the init block it splits
    off, annotations and all; those copies (loops whose blocks are all ``_init`` blocks)
    are left out, or every tile would count twice (a register tile of 4 read as 16).
    """
    from tvm import tirx
    from tvm.s_tir import SBlock

    out: list[TiledLoop | None] = []

    def visit(node) -> tuple[bool, bool]:
        """(any block at or under ``node``, any such block that is not an init block)"""
        at, loop = len(out), isinstance(node, tirx.For)
        if loop:
            out.append(None)  # its place, filled once its blocks are known
        block = isinstance(node, SBlock)
        any_block, any_real = block, block and not node.name_hint.endswith("_init")
        for child in child_statements(node):
            below, real = visit(child)
            any_block, any_real = any_block or below, any_real or real
        value = node.annotations.get(LEVEL_KEY) if loop else None
        if value is not None and (any_real or not any_block):
            level, _, axis = str(value).partition("/")
            out[at] = TiledLoop(level, axis, int(node.extent))
        return any_block, any_real

    visit(sch.mod["main"].body)
    return [loop for loop in out if loop is not None]


def parallel_extent(sch) -> int:
    """The largest parallel loop's extent (0: none): what the cores share."""
    from tvm.tirx import ForKind

    return max((int(loop.extent) for loop in loops_of(sch) if loop.kind == ForKind.PARALLEL),
               default=0)


class RegisterTile(Constraint):
    """The accumulator tile must fit in the vector registers.

    The register level (S2) times the intrinsic's output, in vector registers, plus the
    registers its inputs hold over the tile (every value of all inputs but one, and one of
    the last: :func:`~.register_use.input_registers`) must not exceed the target's vector
    register file: a spilled accumulator tile is no faster than memory.
    """

    name = "register-tile"
    reads_tiles_only = True

    def applies(self, target: Target) -> bool:
        return target.kind == "cpu" and bool(target.resources.vector_registers
                                             and target.resources.vector_width_bits)

    def check(self, context: ScheduleContext) -> str | None:
        if context.intrinsic is None:
            return None
        resources = context.target.resources
        per_call = _registers_per_call(context)
        register_tile = _register_tile(context)
        tile = prod(register_tile.values())
        inputs = _tile_input_registers(context, register_tile)
        needed = tile * per_call + inputs
        if needed > resources.vector_registers:
            return (f"accumulator tile needs {needed} vector registers "
                    f"({tile} x {per_call} + {inputs} for its inputs); "
                    f"the target has {resources.vector_registers}")
        return None


class RegisterTileLatency(Constraint):
    """The accumulator tile must hide the intrinsic's latency where the loops allow it.

    Each call waits on the previous call into the same accumulator (the target's
    ``vector_latency_cycles``, 4 if undeclared) while the core issues
    ``vector_issue_per_cycle`` (2) a cycle, so a tile of fewer than their product
    of independent vectors leaves the units idle: such samples are slow whatever
    else they choose. The bound drops to the largest tile the spatial loops'
    extents and the register file allow, so a small or oddly shaped workload
    keeps its candidates.
    """

    name = "register-tile-latency"
    reads_tiles_only = True
    _largest: dict[tuple, int] = {}

    @staticmethod
    def accumulators(resources) -> int:
        return (resources.vector_latency_cycles or 4) * (resources.vector_issue_per_cycle or 2)

    def applies(self, target: Target) -> bool:
        return RegisterTile().applies(target)

    def check(self, context: ScheduleContext) -> str | None:
        if context.intrinsic is None or context.mapping is None or context.workload is None:
            return None
        loops = [loop for loop in context.tiled_loops() if loop.level == "S2"]
        if not loops:
            return None
        per_call = _registers_per_call(context)
        if not per_call:  # the output is held in memory: no chain of calls on a register
            return None
        tile = prod(loop.extent for loop in loops) * per_call
        key = (context.workload.spec, context.mapping.id, context.intrinsic.name,
               context.target.name, context.target.arch,
               context.target.resources.vector_registers)
        if key not in self._largest:  # the same for every sample of a task: asked once
            self._largest[key] = self._largest_tile(context, per_call)
        bound = min(self.accumulators(context.target.resources), self._largest[key])
        if tile < bound:
            return (f"accumulator tile of {tile} vector registers cannot hide the intrinsic's "
                    f"latency ({bound} needed; the loops allow it)")
        return None

    @staticmethod
    def _largest_tile(context: ScheduleContext, per_call: int) -> int:
        """The most accumulator registers any register-level tiling of these loops fits
        in the register file beside the inputs it holds."""
        from ..generation.cpu import MultiLevelTiling
        from ..mapping.access import intrinsic_computation
        from ..mapping.builtin import workload_computation

        op = workload_computation(context.workload)
        extent = {a.name: a.extent for a in op.axes}
        spatial = {a.name: a.extent for a in op.axes if a.kind == "spatial"}
        for var in intrinsic_computation(context.intrinsic).axes:
            group = context.mapping.axes.get(var.name, [])
            for name in group:
                spatial.pop(name, None)
            if var.kind == "spatial":
                spatial[var.name] = -(-prod(extent[n] for n in group) // var.extent)
        cap = MultiLevelTiling.max_register_factor
        registers = context.target.resources.vector_registers
        tiles: list[dict[str, int]] = [{}]
        for name, total in spatial.items():
            factors = [f for f in range(1, cap + 1) if total % f == 0]
            tiles = [{**t, name: f} for t in tiles for f in factors
                     if prod(t.values()) * f * per_call < registers]
        fitting = [prod(t.values()) for t in tiles
                   if prod(t.values()) * per_call + _tile_input_registers(context, t) <= registers]
        return max(fitting, default=1) * per_call


class CacheWorkingSet(Constraint):
    """What one cache tile touches must fit in L2, and one reduction step in L1.

    The footprint of a tile is the sum over the main block's tensors of the
    product of the tile's extents along the loops each tensor depends on
    (an over-estimate for sliding windows, so the bound errs on keeping
    candidates out only when they clearly spill).
    """

    name = "cache-working-set"
    reads_tiles_only = True

    def applies(self, target: Target) -> bool:
        caches = target.resources.cache_bytes
        return target.kind == "cpu" and "L1" in caches and "L2" in caches

    def check(self, context: ScheduleContext) -> str | None:
        if context.mapping is None or context.workload is None:
            return None
        loops = context.tiled_loops()
        caches = context.target.resources.cache_bytes
        for level, levels, inside in (("L2", {"R1", "S2"}, "cache tile"),
                                      ("L1", {"S2"}, "reduction step")):
            need = self.footprint(context, loops, levels)
            if need > caches[level]:
                return f"a {inside} touches {need} bytes; {level} holds {caches[level]}"
        return None

    @staticmethod
    def footprint(context: ScheduleContext, loops: list[TiledLoop], levels: set[str]) -> int:
        from ..mapping.access import intrinsic_computation
        from ..mapping.builtin import workload_computation

        op = workload_computation(context.workload)
        intr = intrinsic_computation(context.intrinsic)
        mapping = context.mapping
        extent: dict[str, int] = {}
        for loop in loops:
            if loop.level in levels:
                extent[loop.axis] = extent.get(loop.axis, 1) * loop.extent
        for var in intr.axes:  # the intrinsic's own loops are inside every level
            extent[var.name] = extent.get(var.name, 1) * var.extent
        group_of = {name: v for v, names in mapping.axes.items() for name in names}
        total = 0
        for access in (*op.inputs, op.output):
            axes = {group_of.get(a.name, a.name) for a in op.axes if access.depends_on(a.name)}
            total += prod(extent.get(axis, 1) for axis in axes) * _bits(access.dtype) // 8
        return total


class ParallelExtent(Constraint):
    """A CPU program needs at least as many parallel iterations as the target has cores, or
    as its spatial tiles make, where those are fewer (a model's 1 x 1000 classifier)."""

    name = "parallel-extent"

    def applies(self, target: Target) -> bool:
        return target.kind == "cpu" and (target.resources.cores or 1) > 1

    def check(self, context: ScheduleContext) -> str | None:
        cores = context.target.resources.cores
        available = prod(loop.extent for loop in context.tiled_loops()
                         if loop.level.startswith("S"))
        extent = parallel_extent(context.sch)
        if extent < min(cores, available):
            return f"{extent} parallel iterations for {cores} cores"
        return None


class PaddingWaste(Constraint):
    """A mapping may not spend more than ``max_waste`` of its work on padding."""

    name = "padding-waste"
    reads_tiles_only = True
    max_waste = 0.5

    def applies(self, target: Target) -> bool:
        return True

    def check(self, context: ScheduleContext) -> str | None:
        return self.check_mapping(context.mapping, context.target) if context.mapping else None

    def check_mapping(self, candidate: MappingCandidate, target: Target) -> str | None:
        if candidate.waste > self.max_waste:
            return (f"padding wastes {candidate.waste:.0%} of the work "
                    f"(bound {self.max_waste:.0%})")
        return None


def _register_tile(context: ScheduleContext) -> dict[str, int]:
    """The register-level (S2) tile loops' extents by axis."""
    tile: dict[str, int] = {}
    for loop in context.tiled_loops():
        if loop.level == "S2":
            tile[loop.axis] = tile.get(loop.axis, 1) * loop.extent
    return tile


def _tile_input_registers(context: ScheduleContext, register_tile: dict[str, int]) -> int:
    """Vector registers the intrinsic's inputs hold over ``register_tile``: what
    :func:`~.register_use.input_registers` counts, or one call's where it cannot (no
    mapping, or inputs held in memory)."""
    if context.mapping is not None and context.workload is not None:
        held = input_registers(context.workload, context.mapping, context.intrinsic,
                               context.target.resources.vector_width_bits, register_tile)
        if held is not None:
            return held
    return _input_registers(context)


def _registers_per_call(context: ScheduleContext) -> int:
    """Vector registers one intrinsic call's output occupies."""
    return _registers(context, context.intrinsic.compute.output)


def _input_registers(context: ScheduleContext) -> int:
    """Vector registers one intrinsic call's inputs occupy."""
    return sum(_registers(context, operand) for operand in context.intrinsic.compute.inputs)


def _registers(context: ScheduleContext, operand) -> int:
    """Vector registers ``operand`` occupies across calls: none where each call loads and
    stores it itself (``held="memory"``: AMX's tiles)."""
    if operand.held == "memory":
        return 0
    compute = context.intrinsic.compute
    elements = prod(compute.extent(v) for v in {n for i in operand.indices
                                                 for n in index_variables(i)})
    width = context.target.resources.vector_width_bits
    return max(1, -(-elements * _bits(operand.dtype) // width))


CPU_CONSTRAINTS = (RegisterTile(), RegisterTileLatency(), CacheWorkingSet(), ParallelExtent(),
                   PaddingWaste())
