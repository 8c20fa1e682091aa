"""Realisation in two halves, with the generation rules in between.

:func:`reshape` turns the operator into the mapping's shape (reindex,
layouts, padding, intrinsic-sized inner loops) and stops; rules then tile and
place stages around the intrinsic; :func:`finish_cpu` separates the
reduction's init and tensorizes. :func:`gta_core.mapping.realise.realise` is
the same with no rules in between.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..models import Intrinsic, MappingCandidate
from ..workloads import Workload
from .access import block_computation, intrinsic_computation
from .realise import (
    RealisationError,
    _compute_name,
    _new_order,
    _pad,
    _relayout_block,
    _relayout_buffers,
    _split_and_order,
    _split_windows,
    _step,
    _to_einsum,
)


@dataclass
class Reshaped:
    sch: object  # tvm.s_tir.Schedule
    block: str
    spatial: list  # loops outside the intrinsic, outermost first
    reduce: list
    inner: list  # the intrinsic's loops
    spatial_axes: list[str]  # per spatial loop: operator loop or intrinsic axis it walks
    reduce_axes: list[str]
    compute: str  # the TVM tensor intrinsic to tensorize with


def ensure_registered(intrinsic: Intrinsic) -> None:
    """Import the module that registers ``intrinsic``'s TVM tensor intrinsics.

    Replaying a recorded trace needs them as much as making one does.
    """
    if intrinsic.tvm_module:
        importlib.import_module(intrinsic.tvm_module)


def reshape(workload: Workload, candidate: MappingCandidate, intrinsic: Intrinsic,
            mod=None) -> Reshaped:
    """The operator (``mod``, default the workload's PrimFunc) in the mapping's shape."""
    from tvm import s_tir

    ensure_registered(intrinsic)
    sch = s_tir.Schedule(mod if mod is not None else workload.prim_func())
    block = workload.main_block
    op = block_computation(sch, block)
    intr = intrinsic_computation(intrinsic)
    order = _new_order(op, intr, candidate)
    _to_einsum(sch, block, op)
    _relayout_buffers(sch, block, op, intr, candidate, order)
    _relayout_block(sch, block, op, order)
    _pad(sch, block, op, intr, candidate, order)
    _split_windows(sch, block, op, intr, candidate, order)
    spatial, reduce, inner = _split_and_order(sch, block, op, intr, order)
    kinds = {a.name: a.kind for a in op.axes}
    outer_spatial = [n for n in order.outer if kinds[n] == "spatial"]
    outer_reduce = [n for n in order.outer if kinds[n] == "reduce"]
    return Reshaped(
        sch=sch, block=block, spatial=spatial, reduce=reduce, inner=inner,
        spatial_axes=outer_spatial + [v.name for v in intr.axes if v.kind == "spatial"],
        reduce_axes=outer_reduce + [v.name for v in intr.axes if v.kind == "reduce"],
        compute=_compute_name(op, intr, candidate, intrinsic),
    )


@_step("tensorize")
def finish_cpu(sch, block_name: str, reduce: list, inner: list, compute: str) -> None:
    """Separate the init before the outermost reduction loop, then tensorize.

    (The init's loops are left to LLVM's vectoriser: how many there are depends on
    the sampled tile sizes, unit loops being dropped, and a trace whose queries
    return a decision-dependent number of loops cannot be replayed.)
    """
    block = sch.get_sblock(block_name)
    sch.decompose_reduction(block, reduce[0] if reduce else inner[0])
    sch.tensorize(inner[0], compute)


__all__ = ["RealisationError", "Reshaped", "ensure_registered", "finish_cpu", "reshape"]
