"""A quantized model's requantizing arithmetic, with the same values and fewer instructions.

After :mod:`.quantized`, a layer's epilogue quantizes its result, and the op behind it (a
residual add, a concatenation's neighbour) dequantizes it again in the same fused function:
per element ``float(u8(clip(round(v) + z, 0, 255)))``, then ``round(w / s)`` for the next
quantize. On a CPU both cost more than they need to (ResNet-50 int8's layer-1 residual
convolution spent 120 of its 270 us in that epilogue, against a 148 us core):

* the casts to ``u8`` and back are an identity on a clipped whole number in the dtype's
  range: the float value is kept, and the four conversions go (:func:`_whole_in`);
* the zero point added before the clip and taken off again by the dequantize,
  ``clip(r + z, lo, hi) - z`` with ``r`` a whole number, is ``clip(r, lo - z, hi - z)``:
  equal wherever ``r + z`` is exact (``|r| < 2^24``) and clipped to the same bound where it
  is not (:func:`_offset_clip`);
* ``round(w / s)`` divides by a constant; a vector division takes about ten cycles. The
  quotient is computed as ``q = w * (1/s)`` corrected once, ``q + fma(-q, s, w) * (1/s)``
  (Markstein), which is the correctly rounded ``w / s`` whenever the remainder is exact:
  for ``|w| >= 2^-100``; below that, with ``2^-20 <= |s| <= 2^20``, the quotient is under
  ``2^-80`` and rounds to zero either way; where ``w * (1/s)`` is not finite (an infinite
  or NaN dividend, an overflow) it is the quotient. ``tests/test_requantize.py`` checks it
  against numpy's division over every float32 significand.

Both keep every value the model computes: the rewritten function is the model's, and its
tasks are checked against it as before.
"""

from __future__ import annotations

import numpy as np

from .qdq_graph import Chains, NotInteger, op, scalar

_SCALES = (2.0 ** -20, 2.0 ** 20)  # where a tiny dividend's quotient rounds to zero


def exact_quotient(x, divisor: float):
    """``x / divisor`` (float32) correctly rounded, in multiplies and fused multiply-adds
    (TIR expressions); see the module's docstring for where it holds."""
    from tvm import tirx

    c = tirx.const(float(divisor), "float32")
    reciprocal = tirx.const(float(np.float32(1) / np.float32(divisor)), "float32")
    q = x * reciprocal
    remainder = tirx.op.fma(-q, c, x)
    return tirx.Select(tirx.op.isfinite(q), tirx.op.fma(remainder, reciprocal, q), q)


def cheaper_requantize(mod) -> tuple[object, int]:
    """``mod`` with each dequantized round trip through an 8-bit cast dropped and each
    ``round(x / constant)`` computed by :func:`exact_quotient`: (new module, rewrites)."""
    import tvm
    from tvm import relax, te

    @relax.expr_functor.mutator
    class Rewriter(relax.PyExprMutator):
        def __init__(self, module) -> None:
            super().__init__(module)
            self.chains: Chains | None = None
            self.rewrites = 0

        def rewrite(self, module):
            for gv, func in module.functions_items():
                if isinstance(func, relax.Function):
                    self.chains = Chains(func)
                    self.builder_.update_func(gv, self.visit_expr(func))
            return self.builder_.get()

        def visit_var_binding_(self, binding) -> None:
            value = _round_trip(self.chains, binding.value)
            folded = None if value is not None else _offset_clip(self.chains, binding.value)
            if value is not None:
                value = self.visit_expr(value)
            elif folded is not None:
                value, clips = self.visit_expr(folded[0]), folded[1]
                for i, (name, limit) in enumerate(clips):
                    clipped = getattr(relax.op, name)(value, relax.const(limit, "float32"))
                    value = clipped if i == len(clips) - 1 else self.builder_.emit(clipped)
            else:
                divided = _rounded_quotient(self.chains, binding.value)
                if divided is not None:
                    x, divisor = divided
                    quotient = self.builder_.emit_te(
                        lambda t: te.compute(t.shape, lambda *i: exact_quotient(t(*i), divisor),
                                             name="exact_divide"),
                        self.visit_expr(x), primfunc_name_hint="exact_divide")
                    value = relax.op.round(quotient)
            if value is None:
                super().visit_var_binding_(binding)
                return
            self.rewrites += 1
            # read in its place: an alias binding would cut the fusion there (a block's
            # output keeps its own variable)
            if isinstance(value, relax.Var) and isinstance(binding.var, relax.DataflowVar):
                self.set_var_remap(binding.var, value)
                return
            self.builder_.emit_normalized(
                relax.VarBinding(binding.var, self.builder_.normalize(value)))

    rewriter = Rewriter(tvm.IRModule(dict(mod.functions_items()), attrs=mod.attrs))
    mod = rewriter.rewrite(mod)
    if rewriter.rewrites:
        mod = relax.transform.DeadCodeElimination()(mod)
    return mod, rewriter.rewrites


