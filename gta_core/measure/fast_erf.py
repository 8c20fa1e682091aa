"""``erf`` on a CPU as a polynomial the vectoriser takes, not a call to libm's ``erff``.

TVM 0.27 lowers ``tirx.erf`` for LLVM to a scalar call of libm's ``erff``, which no loop
around it can vectorise. BERT's GELU (``x * (1 + erf(x / sqrt 2)) / 2``), fused into the
1024x3072 FFN matmul as its epilogue, made that function run at 24% of the float32 peak
(5.1 ms a call), the scalar calls taking most of it. This lowering replaces the call by
the rational approximation Eigen and TOPI's ``fast_erf`` use (``x`` clamped to [-4, 4],
odd polynomial of degree 13 over even polynomial of degree 8; within a few float32 units
of ``erf``): arithmetic that vectorises wherever the epilogue is computed.
"""

from __future__ import annotations

_ALPHA = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
          -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
          -1.60960333262415e-02)  # x^13 ... x^1 of the numerator, over x
_BETA = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
         -7.37332916720468e-03, -1.42647390514189e-02)  # x^8 ... x^0 of the denominator

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


def register_fast_erf() -> None:
    """Lower float32 ``erf`` to the polynomial for LLVM targets (idempotent; before a
    build: every GTA build, tuning's builder workers' included, goes through
    :func:`gta_core.measure.build`, which calls it)."""
    global _registered
    if _registered:
        return
    from tvm.tirx.op import register_intrin_lowering

    register_intrin_lowering("tirx.erf", "llvm", f=_fast_erf, level=99)
    _registered = True
