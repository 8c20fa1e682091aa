"""Reductions as products, so the intrinsics take them: ``mean``, ``variance`` and ``scan``.

As AMOS and the paper map them: a sum along an axis is a product with a vector of ones, a
prefix sum a product with a triangular matrix of ones. The ones are a stage of the operator
(a constant the packing stage writes, never an input a caller passes), so each operator is a
GEMV or a GEMM to the mapping enumerator and the same intrinsics and rules apply.

- ``mean:M,K``: ``y[m] = sum_k x[m, k] / K``, float dtypes.
- ``variance:M,K``: ``y[m] = sum_k x[m, k]^2 / K - (sum_k x[m, k] / K)^2`` (population
  variance), float dtypes. Both sums are one product: the input and its square stacked on an
  axis of 2, times the ones, in one pass over x.
- ``scan:M,K``: ``y[m, i] = sum_{k <= i} x[m, k]`` (an inclusive prefix sum along the last
  axis); every dtype, int8 exactly (u8 data, s8 ones, int32 sums). Its work is counted as
  a sequential scan's M*K additions; the product issues K times as many multiply-adds (the
  triangle's zeros are multiplied too, as on the paper's Tensor Cores).

Their outputs are in the accumulator dtype, float32 for float16 and bfloat16 data.
"""

from __future__ import annotations

import numpy as np
from pydantic import PositiveInt, model_validator

from .operator import Operator, OperatorParams, ShapeError, TensorInfo, numpy_dtype


class RowsParams(OperatorParams):
    """M rows of K elements, reduced (or scanned) along K."""

    M: PositiveInt
    K: PositiveInt


class FloatRowsParams(RowsParams):
    @model_validator(mode="after")
    def _float(self) -> FloatRowsParams:
        if self.dtype.startswith("int"):
            raise ShapeError(f"dtype={self.dtype}: a mean or variance of integers is not an "
                             "integer; use a float dtype (float32, float16, bfloat16)")
        return self


def _rows(p: RowsParams) -> list[TensorInfo]:
    return [TensorInfo("x", (p.M, p.K), p.data_dtype, "data")]


def _ones(shape: tuple[int, ...], dtype: str, name: str, where=None):
    """A constant stage of ones (or ones where ``where(*index)`` holds, zeros elsewhere)."""
    from tvm import te, tirx

    one, zero = tirx.const(1, dtype), tirx.const(0, dtype)
    return te.compute(shape, (lambda *i: one) if where is None else
                      (lambda *i: tirx.Select(where(*i), one, zero)), name=name)


def _f64(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64)


class _RowStatistic(Operator):
    """One float per row of ``x`` [M, K]: ``y`` [M] in ``acc_dtype``."""

    Params = FloatRowsParams

    def inputs(self, p: RowsParams) -> list[TensorInfo]:
        return _rows(p)

    def output_shape(self, p: RowsParams) -> tuple[int, ...]:
        return (p.M,)


class Mean(_RowStatistic):
    """Row mean ``y[M] = sum_k x[M, K] / K``, the sum a product with a vector of ones."""

    name = "mean"
    description = "row mean y[M] = mean_k x[M,K], as x @ ones[K]"

    def main_block(self, p: RowsParams) -> str:
        return "row_sum"

    def te(self, p: RowsParams) -> list:
        from tvm import te

        acc = p.acc_dtype
        x = te.placeholder((p.M, p.K), p.data_dtype, name="x")
        ones = _ones((p.K,), p.weight_dtype, "ones")
        k = te.reduce_axis((0, p.K), name="k")
        total = te.compute((p.M,), lambda m: te.sum(
            x[m, k].astype(acc) * ones[k].astype(acc), axis=k), name="row_sum")
        return [x, te.compute((p.M,), lambda m: total[m] / p.K, name="mean")]

    def reference(self, p: RowsParams, inputs: list[np.ndarray]) -> np.ndarray:
        return _f64(inputs[0]).mean(axis=1).astype(numpy_dtype(p.acc_dtype))

    def magnitude(self, p: RowsParams, inputs: list[np.ndarray]) -> np.ndarray:
        return np.abs(_f64(inputs[0])).mean(axis=1)

    def macs(self, p: RowsParams) -> int:
        return p.M * p.K


