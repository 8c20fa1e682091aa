"""A CPU intrinsic's peak measured from its declaration alone: no kernel from its plugin.

``gta peak`` asks the plugins first (``gta_intrinsic_peak``); an intrinsic of a ``cpu``
target that no plugin measures is measured here, so a third-party target gets the
fraction-of-peak denominator of every bench without writing a peak kernel.

The kernel is the intrinsic's own TVM implementation (``tvm_intrinsics["compute"]``, or
its mirrored twin) tensorized into a register tile, the shape a generated program's inner
loop has: each of the target's cores runs a worker that, for every step, loads
``rows`` first operands and ``cols`` second operands (from a few L1-resident variants,
so no load can be hoisted out of the loop) and issues the intrinsic on each of the
``rows x cols`` accumulators, which stay in registers. The tiles tried (:func:`tiles`)
hide the target's declared latency x issue rate with independent accumulators, as far as
its vector registers hold them (2x4, 4x3 and 6x2 with 16 registers); the fastest is the
peak. The figure therefore includes what the intrinsic costs beyond its arithmetic
instruction (a widening, a broadcast, the operand loads, amortised as a register tile
amortises them): a ceiling a generated program can approach, not the bare instruction's
throughput (a plugin that wants that measures it with its own kernel, as the ``avx512``
plugin does).

The kernel's output is checked against numpy before it is timed.
"""

from __future__ import annotations

import itertools
import os
import statistics
import threading
from collections.abc import Callable
from typing import TypeVar

from ..host import cpu_cores
from ..mapping.access import intrinsic_computation
from ..models import Intrinsic, PeakMeasurement, PeakSkipped, Target

VARIANTS = 16  # operand variants a worker steps through (a few KB: L1-resident)
CHECK_TRIPS = 3
MAX_TRIPS = 1 << 30  # the kernel's trip count is an int32

T_ = TypeVar("T_")


def measure_generic_peak(intrinsic: Intrinsic, target: Target, repeats: int = 5, *,
                         target_seconds: float = 0.2) -> PeakMeasurement | PeakSkipped:
    """Measure ``intrinsic`` on all of ``target``'s cores with the generic kernel (see the
    module), in each register tile :func:`tiles` gives, and report the fastest;
    :class:`PeakSkipped` where its declaration is not a product the kernel can tile (not
    two inputs, an output indexed other than by its own spatial axes)."""
    import numpy as np

    from .check import runnable

    why = _cannot_tile(intrinsic)
    if why is not None:
        return PeakSkipped(intrinsic=intrinsic.name, target=target.name, reason=why)
    workers = target.resources.cores or cpu_cores()
    kernels = []
    try:
        for rows, cols in tiles(target):
            program, name = _kernel(intrinsic, workers, rows, cols)
            kernels.append((rows, cols, name, program))
    except Exception as exc:  # noqa: BLE001 - a kernel TVM refuses is a reason, not a crash
        return PeakSkipped(intrinsic=intrinsic.name, target=target.name,
                           reason=f"its TVM implementation could not be tiled: "
                                  f"{_line(exc)}")
    modules = [(runnable(program, target), _arguments(program, np.random.default_rng(0)))
               for *_, program in kernels]

    def run() -> list[tuple[int, list[float]]]:
        return [_timed(module, args, intrinsic, repeats, target_seconds)
                for module, args in modules]

    timings, threads = with_threads(workers, run)
    ops_per_call = 2 * intrinsic.compute.macs
    rates = [ops_per_call * trips * VARIANTS * rows * cols * workers / statistics.median(times)
             for (rows, cols, *_), (trips, times) in zip(kernels, timings)]
    best = max(range(len(kernels)), key=rates.__getitem__)
    (rows, cols, name, _), (trips, times) = kernels[best], timings[best]
    median = statistics.median(times)
    return PeakMeasurement(
        intrinsic=intrinsic.name, target=target.name, gops=rates[best] / 1e9, cores=workers,
        repeats=repeats, spread=(max(times) - min(times)) / median,
        method=(f"GTA's generic kernel ({name} tensorized into a {rows}x{cols} register tile, "
                f"the fastest of {', '.join(f'{r}x{c}' for r, c, *_ in kernels)}; operands "
                f"loaded from L1 each step): {workers} parallel workers on {threads} pool "
                f"threads, {trips * VARIANTS * rows * cols:,} calls each, {ops_per_call} ops "
                f"per call; median of {repeats} runs of ~{median:.3f} s."))


def _timed(module, args_np: list, intrinsic: Intrinsic, repeats: int,
           target_seconds: float) -> tuple[int, list[float]]:
    """Checked first, then ``repeats`` runs of about ``target_seconds``: (trips, seconds)."""
    import tvm

    args = [tvm.runtime.tensor(a, tvm.cpu()) for a in args_np]
    module(*args, CHECK_TRIPS)
    _check(intrinsic, args_np, args[-1].numpy(), CHECK_TRIPS)
    trips = calibrated_trips(lambda n: min(run_seconds(module, args, n, 1)), target_seconds,
                             start=1 << 10, limit=MAX_TRIPS)
    return trips, run_seconds(module, args, trips, repeats)


