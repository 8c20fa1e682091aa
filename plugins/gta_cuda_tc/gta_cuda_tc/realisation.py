"""How ``cuda-tc`` programs are realised: a kernel whose operands move through the memory
scopes the intrinsic declares. The core calls :func:`realise` (an untuned program) and
:func:`finish` (a sketch the rules tiled) for this target, which names this module as its
``realisation``; the generation rules in :mod:`gta_cuda_tc.rules` stage operands with
:func:`stage_operands` at the loops they chose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gta_core.sdk import (
    Intrinsic,
    MappingCandidate,
    RealisationError,
    Realised,
    Target,
    Workload,
    ensure_registered,
    program_for,
    realisation_step,
    reshape,
    workload_computation,
)

#
# After the generic reshape above, every operand of the main block is a packed buffer laid out
# [outer..., window // e..., window % e...]: each intrinsic-sized window (a fragment) is
# contiguous, whatever tiling is put on top later. `realise` then builds one kernel for the
# main block (one warp per thread block, warp size from the target):
#
#   for bx in (spatial outer loops, fused):            blockIdx.x
#     accumulator fragment = 0                         tvm_intrinsics["init"]
#     for (reduce outer loops):
#       each input: global -> staging ("shared")       cooperative copy on threadIdx.x
#                   staging -> fragment                operand.load into operand.scope
#       accumulator += A fragment * B fragment         tvm_intrinsics["compute"]
#     accumulator -> staging ("shared")                operand.store from operand.scope
#     staging -> global                                cooperative copy on threadIdx.x
#
# and binds each stage left at the root (padding, packing, unpacking) as an elementwise kernel.
# The staging scope is the one the TVM load / store intrinsic's description reads from / writes
# to. No performance tiling (the generation rules add it): every staging buffer holds exactly
# one fragment, so each fragment pointer is the start of a buffer. A tiled version stays
# aligned too: in the packed layout each fragment starts at a multiple of its own size (>= 256
# bytes), which meets the 32-byte rule of the wmma intrinsics (a row-major tile of fragments
# narrower than 32 bytes would break it; see the cuda-tc plugin's tests).
#
# The program is the workload rewritten where the candidate needs it (`rewrite.program_for`):
# its product commuted, when the intrinsic's first input is the operator's second tensor
# (tensorize matches a block's reads by position), and u8 data taken as s8 plus a correction,
# for an s8 x s8 intrinsic.


@dataclass(frozen=True)
class Memory:
    """Where one intrinsic operand lives and how it moves: read from the declarations."""

    fragment: str  # the declared scope, e.g. "wmma.matrix_a"
    staging: str  # the scope its load intrinsic reads from / its store intrinsic writes to
    move: str  # the TVM intrinsic that loads it (inputs) or stores it (the output)
    dims: int  # dimensions of its window: the innermost loops a load / store tensorizes
    # "warp" fragments (mma.sync): window indices -> (lane, register), as ``move`` lays them out
    lanes: Callable | None = None


# Block annotations naming the TVM intrinsic that finish_gpu tensorizes a block with: on a
# load / store block, and on the main block for its accumulator's initialisation.
TENSORIZE = "gta.tensorize"
TENSORIZE_INIT = "gta.tensorize_init"
WARP = "warp"  # mma.sync's fragments: a warp's registers, addressed [lane, register]
ELEMENTWISE_THREADS = 128  # threads per block of the kernels left at the root (packing...)


def warp_size(target: Target) -> int:
    return int(target.tvm.get("thread_warp_size") or target.resources.warp_size or 32)


def _desc_scopes(tvm_intrinsic: str) -> tuple[str, str]:
    """(scope read, scope written) by a registered TVM data-movement intrinsic's description."""
    from tvm.s_tir import TensorIntrin

    found = TensorIntrin.get(tvm_intrinsic, allow_missing=True)
    if found is None:
        raise RealisationError(f"TVM tensor intrinsic {tvm_intrinsic} is not registered")
    block = found.desc.body.block
    return block.reads[0].source.scope(), block.writes[0].source.scope()


