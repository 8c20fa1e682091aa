"""A chain of injective blocks as one parallel pass: a candidate beside the generic space's.

A model's function that no intrinsic takes is often a chain of elementwise, padding and
layout blocks: an 8-bit stem's input quantized, padded and laid out in words of channels
(``NCHW4c``), a ``layout_transform``, a lone ``pad``. MetaSchedule's generic rules schedule
it block by block from a handful of sketches; on MobileNet-V2's input (224x224, three float
planes quantized into 4-byte words) its best was 65-84 us, while the same blocks inlined into
the one that writes the output, rows on the cores and the word's few lanes unrolled (LLVM
then vectorises across the pixels) ran in 16 us. :class:`InjectiveSpace` adds that program
to the search's spaces, with a choice of how many outer loops share the cores; where the
function is not such a chain it adds nothing.
"""

from __future__ import annotations

from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

# An innermost loop this short (a word's 4 channels, a block of 16) is unrolled and the loop
# above it left to LLVM's vectoriser; a longer one is vectorised in runs of VECTOR where they
# divide it (a whole 224-wide row as one vector would be 224 lanes), else left to LLVM.
UNROLL_AT_MOST = 16
VECTOR = 16


def chain_program(mod, outer_serial: int = 0):
    """``mod``'s single function as one injective pass, or None where it is not a chain.

    Every block but the last is inlined into its consumer (all must be spatial and
    inlinable); the innermost loop is unrolled where short, else vectorised in runs of
    :data:`VECTOR`; the loops above it (above the two innermost where it is short) are
    fused and run on the cores, except the last ``outer_serial`` of them, kept serial
    inside (None where that would leave none on the cores). Returns the
    :class:`tvm.s_tir.Schedule`.
    """
    from tvm import s_tir

    sch = s_tir.Schedule(mod)
    try:
        blocks = sch.get_child_blocks(sch.get_sblock("root", func_name="main"))
    except Exception:  # noqa: BLE001 - no root block (an opaque function): not a chain
        return None
    if not blocks or any(_reduces(sch, b) for b in blocks):
        return None
    for block in blocks[:-1]:
        try:
            sch.compute_inline(block)
        except Exception:  # noqa: BLE001 - a producer with two readers, say: not a chain
            return None
    loops = sch.get_loops(blocks[-1])
    if not loops:
        return None
    inner = loops[-1]
    extent = _extent(sch, inner)
    short = extent is not None and extent <= UNROLL_AT_MOST and len(loops) >= 2
    kept = 2 if short else 1
    outer = loops[:-kept]
    if outer_serial and outer_serial >= len(outer):
        return None
    if short:
        sch.unroll(inner)
    elif extent is not None and extent % VECTOR == 0:
        sch.vectorize(sch.split(inner, [None, VECTOR])[1])
    if outer:
        parallel = outer[:len(outer) - outer_serial]
        sch.parallel(sch.fuse(*parallel) if len(parallel) > 1 else parallel[0])
    return sch


def _reduces(sch, block) -> bool:
    return any(int(v.iter_type) != 0 for v in sch.get(block).iter_vars)


def _extent(sch, loop) -> int | None:
    extent = sch.get(loop).extent
    return int(extent) if hasattr(extent, "value") else None


@derived_object
class InjectiveSpace(ms.space_generator.PySpaceGenerator):
    """:func:`chain_program`'s candidates: all outer loops on the cores, or the last of them
    kept serial inside (a run of rows each thread walks); none where it does not apply."""

    def __init__(self) -> None:
        self.sch_rules = []
        self.postprocs = []
        self.mutator_probs = {}

    def _initialize_with_tune_context(self, context) -> None:
        pass

    def generate_design_space(self, mod) -> list:
        spaces = [chain_program(mod, serial) for serial in (0, 1)]
        return [s for s in spaces if s is not None]

    def clone(self) -> InjectiveSpace:
        return InjectiveSpace()
