"""A model's tasks: its Relax module lowered and fused, each distinct fused function once.

Lowering is TVM's own (``DecomposeOpsForInference``, ``LegalizeOps``,
``AnnotateTIROpPattern``, ``FoldConstant``, ``FuseOps``, ``FuseTIR``: what MetaSchedule's
``compile_relax`` runs), after GTA's graph-wide blocked layout where one is asked for
(:mod:`.layout`), its lookup tables for 8-bit elementwise chains (:mod:`.lookup_tables`)
and its cheaper requantizing arithmetic (:mod:`.requantize`), so a convolution arrives with
its bias add, ReLU or residual add fused behind it. Structurally equal functions are one
task whose weight is how many times the model calls them.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from ..workloads.subgraph import (
    SubgraphWorkload,
    digest,
    narrowed,
    schedulable,
    structure,
)


class LayoutFallbackWarning(UserWarning):
    """A model compiled without the blocked layout: TVM failed to convert or lower it."""


def fuse(mod, block: int | None = None):
    """``mod`` (Relax, weights bound) lowered to TensorIR and fused, as TVM compiles it;
    with ``block``, its convolutions in one blocked layout first (:mod:`.layout`).

    Where TVM fails on the blocked graph (an op whose layout rule cannot take blocks and
    that :mod:`.layout_barriers` does not know yet), the model is lowered in its own layout
    instead, with a :class:`LayoutFallbackWarning` naming TVM's error: slower, still right.
    """
    import tvm
    from tvm import relax

    from .layout import blocked_layout

    mod = relax.transform.DecomposeOpsForInference()(mod)
    if block:
        try:
            return _lowered(blocked_layout(mod, block), blocked=True)
        except tvm.error.InternalError as exc:
            reason = str(exc).strip().splitlines()[-1]
            warnings.warn(f"the blocked layout NCHW{block}c was not applied, every "
                          f"convolution reads and writes NCHW: TVM failed on it ({reason})",
                          LayoutFallbackWarning, stacklevel=2)
    return _lowered(mod, blocked=False)


def _lowered(mod, blocked: bool):
    """``mod`` after GTA's graph rewrites, legalized and fused."""
    import tvm
    from tvm import relax

    from .layout import legalize_map
    from .lookup_tables import lookup_tables, mark_lookups_elementwise
    from .requantize import cheaper_requantize

    mod, _ = lookup_tables(mod)
    mod, _ = cheaper_requantize(mod)
    # sorts and scans (topk, argsort, cumsum) and sampling have no legalization: TVM's CPU
    # pipeline dispatches them to its own TIR first, and so does GTA (models are CPU only)
    with tvm.target.Target("llvm"):
        mod = tvm.ir.transform.Sequential([relax.backend.DispatchSampling(),
                                           relax.backend.DispatchSortScan()])(mod)
    mod = tvm.ir.transform.Sequential([
        relax.transform.LegalizeOps(legalize_map() if blocked else None),
        relax.transform.AnnotateTIROpPattern(),
    ])(mod)
    passes = tvm.ir.transform.Sequential([
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
    ])
    return passes(mark_lookups_elementwise(mod))


def written_bytes(fused) -> int:
    """Bytes of the tensors one inference of ``fused`` (a fused module) writes: each binding
    of its ``main`` with a static tensor shape (what passes through the caches between two
    uses of a weight)."""
    import math

    import tvm
    from tvm import relax

    total = 0
    for block in fused["main"].body.blocks:
        for binding in block.bindings:
            ty = binding.var.ty
            if isinstance(ty, relax.TensorType) and isinstance(ty.shape, relax.ShapeExpr):
                total += (math.prod(int(d) for d in ty.shape.values)
                          * tvm.DataType(str(ty.dtype)).bits // 8)
    return total


@dataclass
class ModelTask:
    """One distinct fused function of a model.

    ``functions`` are the names of the fused module's functions it stands for: equal up to
    their names and the float constants folded into them (:func:`structure`: a quantized
    model's layers differ only in their scales), so one schedule serves them all, replayed
    on each; ``weight`` counts the calls to them. ``digest`` and ``workload`` are the first
    function's. Its ``workload`` has no main block where the function has no
    multiply-accumulate anchor (``workload.why`` says so).
    """

    name: str
    digest: str
    functions: list[str]
    weight: int
    workload: SubgraphWorkload
    func: Any = field(default=None, repr=False)  # the first function, narrowed
    narrowed: dict[str, Any] = field(default_factory=dict, repr=False)  # name -> narrowed


def written(func) -> bool:
    """Whether ``func`` comes scheduled from the graph rewrites (a Winograd input
    transform, :mod:`.winograd`): no task, it compiles as written."""
    return func.attrs is not None and bool(func.attrs.get("tirx.is_scheduled"))


def model_tasks(fused) -> list[ModelTask]:
    """The tasks of a fused module (:func:`fuse`), in the order the module lists them; a
    function of opaque TIR (no root block: TVM's sorts, scans and extern calls) is none,
    and compiles as TVM wrote it; nor is a function :func:`written` already scheduled."""
    from tvm import tirx

    from ..weight_prepack import call_tirs, constant_arguments, scalar_constants

    calls = Counter(call.args[0].name_hint for func in fused.functions.values()
                    for call in call_tirs(func))
    constants = constant_arguments(fused)
    scalars = scalar_constants(fused)
    tasks: dict[str, ModelTask] = {}
    # by name: a task's first function names its records, whatever order the module's map
    # iterates in (it differs between processes)
    for gv, func in sorted(fused.functions_items(), key=lambda item: item[0].name_hint):
        if (not isinstance(func, tirx.PrimFunc) or not calls.get(gv.name_hint)
                or not schedulable(func) or written(func)):
            continue
        func = narrowed(func).with_attr("global_symbol", "main")
        key = structure(func)
        task = tasks.get(key)
        if task is None:
            workload = SubgraphWorkload.from_function(
                gv.name_hint, func, frozenset(constants.get(gv.name_hint, ())),
                scalars.get(gv.name_hint, ()))
            task = tasks[key] = ModelTask(gv.name_hint, digest(func), [], 0, workload, func)
        else:  # a position is constant only where it is in every function of the task
            shared = task.workload.constant_inputs & frozenset(constants.get(gv.name_hint, ()))
            same = tuple(sorted(set(task.workload.scalars)
                                & set(scalars.get(gv.name_hint, ()))))
            task.workload = replace(task.workload, constant_inputs=shared, scalars=same)
        task.functions.append(gv.name_hint)
        task.narrowed[gv.name_hint] = func
        task.weight += calls[gv.name_hint]
    return sorted(tasks.values(), key=lambda t: t.name)
