"""Tile sizes drawn inside a task's constraints, before anything is replayed.

The tiling rule samples each loop's tiles with ``sample_perfect_tile``, one loop at a time,
while the register constraints bound the product of the register tiles (enough
accumulators to hide the intrinsic's latency, no more than the register file holds). Here
the tile decisions of a sketch are drawn in Python, all loops at once, and judged by the
constraints that read tiles only (``Constraint.reads_tiles_only``) on the tile loops they
would make; a draw is replayed into a program only once it passes, and the postprocessors
then check every constraint again on the program. A sketch whose tiles no rule annotated
(a GPU target's) cannot be drawn so.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from math import prod

from ..generation.cpu import LEVEL_KEY
from ..pruning.cpu import TiledLoop, tiled_loops


@dataclass(frozen=True)
class TileSite:
    """One ``sample_perfect_tile`` of a sketch, each of whose factors is a loop the tiling
    rule annotated with its level and axis."""

    inst: object  # the trace's SamplePerfectTile instruction
    parts: tuple[tuple[str, str], ...]  # (level, axis) of each factor, outermost first
    choices: tuple[tuple[int, ...], ...]  # every tiling the instruction may draw
    extent: int  # the loop's, which each tiling is a factoring of


class SketchDraw:
    """Draws the tile sizes of one sketch (a design space's trace) and replays them."""

    def __init__(self, trace, sites: list[TileSite], order: dict[tuple[str, str], int]) -> None:
        self.trace, self.sites, self.order = trace, sites, order
        self.instructions = _instructions(trace)  # what a replay of it shares with it

    @classmethod
    def of(cls, sketch) -> SketchDraw | None:
        """The draw of the tiles of ``sketch`` (a design space's schedule); None where some
        sampled tile is not annotated with a level, or two with the same level and axis
        (the constraints could not read them before the replay)."""
        trace = sketch.trace.simplified(remove_postproc=True)
        insts = list(trace.insts)
        split_of = {}  # a sampled factor's handle -> (the split's outputs, its position)
        annotated = {}  # a loop's handle -> its level annotation, "S2/m"
        for inst in insts:
            kind = inst.kind.name
            if kind == "Split":
                for k, factor in enumerate(inst.inputs[1:]):
                    if factor is not None and hasattr(factor, "__chandle__"):
                        split_of[factor.__chandle__()] = (inst.outputs, k)
            elif kind == "Annotate" and str(inst.attrs[0]) == LEVEL_KEY:
                annotated[inst.inputs[0].__chandle__()] = str(inst.inputs[1])
        sites = []
        for inst in insts:
            if inst.kind.name != "SamplePerfectTile":
                continue
            parts = []
            for out in inst.outputs:
                loops, k = split_of.get(out.__chandle__(), ((), -1))
                value = annotated.get(loops[k].__chandle__()) if k >= 0 else None
                if value is None:
                    return None
                level, _, axis = value.partition("/")
                parts.append((level, axis))
            decision = [int(v) for v in trace.decisions[inst]]
            n, innermost = (int(a) for a in inst.attrs)
            extent = prod(decision)
            sites.append(TileSite(inst, tuple(parts), _tilings(extent, n, innermost), extent))
        keys = [part for site in sites for part in site.parts]
        if not sites or len(set(keys)) < len(keys):
            return None
        # Where each tile loop sits in the sketch's program: rules after the tiling may
        # move a level (a local accumulator puts R0 inside S1).
        order = {(loop.level, loop.axis): k for k, loop in enumerate(tiled_loops(sketch))}
        return cls(trace, sites, order)

    @property
    def extents(self) -> tuple[int, ...]:
        """Each sampled loop's extent, in the order of :attr:`sites`."""
        return tuple(site.extent for site in self.sites)

    def draw(self, rng: random.Random) -> tuple[tuple[int, ...], ...]:
        return tuple(rng.choice(site.choices) for site in self.sites)

    def drawn_in(self, replay: tuple) -> tuple[tuple[int, ...], ...] | None:
        """The tiles a measured program drew where it is a replay of this sketch: the same
        instructions, each sampled tiling one its site may draw; else None. ``replay`` is
        :func:`as_replay` of the program's trace (made once for all sketches)."""
        replayed, instructions = replay
        if instructions != self.instructions:
            return None
        sampled = [inst for inst in replayed.insts if inst.kind.name == "SamplePerfectTile"]
        drawn = tuple(tuple(int(v) for v in replayed.decisions[inst]) for inst in sampled)
        if len(drawn) != len(self.sites) or any(
                tiles not in site.choices for site, tiles in zip(self.sites, drawn)):
            return None
        return drawn

    def tiles(self, drawn: tuple[tuple[int, ...], ...]) -> list[TiledLoop]:
        """The tile loops ``drawn`` makes, outermost first as in the sketch's program (the
        parallel level, which the program fuses into one loop, first)."""
        loops = [TiledLoop(level, axis, extent) for site, factors in zip(self.sites, drawn)
                 for (level, axis), extent in zip(site.parts, factors)]
        return sorted(loops, key=lambda loop: self.order.get((loop.level, loop.axis), -1))

    def replay(self, mod, drawn, postprocs, seed: int):
        """The program ``drawn`` makes (its other decisions sampled afresh, as
        MetaSchedule's replay does) through ``postprocs``; None where one rejects it."""
        from tvm.s_tir import Schedule
        from tvm.s_tir.schedule import Trace

        trace = Trace(self.trace.insts, {site.inst: list(factors)
                                         for site, factors in zip(self.sites, drawn)})
        sch = Schedule(mod, seed=seed, debug_mask=0, error_render_level="none")
        try:
            trace.apply_to_schedule(sch, remove_postproc=True)
            sch.enter_postproc()
            return sch if all(postproc.apply(sch) for postproc in postprocs) else None
        except Exception:  # noqa: BLE001 - a replay that fails is a rejected sample
            return None


def as_replay(trace) -> tuple:
    """(``trace`` without its postprocessing, its instructions as text): what
    :meth:`SketchDraw.drawn_in` compares with a sketch."""
    replayed = trace.simplified(remove_postproc=True)
    return replayed, _instructions(replayed)


def _instructions(trace) -> str:
    """``trace``'s instructions as text, without its decisions: two sketches of a space may
    differ only in an instruction's attributes (where a stage is computed)."""
    from tvm.s_tir.schedule import Trace

    return str(Trace(list(trace.insts), {}))


def draw_inside(sketches: list[SketchDraw], count: int, fits, rng: random.Random,
                attempts: int = 200, exclude: frozenset | set = frozenset()) -> list[tuple]:
    """Up to ``count`` distinct draws ``(sketch index, tiles)``, each from a sketch picked
    at random, whose tiles ``fits`` accepts and that ``exclude`` does not hold; gives up
    after ``attempts`` draws per draw asked for."""
    def fresh() -> tuple:
        k = rng.randrange(len(sketches))
        return k, sketches[k].draw(rng)

    return _distinct(fresh, sketches, count * attempts, count, fits, exclude)


def neighbours(sketches: list[SketchDraw], parent: tuple, count: int, fits,
               rng: random.Random, attempts: int = 50,
               exclude: frozenset | set = frozenset()) -> list[tuple]:
    """Up to ``count`` distinct draws that differ from ``parent`` (``(sketch index,
    tiles)``) in one sampled loop's tiles, which ``fits`` accepts and ``exclude`` does not
    hold: MetaSchedule's tile-size mutation, inside the constraints."""
    k, tiles = parent
    sites = sketches[k].sites

    def changed() -> tuple | None:
        i = rng.randrange(len(sites))
        key = (k, tiles[:i] + (rng.choice(sites[i].choices),) + tiles[i + 1:])
        return key if key != parent else None

    return _distinct(changed, sketches, count * attempts, count, fits, exclude)


def _distinct(next_draw, sketches: list[SketchDraw], tries: int, count: int, fits,
              exclude) -> list[tuple]:
    """Up to ``count`` distinct draws of ``next_draw`` (None: no draw) in ``tries`` calls,
    that ``exclude`` does not hold and whose tiles ``fits`` accepts, in the order drawn."""
    found: dict[tuple, None] = {}  # insertion-ordered, so a seeded draw repeats
    for _ in range(tries):
        if len(found) == count:
            break
        key = next_draw()
        if (key is not None and key not in found and key not in exclude
                and fits(sketches[key[0]].tiles(key[1]))):
            found[key] = None
    return list(found)


@lru_cache(maxsize=4096)
def _tilings(extent: int, n: int, innermost: int) -> tuple[tuple[int, ...], ...]:
    """Every way to write ``extent`` as a product of ``n`` ordered factors, the last at
    most ``innermost`` (no bound where it is not positive), as ``sample_perfect_tile``
    draws them."""
    if n == 1:
        return ((extent,),) if innermost <= 0 or extent <= innermost else ()
    return tuple((d, *rest) for d in range(1, extent + 1) if extent % d == 0
                 for rest in _tilings(extent // d, n - 1, innermost))
