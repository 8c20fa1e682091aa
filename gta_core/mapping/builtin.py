"""The core's AMOS-style enumerator, registered through the mapping hook."""

from __future__ import annotations

from functools import lru_cache

from ..hookspecs import hookimpl
from .access import Computation, block_computation, intrinsic_computation
from .enumerate import enumerate_mappings


@lru_cache(maxsize=64)
def workload_computation(workload) -> Computation:
    from tvm import s_tir

    return block_computation(s_tir.Schedule(workload.prim_func()), workload.main_block)


@hookimpl
def gta_mapping_candidates(workload, intrinsic, target):
    return enumerate_mappings(workload_computation(workload), intrinsic_computation(intrinsic),
                              intrinsic.name)
