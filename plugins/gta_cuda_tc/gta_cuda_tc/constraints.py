"""Resource constraints of Tensor Core kernels: each rejects a candidate with the reason.

They read what a candidate uses from its program after TVM's buffer compaction (the passes
that size every buffer to the region its block touches, as the built kernel allocates it), so
they hold for any schedule, sampled or replayed, whichever rules made it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from gta_core.sdk import Constraint, ScheduleContext, Target, child_statements, index_variables

# wmma's fragments, and mma.sync's ("warp": a warp's registers, [lane, register])
FRAGMENT_SCOPES = ("wmma.matrix_a", "wmma.matrix_b", "wmma.accumulator", "warp")
BASE_REGISTERS = 32  # per thread beside fragments: addresses, loop counters, copy vectors


@dataclass
class KernelUsage:
    """What the most demanding kernel of a program uses, per thread block and per warp."""

    shared_bytes: int = 0  # per thread block, each software-pipeline stage's copy counted
    threads: int = 1  # per thread block
    fragment_bytes: dict[str, int] = field(default_factory=dict)  # per warp, by scope
    fragment_elements: dict[str, int] = field(default_factory=dict)  # per warp, by scope
    # per warp: the fragments a block initialises (writes, reading nothing), whatever scope
    accumulator_elements: int = 0


def _bytes(buffer) -> int:
    elements = 1
    for extent in buffer.shape:
        elements *= int(extent)
    return elements * buffer.dtype.bits * buffer.dtype.lanes // 8


def _kernel_usage(kernel) -> KernelUsage:
    """The buffers and threads of one kernel (a loop nest bound to blockIdx at the root)."""
    from tvm.tirx import ForKind

    usage = KernelUsage()
    extents: dict[str, int] = defaultdict(lambda: 1)
    fragments: dict[str, int] = defaultdict(int)
    elements: dict[str, int] = defaultdict(int)
    sizes: dict[str, int] = {}  # elements of each fragment buffer, by name
    initialised: set[str] = set()
    shared: dict[str, int] = {}  # bytes of each shared buffer, by name
    copies: dict[str, int] = {}  # shared buffers a software pipeline keeps this many of
    stack = [kernel]
    while stack:
        node = stack.pop()
        if hasattr(node, "writes") and not node.reads:
            initialised.update(r.source.name for r in node.writes
                               if r.source.scope() in FRAGMENT_SCOPES)
        stages = (getattr(node, "annotations", None) or {}).get("software_pipeline_stage")
        if stages is not None:
            _pipelined(node, [int(stage) for stage in stages], copies)
        binding = getattr(node, "thread_binding", None)
        if getattr(node, "kind", None) == ForKind.THREAD_BINDING and binding is not None:
            tag = binding.thread_tag
            if tag.startswith("threadIdx"):
                extents[tag] = max(extents[tag], int(node.extent))
        for buffer in getattr(node, "alloc_buffers", None) or []:
            scope = buffer.scope()
            if scope == "shared":
                shared[buffer.name] = _bytes(buffer)
            elif scope in FRAGMENT_SCOPES:
                fragments[scope] += _bytes(buffer)
                count = 1
                for extent in buffer.shape:
                    count *= int(extent)
                elements[scope] += count
                sizes[buffer.name] = count
        stack.extend(child_statements(node, init=False))
    for extent in extents.values():
        usage.threads *= extent
    usage.fragment_bytes, usage.fragment_elements = dict(fragments), dict(elements)
    usage.accumulator_elements = sum(sizes.get(name, 0) for name in initialised)
    usage.shared_bytes = sum(size * copies.get(name, 1) for name, size in shared.items())
    return usage


def _pipelined(loop, stages: list[int], copies: dict[str, int]) -> None:
    """Note the shared buffers that ``loop``'s software pipeline multiplies: each written in
    a stage before the last is kept once per stage from its own to the last, plus one."""
    body = loop.body
    children = list(body.seq) if hasattr(body, "seq") else [body]
    last = max(stages)
    for child, stage in zip(children, stages):
        if stage == last:
            continue
        stack = [child]
        while stack:
            node = stack.pop()
            for region in getattr(node, "writes", None) or []:
                if region.source.scope() == "shared":
                    name = region.source.name
                    copies[name] = max(copies.get(name, 1), last - stage + 1)
            stack.extend(child_statements(node, init=False))


def kernel_usage(sch) -> KernelUsage:
    """The largest use of each resource over the kernels of ``sch``'s program.

    The program goes through the passes that compact every buffer to its touched region;
    a buffer under a warp's (threadIdx.y) loop is then sized per warp, a shared one per block.
    """
    import tvm
    from tvm import s_tir

    mod = tvm.ir.transform.Sequential([
        s_tir.transform.LowerInitBlock(),
        s_tir.transform.PlanAndUpdateBufferAllocationLocation(),
        s_tir.transform.ConvertBlocksToOpaque(),
        s_tir.transform.CompactBufferAllocation(),
    ])(sch.mod)
    total = KernelUsage()
    for kernel in _kernels(mod["main"].body):
        usage = _kernel_usage(kernel)
        total.shared_bytes = max(total.shared_bytes, usage.shared_bytes)
        total.threads = max(total.threads, usage.threads)
        for scope, size in usage.fragment_bytes.items():
            total.fragment_bytes[scope] = max(total.fragment_bytes.get(scope, 0), size)
        for scope, count in usage.fragment_elements.items():
            total.fragment_elements[scope] = max(total.fragment_elements.get(scope, 0), count)
        total.accumulator_elements = max(total.accumulator_elements, usage.accumulator_elements)
    return total


def _kernels(body) -> list:
    """The outermost loops bound to blockIdx: one per kernel."""
    found, stack = [], [body]
    while stack:
        node = stack.pop()
        binding = getattr(node, "thread_binding", None)
        if binding is not None and binding.thread_tag.startswith("blockIdx"):
            found.append(node)
            continue
        stack.extend(child_statements(node, init=False))
    return found


def usage_of(context: ScheduleContext) -> KernelUsage:
    """``context``'s kernel usage, computed once for all the constraints that check it."""
    if "kernel_usage" not in context.notes:
        context.notes["kernel_usage"] = kernel_usage(context.sch)
    return context.notes["kernel_usage"]


