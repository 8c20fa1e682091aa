"""A quantized model's outputs checked against its framework's, measured by the framework's
own spread.

A quantized network rounds every activation to its grid at every layer. Two correct int8
implementations that differ by one float ulp somewhere (a sum in another order, ``x / s``
against ``x * (1/s)``) round a value on a tie differently; that one-step difference moves
the next layer's sums, which flips more roundings, and so on through the network. How far
that goes depends on the model: onnxruntime's own optimized run of a 12-layer QDQ BERT
encoder and its literal run (graph optimizations off: the QDQ graph computed as written)
are within one quantization step on only 66% of the output's elements, 6% relative RMS
apart; on ResNet-18 they agree within one step everywhere, 0.9% apart.

So GTA's compiled model is held to the framework's own yardstick: its relative RMS error
against onnxruntime's optimized outputs may be at most twice the distance between
onnxruntime's two runs, and never needs to be below ``RMS_FLOOR`` (one step on a shallow
model). A wrong program (a layer computing the wrong thing) is off by a large fraction of
the output, far outside. The fraction of elements within one quantization step of
onnxruntime's, and the same for onnxruntime's two runs, are reported beside it.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel

RMS_FLOOR = 2.0**-6


class QuantizedCheck(BaseModel):
    """How a quantized model's outputs agree with its framework's (module docstring)."""

    relative_rms: float  # ||ours - framework|| / ||framework||, the largest over outputs
    framework_relative_rms: float  # the same between the framework's optimized and literal runs
    rms_bound: float
    within_one_step: float | None  # fraction of dequantized outputs' elements within a step
    framework_within_one_step: float | None


def _relative_rms(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    scale = float(np.sqrt(np.mean(b * b))) if b.size else 0.0
    error = float(np.sqrt(np.mean((a - b) ** 2))) if b.size else 0.0
    return error / scale if scale else error


def _within_one_step(got, want, steps) -> float | None:
    near = [np.abs(g.astype(np.float64) - w) <= s * (1 + 2.0**-10)
            for g, w, s in zip(got, want, steps) if s]
    return float(np.mean(np.concatenate([n.ravel() for n in near]))) if near else None


def check_quantized(got: list[np.ndarray], want: list[np.ndarray], literal: list[np.ndarray],
                    steps: list[float | None]) -> QuantizedCheck:
    """``got`` against the framework's outputs ``want``, with ``literal`` (its run with graph
    optimizations off) as the yardstick; ``steps`` per output its quantization step (None
    where it is not dequantized). Raises CompileError beyond the bound."""
    from .model_compile import check_shapes

    check_shapes(got, want)
    ours = max(_relative_rms(g, w) for g, w in zip(got, want))
    theirs = max(_relative_rms(w, x) for w, x in zip(want, literal))
    return _bounded(ours, theirs, "the framework's", "the framework's optimized and literal "
                    "runs'", _within_one_step(got, want, steps),
                    _within_one_step(literal, want, steps))


def check_own_quantization(got: list[np.ndarray], reference: list[np.ndarray],
                           float_want: list[np.ndarray]) -> QuantizedCheck:
    """``got``, from a model quantized with scales of its own (PyTorch's int8 model), against
    the float model's outputs ``float_want``: at most twice as far from them (relative RMS)
    as ``reference``, the same quantization computed in float (PyTorch's reference model),
    is; ``RMS_FLOOR`` at least. The reference itself is no exact yardstick: computed in
    float, its sums' order decides ties, and the flips cascade (PyTorch's reference
    ResNet-18 at 128x128 moved 1.2% between one and two threads). So the int8 kernels may
    add at most the quantization's own error; a wrong layer adds far more. Raises
    CompileError beyond the bound."""
    from .model_compile import check_shapes

    check_shapes(got, float_want)
    ours = max(_relative_rms(g, w) for g, w in zip(got, float_want))
    theirs = max(_relative_rms(r, w) for r, w in zip(reference, float_want))
    return _bounded(ours, theirs, "the float model's", "its reference model's")


def _bounded(ours: float, theirs: float, whose: str, yardstick: str,
             within: float | None = None, framework_within: float | None = None
             ) -> QuantizedCheck:
    """The check of outputs ``ours`` (relative RMS) from ``whose`` outputs, held to twice the
    ``yardstick``'s ``theirs`` (``RMS_FLOOR`` at least); CompileError beyond it."""
    from .model_compile import CompileError

    check = QuantizedCheck(relative_rms=ours, framework_relative_rms=theirs,
                           rms_bound=max(RMS_FLOOR, 2 * theirs), within_one_step=within,
                           framework_within_one_step=framework_within)
    if not ours <= check.rms_bound:  # NaN fails
        raise CompileError(f"the outputs are {ours:.3g} (relative RMS) from {whose}; at most "
                           f"{check.rms_bound:.3g} allowed (twice {yardstick} {theirs:.3g}, "
                           f"{RMS_FLOOR:.3g} at least)")
    return check


def describe(check: QuantizedCheck) -> str:
    """One line for the command line."""
    near = ("" if check.within_one_step is None else
            f"{check.within_one_step:.2%} of elements within one quantization step "
            f"(onnxruntime's optimized and literal runs: {check.framework_within_one_step:.2%}), ")
    return (f"{near}relative RMS {check.relative_rms:.3g} (onnxruntime's two runs "
            f"{check.framework_relative_rms:.3g}; bound {check.rms_bound:.3g})")
