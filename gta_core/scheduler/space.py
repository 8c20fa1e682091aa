"""One task's design space: a realised mapping with the generation rules applied.

MetaSchedule's evolutionary search drives it through its Python extension
point: ``generate_design_space`` returns one schedule per sketch (the rules
may fork structural alternatives), whose traces record every sampled
decision; the search mutates those decisions and replays the traces.
"""

from __future__ import annotations

from collections import Counter
from functools import cached_property

from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from ..generation.engine import apply_rules, describe
from ..generation.rule import GenerationRule, ScheduleContext
from ..mapping.realise import RealisationError, ensure_registered, finisher, reshape
from ..mapping.rewrite import cpu_program_for, program_for
from ..models import Intrinsic, MappingCandidate, Target
from ..pruning.constraint import Constraint
from ..workloads import Workload
from .prior import prior_cycles
from .vectorize_lanes import VectorizeMarkedLanes


def task_prefix(spec: str, target: Target) -> str:
    """What the record keys of every task of ``spec`` on ``target`` start with.

    A target generating for an arch other than its own (``--arch``) keys its
    records apart, so one DB can hold tunings for several GPUs.
    """
    arch = f"/{target.arch}" if target.arch else ""
    return f"{spec}@{target.name}{arch}#"


GENERIC = "generic"  # the mapping id of a task tuned with MetaSchedule's generic rules


def generic_space():
    """MetaSchedule's generic CPU rules (``ScheduleRule.create("llvm")``), no intrinsic: the
    space of a model's function that no intrinsic takes (pooling, softmax, layer norm...)."""
    return ms.space_generator.PostOrderApply(sch_rules="llvm", postprocs="llvm",
                                             mutator_probs="llvm")


def model_generic_space():
    """The space GTA searches for a function no intrinsic takes: :func:`generic_space`'s
    sketches and, where the function is a chain of injective blocks, that chain as one
    parallel pass (:class:`~.injective.InjectiveSpace`)."""
    from .injective import InjectiveSpace

    return ms.space_generator.SpaceGeneratorUnion(
        [generic_space(), InjectiveSpace()], sch_rules="llvm", postprocs="llvm",
        mutator_probs="llvm")


class Task:
    """One (workload, mapping) pair on a target: what the scheduler allocates trials to.

    ``mapping`` and ``intrinsic`` None: a workload no intrinsic takes, searched in
    MetaSchedule's generic space and GTA's injective chains (:func:`model_generic_space`) under
    the same budget.
    """

    def __init__(self, workload: Workload, mapping: MappingCandidate | None,
                 intrinsic: Intrinsic | None, target: Target) -> None:
        if mapping is None or intrinsic is None:
            self.workload, self.mapping, self.intrinsic, self.target = workload, None, None, target
            return
        ensure_registered(intrinsic)  # its records' traces tensorize with it
        # The program the mapping is realised from: widened where needed on a CPU (the mapping
        # then pads nothing), commuted / signed where needed on a GPU.
        if target.kind == "cpu":
            self.workload, self.mapping = cpu_program_for(workload, mapping, intrinsic)
        else:
            self.workload, self.mapping = program_for(workload, mapping, intrinsic), mapping
        self.intrinsic = intrinsic
        self.target = target

    @property
    def mapping_id(self) -> str:
        return self.mapping.id if self.mapping is not None else GENERIC

    @property
    def key(self) -> str:
        return f"{task_prefix(self.workload.spec, self.target)}{self.mapping_id}"

    @cached_property
    def prior(self) -> float | None:
        """Its cost before any trial (:func:`~.prior.prior_cycles`): where starts go first."""
        return prior_cycles(self)


def lowers(mod) -> bool:
    """Whether ``mod`` survives the lowering passes that check tensorized buffer windows.

    A candidate whose operand window lost its contiguity (e.g. a packing stage
    compacted to a tile) fails there; catching it before the cost model, whose
    feature extraction runs the same passes, keeps one bad candidate from
    stopping the search.
    """
    import tvm
    from tvm import s_tir

    passes = tvm.ir.transform.Sequential([
        s_tir.transform.LowerInitBlock(),
        s_tir.transform.PlanAndUpdateBufferAllocationLocation(),
        s_tir.transform.ConvertBlocksToOpaque(),
        s_tir.transform.CompactBufferAllocation(),
        s_tir.transform.LowerMatchBuffer(),
    ])
    try:
        passes(mod)
    except Exception:  # noqa: BLE001 - any lowering failure disqualifies the candidate
        return False
    return True


LeftOut = dict[tuple[str, str], str]
"""What a task left out because it raised: ``(kind, name) -> cause``, kind ``rule`` or
``constraint``; shared by the clones of one task's space and postprocessor."""


