"""CUDA tensor-core intrinsics for TVM's TensorIR, registered on import.

Importing this module registers, for every (m, n, k, in_dtype, out_dtype) in ``WMMA_SHAPES``,
the five wmma intrinsics that ``names.wmma_names`` names:

- ``init``: fill a ``wmma.accumulator`` [m, n] fragment with zero;
- ``load_a`` / ``load_b``: row-major A [m, k] / B [k, n] from "shared" into
  ``wmma.matrix_a`` / ``wmma.matrix_b`` (not transposed);
- ``compute``: C [m, n] += A [m, k] * B [k, n] (``wmma::mma_sync``), inputs cast to out_dtype;
- ``store``: ``wmma.accumulator`` [m, n] to "shared", row-major.

TVM registers only 16x16x16 under its own names, but its generators are shape-generic (the
fragment index comes from the buffer's elem_offset, row stride and tile shape; the fragment
shape the CUDA code declares is inferred from the calls), so 32x8x16 and 8x32x16 reuse them.
wmma needs every fragment pointer 32-byte aligned: a fragment narrower than 32 bytes (n=8
fp16, k=16 int8) must not sit at an odd column offset of a row-major buffer; lay such staging
buffers out fragment-major ([cols / frag_cols, rows, frag_cols]) first.

It also imports ``tvm.s_tir.tensor_intrin.cuda`` (~17 s here), whose import registers TVM's own
ldmatrix / mma.sync intrinsics that ``names.MMA_F16_F32`` and ``names.MMA_F16_F16`` name.
Programs tensorized with those do not build with TVM 0.27's default pipeline (LowerWarpMemory
fails: "Cannot find warp index(threadIdx.x) within the scope of warp memory"); build them with
``tvm.compile(..., tir_pipeline=WARP_MMA_PIPELINE)``, registered here (see ``_warp_mma``).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import tvm
from tvm.s_tir import TensorIntrin

# Importing this module registers TVM's mma_* / wmma_* intrinsics (the names.MMA_* groups).
from tvm.s_tir.tensor_intrin import cuda as _tvm_cuda
from tvm.tirx import PrimFunc
from tvm.tirx import stmt as _s
from tvm.tirx.compilation_pipeline import get_tir_pipeline, register_tir_pipeline

from gta_cuda_tc.names import WARP_MMA_PIPELINE, wmma_names

# (m, n, k, in_dtype, out_dtype): the fragment shapes CUDA's wmma API offers for these dtypes.
WMMA_SHAPES: list[tuple[int, int, int, str, str]] = [
    *[
        (m, n, k, "float16", out)
        for (m, n, k) in ((16, 16, 16), (32, 8, 16), (8, 32, 16))
        for out in ("float32", "float16")
    ],
    (16, 16, 16, "int8", "int32"),
]

_SHARED = "shared"


def _register(m: int, n: int, k: int, in_dtype: str, out_dtype: str) -> None:
    names = wmma_names(m, n, k, in_dtype, out_dtype)
    pairs = {
        "init": _tvm_cuda.get_wmma_fill_intrin(m, n, k, out_dtype),
        "load_a": _tvm_cuda.get_wmma_load_intrin(m, n, k, in_dtype, _SHARED, False, False),
        "load_b": _tvm_cuda.get_wmma_load_intrin(m, n, k, in_dtype, _SHARED, True, False),
        "compute": _tvm_cuda.get_wmma_sync_intrin(m, n, k, in_dtype, out_dtype, False),
        "store": _tvm_cuda.get_wmma_store_intrin(m, n, k, out_dtype, _SHARED),
    }
    for role, (desc, impl) in pairs.items():
        # override=True: a re-import (importlib.reload, a second plugin load) re-registers the
        # identical pair instead of raising "already registered".
        TensorIntrin.register(names[role], desc, impl, override=True)


for _shape in WMMA_SHAPES:
    _register(*_shape)


# ---------------------------------------------------------------------------------------------
# A build pipeline for TVM's warp-scope mma.sync intrinsics (names.MMA_*).
#
# Four TVM 0.27 defects stop them, each worked around here:
# 1. LiftThreadBinding / UnifyThreadBinding put the single threadIdx.x launch above the "warp"
#    AllocBuffers, while LowerWarpMemory looks for threadIdx.x *below* each allocation. We hoist
#    the warp allocations (registers: their lifetime can grow) to just above that launch.
# 2. One LowerWarpMemory run lowers only the first warp AllocBuffer of a statement sequence and
#    leaves the others as 32x too large per-thread arrays; it runs once per warp buffer here.
# 3. LowerWarpMemory needs the index as `... + threadIdx.x * c + ...`; CommonSubexprElim hides
#    threadIdx.x * 8 in a let variable ("require positive constant coefficient on warp index"),
#    so the pipeline runs with "tirx.disable_cse_tir".
# 4. The mma.sync codegen (src/target/source/ptx.cc, PrintMMAAssembly) fills its operands in by
#    replacing the letters A, B, C, D, E, F one after the other, so an operand whose name holds
#    a later letter is mangled ("B_shared_warp" as A becomes "A_shared_warp..._shared_warp"
#    once B is replaced). The warp buffers, the only operands it names, are renamed lower case.
# ---------------------------------------------------------------------------------------------


def _is_warp_alloc(stmt: _s.Stmt) -> bool:
    return isinstance(stmt, _s.AllocBuffer) and stmt.buffer.scope() == "warp"


def _without_warp_allocs(stmt: _s.Stmt, found: list[_s.Stmt]) -> _s.Stmt:
    """`stmt` with its warp AllocBuffers removed (appended to `found`)."""
    if isinstance(stmt, _s.SeqStmt):
        kept = []
        for child in stmt.seq:
            if _is_warp_alloc(child):
                found.append(child)
            else:
                kept.append(_without_warp_allocs(child, found))
        if not kept:
            return _s.Evaluate(0)
        return kept[0] if len(kept) == 1 else _s.SeqStmt(kept)
    if _is_warp_alloc(stmt):
        found.append(stmt)
        return _s.Evaluate(0)
    if isinstance(stmt, _s.For):
        body = _without_warp_allocs(stmt.body, found)
        return _s.For(stmt.loop_var, stmt.min, stmt.extent, stmt.kind, body,
                      stmt.thread_binding, stmt.annotations, stmt.step)
    if isinstance(stmt, _s.AttrStmt):
        body = _without_warp_allocs(stmt.body, found)
        return _s.AttrStmt(stmt.node, stmt.attr_key, stmt.value, body)
    if isinstance(stmt, _s.IfThenElse):
        else_case = stmt.else_case
        if else_case is not None:
            else_case = _without_warp_allocs(else_case, found)
        return _s.IfThenElse(stmt.condition, _without_warp_allocs(stmt.then_case, found),
                             else_case)
    return stmt


def _hoist_warp_allocs(stmt: _s.Stmt, hoisted: list[_s.Stmt]) -> _s.Stmt:
    """Move the warp allocations below each threadIdx.x launch to just above it."""
    if isinstance(stmt, _s.AttrStmt):
        if stmt.attr_key == "thread_extent" and stmt.node.thread_tag == "threadIdx.x":
            found: list[_s.Stmt] = []
            body = _without_warp_allocs(stmt.body, found)
            if not found:
                return stmt
            hoisted.extend(found)
            return _s.SeqStmt([*found, _s.AttrStmt(stmt.node, stmt.attr_key, stmt.value, body)])
        return _s.AttrStmt(stmt.node, stmt.attr_key, stmt.value,
                           _hoist_warp_allocs(stmt.body, hoisted))
    if isinstance(stmt, _s.SeqStmt):
        return _s.SeqStmt([_hoist_warp_allocs(child, hoisted) for child in stmt.seq])
    return stmt


@tvm.transform.module_pass(opt_level=0, name="gta.LowerWarpMemoryForMma")
def _lower_warp_memory_for_mma(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
    hoisted: list[_s.Stmt] = []
    updated = {}
    for gvar, func in mod.functions_items():
        if isinstance(func, PrimFunc):
            updated[gvar] = func.with_body(_hoist_warp_allocs(func.body, hoisted))
    for gvar, func in updated.items():
        mod[gvar] = func
    # One LowerWarpMemory run per warp buffer (defect 2); extra runs are no-ops.
    for _ in range(len(hoisted)):
        mod = tvm.tirx.transform.LowerWarpMemory()(mod)
    return mod


def _warp_names_lowercased(mod: tvm.IRModule) -> tvm.IRModule:
    """``mod`` with the names of its "warp" buffers in lower case (defect 4).

    TVM renames nodes only through C++ mutators it does not expose to Python; its JSON form
    keeps every node and reference, so the names are changed there.
    """
    graph = json.loads(tvm.ir.save_json(mod))
    nodes = graph["nodes"]

    def warp(type_index) -> bool:
        data = nodes[type_index].get("data")
        scope = data.get("storage_scope") if isinstance(data, dict) else None
        return scope is not None and nodes[scope].get("data") == "warp"

    renamed = False
    for node in list(nodes):
        data = node.get("data")
        if node.get("type") != "ir.Var" or not isinstance(data, dict) or not warp(data["ty"]):
            continue
        name = nodes[data["name"]]["data"]
        if name != name.lower():
            nodes.append({"type": "ffi.String", "data": name.lower()})
            data["name"] = len(nodes) - 1  # a new string: the old one may be shared
            renamed = True
    return tvm.ir.load_json(json.dumps(graph)) if renamed else mod


def _warp_mma() -> tuple[tvm.transform.Pass, Callable[[], tvm.transform.Pass],
                         Callable[[], tvm.transform.Pass]]:
    """TVM's s_tir pipeline, CSE off, with the warp-memory fix before device finalization."""
    lower, finalize_host, finalize_device = get_tir_pipeline("s_tir")

    @tvm.transform.module_pass(opt_level=0, name="gta.WarpMmaPipeline")
    def _pipeline(mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        # The s_tir pipeline reads its switches from the current context; instruments are not
        # carried into this inner context (they would be entered twice).
        config = {**ctx.config, "tirx.disable_cse_tir": True}
        with tvm.transform.PassContext(opt_level=ctx.opt_level, required_pass=ctx.required_pass,
                                       disabled_pass=ctx.disabled_pass, config=config):
            return lower(_warp_names_lowercased(mod))

    def _finalize_device() -> tvm.transform.Pass:
        return tvm.transform.Sequential([_lower_warp_memory_for_mma, finalize_device()])

    return _pipeline, finalize_host, _finalize_device


register_tir_pipeline(WARP_MMA_PIPELINE, _warp_mma)
