"""Elementwise functions of one 8-bit tensor as 256-entry tables, computed at compile time.

A quantized model (QDQ) quantizes around every op, so a GELU becomes ``Div, Erf, Add, Mul,
Mul``, each dequantized before and quantized after: per element, five rounds of
``round(x / s) + z``, clamped, cast, and an ``erf``. In BERT-base int8 that chain, fused
behind the 768 -> 3072 matmul, took a third of the function's time (345 of 1018 us a
call). But everything it computes is a function of one u8 value and constants, so it has
256 possible results: :func:`lookup_tables` computes them once, with the same TVM
arithmetic the chain would run per element, and replaces the chain with ``take(table,
x)``. The results are the same bits.

A chain is tabled when its one computed input is an 8-bit tensor, everything else it reads
is a scalar constant, it keeps the input's shape and ends in an 8-bit tensor, and it
computes a transcendental op. LLVM reads a table one byte per element (extract the index,
load, insert: about five instructions), where a requantization is about eight vector
instructions per 16 elements: chains of requantizations alone stay arithmetic.

``take`` is opaque to ``FuseOps``; :func:`mark_lookups_elementwise` (between
``AnnotateTIROpPattern`` and ``FuseOps``) lets the lookup fuse where the chain did, into
the epilogue of the layer that writes its input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .qdq_graph import Chains, is_constant
from .relax_exprs import op_name, static_shape

_ELEMENTWISE = {
    "relax.astype", "relax.add", "relax.subtract", "relax.multiply", "relax.divide",
    "relax.round", "relax.maximum", "relax.minimum", "relax.clip", "relax.negative",
    "relax.abs", "relax.floor", "relax.ceil", "relax.nn.relu", "relax.power", "relax.erf",
    "relax.exp", "relax.tanh", "relax.sigmoid", "relax.sqrt", "relax.rsqrt", "relax.log",
    "relax.nn.gelu", "relax.nn.gelu_tanh", "relax.nn.silu",
}
_TRANSCENDENTAL = {"relax.power", "relax.erf", "relax.exp", "relax.tanh", "relax.sigmoid",
                   "relax.sqrt", "relax.rsqrt", "relax.log", "relax.nn.gelu",
                   "relax.nn.gelu_tanh", "relax.nn.silu"}
_EIGHT_BIT = ("uint8", "int8")
LOOKUP_PREFIX = "take"  # what LegalizeOps names a take's PrimFunc


def _dtype(expr) -> str | None:
    return str(getattr(getattr(expr, "ty", None), "dtype", None))


def _scalar_operand(expr) -> bool:
    """A one-element constant, or a number (``clip``'s bounds)."""
    value = getattr(expr, "value", None) if is_constant(expr) else None
    return value is not None and (not hasattr(value, "numpy") or value.numpy().size == 1)


@dataclass
class Chain:
    """An elementwise chain from ``source`` (an 8-bit variable) to ``result``."""

    result: Any  # the chain's last variable
    source: Any
    ops: list[str]


class _Cones:
    """Reading a function's elementwise chains backwards from a variable."""

    def __init__(self, func) -> None:
        self.chains = Chains(func)
        self.order = {var: i for i, var in enumerate(self.chains.value)}

    def call(self, var):
        """``var``'s elementwise call with scalar constants beside it, else None."""
        value = self.chains.value.get(var)
        if op_name(value) not in _ELEMENTWISE:
            return None
        from tvm import relax

        tensors = [a for a in value.args if not _scalar_operand(a)]
        return value if all(isinstance(a, relax.Var) for a in tensors) else None

    def inputs(self, var, cut, seen: set) -> set:
        """The computed inputs of ``var``'s chain, stopping at ``cut``."""
        if var.same_as(cut):
            return {cut}
        if var in seen:
            return set()
        seen.add(var)
        call = self.call(var)
        if call is None:
            return {var}
        found: set = set()
        for arg in call.args:
            if not _scalar_operand(arg):
                found |= self.inputs(arg, cut, seen)
        return found

    def members(self, var, cut) -> list:
        """The variables of ``var``'s chain above ``cut`` (``var`` included)."""
        found, stack = [], [var]
        while stack:
            v = stack.pop()
            if v.same_as(cut) or v in found:
                continue
            call = self.call(v)
            if call is None:
                continue
            found.append(v)
            stack += [a for a in call.args if not _scalar_operand(a)]
        return found

    def longest(self, result) -> Chain | None:
        """The longest tableable chain ending at ``result``, or None."""
        if _dtype(result) not in _EIGHT_BIT or self.call(result) is None:
            return None
        shape = static_shape(result)
        everything = self.members(result, None)
        candidates = sorted(
            {a for v in everything for a in self.call(v).args
             if not _scalar_operand(a) and _dtype(a) in _EIGHT_BIT
             and static_shape(a) == shape},
            key=lambda v: self.order.get(v, -1))
        for source in candidates:
            if self.inputs(result, source, set()) == {source}:
                ops = [op_name(self.chains.value[v]) for v in self.members(result, source)]
                return Chain(result, source, ops)
        return None


def _worth_a_table(chain: Chain) -> bool:
    return bool(set(chain.ops) & _TRANSCENDENTAL)


def tableable_chains(func) -> list[Chain]:
    """The chains of ``func`` (a Relax function) that :func:`lookup_tables` replaces: each
    the longest ending at its variable, none inside another."""
    cones = _Cones(func)
    chosen, inside = [], set()
    for var in reversed(list(cones.chains.value)):
        if var in inside:
            continue
        chain = cones.longest(var)
        if chain is None or not _worth_a_table(chain):
            continue
        chosen.append(chain)
        inside |= set(cones.members(var, chain.source))
    return chosen


def _tables(func, chains: list[Chain]) -> list[np.ndarray]:
    """Each chain evaluated on every value of its source's dtype, by TVM, in one build."""
    import tvm
    from tvm import relax

    from ..measure.fast_math import register_fast_math

    cones = _Cones(func)
    params = {d: relax.Var(f"x_{d}", relax.TensorType((256,), d)) for d in _EIGHT_BIT}
    bb = relax.BlockBuilder()
    with bb.function("main", list(params.values())):
        outputs = []
        for chain in chains:
            built: dict = {chain.source: params[_dtype(chain.source)]}

            def rebuild(var, built=built):
                if var in built:
                    return built[var]
                call = cones.call(var)
                args = [a if _scalar_operand(a) else rebuild(a) for a in call.args]
                built[var] = bb.emit(relax.Call(call.op, args, call.attrs, call.ty_args))
                return built[var]

            outputs.append(bb.emit(relax.op.reshape(rebuild(chain.result), (256,))))
        bb.emit_func_output(relax.Tuple(outputs))
    register_fast_math()  # the polynomials every GTA build uses for erf and exp
    mod = relax.transform.LegalizeOps()(bb.get())
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    values = {d: tvm.runtime.tensor(
        np.arange(256).astype(d) if d == "uint8" else (np.arange(256) - 128).astype(d))
        for d in _EIGHT_BIT}
    results = vm["main"](values["uint8"], values["int8"])
    return [results[i].numpy() for i in range(len(chains))]


def lookup_tables(mod) -> tuple[Any, int]:
    """``mod`` with every tableable chain (:func:`tableable_chains`) of its Relax
    functions computed as ``take(table, x)``: (new module, chains replaced)."""
    from tvm import relax

    @relax.expr_functor.mutator
    class Rewriter(relax.PyExprMutator):
        def __init__(self, module, lookups: dict) -> None:
            super().__init__(module)
            self.lookups = lookups

        def visit_var_binding_(self, binding) -> None:
            found = self.lookups.get(binding.var)
            if found is None:
                super().visit_var_binding_(binding)
                return
            chain, table = found
            index = self.visit_expr(chain.source)
            if _dtype(chain.source) == "int8":  # table[0] is -128
                index = relax.op.add(relax.op.astype(index, "int32"),
                                     relax.const(128, "int32"))
            # "clip": every index is in range, and "fast" warns on every legalization
            value = relax.op.take(relax.const(table), index, axis=0, mode="clip")
            self.builder_.emit_normalized(
                relax.VarBinding(binding.var, self.builder_.normalize(value)))

    import tvm

    mod = tvm.IRModule(dict(mod.functions_items()), attrs=mod.attrs)  # the caller's stays
    replaced = 0
    for gv, func in list(mod.functions_items()):
        if not isinstance(func, relax.Function):
            continue
        chains = tableable_chains(func)
        if not chains:
            continue
        lookups = {c.result: (c, t) for c, t in zip(chains, _tables(func, chains))}
        mod.update_func(gv, Rewriter(mod, lookups).visit_expr(func))
        replaced += len(chains)
    if replaced:
        mod = relax.transform.DeadCodeElimination()(mod)
    return mod, replaced


def mark_lookups_elementwise(mod):
    """``mod`` (legalized, op patterns annotated) with each 1-D table lookup that keeps its
    index's shape (``out[i...] = table[x[i...]]``) marked elementwise: so it is, one load
    per element, but ``AnnotateTIROpPattern`` calls any data-dependent read opaque."""
    from tvm import tirx

    for gv, func in list(mod.functions_items()):
        if (isinstance(func, tirx.PrimFunc) and gv.name_hint.startswith(LOOKUP_PREFIX)
                and func.attrs is not None and int(func.attrs.get("op_pattern", -1)) == 8
                and _is_lookup(func)):
            mod.update_func(gv, func.with_attr("op_pattern", 0))  # kElemWise
    return mod


def _is_lookup(func) -> bool:
    if len(func.params) != 3:
        return False
    table, index, out = func.params
    shape = [int(d) for d in index.shape]
    return [int(d) for d in table.shape] == [256] and [int(d) for d in out.shape] == shape
