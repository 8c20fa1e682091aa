"""Constant weights laid out once, while compiling a model, instead of on every call.

A GTA program re-lays its weight operand for the intrinsic in a packing stage: a loop nest
at the function's top level that reads the weight and writes a buffer of its own. In a
model the weight is a constant, so that stage computes the same thing on every call. It is
marked the way MetaSchedule marks its own weight-layout rewrites
(``meta_schedule.layout_rewrite_preproc``); TVM's ``SplitLayoutRewritePreproc`` then moves
it into a function of its own, called on the constant, and ``FoldConstant`` runs that call
once at compile time (:func:`prepack_passes`). onnxruntime and oneDNN prepack the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .tile_major_weights import lay_out_by_tile

PREPROC = "meta_schedule.layout_rewrite_preproc"


def call_tirs(func) -> list[Any]:
    """The ``call_tir`` calls in ``func`` (none when it is not a Relax function), in order."""
    import tvm
    from tvm import relax

    if not isinstance(func, relax.Function):
        return []
    call_tir = tvm.ir.Op.get("relax.call_tir")
    calls = []

    def visit(expr) -> None:
        if isinstance(expr, relax.Call) and expr.op.same_as(call_tir):
            calls.append(expr)

    relax.analysis.post_order_visit(func, visit)
    return calls


def _at_every_call(mod, found) -> dict[str, set]:
    """Per PrimFunc name, what ``found(arguments)`` gives at every ``call_tir`` of it in
    ``mod``'s Relax functions (the intersection over its calls)."""
    from tvm import relax

    common: dict[str, set] = {}
    for func in mod.functions.values():
        for call in call_tirs(func):
            callee, args = call.args[0], call.args[1]
            if not isinstance(callee, relax.GlobalVar) or not isinstance(args, relax.Tuple):
                continue
            here = found(list(args.fields))
            name = callee.name_hint
            common[name] = common[name] & here if name in common else here
    return common


def constant_arguments(mod) -> dict[str, set[int]]:
    """Per PrimFunc name, the positions of its inputs that are Relax constants at every
    ``call_tir`` of it in ``mod``."""
    import tvm

    return _at_every_call(mod, lambda args: {
        i for i, arg in enumerate(args) if isinstance(arg, tvm.ir.expr.Constant)})


def scalar_constants(mod) -> dict[str, tuple[tuple[int, float], ...]]:
    """Per PrimFunc name, the scalar constants every call of it passes with the same value:
    ((position, value), ...)."""
    import tvm

    def scalars(args) -> set[tuple[int, float]]:
        return {(i, float(arg.value.numpy())) for i, arg in enumerate(args)
                if isinstance(arg, tvm.ir.expr.Constant) and arg.value.numpy().ndim == 0}

    return {name: tuple(sorted(found)) for name, found in _at_every_call(mod, scalars).items()}


def mark_weight_packing(func, constant: set[int]) -> tuple[Any, list[str]]:
    """``func`` with each packing stage of a constant input marked for prepacking, and the
    marked stages' names.

    A stage qualifies when it is a block alone in its top-level loop nest, reads only that
    input and writes only a buffer the function allocates (what ``SplitLayoutRewritePreproc``
    can move out); a stage computed inside the compute loops is left where it is. A chain of
    such stages (a transpose, then a padding copy) is first made one, each inlined into the
    next (:func:`_inline_chains`): ``SplitLayoutRewritePreproc`` moves out only stages that
    read a parameter. Left per call, the padding copy made a 1280x1000 Gemm with a
    transposed weight take 174-268 us a call instead of 32-35. Each marked stage's buffer
    is then laid out tile by tile (:mod:`.tile_major_weights`).
    """
    from tvm.s_tir import Schedule

    weights = [func.params[i] for i in sorted(constant) if i < len(func.params)]
    if not weights:
        return func, []
    sch = Schedule(func)
    _inline_chains(sch, weights)
    marked = []
    for block in _stages(sch, weights):
        sch.annotate(block, PREPROC, 1)
        marked.append(sch.get(block).name_hint)
    return lay_out_by_tile(sch.mod["main"], marked), marked