def fragment_scopes(intrinsic: Intrinsic) -> dict[str, Memory]:
    """Per intrinsic operand, its scopes and mover; RealisationError where one is missing.

    The fragment scope is the operand's declared ``scope``; the staging scope (where a load
    reads from, where a store writes to) comes from the TVM intrinsic named by its ``load``
    or ``store``, whose description says it.
    """
    ensure_registered(intrinsic)  # the scopes are read from the TVM intrinsics it names
    if "init" not in intrinsic.tvm_intrinsics:
        raise RealisationError(f"{intrinsic.name} declares no 'init' tensor intrinsic, which "
                               "a GPU accumulator fragment needs")
    out = {}
    for operand in intrinsic.compute.operands:
        move = operand.load if operand.role == "input" else operand.store
        if operand.scope == "global" or move is None:
            raise RealisationError(
                f"{intrinsic.name}: operand {operand.name} declares scope {operand.scope!r} and "
                f"{'load' if operand.role == 'input' else 'store'} {move!r}; GPU realisation "
                "needs a fragment scope and the intrinsic moving it")
        read, written = _desc_scopes(move)
        fragment, staging = (written, read) if operand.role == "input" else (read, written)
        if fragment != operand.scope:
            raise RealisationError(
                f"{intrinsic.name}: operand {operand.name} declares scope {operand.scope!r} "
                f"but {move} moves it to/from {fragment!r}")
        out[operand.name] = Memory(fragment=fragment, staging=staging, move=move,
                                   dims=len(operand.indices),
                                   lanes=_lanes(move) if fragment == WARP else None)
    return out


def _lanes(tvm_intrinsic: str) -> Callable:
    """How a registered TVM intrinsic moving a "warp" fragment lays out its window.

    Its description copies element ``[v0, v1]`` of the window (the staging side's indices)
    to or from ``warp[lane, register]``; the function returned gives those two indices for
    any window indices, read off the description rather than restated here.
    """
    from tvm.s_tir import TensorIntrin
    from tvm.tirx import For

    stmt = TensorIntrin.get(tvm_intrinsic).desc.body.block.body
    while isinstance(stmt, For):
        stmt = stmt.body
    block = stmt.block
    regions = [*block.reads, *block.writes]
    warp = next(r for r in regions if r.source.scope() == WARP)
    window = next(r for r in regions if r.source.scope() != WARP)
    window_vars = [r.min for r in window.region]
    lanes = [r.min for r in warp.region]

    def layout(*indices):
        bound = dict(zip(window_vars, indices))
        return tuple(_rebuilt(lane, bound, str(indices[0].ty), tvm_intrinsic) for lane in lanes)

    return layout


def _rebuilt(expr, bound: dict, dtype: str, source: str):
    """``expr`` (integer arithmetic on the description's variables) over ``bound``'s
    expressions, its constants in ``dtype`` (the buffer's index type, int64 in models)."""
    from tvm import tirx

    if isinstance(expr, tirx.Var):
        return bound[expr]
    if isinstance(expr, tirx.IntImm):
        return tirx.IntImm(dtype, expr.value)
    if isinstance(expr, (tirx.Add, tirx.Sub, tirx.Mul, tirx.FloorDiv, tirx.FloorMod)):
        return type(expr)(_rebuilt(expr.a, bound, dtype, source),
                          _rebuilt(expr.b, bound, dtype, source))
    raise RealisationError(f"{source}: cannot read its warp layout ({type(expr).__name__} "
                           "in an index)")


def _in_warp_layout(sch, block, buffer: tuple[str, int], memory: Memory) -> None:
    """Lay a "warp" fragment buffer out as its mover reads or writes it: the window's
    ``dims`` innermost indices become (lane, register), the outer ones stay."""
    dims = memory.dims
    sch.transform_layout(block, buffer, lambda *i: (*i[:-dims], *memory.lanes(*i[-dims:])))


def block_memory(program: Workload, candidate: MappingCandidate,
                 intrinsic: Intrinsic) -> tuple[list[Memory], Memory]:
    """The main block's inputs' memory, in the order the block reads them, and its output's."""
    memory = fragment_scopes(intrinsic)
    op = workload_computation(program)
    role = {tensor: name for name, tensor in candidate.operands.items()}
    return [memory[role[a.tensor]] for a in op.inputs], memory[role[op.output.tensor]]


