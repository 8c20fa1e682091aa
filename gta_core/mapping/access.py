"""Iteration spaces and accesses, of an operator's main block and of an intrinsic.

Both sides become the same plain data: iteration variables with extents and
kinds, and per tensor the affine index expressions over those variables.
Mapping enumeration compares the two.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import lru_cache

from ..models import Intrinsic

Affine = dict[str, int]  # variable -> coefficient; "" holds the constant


@dataclass(frozen=True)
class Axis:
    name: str
    extent: int
    kind: str  # "spatial" | "reduce"


@dataclass(frozen=True)
class Access:
    """One tensor as the computation sees it."""

    tensor: str
    dtype: str
    indices: tuple[tuple[tuple[str, int], ...], ...]  # per dimension, sorted (var, coeff) pairs
    output: bool = False
    shape: tuple[int, ...] | None = None  # the buffer's, where known (an operator's block)

    def depends_on(self, var: str) -> bool:
        return any(v == var for index in self.indices for v, c in index if c)

    def innermost(self, var: str) -> bool:
        """Whether ``var`` steps through the last dimension by one and indexes no other, so
        that a run of its values reads contiguous memory."""
        return self.dimension_of({var: 1}) == len(self.indices) - 1

    def dimension_of(self, steps: dict[str, int]) -> int | None:
        """The one dimension that every variable of ``steps`` (variable -> coefficient) steps
        through with exactly that coefficient, none of them indexing another; else None.

        Other variables may index that dimension too (``w + s`` holds ``{"w": 1}``).
        """
        found = {d for d, index in enumerate(self.indices) for v, c in index if c and v in steps}
        if len(found) != 1:
            return None
        [d] = found
        index = dict(self.indices[d])
        return d if all(index.get(v) == c for v, c in steps.items()) else None

    @property
    def mixes(self) -> bool:
        """Whether some index mixes variables (a sliding window's ``A[i + k]``)."""
        return any(sum(1 for v, c in index if v and c) > 1 for index in self.indices)

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(v for index in self.indices for v, c in index if v and c)


@dataclass(frozen=True)
class Computation:
    """``out[...] += prod(inputs[...])`` over named axes."""

    axes: tuple[Axis, ...]
    inputs: tuple[Access, ...]
    output: Access

    def axis(self, name: str) -> Axis:
        return next(a for a in self.axes if a.name == name)


def mapped_steps(index: tuple[tuple[str, int], ...],
                 axes: dict[str, list[str]]) -> dict[str, int] | None:
    """An intrinsic index (``i + k``) in operator loops: {loop: coefficient} under the mapping
    ``axes`` (intrinsic variable -> operator loops); None when a variable takes several loops
    (a fused axis steps through memory in no one coefficient) or there is no variable."""
    terms = [(v, c) for v, c in index if v and c]
    if not terms or any(len(axes[v]) != 1 for v, _ in terms):
        return None
    return {axes[v][0]: c for v, c in terms}


class NotAffine(ValueError):
    """An index the mapping abstraction cannot describe."""


def _freeze(form: Affine) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((v, c) for v, c in form.items() if c))


def _add(a: Affine, b: Affine, sign: int = 1) -> Affine:
    out = dict(a)
    for v, c in b.items():
        out[v] = out.get(v, 0) + sign * c
    return out


def _scale(a: Affine, k: int) -> Affine:
    return {v: c * k for v, c in a.items()}


def _constant(form: Affine) -> int | None:
    return form.get("", 0) if all(not c for v, c in form.items() if v) else None


def _multiply(a: Affine, b: Affine, what: str) -> Affine:
    ka, kb = _constant(a), _constant(b)
    if ka is not None:
        return _scale(b, ka)
    if kb is not None:
        return _scale(a, kb)
    raise NotAffine(f"index {what} multiplies two variables")


# --- intrinsic side: index expressions are strings -------------------------------------