def _arch(target: Target) -> str:
    return target.arch or str(target.tvm.get("arch", target.name))


class SharedMemoryPerBlock(Constraint):
    """A thread block's shared memory must fit the target's per-block limit.

    The staging buffers of a block (input tiles of one k-step, the output tile) are summed as
    the compacted program allocates them.
    """

    name = "shared-memory-per-block"

    def applies(self, target: Target) -> bool:
        return target.kind == "gpu" and target.resources.shared_memory_per_block is not None

    def check(self, context: ScheduleContext) -> str | None:
        need = usage_of(context).shared_bytes
        limit = context.target.resources.shared_memory_per_block
        if need > limit:
            return (f"a thread block needs {need} bytes of shared memory; "
                    f"{_arch(context.target)} allows {limit} per block")
        return None


class ThreadsPerBlock(Constraint):
    """Threads (and so warps) per thread block must not exceed the target's limit."""

    name = "threads-per-block"

    def applies(self, target: Target) -> bool:
        return target.kind == "gpu" and target.resources.max_threads_per_block is not None

    def check(self, context: ScheduleContext) -> str | None:
        resources = context.target.resources
        threads = usage_of(context).threads
        if threads > resources.max_threads_per_block:
            warp = resources.warp_size or 32
            return (f"a thread block has {threads} threads ({threads // warp} warps); "
                    f"{_arch(context.target)} allows {resources.max_threads_per_block} "
                    f"({resources.max_threads_per_block // warp} warps)")
        return None


class AccumulatorFragments(Constraint):
    """A warp may hold at most ``max_fragments`` accumulator fragments.

    Each 16x16 fp32 accumulator takes 8 registers of every thread; past 16 of them the
    accumulators alone take half of the 255 registers a thread may have, and the compiler
    spills them to local memory, which no tile reuse pays for.
    """

    name = "accumulator-fragments"
    max_fragments = 16

    def applies(self, target: Target) -> bool:
        return target.kind == "gpu"

    def check(self, context: ScheduleContext) -> str | None:
        if context.intrinsic is None:
            return None
        compute = context.intrinsic.compute
        output = compute.output
        per_fragment = 1
        for var in {v for index in output.indices for v in index_variables(index)}:
            per_fragment *= compute.extent(var)
        usage = usage_of(context)
        # the initialised fragments; before the reduction is split, all in the output's scope
        count = (usage.accumulator_elements
                 or usage.fragment_elements.get(output.scope, 0)) // per_fragment
        if count > self.max_fragments:
            return (f"a warp holds {count} accumulator fragments; at most {self.max_fragments} "
                    "stay in registers")
        return None


class RegistersPerThread(Constraint):
    """The estimated registers of a thread must fit the target's per-thread and per-block limits.

    Estimate: the fragments a warp holds, spread over its lanes in 4-byte registers, plus
    ``BASE_REGISTERS`` for addresses and counters. (nvcc decides the real count; the estimate
    rejects only what cannot fit whatever it does.)
    """

    name = "registers-per-thread"

    def applies(self, target: Target) -> bool:
        return target.kind == "gpu" and target.resources.registers_per_thread is not None

    def check(self, context: ScheduleContext) -> str | None:
        resources = context.target.resources
        usage = usage_of(context)
        warp = resources.warp_size or 32
        registers = BASE_REGISTERS + sum(usage.fragment_bytes.values()) // (4 * warp)
        if registers > resources.registers_per_thread:
            return (f"a thread needs about {registers} registers; {_arch(context.target)} allows "
                    f"{resources.registers_per_thread}")
        per_block = resources.registers_per_block
        if per_block is not None and registers * usage.threads > per_block:
            return (f"{usage.threads} threads x about {registers} registers exceed the "
                    f"{per_block} registers of a thread block on {_arch(context.target)}")
        return None


GPU_CONSTRAINTS = (SharedMemoryPerBlock(), ThreadsPerBlock(), AccumulatorFragments(),
                   RegistersPerThread())