@derived_object
class ConstraintCheck(ms.postproc.PyPostproc):
    """The resource constraints as a MetaSchedule postprocessor: rejects before building.

    Counts rejections per constraint in ``pruned``, shared by the clones the
    search makes for its worker threads. A constraint that raises is left out of
    the task from then on (recorded in ``left_out``), as if it were not loaded.
    """

    def __init__(self, task: Task, constraints: list[Constraint],
                 pruned: Counter | None = None, left_out: LeftOut | None = None) -> None:
        self.task = task
        self.pruned = Counter() if pruned is None else pruned
        self.left_out = {} if left_out is None else left_out
        self.constraints = [c for c in constraints if self._guarded(c, c.applies, task.target)]

    def _guarded(self, constraint: Constraint, call, argument) -> object:
        """``call(argument)``; False, with ``constraint`` left out, if it raises."""
        key = ("constraint", constraint.name)
        if key in self.left_out:
            return False
        try:
            return call(argument)
        except Exception as exc:  # noqa: BLE001 - a plugin's constraint must not stop tuning
            self.left_out.setdefault(key, describe(exc))
            return False

    def _initialize_with_tune_context(self, context) -> None:
        pass

    def apply(self, sch) -> bool:
        # The constraints first: they read loop extents (~0.1 ms), while lowering runs
        # TVM passes (~7 ms), and most rejected samples fail a constraint.
        context = ScheduleContext(sch=sch, block=self.task.workload.main_block,
                                  target=self.task.target, workload=self.task.workload,
                                  intrinsic=self.task.intrinsic, mapping=self.task.mapping)
        for constraint in self.constraints:
            if self._guarded(constraint, constraint.check, context):
                self.pruned[constraint.name] += 1
                return False
        if not lowers(sch.mod):
            self.pruned["lowering"] += 1
            return False
        return True

    def fits(self, tiles: list) -> bool:
        """Whether tile loops drawn for a program not replayed yet pass every constraint
        that reads tiles only (``Constraint.reads_tiles_only``); rejections count as
        :meth:`apply`'s do."""
        task = self.task
        context = ScheduleContext(sch=None, block=task.workload.main_block, target=task.target,
                                  workload=task.workload, intrinsic=task.intrinsic,
                                  mapping=task.mapping, tiles=tiles)
        for constraint in self.constraints:
            if constraint.reads_tiles_only and self._guarded(constraint, constraint.check,
                                                             context):
                self.pruned[constraint.name] += 1
                return False
        return True

    def clone(self) -> ConstraintCheck:
        return ConstraintCheck(self.task, self.constraints, self.pruned, self.left_out)


@derived_object
class MappingSpace(ms.space_generator.PySpaceGenerator):
    """The design spaces of one task: realise the mapping, apply the rules, tensorize."""

    def __init__(self, task: Task, rules: list[GenerationRule], constraints: list[Constraint],
                 pruned: Counter | None = None, left_out: LeftOut | None = None) -> None:
        self.task = task
        self.rules = rules
        self.check = ConstraintCheck(task, constraints, pruned, left_out)
        # The fields MetaSchedule's search reads from a space generator.
        self.sch_rules = []
        # Lanes first: the check's lowering then sees the program as it will be built.
        self.postprocs = [VectorizeMarkedLanes(), self.check,
                          ms.postproc.RewriteParallelVectorizeUnroll()]
        self.mutator_probs = {ms.mutator.MutateTileSize(): 0.9, ms.mutator.MutateUnroll(): 0.1}

    @property
    def pruned(self) -> Counter:
        return self.check.pruned

    @property
    def left_out(self) -> LeftOut:
        return self.check.left_out

    def _initialize_with_tune_context(self, context) -> None:
        pass

    def generate_design_space(self, mod) -> list:
        task = self.task
        try:
            shaped = reshape(task.workload, task.mapping, task.intrinsic, mod=mod,
                             pack_in_place=task.target.kind == "cpu")
        except RealisationError:
            return []
        context = ScheduleContext(
            sch=shaped.sch, block=shaped.block, target=task.target, workload=task.workload,
            intrinsic=task.intrinsic, mapping=task.mapping, spatial=shaped.spatial,
            reduce=shaped.reduce, inner=shaped.inner,
            notes={"spatial_axes": shaped.spatial_axes, "reduce_axes": shaped.reduce_axes})
        spaces = []
        finish = finisher(task.target)
        for sketch in apply_rules(context, self.rules, self.left_out):
            try:
                finish(sketch.sch, sketch.block, sketch.levels.get("R0") or sketch.reduce,
                       sketch.inner, shaped.compute)
            except RealisationError:
                continue
            spaces.append(sketch.sch)
        return spaces

    def clone(self) -> MappingSpace:
        return MappingSpace(self.task, self.rules, self.check.constraints, self.pruned,
                            self.left_out)
