"""One task's search over tile sizes drawn inside its constraints (:mod:`.tile_draw`).

Where every sketch of a task's design space has tiles the constraints can read before the
replay (a CPU mapping's), its candidates come from here, not from MetaSchedule's
evolutionary search, whose random population is drawn freely and rejected after each
replay (about 13 of 14 samples of an int8 convolution; ~4 s a batch here):

- while the learned cost model is cold (it ranks at random until it has seen
  ``num_warmup_samples`` trials), fresh draws ranked by their estimated time
  (:mod:`.tile_cost`), and only the best replayed;
- once it is warm, a population of neighbours of the task's fastest measured draws (one
  loop's tiles drawn again) and fresh draws, replayed, ranked by the cost model, a share
  ``eps_greedy`` of the batch picked at random.

Where ``kin_share`` is above 0, each population, the first included, also carries draws
its kin measured fast (:mod:`.kin_tiles`): while the model is cold up to that share of the
batch, best first, later for the cost model to rank with the rest. No tiles are replayed
twice in a search, nor those of the task's records when it resumes.
"""

from __future__ import annotations

import math
import random

from .kin_tiles import KinTiles
from .tile_cost import estimated_cycles
from .tile_draw import SketchDraw, as_replay, draw_inside, neighbours


class DrawnSearch:
    """The draws of one task: which tiles it replayed, and how fast those measured."""

    parents = 4  # the fastest measured draws whose neighbours join each population

    def __init__(self, task, spaces: list, space, seed: int, kin: KinTiles | None = None,
                 kin_share: float = 0.0) -> None:
        self.task, self.space = task, space  # space: the task's MappingSpace
        # Without a share the kin are neither asked nor told: nobody would read them.
        self.kin, self.kin_share = (kin if kin_share else None), kin_share
        self.sketches = [SketchDraw.of(sch) for sch in spaces]
        self.rng = random.Random(f"{seed}/{task.key}")
        self.drawn: set = set()  # (sketch index, tiles) replayed
        self.latency: dict[tuple, float] = {}  # measured draws -> us
        self._proposed: dict[int, tuple] = {}  # id(candidate) -> (candidate, its draw)

    @classmethod
    def of(cls, task, spaces: list, space, seed: int, kin: KinTiles | None = None,
           kin_share: float = 0.0) -> DrawnSearch | None:
        """The drawn search of a task, or None where its tiles cannot be drawn so."""
        if task.mapping is None or task.target.kind != "cpu" or not spaces:
            return None
        search = cls(task, spaces, space, seed, kin, kin_share)
        return search if None not in search.sketches else None

    def estimated(self, mod, trials: int, count: int) -> list | None:
        """``count`` fresh draws, the best estimated replayed until ``trials`` pass the
        postprocessors, after up to ``kin_share`` of ``trials`` of the kin's; None where a
        draw has no estimate."""
        task = self.task
        kin = self._kin_offers(math.ceil(self.kin_share * trials))
        draws = draw_inside(self.sketches, count, self.space.check.fits, self.rng,
                            exclude=self.drawn | set(kin))
        estimates = [estimated_cycles(self.sketches[k].tiles(tiles), task.workload,
                                      task.mapping, task.intrinsic, task.target.resources)
                     for k, tiles in draws]
        if None in estimates:
            return None
        order = sorted(range(len(draws)), key=estimates.__getitem__)
        return self._replayed(kin + [draws[j] for j in order], mod, limit=trials)

    def evolved(self, context, trials: int, cost_model, population: int,
                eps_greedy: float) -> list:
        """``trials`` candidates the cost model ranks best among ``population`` neighbours
        of the fastest measured draws and fresh draws (``eps_greedy`` of them at random)."""
        fits, rng = self.space.check.fits, self.rng
        pool: set = set(self._kin_offers(population // 8))
        parents = sorted(self.latency, key=self.latency.__getitem__)[:self.parents]
        for parent in parents:
            pool.update(neighbours(self.sketches, parent, population // (2 * len(parents)),
                                   fits, rng, exclude=self.drawn | pool))
        pool.update(draw_inside(self.sketches, population - len(pool), fits, rng,
                                exclude=self.drawn | pool))
        candidates = self._replayed(sorted(pool), context.mod)
        if not candidates:
            return []
        scores = cost_model.predict(context, candidates)
        ranked = [candidates[j] for j in sorted(range(len(candidates)),
                                                key=lambda j: -float(scores[j]))]
        picked = ranked[:trials - round(eps_greedy * trials)]
        rest = ranked[len(picked):]
        picked += rng.sample(rest, min(len(rest), trials - len(picked)))
        chosen = {id(candidate) for candidate in picked}
        for candidate in ranked:
            if id(candidate) not in chosen:
                self.drawn.discard(self._proposed.pop(id(candidate))[1])  # may come again
        return picked

    def remember(self, measured: list[tuple]) -> None:
        """Programs measured before this search began (a resumed task's records), as
        ``(trace, latency us or None)``: the draws they replayed are not drawn again, and
        the fastest are parents from the first evolution on."""
        for trace, latency in measured:
            replay = as_replay(trace)
            for k, sketch in enumerate(self.sketches):
                tiles = sketch.drawn_in(replay)
                if tiles is None:
                    continue
                self.drawn.add((k, tiles))
                if latency is not None:
                    self._measured((k, tiles), latency)
                break

    def learn(self, candidates: list, latencies: list[float | None]) -> None:
        """The measured latencies (None: failed) of candidates this search proposed."""
        for candidate, latency in zip(candidates, latencies):
            entry = self._proposed.get(id(candidate))
            if entry is not None and entry[0] is candidate:
                del self._proposed[id(candidate)]
                if latency is not None:
                    self._measured(entry[1], latency)

    def _measured(self, draw: tuple, latency: float) -> None:
        """``draw`` ran in ``latency`` us: a parent to be, and news for the kin."""
        self.latency[draw] = min(latency, self.latency.get(draw, latency))
        if self.kin is not None:
            k, tiles = draw
            self.kin.publish(self.sketches[k], self.task.key, tiles, latency)

    def _kin_offers(self, count: int) -> list[tuple]:
        """Up to ``count`` of the kin's draws (:meth:`.KinTiles.offered`) this search has
        not replayed and whose tiles fit."""
        fits, offers = self.space.check.fits, []
        offered = self.kin.offered(self.sketches, self.task.key) if self.kin and count else ()
        for draw in offered:
            if len(offers) == count:
                break
            if draw not in self.drawn and fits(self.sketches[draw[0]].tiles(draw[1])):
                offers.append(draw)
        return offers

    def _replayed(self, draws: list, mod, limit: int | None = None) -> list:
        """Candidates of ``draws`` that pass the postprocessors, in order, at most
        ``limit``; each draw replayed is remembered in :attr:`drawn`."""
        from tvm.s_tir import meta_schedule as ms

        args = ms.arg_info.ArgInfo.from_prim_func(mod["main"])
        out = []
        for k, tiles in draws:
            if limit is not None and len(out) == limit:
                break
            self.drawn.add((k, tiles))
            sch = self.sketches[k].replay(mod, tiles, self.space.postprocs,
                                          self.rng.randrange(1, 1 << 30))
            if sch is not None:
                candidate = ms.MeasureCandidate(sch, args)
                self._proposed[id(candidate)] = (candidate, (k, tiles))
                out.append(candidate)
        return out
