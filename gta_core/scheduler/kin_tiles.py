"""Tiles measured on one task, offered to its kin: the tasks of a run whose sketch is the
same program but for its loops' extents.

A network has many functions of one kind (MobileNet-V2's 1x1 convolutions, ResNet's 3x3
ones), and one budget over all of them: at 1000 trials MobileNet-V2's 35 functions got ~28
trials each, split over up to six mappings, and most found their best in their last few
trials. The tiles that made one function's program fast (its register tile above all) are
the best first guess for its kin's. Every measured draw is published here under its
sketch's instructions (:attr:`.SketchDraw.instructions`, the trace without its decisions);
a task whose sketch has the same instructions is offered its kin's fastest draws, each
fitted to its own extents (:func:`fitted`). Where the searches take them is
:mod:`.drawn_search`'s business.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator

from .tile_draw import SketchDraw


class KinTiles:
    """The measured draws of every task of one run, by task and sketch."""

    per_task = 2  # the fastest draws of each kin task offered

    def __init__(self) -> None:
        # task key -> (sketch instructions, tiles) -> best latency (us)
        self._measured: dict[str, dict[tuple[str, tuple], float]] = defaultdict(dict)

    def publish(self, sketch: SketchDraw, task: str, tiles: tuple, latency_us: float) -> None:
        """``task`` measured ``tiles`` (a draw of ``sketch``) at ``latency_us``."""
        draws, key = self._measured[task], (sketch.instructions, tiles)
        draws[key] = min(latency_us, draws.get(key, latency_us))

    def offered(self, sketches: list[SketchDraw], task: str) -> Iterator[tuple[int, tuple]]:
        """Draws ``(sketch index, tiles)`` for ``task``: the fastest ``per_task`` draws of
        each other task where they are draws of a sketch with the same instructions as
        ``sketches[k]``, fitted to its extents (as they are asked for: fitting costs more
        than ranking); every kin's fastest first, then their second fastest, the kin whose
        extents are nearest first; each draw once."""
        index = {sketch.instructions: k for k, sketch in enumerate(sketches)}
        ranked = []
        for key, draws in self._measured.items():
            if key == task:
                continue
            for rank, (instructions, tiles) in enumerate(sorted(draws, key=draws.get)
                                                         [:self.per_task]):
                k = index.get(instructions)
                if k is not None:
                    donor = tuple(math.prod(factors) for factors in tiles)
                    ranked.append((rank, _distance(donor, sketches[k].extents), k, tiles))
        ranked.sort(key=lambda entry: entry[:2])
        seen = set()
        for _, _, k, tiles in ranked:
            offer = (k, fitted(sketches[k], tiles))
            if offer not in seen:
                seen.add(offer)
                yield offer


def fitted(sketch: SketchDraw, tiles: tuple) -> tuple:
    """``tiles``, drawn for a sketch of other extents, as the nearest draw of ``sketch``:
    in each site the tiling nearest in log scale, an inner factor's distance weighing more
    than an outer one's (the register tile is what made the program fast; the outermost
    factor takes what the extent leaves)."""
    return tuple(min(site.choices, key=lambda choice: _log_distance(choice, factors))
                 for site, factors in zip(sketch.sites, tiles))


def _log_distance(choice: tuple, factors: tuple) -> float:
    return sum((j + 1) * abs(math.log(a / b)) for j, (a, b) in enumerate(zip(choice, factors)))


def _distance(extents: tuple, others: tuple) -> float:
    return sum(abs(math.log(a / b)) for a, b in zip(extents, others))
