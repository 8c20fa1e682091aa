"""Epilogues computed where the output is written back, not in passes of their own.

A model's fused function ends its anchor with elementwise blocks: a bias add, a ReLU, a
residual add, a cast. Left as they are, each reads and writes the whole output once more.
"""

from __future__ import annotations

from ..mapping.stages import is_write_back_stage
from .cpu import _is_cpu
from .rule import GenerationRule, ScheduleContext


def _elementwise(sch, block) -> bool:
    from tvm.tirx import IterVar

    return all(iv.iter_type == IterVar.DataPar for iv in sch.get(block).iter_vars)


class FuseEpilogue(GenerationRule):
    """Inline each elementwise block after the anchor into the stage that writes its results
    out: the write-back from the intrinsic's layout where there is one, else the accumulator
    tile's copy-out. The result then reaches memory once, already biased and activated, from
    the tile that is still in cache. A block that cannot be inlined (it reads the output at
    other positions, or reduces) stays where it was.
    """

    name = "fuse-epilogue"
    stage = 35  # after the write-back and the accumulator's copy-out have their places

    def applies(self, context: ScheduleContext) -> bool:
        return _is_cpu(context) and self._writer(context) is not None and bool(
            self._inlinable(context.sch, self._writer(context)))

    def apply(self, context: ScheduleContext) -> None:
        sch = context.sch
        writer = self._writer(context)
        while True:
            consumers = self._inlinable(sch, writer)
            if not consumers:
                return
            sch.reverse_compute_inline(consumers[0])

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
    def _inlinable(sch, writer) -> list:
        """Consumers of ``writer`` that ``reverse_compute_inline`` accepts (tried on a copy:
        a refusal must not leave a half-done step in the trace)."""
        from tvm.s_tir.schedule import ScheduleError

        out = []
        for consumer in sch.get_consumers(writer):
            if not _elementwise(sch, consumer):
                continue
            trial = sch.copy()
            try:
                trial.reverse_compute_inline(consumer)
            except ScheduleError:
                continue
            out.append(consumer)
        return out
