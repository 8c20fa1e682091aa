"""Enumerate every way to map an operator's computation onto an intrinsic's.

A mapping assigns each intrinsic operand an operator tensor of the same dtype,
and each intrinsic iteration variable one or more operator iteration variables
of the same kind (several fuse into one intrinsic axis); the other operator
variables stay outer loops. As in AMOS, a mapping is valid when every operand
sees the same dependence pattern on both sides: for each mapped operator
variable ``u -> v``, the operator tensor depends on ``u`` exactly when its
intrinsic operand depends on ``v``.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from math import prod

from ..models import MappingCandidate
from .access import Access, Computation, mapped_steps


@dataclass(frozen=True)
class EnumerationSettings:
    max_fuse: int = 2  # operator variables fused into one intrinsic axis, at most


def operand_assignments(op: Computation, intr: Computation) -> Iterator[dict[str, Access]]:
    """Each dtype-compatible assignment of operator tensors to intrinsic operands.

    Two intrinsic inputs with the same dtype and the same indices are interchangeable (a
    product commutes), so of the assignments that differ only by swapping them, only the
    one taking the operator's tensors in their order is made: the other would give the same
    program under another id, and every trial spent on it would be spent twice.
    """
    if op.output.dtype != intr.output.dtype or len(op.inputs) != len(intr.inputs):
        return
    position = {id(t): n for n, t in enumerate(op.inputs)}
    twins = [(a, b) for a, b in itertools.combinations(range(len(intr.inputs)), 2)
             if (intr.inputs[a].dtype, intr.inputs[a].indices)
             == (intr.inputs[b].dtype, intr.inputs[b].indices)]
    for tensors in itertools.permutations(op.inputs):
        if any(position[id(tensors[a])] > position[id(tensors[b])] for a, b in twins):
            continue
        if all(t.dtype == x.dtype for t, x in zip(tensors, intr.inputs)):
            pairs = {x.tensor: t for x, t in zip(intr.inputs, tensors)}
            pairs[intr.output.tensor] = op.output
            yield pairs


def eligible(op: Computation, intr: Computation, assignment: dict[str, Access],
             var: str) -> list[str]:
    """Operator variables that may map onto intrinsic variable ``var``."""
    kind = intr.axis(var).kind
    operands = [*intr.inputs, intr.output]
    return [
        axis.name for axis in op.axes
        if axis.kind == kind and all(
            assignment[x.tensor].depends_on(axis.name) == x.depends_on(var) for x in operands)
    ]


def rfactor_eligible(op: Computation, intr: Computation, assignment: dict[str, Access],
                     var: str) -> list[str]:
    """Operator reduction variables that may feed spatial lane ``var`` through rfactor.

    On an intrinsic with no reduction axis, each whose dependence matches the lane's. On a
    *dot* intrinsic (:func:`dot_shaped`), each whose dependence matches, to be split: the
    variable feeds both the lane and the intrinsic's reduction axis.
    """
    if intr.axis(var).kind != "spatial" or (
            any(a.kind == "reduce" for a in intr.axes) and not dot_shaped(intr)):
        return []
    return [
        axis.name for axis in op.axes
        if axis.kind == "reduce" and all(
            assignment[x.tensor].depends_on(axis.name) == x.depends_on(var) for x in intr.inputs)
    ]


def dot_shaped(intr: Computation) -> bool:
    """Whether every input of ``intr`` is one run of its lanes' terms: indexed by
    ``terms * i + k`` with ``i`` its one spatial axis and ``k`` its one reduction axis of
    extent ``terms`` (``C[i] += sum_k A[4i + k] * B[4i + k]``).

    Such an intrinsic maps only in the *split* form: one operator reduction variable, the
    last index of every input, split as ``(outer, lane, term)``, the lanes summed by an
    rfactor, so that each call reads one contiguous run of each input where it is. Any
    other mapping would gather both inputs from strided dimensions.
    """
    spatial = [a for a in intr.axes if a.kind == "spatial"]
    reduce = [a for a in intr.axes if a.kind == "reduce"]
    if len(spatial) != 1 or len(reduce) != 1:
        return False
    run = tuple(sorted(((spatial[0].name, reduce[0].extent), (reduce[0].name, 1))))
    return all(x.indices == (run,) for x in intr.inputs)


def _groups(names: list[str], extents: dict[str, int], max_fuse: int) -> Iterator[tuple[str, ...]]:
    """Non-empty ordered subsets of ``names``; a unit-extent variable only alone."""
    for size in range(1, max_fuse + 1):
        for group in itertools.combinations(names, size):
            if size == 1 or all(extents[n] > 1 for n in group):
                yield group


def enumerate_mappings(op: Computation, intr: Computation, intrinsic: str,
                       settings: EnumerationSettings = EnumerationSettings()
                       ) -> list[MappingCandidate]:
    """Every valid mapping of ``op`` onto ``intr``, in a stable order."""
    extents = {a.name: a.extent for a in op.axes}
    candidates: dict[str, MappingCandidate] = {}
    for assignment in operand_assignments(op, intr):
        # Lanes from a reduction variable are never fused with others: one partial sum each.
        choices = [list(_groups(eligible(op, intr, assignment, v.name), extents,
                                settings.max_fuse))
                   + [(u,) for u in rfactor_eligible(op, intr, assignment, v.name)]
                   for v in intr.axes]
        for groups in itertools.product(*choices):
            rfactor = [u for v, group in zip(intr.axes, groups) for u in group
                       if v.kind == "spatial" and op.axis(u).kind == "reduce"]
            if not _distinct(intr, groups, rfactor):
                continue
            axes = {v.name: list(g) for v, g in zip(intr.axes, groups)}
            candidate = _candidate(intrinsic, intr, assignment, axes, extents)
            reason = _structure_reason(intr, assignment, axes)
            if reason:
                candidate = candidate.model_copy(update={"status": "pruned", "reason": reason})
            if rfactor and not reason:
                reason = _rfactor_reason(op, intr, rfactor, axes)
                candidate = candidate.model_copy(update={
                    "rfactor": rfactor, "status": "pruned" if reason else "kept",
                    "reason": reason})
            candidates.setdefault(candidate.id, candidate)
    return list(candidates.values())


def _distinct(intr: Computation, groups: tuple[tuple[str, ...], ...],
              rfactor: list[str]) -> bool:
    """Whether each operator variable feeds one intrinsic axis, as a mapping needs; on a
    dot intrinsic, exactly the split form: its reduction axis takes the rfactor lane's
    variable and nothing else."""
    used = [name for group in groups for name in group]
    if not dot_shaped(intr):
        return len(used) == len(set(used))
    lane, term = ([g for v, g in zip(intr.axes, groups) if v.kind == kind][0]
                  for kind in ("spatial", "reduce"))
    return len(rfactor) == 1 and lane == term == (rfactor[0],)


def lane_of(intr: Computation, axes: dict[str, list[str]], name: str) -> str:
    """The spatial intrinsic axis that operator variable ``name`` feeds."""
    return next(v for v, group in axes.items()
                if name in group and intr.axis(v).kind == "spatial")


def split_terms(intr: Computation, candidate_axes: dict[str, list[str]], name: str) -> int:
    """How many terms each lane of rfactor variable ``name`` sums inside one intrinsic call:
    the reduction axis's extent in the split form (a dot intrinsic), else 1."""
    return next((a.extent for a in intr.axes
                 if a.kind == "reduce" and candidate_axes.get(a.name) == [name]), 1)


