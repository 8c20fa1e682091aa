"""Output buffers filled with garbage before a correctness run.

A program that skips or misplaces its reduction's init step still "matches" when its
output starts at zero, since zero is exactly what the init step writes. So every
output (and workspace) a check allocates starts as something a correct program must
overwrite: NaN for floats (any arithmetic that reads it stays NaN), and for integers a
fixed random pattern (no value an accumulation could start from by chance).
"""

from __future__ import annotations

import numpy as np

from ..workloads.operator import numpy_dtype

SEED = 0x6A7BA6E  # fixed: a failing check can be reproduced


def garbage(shape: tuple[int, ...], dtype: str | np.dtype) -> np.ndarray:
    """An array of ``shape`` and ``dtype`` (a TVM or numpy dtype name) a correct program
    must overwrite entirely: NaN for floats, a random bit pattern for integers."""
    dt = numpy_dtype(dtype) if isinstance(dtype, str) else np.dtype(dtype)
    if dt.kind == "f" or dt.name == "bfloat16":
        return np.full(shape, np.nan, dtype=dt)
    if dt.kind in "iu":
        raw = np.random.default_rng(SEED).integers(0, 256, size=(*shape, dt.itemsize),
                                                   dtype=np.uint8)
        return raw.view(dt).reshape(shape)
    raise ValueError(f"no garbage pattern for dtype {dt}")


def garbage_output(workload) -> np.ndarray:
    """A garbage-filled output buffer for ``workload`` (its shape and accumulator dtype)."""
    return garbage(workload.output_shape, workload.output_dtype)
