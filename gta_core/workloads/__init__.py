"""The core's operator library and the workload spec language."""

from __future__ import annotations

from .conv import Conv1d, Conv2d, Conv2dTranspose, Conv3d, DepthwiseConv2d
from .matmul import BatchGemm, Gemm, Gemv
from .operator import (
    Operator,
    OperatorParams,
    ShapeError,
    TensorInfo,
    error_bound,
    numpy_dtype,
    random_array,
)
from .reduction import Mean, Scan, Variance
from .spec import Expected, SpecError, Workload, parse_workload, throughput_unit

BUILTIN_OPERATORS: tuple[Operator, ...] = (
    Gemm(),
    BatchGemm(),
    Gemv(),
    Conv1d(),
    Conv2d(),
    DepthwiseConv2d(),
    Conv3d(),
    Conv2dTranspose(),
    Mean(),
    Variance(),
    Scan(),
)

__all__ = [
    "throughput_unit",
    "BUILTIN_OPERATORS",
    "BatchGemm",
    "Conv1d",
    "Conv2d",
    "Conv2dTranspose",
    "Conv3d",
    "DepthwiseConv2d",
    "Expected",
    "Gemm",
    "Gemv",
    "Mean",
    "Scan",
    "Variance",
    "Operator",
    "OperatorParams",
    "ShapeError",
    "SpecError",
    "TensorInfo",
    "Workload",
    "numpy_dtype",
    "error_bound",
    "parse_workload",
    "random_array",
]
