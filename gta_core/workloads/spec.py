"""Workload specs: ``OP:key=value,...`` text <-> a validated :class:`Workload`."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from pydantic import ValidationError

from .operator import Operator, OperatorParams, error_bound, numpy_dtype


class SpecError(ValueError):
    """A workload spec a user typed that cannot be used; the message is one line."""


def throughput_unit(dtype: str) -> str:
    """What throughput in ``dtype`` is counted in: operations for integer work, FLOPs otherwise."""
    return "GOPS" if dtype.startswith("int") else "GFLOP/s"


@dataclass(frozen=True)
class Expected:
    """What a correct program outputs: the reference, and per output the largest error
    it may have (None: integers, which must match exactly). ``ties``: integers rounded
    from float arithmetic may be one off on this fraction of the outputs at most (a value
    on a rounding tie goes either way when the compiler contracts a multiply and an add
    into one fused multiply-add in one program and not in the other)."""

    value: np.ndarray
    bound: np.ndarray | None
    ties: float = 0.0


@dataclass(frozen=True)
class Workload:
    """An operator with concrete parameters."""

    operator: Operator
    params: OperatorParams

    @cached_property
    def spec(self) -> str:
        """Canonical spec text: every key in declaration order, defaults included."""
        values = self.params.model_dump(exclude_none=True)
        return f"{self.operator.name}:" + ",".join(
            f"{k}={values[k]}" for k in spec_keys(self.operator) if k in values)

    def __str__(self) -> str:
        return self.spec

    @property
    def unit(self) -> str:
        return throughput_unit(self.params.dtype)

    @cached_property
    def constant_inputs(self) -> frozenset[int]:
        """Positions of the inputs held constant (``weights=constant``: the weights), whose
        layout the program makes once, ahead of its calls (:mod:`gta_core.weight_prepack`)."""
        if self.params.weights != "constant":
            return frozenset()
        return frozenset(i for i, info in enumerate(self.operator.inputs(self.params))
                         if info.role == "weight")

    def te(self) -> list:
        return self.operator.te(self.params)

    def prim_func(self):
        """The operator as a TensorIR PrimFunc (inputs then output)."""
        from tvm import te

        return te.create_prim_func(self.te())

    @cached_property
    def func(self):
        """:meth:`prim_func`, made once (what a model's function workload holds)."""
        return self.prim_func()

    @property
    def main_block(self) -> str:
        return self.operator.main_block(self.params)

    def random_inputs(self, seed: int = 0) -> list[np.ndarray]:
        return self.operator.random_inputs(self.params, seed)

    def reference(self, inputs: list[np.ndarray]) -> np.ndarray:
        return self.operator.reference(self.params, inputs)

    @property
    def flops(self) -> int:
        return self.operator.flops(self.params)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.operator.output_shape(self.params)

    def expected(self, inputs: list[np.ndarray]) -> Expected:
        """The reference output for ``inputs`` and the error each output may have."""
        value = self.reference(inputs)
        if self.params.acc_dtype == "int32":
            return Expected(value, None)
        return Expected(value, error_bound(self.params,
                                           self.operator.magnitude(self.params, inputs)))

    @property
    def output_dtype(self) -> str:
        return self.params.acc_dtype

    def mismatch(self, actual: np.ndarray, expected: Expected) -> str | None:
        """Why ``actual`` is not the operator's output, or None when it matches."""
        return output_mismatch(actual, expected)


def output_mismatch(actual: np.ndarray, expected: Expected) -> str | None:
    """Why ``actual`` is not the ``expected`` output, or None when it matches.

    NaN anywhere is a mismatch: checks start from a NaN-filled output, so a NaN
    left is an output the program never wrote.
    """
    want = expected.value
    if actual.shape != want.shape:
        return f"shape {actual.shape} != expected {want.shape}"
    got, want = actual.astype(np.float64), want.astype(np.float64)
    error = np.abs(got - want)
    bound = 0.0 if expected.bound is None else expected.bound
    bad = ~(error <= bound)  # NaN compares False: unwritten outputs are bad
    flips = bad & (error <= 1)
    if expected.ties and flips.sum() <= expected.ties * bad.size:
        bad &= ~flips
    if not bad.any():
        return None
    if np.isnan(got).all():
        return f"none of the {bad.size} outputs was written (all still NaN)"
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    allowed = "exact" if expected.bound is None else f"allowed {expected.bound[where]:.3g}"
    if expected.ties:
        allowed += f" but one off on {expected.ties:.2g} of the outputs"
    return (f"{int(bad.sum())} of {bad.size} outputs differ (first at {where}: "
            f"{got[where]} != {want[where]}, {allowed}; max error {np.nanmax(error):.3g})")


def spec_keys(operator: Operator) -> list[str]:
    """The keys a spec of ``operator`` takes: its own first, then dtype, out_dtype and
    weights."""
    common = list(OperatorParams.model_fields)
    return [k for k in operator.Params.model_fields if k not in common] + common


def parse_workload(text: str, operators: Mapping[str, Operator]) -> Workload:
    """Parse ``OP:key=value,...`` against the registered ``operators``.

    Raises :class:`SpecError` with one line naming the bad part and what is
    accepted.
    """
    text = text.strip()
    if not text:
        raise SpecError(f"empty workload spec; expected OP:key=value,... with OP one of "
                        f"{', '.join(sorted(operators))}")
    op_name, _, rest = text.partition(":")
    op_name = op_name.strip()
    operator = operators.get(op_name)
    if operator is None:
        raise SpecError(f"unknown operator {op_name!r} in {text!r}; accepted: "
                        f"{', '.join(sorted(operators))}")
    fields = spec_keys(operator)
    accepted = ", ".join(fields)
    values: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = (s.strip() for s in item.partition("="))
        if not eq or not key or not value:
            raise SpecError(f"{op_name}: {item!r} is not key=value; keys: {accepted}")
        if key not in fields:
            raise SpecError(f"{op_name}: unknown key {key!r}; accepted: {accepted}")
        if key in values:
            raise SpecError(f"{op_name}: key {key!r} given twice")
        values[key] = value
    try:
        # Params are strict: only whole numbers become ints, so 'M=1.0' is refused.
        params = operator.Params(**{k: int(v) if re.fullmatch(r"[+-]?\d+", v) else v
                                    for k, v in values.items()})
    except ValidationError as exc:
        raise SpecError(f"{op_name}: {_first_error(exc, values, accepted)}") from None
    workload = Workload(operator, params)
    if params.weights and not workload.constant_inputs:
        raise SpecError(f"{op_name}: weights={params.weights}, but {op_name} has no weight "
                        "input (its inputs are all data)")
    _check_fits(workload, text)
    return workload


def check_bytes(workload: Workload) -> int:
    """What checking one program of ``workload`` holds in memory: its inputs, its output and
    the float64 reference output the check compares it with."""
    p = workload.params
    inputs = sum(math.prod(t.shape) * numpy_dtype(t.dtype).itemsize
                 for t in workload.operator.inputs(p))
    outputs = math.prod(workload.operator.output_shape(p))
    return inputs + outputs * (numpy_dtype(p.acc_dtype).itemsize + 8)


def _check_fits(workload: Workload, text: str) -> None:
    """Refuse, before anything is allocated, a workload whose check could not fit in memory."""
    from ..host import memory_bytes

    need, have = check_bytes(workload), memory_bytes()
    if have and need > have:
        raise SpecError(f"{text!r} needs {need / 2**30:.1f} GiB for its tensors (inputs, output "
                        f"and the reference to check it against); this machine has "
                        f"{have / 2**30:.1f} GiB")


def _first_error(exc: ValidationError, values: dict[str, str], accepted: str) -> str:
    error = exc.errors()[0]
    key = str(error["loc"][0]) if error["loc"] else ""
    if error["type"] == "missing":
        return f"missing key {key!r}; keys: {accepted}"
    if key in values:
        reason = error["msg"]
        if error["type"] in ("int_parsing", "int_from_float", "int_type"):
            reason = "it must be an integer"
        elif error["type"] == "greater_than":
            reason = "it must be a positive integer"
        elif error["type"] == "greater_than_equal":
            reason = f"it must be at least {error['ctx']['ge']}"
        elif error["type"] == "literal_error":
            reason = f"accepted: {error['ctx']['expected']}"
        return f"bad value {key}={values[key]!r}: {reason}"
    # A model validator's ShapeError arrives wrapped as a value_error.
    cause = error.get("ctx", {}).get("error")
    return str(cause) if cause is not None else error["msg"]
