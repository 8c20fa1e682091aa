"""Which operands a mapping reads or writes where they are, with no packing or write-back copy.

Pure analyses of a candidate over the operator's and the intrinsic's computations: the
enumerator's veto, the CPU program rewrite and realisation all ask them.
"""

from __future__ import annotations

from ..models import MappingCandidate
from .access import Computation, mapped_steps
from .stages import RealisationError


def reads_in_place(op: Computation, intr: Computation, candidate: MappingCandidate) -> set[int]:
    """Inputs read where they are, with no packing stage: their read indices.

    An input qualifies when ``reindex`` would duplicate it (a sliding window: it depends on more
    operator loops than it has dimensions) and its intrinsic window is already a block of its
    trailing dimensions (:func:`_window_where_it_is`): each window (``pad[n, c, h + r, w0 + s :
    w0 + s + 16]`` for lanes from ``w``; ``pad[.., w0 + s0 : w0 + s0 + 19]`` for ``A[i + k]``
    with ``i <- w, k <- s``; ``pad[n, c, h + r, w + s0 : w + s0 + 3, 0:16]`` for ``A[k, i]``
    with ``k <- s, i <- lane`` in NCHW16c) is then contiguous, which tensorize takes at any
    offset. Never in a padded mapping (a CPU candidate that pads such a loop is realised from
    a widened program; see :mod:`.rewrite`).
    """
    if candidate.padding:
        return set()
    intr_inputs = {x.tensor: x for x in intr.inputs}
    role = {tensor: name for name, tensor in candidate.operands.items()}
    out = set()
    for index, access in enumerate(op.inputs):
        window = intr_inputs[role[access.tensor]]
        if len(access.variables) > len(access.indices) and _window_where_it_is(
                op, intr, window, access, candidate):
            out.add(index)
    return out


def _window_where_it_is(op: Computation, intr: Computation, window, access,
                        candidate: MappingCandidate) -> bool:
    """Whether ``window`` (an intrinsic input) is a block of ``access``'s trailing dimensions:
    its first index fed by loops that step through the matching dimension alike and index no
    other (other loops may index it too: ``w + s``), each later one a whole dimension, one
    loop over all of it (so the window's rows follow each other in memory)."""
    indices = window.indices
    first = len(access.indices) - len(indices)
    steps = mapped_steps(indices[0], candidate.axes)
    if not steps or access.dimension_of(steps) != first:
        return False
    for offset, index in enumerate(indices[1:], start=first + 1):
        [*terms] = [(v, c) for v, c in index if v and c]
        if len(terms) != 1 or terms[0][1] != 1 or len(candidate.axes[terms[0][0]]) != 1:
            return False
        loop = candidate.axes[terms[0][0]][0]
        extent = intr.axis(terms[0][0]).extent
        if (access.indices[offset] != ((loop, 1),) or op.axis(loop).extent != extent
                or access.shape is None or access.shape[offset] != extent):
            return False
    return True


def in_place_inputs(op: Computation, intr: Computation,
                    candidate: MappingCandidate) -> dict[int, dict[str, int]]:
    """Inputs to pack in place: read index -> {intrinsic window variable: the dimension it indexes}.

    An input qualifies when ``reindex`` would duplicate it (it depends on more operator loops
    than it has dimensions) and each of its window variables is fed by one operator loop that is
    alone, with coefficient 1, in exactly one of its dimensions; never in a padded mapping.
    """
    if candidate.padding:
        return {}
    intr_inputs = {x.tensor: x for x in intr.inputs}
    role = {tensor: name for name, tensor in candidate.operands.items()}
    out = {}
    for index, access in enumerate(op.inputs):
        window = intr_inputs[role[access.tensor]]
        if len(access.variables) <= len(access.indices) or window.mixes:
            continue
        dims = {}
        for var in index_vars(window):
            group = candidate.axes[var]
            found = [d for d, form in enumerate(access.indices) if dict(form).get(group[0])]
            if len(group) != 1 or len(found) != 1 or access.indices[found[0]] != ((group[0], 1),):
                break
            dims[var] = found[0]
        else:
            if dims:
                out[index] = dims
    return out


def writes_in_place(op: Computation, intr: Computation, candidate: MappingCandidate) -> bool:
    """Whether the main block may write the output where it is, with no write-back copy.

    So it may when the intrinsic's output window is one variable fed by one operator loop
    that indexes the output's last dimension alone with coefficient 1, every dimension is
    a plain loop, and nothing is padded: each window of lanes is then a contiguous run of
    the output already (a GEMM's ``C[m, n0:n0 + 16]``), and the einsum form's
    ``[outer..., window]`` buffer would be the same bytes in the same order, copied once
    more per call.
    """
    window = index_vars(intr.output)
    if candidate.padding or len(window) != 1 or len(candidate.axes[window[0]]) != 1:
        return False
    indices = op.output.indices
    return indices[-1] == ((candidate.axes[window[0]][0], 1),) and all(
        len(index) == 1 and index[0][1] == 1 for index in indices)


def index_vars(operand) -> list[str]:
    """The intrinsic variables an operand is indexed by, one per dimension, in order."""
    out = []
    for index in operand.indices:
        names = [v for v, c in index if v and c]
        if len(names) > 1:  # the einsum layout cannot hold a sliding window (A[i + k])
            raise RealisationError(f"operand {operand.tensor} index mixes variables {names}, "
                                   "which only an input read where it is can take")
        out += names
    return out
