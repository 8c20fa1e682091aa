"""Intel AMX-INT8 tile intrinsics for TVM's TensorIR, and the TIR pipeline their programs need.

Importing this module registers, for each depth in ``AMX_DEPTHS``, two desc/impl pairs with
``tvm.s_tir.TensorIntrin``, each a 32 x 32 block of s32 outputs (2 x 2 tiles of 16 x 16)
accumulated over ``depth`` (a multiple of 64) of the reduction:

- ``gta_avx512_amx_u8s8_32x32x{depth}``: ``C[i, j] += A[i, k] u8 * B[k, j] s8`` (``tdpbusd``);
- ``gta_avx512_amx_s8u8_32x32x{depth}``: the same with the signedness swapped, ``A`` s8 and
  ``B`` u8 (``tdpbsud``), so the activations can be the packed operand. Its desc reads ``B``
  first: tensorize compares a block's reads by position, and a block multiplies the data
  (u8) by the weights (s8).

``B`` is read in AMX's layout, ``B[k // 4, j, k % 4]`` (a 64-byte tile row holds 16 columns
of 4 consecutive k), the layout the plugin's intrinsic declares (``Operand.layout``) and the
realisation packs. Each call loads its 4 accumulator tiles, multiplies ``depth / 64`` slices
(2 tile loads of ``A``, 2 of ``B``, 4 ``tdp*`` each) and stores them back: LLVM carries a
tile through one nested expression but not through memory, so the accumulators cannot live
across calls. The impl is written with LLVM's ``*.internal`` AMX intrinsics, so LLVM
allocates the tile registers and writes the tile configuration (``ldtilecfg``) itself; as
four nested chains it uses three of them (measured, with the alternative tried:
docs/design-notes.md, "Intrinsics: AMX").

Linux lets a process use the tiles only after it asks (``arch_prctl(ARCH_REQ_XCOMP_PERM,
XFEATURE_XTILEDATA)``); the first tile instruction is SIGILL otherwise. Programs built with
the ``gta_amx`` TIR pipeline (``AMX_PIPELINE``, the avx512 target's ``tir_pipeline``) ask at
the entry of every function that uses the tiles, so a library runs in any process that loads
it (a measuring worker, ``gta compile``'s model in the user's process) with nothing to set up.
"""

from __future__ import annotations

import json

import tvm
from tvm import s_tir, tirx
from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T
from tvm.target.codegen import llvm_lookup_intrinsic_id
from tvm.tirx.compilation_pipeline import get_tir_pipeline, register_tir_pipeline

from .plugin import AMX_DEPTHS, AMX_SIGNS, ASK_FOR_TILE_DATA, amx_tvm_name

TILES = 2  # per side: 2 x 2 tiles of 16 x 16 outputs
AMX_PIPELINE = "gta_amx"
INSTRUCTIONS = dict(zip(AMX_SIGNS, ("tdpbusd", "tdpbsud")))


