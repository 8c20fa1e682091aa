"""The postprocessor vectorising the stages rules marked with
:data:`~gta_core.generation.stage_lanes.MARK` (why: see that module)."""

from __future__ import annotations

from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from ..generation.cpu import split_to_lanes
from ..generation.stage_lanes import MARK


def _lanes_step(sch, block, loop) -> bool:
    """Whether each access of ``block`` steps through the last dimension of its buffer by
    one element per iteration of ``loop`` (its innermost loop) or does not move with it."""
    from tvm.s_tir import SBlockRealize
    from tvm.tirx.analysis import undefined_vars

    from ..mapping.access import NotAffine, affine_from_expr, block_computation

    realize = sch.get(loop).body
    if not isinstance(realize, SBlockRealize):
        return False  # the loop holds more than this block
    stmt = realize.block
    loop_var = sch.get(loop).loop_var
    loop_names = {sch.get(lp).loop_var: f"l{i}" for i, lp in enumerate(sch.get_loops(block))}
    inner = loop_names[loop_var]
    stepping = []
    for iv, value in zip(stmt.iter_vars, realize.iter_values):
        try:
            form = affine_from_expr(value, loop_names)
        except NotAffine:
            if any(v.same_as(loop_var) for v in undefined_vars(value)):
                return False
            continue
        if form.get(inner):
            stepping.append((iv.var.name.removeprefix("v_"), form[inner]))
    if len(stepping) != 1 or stepping[0][1] != 1:
        return False
    var = stepping[0][0]
    try:
        computation = block_computation(sch, stmt.name_hint)
    except NotAffine:  # an index that is not affine (a gather, a packed layout's split)
        return False
    return computation.output.innermost(var) and all(
        access.innermost(var) or not access.depends_on(var) for access in computation.inputs)


@derived_object
class VectorizeMarkedLanes(ms.postproc.PyPostproc):
    """Vectorise the innermost loop of each block marked with :data:`MARK`
    (split to at most its lanes) where :func:`_lanes_step` holds; then drop the mark."""

    def _initialize_with_tune_context(self, context) -> None:
        pass

    def apply(self, sch) -> bool:
        from tvm.tirx import ForKind

        for block in _marked(sch):
            lanes = int(sch.get(block).annotations[MARK])
            sch.unannotate(block, MARK)
            loops = sch.get_loops(block)
            if not loops:
                continue
            loop = sch.get(loops[-1])
            extent = getattr(loop.extent, "value", None)
            if (loop.kind != ForKind.SERIAL or extent is None or extent < 2
                    or not _lanes_step(sch, block, loops[-1])):
                continue
            inner = split_to_lanes(sch, loops[-1:], lanes)[-1]
            if sch.get(inner).extent.value <= lanes:  # else no divisor but 1 fits
                sch.vectorize(inner)
        return True

    def clone(self) -> VectorizeMarkedLanes:
        return VectorizeMarkedLanes()


def _marked(sch) -> list:
    """The blocks of ``sch`` that carry :data:`MARK`."""
    found, stack = [], [sch.get_sblock("root")]
    while stack:
        block = stack.pop()
        if MARK in sch.get(block).annotations:
            found.append(block)
        stack += sch.get_child_blocks(block)
    return found
