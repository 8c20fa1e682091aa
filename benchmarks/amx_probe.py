"""Intel AMX (tdpbusd) through TensorIR's tensorize, measured beside the VNNI peak: the
measurements behind the avx512 plugin's AMX intrinsics (docs/design-notes.md, "Intrinsics:
AMX").

    .venv/bin/python benchmarks/amx_probe.py [--size 1024] [--steps 1 2 4 8 16] [--tiles 1 2]
                                             [--prepacked] [--repeat 7]

An int8 GEMM C[M, N] = A[M, K] (u8) x B[K, N] (s8) is scheduled by hand. B is in the tiles'
layout, ``[k // 4, n, k % 4]``: packed by ``transform_layout`` in every call (untuned), or
with ``--prepacked`` given so (as a model's constant weights are, packed once). Each call
computes a block of ``16 * tiles`` squared outputs (``tiles`` x ``tiles`` accumulator
tiles: 2 x 2 uses all 8 tile registers with 2 of A and 2 of B): it loads its accumulators,
issues ``steps`` ``tdpbusd`` per tile over 64-deep slices of K and stores them back. The impl
is nested expressions of LLVM's ``*.internal`` AMX intrinsics, so LLVM allocates the tiles
and writes the tile configuration itself; tensorize matches the packed operand's
``B[k // 4, n, k % 4]`` access. Every output is checked exactly before it is timed. Needs
an AMX-INT8 CPU whose kernel grants this process the tile data (``arch_prctl(
ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)``); says so and exits 0 otherwise.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from gta_avx512.plugin import MCPU, amx_refused

import gta_core  # noqa: F401 - sets TVM_NUM_THREADS before TVM starts
from gta_core.host import cpu_cores


def _register(depth: int, tiles: int) -> str:
    """The plugin's u8 x s8 tile intrinsic with ``tiles`` x ``tiles`` tiles per call."""
    from gta_avx512 import amx
    from tvm.s_tir import TensorIntrin

    rows = 16 * tiles
    name = f"gta_probe_amx_{rows}x{rows}x{depth}"
    TensorIntrin.register(name, amx.desc("uint8", "int8", depth, tiles),
                          amx.impl("uint8", "int8", depth, tiles), override=True)
    return name


def build(size: int, steps: int, tiles: int = 1, prepacked: bool = False):
    """The tensorized GEMM, compiled for this CPU."""
    import tvm
    from tvm import s_tir, te

    depth, rows = 64 * steps, 16 * tiles
    if size % rows or size % depth:
        raise SystemExit(f"--size {size} must be a multiple of {rows} (16 x tiles) and of "
                         f"64 * steps ({depth})")
    name = _register(depth, tiles)
    a = te.placeholder((size, size), "uint8", name="A")
    k = te.reduce_axis((0, size), name="k")
    if prepacked:
        b = te.placeholder((size // 4, size, 4), "int8", name="B")
        product = lambda i, j: b[k // 4, j, k % 4]  # noqa: E731
    else:
        b = te.placeholder((size, size), "int8", name="B")
        product = lambda i, j: b[k, j]  # noqa: E731
    c = te.compute((size, size), lambda i, j: te.sum(
        a[i, k].astype("int32") * product(i, j).astype("int32"), axis=k), name="C")
    sch = s_tir.Schedule(te.create_prim_func([a, b, c]))
    block = sch.get_sblock("C")
    if not prepacked:
        sch.cache_read(block, 1, "global")
        sch.transform_layout(block, ("read", 1), lambda kk, n: (kk // 4, n, kk % 4))
    i, j, kk = sch.get_loops(block)
    io, ii = sch.split(i, [None, rows])
    jo, ji = sch.split(j, [None, rows])
    ko, ki = sch.split(kk, [None, depth])
    sch.reorder(io, jo, ko, ii, ji, ki)
    sch.parallel(io)
    sch.decompose_reduction(block, ko)
    sch.tensorize(ii, name)
    target = tvm.target.Target({"kind": "llvm", "mcpu": MCPU, "num-cores": cpu_cores()})
    return tvm.compile(sch.mod, target=target)


def measure(size: int, steps: int, repeat: int, tiles: int = 1,
            prepacked: bool = False) -> dict:
    import tvm

    lib = build(size, steps, tiles, prepacked)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (size, size), dtype=np.uint8)
    b = rng.integers(-128, 128, (size, size), dtype=np.int8)
    given = np.ascontiguousarray(b.reshape(size // 4, 4, size).transpose(0, 2, 1)) \
        if prepacked else b
    args = [tvm.runtime.tensor(x) for x in (a, given, np.full((size, size), 7, np.int32))]
    lib["main"](*args)
    exact = bool(np.array_equal(args[2].numpy(), a.astype(np.int64) @ b.astype(np.int64)))
    start = time.perf_counter()
    lib["main"](*args)
    runs = max(1, int(0.05 / (time.perf_counter() - start)))  # samples of ~50 ms
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(runs):
            lib["main"](*args)
        samples.append((time.perf_counter() - start) / runs)
    median = float(np.median(samples))
    return {"size": size, "depth": 64 * steps, "tiles": tiles, "exact": exact, "ms": median * 1e3,
            "gops": 2 * size**3 / median / 1e9,
            "spread": (max(samples) - min(samples)) / median}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--tiles", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    parser.add_argument("--prepacked", action="store_true",
                        help="B given in the tiles' layout (a model's packed-once weights)")
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args()
    why = amx_refused()
    if why:
        print(f"no AMX probe: {why}")
        return
    packing = "given packed" if options.prepacked else "packed in every call"
    print(f"int8 GEMM {options.size}^3 with AMX tdpbusd, B {packing}, untuned")
    for tiles in options.tiles:
        for steps in options.steps:
            row = measure(options.size, steps, options.repeat, tiles, options.prepacked)
            print(f"{tiles} x {tiles} tiles, K per call {row['depth']:5d}: {row['ms']:.3f} ms, "
                  f"{row['gops']:.0f} GOPS (spread {row['spread']:.0%}), exact: {row['exact']}")


if __name__ == "__main__":
    main()
