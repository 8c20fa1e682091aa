"""``gta peak`` for the AMX intrinsics: the intrinsic's own call, repeated on data in L1.

A tile cannot stay in a register from one call to the next (:mod:`.amx`), so the figure
that bounds an AMX program is not the bare ``tdpbusd`` rate but the call as declared: load
the 2 x 2 accumulator tiles, ``depth / 64`` rounds of 2 + 2 operand loads and 4 products,
store. Each core runs the tensorized call ``trips`` times over its own operands (A, packed
B and C: 12 KB at depth 128, 36 KB at 512, inside a 48 KB L1), so memory never limits it.
"""

from __future__ import annotations

import statistics

import numpy as np
import tvm

from gta_core.sdk import (
    Intrinsic,
    PeakMeasurement,
    Target,
    calibrated_trips,
    run_seconds,
    runnable,
    with_threads,
)

from .peak import _workers


def _kernel(intrinsic: Intrinsic, workers: int):
    """``C[w] += trips x (A[w] @ B[w])`` for each worker w, tensorized with ``intrinsic``."""
    from tvm import s_tir, te

    from . import amx  # noqa: F401 - registers the TVM intrinsics

    trips = te.var("trips")
    a, b = (te.placeholder((workers, *_shape(intrinsic, x)), _dtype(intrinsic, x), name=x)
            for x in "AB")
    t = te.reduce_axis((0, trips), name="t")
    k = te.reduce_axis((0, intrinsic.compute.extent("k")), name="k")
    if _dtype(intrinsic, "A") == "uint8":  # the order the intrinsic's desc reads its operands in
        product = lambda w, i, j: (a[w, i, k].astype("int32")  # noqa: E731
                                   * b[w, k // 4, j, k % 4].astype("int32"))
    else:
        product = lambda w, i, j: (b[w, k // 4, j, k % 4].astype("int32")  # noqa: E731
                                   * a[w, i, k].astype("int32"))
    c = te.compute((workers, *_shape(intrinsic, "C")),
                   lambda w, i, j: te.sum(product(w, i, j), axis=[t, k]), name="C")
    sch = s_tir.Schedule(te.create_prim_func([a, b, c, trips]))
    block = sch.get_sblock("C")
    w, i, j, tt, kk = sch.get_loops(block)
    sch.reorder(w, tt, i, j, kk)
    sch.parallel(w)
    sch.decompose_reduction(block, tt)
    sch.tensorize(i, intrinsic.tvm_intrinsics["compute"])
    return sch.mod


def measure_amx_peak(intrinsic: Intrinsic, target: Target, repeats: int = 5,
                     target_seconds: float = 0.2) -> PeakMeasurement:
    """The call's throughput on all of ``target``'s cores (see the module docstring)."""
    workers = _workers(target)
    module = runnable(_kernel(intrinsic, workers), target)
    rng = np.random.default_rng(0)
    args = [tvm.runtime.tensor(rng.integers(0, 2, (workers, *_shape(intrinsic, x)),
                                            dtype=_dtype(intrinsic, x))) for x in "ABC"]

    def run() -> tuple[int, list[float]]:
        trips = calibrated_trips(lambda n: min(run_seconds(module, args, n, 1)),
                                 target_seconds, start=64)
        return trips, run_seconds(module, args, trips, repeats)

    (trips, times), threads = with_threads(workers, run)
    median = statistics.median(times)
    ops_per_call = 2 * intrinsic.compute.macs
    return PeakMeasurement(
        intrinsic=intrinsic.name, target=target.name,
        gops=ops_per_call * trips * workers / median / 1e9, cores=workers, repeats=repeats,
        spread=(max(times) - min(times)) / median,
        method=(f"{workers} parallel TVM workers on {threads} pool threads each made {trips:,} "
                f"calls of the tensorized intrinsic (accumulators loaded and stored by each "
                f"call, operands in L1), counted as {ops_per_call} ops per call; median of "
                f"{repeats} runs of ~{median:.3f} s."),
    )


def _shape(intrinsic: Intrinsic, operand: str) -> tuple[int, ...]:
    """One call's window of ``operand``, as laid out in memory (B packed)."""
    rows, cols, depth = (intrinsic.compute.extent(v) for v in "ijk")
    return {"A": (rows, depth), "B": (depth // 4, cols, 4), "C": (rows, cols)}[operand]


def _dtype(intrinsic: Intrinsic, operand: str) -> str:
    return next(o.dtype for o in intrinsic.compute.operands if o.name == operand)
