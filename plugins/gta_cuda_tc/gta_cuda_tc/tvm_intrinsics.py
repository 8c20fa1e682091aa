"""CUDA tensor-core intrinsics for TVM's TensorIR, registered on import.

Importing this module registers, for every (m, n, k, in_dtype, out_dtype) in ``WMMA_SHAPES``,
the five wmma intrinsics that ``names.wmma_names`` names:

- ``init``: fill a ``wmma.accumulator`` [m, n] fragment with zero;
- ``load_a`` / ``load_b``: row-major A [m, k] / B [k, n] from "shared" into
  ``wmma.matrix_a`` / ``wmma.matrix_b`` (not transposed);
- ``compute``: C [m, n] += A [m, k] * B [k, n] (``wmma::mma_sync``), inputs cast to out_dtype;
- ``store``: ``wmma.accumulator`` [m, n] to "shared", row-major.

TVM registers only 16x16x16 under its own names; its generators are shape-generic (fragment
index from the buffer's elem_offset, stride and tile shape), so 32x8x16 and 8x32x16 reuse them.

It also imports ``tvm.s_tir.tensor_intrin.cuda`` (~17 s here), whose import registers TVM's own
ldmatrix / mma.sync intrinsics that ``names.MMA_F16_F32`` and ``names.MMA_F16_F16`` name.
"""

from __future__ import annotations

from tvm.s_tir import TensorIntrin

# Importing this module registers TVM's mma_* / wmma_* intrinsics (the names.MMA_* groups).
from tvm.s_tir.tensor_intrin import cuda as _tvm_cuda

from gta_cuda_tc.names import wmma_names

# (m, n, k, in_dtype, out_dtype): the fragment shapes CUDA's wmma API offers for these dtypes.
WMMA_SHAPES: list[tuple[int, int, int, str, str]] = [
    *[
        (m, n, k, "float16", out)
        for (m, n, k) in ((16, 16, 16), (32, 8, 16), (8, 32, 16))
        for out in ("float32", "float16")
    ],
    (16, 16, 16, "int8", "int32"),
]

_SHARED = "shared"


def _register(m: int, n: int, k: int, in_dtype: str, out_dtype: str) -> None:
    names = wmma_names(m, n, k, in_dtype, out_dtype)
    pairs = {
        "init": _tvm_cuda.get_wmma_fill_intrin(m, n, k, out_dtype),
        "load_a": _tvm_cuda.get_wmma_load_intrin(m, n, k, in_dtype, _SHARED, False, False),
        "load_b": _tvm_cuda.get_wmma_load_intrin(m, n, k, in_dtype, _SHARED, True, False),
        "compute": _tvm_cuda.get_wmma_sync_intrin(m, n, k, in_dtype, out_dtype, False),
        "store": _tvm_cuda.get_wmma_store_intrin(m, n, k, out_dtype, _SHARED),
    }
    for role, (desc, impl) in pairs.items():
        # override=True: a re-import (importlib.reload, a second plugin load) re-registers the
        # identical pair instead of raising "already registered".
        TensorIntrin.register(names[role], desc, impl, override=True)


for _shape in WMMA_SHAPES:
    _register(*_shape)
