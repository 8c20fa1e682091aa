"""Search one task: evolutionary search over its design space, guided by a cost model.

The dual-task scheduler advances each task's :class:`TaskSearch` a batch at a
time. Each batch: the search proposes candidates (the cost model ranks mutated
traces; the constraints reject what cannot fit before anything is built),
the builder and runner measure them, every result goes to the record store
at once, and the search and cost model learn from it. Where a task's tile sizes can be
drawn inside its constraints (a CPU mapping's), the candidates come from
:mod:`.drawn_search`; elsewhere from MetaSchedule's evolutionary search.

A CPU candidate timed here is then checked: the artifact the runner timed is run once
more on the workload's inputs and compared with the numpy reference. A wrong one is
recorded with ``correct`` False and the mismatch, and the search and the cost model see
it as failed, so no task's best (and no model's target) is a latency nobody verified.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import types
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..database import trace_key
from ..generation.bounds import outside_error
from ..generation.rule import GenerationRule
from ..measure.artifact_check import ArtifactCheck, Reference
from ..measure.offline import OfflineRound
from ..measure.rpc import check_farm
from ..measure.runners import error_line, remove_artifact
from ..pruning.constraint import Constraint
from ..weight_prepack import as_model_runs
from .drawn_search import DrawnSearch
from .kin_tiles import KinTiles
from .retime import timed_again_where_stalled
from .space import MappingSpace, Task, model_generic_space
from .tile_cost import estimated_cycles


@dataclass(frozen=True)
class SearchSettings:
    batch: int = 8  # candidates measured per round
    population: int = 64
    # A drawn search's pool for the cost model to rank: this many draws replayed per trial
    # asked, at most ``population``. The scheduler gives most mappings 1-3 trials a round, and
    # a pool of 64 replayed for each (~40 ms a replay, and the model's features) was 60% of
    # an int8 conv2d's tuning (32 trials: 22.6 s replaying 528 draws, 6.8 s ranking them).
    population_per_trial: int = 8
    genetic_iterations: int = 2
    eps_greedy: float = 0.05  # share of each batch picked at random, not by the cost model
    seed: int = 0
    # A task's first proposal: this many random samples (at least four times the trials
    # asked for), the best by their estimated time kept. An evolutionary search costs ~7 s
    # a batch here (population, mutations, constraint checks), and most mappings never get
    # past a start of one or two trials: 22 of 24 trials on a 28-mapping int8 conv2d paid
    # one each. Drawing 16 costs ~0.6 s.
    start_samples: int = 16
    # Of a task's batches while the cost model is cold (its first included), the share taken
    # from the draws its kin measured fastest (kin_tiles), fitted to its extents; once the
    # model is warm they join its populations. 0 (the default): the kin are not consulted.
    # Measured on MobileNet-V2 at 300 trials (docs/results-history.md), 0.5 gave 1.14x and 0.89x in
    # two float32 seeds and 0.77-1.01x in int8: no reliable gain yet.
    kin_share: float = 0.0


@dataclass
class TaskOutcome:
    task: Task
    measured: int = 0  # trials on record for this task, old and new
    new: int = 0
    best_latency_us: float | None = None
    pruned: Counter = field(default_factory=Counter)
    left_out: dict[tuple[str, str], str] = field(default_factory=dict)  # see space.LeftOut
    failed: int = 0  # new trials that failed to build or run
    wrong: int = 0  # new trials that ran but computed a wrong output
    checked: int = 0  # new trials whose output was checked against the reference
    check_seconds: float = 0.0  # spent on those checks
    seconds: float = 0.0
    predicted_score: float | None = None  # the cost model's best score in the last batch


class TaskSearch:
    """The search of one task, advanced a batch at a time by the scheduler.

    The MetaSchedule context (design spaces, evolutionary search state) is
    made at the first :meth:`propose`, since a TuneContext costs seconds: a task
    the scheduler never picks costs nothing. ``cost_model`` may be shared by
    every task of a run (MetaSchedule's XGB model keeps one group per
    workload, so the mappings of one workload learn from each other's trials).
    """

    def __init__(self, task: Task, *, store, builder, runner, cost_model,
                 rules: list[GenerationRule], constraints: list[Constraint],
                 settings: SearchSettings = SearchSettings(), max_trials: int = 1 << 20,
                 reference: Reference | None = None, kin: KinTiles | None = None) -> None:
        self.task = task
        self.kin = kin  # the run's measured draws by sketch, shared with the task's kin
        self.store, self.builder, self.runner = store, builder, runner
        self.cost_model = cost_model
        self.rules, self.constraints = rules, constraints
        self.settings = settings
        self.max_trials = max_trials
        self.outcome = TaskOutcome(task=task, measured=store.measured_count(task.key))
        self.exhausted = False  # no design space, or no unmeasured candidate left
        self._context = None
        self._workload: int | None = None
        self._pending: list = []  # candidates the search picked that are not measured yet
        self._draws: DrawnSearch | None = None  # where its tiles can be drawn, made at start
        # Outputs are checked where the runner ran the artifact on this machine's CPU;
        # ``reference`` lets the mappings of one workload share its expected output.
        self.check = (ArtifactCheck(task.workload, reference)
                      if task.target.kind == "cpu" and _runs_here(runner) else None)
        _best_from_store(self.outcome, store)

    def propose(self, trials: int) -> list:
        """Up to ``trials`` candidates the search picks next (none: :attr:`exhausted`)."""
        start = time.perf_counter()
        context = self._context or self._start()
        for _ in range(3):  # again if a whole batch was measured before
            if context is None or self._pending:
                break
            if self.outcome.measured == 0:
                first = self._unscheduled(context)
                self._pending = first + (self._sample_start(context, trials - len(first))
                                         if trials > len(first) else [])
            elif self._draws is not None and not _model_warm(self.cost_model):
                self._pending = self._draws.estimated(context.mod, trials,
                                                      self._start_count(trials)) or []
            elif self._draws is not None:
                self._pending = self._draws.evolved(
                    context, trials, self.cost_model,
                    min(self.settings.population, self.settings.population_per_trial * trials),
                    self.settings.eps_greedy)
            if not self._pending:  # past its start, or no random sample passed the checks
                self._pending = list(context.search_strategy.generate_measure_candidates() or [])
            if not self._pending:
                break
            self._pending = self._unseen(self._pending)
        if not self._pending:
            self.exhausted = True
        # A batch larger than asked for keeps its rest for the next round: the
        # search has picked those already, and the cost model can score them.
        candidates, self._pending = self._pending[:trials], self._pending[trials:]
        self.outcome.seconds += time.perf_counter() - start
        return candidates

    def _unseen(self, candidates: list) -> list:
        """``candidates`` but those the store holds a record of: a run resumed after a kill,
        or another process on the same records, measured them. (MetaSchedule's search knows
        only the measurements of its own life and the best few of the database.)"""
        seen = self.store.seen_traces(self.task.key)
        return [c for c in candidates if trace_key(c.sch.trace) not in seen]

    def absorb(self, candidates: list, results: list, records: list) -> list[float | None]:
        """Learn from measured ``candidates``; their latencies in us (None: failed)."""
        start = time.perf_counter()
        context = self._context
        context.search_strategy.notify_runner_results(candidates, results)
        self.cost_model.update(context, candidates, results)
        self.outcome.predicted_score = (_predicted_score(self.cost_model, context, self._pending)
                                        if self._pending else None)
        wrong = sum(1 for r in records if r.correct is False)
        self.outcome.wrong += wrong
        self.outcome.failed += sum(1 for r in results if r.error_msg) - wrong
        if self.check is not None:
            self.outcome.checked = self.check.checked
            self.outcome.check_seconds = self.check.seconds
        self.outcome.new += len(candidates)
        self.outcome.measured += len(candidates)
        _best_from_store(self.outcome, self.store)
        latencies = [r.latency_us if r.ok else None for r in records]
        if self._draws is not None:
            self._draws.learn(candidates, latencies)
        self.outcome.seconds += time.perf_counter() - start
        return latencies

    def _start(self):
        import tvm
        from tvm.s_tir import meta_schedule as ms

        task, settings = self.task, self.settings
        mod = tvm.IRModule({"main": task.workload.prim_func()})
        self._workload = self.store.commit_workload(mod)
        space = (MappingSpace(task, self.rules, self.constraints, self.outcome.pruned,
                              self.outcome.left_out)
                 if task.mapping is not None else model_generic_space())
        with _stock_intrinsics_skipped(task.target.kind == "cpu"):
            context = ms.TuneContext(
                mod=mod, target=task.target.tvm_target(), space_generator=space,
                search_strategy=ms.search_strategy.EvolutionarySearch(
                    population_size=settings.population,
                    init_min_unmeasured=settings.population // 2,
                    genetic_num_iters=settings.genetic_iterations,
                    eps_greedy=settings.eps_greedy),
                task_name=task.key, rand_state=settings.seed, num_threads=1)
        with _unknown_rule_warnings_dropped(task.mapping is None):
            spaces = context.space_generator.generate_design_space(mod)
        if not spaces:
            self.exhausted = True
            return None
        database = self.store.metaschedule_view(task.key, task.mapping_id)
        context.search_strategy.pre_tuning(self.max_trials, settings.batch, spaces, database,
                                           self.cost_model)
        self._context, self._spaces, self._database = context, spaces, database
        self._draws = DrawnSearch.of(task, spaces, space, settings.seed, self.kin,
                                     settings.kin_share)
        if self._draws is not None:
            self._draws.remember(self._recorded(mod))
        return context

    def _recorded(self, mod) -> list[tuple]:
        """The task's records (a resumed search's) as ``(trace, latency us or None)``; a
        record whose trace no longer applies (older rules) is left out."""
        from tvm.s_tir.schedule import ScheduleError

        recorded = []
        for record in self.store.records(self.task.key):
            try:
                trace = self.store.schedule(record, mod).trace
            except (ScheduleError, RuntimeError):
                continue
            recorded.append((trace, record.latency_us if record.ok else None))
        return recorded

    def _unscheduled(self, context) -> list:
        """A task no intrinsic takes starts with TVM's own program for it, unscheduled (what
        the model compiles to with no record), so its best is never slower than leaving it
        untuned: at 2 threads, MetaSchedule's samples of a small pooling ran slower than its
        plain loops."""
        from tvm.s_tir import Schedule
        from tvm.s_tir import meta_schedule as ms

        if self.task.mapping is not None:
            return []
        return [ms.MeasureCandidate(Schedule(context.mod),
                                    ms.arg_info.ArgInfo.from_prim_func(context.mod["main"]))]

    def _sample_start(self, context, trials: int) -> list:
        """The first candidates of a task with nothing on record: random samples of its
        design space, the best ``trials`` by their estimated time. Drawn inside the tile
        constraints where its sketches allow (:meth:`.DrawnSearch.estimated`), else
        MetaSchedule's ReplayTrace (each sketch's trace replayed with fresh decisions,
        through the same postprocessors), ranked by :meth:`_ranked`."""
        from tvm.s_tir import meta_schedule as ms

        count = self._start_count(trials)
        drawn = self._draws.estimated(context.mod, trials, count) if self._draws else None
        if drawn is not None:
            return drawn
        replay = ms.search_strategy.ReplayTrace(max_fail_count=8 * count)
        replay._initialize_with_tune_context(context)
        replay.pre_tuning(count, count, self._spaces, self._database, self.cost_model)
        try:
            samples = list(replay.generate_measure_candidates() or [])
        finally:
            replay.post_tuning()
        if len(samples) > trials:
            samples = self._ranked(context, samples)
        return samples[:trials]

    def _start_count(self, trials: int) -> int:
        return max(self.settings.start_samples, 4 * trials)

    def _ranked(self, context, samples: list) -> list:
        """``samples`` best first: by their tile loops' estimated time where every one has
        an estimate (:mod:`.tile_cost`), else by the cost model once it is warm. The learned
        model has seen no program of this workload yet, and ranked a conv's start samples
        no better than chance (:mod:`.tile_cost` gives the numbers)."""
        task = self.task
        if task.target.kind == "cpu" and task.mapping is not None:
            estimates = [estimated_cycles(c.sch, task.workload, task.mapping, task.intrinsic,
                                          task.target.resources) for c in samples]
            if all(e is not None for e in estimates):
                order = sorted(range(len(samples)), key=lambda k: estimates[k])
                return [samples[k] for k in order]
        if _model_warm(self.cost_model):
            scores = self.cost_model.predict(context, samples)
            order = sorted(range(len(samples)), key=lambda k: -float(scores[k]))
            return [samples[k] for k in order]
        return samples

    def close(self) -> None:
        if self._context is not None:
            self._context.search_strategy.post_tuning()
            self._context = None


_STOCK_INTRINSICS = "tvm.s_tir.tensor_intrin"


@contextmanager
def _unknown_rule_warnings_dropped(drop: bool):
    """Drop MetaSchedule's "Unknown schedule rule" warnings from this process's stderr.

    TOPI's pooling blocks name custom rules (``meta_schedule.pool_max``) that TVM 0.27
    registers for no CPU, so the generic rules warn on every pooling task, then schedule the
    block as any other: noise, not news. Registering the rules would change the space.
    """
    if not drop:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept, warning = [], False
            for line in caught.read().decode(errors="replace").splitlines(keepends=True):
                # the warning's second line lists the functions it looked for, indented
                warning = "Unknown schedule rule" in line or (warning and line.startswith(" "))
                if not warning:
                    kept.append(line)
            sys.stderr.write("".join(kept))


@contextmanager
def _stock_intrinsics_skipped(skip: bool):
    """Let a TuneContext be made without importing TVM's stock tensor intrinsics.

    TuneContext's constructor imports ``tvm.s_tir.tensor_intrin``, every stock
    intrinsic (its CUDA ones take ~18 s to parse here), which a CPU task never
    uses: its own intrinsic module is imported by the mapping's realisation. A
    stand-in module answers that one import and is removed afterwards, so a
    real import later (a GPU plugin's) still loads the package.
    """
    if not skip or _STOCK_INTRINSICS in sys.modules:
        yield
        return
    sys.modules[_STOCK_INTRINSICS] = types.ModuleType(_STOCK_INTRINSICS)
    try:
        yield
    finally:
        del sys.modules[_STOCK_INTRINSICS]


def _model_warm(cost_model) -> bool:
    """False while the model says it is still warming up (MetaSchedule's XGB model answers
    random numbers until it has seen ``num_warmup_samples`` trials)."""
    warmup = getattr(cost_model, "num_warmup_samples", 0)
    return getattr(cost_model, "data_size", warmup) >= warmup


def _predicted_score(cost_model, context, candidates) -> float | None:
    """The cost model's best score for ``candidates``: 1.0 means the workload's best so far.

    None while the model says it is still warming up (MetaSchedule's XGB model
    answers random numbers until it has seen ``num_warmup_samples`` trials).
    """
    if not _model_warm(cost_model):
        return None
    try:
        scores = cost_model.predict(context, candidates)
    except Exception:  # noqa: BLE001 - a model that cannot predict gives no hint
        return None
    return float(max(scores)) if len(scores) else None


def measure_round(picks: list[tuple[TaskSearch, list]]) -> list[tuple[list, list]]:
    """Build and run the candidates of several tasks together, so that the builder's
    workers all have work; every result goes to the store as the round ends.

    ``picks`` are (task search, candidates); returns, per pick, MetaSchedule's
    runner results and the store's records, in order. All tasks share one
    builder and runner (those of the first).
    """
    from tvm.s_tir import meta_schedule as ms

    builder, runner = picks[0][0].builder, picks[0][0].runner
    flat = [(search, c) for search, candidates in picks for c in candidates]
    # A candidate that may write outside a buffer is neither built nor run: it corrupts
    # memory (generation/bounds.py).
    refused = [outside_error(c.sch.mod) for _, c in flat]
    if isinstance(runner, OfflineRound):
        runner.write(flat, refused)  # measured elsewhere: the run stops here (RoundWritten)
    # A model's function is built, timed and checked as the compiled model runs it, its
    # constant weights laid out once beforehand (weight_prepack): a trial that paid the
    # layout on every call was timed at 1.1-45x the compute the model runs.
    programs = [as_model_runs(s.task.workload, c.sch.mod) for s, c in flat]
    built = [ms.builder.BuilderResult(None, error) for error in refused]
    inside = [i for i, result in enumerate(built) if result.error_msg is None]
    made = builder.build([ms.builder.BuilderInput(
        programs[i].module() if programs[i].prepack is not None else flat[i][1].sch.mod,
        flat[i][0].task.target.tvm_target()) for i in inside]) if inside else []
    for i, result in zip(inside, made):
        built[i] = result
    inputs, where = [], []
    for index, ((search, candidate), result) in enumerate(zip(flat, built)):
        if result.error_msg is None:
            target = search.task.target
            device = "cpu" if target.kind == "cpu" else target.tvm_target().kind.name
            program = programs[index]
            inputs.append(ms.runner.RunnerInput(
                result.artifact_path, device, candidate.args_info if program.prepack is None
                else ms.arg_info.ArgInfo.from_prim_func(program.compute)))
            where.append(index)
    results = [ms.runner.RunnerResult(run_secs=None, error_msg=r.error_msg) for r in built]
    timed: list[list[float] | None] = [None] * len(flat)  # what the runner measured
    correct: list[bool | None] = [None] * len(flat)  # None: not checked
    try:
        ran = [f.result() for f in runner.run(inputs)] if inputs else []
        if ran and all(r.error_msg is not None for r in ran):
            check_farm(runner)  # a tracker that went away ends the run, not every candidate
        ran = timed_again_where_stalled(runner, inputs, ran, [flat[i][0] for i in where])
        for index, result in zip(where, ran):
            results[index] = result
            if result.error_msg is not None:
                continue
            timed[index] = [float(s) for s in result.run_secs]
            search, program = flat[index][0], programs[index]
            if search.check is not None:
                mismatch = _mismatch(search.check, built[index].artifact_path, program,
                                     search.task.target)
                correct[index] = mismatch is None
                if mismatch is not None:  # the search and the cost model see a failure
                    results[index] = ms.runner.RunnerResult(run_secs=None,
                                                            error_msg=f"wrong: {mismatch}")
    finally:
        for result in built:
            if result.error_msg is None:
                remove_artifact(str(result.artifact_path))
    records = []
    for index, ((search, candidate), result) in enumerate(zip(flat, results)):
        task = search.task
        records.append(search.store.append(
            task.key, task.mapping_id, search._workload, candidate.sch.trace, timed[index],
            task.target.tvm_target(), candidate.args_info, error=_error(result.error_msg),
            correct=correct[index],
            latency_us=statistics.median(timed[index]) * 1e6 if timed[index] else None))
    out, at = [], 0
    for _, candidates in picks:
        out.append((results[at:at + len(candidates)], records[at:at + len(candidates)]))
        at += len(candidates)
    return out


def _runs_here(runner) -> bool:
    """Whether ``runner`` runs candidates on this machine (not through an RPC tracker)."""
    from tvm.s_tir import meta_schedule as ms

    from ..measure.watched_runner import WatchedLocalRunner

    return isinstance(runner, (ms.runner.LocalRunner, WatchedLocalRunner))


def _mismatch(check: ArtifactCheck, artifact_path: str, program, target) -> str | None:
    """The check's verdict; a program the check cannot run is wrong, with the reason."""
    try:
        return check.mismatch(artifact_path, program, target)
    except Exception as exc:  # noqa: BLE001 - recorded as this candidate's failure
        return f"its output could not be checked: {_first_line(str(exc))}"


def _first_line(message: str | None) -> str | None:
    if not message:
        return None
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return lines[-1][:300] if lines else None


def _error(message: str | None) -> str | None:
    """A failed candidate's one line: 'timeout', 'crashed: ...' or the exception's line."""
    return error_line(message) if message else None


def _best_from_store(outcome: TaskOutcome, store) -> None:
    best = store.best(outcome.task.key)
    if best is not None:
        outcome.best_latency_us = best.latency_us