def _stages(sch, sources: list) -> list:
    """The top-level blocks alone in their loop nests that read one of ``sources`` alone and
    write one buffer the function allocates."""
    root = sch.get_sblock("root")
    allocated = list(sch.get(root).alloc_buffers)
    found = []
    for block in sch.get_child_blocks(root):
        node = sch.get(block)
        if len(node.reads) != 1 or len(node.writes) != 1:
            continue
        if not any(node.reads[0].source.same_as(w) for w in sources):
            continue
        if not any(node.writes[0].source.same_as(a) for a in allocated):
            continue
        loops = sch.get_loops(block)
        if loops and len(sch.get_child_blocks(loops[0])) != 1:
            continue
        found.append(block)
    return found


def _inline_chains(sch, weights: list) -> None:
    """Inline each weight stage whose every consumer is a stage of the same kind reading its
    buffer, until none is left: the last stage of each chain then reads the weight itself."""
    from tvm.s_tir.schedule import ScheduleError

    changed = True
    while changed:
        changed = False
        for block in _stages(sch, weights):
            stages = [sch.get(s) for s in _stages(sch, [sch.get(block).writes[0].source])]
            consumers = sch.get_consumers(block)
            if not consumers or not all(
                    any(sch.get(c).same_as(s) for s in stages) for c in consumers):
                continue
            try:
                sch.compute_inline(block)
            except ScheduleError:
                continue
            changed = True
            break


@dataclass(frozen=True)
class SplitProgram:
    """A model function's program as the compiled model runs it: ``compute`` is called with
    the constant weights already laid out by ``prepack``, which runs once (None: nothing
    to lay out). Tuning times and checks ``compute``, so a trial is not charged for work
    the model does at compile time.

    ``reads``: the original inputs ``prepack`` takes, by position; ``sources``: for each
    input of ``compute``, ``(False, i)`` original input i or ``(True, j)`` prepack output j.
    """

    compute: Any  # tvm.tirx.PrimFunc, named main
    prepack: Any = None
    reads: tuple[int, ...] = ()
    sources: tuple[tuple[bool, int], ...] = ()

    def module(self):
        """``compute`` as the IRModule to build."""
        import tvm

        return tvm.IRModule({"main": self.compute})

    def arguments(self, inputs: list, target, prepack: Any = None) -> list:
        """``compute``'s inputs from the original function's ``inputs`` (TVM tensors): the
        weights laid out here by ``prepack`` (a built function; default: built here for
        ``target``)."""
        if self.prepack is None:
            return list(inputs)
        import tvm

        from .measure import runnable

        if prepack is None:
            prepack = runnable(tvm.IRModule({"main": self.prepack}), target)
        outputs = [tvm.runtime.tensor(np.empty(shape, dtype), inputs[0].device)
                   for shape, dtype in self.packed_weights]
        prepack(*[inputs[i] for i in self.reads], *outputs)
        return [outputs[i] if packed else inputs[i] for packed, i in self.sources]

    @property
    def packed_weights(self) -> list[tuple[list[int], str]]:
        """Shape and dtype of each weight ``prepack`` lays out, in its order."""
        return [([int(d) for d in b.shape], str(b.dtype))
                for b in self.prepack.params[len(self.reads):]] if self.prepack else []


def as_model_runs(workload, mod) -> SplitProgram:
    """A scheduled program of ``workload`` (its IRModule) as a compiled model runs it: split
    where the workload has constant inputs (a model's function), else whole."""
    constant = getattr(workload, "constant_inputs", frozenset())
    func = mod["main"]
    return split_weight_packing(func, set(constant)) if constant else SplitProgram(func)


