"""What an operator is: typed parameters, a TE definition, a numpy reference.

An operator is registered through the ``gta_register_workloads`` hook; the core's
own operators go through the same hook as a third party's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

WorkloadDtype = Literal["float32", "float16", "bfloat16", "int8", "int8_s8s8", "int8_u8u8"]

# dtype key -> (activation dtype, weight dtype, output/accumulator dtype).
# int8 means u8 activations x s8 weights accumulating in int32, as VNNI computes (and what a
# quantized model with uint8 activations runs); int8_s8s8 and int8_u8u8 are the signed and
# the unsigned products (Arm's sdot and udot, a model quantized symmetrically).
DTYPE_ROLES: dict[str, tuple[str, str, str]] = {
    "float32": ("float32", "float32", "float32"),
    "float16": ("float16", "float16", "float32"),
    "bfloat16": ("bfloat16", "bfloat16", "float32"),
    "int8": ("uint8", "int8", "int32"),
    "int8_s8s8": ("int8", "int8", "int32"),
    "int8_u8u8": ("uint8", "uint8", "int32"),
}
# Output dtypes a user may ask for instead of the default one.
OUT_DTYPES: dict[str, tuple[str, ...]] = {
    "float32": ("float32",),
    "float16": ("float32", "float16"),
    "bfloat16": ("float32",),
    "int8": ("int32",),
    "int8_s8s8": ("int32",),
    "int8_u8u8": ("int32",),
}


class ShapeError(ValueError):
    """Parameters that are well typed but describe an impossible operator."""


class OperatorParams(BaseModel):
    """Base of every operator's parameters: extents, options and ``dtype``.

    Subclasses declare their keys as fields (required extents as
    ``PositiveInt``, options with defaults) and check impossible shapes in a
    ``model_validator`` that raises :class:`ShapeError`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    dtype: WorkloadDtype = "float32"
    out_dtype: str | None = None
    # "constant": the weight inputs are a deployed model's constants, laid out once ahead
    # of the calls (as `gta compile --model` does, and onnxruntime and oneDNN with
    # prepacked weights), so the timed program is the compute alone.
    weights: Literal["constant"] | None = None

    @model_validator(mode="after")
    def _out_dtype_allowed(self) -> OperatorParams:
        if self.out_dtype is not None and self.out_dtype not in OUT_DTYPES[self.dtype]:
            raise ShapeError(
                f"out_dtype={self.out_dtype} is not available for dtype={self.dtype}; "
                f"accepted: {', '.join(OUT_DTYPES[self.dtype])}"
            )
        return self

    @property
    def data_dtype(self) -> str:
        return DTYPE_ROLES[self.dtype][0]

    @property
    def weight_dtype(self) -> str:
        return DTYPE_ROLES[self.dtype][1]

    @property
    def acc_dtype(self) -> str:
        return self.out_dtype or DTYPE_ROLES[self.dtype][2]


@dataclass(frozen=True)
class TensorInfo:
    """One input of an operator: its shape, dtype and role."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    role: Literal["data", "weight"]


class Operator(ABC):
    """An operator family: ``gemm``, ``conv2d``...

    Subclasses set ``name``, ``description`` and ``Params`` and implement the
    abstract methods. Inputs come in the order :meth:`inputs` lists them (data,
    then weight); the TE function takes the same order and returns the output
    last. The main stage multiplies data by weight in that order: TVM's
    tensorize matches a block's reads by position.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[OperatorParams]]

    @abstractmethod
    def inputs(self, p: OperatorParams) -> list[TensorInfo]:
        """Shapes, dtypes and roles of the inputs."""

    @abstractmethod
    def output_shape(self, p: OperatorParams) -> tuple[int, ...]:
        """Shape of the output (its dtype is ``p.acc_dtype``)."""

    @abstractmethod
    def te(self, p: OperatorParams) -> list:
        """TE tensors: the input placeholders then the output, in order."""

    @abstractmethod
    def reference(self, p: OperatorParams, inputs: list[np.ndarray]) -> np.ndarray:
        """The output computed with numpy from ``inputs`` (float64 or int64 math)."""

    def magnitude(self, p: OperatorParams, inputs: list[np.ndarray]) -> np.ndarray:
        """Per output, the sum of |a*b| over its reduction: what its rounding error scales
        with. The reference on the inputs' absolute values, which is exactly that for the
        bilinear operators here; an operator that is not bilinear overrides it."""
        return self.reference(p, [np.abs(x.astype(np.float64)) for x in inputs])

    @abstractmethod
    def macs(self, p: OperatorParams) -> int:
        """Multiply-accumulates of the operator; FLOPs (or integer OPs) are twice this."""

    def main_block(self, p: OperatorParams) -> str:
        """Name of the TE stage that does the operator's arithmetic (what mappings map)."""
        return self.name

    def flops(self, p: OperatorParams) -> int:
        return 2 * self.macs(p)

    def random_inputs(self, p: OperatorParams, seed: int = 0) -> list[np.ndarray]:
        """Inputs over each dtype's full range (int8: u8 0..255, s8 -128..127)."""
        rng = np.random.default_rng(seed)
        return [random_array(info.shape, info.dtype, rng) for info in self.inputs(p)]


def numpy_dtype(dtype: str) -> np.dtype:
    """The numpy dtype for a TVM dtype name (bfloat16 through ml_dtypes)."""
    if dtype == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(dtype)


def random_array(shape: tuple[int, ...], dtype: str, rng: np.random.Generator) -> np.ndarray:
    if dtype in ("uint8", "int8", "int32"):
        info = np.iinfo(dtype)
        low, high = (info.min, info.max) if dtype != "int32" else (-1000, 1000)
        return rng.integers(low, high, size=shape, endpoint=True).astype(dtype)
    return rng.uniform(-1.0, 1.0, size=shape).astype(numpy_dtype(dtype))


# Units of the accumulator's rounding (unit roundoff) allowed per unit of sum(|a*b|).
# Measured: sequential float32 sums of 64-4096 terms reached 3.2 units (2048 outputs
# each), float32 BLAS GEMM 256^3 4.9 on 2 of 65536 outputs. One dropped term moves an
# output by |a*b|, on average sum(|a*b|) / K: far outside 16 units for any K < 10^6.
ERROR_UNITS = 16
UNIT_ROUNDOFF = {"float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}


def error_bound(p: OperatorParams, magnitude: np.ndarray) -> np.ndarray | None:
    """The largest error an output may have: None for integers (they must match exactly).

    A float output is accepted within ``ERROR_UNITS`` units of the accumulator's unit
    roundoff times ``magnitude``, the sum of |a*b| over its reduction: the summation
    orders measured stay well inside that (see ERROR_UNITS), while dropping one term
    changes an output by one |a*b| (a bound on the output's own size, or on the reduction
    length, hides that at large K, and rejects correct outputs that cancel to near zero).
    """
    if p.acc_dtype == "int32":
        return None
    return ERROR_UNITS * UNIT_ROUNDOFF[p.acc_dtype] * magnitude.astype(np.float64)