def desc(a_dtype: str, b_dtype: str, depth: int, tiles: int = TILES) -> tirx.PrimFunc:
    """``C[i, j] += A[i, k] * B[k // 4, j, k % 4]`` over ``16 * tiles`` squared outputs."""
    ROWS = COLS = 16 * tiles  # noqa: N806 - TVMScript reads them as the shapes' constants
    # Two bodies, not one with a branch: TVMScript evaluates no Python around its statements.
    @T.prim_func(s_tir=True)
    def reads_a_first(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (ROWS, depth), a_dtype, offset_factor=1)
        B = T.match_buffer(b, (depth // 4, COLS, 4), b_dtype, offset_factor=1)
        C = T.match_buffer(c, (ROWS, COLS), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:ROWS, 0:COLS], A[0:ROWS, 0:depth], B[0:depth // 4, 0:COLS, 0:4])
            T.writes(C[0:ROWS, 0:COLS])
            for i, j, k in T.grid(ROWS, COLS, depth):
                with T.sblock("update"):
                    vi, vj, vk = T.axis.remap("SSR", [i, j, k])
                    C[vi, vj] = C[vi, vj] + T.cast(A[vi, vk], "int32") * T.cast(
                        B[vk // 4, vj, vk % 4], "int32")

    @T.prim_func(s_tir=True)
    def reads_b_first(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (ROWS, depth), a_dtype, offset_factor=1)
        B = T.match_buffer(b, (depth // 4, COLS, 4), b_dtype, offset_factor=1)
        C = T.match_buffer(c, (ROWS, COLS), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:ROWS, 0:COLS], B[0:depth // 4, 0:COLS, 0:4], A[0:ROWS, 0:depth])
            T.writes(C[0:ROWS, 0:COLS])
            for i, j, k in T.grid(ROWS, COLS, depth):
                with T.sblock("update"):
                    vi, vj, vk = T.axis.remap("SSR", [i, j, k])
                    C[vi, vj] = C[vi, vj] + T.cast(B[vk // 4, vj, vk % 4], "int32") * T.cast(
                        A[vi, vk], "int32")

    return reads_a_first if a_dtype == "uint8" else reads_b_first


def impl(a_dtype: str, b_dtype: str, depth: int, tiles: int = TILES) -> tirx.PrimFunc:
    """``tiles`` x ``tiles`` tiles: each accumulator loaded, ``depth / 64`` products, stored."""
    ROWS = COLS = 16 * tiles  # noqa: N806
    sa, sb, sc = (tirx.Var(name, "int32") for name in ("sa", "sb", "sc"))
    a = tirx.decl_buffer((ROWS, depth), a_dtype, "A", strides=[sa, 1], offset_factor=1)
    b = tirx.decl_buffer((depth // 4, COLS, 4), b_dtype, "B", strides=[sb, 4, 1], offset_factor=1)
    c = tirx.decl_buffer((ROWS, COLS), "int32", "C", strides=[sc, 1], offset_factor=1)
    shape = (tirx.const(16, "int16"), tirx.const(64, "int16"))  # rows, bytes per row

    def at(buffer, *indices):
        # The element's address, not ``access_ptr``: TVM's storage rewrite may give the u8
        # and s8 packed buffers one allocation, and access_ptr's type check then fails.
        return tirx.address_of(tirx.BufferLoad(buffer, list(indices)))

    def load(address, stride):
        return tirx.call_llvm_intrin("handle", "llvm.x86.tileloadd64.internal", *shape,
                                     address, tirx.Cast("int64", stride))

    stores = []
    for row in range(ROWS // 16):
        for col in range(COLS // 16):
            out = at(c, row * 16, col * 16)
            tile = load(out, sc * 4)
            for step in range(depth // 64):  # one nested expression: LLVM keeps it in a tile
                tile = tirx.call_llvm_intrin(
                    "handle", f"llvm.x86.{INSTRUCTIONS[a_dtype, b_dtype]}.internal", *shape,
                    tirx.const(64, "int16"), tile, load(at(a, row * 16, step * 64), sa),
                    load(at(b, step * 16, col * 16, 0), sb))
            stores.append(tirx.Evaluate(tirx.call_llvm_intrin(
                "void", "llvm.x86.tilestored64.internal", *shape,
                out, tirx.Cast("int64", sc * 4), tile)))
    order = (c, a, b) if a_dtype == "uint8" else (c, b, a)
    region = [tirx.BufferRegion(x, [tvm.ir.Range(0, e) for e in x.shape]) for x in order]
    body = stores[0] if len(stores) == 1 else tirx.SeqStmt(stores)
    root = s_tir.SBlock([], region, region[:1], "root", body)
    return tirx.PrimFunc([a, b, c], s_tir.SBlockRealize([], True, root))


for _a, _b in AMX_SIGNS:
    for _depth in AMX_DEPTHS:
        TensorIntrin.register(amx_tvm_name(_a, _b, _depth), desc(_a, _b, _depth),
                              impl(_a, _b, _depth), override=True)


# ---------------------------------------------------------------------------------------------
# The TIR pipeline: TVM's, then a request for the tile data at the entry of each function
# that uses the tiles (one system call per call of the function, well under a microsecond).
# ---------------------------------------------------------------------------------------------


def _uses_tiles(func: tirx.PrimFunc) -> bool:
    """Whether ``func`` calls a tile multiply: a ``uint32`` constant holding one's LLVM id,
    the form ``call_llvm_intrin`` names its intrinsic in (read off TVM's JSON form: Python
    has no TIR visitor in 0.27)."""
    ids = {int(llvm_lookup_intrinsic_id(f"llvm.x86.{name}.internal"))
           for name in INSTRUCTIONS.values()}
    nodes = json.loads(tvm.ir.save_json(func))["nodes"]
    uint32 = {n for n, node in enumerate(nodes)
              if node["type"] == "ir.PrimType" and node["data"].get("dtype") == "uint32"}
    return any(node["type"] == "ir.IntImm" and node["data"]["ty"] in uint32
               and nodes[node["data"]["value"]].get("data") in ids for node in nodes)


def _asks_for_tiles(func: tirx.PrimFunc) -> tirx.PrimFunc:
    ask = tirx.Evaluate(tirx.call_extern(
        "int64", "syscall", *(tirx.const(value, "int64") for value in ASK_FOR_TILE_DATA)))
    return func.with_body(tirx.SeqStmt([ask, func.body]))


def _amx():
    lower, finalize_host, finalize_device = get_tir_pipeline("s_tir")

    @tvm.transform.module_pass(opt_level=0, name="gta.AmxPipeline")
    def _pipeline(mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        mod = lower(mod)
        for gv, func in list(mod.functions.items()):
            if isinstance(func, tirx.PrimFunc) and _uses_tiles(func):
                mod[gv] = _asks_for_tiles(func)
        return mod

    return _pipeline, finalize_host, finalize_device


register_tir_pipeline(AMX_PIPELINE, _amx)
