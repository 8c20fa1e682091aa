"""Names of the TVM tensor intrinsics this plugin registers, without importing TVM.

The intrinsic declarations (plugin.py) need the names at load time, when TVM's
CUDA intrinsic module (a ~17 s import here) must not be imported yet.
"""

from __future__ import annotations

# The TIR pipeline tvm_intrinsics registers (mma.sync's warp memory needs it).
WARP_MMA_PIPELINE = "gta_warp_mma"

SHORT = {"float16": "f16", "float32": "f32", "int8": "s8", "int32": "s32"}


def wmma_names(m: int, n: int, k: int, in_dtype: str, out_dtype: str) -> dict[str, str]:
    """The wmma tensor intrinsics of one fragment shape and dtype pair, by role."""
    shape = f"{m}x{n}x{k}"
    i, o = SHORT[in_dtype], SHORT[out_dtype]
    return {
        "init": f"gta_wmma_fill_{shape}_{o}",
        "load_a": f"gta_wmma_load_{shape}_{i}_a_shared",
        "load_b": f"gta_wmma_load_{shape}_{i}_b_shared",
        "compute": f"gta_wmma_sync_{shape}_{i}{i}{o}",
        "store": f"gta_wmma_store_{shape}_{o}_shared",
    }


# mma.sync: TVM's own ldmatrix/mma intrinsics, 16x16x16 (fp16) or 16x16x32 (int8) tiles
# issued as two m16n8k16 / m16n8k32.
MMA_F16_F32 = {
    "init": "mma_fill_16x16_f32",
    "load_a": "mma_ldmatrix_f16_a",
    "load_b": "mma_ldmatrix_f16_b",
    "compute": "mma_f16f16f32",
    "store": "mma_store_16x16_f32_global_",
}
MMA_F16_F16 = {
    "init": "mma_fill_16x16_f16",
    "load_a": "mma_ldmatrix_f16_a",
    "load_b": "mma_ldmatrix_f16_b",
    "compute": "mma_f16f16f16",
    "store": "mma_store_16x16_f16_global_",
}
MMA_S8_S32 = {
    "init": "mma_fill_16x16_i32",
    "load_a": "mma_ldmatrix_i8_a",
    "load_b": "mma_ldmatrix_i8_b",
    "compute": "mma_i8i8i32",
    "store": "mma_store_16x16_i32_global_",
}