@dataclass
class Staging:
    """Where the copies of the main block's operands go (loops of the main block).

    The accumulator fragments live under ``accumulator_at`` (a warp's loop) and are stored to
    their staging buffer under ``output_at`` (the thread block's), which all threads copy out;
    each input is copied to its staging buffer under ``shared_at`` by all threads, then loaded
    into fragments under ``fragment_at``. ``warps`` (ints or sampled factors, whose product is
    the warp count) spreads copies over threadIdx.y as well as a warp's threadIdx.x lanes;
    ``vector`` is the elements each lane moves at once.
    """

    output_at: object
    accumulator_at: object
    shared_at: object
    fragment_at: object
    warps: list = field(default_factory=list)
    vector: int = 1


@realisation_step("stage operands (cache_read / cache_write)")
def stage_operands(sch, block_name: str, inputs: list[Memory], output: Memory,
                   intrinsic: Intrinsic, staging: Staging, warp: int) -> None:
    """Stage every operand of the main block as ``staging`` says, and name the intrinsics that
    :func:`finish_gpu` tensorizes the fragment loads and store with."""
    block = sch.get_sblock(block_name)
    if output.staging != "global":
        staged = sch.cache_write(block, 0, output.staging)
        _move_under(sch, staged, staging.output_at, after=True)
        _cooperative(sch, staged, _depth(sch, block, staging.output_at), warp, staging.warps, 1)
    store = sch.cache_write(block, 0, output.fragment)
    _move_under(sch, store, staging.accumulator_at, after=True)
    sch.annotate(store, TENSORIZE, output.move)
    if output.lanes is not None:
        _in_warp_layout(sch, store, ("read", 0), output)
    for index, memory in enumerate(inputs):
        if memory.staging != "global":
            staged = sch.cache_read(block, index, memory.staging)
            _move_under(sch, staged, staging.shared_at)
            _cooperative(sch, staged, _depth(sch, block, staging.shared_at), warp, staging.warps,
                         staging.vector)
        load = sch.cache_read(block, index, memory.fragment)
        _move_under(sch, load, staging.fragment_at)
        sch.annotate(load, TENSORIZE, memory.move)
        if memory.lanes is not None:
            _in_warp_layout(sch, load, ("write", 0), memory)
    sch.annotate(block, TENSORIZE_INIT, intrinsic.tvm_intrinsics["init"])


@realisation_step("bind blockIdx.x")
def _bind_thread_blocks(sch, spatial: list):
    """One thread block per output fragment: the spatial outer loops fused, on blockIdx.x."""
    fused = sch.fuse(*spatial)
    sch.bind(fused, "blockIdx.x")
    return fused


def _depth(sch, block, loop) -> int:
    """How many loops of ``block`` enclose ``loop``, itself included."""
    here = sch.get(loop)
    return 1 + next(i for i, outer in enumerate(sch.get_loops(block))
                    if sch.get(outer).same_as(here))


def _cooperative(sch, copy, depth: int, warp: int, warps: list, vector: int) -> None:
    """The copy's loops below the first ``depth`` fused and spread over the block's threads.

    The threadIdx.y part is split by each factor of ``warps`` and fused back, so that a trace
    holds only the sampled factors themselves (it cannot hold their product).
    """
    fused = sch.fuse(*sch.get_loops(copy)[depth:])
    parts = sch.split(fused, factors=[None, *warps, warp, *([vector] if vector > 1 else [])])
    if warps:
        sch.bind(sch.fuse(*parts[1:1 + len(warps)]), "threadIdx.y")
    sch.bind(parts[1 + len(warps)], "threadIdx.x")
    if vector > 1:
        sch.vectorize(parts[-1])


