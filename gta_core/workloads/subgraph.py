"""A workload cut from a model: one fused TensorIR function, tuned as a spec's operator is.

A model's fused function (``fused_conv2d_add_relu``) holds producer blocks (padding), an
*anchor* block that does the arithmetic (the multiply-accumulate with the most work) and
epilogue blocks (bias add, ReLU, a residual add). Mappings, rules and constraints see the
anchor exactly as they see a spec's main block; the program they generate is the whole
function, epilogues included. Its reference is the same function built by TVM with no
schedule at all, run here.

Its ``spec`` is the function's family name and a digest of its text, so the same subgraph
keys the same records in every model that holds it.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from .operator import ERROR_UNITS, UNIT_ROUNDOFF, numpy_dtype, random_array
from .spec import Expected, output_mismatch, throughput_unit

# Integer outputs rounded from float arithmetic (a quantized layer's requantization) may be
# one off on this fraction of their elements: ties (see spec.Expected).
ROUNDING_TIES = 2.0**-10

# A function with no anchor (softmax, layer norm, pooling) is checked within this fraction of
# its largest output: its error does not scale with a sum of products, and a wrong program
# (a skipped element, a misplaced index) is off by far more.
ANCHORLESS_TOLERANCE = 2.0**-10

# ``T.min(load, T.float32(c))`` in a function's TVMScript: a clamp from above at a constant.
_CLAMP_AT_CONSTANT = re.compile(
    r"T\.min\(([A-Za-z_][\w.]*\[[^\[\]()]*\]), T\.float(?:16|32|64)\([^()]*\)\)")


def _built(func):
    """``func`` built by TVM with no schedule, loaded to run here."""
    import tvm

    return tvm.compile(tvm.IRModule({"main": func}), target={"kind": "llvm"}).jit()


class NoAnchor(ValueError):
    """A function with no multiply-accumulate block an intrinsic could take; says why."""


def _is_load(expr) -> bool:
    """Whether ``expr``, casts peeled off, reads a buffer element."""
    from tvm import tirx
    from tvm.ir.expr import TensorLoad  # what tirx.BufferLoad makes in TVM 0.27

    while isinstance(expr, tirx.Cast):
        expr = expr.value
    return isinstance(expr, TensorLoad)


def _index_bounds(func) -> dict[int, int]:
    """Positions of the parameters ``func`` reads as indices into another buffer (a gather,
    ``A[B[i], j]``), each with the fewest entries it indexes."""
    from tvm import s_tir, tirx
    from tvm.ir.expr import TensorLoad

    sch = s_tir.Schedule(func)
    params = list(func.params)
    bounds: dict[int, int] = {}
    blocks = list(sch.get_child_blocks(sch.get_sblock("root")))
    while blocks:
        block = blocks.pop()
        blocks += sch.get_child_blocks(block)
        for region in sch.get(block).reads:
            for axis, span in enumerate(region.region):
                index = span.min
                while isinstance(index, tirx.Cast):
                    index = index.value
                if not isinstance(index, TensorLoad):
                    continue
                for n, param in enumerate(params):
                    if index.source.same_as(param):
                        extent = int(region.source.shape[axis])
                        bounds[n] = min(bounds.get(n, extent), extent)
    return bounds


def _is_multiply_accumulate(block) -> bool:
    """Whether ``block`` updates ``out = out + a * b`` (casts allowed around a and b)."""
    from tvm import tirx
    from tvm.ir.expr import TensorLoad

    store = block.body
    if not isinstance(store, tirx.BufferStore) or not isinstance(store.value, tirx.Add):
        return False
    acc, product = store.value.a, store.value.b
    if not (isinstance(acc, TensorLoad) and acc.source.same_as(store.buffer)):
        return False
    while isinstance(product, tirx.Cast):
        product = product.value
    return isinstance(product, tirx.Mul) and _is_load(product.a) and _is_load(product.b)


def anchor_block(func) -> tuple[str, int]:
    """(name, multiply-accumulates) of ``func``'s anchor: of its multiply-accumulate
    blocks, the one with the most iterations. Raises :class:`NoAnchor` when it has none."""
    from tvm import s_tir
    from tvm.tirx import IterVar

    sch = s_tir.Schedule(func)
    best: tuple[str, int] | None = None
    for block_rv in sch.get_child_blocks(sch.get_sblock("root")):
        block = sch.get(block_rv)
        if not any(iv.iter_type == IterVar.CommReduce for iv in block.iter_vars):
            continue
        if not _is_multiply_accumulate(block):
            continue
        work = math.prod(int(iv.dom.extent) for iv in block.iter_vars)
        if best is None or work > best[1]:
            best = (block.name_hint, work)
    if best is None:
        raise NoAnchor("no multiply-accumulate block (a pooling, a normalisation, an "
                       "elementwise or layout function)")
    return best


def schedulable(func) -> bool:
    """Whether ``func`` has a root block to schedule: TVM's sorts, scans and extern calls
    come as opaque TIR (one block of their own, or bare loops), which neither GTA nor
    MetaSchedule can take, and which compile as TVM wrote them."""
    return hasattr(func.body, "block") and func.body.block.name_hint == "root"


def narrowed(func):
    """``func`` with int32 loop and index arithmetic (Relax legalises shapes as int64; GTA's
    rules, and LLVM's vector code, are at home with int32); unchanged where a parameter
    holds int64 data (a ``take``'s indices, an int64 output), which TVM's pass refuses:
    no intrinsic takes int64 operands, so such a function is not GTA's to map anyway."""
    import tvm
    from tvm import tirx

    if any(str(param.dtype) == "int64" for param in func.params):
        return func
    return tirx.transform.ForceNarrowIndexToInt32()(tvm.IRModule({"main": func}))["main"]


def digest(func) -> str:
    """A stable name for ``func``'s content: its TVMScript text, hashed."""
    text = func.with_attr("global_symbol", "main").script()
    return hashlib.sha256(text.encode()).hexdigest()[:12]


_FLOAT_LITERAL = re.compile(r"T\.(?:b?float\d+)\([^()]*\)")


def structure(func) -> str:
    """``func``'s content with its float literals masked and its parameters named by
    position, hashed: functions equal up to the constants folded into them (a quantized
    layer's scales, its zero points in float arithmetic) have one structure, and any
    schedule of one replays on the others."""
    text = _FLOAT_LITERAL.sub("F", func.with_attr("global_symbol", "main").script())
    signature = re.search(r"def main\((.*?)\):\n", text, re.S)
    names = re.findall(r"(\w+): T\.", signature.group(1)) if signature else []
    for i, name in enumerate(names):  # by position: equal functions name theirs alike
        text = re.sub(rf"\b{re.escape(name)}\b", f"arg{i}", text)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def family(name: str) -> str:
    """``fused_conv2d3_add3_relu2`` -> ``fused_conv2d_add_relu``: the numbers Relax adds to
    tell functions apart differ between models; the digest tells them apart instead."""
    return re.sub(r"(?<=[a-z])\d+(?=_|$)", "", name)


@dataclass(frozen=True, eq=False)
class SubgraphWorkload:
    """One fused function of a model, with its anchor block as the main block.

    ``main_block`` None: the function has no anchor (``why`` says why); no intrinsic takes
    it, and it is tuned in MetaSchedule's generic space instead.
    """

    name: str
    func: Any = field(repr=False)  # tvm.tirx.PrimFunc: inputs, then one output
    main_block: str | None
    macs: int
    why: str | None = None
    # Positions of the inputs the model passes as constants (its weights): their packing
    # stays outside the compute loops, where a compiled model runs it once. Not part of
    # the spec: the records of a function do not depend on where it is called from.
    constant_inputs: frozenset[int] = frozenset()
    # The model's values of its scalar constant inputs (position, value): checks run with
    # them, since a random clip bound (ReLU6's 0 and 6 are inputs of the fused function)
    # clamps the error allowance computed on |inputs| below a correct program's rounding.
    scalars: tuple[tuple[int, float], ...] = ()

    @classmethod
    def from_function(cls, name: str, func, constant_inputs: frozenset[int] = frozenset(),
                      scalars: tuple[tuple[int, float], ...] = ()) -> SubgraphWorkload:
        """The workload of ``func``, already :func:`narrowed` and named ``main``."""
        try:
            block, macs = anchor_block(func)
        except NoAnchor as exc:
            return cls(name, func, None, 0, str(exc), constant_inputs, scalars)
        return cls(name, func, block, macs, None, constant_inputs, scalars)

    @cached_property
    def spec(self) -> str:
        return f"{family(self.name)}/{digest(self.func)}"

    def __str__(self) -> str:
        return self.spec

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def prim_func(self):
        return self.func

    @property
    def _params(self) -> list:
        return list(self.func.params)

    @property
    def input_buffers(self) -> list:
        return self._params[:-1]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self._params[-1].shape)

    @property
    def output_dtype(self) -> str:
        return str(self._params[-1].dtype)

    @property
    def unit(self) -> str:
        from tvm import s_tir

        if self.main_block is None:
            return throughput_unit(self.output_dtype)
        sch = s_tir.Schedule(self.func)
        block = sch.get(sch.get_sblock(self.main_block))
        return throughput_unit(str(block.reads[0].source.dtype))

    def random_inputs(self, seed: int = 0) -> list[np.ndarray]:
        """Random inputs, but the model's own value for each scalar constant, and indices
        inside what they index (a gather's: out of bounds, it reads any memory, or dies)."""
        rng = np.random.default_rng(seed)
        inputs = [random_array(tuple(int(d) for d in b.shape), str(b.dtype), rng)
                  for b in self.input_buffers]
        for position, extent in _index_bounds(self.func).items():
            inputs[position] = rng.integers(0, extent, inputs[position].shape).astype(
                inputs[position].dtype)
        for position, value in self.scalars:
            inputs[position] = np.full(inputs[position].shape, value, inputs[position].dtype)
        return inputs

    @cached_property
    def _unscheduled(self):
        """The function built by TVM with no schedule: what every program is checked against."""
        return _built(self.func)

    @cached_property
    def _unclamped(self):
        """The function without its clamps from above at a constant (ReLU6's ``min(x, 6)``),
        built with no schedule: on the inputs' absolute values, the size its rounding scales
        with. Clamped, a sum of |a*b| of 80 read as 6, below a correct program's rounding
        (MobileNet-V2's 320 -> 1280 layer, K = 320: off by 7e-6 to 1.4e-5 where 6.7e-6 was
        allowed, so most of its correct programs were rejected, every one of a mapping's).
        The function itself where none is found or the text does not parse back."""
        import tvm

        text, found = _CLAMP_AT_CONSTANT.subn(r"\1", self.func.script())
        if not found:
            return self._unscheduled
        try:
            return _built(tvm.script.from_source(text))
        except Exception:  # noqa: BLE001 - the clamped allowance is still an allowance
            return self._unscheduled

    def reference(self, inputs: list[np.ndarray]) -> np.ndarray:
        return self._run(self._unscheduled, inputs)

    def _run(self, built, inputs: list[np.ndarray]) -> np.ndarray:
        import tvm

        device = tvm.cpu()
        out = tvm.runtime.tensor(np.zeros(self.output_shape, numpy_dtype(self.output_dtype)),
                                 device)
        built["main"](*(tvm.runtime.tensor(x, device) for x in inputs), out)
        return out.numpy()

    def expected(self, inputs: list[np.ndarray]) -> Expected:
        """The unscheduled function's output, and the error each output may have.

        Floats: ``ERROR_UNITS`` units of roundoff times the sum of |a*b| (the function on
        the inputs' absolute values, which bounds it for the monotone epilogues a fusion
        holds: bias add, ReLU, residual add; run without its clamps from above, which would
        cap it: :attr:`_unclamped`) plus the output's own size (the reference rounds too).
        Integers must match exactly.
        """
        value = self.reference(inputs)
        unit = UNIT_ROUNDOFF.get(self.output_dtype)
        if unit is None:
            return Expected(value, None, ROUNDING_TIES if self._computes_in_float else 0.0)
        if self.main_block is None:  # no products to sum: within 2^-10 of the largest output
            scale = float(np.abs(value.astype(np.float64)).max(initial=0.0))
            return Expected(value, np.full(value.shape, ANCHORLESS_TOLERANCE * scale))
        magnitude = self._run(self._unclamped, [np.abs(x) for x in inputs]).astype(np.float64)
        bound = ERROR_UNITS * unit * (np.abs(magnitude) + np.abs(value.astype(np.float64)))
        return Expected(value, bound)

    @cached_property
    def _computes_in_float(self) -> bool:
        """Whether a value passes through float arithmetic on its way to the output."""
        from tvm import s_tir

        sch = s_tir.Schedule(self.func)
        root = sch.get(sch.get_sblock("root"))  # fused functions allocate at the root
        dtypes = {str(b.dtype) for b in [*self._params, *root.alloc_buffers]}
        return any(d.startswith(("float", "bfloat")) for d in dtypes)

    def mismatch(self, actual: np.ndarray, expected: Expected) -> str | None:
        return output_mismatch(actual, expected)