def run_seconds(module, args: list, trips: int, repeats: int) -> list[float]:
    """``repeats`` timed runs of a peak kernel ``module(*args, trips)`` on the CPU, seconds."""
    import tvm

    evaluator = module.time_evaluator(module.entry_name, tvm.cpu(), number=1, repeat=repeats)
    return list(evaluator(*args, trips).results)


def calibrated_trips(seconds_for: Callable[[int], float], target_seconds: float, *,
                     start: int, limit: int | None = None) -> int:
    """The trip count of a run of about ``target_seconds``: from ``start``, grown x4 until
    one run (``seconds_for(trips)``) takes >= 20 ms (which also warms up the thread pool and
    the clocks), then scaled; at most ``limit`` where the kernel's count is bounded."""
    trips = start
    while True:
        elapsed = seconds_for(trips)
        if elapsed >= 0.02 or (limit is not None and trips >= limit):
            break
        trips *= 4
    trips = max(1, int(trips * target_seconds / elapsed))
    return trips if limit is None else min(limit, trips)


def tiles(target: Target) -> list[tuple[int, int]]:
    """The accumulator tiles ``(rows, cols)`` tried: for 4, 3 and 2 columns, as many rows
    as the vector registers hold (the tile, the columns' operands and one row's; default
    16 registers), at most twice the chains that hide the latency (latency x issue rate,
    default 4 x 2); none with fewer chains than that unless no tile fits."""
    res = target.resources
    chains = (res.vector_latency_cycles or 4) * (res.vector_issue_per_cycle or 2)
    registers = res.vector_registers or 16
    found = []
    for cols in (4, 3, 2):
        rows = min((registers - cols - 1) // cols, -(-2 * chains // cols))
        if rows >= 1 and rows * cols >= chains:
            found.append((rows, cols))
    return found or [(1, 1)]


def _cannot_tile(intrinsic: Intrinsic) -> str | None:
    comp = intrinsic_computation(intrinsic)
    if len(comp.inputs) != 2:
        return f"the generic peak kernel tiles products of two inputs; it has {len(comp.inputs)}"
    spatial = [a.name for a in comp.axes if a.kind == "spatial"]
    if [dict(index) for index in comp.output.indices] != [{name: 1} for name in spatial]:
        return ("the generic peak kernel needs the output indexed by its spatial axes in "
                "order")
    if not intrinsic.tvm_intrinsics.get("compute"):
        return "it names no TVM intrinsic 'compute' to tensorize"
    return None


def _shape(access, extents: dict[str, int]) -> tuple[int, ...]:
    """The operand's extent in each dimension: its largest index, plus one."""
    return tuple(i + 1 for i in _at(access, {name: n - 1 for name, n in extents.items()}))


def _at(access, values: dict) -> tuple:
    """``access``'s indices where each axis takes its value in ``values`` (ints or TVM
    expressions)."""
    return tuple(sum((values[name] * c if name else c) for name, c in dim)
                 for dim in access.indices)


def _kernel(intrinsic: Intrinsic, workers: int, rows: int, cols: int):
    """The tiled PrimFunc (``A, B, C, trips``) and the TVM intrinsic it tensorized."""
    import importlib

    from tvm import s_tir, te, tirx

    importlib.import_module(intrinsic.tvm_module)
    comp = intrinsic_computation(intrinsic)
    extents = {a.name: a.extent for a in comp.axes}
    a_in, b_in = comp.inputs
    out = comp.output
    trips = tirx.Var("trips", "int32")
    a = te.placeholder((workers, VARIANTS, rows, *_shape(a_in, extents)), a_in.dtype, "A")
    b = te.placeholder((workers, VARIANTS, cols, *_shape(b_in, extents)), b_in.dtype, "B")
    spatial = [x for x in comp.axes if x.kind == "spatial"]
    t = te.reduce_axis((0, trips), "t")
    v = te.reduce_axis((0, VARIANTS), "v")
    reduce = [te.reduce_axis((0, x.extent), x.name) for x in comp.axes if x.kind == "reduce"]

    def body(w, r, c, *space):
        values = {x.name: s for x, s in zip(spatial, space)}
        values.update({x.var.name: x.var for x in reduce})
        left = a[(w, v, r, *_at(a_in, values))].astype(out.dtype)
        right = b[(w, v, c, *_at(b_in, values))].astype(out.dtype)
        return te.sum(left * right, axis=[t, v, *reduce])

    result = te.compute((workers, rows, cols, *[x.extent for x in spatial]), body, "C")
    sch = s_tir.Schedule(te.create_prim_func([a, b, result, trips]))
    block = sch.get_sblock("C")
    loops = sch.get_loops(block)
    w, r, c = loops[:3]
    inner_spatial = loops[3:3 + len(spatial)]
    t_loop, v_loop = loops[3 + len(spatial):5 + len(spatial)]
    inner_reduce = loops[5 + len(spatial):]
    # the intrinsic's own loops innermost, in its declared axis order
    by_name = dict(zip([x.name for x in spatial], inner_spatial))
    by_name.update(zip([x.name for x in comp.axes if x.kind == "reduce"], inner_reduce))
    intrinsic_loops = [by_name[x.name] for x in comp.axes]
    sch.reorder(t_loop, v_loop, r, c, *intrinsic_loops)
    sch.parallel(w)
    sch.unroll(r)
    sch.unroll(c)
    sch.decompose_reduction(block, t_loop)  # the update block is then "C_update"
    names = [intrinsic.tvm_intrinsics["compute"]]
    if intrinsic.tvm_intrinsics.get("compute_mirrored"):
        names.append(intrinsic.tvm_intrinsics["compute_mirrored"])
    failure = None
    for name in names:
        attempt = sch.copy()
        try:
            attempt.tensorize(attempt.get_loops(attempt.get_sblock("C_update"))[5], name)
        except Exception as exc:  # noqa: BLE001 - tried with the mirrored twin next
            failure = exc
            continue
        return attempt.mod["main"], name
    raise failure


def _arguments(program, rng) -> list:
    """Random operands (full range of their dtypes) and a zeroed output."""
    import numpy as np

    out = []
    for buffer in program.params[:3]:
        shape = [int(d) for d in buffer.shape]
        dtype = str(buffer.dtype)
        if dtype.startswith(("int", "uint")):
            info = np.iinfo(dtype)
            out.append(rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype))
        else:
            out.append(rng.uniform(-1, 1, size=shape).astype(dtype))
    out[-1] = np.zeros_like(out[-1])
    return out