class Variance(_RowStatistic):
    """Row variance ``y[M] = mean_k x^2 - (mean_k x)^2`` (population), one product with ones.

    The stage ``moments`` [M, 2, K] holds x and x^2 (in the accumulator dtype) and
    ``row_moments`` [M, 2] their sums, one GEMV-shaped reduction over both.
    """

    name = "variance"
    description = "row variance y[M] = var_k x[M,K], both moments as one product with ones"

    def main_block(self, p: RowsParams) -> str:
        return "row_moments"

    def te(self, p: RowsParams) -> list:
        from tvm import te, tirx

        acc = p.acc_dtype
        x = te.placeholder((p.M, p.K), p.data_dtype, name="x")
        moments = te.compute((p.M, 2, p.K), lambda m, j, k: tirx.Select(
            j == 0, x[m, k].astype(acc), x[m, k].astype(acc) * x[m, k].astype(acc)),
            name="moments")
        ones = _ones((p.K,), acc, "ones")
        k = te.reduce_axis((0, p.K), name="k")
        sums = te.compute((p.M, 2), lambda m, j: te.sum(
            moments[m, j, k] * ones[k], axis=k), name="row_moments")
        return [x, te.compute((p.M,), lambda m: sums[m, 1] / p.K
                              - (sums[m, 0] / p.K) * (sums[m, 0] / p.K), name="variance")]

    def reference(self, p: RowsParams, inputs: list[np.ndarray]) -> np.ndarray:
        return _f64(inputs[0]).var(axis=1).astype(numpy_dtype(p.acc_dtype))

    def magnitude(self, p: RowsParams, inputs: list[np.ndarray]) -> np.ndarray:
        # The two sums' rounding, carried through y = s2 / K - (s1 / K)^2.
        x = np.abs(_f64(inputs[0]))
        first = x.mean(axis=1)
        return (x * x).mean(axis=1) + 2 * first * first

    def macs(self, p: RowsParams) -> int:
        return 2 * p.M * p.K


class Scan(Operator):
    """Inclusive prefix sum along rows, ``y[m, i] = sum_{k <= i} x[m, k]``, as ``x @ U``
    with ``U[k, i] = 1 where k <= i``.

    Input: ``x`` [M, K]. Output ``y`` [M, K] in ``acc_dtype`` (int32 for int8: exact).
    """

    name = "scan"
    description = "prefix sum along rows y[M,K] = cumsum_k x[M,K], as x @ triangle of ones"
    Params = RowsParams

    def inputs(self, p: RowsParams) -> list[TensorInfo]:
        return _rows(p)

    def output_shape(self, p: RowsParams) -> tuple[int, ...]:
        return (p.M, p.K)

    def te(self, p: RowsParams) -> list:
        from tvm import te

        acc = p.acc_dtype
        x = te.placeholder((p.M, p.K), p.data_dtype, name="x")
        upper = _ones((p.K, p.K), p.weight_dtype, "upper", where=lambda k, i: k <= i)
        k = te.reduce_axis((0, p.K), name="k")
        return [x, te.compute((p.M, p.K), lambda m, i: te.sum(
            x[m, k].astype(acc) * upper[k, i].astype(acc), axis=k), name="scan")]

    def reference(self, p: RowsParams, inputs: list[np.ndarray]) -> np.ndarray:
        x = inputs[0]
        math = x.astype(np.int64) if np.issubdtype(x.dtype, np.integer) else _f64(x)
        return np.cumsum(math, axis=1).astype(numpy_dtype(p.acc_dtype))

    def magnitude(self, p: RowsParams, inputs: list[np.ndarray]) -> np.ndarray:
        return np.cumsum(np.abs(_f64(inputs[0])), axis=1)

    def macs(self, p: RowsParams) -> int:
        # The additions of a sequential scan, so that throughputs compare with a library's
        # cumsum and stay under the peak: the product form issues K times as many.
        return p.M * p.K
