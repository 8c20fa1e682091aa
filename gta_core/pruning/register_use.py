"""What a register tile keeps in vector registers: its accumulators, and the input values
it reuses across them.

A CPU register tile is an outer product: each step of the reduction reads every value of
each input the tile touches, once per call that uses it. The compiler keeps the values of
all inputs but one live for the step and streams the last through one register, choosing
the cheapest (LLVM holds the input with the fewest values). Counting one register per
input, as if nothing were reused, admitted tiles that spill: on AVX2 a 7 x 2 tile of float
FMAs holds 14 accumulators, the 2 weight vectors and one broadcast, 17 of 16 registers, and
LLVM spilled an accumulator to the stack, a store-to-load chain on every step (MobileNet-V2's
960 -> 160 1x1 convolution at 7x7: 161-165 us, against 141-143 for the 7 x 1 tile that
fits, on an AMD Zen 3).
"""

from __future__ import annotations

from math import ceil, prod


def call_extents(op, intr, mapping) -> dict[str, int]:
    """The extent of each of ``op``'s axes one intrinsic call covers (``op`` and ``intr``:
    :class:`~gta_core.mapping.access.Computation` s), where ``mapping`` puts an
    intrinsic axis on them."""
    full = {a.name: a.extent for a in op.axes}
    covered = {}
    for var in intr.axes:
        left = var.extent
        for name in reversed(mapping.axes.get(var.name, [])):
            covered[name] = min(full[name], left)
            left = max(1, left // full[name])
    return covered


def loop_axes(name: str, spatial: bool, intr, mapping) -> list[str]:
    """The op axes a tile loop named ``name`` steps (a spatial or a reduction loop): the
    group of the intrinsic axis of that name and kind, else the op axis of that name. An
    op axis may share its name with an intrinsic axis of the other kind (NCHWc's
    output-channel block ``k``, a dot product's reduction ``k``)."""
    kind = "spatial" if spatial else "reduce"
    if any(var.name == name and var.kind == kind for var in intr.axes):
        return list(mapping.axes.get(name, [name]))
    return [name]


def tile_extents(op, covered: dict[str, int], loops) -> dict[str, int]:
    """Each of ``op``'s axes' extent inside ``loops`` (``(op axes, extent)``: what
    :func:`loop_axes` gives) and the intrinsic call (``covered``)."""
    full = {a.name: a.extent for a in op.axes}
    ext = {a.name: covered.get(a.name, 1) for a in op.axes}
    for axes, extent in loops:
        for axis in axes:
            if axis in ext:
                ext[axis] = min(full[axis], ext[axis] * extent)
    return ext


def span(index, ext: dict[str, int]) -> int:
    """Distinct values of one affine index over ``ext``: a sliding window's ``y + ry`` spans
    its range, a mixed radix's ``16 * rc + rl`` the product of its extents."""
    terms = [(c, ext.get(v, 1)) for v, c in index if v and c]
    return min(sum(abs(c) * (e - 1) for c, e in terms) + 1, prod(e for _, e in terms))


def elements(access, ext: dict[str, int]) -> int:
    """The elements of ``access`` over ``ext``."""
    return prod(span(index, ext) for index in access.indices)


def bits(dtype: str) -> int:
    return int("".join(ch for ch in dtype if ch.isdigit()) or 8)


def input_registers(workload, mapping, intrinsic, width_bits: int,
                    register_tile: dict[str, int]) -> int | None:
    """Vector registers of ``width_bits`` the inputs of one register tile hold during a
    step: every value of all inputs but one, and one value of the last, the fewest over
    which input is streamed. ``register_tile``: the S2 loops' extents by the name the
    tiling rule annotates. None where an input is held in memory (AMX's tiles)."""
    from ..mapping.access import intrinsic_computation
    from ..mapping.builtin import workload_computation

    if any(operand.held == "memory" for operand in intrinsic.compute.inputs):
        return None
    op, intr = workload_computation(workload), intrinsic_computation(intrinsic)
    covered = call_extents(op, intr, mapping)
    call = tile_extents(op, covered, [])
    tile = tile_extents(op, covered, [(loop_axes(name, True, intr, mapping), extent)
                                      for name, extent in register_tile.items()])
    held, one = [], []  # per input: registers for all its values over the tile, for one
    for access in op.inputs:
        per_call = elements(access, call)
        registers = max(1, ceil(per_call * bits(access.dtype) / width_bits))
        held.append(ceil(elements(access, tile) / per_call) * registers)
        one.append(registers)
    if not held:
        return 0
    return min(sum(held) - held[k] + one[k] for k in range(len(held)))
