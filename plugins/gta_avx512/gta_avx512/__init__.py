"""GTA plugin for x86 AVX-512 (VNNI, BF16, FP32 FMA) tensor intrinsics."""