def _structure_reason(intr: Computation, assignment: dict[str, Access],
                      axes: dict[str, list[str]]) -> str | None:
    """Why the operator tensors do not index the mapped loops as an intrinsic operand that
    mixes variables in one index (a sliding window, ``A[i + k]``) does; None if they do.

    Dependence alone admits ``i <- h, k <- s`` for ``pad[.., h + r, w + s]``, but the
    intrinsic reads ``A[i + k]`` as one run of consecutive elements: its loops must share
    the tensor's last dimension, with the same coefficients (``w + s``), and index no other.
    """
    for operand in (*intr.inputs, intr.output):
        tensor = assignment[operand.tensor]
        for index in operand.indices:
            terms = [(v, c) for v, c in index if v and c]
            if len(terms) < 2:
                continue
            steps = mapped_steps(index, axes)
            if steps is None or tensor.dimension_of(steps) != len(tensor.indices) - 1:
                text = " + ".join(v if c == 1 else f"{c}*{v}" for v, c in terms)
                return (f"window {operand.tensor}[{text}] needs the last dimension of "
                        f"{tensor.tensor} indexed by the mapped loops alike")
    return None


def _rfactor_reason(op: Computation, intr: Computation, rfactor: list[str],
                    axes: dict[str, list[str]]) -> str | None:
    """Why lanes from these reduction variables would not read contiguous memory; None if
    they would."""
    for name in rfactor:
        run = intr.axis(lane_of(intr, axes, name)).extent * split_terms(intr, axes, name)
        if op.axis(name).extent % run:
            return (f"rfactor lanes need {name}'s extent ({op.axis(name).extent}) to be a "
                    f"multiple of {run}")
        for access in op.inputs:
            if access.depends_on(name) and not access.innermost(name):
                return (f"rfactor lanes over {name} would not be contiguous in "
                        f"{access.tensor}: {name} must index its last dimension alone "
                        "with coefficient 1")
    return None


def _candidate(intrinsic: str, intr: Computation, assignment: dict[str, Access],
               axes: dict[str, list[str]], extents: dict[str, int]) -> MappingCandidate:
    fused = {v.name: prod(extents[n] for n in axes[v.name]) for v in intr.axes}
    padded = {v.name: -(-fused[v.name] // v.extent) * v.extent for v in intr.axes}
    padding = {v: padded[v] for v in padded if padded[v] != fused[v]}
    waste = 1 - prod(fused.values()) / prod(padded.values())
    operands = {name: access.tensor for name, access in assignment.items()}
    key = f"{intrinsic}|{sorted(operands.items())}|{sorted(axes.items())}"
    identifier = f"{intrinsic}-{hashlib.sha1(key.encode()).hexdigest()[:6]}"
    return MappingCandidate(id=identifier, intrinsic=intrinsic, operands=operands, axes=axes,
                            padding=padding, waste=min(round(waste, 4), 0.9999))  # < 1

