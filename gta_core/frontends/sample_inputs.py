"""Inputs a model's check runs on: random, but inside what the model can take.

Float inputs are uniform in [-1, 1). An integer input is an index or a mask in the models
GTA meets (token ids, positions, attention masks): where it reaches a gather (``take``:
an embedding, ONNX ``Gather``) through casts and reshapes, its values are drawn from the
indices that gather has, so no lookup reads outside its table; elsewhere it is all ones
(a mask that masks nothing: with every position masked, attention's softmax divides zero
by zero in the reference too). Quantized data (8-bit inputs) spans its whole range.
"""

from __future__ import annotations

import numpy as np

from ..workloads.operator import random_array
from .relax_exprs import op_name, static_shape

# Ops an index passes through unchanged in meaning on its way to a gather.
_CARRIERS = {"relax.astype", "relax.reshape", "relax.expand_dims", "relax.squeeze",
             "relax.permute_dims", "relax.broadcast_to", "relax.flatten"}


def index_bounds(func) -> dict[int, int]:
    """For each parameter of ``func`` (Relax ``main``) that a ``take`` reads as its indices,
    by position: the fewest entries along the axis any such ``take`` gathers from."""
    from tvm import relax

    source = {param: n for n, param in enumerate(func.params)}
    bounds: dict[int, int] = {}
    for block in func.body.blocks:
        for binding in block.bindings:
            value = binding.value
            name = op_name(value)
            if name in _CARRIERS and value.args[0] in source:
                source[binding.var] = source[value.args[0]]
            elif name == "relax.where" and value.args[1] in source and \
                    source.get(value.args[2]) == source[value.args[1]]:
                source[binding.var] = source[value.args[1]]  # ONNX's negative indices wrapped
            elif name == "relax.add" and value.args[0] in source:
                source[binding.var] = source[value.args[0]]  # ... by adding the table's size
            elif name == "relax.take" and value.args[1] in source:
                shape = static_shape(value.args[0])
                if shape:
                    axis = int(value.attrs.axis) if value.attrs.axis is not None else 0
                    n = source[value.args[1]]
                    extent = shape[axis] if value.attrs.axis is not None else int(np.prod(shape))
                    bounds[n] = min(bounds.get(n, extent), extent)
            elif isinstance(value, relax.Var) and value in source:
                source[binding.var] = source[value]
    return bounds


def sample_inputs(model, seed: int = 0) -> list[np.ndarray]:
    """One array per input of ``model`` (a :class:`~.model.Model`), as the module says."""
    rng = np.random.default_rng(seed)
    bounds = index_bounds(model.mod["main"])
    arrays = []
    for n, spec in enumerate(model.inputs):
        dtype = np.dtype(spec.dtype) if spec.dtype != "bool" else np.dtype(bool)
        if dtype.kind in "iu" and dtype.itemsize > 1:
            arrays.append(rng.integers(0, bounds[n], size=spec.shape).astype(dtype)
                          if n in bounds else np.ones(spec.shape, dtype))
        else:
            arrays.append(random_array(spec.shape, spec.dtype, rng))
    return arrays