def affine_from_text(text: str) -> Affine:
    def walk(node: ast.AST) -> Affine:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return {"": node.value}
        if isinstance(node, ast.Name):
            return {node.id: 1}
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return _scale(walk(node.operand), -1)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
            sign = 1 if isinstance(node.op, ast.Add) else -1
            return _add(walk(node.left), walk(node.right), sign)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            return _multiply(walk(node.left), walk(node.right), repr(text))
        raise NotAffine(f"index {text!r} is not affine")

    return walk(ast.parse(text, mode="eval"))


def intrinsic_computation(intrinsic: Intrinsic) -> Computation:
    compute = intrinsic.compute

    def access(operand) -> Access:
        return Access(operand.name, operand.dtype,
                      tuple(_freeze(affine_from_text(i)) for i in operand.indices),
                      output=operand.role == "output")

    return Computation(
        axes=tuple(Axis(v.name, v.extent, v.kind) for v in compute.iter_vars),
        inputs=tuple(access(o) for o in compute.inputs),
        output=access(compute.output),
    )


# --- operator side: the main TensorIR block -------------------------------------------

def affine_from_expr(expr, names: dict) -> Affine:
    from tvm import tirx

    if isinstance(expr, tirx.IntImm):
        return {"": int(expr.value)}
    if isinstance(expr, tirx.Var):
        if expr not in names:
            raise NotAffine(f"index uses {expr.name}, which is not a block iteration variable")
        return {names[expr]: 1}
    if isinstance(expr, tirx.Cast):
        return affine_from_expr(expr.value, names)
    if isinstance(expr, (tirx.Add, tirx.Sub)):
        return _add(affine_from_expr(expr.a, names), affine_from_expr(expr.b, names),
                    1 if isinstance(expr, tirx.Add) else -1)
    if isinstance(expr, tirx.Mul):
        return _multiply(affine_from_expr(expr.a, names), affine_from_expr(expr.b, names),
                         str(expr))
    raise NotAffine(f"index {expr} is not affine")


def block_computation(sch, block_name: str) -> Computation:
    """The main block of ``sch`` as a :class:`Computation`; axes named without 'v_'."""
    from tvm.tirx import IterVar

    block = sch.get(sch.get_sblock(block_name))
    names = {iv.var: iv.var.name.removeprefix("v_") for iv in block.iter_vars}
    axes = tuple(
        Axis(names[iv.var], int(iv.dom.extent),
             "reduce" if iv.iter_type == IterVar.CommReduce else "spatial")
        for iv in block.iter_vars
    )

    # A unit-extent variable beside others in one index (a 1x1 convolution's ``h + r``) is
    # always 0 there: TVM's reindex drops it from that buffer's dimensions, so it does too.
    unit = {names[iv.var] for iv in block.iter_vars if int(iv.dom.extent) == 1}

    def index_form(expr) -> Affine:
        form = affine_from_expr(expr, names)
        if sum(1 for v, c in form.items() if v and c and v not in unit) >= 1:
            form = {v: c for v, c in form.items() if v not in unit}
        return form

    def access(region, output: bool = False) -> Access:
        buffer = region.source
        indices = []
        for r in region.region:
            if int(r.extent) != 1:
                raise NotAffine(f"{buffer.name} is read as a window, not element by element")
            indices.append(_freeze(index_form(r.min)))
        shape = tuple(int(d) for d in buffer.shape) \
            if all(hasattr(d, "value") for d in buffer.shape) else None
        return Access(buffer.name, str(buffer.dtype), tuple(indices), output=output,
                      shape=shape)

    if len(block.writes) != 1:
        raise NotAffine(f"block {block_name} writes {len(block.writes)} buffers, not one")
    return Computation(axes=axes, inputs=tuple(access(r) for r in block.reads),
                       output=access(block.writes[0], output=True))


@lru_cache(maxsize=64)
def workload_computation(workload) -> Computation:
    """The main block of ``workload``'s program as a :class:`Computation` (cached)."""
    from tvm import s_tir

    return block_computation(s_tir.Schedule(workload.prim_func()), workload.main_block)
