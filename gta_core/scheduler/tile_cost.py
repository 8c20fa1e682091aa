"""A sampled CPU program's time, estimated from its tile loops before anything is built.

A task's first trials are random samples of its design space. The learned cost model
cannot rank them: it has seen no program of this workload, and its ranking of a conv's
start samples, trained on 218 trials of the same model's other convolutions, was worse
than chance (ResNet-18's layer4 3x3 convolution, 40 samples: its top 8 held a best of
411 us, random eights 322 on average, the best sample 283). What separates those samples
is data movement, which the tile loops say outright: how often each operand is fetched
into L1 and into L2 given the capacities, and how many loads feed each intrinsic call
from the register tile. The estimate is the slowest of four rates (intrinsic issue,
loads, L2 -> L1, L3 -> L2), per core, times the parallel loop's imbalance.

The traffic into a cache of capacity C follows the classic reuse model: walk the loops
from the intrinsic outwards, growing each operand's footprint; while a loop's body fits
in C, what an operand fetches is its footprint (reuse is caught); once it does not, each
iteration fetches the body's traffic again.
"""

from __future__ import annotations

from math import ceil, prod

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
    full = {a.name: a.extent for a in op.axes}
    group_of = {name: var for var, names in mapping.axes.items() for name in names}
    covered = {}  # op axis -> extent one intrinsic call covers
    for var in intr.axes:
        left = var.extent
        for name in reversed(mapping.axes.get(var.name, [])):
            covered[name] = min(full[name], left)
            left = max(1, left // full[name])
    # Loops in op units, outermost first: what the tile loops leave of each axis is the
    # parallel (S0) part, for the spatial axes; reductions left over run outermost too.
    tiled: dict[str, int] = {}
    for loop in loops:
        tiled[loop.axis] = tiled.get(loop.axis, 1) * loop.extent
    rest: dict[str, int] = {}  # insertion order: the op's axes, outermost first
    for axis in op.axes:
        name = group_of.get(axis.name, axis.name)
        left = ceil(axis.extent / (covered.get(axis.name, 1) * tiled.get(name, 1)))
        if left > 1:
            rest.setdefault(name, left)
    parallel = prod(extent for name, extent in rest.items()
                    if op.axis(_op_axis(name, mapping)).kind == "spatial")
    order = list(rest.items()) + [(loop.axis, loop.extent) for loop in loops]
    register_tile = prod(loop.extent for loop in loops if loop.level == "S2")

    def extents(upto: int) -> dict[str, int]:
        """Each op axis's extent inside the loops ``order[upto:]`` and the intrinsic."""
        ext = {a.name: covered.get(a.name, 1) for a in op.axes}
        for name, extent in order[upto:]:
            for axis in mapping.axes.get(name, [name]):
                if axis in ext:
                    ext[axis] = min(full[axis], ext[axis] * extent)
        return ext

    accesses = [(a, 2 if a.output else 1) for a in (*op.inputs, op.output)]
    levels = [extents(k) for k in range(len(order) + 1)]  # levels[k]: inside order[k:]
    calls = prod(extent for _, extent in order)
    threads = max(1, min(resources.cores or 1, parallel))

    # loads from L1: per register-tile step, each input's elements over the tile in
    # units of what one call reads of it
    inner = len(order) - sum(1 for loop in loops if loop.level == "S2")
    loads = sum(_elements(a, levels[inner]) / _elements(a, levels[-1])
                for a, _ in accesses if not a.output)
    steps = calls / register_tile
    issue = resources.vector_issue_per_cycle or 2
    cycles = [calls / issue, steps * loads / LOADS_PER_CYCLE]
    caches = resources.cache_bytes
    for level, rate in (("L1", L2_BYTES_PER_CYCLE), ("L2", L3_BYTES_PER_CYCLE)):
        if level in caches:
            cycles.append(_traffic(accesses, levels, order, caches[level]) / rate)
    return max(cycles) * ceil(parallel / threads) / parallel


def _op_axis(name: str, mapping) -> str:
    return (mapping.axes.get(name) or [name])[0]


def _span(index, ext: dict[str, int]) -> int:
    """Distinct values of one affine index over ``ext``: a sliding window's ``y + ry`` spans
    its range, a mixed radix's ``16 * rc + rl`` the product of its extents."""
    terms = [(c, ext.get(v, 1)) for v, c in index if v and c]
    return min(sum(abs(c) * (e - 1) for c, e in terms) + 1, prod(e for _, e in terms))


def _elements(access, ext: dict[str, int]) -> int:
    return prod(_span(index, ext) for index in access.indices)


def _bytes(access, ext: dict[str, int]) -> int:
    """The footprint of ``access`` over ``ext`` in bytes, its contiguous run in whole lines."""
    from ..pruning.cpu import _bits

    size = max(1, _bits(access.dtype) // 8)
    dims = [_span(index, ext) for index in access.indices]
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
