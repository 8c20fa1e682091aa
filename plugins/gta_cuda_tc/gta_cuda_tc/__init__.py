"""GTA plugin for NVIDIA Tensor Cores (wmma, mma.sync)."""
