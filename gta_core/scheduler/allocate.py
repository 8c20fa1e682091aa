"""Where the next trials go: the dual-task scheduler's decision, free of TVM.

Tasks are (subgraph, mapping) pairs. :func:`decide` looks at what has been
measured so far and picks the next task and how many trials it gets:

* **Start**: every live mapping of every subgraph whose prior (its roofline
  cost before any trial, :mod:`.prior`) is within ``admit_ratio`` of the
  subgraph's best prior first gets ``start`` trials, the best prior first (a
  small share, so that a budget smaller than the mapping count still reaches
  each subgraph's best mappings). A mapping with a worse prior starts later,
  when its prior, scaled by what the measured mappings reached against theirs,
  earns it a share of trials like any measured mapping's promise.
* **Priors calibrated on the run**: a roofline ranks mappings in the right order
  but compresses their gaps (int8 mappings whose priors differ by 1.2x measured
  2-5x apart), so prior ratios count raised to the power that the run's measured
  mappings show (:func:`prior_exponent`), in admitting and in promising alike.
* **Between subgraphs**, as Ansor's gradient task scheduler: the subgraph whose
  weighted best latency is expected to fall fastest per trial, mixing the
  recent measured slope with the optimistic ``best / trials`` decay.
* **Within a subgraph**, trials in proportion to promise: each mapping's
  promise is its best latency at equal effort (scaled by how much the leader
  gained after as many trials), lowered by its recent improvement and by the
  cost model's prediction for its unmeasured candidates; a mapping ``r`` times
  less promising than the best gets ``r ** -focus`` of its trials, so a close
  second keeps being measured and can overtake.
* **Dropping**: once a mapping has had its start, it is dropped, with the
  reason, when its promise is ``drop_ratio`` times the subgraph's best and its
  improvement rate cannot close the gap in the trials left; so is one whose
  trials all failed. One whose design space has nothing left stops as well.

:func:`decide_even` is the even split, kept as the reference the dual-task
scheduler is benchmarked against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

INF = math.inf


class _BestSoFar:
    """A best-latency curve: ``curve[n]`` is the best (us) after trial n + 1."""

    curve: list[float]

    @property
    def trials(self) -> int:
        return len(self.curve)

    @property
    def best_us(self) -> float:
        return self.curve[-1] if self.curve else INF


@dataclass
class MappingState(_BestSoFar):
    """What the scheduler knows of one (subgraph, mapping) task."""

    id: str
    curve: list[float] = field(default_factory=list)
    predicted_us: float | None = None  # the cost model's best guess for its next candidates
    prior: float | None = None  # its cost before any trial, in any unit shared by the subgraph
    dropped: str | None = None  # why it gets no more trials
    exhausted: bool = False  # its design space has no unmeasured candidate left

    @property
    def live(self) -> bool:
        return self.dropped is None and not self.exhausted

    def record(self, latencies: list[float | None]) -> None:
        """Append measured trials; None (a failed build or run) leaves the best as it was."""
        best = self.best_us
        for latency in latencies:
            if latency is not None:
                best = min(best, latency)
            self.curve.append(best)


@dataclass
class SubgraphState(_BestSoFar):
    """One subgraph (a workload) of the application: its weight and its mappings."""

    name: str
    weight: float
    mappings: list[MappingState]
    curve: list[float] = field(default_factory=list)  # over all its mappings, in trial order

    def record(self, mapping: int, latencies: list[float | None]) -> None:
        """Append trials measured on ``mapping`` (None: failed), in the order measured."""
        m = self.mappings[mapping]
        m.record(latencies)
        for best in m.curve[len(m.curve) - len(latencies):]:
            self.curve.append(min(self.best_us, best))


@dataclass(frozen=True)
class AllocationSettings:
    batch: int = 8  # trials measured together in one round (the driver's unit)
    step: int = 2  # trials per decision once started: a round spreads over several tasks
    start: int = 8  # trials each mapping gets first (fewer when the budget is small)
    admit_ratio: float = 1.5  # mappings whose prior is within this of the best start at once
    window: int = 16  # trials over which recent improvement is measured
    alpha: float = 0.2  # weight of the measured slope against the optimistic decay (Ansor)
    focus: float = 2.0  # how sharply trials favour the most promising mapping
    drop_ratio: float = 1.5  # a mapping this many times slower than the best may be dropped
    drop_after: int = 6  # ... once it has had this many trials, unless it is clear_ratio
    clear_ratio: float = 3.0  # times slower: its first few are a handful of draws from
    # thousands of tilings (in two 1000-trial runs of MobileNet-V2, three of the four tasks
    # whose winning mapping changed had it dropped after 3 trials at 1.7-1.8x the leader)
    model_floor: float = 0.5  # the cost model may lower a mapping's estimate at most to this
    max_exponent: float = 6.0  # prior ratios count at most to this power (prior_exponent)


@dataclass(frozen=True)
class Decision:
    subgraph: int
    mapping: int
    trials: int
    why: str


def admitted(s: SubgraphState, settings: AllocationSettings, exponent: float = 1.0
             ) -> list[int]:
    """The mappings that start at once, best prior first: those whose prior, its ratio to
    the best raised to ``exponent`` (:func:`prior_exponent`), is within ``admit_ratio`` of
    the best (all of them where no prior is known)."""
    priors = [m.prior for m in s.mappings if m.prior is not None]
    bar = settings.admit_ratio ** (1 / exponent) * min(priors) if priors else INF
    order = sorted(range(len(s.mappings)), key=lambda j: s.mappings[j].prior or 0.0)
    return [j for j in order if (s.mappings[j].prior or 0.0) <= bar]


def start_trials(s: SubgraphState, share: float, settings: AllocationSettings,
                 exponent: float = 1.0) -> int:
    """Trials each mapping gets first: the admitted mappings' starts take at most a quarter
    of the subgraph's ``share``, the rest going where the starts point."""
    return max(1, min(settings.start,
                      int(share) // max(1, 4 * len(admitted(s, settings, exponent)))))


def prior_exponent(subgraphs: list[SubgraphState], settings: AllocationSettings) -> float:
    """How much further apart the run's measured mappings are than their priors: the median,
    over every measured mapping whose prior differs from its subgraph leader's, of
    ``log(latency ratio) / log(prior ratio)`` at equal effort (0 where the prior ranked
    the two the wrong way round), within 1 and ``max_exponent``; 1 (priors taken as they
    are) before any such pair is measured."""
    samples = []
    for s in subgraphs:
        measured = [m for m in s.mappings
                    if m.trials and m.prior and math.isfinite(m.best_us)]
        if len(measured) < 2:
            continue
        fastest = min(s.mappings, key=lambda m: m.best_us)
        effort = {m.id: _equal_effort_us(m, s, fastest) for m in measured}
        leader = min(measured, key=lambda m: effort[m.id])
        for m in measured:
            ratio = m.prior / leader.prior
            if ratio > 1.01:
                samples.append(math.log(effort[m.id] / effort[leader.id]) / math.log(ratio))
            elif ratio < 1 / 1.01:  # the prior ranked it above the leader: a vote for 0
                samples.append(0.0)
    if not samples:
        return 1.0
    samples.sort()
    median = samples[len(samples) // 2]
    return min(settings.max_exponent, max(1.0, median))


def decide(subgraphs: list[SubgraphState], budget: int, settings: AllocationSettings,
           ) -> tuple[Decision | None, list[tuple[int, int, str]]]:
    """The next task to measure, and the mappings to drop first.

    ``budget`` is the total trials of the run (over all subgraphs); returns
    ``(None, drops)`` when no task can take a trial. Each drop is
    ``(subgraph, mapping, reason)``; the caller applies them.
    """
    left = budget - sum(s.trials for s in subgraphs)
    if left <= 0:
        return None, []
    share = budget / len(subgraphs)
    exponent = prior_exponent(subgraphs, settings)
    starts = [start_trials(s, share, settings, exponent) for s in subgraphs]
    drops = [(i, j, why) for i, s in enumerate(subgraphs)
             for j, why in _drops(s, starts[i], left, settings)]
    dropped = {(i, j) for i, j, _ in drops}

    def live(i: int) -> list[int]:
        return [j for j, m in enumerate(subgraphs[i].mappings)
                if m.live and (i, j) not in dropped]

    # Starts first, the subgraph with the fewest trials first: every admitted mapping is
    # seen before any is favoured, while a subgraph's starts take less than half its share.
    for i in sorted(range(len(subgraphs)), key=lambda i: subgraphs[i].trials):
        s = subgraphs[i]
        for j in [j for j in admitted(s, settings, exponent) if j in live(i)]:
            m = s.mappings[j]
            if not m.trials and s.trials >= share / 2:
                drops.append((i, j, f"not started: the starts of {s.name} used half its "
                                    f"share of the {budget} trials before reaching it"))
                dropped.add((i, j))
            elif m.trials < starts[i]:
                return Decision(i, j, min(starts[i] - m.trials, left), "start"), drops
    candidates = [i for i in range(len(subgraphs)) if live(i)]
    if not candidates:
        return None, drops
    i = max(candidates, key=lambda i: subgraphs[i].weight * _gain_per_trial(subgraphs[i],
                                                                              settings))
    s = subgraphs[i]
    # Trials in proportion to promise: a mapping half as promising as the best
    # gets (1/2)**focus of its trials, so a close second keeps being measured.
    # A mapping not started yet counts as if it had its start: it starts once its share
    # of the trials (by its prior, calibrated on the measured ones) is worth that many.
    promise = {j: _promise_us(s.mappings[j], s, settings, exponent) for j in live(i)}
    top = min(promise.values())
    share_of = {j: (top / p) ** settings.focus if math.isfinite(p) else 0.0
                for j, p in promise.items()}
    j = min(share_of, key=lambda j: (s.mappings[j].trials or starts[i]) / share_of[j]
            if share_of[j] else INF)
    if not s.mappings[j].trials:
        return Decision(i, j, min(starts[i], left),
                        f"start: its prior calibrated on {s.name}'s measured mappings promises "
                        f"{promise[j]:.1f} us, subgraph best {s.best_us:.1f} us"), drops
    why = (f"largest expected gain: {s.name}; mapping promise {promise[j]:.1f} us, "
           f"subgraph best {s.best_us:.1f} us")
    return Decision(i, j, min(settings.step, left), why), drops


def _gain_per_trial(s: SubgraphState, settings: AllocationSettings) -> float:
    """Ansor's estimate of how fast the subgraph's best latency falls per trial."""
    best = s.best_us
    if not math.isfinite(best):
        return INF  # nothing runs yet: any success is worth more than anything else
    window = min(settings.window, s.trials - 1)
    before = s.curve[-window - 1]
    slope = (before - best) / window if window and math.isfinite(before) else 0.0
    decay = best / max(1, s.trials)
    return settings.alpha * slope + (1 - settings.alpha) * decay


def _improvement_per_trial(m: MappingState, window: int) -> float:
    if m.trials <= window or not math.isfinite(m.curve[-window - 1]):
        return 0.0
    return (m.curve[-window - 1] - m.best_us) / window


def _equal_effort_us(m: MappingState, s: SubgraphState,
                     leader: MappingState | None = None) -> float:
    """The mapping's best, scaled by how much the leader (``s``'s fastest mapping, found
    when not given) gained after that many trials.

    A mapping started late is compared with the leader at equal effort, not
    with what the leader reached after many more trials.
    """
    leader = leader or min(s.mappings, key=lambda other: other.best_us)
    if m is leader or not m.trials or leader.trials <= m.trials:
        return m.best_us
    then = leader.curve[m.trials - 1]
    return m.best_us * min(1.0, leader.best_us / then) if math.isfinite(then) else m.best_us


def _promise_us(m: MappingState, s: SubgraphState, settings: AllocationSettings,
                exponent: float = 1.0) -> float:
    """How low the mapping's latency may get with more trials (lower is more promising):
    its best at equal effort, lowered by its recent trend and by the cost model's
    prediction, each at most down to ``model_floor`` of its best. A mapping not measured
    yet promises what a measured one reached at equal effort, times their priors' ratio
    raised to ``exponent`` (the lowest such promise over the subgraph's measured ones)."""
    if not m.trials and m.prior is not None:
        promises = [_equal_effort_us(o, s) * (m.prior / o.prior) ** exponent
                    for o in s.mappings if o.trials and o.prior and math.isfinite(o.best_us)]
        return min(promises, default=INF)
    if not math.isfinite(m.best_us):
        return INF
    floor = m.best_us * settings.model_floor
    estimate = _equal_effort_us(m, s)
    trend = m.best_us - settings.step * _improvement_per_trial(m, settings.window)
    estimate = min(estimate, max(trend, floor))
    if m.predicted_us is not None:
        estimate = min(estimate, max(m.predicted_us, floor))
    return estimate


def _drops(s: SubgraphState, start: int, left: int,
           settings: AllocationSettings) -> list[tuple[int, str]]:
    best = s.best_us
    leader = min(s.mappings, key=lambda m: m.best_us, default=None)
    drops = []
    for j, m in enumerate(s.mappings):
        if not m.live or m.trials < max(start, 2):  # one random sample can be far off
            continue
        if not math.isfinite(m.best_us):
            drops.append((j, f"all {m.trials} trials failed to build or run"))
            continue
        if m is leader or _promise_us(m, s, settings) < settings.drop_ratio * best:
            continue
        if m.trials < settings.drop_after and _equal_effort_us(m, s) < settings.clear_ratio * best:
            continue
        rate = _improvement_per_trial(m, settings.window)
        if m.best_us - rate * left > best:
            drops.append((j, f"best {m.best_us:.1f} us is {m.best_us / best:.1f}x mapping "
                             f"{leader.id}'s after {m.trials} trials (and "
                             f"{_equal_effort_us(m, s) / best:.1f}x at equal trials), improving "
                             f"{rate:.2f} us/trial: cannot catch up in the {left} trials left"))
    return drops


def decide_even(subgraphs: list[SubgraphState], budget: int, settings: AllocationSettings,
                ) -> tuple[Decision | None, list[tuple[int, int, str]]]:
    """The even split: each subgraph ``budget / n``, each of its mappings an even share."""
    left = budget - sum(s.trials for s in subgraphs)
    if left <= 0:
        return None, []
    for i, (s, share) in enumerate(zip(subgraphs, even_split(budget, len(subgraphs)))):
        live = [m for m in s.mappings if not m.exhausted]
        for m, part in zip(live, even_split(share, len(live))):
            if m.trials < part:
                return Decision(i, s.mappings.index(m), min(settings.batch, part - m.trials,
                                                             left), "even share"), []
    return None, []


def even_split(total: int, parts: int) -> list[int]:
    """``total`` trials over ``parts`` tasks, the remainder to the first ones."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]