def split_weight_packing(func, constant: set[int]) -> SplitProgram:
    """``func`` (scheduled) split as a compiled model runs it: its packing stages of the
    ``constant`` inputs (:func:`mark_weight_packing`) moved into a prepack function by
    TVM's ``SplitLayoutRewritePreproc``, the pass :func:`prepack_passes` runs."""
    from tvm import relax

    marked, names = mark_weight_packing(func, constant)
    if not names:
        return SplitProgram(func)
    bb = relax.BlockBuilder()
    callee = bb.add_func(marked.with_attr("global_symbol", "f"), "f")
    params = [relax.Var(f"p{i}", _tensor_type(b)) for i, b in enumerate(marked.params[:-1])]
    with bb.function("main", params):
        with bb.dataflow():
            out = bb.emit_output(bb.emit(relax.call_tir(callee, params,
                                                        _tensor_type(marked.params[-1]))))
        bb.emit_func_output(out)
    split = relax.transform.SplitLayoutRewritePreproc()(bb.get())
    bindings = list(split["main"].body.blocks[0].bindings)
    prepack_binding = next(b for b in bindings if _calls(b, "_weight_prepack"))
    compute_call = next(b.value for b in bindings if _calls(b, "_prepacked"))
    # Several prepack outputs come as a tuple, each item bound to a variable of its own.
    items = [(b.var, int(b.value.index)) for b in bindings
             if isinstance(b.value, relax.TupleGetItem)
             and b.value.tuple_value.same_as(prepack_binding.var)]

    def source(arg) -> tuple[bool, int]:
        if arg.same_as(prepack_binding.var):
            return True, 0
        item = next((i for var, i in items if var.same_as(arg)), None)
        return (True, item) if item is not None else (False, _position(params, arg))

    return SplitProgram(
        compute=split[compute_call.args[0].name_hint].with_attr("global_symbol", "main"),
        prepack=split[prepack_binding.value.args[0].name_hint].with_attr("global_symbol",
                                                                         "main"),
        reads=tuple(_position(params, a) for a in prepack_binding.value.args[1].fields),
        sources=tuple(source(a) for a in compute_call.args[1].fields))


def _calls(binding, suffix: str) -> bool:
    """Whether ``binding`` is a ``call_tir`` of a function whose name ends in ``suffix``."""
    from tvm import relax

    value = binding.value
    return (isinstance(value, relax.Call) and isinstance(value.args[0], relax.GlobalVar)
            and value.args[0].name_hint.endswith(suffix))


def _tensor_type(buffer):
    from tvm import relax

    return relax.TensorType([int(d) for d in buffer.shape], str(buffer.dtype))


def _position(params: list, var) -> int:
    return next(i for i, p in enumerate(params) if p.same_as(var))


def prepack_passes() -> list:
    """The passes that move marked stages out and run them on the constants."""
    from tvm import relax

    return [_split_layout_rewrite(), relax.transform.FoldConstant()]


def _split_layout_rewrite():
    """TVM's ``SplitLayoutRewritePreproc``, kept off the functions of opaque TIR
    (:func:`~gta_core.workloads.subgraph.schedulable`), on which it fails ("There should be
    a compute block"): they have no stage to move and go back into the module as they are."""
    import tvm
    from tvm import relax, tirx

    from .workloads.subgraph import schedulable

    @tvm.transform.module_pass(opt_level=0, name="SplitLayoutRewritePreprocOfBlocks")
    def split(mod, _ctx):
        opaque = {gv: f for gv, f in mod.functions_items()
                  if isinstance(f, tirx.PrimFunc) and not schedulable(f)}
        if not opaque:
            return relax.transform.SplitLayoutRewritePreproc()(mod)
        rest = tvm.IRModule({gv: f for gv, f in mod.functions_items() if gv not in opaque},
                            attrs=mod.attrs)
        rest = relax.transform.SplitLayoutRewritePreproc()(rest)
        for gv, func in opaque.items():
            rest[gv] = func
        return rest

    return split
