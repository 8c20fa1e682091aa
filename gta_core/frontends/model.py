"""What a model is once imported: a Relax module, its inputs, and where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ModelError(ValueError):
    """A model a user handed in that cannot be imported as given; the message is one line."""


@dataclass(frozen=True)
class ModelInput:
    """One input the compiled model takes: its name, concrete shape and dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass
class Model:
    """A network in Relax (weights bound as constants) and how to feed it.

    ``source`` says where it came from (``onnx`` or ``torch``); ``origin`` keeps what
    the outputs are checked against end to end: the ONNX file's path, or the PyTorch
    module itself. ``quantized`` says, for a quantized (QDQ) model, which layers run as
    integer programs and which stay float (:mod:`.quantized`); None for a float model.
    """

    name: str
    mod: Any  # tvm.IRModule, "main" takes the inputs in order
    inputs: list[ModelInput]
    source: str
    origin: Any = field(repr=False, default=None)
    quantized: Any = None  # QuantizedSummary

    def footprint_bytes(self) -> int:
        """Bytes of its inputs and constants (weights): what one inference reads at least."""
        import math

        import tvm

        def size(shape, dtype) -> int:
            return math.prod(int(d) for d in shape) * tvm.DataType(dtype).bits // 8

        tensors = []  # a relax constant holds its tensor as ``value``; an IntImm, a number

        def visit(expr) -> None:
            value = getattr(expr, "value", None)
            if isinstance(expr, tvm.ir.expr.Constant) and hasattr(value, "shape"):
                tensors.append(size(value.shape, value.dtype))

        tvm.relax.analysis.post_order_visit(self.mod["main"], visit)
        return sum(tensors) + sum(size(i.shape, i.dtype) for i in self.inputs)


def parse_input_shapes(items: list[str] | tuple[str, ...] | None) -> dict[str, tuple[int, ...]]:
    """``["x=1x3x224x224", ...]`` (``--input-shape``) as {name: shape}; ModelError on bad text."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in items or ():
        name, eq, dims = item.partition("=")
        name = name.strip()
        try:
            shape = tuple(int(d) for d in dims.strip().split("x"))
        except ValueError:
            shape = ()
        if not eq or not name or not shape or any(d < 1 for d in shape):
            raise ModelError(f"--input-shape {item!r} is not NAME=DIMxDIM... with positive "
                             "dimensions (e.g. x=1x3x224x224)")
        if name in shapes:
            raise ModelError(f"--input-shape gives {name!r} twice")
        shapes[name] = shape
    return shapes
