"""Epilogues computed where the output is written back, not in passes of their own.

A model's fused function ends its anchor with elementwise blocks: a bias add, a ReLU, a
residual add, a cast. Left as they are, each reads and writes the whole output once more.
"""

from __future__ import annotations

from ..mapping.stages import is_write_back_stage
from .cpu import _is_cpu
from .rule import GenerationRule, ScheduleContext


def _accepted(sch, step) -> bool:
    """Whether ``step(schedule)`` succeeds, tried on a copy of ``sch``: a refusal must not
    leave a half-done step in the trace."""
    from tvm.s_tir.schedule import ScheduleError

    try:
        step(sch.copy())
    except ScheduleError:
        return False
    return True


def _elementwise(sch, block) -> bool:
    from tvm.tirx import IterVar

    return all(iv.iter_type == IterVar.DataPar for iv in sch.get(block).iter_vars)


class FuseEpilogue(GenerationRule):
    """Inline each elementwise block after the anchor into the stage that writes its results
    out: the write-back from the intrinsic's layout where there is one, else the accumulator
    tile's copy-out. The result then reaches memory once, already biased and activated, from
    the tile that is still in cache. A block that cannot be inlined (it reads the output at
    other positions, or reduces) stays where it was.

    A program that accumulates in the output itself (a mapping that writes in place, with
    no accumulator tile) has no such stage: its epilogue, inlined into one block, runs
    under the last parallel tile loop, on each tile once its reduction is done.

    An epilogue that reads the result twice (GELU: ``x * (1 + erf(x / sqrt 2)) / 2``) is
    first made one block, each branch inlined forward into the block that joins them
    (:meth:`_join`); only a stage with one consumer takes that consumer in. An epilogue
    whose other operand is computed in the function (a quantized model's residual input,
    dequantized) first takes that computation in (:meth:`_inline_operands`): a block with
    a second producer cannot be inlined backwards, and the operand's pass over memory
    would stay.
    """

    name = "fuse-epilogue"
    stage = 35  # after the write-back and the accumulator's copy-out have their places

    def applies(self, context: ScheduleContext) -> bool:
        if not _is_cpu(context):
            return False
        sch = context.sch
        writer = self._writer(context)
        if writer is None:  # in place: the epilogue moves under the parallel tile loop
            if not context.levels.get("S0") or context.block != context.workload.main_block:
                return False
            writer = sch.get_sblock(context.block)
        return any(_elementwise(sch, c) for c in sch.get_consumers(writer))

    def apply(self, context: ScheduleContext) -> None:
        sch = context.sch
        writer = self._writer(context)
        if writer is None:
            self._per_tile(context)
        else:
            self._inline_into(sch, writer)

    @staticmethod
    def _writer(context: ScheduleContext):
        sch = context.sch
        main = sch.get_sblock(context.block)
        stages = sch.get_consumers(main)
        if context.notes.get("accumulator"):
            stages += sch.get_consumers(sch.get_sblock(context.notes["accumulator"]))
        for stage in stages:
            if is_write_back_stage(sch.get(stage).name_hint):
                return stage
        if context.notes.get("accumulator"):
            return sch.get_sblock(context.notes["accumulator"])
        return None

    @staticmethod
    def _first_epilogue(context: ScheduleContext):
        sch = context.sch
        if context.block != context.workload.main_block:  # rfactor: its sum comes first
            return None
        found = [c for c in sch.get_consumers(sch.get_sblock(context.block))
                 if _elementwise(sch, c)]
        return found[0] if len(found) == 1 else None

    def _per_tile(self, context: ScheduleContext) -> None:
        sch = context.sch
        self._join(sch, sch.get_sblock(context.block))
        epilogue = self._first_epilogue(context)
        if epilogue is None:
            return
        self._inline_into(sch, epilogue)
        tile = context.levels["S0"][-1]
        if _accepted(sch, lambda s: s.reverse_compute_at(epilogue, tile)):
            sch.reverse_compute_at(epilogue, tile)

    @classmethod
    def _inline_into(cls, sch, writer) -> None:
        """Inline every elementwise consumer chain of ``writer`` that accepts it."""
        cls._join(sch, writer)
        while True:
            cls._inline_operands(sch, writer)
            consumers = cls._inlinable(sch, writer)
            if not consumers:
                return
            sch.reverse_compute_inline(consumers[0])
            cls._join(sch, writer)

    @staticmethod
    def _inline_operands(sch, writer) -> None:
        """Inline into ``writer``'s one elementwise consumer every elementwise block that
        computes its other operands (repeatedly: the operand's own producers next)."""
        consumers = sch.get_consumers(writer)
        if len(consumers) != 1 or not _elementwise(sch, consumers[0]):
            return
        moved = True
        while moved:
            moved = False
            for producer in sch.get_producers(consumers[0]):
                if (sch.get(producer).same_as(sch.get(writer))
                        or not _elementwise(sch, producer)
                        or not _accepted(sch, lambda s, p=producer: s.compute_inline(p))):
                    continue
                sch.compute_inline(producer)
                moved = True
                break

    @staticmethod
    def _join(sch, block) -> None:
        """While ``block`` has several consumers, inline forward each elementwise one whose
        only consumer is elementwise too, until the branches meet in one block (or none can
        move). ``reverse_compute_inline`` of one of several consumers would leave the others
        reading a buffer nothing writes any more."""
        moved = True
        while moved and len(sch.get_consumers(block)) > 1:
            moved = False
            for consumer in sch.get_consumers(block):
                after = sch.get_consumers(consumer)
                if not (_elementwise(sch, consumer) and len(after) == 1
                        and _elementwise(sch, after[0])
                        and _accepted(sch, lambda s, c=consumer: s.compute_inline(c))):
                    continue
                sch.compute_inline(consumer)
                moved = True
                break

    @staticmethod
    def _inlinable(sch, writer) -> list:
        """Consumers of ``writer`` that ``reverse_compute_inline`` accepts (:func:`_accepted`),
        when it has only one."""
        consumers = sch.get_consumers(writer)
        if len(consumers) != 1:
            return []
        return [c for c in consumers if _elementwise(sch, c)
                and _accepted(sch, lambda s, c=c: s.reverse_compute_inline(c))]
