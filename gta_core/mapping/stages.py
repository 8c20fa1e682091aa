"""What realisation names the stages it makes, and how it fails: shared by every mapping module.

Rules and constraints ask :func:`stage_role` rather than matching these suffixes.
"""

from __future__ import annotations

from typing import Literal


class RealisationError(RuntimeError):
    """A candidate that TVM's schedule primitives could not realise; says which step failed."""


PACKED_IN_PLACE = "_global"
"""Name suffix of an input's in-place packing stage (``cache_read``'s block, as ``pad_global``);
the einsum-form packing stages end in ``_reindex_reindex``, the output's in ``_reindex``."""
PADDED = "_reindex_pad"
"""Name suffix of a packed input's padding stage (``pad_einsum``'s copy), which a CPU
realisation makes the input's one packing stage (``_pack_into_padding``)."""
WIDE = "_wide"
"""Name suffix of a widened program's zero-extended input (see :mod:`.rewrite`)."""
CROPPED = "_crop"
"""Name suffix of the stage copying a widened program's main stage into the output."""


def is_packing_stage(name: str) -> bool:
    """Whether a producer of the main block named ``name`` is a packing stage realisation made
    (or a widened input, which is one)."""
    return name.endswith(("_reindex_reindex", PACKED_IN_PLACE, PADDED, WIDE))


def is_write_back_stage(name: str) -> bool:
    """Whether a consumer of the main block named ``name`` copies its results to the output."""
    return name.endswith(("_reindex", CROPPED))


StageRole = Literal["packing", "write-back", "other"]


def stage_role(name: str) -> StageRole:
    """What a block next to the main block is for, from its name as realisation makes it:
    ``packing`` (an operand laid out for the intrinsic, a widened input), ``write-back``
    (results copied to the output) or ``other`` (the main block, padding, an epilogue...).
    Rules read this instead of matching name suffixes, which may change."""
    if is_packing_stage(name):
        return "packing"
    return "write-back" if is_write_back_stage(name) else "other"