def _move_under(sch, block, loop, *, after: bool = False) -> None:
    """``block`` to ``loop`` (compute_at, or reverse_compute_at when ``after``).

    cache_read / cache_write put a new stage beside the stage it copies for; when that one
    is already under ``loop``, so is the new stage (and moving it again is an error).
    """
    here = sch.get(loop)
    if any(sch.get(outer).same_as(here) for outer in sch.get_loops(block)):
        return
    # Unit loops kept: the moved stage then has as many loops whatever the tile sizes, which a
    # trace replayed with other sampled decisions needs (its get_loops must return as many).
    (sch.reverse_compute_at if after else sch.compute_at)(block, loop, preserve_unit_loops=True)


def _window_loops(tvm_intrinsic: str) -> int:
    """How many loops the description of a registered TVM tensor intrinsic has."""
    from tvm.s_tir import TensorIntrin
    from tvm.tirx import For

    stmt, count = TensorIntrin.get(tvm_intrinsic).desc.body.block.body, 0
    while isinstance(stmt, For):
        count, stmt = count + 1, stmt.body
    return count


@realisation_step("tensorize")
def finish_gpu(sch, block_name: str, reduce: list, inner: list, compute: str) -> None:
    """Tensorize a staged GPU program (see :func:`stage_operands`) and bind the other kernels.

    The accumulator's initialisation is split out before ``reduce[0]``; it, each annotated
    load and store, and the main block (at ``inner[0]``) are tensorized; every stage left at
    the root becomes an elementwise kernel.
    """
    block = sch.get_sblock(block_name)
    init_intrinsic = str(sch.get(block).annotations[TENSORIZE_INIT])
    movers = [(stage, str(sch.get(stage).annotations[TENSORIZE]))
              for stage in [*sch.get_producers(block), *sch.get_consumers(block)]
              if TENSORIZE in sch.get(stage).annotations]
    init = sch.decompose_reduction(block, reduce[0])
    sch.tensorize(sch.get_loops(init)[-_window_loops(init_intrinsic)], init_intrinsic)
    for stage, name in movers:
        sch.tensorize(sch.get_loops(stage)[-_window_loops(name)], name)
    sch.tensorize(inner[0], compute)
    _bind_root_stages(sch, ELEMENTWISE_THREADS)


def _bind_root_stages(sch, threads: int) -> None:
    """Every stage left at the root (padding, packing, unpacking, sums): a kernel over its
    spatial loops (a reduction stays serial in each thread)."""
    from tvm.tirx import ForKind

    for stage in sch.get_child_blocks(sch.get_sblock("root")):
        loops = sch.get_loops(stage)
        if not loops or sch.get(loops[0]).kind == ForKind.THREAD_BINDING:
            continue
        spatial = sum(1 for v in sch.get(stage).iter_vars if v.iter_type == 0)  # DataPar
        blocks, lanes = sch.split(sch.fuse(*loops[:spatial]), factors=[None, threads])
        sch.bind(blocks, "blockIdx.x")
        sch.bind(lanes, "threadIdx.x")


_rewritten = realisation_step("rewrite the program")(program_for)


def realise(workload: Workload, candidate: MappingCandidate, intrinsic: Intrinsic,
            target: Target) -> Realised:
    """The untuned kernel of ``candidate``: one warp per thread block, one fragment per staging
    buffer (see the comment above :class:`Memory`)."""
    program = _rewritten(workload, candidate, intrinsic)
    shaped = reshape(program, candidate, intrinsic, pack_in_place=False)
    if not shaped.reduce:
        raise RealisationError("split failed: the intrinsic has no reduce axis to accumulate over")
    inputs, output = block_memory(program, candidate, intrinsic)
    sch = shaped.sch
    thread_block = _bind_thread_blocks(sch, shaped.spatial)
    stage_operands(sch, shaped.block, inputs, output, intrinsic,
                   Staging(output_at=thread_block, accumulator_at=thread_block,
                           shared_at=shaped.reduce[-1], fragment_at=shaped.reduce[-1]),
                   warp_size(target))
    finish(sch, shaped.block, shaped.reduce, shaped.inner, shaped.compute)
    return Realised(sch=sch, block=shaped.block, outer_loops=1 + len(shaped.reduce),
                    compute_intrinsic=shaped.compute)


finish = finish_gpu  # what the core calls on a tiled sketch
