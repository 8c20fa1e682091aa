"""Intel AMX (tdpbusd) through TensorIR's tensorize, measured beside the VNNI peak: the groundwork
for an AMX intrinsic in the avx512 plugin (docs/design-notes.md, "Intrinsics: AMX").

    .venv/bin/python benchmarks/amx_probe.py [--size 1024] [--steps 4 8 16] [--repeat 7]

An int8 GEMM C[M, N] = A[M, K] (u8) x B[K, N] (s8) is scheduled by hand: B is packed to the
tiles' layout with ``transform_layout(k, n -> n // 16, k // 4, n % 16, k % 4)`` (the packing
copy runs in every call, untuned), then each 16 x 16 output block is tensorized with one
call that loads its accumulator tile, issues ``steps`` ``tdpbusd`` over 64-deep slices of K
and stores it back. The impl is one nested expression of LLVM's ``*.internal`` AMX
intrinsics, so LLVM allocates the tiles and writes the tile configuration itself; tensorize
matches the packed operand's ``B[k // 4, n, k % 4]`` access. Every output is checked
exactly before it is timed. Needs an AMX-INT8 CPU whose kernel grants this process the tile
data (``arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)``); says so and exits 0 otherwise.
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


def build(size: int, steps: int):
    """The tensorized GEMM, compiled for this CPU."""
    import tvm
    from tvm import s_tir, te, tirx
    from tvm.s_tir import TensorIntrin
    from tvm.script import tirx as T

    depth = 64 * steps
    name = f"gta_probe_amx_16x16x{depth}"
    if size % 16 or size % depth:
        raise SystemExit(f"--size {size} must be a multiple of 16 and of 64 * steps ({depth})")

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (16, depth), "uint8", offset_factor=1)
        B = T.match_buffer(b, (depth // 4, 16, 4), "int8", offset_factor=1)
        C = T.match_buffer(c, (16, 16), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:16, 0:16], A[0:16, 0:depth], B[0:depth // 4, 0:16, 0:4])
            T.writes(C[0:16, 0:16])
            for i, j, k in T.grid(16, 16, depth):
                with T.sblock("update"):
                    vi, vj, vk = T.axis.remap("SSR", [i, j, k])
                    C[vi, vj] = C[vi, vj] + T.cast(A[vi, vk], "int32") * T.cast(
                        B[vk // 4, vj, vk % 4], "int32")

    sa, sb, sc = tirx.Var("sa", "int32"), tirx.Var("sb", "int32"), tirx.Var("sc", "int32")
    bufs = [tirx.decl_buffer(shape, dtype, name, strides=strides, offset_factor=1)
            for shape, dtype, name, strides in (
                ((16, depth), "uint8", "A", [sa, 1]),
                ((depth // 4, 16, 4), "int8", "B", [sb, 4, 1]),
                ((16, 16), "int32", "C", [sc, 1]))]
    a_buf, b_buf, c_buf = bufs

    def tile(intrinsic: str, *args):
        return tirx.call_llvm_intrin("handle", f"llvm.x86.{intrinsic}.internal",
                                     tirx.const(16, "int16"), tirx.const(64, "int16"), *args)

    def load(buf, offset, stride):
        return tile("tileloadd64", buf.access_ptr("r", offset=offset), tirx.Cast("int64", stride))

    acc = load(c_buf, 0, sc * 4)
    for step in range(steps):  # one nested expression: LLVM keeps the chain in one tile
        acc = tirx.call_llvm_intrin(
            "handle", "llvm.x86.tdpbusd.internal", tirx.const(16, "int16"),
            tirx.const(64, "int16"), tirx.const(64, "int16"), acc,
            load(a_buf, step * 64, sa), load(b_buf, step * 16 * sb, sb))
    store = tirx.Evaluate(tirx.call_llvm_intrin(
        "void", "llvm.x86.tilestored64.internal", tirx.const(16, "int16"),
        tirx.const(64, "int16"), c_buf.access_ptr("w"), tirx.Cast("int64", sc * 4), acc))
    region = [tirx.BufferRegion(buf, [tvm.ir.Range(0, extent) for extent in buf.shape])
              for buf in (c_buf, a_buf, b_buf)]
    root = s_tir.SBlock([], region, region[:1], "root", store)
    impl = tirx.PrimFunc(bufs, s_tir.SBlockRealize([], True, root))
    TensorIntrin.register(name, desc, impl, override=True)

    a = te.placeholder((size, size), "uint8", name="A")
    b = te.placeholder((size, size), "int8", name="B")
    k = te.reduce_axis((0, size), name="k")
    c = te.compute((size, size), lambda i, j: te.sum(
        a[i, k].astype("int32") * b[k, j].astype("int32"), axis=k), name="C")
    sch = s_tir.Schedule(te.create_prim_func([a, b, c]))
    block = sch.get_sblock("C")
    sch.cache_read(block, 1, "global")
    sch.transform_layout(block, ("read", 1), lambda kk, n: (n // 16, kk // 4, n % 16, kk % 4))
    i, j, kk = sch.get_loops(block)
    io, ii = sch.split(i, [None, 16])
    jo, ji = sch.split(j, [None, 16])
    ko, ki = sch.split(kk, [None, depth])
    sch.reorder(io, jo, ko, ii, ji, ki)
    sch.parallel(io)
    sch.decompose_reduction(block, ko)
    sch.tensorize(ii, name)
    from gta_avx512.plugin import MCPU

    target = tvm.target.Target({"kind": "llvm", "mcpu": MCPU, "num-cores": cpu_cores()})
    return tvm.compile(sch.mod, target=target)


def measure(size: int, steps: int, repeat: int) -> dict:
    import tvm

    lib = build(size, steps)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (size, size), dtype=np.uint8)
    b = rng.integers(-128, 128, (size, size), dtype=np.int8)
    args = [tvm.runtime.tensor(x) for x in (a, b, np.full((size, size), 7, np.int32))]
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
    return {"size": size, "depth": 64 * steps, "exact": exact, "ms": median * 1e3,
            "gops": 2 * size**3 / median / 1e9,
            "spread": (max(samples) - min(samples)) / median}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--steps", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args()
    why = amx_available()
    if why:
        print(f"no AMX probe: {why}")
        return
    print(f"int8 GEMM {options.size}^3 with AMX tdpbusd, B packed in every call, untuned")
    for steps in options.steps:
        row = measure(options.size, steps, options.repeat)
        print(f"K per call {row['depth']:5d}: {row['ms']:.3f} ms, {row['gops']:.0f} GOPS "
              f"(spread {row['spread']:.0%}), exact: {row['exact']}")


if __name__ == "__main__":
    main()
