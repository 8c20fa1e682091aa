"""What a generation rule is.

A rule is a small object: a name, a docstring saying what it does, a
condition and an apply step, as Ansor's sketch rules are. Rules sample their
decisions with MetaSchedule's sampling instructions (``sch.sample_perfect_tile``,
``sch.sample_categorical``...), so one applied rule sequence is a design space
whose random decisions a trace records and replays.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar, Literal, get_args

if TYPE_CHECKING:
    from ..models import Intrinsic, MappingCandidate, Target
    from ..workloads import Workload


TileLevel = Literal["S0", "R0", "S1", "R1", "S2"]
"""The tile levels a tiling rule records, outermost first: S0 parallel (CPU) or thread block
(GPU), R0 the outer reduction tiles, S1 cache (CPU) or warp (GPU), R1 the inner reduction
tiles, S2 the register tile (a CPU's accumulators, a warp's fragments)."""
TILE_LEVELS: tuple[str, ...] = get_args(TileLevel)


@dataclass
class ScheduleContext:
    """What rules and constraints see: a schedule and what it was made for.

    For a realised mapping, ``spatial`` and ``reduce`` are the loops of the
    main block outside the intrinsic (outermost first) and ``inner`` the
    intrinsic's own loops; tiling rules replace ``spatial`` and ``reduce``
    with their tiles and record the levels in ``levels`` (a :data:`TileLevel`
    -> its loops, outermost first), which later rules and the constraints read.

    ``tiles``, where given, are the tile loops of a program not built yet (tile sizes the
    search drew): constraints that read nothing else check them with ``sch`` None.
    """

    sch: object  # tvm.s_tir.Schedule
    block: str  # name of the operator's main block
    target: Target
    workload: Workload | None = None
    intrinsic: Intrinsic | None = None
    mapping: MappingCandidate | None = None
    spatial: list = field(default_factory=list)
    reduce: list = field(default_factory=list)
    inner: list = field(default_factory=list)
    levels: dict[TileLevel, list] = field(default_factory=dict)
    notes: dict[str, object] = field(default_factory=dict)
    tiles: list | None = None  # of gta_core.pruning.cpu.TiledLoop

    def tiled_loops(self) -> list:
        """The tile loops: ``tiles`` where given, else read from ``sch``
        (:func:`gta_core.pruning.cpu.tiled_loops`)."""
        from ..pruning.cpu import tiled_loops

        return self.tiles if self.tiles is not None else tiled_loops(self.sch)

    def reads_constant(self, block) -> bool:
        """Whether ``block`` reads nothing but inputs the model holds constant (its weights):
        a stage a compiled model runs once, not per call, when it stays outside the
        compute loops (``gta_core.weight_prepack``)."""
        names = constant_names(self.workload)
        reads = self.sch.get(block).reads
        return bool(names) and bool(reads) and all(r.source.name in names for r in reads)

    def fork(self) -> ScheduleContext:
        """A copy on a copied schedule (loop and block handles stay valid in the copy)."""
        return replace(self, sch=self.sch.copy(), spatial=list(self.spatial),
                       reduce=list(self.reduce), inner=list(self.inner),
                       levels={k: list(v) for k, v in self.levels.items()},
                       notes=dict(self.notes))


class GenerationRule(ABC):
    """One generation rule; subclasses set ``name`` and ``stage`` and write a docstring.

    Rules run in ``stage`` order (ties: registration order): 10 layout and
    packing, 20 tiling, 30 memory placement, 40 parallelism, 50 unrolling and
    vectorisation.
    """

    name: ClassVar[str]
    stage: ClassVar[int] = 30

    @abstractmethod
    def applies(self, context: ScheduleContext) -> bool:
        """Whether the rule has something to do on ``context``."""

    @abstractmethod
    def apply(self, context: ScheduleContext) -> list[ScheduleContext] | None:
        """Transform ``context.sch`` in place, sampling decisions as needed.

        Return ``None`` to go on with ``context``, or a list of alternative
        contexts (made with :meth:`ScheduleContext.fork`) when the rule has
        structurally different choices; each becomes its own design space.
        """


def constant_names(workload) -> set[str]:
    """The names of ``workload``'s inputs held constant: a model's weights, or a spec's
    with ``weights=constant``."""
    return {workload.func.params[i].name for i in getattr(workload, "constant_inputs", ())}


def constant_stages(sch, constants: set[str]) -> set[str]:
    """The top-level stages of ``sch`` that read only ``constants`` or what such stages
    write: a model's weight packing (a chain of re-indexing copies), which the compiled
    model runs once, while compiling."""
    found, known = set(), set(constants)
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        stage = sch.get(block)
        if known and stage.reads and all(r.source.name in known for r in stage.reads):
            known |= {w.source.name for w in stage.writes}
            found.add(stage.name_hint)
    return found
