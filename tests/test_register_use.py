"""What a register tile holds: the op axes each tile loop steps, and the input values the
tile reuses."""

from __future__ import annotations

from types import SimpleNamespace

from gta_core.mapping.access import Access, Axis, Computation
from gta_core.pruning.register_use import call_extents, elements, loop_axes, tile_extents


def _nchwc_int8():
    """An NCHWc 1x1 convolution (output-channel blocks ``k``) on a dot product whose
    reduction axis is named ``k`` too: lanes from the channel lane, 4 bytes from ``rl``."""
    op = Computation(
        axes=(Axis("k", 20, "spatial"), Axis("y", 7, "spatial"), Axis("lane", 8, "spatial"),
              Axis("rc", 30, "reduce"), Axis("rl", 4, "reduce")),
        inputs=(Access("x", "uint8", ((("rc", 1),), (("y", 1),), (("rl", 1),))),
                Access("w", "int8", ((("k", 1),), (("rc", 1),), (("rl", 1),), (("lane", 1),)))),
        output=Access("o", "int32", ((("k", 1),), (("y", 1),), (("lane", 1),)), output=True))
    intr = Computation(axes=(Axis("i", 8, "spatial"), Axis("k", 4, "reduce")), inputs=(),
                       output=Access("c", "int32", ((("i", 1),),), output=True))
    mapping = SimpleNamespace(axes={"i": ["lane"], "k": ["rl"]})
    return op, intr, mapping


def test_a_loop_named_like_an_intrinsic_axis_of_the_other_kind_steps_its_op_axis():
    op, intr, mapping = _nchwc_int8()
    assert loop_axes("k", True, intr, mapping) == ["k"]  # the output-channel blocks
    assert loop_axes("k", False, intr, mapping) == ["rl"]  # the dot product's bytes
    assert loop_axes("i", True, intr, mapping) == ["lane"]
    assert loop_axes("y", True, intr, mapping) == ["y"]


def test_a_register_tile_of_channel_blocks_reads_one_broadcast_word_per_pixel():
    # 2 channel blocks x 7 pixels: 2 weight vectors and 7 activation words over the tile,
    # each one register per call; the reduction's 4 bytes are inside every call.
    op, intr, mapping = _nchwc_int8()
    covered = call_extents(op, intr, mapping)
    assert covered == {"lane": 8, "rl": 4}
    call = tile_extents(op, covered, [])
    tile = tile_extents(op, covered, [(loop_axes("k", True, intr, mapping), 2),
                                      (loop_axes("y", True, intr, mapping), 7)])
    x, w = op.inputs
    assert elements(x, tile) // elements(x, call) == 7
    assert elements(w, tile) // elements(w, call) == 2