def _check(intrinsic: Intrinsic, args: list, got, trips: int) -> None:
    """The kernel's output against numpy's: ``trips`` times the sum over the variants of
    each tile's product, as the declaration computes it."""
    import numpy as np

    comp = intrinsic_computation(intrinsic)
    a, b, _ = args
    wide = np.int64 if comp.output.dtype.startswith(("int", "uint")) else np.float64
    expected = np.zeros(got.shape, dtype=wide)
    spatial = [x.name for x in comp.axes if x.kind == "spatial"]
    for point in itertools.product(*[range(x.extent) for x in comp.axes]):
        values = dict(zip([x.name for x in comp.axes], point))
        left = a[(..., *_at(comp.inputs[0], values))].astype(wide)  # (workers, variants, rows)
        right = b[(..., *_at(comp.inputs[1], values))].astype(wide)  # (workers, variants, cols)
        expected[(..., *[values[name] for name in spatial])] += np.einsum("wvr,wvc->wrc",
                                                                          left, right)
    expected *= trips
    if wide is np.int64:
        expected = expected.astype(comp.output.dtype)  # wraps as the int32 sums do
        same = np.array_equal(expected, got)
    else:
        same = np.allclose(expected, got, rtol=1e-4, atol=1e-3)
    if not same:
        raise RuntimeError(f"the generic peak kernel of {intrinsic.name} computed a wrong "
                           "output; its figure would mean nothing")


def with_threads(workers: int, work: Callable[[], T_]) -> tuple[T_, int]:
    """Run ``work()`` in a fresh thread whose TVM thread pool has ``workers`` threads;
    returns its result and the pool's thread count. (TVM sizes a thread's pool once, when
    it first runs a parallel loop, at ``TVM_NUM_THREADS``, else half the hardware threads
    on x86; a pool of one pins its thread to CPU 0 and new threads inherit that. So the
    variable is set for the measurement, and it runs in a new thread given at least
    ``workers`` CPUs.)"""
    import tvm

    outcome: dict[str, object] = {}

    def body() -> None:
        try:
            if len(os.sched_getaffinity(0)) < workers:
                try:
                    os.sched_setaffinity(0, range(os.cpu_count() or workers))
                except OSError:
                    pass
            outcome["threads"] = tvm.get_global_func("runtime.NumThreads")()
            outcome["value"] = work()
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller
            outcome["error"] = error

    with _POOL_LOCK:
        previous = os.environ.get("TVM_NUM_THREADS")
        os.environ["TVM_NUM_THREADS"] = str(workers)
        try:
            thread = threading.Thread(target=body, name="gta-peak", daemon=True)
            thread.start()
            thread.join()
        finally:
            if previous is None:
                os.environ.pop("TVM_NUM_THREADS", None)
            else:
                os.environ["TVM_NUM_THREADS"] = previous
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"], int(outcome["threads"])  # type: ignore[return-value]


_POOL_LOCK = threading.Lock()


def _line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:200]
