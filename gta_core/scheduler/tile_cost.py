"""A sampled CPU program's time, estimated from its tile loops before anything is built.

A task's first trials are random samples of its design space. The learned cost model
cannot rank them: it has seen no program of this workload, and its ranking of a conv's
start samples, trained on 218 trials of the same model's other convolutions, was worse
than chance (ResNet-18's layer4 3x3 convolution, 40 samples: its top 8 held a best of
411 us, random eights 322 on average, the best sample 283). What separates those samples
is data movement, which the tile loops say outright: how often each operand is fetched
into L1 and into L2 given the capacities, and how many loads feed each intrinsic call
from the register tile. The estimate is the slowest of four rates (intrinsic issue, bounded
by the accumulators' latency where the tile is short; loads, L2 -> L1, L3 -> L2), per core,
times the parallel loop's imbalance.

The traffic into a cache of capacity C follows the classic reuse model: walk the loops
from the intrinsic outwards, growing each operand's footprint; while a loop's body fits
in C, what an operand fetches is its footprint (reuse is caught); once it does not, each
iteration fetches the body's traffic again.
"""

from __future__ import annotations

from math import ceil, prod

from ..pruning.register_use import bits, call_extents, elements, loop_axes, span, tile_extents

# Sustained rates per core, in bytes a cycle, measured on the Xeon and Zen 5 hosts here
# (2026-12-04): two 64-byte loads a cycle from L1, about half a line a cycle from L2,
# and about 10 bytes a cycle from L3 with both cores streaming (56 GB/s).
LOADS_PER_CYCLE = 2.0
L2_BYTES_PER_CYCLE = 32.0
L3_BYTES_PER_CYCLE = 10.0
LINE = 64


def estimated_cycles(program, workload, mapping, intrinsic, resources) -> float | None:
    """The estimated cycles of ``program`` (a realised mapping's tiled schedule, or its tile
    loops: :class:`~gta_core.pruning.cpu.TiledLoop` s, outermost first), or None where it has
    no tile loops to read (lower is faster; only ratios mean much)."""
    from ..mapping.access import intrinsic_computation
    from ..mapping.builtin import workload_computation
    from ..pruning.cpu import tiled_loops

    tiles = program if isinstance(program, list) else tiled_loops(program)
    loops = [loop for loop in tiles if loop.level != "S0"]
    if not loops or mapping is None:
        return None
    op = workload_computation(workload)
    intr = intrinsic_computation(intrinsic)
    group_of = {name: var for var, names in mapping.axes.items() for name in names}
    covered = call_extents(op, intr, mapping)
    # Loops in op units, outermost first: what the tile loops leave of each axis is the
    # parallel (S0) part, for the spatial axes; reductions left over run outermost too.
    # Keyed by (name, spatial): an op axis may share its name with an intrinsic axis of
    # the other kind (NCHWc's output-channel block k, a dot product's reduction k).
    keyed = [((loop.axis, loop.level.startswith("S")), loop.extent) for loop in loops]
    tiled: dict[tuple[str, bool], int] = {}
    for key, extent in keyed:
        tiled[key] = tiled.get(key, 1) * extent
    rest: dict[tuple[str, bool], int] = {}  # insertion order: the op's axes, outermost first
    for axis in op.axes:
        key = (group_of.get(axis.name, axis.name), axis.kind == "spatial")
        left = ceil(axis.extent / (covered.get(axis.name, 1) * tiled.get(key, 1)))
        if left > 1:
            rest.setdefault(key, left)
    parallel = prod(extent for (_, spatial), extent in rest.items() if spatial)
    order = [(loop_axes(name, spatial, intr, mapping), extent)
             for (name, spatial), extent in [*rest.items(), *keyed]]
    register_tile = prod(loop.extent for loop in loops if loop.level == "S2")

    accesses = [(a, 2 if a.output else 1) for a in (*op.inputs, op.output)]
    # levels[k]: each op axis's extent inside order[k:] and the intrinsic
    levels = [tile_extents(op, covered, order[k:]) for k in range(len(order) + 1)]
    calls = prod(extent for _, extent in order)
    threads = max(1, min(resources.cores or 1, parallel))

    # loads from L1: per register-tile step, each input's elements over the tile in
    # units of what one call reads of it
    inner = len(order) - sum(1 for loop in loops if loop.level == "S2")
    loads = sum(elements(a, levels[inner]) / elements(a, levels[-1])
                for a, _ in accesses if not a.output)
    steps = calls / register_tile
    issue = resources.vector_issue_per_cycle or 2
    if intrinsic.compute.output.held != "memory":
        # each call waits on the last into its accumulator: a tile of fewer accumulators
        # than latency x issue leaves the units idle (register-tile-latency admits one
        # where the loops allow no larger tile that fits)
        issue = min(issue, register_tile / (resources.vector_latency_cycles or 4))
    cycles = [calls / issue, steps * loads / LOADS_PER_CYCLE]
    caches = resources.cache_bytes
    for level, rate in (("L1", L2_BYTES_PER_CYCLE), ("L2", L3_BYTES_PER_CYCLE)):
        if level in caches:
            cycles.append(_traffic(accesses, levels, order, caches[level]) / rate)
    return max(cycles) * ceil(parallel / threads) / parallel


def _bytes(access, ext: dict[str, int]) -> int:
    """The footprint of ``access`` over ``ext`` in bytes, its contiguous run in whole lines."""
    size = max(1, bits(access.dtype) // 8)
    dims = [span(index, ext) for index in access.indices]
    if not dims:
        return size
    run = ceil(dims[-1] * size / LINE) * LINE
    return prod(dims[:-1]) * run


def _traffic(accesses, levels, order, capacity: int) -> float:
    """Bytes fetched into a cache of ``capacity`` over the whole loop nest."""
    traffic = [_bytes(a, levels[-1]) * weight for a, weight in accesses]
    for k in range(len(order) - 1, -1, -1):
        body = sum(_bytes(a, levels[k + 1]) for a, _ in accesses)
        extent = order[k][1]
        if body <= capacity:
            traffic = [_bytes(a, levels[k]) * weight for a, weight in accesses]
        else:
            traffic = [t * extent for t in traffic]
    return sum(traffic)
