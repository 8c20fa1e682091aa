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
import ctypes
import time

import numpy as np

import gta_core  # noqa: F401 - sets TVM_NUM_THREADS before TVM starts
from gta_core.host import cpu_cores, cpu_flags

_SYS_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA = 158, 0x1023, 18


def amx_available() -> str | None:
    """None when this process may run AMX-INT8 instructions, else why not."""
    if "amx_int8" not in cpu_flags():
        return "this CPU has no AMX-INT8"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(_SYS_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA) != 0:
        return f"the kernel refused AMX tile data (errno {ctypes.get_errno()})"
    return None


def _register(depth: int, tiles: int) -> str:
    """A TVM tensor intrinsic: ``16 * tiles`` squared outputs, ``depth`` of K, per call."""
    import tvm
    from tvm import s_tir, tirx
    from tvm.s_tir import TensorIntrin
    from tvm.script import tirx as T

    rows = 16 * tiles
    name = f"gta_probe_amx_{rows}x{rows}x{depth}"

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (rows, depth), "uint8", offset_factor=1)
        B = T.match_buffer(b, (depth // 4, rows, 4), "int8", offset_factor=1)
        C = T.match_buffer(c, (rows, rows), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:rows, 0:rows], A[0:rows, 0:depth], B[0:depth // 4, 0:rows, 0:4])
            T.writes(C[0:rows, 0:rows])
            for i, j, k in T.grid(rows, rows, depth):
                with T.sblock("update"):
                    vi, vj, vk = T.axis.remap("SSR", [i, j, k])
                    C[vi, vj] = C[vi, vj] + T.cast(A[vi, vk], "int32") * T.cast(
                        B[vk // 4, vj, vk % 4], "int32")

    sa, sb, sc = tirx.Var("sa", "int32"), tirx.Var("sb", "int32"), tirx.Var("sc", "int32")
    a_buf = tirx.decl_buffer((rows, depth), "uint8", "A", strides=[sa, 1], offset_factor=1)
    b_buf = tirx.decl_buffer((depth // 4, rows, 4), "int8", "B", strides=[sb, 4, 1],
                             offset_factor=1)
    c_buf = tirx.decl_buffer((rows, rows), "int32", "C", strides=[sc, 1], offset_factor=1)
    shape = (tirx.const(16, "int16"), tirx.const(64, "int16"))

    def load(buf, indices, stride):
        return tirx.call_llvm_intrin(
            "handle", "llvm.x86.tileloadd64.internal", *shape,
            tirx.address_of(tirx.BufferLoad(buf, indices)), tirx.Cast("int64", stride))

    stores = []
    for row in range(tiles):
        for col in range(tiles):
            out = [row * 16, col * 16]
            acc = load(c_buf, out, sc * 4)
            for step in range(depth // 64):  # one nested expression: LLVM keeps it in a tile
                acc = tirx.call_llvm_intrin(
                    "handle", "llvm.x86.tdpbusd.internal", *shape, tirx.const(64, "int16"),
                    acc, load(a_buf, [row * 16, step * 64], sa),
                    load(b_buf, [step * 16, col * 16, 0], sb))
            stores.append(tirx.Evaluate(tirx.call_llvm_intrin(
                "void", "llvm.x86.tilestored64.internal", *shape,
                tirx.address_of(tirx.BufferLoad(c_buf, out)), tirx.Cast("int64", sc * 4),
                acc)))
    region = [tirx.BufferRegion(buf, [tvm.ir.Range(0, extent) for extent in buf.shape])
              for buf in (c_buf, a_buf, b_buf)]
    body = stores[0] if len(stores) == 1 else tirx.SeqStmt(stores)
    root = s_tir.SBlock([], region, region[:1], "root", body)
    impl = tirx.PrimFunc([a_buf, b_buf, c_buf], s_tir.SBlockRealize([], True, root))
    TensorIntrin.register(name, desc, impl, override=True)
    return name


def build(size: int, steps: int, tiles: int = 1, prepacked: bool = False):
    """The tensorized GEMM, compiled for this CPU."""
    import tvm
    from gta_avx512.plugin import MCPU
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
    why = amx_available()
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
