"""The GPU architectures ``cuda-tc`` generates for, as target data (``--arch``).

Limits per block and per SM come from the CUDA C++ Programming Guide's table of compute
capabilities. ``shared_memory_per_block`` is 48 KiB everywhere: the most a kernel may allocate
statically, which is how TVM allocates it (more needs a dynamic opt-in TVM does not emit).
``peak`` is a nominal dense Tensor Core throughput (GFLOP/s, GOPS for int8) of one product of
each architecture, from its vendor datasheet; ``gta peak`` on the GPU measures the real one.
"""

from __future__ import annotations

from gta_core.sdk import Resources, TargetArch

DEFAULT_ARCH = "sm_80"


def _resources(sm_count: int, shared_memory_per_sm: int) -> Resources:
    return Resources(
        sm_count=sm_count,
        warp_size=32,
        max_threads_per_block=1024,
        shared_memory_per_block=49152,
        shared_memory_per_sm=shared_memory_per_sm,
        registers_per_block=65536,
        registers_per_sm=65536,
        registers_per_thread=255,
    )


ARCHS: dict[str, TargetArch] = {
    "sm_80": TargetArch(
        description="NVIDIA Ampere sm_80 (nominal figures: A100 SXM, 108 SMs)",
        tvm={"arch": "sm_80"}, resources=_resources(108, 167936),
        peak={"float16": 312_000.0, "int8": 624_000.0, "float32": 19_500.0}),
    "sm_86": TargetArch(
        description="NVIDIA Ampere sm_86 (nominal figures: RTX A6000, 84 SMs)",
        tvm={"arch": "sm_86"}, resources=_resources(84, 102400),
        peak={"float16": 154_800.0, "int8": 309_700.0, "float32": 38_700.0}),
    "sm_89": TargetArch(
        description="NVIDIA Ada sm_89 (nominal figures: L40S, 142 SMs)",
        tvm={"arch": "sm_89"}, resources=_resources(142, 102400),
        peak={"float16": 362_000.0, "int8": 733_000.0, "float32": 91_600.0}),
    "sm_90": TargetArch(
        description="NVIDIA Hopper sm_90 (nominal figures: H100 SXM, 132 SMs)",
        tvm={"arch": "sm_90"}, resources=_resources(132, 233472),
        peak={"float16": 989_400.0, "int8": 1_978_900.0, "float32": 67_000.0}),
}
