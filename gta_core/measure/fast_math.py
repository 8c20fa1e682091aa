"""``erf`` and ``exp`` on a CPU as polynomials the vectoriser takes, not calls to libm.

TVM 0.27 lowers ``tirx.erf`` and ``tirx.exp`` for LLVM to scalar calls of libm's ``erff``
and ``expf`` (LLVM scalarises ``llvm.exp`` with no vector math library), which no loop
around them can vectorise:

- BERT's GELU (``x * (1 + erf(x / sqrt 2)) / 2``), fused into the 1024x3072 FFN matmul
  as its epilogue, made that function run at 24% of the float32 peak (5.1 ms a call), the
  scalar calls taking most of it. ``erf`` becomes the rational approximation Eigen and
  TOPI's ``fast_erf`` use (``x`` clamped to [-4, 4], odd polynomial of degree 13 over even
  polynomial of degree 8; within a few float32 units of ``erf``).
- A softmax spends most of its time in ``expf``. ``exp`` becomes TOPI's ``fast_exp``
  (Cephes): ``x = n ln2 + r`` with ``|r| <= ln2 / 2``, a degree-7 polynomial in r, times
  ``2^n`` built in the exponent bits; within 2 float32 units of ``exp`` over float32's
  range, 0 below it.

Both are arithmetic that vectorises wherever the epilogue or the reduction is computed.
"""

from __future__ import annotations

_ALPHA = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
          -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
          -1.60960333262415e-02)  # x^13 ... x^1 of the numerator, over x
_BETA = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
         -7.37332916720468e-03, -1.42647390514189e-02)  # x^8 ... x^0 of the denominator
_EXP = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
        1.6666665459e-1, 5.0000001201e-1)  # r^7 ... r^2 of exp(r), over r^2

_registered = False


def _fast_erf(call):
    from tvm import tirx

    [x] = call.args
    if str(x.ty.dtype) != "float32":
        return call  # other types keep TVM's lowering
    four = tirx.const(4.0, "float32")
    x = tirx.max(tirx.min(x, four), -four)
    x2 = x * x
    p = tirx.const(_ALPHA[0], "float32")
    for a in _ALPHA[1:]:
        p = p * x2 + tirx.const(a, "float32")
    q = tirx.const(_BETA[0], "float32")
    for b in _BETA[1:]:
        q = q * x2 + tirx.const(b, "float32")
    return x * p / q


def _fast_exp(call):
    from tvm import tirx

    [value] = call.args
    if str(value.ty.dtype) != "float32":
        return call

    def f32(v):
        return tirx.const(v, "float32")

    x = tirx.max(tirx.min(value, f32(88.3762626647950)), f32(-88.3762626647949))
    n = tirx.floor(x * f32(1.44269504088896341) + f32(0.5))
    # ln2 in two parts (Cody-Waite): n * 0.693359375 is exact, so r keeps its low bits
    r = x - n * f32(0.693359375) + n * f32(2.12194440e-4)
    p = f32(_EXP[0])
    for c in _EXP[1:]:
        p = p * r + f32(c)
    y = p * r * r + r + f32(1.0)
    two_n = tirx.reinterpret("float32", tirx.shift_left(
        tirx.Cast("int32", n + f32(127.0)), tirx.const(23, "int32")))
    # exp(x) > x everywhere: the max passes a NaN input through as NaN, as expf does
    return tirx.max(two_n * y, value)


def register_fast_math() -> None:
    """Lower float32 ``erf`` and ``exp`` to the polynomials for LLVM targets (idempotent;
    before a build: every GTA build, tuning's builder workers' included, goes through
    :func:`gta_core.measure.build`, which calls it)."""
    global _registered
    if _registered:
        return
    from tvm.tirx.op import register_intrin_lowering

    register_intrin_lowering("tirx.erf", "llvm", f=_fast_erf, level=99)
    register_intrin_lowering("tirx.exp", "llvm", f=_fast_exp, level=99)
    _registered = True