def _round_trip(chains: Chains, value):
    """For ``astype(astype(v, int8/uint8), float32)`` where ``v`` is a float32 whole number
    clipped into the 8-bit range, ``v``; else None."""
    if not op(value, "relax.astype") or str(value.attrs.dtype) != "float32":
        return None
    try:  # an 8-bit value read elsewhere too is computed anyway: the float would be extra
        narrow = chains.bound(value.args[0])
    except NotInteger:
        return None
    if not op(narrow, "relax.astype") or str(narrow.attrs.dtype) not in ("uint8", "int8"):
        return None
    clipped = narrow.args[0]
    if str(clipped.ty.dtype) != "float32":
        return None
    info = np.iinfo(str(narrow.attrs.dtype))
    return clipped if _whole_in(chains, clipped, info.min, info.max) else None


def _offset_clip(chains: Chains, value):
    """For ``clip(r + z, ...) - z`` (``r`` a whole number, ``z`` and the clip's bounds
    whole constants, every step read once), seen through a dropped round trip:
    ``(r, [(maximum/minimum, bound - z), ...])`` innermost first; else None."""
    if not op(value, "relax.subtract") or str(value.ty.dtype) != "float32":
        return None
    z = _whole_constant(value.args[1])
    try:
        expr = chains.bound(value.args[0])
        through = _round_trip(chains, expr)
        clips, expr = _clips(chains, chains.bound(through) if through is not None else expr,
                             single_use=True)
    except NotInteger:
        return None
    if z is None or not clips or not op(expr, "relax.add") \
            or _whole_constant(expr.args[1]) != z \
            or not _whole(chains, chains.bound(expr.args[0], single_use=False)):
        return None
    return expr.args[0], [(name, limit - z) for name, limit in clips]


def _clips(chains: Chains, expr, single_use: bool = False):
    """``expr``'s chain of maximum/minimum by whole constants: ``([(name, bound)]``
    innermost first, ``what is clipped)``; NotInteger where a bound is not one."""
    clips = []
    while op(expr) in ("relax.maximum", "relax.minimum"):
        limit = _whole_constant(expr.args[1])
        if limit is None:
            raise NotInteger("a clip by a value that is not a whole constant")
        clips.append((op(expr).split(".")[1], limit))
        expr = chains.bound(expr.args[0], single_use=single_use)
    return clips[::-1], expr


def _whole_in(chains: Chains, expr, low: float, high: float) -> bool:
    """Whether ``expr`` is a whole number in [low, high] for every finite input: clipped by
    constants to within the range, the clipped value built from ``round`` by adding,
    subtracting or clipping with whole constants."""
    try:
        clips, expr = _clips(chains, chains.bound(expr, single_use=False))
    except NotInteger:
        return False
    lo, hi = -np.inf, np.inf
    for name, limit in clips:
        lo, hi = (max(lo, limit), max(hi, limit)) if name == "maximum" \
            else (min(lo, limit), min(hi, limit))
    return low <= lo and hi <= high and _whole(chains, expr)


def _whole(chains: Chains, expr) -> bool:
    while op(expr) in ("relax.add", "relax.subtract", "relax.maximum", "relax.minimum"):
        if _whole_constant(expr.args[1]) is None:
            return False
        expr = chains.bound(expr.args[0], single_use=False)
    return op(expr) == "relax.round"


def _whole_constant(expr) -> float | None:
    try:
        value = scalar(expr)
    except NotInteger:
        return None
    # below 2^24 float32 holds every whole number, so sums of them stay exact
    return value if value == int(value) and abs(value) < 2 ** 24 else None


def _rounded_quotient(chains: Chains, value):
    """For ``round(x / s)``, ``s`` a float32 constant in :data:`_SCALES`: (x, s); else None."""
    if not op(value, "relax.round"):
        return None
    divide = chains.bound(value.args[0], single_use=False)
    if not op(divide, "relax.divide") or str(divide.ty.dtype) != "float32":
        return None
    try:
        divisor = scalar(divide.args[1])
    except NotInteger:
        return None
    if not _SCALES[0] <= abs(divisor) <= _SCALES[1]:
        return None
    return divide.args[0], divisor
