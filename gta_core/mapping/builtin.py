"""The core's AMOS-style enumerator, registered through the mapping hook."""

from __future__ import annotations

from ..hookspecs import hookimpl
from .access import intrinsic_computation, workload_computation
from .enumerate import enumerate_mappings
from .placement import reads_in_place
from .rewrite import cpu_program_for


@hookimpl
def gta_mapping_candidates(workload, intrinsic, target):
    return enumerate_mappings(workload_computation(workload), intrinsic_computation(intrinsic),
                              intrinsic.name)


@hookimpl
def gta_mapping_veto(candidate, workload, intrinsic, target):
    """A sliding-window operand (``A[i + k]``) is only ever read where it is, on a CPU: veto a
    candidate whose program cannot read it so (a GPU pipeline stages einsum-form copies)."""
    intr = intrinsic_computation(intrinsic)
    mixed = [x for x in intr.inputs if x.mixes]
    if not mixed:
        return None
    if target.kind != "cpu":
        return f"window {mixed[0].tensor} can only be read in place, which only a CPU program does"
    if candidate.rfactor:  # a dot intrinsic's split: the enumerator checked each run contiguous
        return None
    program, realised_as = cpu_program_for(workload, candidate, intrinsic)
    op = workload_computation(program)
    direct = {op.inputs[i].tensor for i in reads_in_place(op, intr, realised_as)}
    for x in mixed:
        if realised_as.operands[x.tensor] not in direct:
            return (f"window {x.tensor} cannot be read where it is (the program is not one "
                    "the lanes' padding can widen)")
    return None
