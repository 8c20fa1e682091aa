"""Matrix products: ``gemm``, ``batch_gemm`` and ``gemv``.

Every operator casts both operands to the accumulator dtype before
multiplying, so int8 multiplies u8 x s8 in int32 and float16 / bfloat16
accumulate in float32 unless ``out_dtype`` asks otherwise.
"""

from __future__ import annotations

import numpy as np
from pydantic import PositiveInt

from .operator import Operator, OperatorParams, TensorInfo, numpy_dtype


def _math(a: np.ndarray) -> np.ndarray:
    """``a`` in the dtype the references compute in: int64 for ints, float64 otherwise."""
    return a.astype(np.int64 if np.issubdtype(a.dtype, np.integer) else np.float64)


def _result(out: np.ndarray, p: OperatorParams) -> np.ndarray:
    return out.astype(numpy_dtype(p.acc_dtype))


class GemmParams(OperatorParams):
    M: PositiveInt
    N: PositiveInt
    K: PositiveInt


class Gemm(Operator):
    """Matrix multiplication ``C[M, N] = A[M, K] @ B[K, N]``.

    Inputs: ``A`` [M, K] (data, ``data_dtype``), ``B`` [K, N] (weight,
    ``weight_dtype``). Output ``C`` [M, N] in ``acc_dtype``; both operands are
    cast to ``acc_dtype`` before the multiply.
    """

    name = "gemm"
    description = "matrix multiplication C[M,N] = A[M,K] @ B[K,N]"
    Params = GemmParams

    def inputs(self, p: GemmParams) -> list[TensorInfo]:
        return [
            TensorInfo("A", (p.M, p.K), p.data_dtype, "data"),
            TensorInfo("B", (p.K, p.N), p.weight_dtype, "weight"),
        ]

    def output_shape(self, p: GemmParams) -> tuple[int, ...]:
        return (p.M, p.N)

    def te(self, p: GemmParams) -> list:
        from tvm import te

        a = te.placeholder((p.M, p.K), p.data_dtype, name="A")
        b = te.placeholder((p.K, p.N), p.weight_dtype, name="B")
        k = te.reduce_axis((0, p.K), name="k")
        acc = p.acc_dtype
        c = te.compute(
            (p.M, p.N),
            lambda m, n: te.sum(a[m, k].astype(acc) * b[k, n].astype(acc), axis=k),
            name="gemm",
        )
        return [a, b, c]

    def reference(self, p: GemmParams, inputs: list[np.ndarray]) -> np.ndarray:
        a, b = (_math(x) for x in inputs)
        return _result(a @ b, p)

    def macs(self, p: GemmParams) -> int:
        return p.M * p.N * p.K


class BatchGemmParams(OperatorParams):
    B: PositiveInt
    M: PositiveInt
    N: PositiveInt
    K: PositiveInt


class BatchGemm(Operator):
    """Batched matrix multiplication ``C[b] = A[b] @ W[b]`` for each of B batches.

    Inputs: ``A`` [B, M, K] (data), ``W`` [B, K, N] (weight). Output ``C``
    [B, M, N] in ``acc_dtype``; both operands are cast to ``acc_dtype`` before
    the multiply.
    """

    name = "batch_gemm"
    description = "batched matrix multiplication C[B,M,N] = A[B,M,K] @ W[B,K,N]"
    Params = BatchGemmParams

    def inputs(self, p: BatchGemmParams) -> list[TensorInfo]:
        return [
            TensorInfo("A", (p.B, p.M, p.K), p.data_dtype, "data"),
            TensorInfo("W", (p.B, p.K, p.N), p.weight_dtype, "weight"),
        ]

    def output_shape(self, p: BatchGemmParams) -> tuple[int, ...]:
        return (p.B, p.M, p.N)

    def te(self, p: BatchGemmParams) -> list:
        from tvm import te

        a = te.placeholder((p.B, p.M, p.K), p.data_dtype, name="A")
        w = te.placeholder((p.B, p.K, p.N), p.weight_dtype, name="W")
        k = te.reduce_axis((0, p.K), name="k")
        acc = p.acc_dtype
        c = te.compute(
            (p.B, p.M, p.N),
            lambda b, m, n: te.sum(a[b, m, k].astype(acc) * w[b, k, n].astype(acc), axis=k),
            name="batch_gemm",
        )
        return [a, w, c]

    def reference(self, p: BatchGemmParams, inputs: list[np.ndarray]) -> np.ndarray:
        a, w = (_math(x) for x in inputs)
        return _result(np.matmul(a, w), p)

    def macs(self, p: BatchGemmParams) -> int:
        return p.B * p.M * p.N * p.K


class GemvParams(OperatorParams):
    M: PositiveInt
    K: PositiveInt


class Gemv(Operator):
    """Matrix-vector product ``y[M] = A[M, K] @ x[K]``.

    Inputs: ``x`` [K] (data) then ``A`` [M, K] (weight): the matrix plays the
    weight, as in a fully connected layer with batch 1. Output ``y`` [M] in
    ``acc_dtype``; both operands are cast to ``acc_dtype`` before the multiply.
    """

    name = "gemv"
    description = "matrix-vector product y[M] = A[M,K] @ x[K]"
    Params = GemvParams

    def inputs(self, p: GemvParams) -> list[TensorInfo]:
        return [
            TensorInfo("x", (p.K,), p.data_dtype, "data"),
            TensorInfo("A", (p.M, p.K), p.weight_dtype, "weight"),
        ]

    def output_shape(self, p: GemvParams) -> tuple[int, ...]:
        return (p.M,)

    def te(self, p: GemvParams) -> list:
        from tvm import te

        x = te.placeholder((p.K,), p.data_dtype, name="x")
        a = te.placeholder((p.M, p.K), p.weight_dtype, name="A")
        k = te.reduce_axis((0, p.K), name="k")
        acc = p.acc_dtype
        y = te.compute(
            (p.M,),
            lambda m: te.sum(x[k].astype(acc) * a[m, k].astype(acc), axis=k),
            name="gemv",
        )
        return [x, a, y]

    def reference(self, p: GemvParams, inputs: list[np.ndarray]) -> np.ndarray:
        x, a = (_math(t) for t in inputs)
        return _result(a @ x, p)

    def macs(self, p: GemvParams) -> int:
        return p.M * p.K
